"""Device sensors as Prometheus metrics (``katcp_*``), for katcpx-web and katcpx-exporter.

Each scrape first refreshes every device with one ``?sensor-value`` (all sensors, spec
section 3.5), then reports what that reply held. So the metrics are never older than the
scrape, and a sensor the device removed (``#interface-changed``) is gone from the very next
scrape: only sensors present both in the device's reply and in the resource's synced
description are reported. New sensors appear once the resource has synced them.

Mapping (stable names; ``docs/monitoring.md`` has the table):

- ``katcp_sensor_value{device,sensor}``: integer, float, boolean (0/1) and timestamp
  (seconds) sensors;
- ``katcp_sensor_state{device,sensor,katcp_sensor_state}``: discrete and lru sensors, a state
  set with one series per allowed value at 0 or 1;
- ``katcp_sensor_string_info{device,sensor,value}``: string and address sensors;
- ``katcp_sensor_status{device,sensor,status}``: 1, for the current status only;
- ``katcp_sensor_timestamp_seconds{device,sensor}``: the reading's own timestamp;
- ``katcp_sensor_info{device,sensor,type,units,description}``: metadata, always 1; units go
  here, since one metric name serves sensors of every unit (Prometheus practice is units in
  the name, which a shared name cannot have);
- ``katcp_device_up{device}``, ``katcp_device_reconnects_total{device}``,
  ``katcp_device_sync_seconds{device}``.

Readings whose status is ``unknown`` or ``unreachable`` keep their status and timestamp
series but drop their value series (value, state set or string info): their value is stale.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from ..client import is_timeout_reply
from ..resource import KATCPClientResource, KATCPSensor, escape_name
from ._health import instrument_resource

__all__ = ["DROPPED_STATUSES", "SensorExporter", "SensorSample", "sample_of"]

log = logging.getLogger("katcp.metrics")

#: Statuses whose readings carry no trustworthy value: their value series are dropped.
DROPPED_STATUSES = frozenset({"unknown", "unreachable"})
NUMERIC = frozenset({"integer", "float", "boolean", "timestamp"})
STATES = frozenset({"discrete", "lru"})
TEXT = frozenset({"string", "address"})
_LRU = ("nominal", "error")


@dataclass(frozen=True)
class SensorSample:
    """One sensor's reading as a scrape saw it."""

    name: str
    type: str
    units: str
    description: str
    params: tuple[str, ...]
    timestamp: float
    status: str
    value: Any


