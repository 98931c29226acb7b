"""Which KATCP devices a web tool serves: :class:`DeviceSpec` and its command-line form."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceSpec", "parse_device_spec"]


@dataclass(frozen=True)
class DeviceSpec:
    """A KATCP device to serve.

    Attributes
    ----------
    name
        Name used in URLs and messages.
    host, port
        Address of the device's KATCP server.
    description
        Free text shown on the dashboard.
    """

    name: str
    host: str
    port: int
    description: str = ""

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def parse_device_spec(text: str, description: str = "") -> DeviceSpec:
    """Parse ``name=host:port``, ``host:port`` or ``:port`` (localhost).

    Parameters
    ----------
    text
        The device address, optionally prefixed with a name. Without a name the device is
        named after its address.
    description
        Description of the device.

    Raises
    ------
    ValueError
        If `text` is not of that form.
    """
    name, sep, address = text.strip().partition("=")
    if not sep:
        name, address = "", name
    elif not name.strip():
        raise ValueError(f"device {text!r}: empty name before '=' (write name=host:port)")
    host, colon, port_text = address.rpartition(":")
    if not colon:
        raise ValueError(f"device {text!r}: expected [name=]host:port")
    host = host.strip().strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"device {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"device {text!r}: port {port} out of range")
    name = name.strip() or f"{host}:{port}"
    if "/" in name:
        raise ValueError(f"device {text!r}: a name may not contain '/'")
    return DeviceSpec(name, host, port, description)
