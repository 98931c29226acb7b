"""Why the hub (or a Redis source) cannot serve a browser's request: error code and HTTP status."""

from __future__ import annotations

__all__ = [
    "BadFilter",
    "DeviceUnavailable",
    "HubError",
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