class SensorExporter:
    """Prometheus collector of the sensors of a set of client resources.

    Call :meth:`refresh` (a coroutine, on the resources' loop) before each scrape;
    :meth:`collect` then reports what it fetched. :func:`metrics_handler` does both.

    Parameters
    ----------
    resources
        Device name to resource, or a callable returning that mapping (so devices may come
        and go).
    device_filter, sensor_filter
        Regular expressions (``re.search``) that device and sensor names must match to be
        reported; they keep the label sets bounded.
    timeout
        Seconds (> 0) to wait for each device's ``?sensor-value`` reply; devices are asked
        concurrently, so one hung device delays a scrape by at most this much.
    max_string_length
        String and address values longer than this many characters get no
        ``katcp_sensor_string_info`` series (their status, timestamp and info series stay):
        a label value that keeps changing (e.g. JSON) would grow the series without bound.
        None: no limit.
    registry
        Where the resources' own health (``katcpx_resource_*``) is reported (default: the
        global ``REGISTRY``); register the exporter itself with the same registry.

    Raises
    ------
    ValueError
        If a filter is not a valid regular expression.
    """

    def __init__(
        self,
        resources: Mapping[str, KATCPClientResource]
        | Callable[[], Mapping[str, KATCPClientResource]],
        device_filter: str = "",
        sensor_filter: str = "",
        timeout: float = 5.0,
        registry: Any = None,
        max_string_length: int | None = 64,
    ) -> None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a number of seconds > 0, not {timeout!r}")
        self._resources = resources if callable(resources) else (lambda: resources)
        self.device_filter = _compile(device_filter, "device")
        self.sensor_filter = _compile(sensor_filter, "sensor")
        self.timeout = timeout
        self.max_string_length = max_string_length
        self._registry = registry
        self._samples: dict[str, list[SensorSample]] = {}
        self._up: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self.devices()  # count reconnects and syncs from now on

    def devices(self) -> dict[str, KATCPClientResource]:
        """The devices the filters let through, instrumented for their health metrics."""
        found = {}
        for name, res in self._resources().items():
            if self.device_filter.search(name):
                instrument_resource(res, self._registry, name)  # the same counters each time
                found[name] = res
        return found

    async def refresh(self) -> None:
        """Fetch every device's sensors with one ``?sensor-value`` each, concurrently."""
        async with self._lock:  # overlapping scrapes share no half-built state
            devices = self.devices()
            results = await asyncio.gather(
                *(self._fetch_within(name, res) for name, res in devices.items()),
                return_exceptions=True,
            )
            samples: dict[str, list[SensorSample]] = {}
            up: dict[str, bool] = {}
            for name, result in zip(devices, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning(
                        "reading the sensors of %s at %s failed: %s",
                        name,
                        devices[name].address_string,
                        result or type(result).__name__,
                    )
                    up[name] = False
                    continue
                up[name] = result is not None
                samples[name] = result or []
                if result is None and self._up.get(name, True):
                    res = devices[name]
                    log.warning(
                        "device %s at %s is %s: reported down (katcp_device_up 0)",
                        name,
                        res.address_string,
                        "not connected" if res.state == "disconnected" else "not synced yet",
                    )
            self._samples, self._up = samples, up

    async def _fetch_within(
        self, device: str, res: KATCPClientResource
    ) -> list[SensorSample] | None:
        # The request has its own timeout; this bounds the whole fetch (reply parsing
        # included) so that no device can hold a scrape longer than `timeout`.
        try:
            return await asyncio.wait_for(self._fetch(device, res), self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no ?sensor-value reply within {self.timeout:g} s") from None

    async def _fetch(self, device: str, res: KATCPClientResource) -> list[SensorSample] | None:
        if not res.synced:
            return None
        request = res.req.get("sensor_value")
        if request is None:
            raise LookupError(f"device {device!r} offers no ?sensor-value")
        reply = await request(timeout=self.timeout)
        if is_timeout_reply(reply.reply):
            raise TimeoutError(f"no ?sensor-value reply within {self.timeout:g} s")
        if not reply:
            raise RuntimeError(f"?sensor-value failed: {reply.reply}")
        major = res.protocol_flags.major if res.protocol_flags is not None else 5
        out = []
        for inform in reply.informs:
            args = inform.arguments
            if len(args) < 5:
                continue
            name = args[2].decode("utf-8", "replace")
            if not self.sensor_filter.search(name):
                continue
            sensor = res.sensor.get(escape_name(name))
            if not isinstance(sensor, KATCPSensor) or sensor.name != name:
                continue  # not (or no longer) in the synced description
            try:
                sensor.set_formatted(args[0], args[3], args[4], major)
            except ValueError as exc:
                log.warning("bad reading of %s on %s: %s", name, device, exc)
                continue
            out.append(sample_of(sensor))
        return out

    def health(self) -> dict[str, tuple[int | None, float | None]]:
        """Per reported device: its reconnections and last sync time in seconds (None:
        not known to this exporter)."""
        out: dict[str, tuple[int | None, float | None]] = {}
        for device, res in self.devices().items():
            stats = res.metrics
            assert stats is not None  # devices() instrumented it
            out[device] = (stats.reconnects, stats.sync_seconds)
        return out

    def set_samples(self, samples: dict[str, list[SensorSample]], up: dict[str, bool]) -> None:
        """Replace what :meth:`collect` reports (a subclass's :meth:`refresh` does this)."""
        self._samples, self._up = samples, up

    def _short(self, value: Any) -> bool:
        limit = self.max_string_length
        return limit is None or len(_text(value)) <= limit

    # -- prometheus_client collector -------------------------------------------------------

    def describe(self) -> list[Metric]:
        return []  # the series depend on the devices

    def collect(self) -> Iterator[Metric]:
        """The metric families of the last :meth:`refresh`."""
        labels = ["device", "sensor"]
        value = GaugeMetricFamily(
            "katcp_sensor_value",
            "Value of integer, float, boolean (0/1) and timestamp (seconds since the epoch) "
            "sensors; units in katcp_sensor_info",
            labels=labels,
        )
        state = StateSetMetricFamily(
            "katcp_sensor_state", "Value of discrete and lru sensors", labels=labels
        )
        text = InfoMetricFamily(
            "katcp_sensor_string", "Value of string and address sensors", labels=labels
        )
        status = GaugeMetricFamily(
            "katcp_sensor_status",
            "Status of each sensor: 1 for its current status",
            labels=[*labels, "status"],
        )
        stamp = GaugeMetricFamily(
            "katcp_sensor_timestamp_seconds",
            "Time of the sensor's reading, in seconds since the epoch",
            labels=labels,
        )
        info = InfoMetricFamily(
            "katcp_sensor", "Sensor metadata: type, units and description", labels=labels
        )
        up = GaugeMetricFamily(
            "katcp_device_up", "1 if the device answered the last scrape", labels=["device"]
        )
        reconnects = CounterMetricFamily(
            "katcp_device_reconnects", "Reconnections to the device", labels=["device"]
        )
        sync = GaugeMetricFamily(
            "katcp_device_sync_seconds",
            "How long the last sync with the device took (its start to synced), in seconds",
            labels=["device"],
        )
        for device, (count, seconds) in self.health().items():
            up.add_metric([device], 1 if self._up.get(device) else 0)
            if count is not None:
                reconnects.add_metric([device], count)
            if seconds is not None:
                sync.add_metric([device], seconds)
            for s in self._samples.get(device, ()):
                key = [device, s.name]
                info.add_metric(
                    key, {"type": s.type, "units": s.units, "description": s.description}
                )
                status.add_metric([*key, s.status], 1)
                stamp.add_metric(key, s.timestamp)
                if s.status in DROPPED_STATUSES:
                    continue
                if s.type in TEXT and not self._short(s.value):
                    continue  # unbounded label values: see max_string_length
                _add_value(s, key, value, state, text)
        yield from (value, state, text, status, stamp, info, up, reconnects, sync)


def _add_value(
    s: SensorSample,
    key: list[str],
    value: GaugeMetricFamily,
    state: StateSetMetricFamily,
    text: InfoMetricFamily,
) -> None:
    if s.type in NUMERIC:
        number = _number(s.value)
        if number is not None:
            value.add_metric(key, number)
    elif s.type in STATES:
        allowed = _LRU if s.type == "lru" else s.params
        current = _LRU[s.value] if s.type == "lru" and s.value in (0, 1) else str(s.value)
        state.add_metric(key, {v: v == current for v in allowed})
    elif s.type in TEXT:
        text.add_metric(key, {"value": _text(s.value)})


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None  # a value the parser kept raw (e.g. a failed reading's placeholder)


def _text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:  # address: (host, port or None)
        host, port = value
        host = f"[{host}]" if ":" in str(host) else str(host)
        return host if port is None else f"{host}:{port}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def sample_of(sensor: Any) -> SensorSample:
    """The current reading of `sensor` (a :class:`KATCPSensor`, or any object with its
    ``name``, ``type``, ``units``, ``description``, ``formatted_params`` and ``reading``)."""
    reading = sensor.reading
    value = reading.value
    if sensor.type == "address" and isinstance(value, list) and len(value) == 2:
        value = tuple(value)  # from JSON, which has no tuples: (host, port) as parsed
    timestamp = float(reading.timestamp or 0.0)
    return SensorSample(
        name=sensor.name,
        type=sensor.type,
        units=sensor.units,
        description=sensor.description,
        params=tuple(
            p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
            for p in sensor.formatted_params
        ),
        timestamp=timestamp if math.isfinite(timestamp) else 0.0,
        status=reading.status,
        value=value,
    )


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad {what} filter {pattern!r}: {exc}") from None


def sensor_metrics_names() -> Iterable[str]:
    """Names of every metric family the exporter reports (as exposed, with suffixes)."""
    return (
        "katcp_sensor_value",
        "katcp_sensor_state",
        "katcp_sensor_string_info",
        "katcp_sensor_status",
        "katcp_sensor_timestamp_seconds",
        "katcp_sensor_info",
        "katcp_device_up",
        "katcp_device_reconnects_total",
        "katcp_device_sync_seconds",
    )
