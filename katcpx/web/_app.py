"""The tornado application: dashboard, REST API and websocket on one HTTP server."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..metrics._source import source_metrics_route
from ..metrics._web import metrics_route
from ._auth import OPEN, Guard
from ._history import HistoryHandler
from ._hub import DeviceHub
from ._rest import (
    DeviceHandler,
    DevicesHandler,
    NotFoundHandler,
    OpenAPIHandler,
    RequestHandler,
    RequestsHandler,
    SensorHandler,
    SensorsHandler,
)
from ._source import SensorSource
from ._ws import DeviceSocketHandler

__all__ = ["STATIC_PATH", "WS_PATH", "WebServer", "make_app"]

#: The dashboard's files.
STATIC_PATH = os.path.join(os.path.dirname(__file__), "static")
#: Path of the websocket endpoint.
WS_PATH = "/api/ws"

_NAME = r"([^/]+)"


class _IndexHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        with open(os.path.join(STATIC_PATH, "index.html"), "rb") as f:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(f.read())


def make_app(
    hub: SensorSource,
    allowed_origins: Sequence[str] = (),
    guard: Guard | None = None,
    metrics: Mapping[str, Any] | None = None,
    **settings: Any,
) -> tornado.web.Application:
    """Build the application serving `hub`.

    Parameters
    ----------
    hub
        The devices to serve.
    allowed_origins
        Extra browser origins (e.g. ``"http://ops.example:8000"``, or ``"*"``) allowed to
        open the websocket; same-origin pages always may.
    guard
        Who may change devices (see :mod:`katcpx.web._auth`); anyone when None.
    metrics
        Keyword arguments of :func:`katcpx.metrics._web.metrics_route` for ``/metrics``
        (``device_filter``, ``sensor_filter``, ``max_string_length``, ``timeout``).
    **settings
        Further tornado application settings.

    Returns
    -------
    tornado.web.Application
    """
    kw = {"hub": hub}
    routes: list[Any] = [
        (r"/", _IndexHandler),
        (WS_PATH, DeviceSocketHandler, {"hub": hub, "allowed_origins": tuple(allowed_origins)}),
        (r"/api/openapi\.json", OpenAPIHandler, kw),
        (r"/api/devices", DevicesHandler, kw),
        (r"/api/sensors", SensorsHandler, kw),
        (rf"/api/devices/{_NAME}", DeviceHandler, kw),
        (rf"/api/devices/{_NAME}/sensors", SensorsHandler, kw),
        (rf"/api/devices/{_NAME}/sensors/{_NAME}", SensorHandler, kw),
        (rf"/api/devices/{_NAME}/sensors/{_NAME}/history", HistoryHandler, kw),
        (rf"/api/devices/{_NAME}/requests", RequestsHandler, kw),
        (rf"/api/devices/{_NAME}/requests/{_NAME}", RequestHandler, kw),
        # Prometheus: the devices' sensors (asked of the devices, or a source's cache: the
        # Redis source has no KATCP connection) and katcpx's health.
        (metrics_route if isinstance(hub, DeviceHub) else source_metrics_route)(
            hub, **(metrics or {})
        ),
    ]
    settings["katcpx_guard"] = guard or OPEN
    settings.setdefault("static_path", STATIC_PATH)
    settings.setdefault("static_url_prefix", "/static/")
    settings.setdefault("default_handler_class", NotFoundHandler)
    settings.setdefault("default_handler_args", kw)
    return tornado.web.Application(routes, **settings)


class WebServer:
    """A :class:`DeviceHub` and its HTTP server, started and stopped together.

    Parameters
    ----------
    hub
        The devices to serve.
    host
        Address to listen on.
    port
        Port to listen on; 0 picks a free one (see :attr:`port` after :meth:`start`).
    allowed_origins, guard, metrics
        As for :func:`make_app`.
    ssl_context
        Serve HTTPS and WSS with this server context (see :mod:`katcpx.tls`).
    """

    def __init__(
        self,
        hub: SensorSource,
        host: str = "127.0.0.1",
        port: int = 8080,
        allowed_origins: Sequence[str] = (),
        *,
        guard: Guard | None = None,
        ssl_context: ssl.SSLContext | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        #: HTTPS/WSS context towards browsers, or None for HTTP.
        self.ssl_context = ssl_context
        self.app = make_app(hub, allowed_origins, guard, metrics)
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        """Base URL of the dashboard."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{host}:{self.port}/"

    async def start(self) -> None:
        """Connect to the devices and start listening (on the running loop)."""
        sockets = tornado.netutil.bind_sockets(
            self.port, self.host or None, family=socket.AF_UNSPEC
        )
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(self.app, ssl_options=self.ssl_context)
        self._server.add_sockets(sockets)
        await self.hub.start()

    async def stop(self) -> None:
        """Stop listening, close the websockets and disconnect from the devices."""
        if self._server is not None:
            self._server.stop()
            # Websockets are detached from the HTTP server: close them one by one.
            for sink in self.hub.sinks():
                close = getattr(sink, "close", None)
                if callable(close):
                    close(1001, "server shutting down")
            await self._server.close_all_connections()
            self._server = None
        await self.hub.stop()
