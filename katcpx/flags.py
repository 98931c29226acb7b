"""KATCP protocol versions and feature flags (``5.1-BIMT``), with no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar, Final

__all__ = [
    "ProtocolFlags",
    "DEFAULT_KATCP_MAJOR",
    "MID_KATCP_MAJOR",
    "SEC_TS_KATCP_MAJOR",
    "VERSION_CONNECT_KATCP_MAJOR",
]

#: KATCP major version spoken when nothing else is known.
DEFAULT_KATCP_MAJOR: Final = 5
#: First major version with message ids.
MID_KATCP_MAJOR: Final = 5
#: First major version whose timestamps are in seconds (v4 uses milliseconds).
SEC_TS_KATCP_MAJOR: Final = 5
#: First major version that announces itself with ``#version-connect``.
VERSION_CONNECT_KATCP_MAJOR: Final = 5

# An empty flag list ("5.1-") is read as no flags: spec rev 5.1 section 4.2 says the "-" part
# "should be omitted" then, which asks servers to omit it but leaves it unambiguous.
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:-([A-Za-z]*))?\Z")


class ProtocolFlags:
    """The protocol version and flags a server announces in ``#version-connect``.

    Parameters
    ----------
    major, minor
        Protocol version numbers.
    flags
        The flag characters, e.g. ``"BIMT"`` or ``{"M", "I"}``; bytes are accepted too.

    Raises
    ------
    ValueError
        For a repeated flag, or a flag the version does not allow: ``I`` needs v5, ``T`` and
        ``B`` need v5.1 (spec section 4, ``#version-connect``).

    Notes
    -----
    Flags katcpx does not know are kept (``supports()`` reports them): spec 5.1 §4 says later
    versions may define more, and katcp-python keeps them too.
    """

    # Flags are single bytes, as in katcp-python 0.9.3 (its users compare them with b"I");
    # every method also takes them as str.
    MULTI_CLIENT: ClassVar[bytes] = b"M"
    MESSAGE_IDS: ClassVar[bytes] = b"I"
    REQUEST_TIMEOUT_HINTS: ClassVar[bytes] = b"T"
    BULK_SET_SENSOR_SAMPLING: ClassVar[bytes] = b"B"
    KNOWN_FLAGS: ClassVar[frozenset[bytes]] = frozenset([b"M", b"I", b"T", b"B"])

    STRATEGIES_V4: ClassVar[frozenset[str]] = frozenset(
        ["none", "auto", "period", "event", "differential"]
    )
    STRATEGIES_V5: ClassVar[frozenset[str]] = STRATEGIES_V4 | {"event-rate", "differential-rate"}
    REQUEST_TIMEOUT_HINTS_MIN_VERSION: ClassVar[tuple[int, int]] = (5, 1)
    BULK_SET_SENSOR_SAMPLING_MIN_VERSION: ClassVar[tuple[int, int]] = (5, 1)

    major: int
    minor: int
    flags: frozenset[bytes]
    #: Flags announced by a peer that this version does not know (kept in :attr:`flags`,
    #: as katcp-python keeps them, but acted on nowhere; see :meth:`parse_version`).
    unknown_flags: frozenset[bytes] = frozenset()

    def __init__(
        self, major: int, minor: int, flags: Iterable[str | bytes | int] | str | bytes = ""
    ) -> None:
        self.major = int(major)
        self.minor = int(minor)
        chars = [_flag_bytes(f) for f in flags]
        if len(set(chars)) != len(chars):
            raise ValueError(f"repeated protocol flag in {b''.join(chars).decode('ascii')!r}")
        self.flags = frozenset(chars)
        version = (self.major, self.minor)
        if self.MESSAGE_IDS in self.flags and self.major < MID_KATCP_MAJOR:
            raise ValueError("flag I (message ids) needs KATCP v5 or newer")
        if self.REQUEST_TIMEOUT_HINTS in self.flags and version < (5, 1):
            raise ValueError("flag T (request timeout hints) needs KATCP v5.1 or newer")
        if self.BULK_SET_SENSOR_SAMPLING in self.flags and version < (5, 1):
            raise ValueError("flag B (bulk sensor sampling) needs KATCP v5.1 or newer")

    @classmethod
    def parse_version(cls, version_str: str | bytes) -> ProtocolFlags:
        """Parse a ``#version-connect katcp-protocol`` value such as ``5.1-BIMT``.

        ``5.1-`` (an empty flag list) is version 5.1 with no flags, as katcp-python reads it:
        the spec's "should be omitted" makes the ``-`` improper, not ambiguous.

        Flags this version of katcpx does not know are kept, as katcp-python keeps them
        (:meth:`supports` answers for them), and also listed in :attr:`unknown_flags`; they
        change nothing: spec rev 5.1 section 4.2 lets later protocol versions add flags, and
        a client must still talk to such a server.

        Raises
        ------
        ValueError
            If the string is not ``<major>.<minor>[-<flags>]``, repeats a flag, or holds a
            known flag its version does not allow.
        """
        text = (
            version_str.decode("ascii", "replace")
            if isinstance(version_str, bytes)
            else version_str
        )
        match = _VERSION_RE.match(text)
        if match is None:
            raise ValueError(f"invalid KATCP protocol version {text!r}: expected e.g. '5.1-BIMT'")
        chars = match.group(3) or ""
        if len(set(chars)) != len(chars):
            raise ValueError(f"repeated protocol flag in {chars!r}")
        announced = {_flag_bytes(c) for c in chars}
        flags = cls(int(match.group(1)), int(match.group(2)), announced)
        flags.unknown_flags = frozenset(announced - cls.KNOWN_FLAGS)
        return flags

    def supports(self, flag: str | bytes) -> bool:
        """Return True if the server announced `flag` (``b"I"`` or ``"I"``)."""
        return _flag_bytes(flag) in self.flags

    @property
    def multi_client(self) -> bool:
        """The server serves several clients at once (flag M)."""
        return self.MULTI_CLIENT in self.flags

    @property
    def message_ids(self) -> bool:
        """The server supports message ids (flag I)."""
        return self.MESSAGE_IDS in self.flags

    supports_message_ids = message_ids

    @property
    def request_timeout_hints(self) -> bool:
        """The server answers ``?request-timeout-hint`` (flag T)."""
        return self.REQUEST_TIMEOUT_HINTS in self.flags

    @property
    def bulk_set_sensor_sampling(self) -> bool:
        """``?sensor-sampling`` accepts several sensors at once (flag B)."""
        return self.BULK_SET_SENSOR_SAMPLING in self.flags

    def strategy_allowed(self, strategy: str | bytes) -> bool:
        """Return True if sampling `strategy` exists in this major version."""
        if isinstance(strategy, bytes):
            strategy = strategy.decode("ascii", "replace")
        allowed = self.STRATEGIES_V4 if self.major < 5 else self.STRATEGIES_V5
        return strategy in allowed

    def _flag_text(self) -> str:
        return b"".join(sorted(self.flags)).decode("ascii", "replace")

    def __str__(self) -> str:
        flags = self._flag_text()
        return f"{self.major}.{self.minor}" + (f"-{flags}" if flags else "")

    def __repr__(self) -> str:
        return f"ProtocolFlags({self.major}, {self.minor}, {self._flag_text()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtocolFlags):
            return NotImplemented
        return (self.major, self.minor, self.flags) == (other.major, other.minor, other.flags)

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.flags))


def _flag_bytes(flag: str | bytes | int) -> bytes:
    """One protocol flag as a single byte, from bytes, str or an int (a byte of b"IM")."""
    if isinstance(flag, int):
        return bytes([flag])
    if isinstance(flag, str):
        return flag.encode("ascii", "replace")
    return bytes(flag)
