"""The ``/metrics`` page of katcpx-web and katcpx-exporter (a tornado handler)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import tornado.web
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted

from ._options import DEFAULT_MAX_STRING_LENGTH
from ._sensors import SensorExporter

__all__ = ["METRICS_PATH", "MetricsHandler", "metrics_route"]

#: Where the metrics are served.
METRICS_PATH = "/metrics"


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: refresh the device sensors, then answer with the registry.

    As prometheus_client's own server does: the format follows the ``Accept`` header
    (Prometheus text format, or OpenMetrics when asked for), the body is gzipped when
    ``Accept-Encoding`` allows, and ``?name[]=FAMILY`` (repeatable) restricts the answer to
    those sample names. ``HEAD /metrics`` answers the same headers with no body, and does
    not query the devices.
    """

    def initialize(self, exporter: SensorExporter, registry: CollectorRegistry) -> None:
        self.exporter = exporter
        self.registry = registry

    async def get(self) -> None:
        await self.exporter.refresh()
        self._answer(self._body())

    def head(self) -> None:
        self._answer(None)

    def _body(self) -> bytes:
        names = self.get_query_arguments("name[]")
        registry: Any = _Only(self.registry, names) if names else self.registry
        return bytes(self._encoder()[0](registry))

    def _encoder(self) -> tuple[Any, str]:
        return choose_encoder(self.request.headers.get("Accept", ""))

    def _answer(self, body: bytes | None) -> None:
        self.set_header("Content-Type", self._encoder()[1])
        self.set_header("Cache-Control", "no-store")
        self.set_header("Vary", "Accept, Accept-Encoding")
        if gzip_accepted(self.request.headers.get("Accept-Encoding", "")):
            self.set_header("Content-Encoding", "gzip")
            if body is not None:
                body = gzip.compress(body)
        self.finish(body)


class _Only:
    """`registry`'s samples named in `names` (``?name[]=``), as prometheus_client's server
    answers; its ``restricted_registry`` finds only collectors that describe their names,
    and the sensors' cannot (their series depend on the devices)."""

    def __init__(self, registry: CollectorRegistry, names: list[str]) -> None:
        self.registry = registry
        self.names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            samples = [s for s in family.samples if s.name in self.names]
            if samples:
                only = Metric(family.name, family.documentation, family.type, family.unit)
                only.samples = samples
                yield only


def metrics_route(
    hub: Any,
    device_filter: str = "",
    sensor_filter: str = "",
    timeout: float | None = None,
    max_string_length: int | None = DEFAULT_MAX_STRING_LENGTH,
) -> tuple[Any, ...]:
    """The tornado route serving `hub`'s devices at :data:`METRICS_PATH`.

    Parameters
    ----------
    hub : katcpx.web.DeviceHub
        The devices (the hub's resources are read; its subscriptions are left alone).
    device_filter, sensor_filter
        Regular expressions device and sensor names must match (``re.search``).
    timeout
        Seconds (> 0) each device has to answer a scrape (default: the hub's
        ``request_timeout``).
    max_string_length
        As for :class:`SensorExporter`.

    Returns
    -------
    tuple
        ``(path, MetricsHandler, kwargs)``. The registry (``kwargs["registry"]``) is the
        route's own: it holds the sensors and the resources' ``katcpx_resource_*`` health.

    Raises
    ------
    ValueError
        If a filter is not a valid regular expression or `timeout` is not > 0.
    """
    registry = CollectorRegistry(auto_describe=False)

    def resources() -> dict[str, Any]:
        return {name: hub.resource(name) for name in hub.device_names}

    exporter = SensorExporter(
        resources,
        device_filter,
        sensor_filter,
        timeout=hub.request_timeout if timeout is None else timeout,
        registry=registry,
        max_string_length=max_string_length,
    )
    registry.register(exporter)
    return (METRICS_PATH, MetricsHandler, {"exporter": exporter, "registry": registry})
