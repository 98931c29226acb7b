"""katcpx-web: KATCP devices in the browser.

A websocket bridge (subscribe to sensors, issue requests), a REST API described by an
OpenAPI document, and a live dashboard, all served by tornado on the loop that runs the
KATCP clients. Start it with ``katcpx-web`` (see :mod:`katcpx.web._cli`) or embed it::

    hub = DeviceHub([parse_device_spec("antenna=127.0.0.1:7147")])
    server = WebServer(hub, port=8080)
    await server.start()
"""

from ._app import STATIC_PATH, WS_PATH, WebServer, make_app
from ._hub import (
    DEFAULT_STRATEGY,
    DeviceHub,
    DeviceSpec,
    DeviceUnavailable,
    HubError,
    Sink,
    UnknownDevice,
    UnknownRequest,
    UnknownSensor,
    parse_device_spec,
)
from ._rest import openapi_document, parse_parameters
from ._ws import ACTIONS, DeviceSocketHandler

__all__ = [
    "ACTIONS",
    "DEFAULT_STRATEGY",
    "STATIC_PATH",
    "WS_PATH",
    "DeviceHub",
    "DeviceSocketHandler",
    "DeviceSpec",
    "DeviceUnavailable",
    "HubError",
    "Sink",
    "UnknownDevice",
    "UnknownRequest",
    "UnknownSensor",
    "WebServer",
    "make_app",
    "openapi_document",
    "parse_device_spec",
    "parse_parameters",
]
