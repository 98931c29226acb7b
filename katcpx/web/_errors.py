"""Why the hub (or a Redis source) cannot serve a browser's request: error code and HTTP status."""

from __future__ import annotations

__all__ = [
    "BadFilter",
    "DeviceUnavailable",
    "HubError",
    "SharedConnectionRequest",
    "UnknownDevice",
    "UnknownRequest",
    "UnknownSensor",
]


class HubError(Exception):
    """A request the hub cannot serve; `code` and `http_status` say why.

    Parameters
    ----------
    message
        Human readable explanation.
    """

    code = "error"
    http_status = 400


class UnknownDevice(HubError):
    """No device of that name is configured."""

    code = "unknown_device"
    http_status = 404


class UnknownSensor(HubError):
    """The device has no sensor of that name."""

    code = "unknown_sensor"
    http_status = 404


class UnknownRequest(HubError):
    """The device has no request of that name."""

    code = "unknown_request"
    http_status = 404


class DeviceUnavailable(HubError):
    """The device is not connected (or not yet synced)."""

    code = "device_unavailable"
    http_status = 503


class BadFilter(HubError):
    """A sensor filter that is not an acceptable regular expression."""

    code = "bad_filter"


class SharedConnectionRequest(HubError):
    """A request that would change the state of the one connection shared by every browser.

    The hub (and ``katcpx-gateway``, which runs web instances' requests on its hub) holds one
    connection per device for all its users. Sampling strategies are per connection (KATCP
    5.1 section 7), so a browser's ``?sensor-sampling NAME STRATEGY`` or
    ``?sensor-sampling-clear`` would change what every user sees; the hub manages them
    itself (one strategy per subscribed sensor). ``?log-level`` is a device-wide setting
    (section 6), governed by roles like ``?halt``, so it is not refused here.
    """

    code = "shared_connection"
    http_status = 403


def refuse_shared_state(request: str, args: tuple[object, ...] | list[object]) -> None:
    """Raise :class:`SharedConnectionRequest` if `request` would change the shared connection.

    ``?sensor-sampling NAME`` alone only asks for the strategy (section 7) and is allowed.
    """
    if request == "sensor-sampling-clear" or (request == "sensor-sampling" and len(args) > 1):
        raise SharedConnectionRequest(
            f"?{request} refused: it would change the sampling strategies of the one "
            "connection this bridge shares among all its users (the bridge sets them itself "
            "for subscribed sensors; subscribe to a sensor instead)"
        )
