"""``/metrics`` of ``katcpx-web --redis``: device sensors from a sensor source's cache.

A ``katcpx-web --redis`` instance has no KATCP connection of its own: the gateway holds one
sampling strategy on every sensor it carries and writes each reading to Redis, and the
instance keeps the latest of each. A scrape reports those (same ``katcp_*`` names and labels
as :mod:`.sensors`), so it costs the devices nothing. A device is up (``katcp_device_up 1``)
while the gateway is up and has it synced; otherwise it is down and its sensors are left
out, as :class:`.sensors.SensorExporter` does for a device it cannot read. Reconnection
counts and sync times are the gateway's business: those series are absent here.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from ._options import DEFAULT_MAX_STRING_LENGTH
from ._sensors import SensorExporter, SensorSample, sample_of
from ._web import METRICS_PATH, MetricsHandler

__all__ = ["SourceSensorExporter", "source_metrics_route"]


class SourceSensorExporter(SensorExporter):
    """Prometheus collector of the sensors a sensor source (``RedisSource``) caches.

    Parameters
    ----------
    source : katcpx.web._redis_source.RedisSource
        Any source with ``device_names``, ``device_message(device)`` (its ``synced``) and
        ``sensors(device)`` (objects with ``name``, ``type``, ``units``, ``description``,
        ``params`` and ``reading``: ``value``, ``status``, ``timestamp``).
    device_filter, sensor_filter, max_string_length
        As for :class:`.sensors.SensorExporter`.

    Raises
    ------
    ValueError
        If a filter is not a valid regular expression.
    """

    def __init__(
        self,
        source: Any,
        device_filter: str = "",
        sensor_filter: str = "",
        max_string_length: int | None = DEFAULT_MAX_STRING_LENGTH,
    ) -> None:
        self.source = source
        super().__init__({}, device_filter, sensor_filter, max_string_length=max_string_length)

    def device_list(self) -> list[str]:
        """The source's devices the device filter lets through."""
        return [d for d in self.source.device_names if self.device_filter.search(d)]

    def health(self) -> dict[str, tuple[int | None, float | None]]:
        """No reconnection counts or sync times: the gateway, not this process, connects."""
        return {device: (None, None) for device in self.device_list()}

    async def refresh(self) -> None:
        """Take the latest reading of every sensor from the source's cache."""
        samples: dict[str, list[SensorSample]] = {}
        up: dict[str, bool] = {}
        for device in self.device_list():
            up[device] = bool(self.source.device_message(device).get("synced"))
            if up[device]:
                samples[device] = [
                    sample_of(s)
                    for s in self.source.sensors(device)
                    if self.sensor_filter.search(s.name)
                ]
        self.set_samples(samples, up)


def source_metrics_route(
    source: Any,
    device_filter: str = "",
    sensor_filter: str = "",
    timeout: float | None = None,
    max_string_length: int | None = DEFAULT_MAX_STRING_LENGTH,
) -> tuple[Any, ...]:
    """The tornado route serving `source`'s cached sensors at ``/metrics``.

    Parameters are those of :func:`.web.metrics_route`; `timeout` is accepted and unused
    (nothing is asked of a device during a scrape).

    Returns
    -------
    tuple
        ``(path, MetricsHandler, kwargs)``, with the route's own registry.

    Raises
    ------
    ValueError
        If a filter is not a valid regular expression.
    """
    registry = CollectorRegistry(auto_describe=False)
    exporter = SourceSensorExporter(source, device_filter, sensor_filter, max_string_length)
    registry.register(exporter)
    return (METRICS_PATH, MetricsHandler, {"exporter": exporter, "registry": registry})
