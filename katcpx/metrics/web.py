"""The ``/metrics`` page of katcpx-web and katcpx-exporter (a tornado handler)."""

from __future__ import annotations

from typing import Any

import tornado.web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .sensors import SensorExporter

__all__ = ["METRICS_PATH", "MetricsHandler", "metrics_route"]

#: Where the metrics are served.
METRICS_PATH = "/metrics"


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: refresh the device sensors, then answer with the registry.

    The format follows the ``Accept`` header (Prometheus text format, or OpenMetrics when
    asked for), as prometheus_client's own server does.
    """

    def initialize(self, exporter: SensorExporter, registry: CollectorRegistry) -> None:
        self.exporter = exporter
        self.registry = registry

    async def get(self) -> None:
        await self.exporter.refresh()
        encoder, content_type = choose_encoder(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(encoder(self.registry))


def metrics_route(hub: Any, device_filter: str = "", sensor_filter: str = "") -> tuple[Any, ...]:
    """The tornado route serving `hub`'s devices at :data:`METRICS_PATH`.

    Parameters
    ----------
    hub : katcpx.web.DeviceHub
        The devices (the hub's resources are read; its subscriptions are left alone).
    device_filter, sensor_filter
        Regular expressions device and sensor names must match (``re.search``).

    Returns
    -------
    tuple
        ``(path, MetricsHandler, kwargs)``. The registry (``kwargs["registry"]``) is the
        route's own: it holds the sensors and the resources' ``katcpx_resource_*`` health.

    Raises
    ------
    ValueError
        If a filter is not a valid regular expression.
    """
    registry = CollectorRegistry(auto_describe=False)

    def resources() -> dict[str, Any]:
        return {name: hub.resource(name) for name in hub.device_names}

    exporter = SensorExporter(resources, device_filter, sensor_filter, registry=registry)
    registry.register(exporter)
    return (METRICS_PATH, MetricsHandler, {"exporter": exporter, "registry": registry})
