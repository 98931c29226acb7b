"""katcpx's own health as Prometheus metrics: servers, clients and resources.

Servers, clients and resources count events in plain objects (:mod:`katcpx.metrics._stats`);
the collectors here turn those counters into metric families when Prometheus scrapes. One
collector per registry and kind serves every instrumented object of that kind, each told
apart by a label (``server``, ``client`` or ``resource``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from ..sampling import SampleStrategy
from ._stats import LATENCY_BUCKETS, ClientStats, RequestStats, ResourceStats, ServerStats

__all__ = ["instrument_client", "instrument_resource", "instrument_server"]

_lock = threading.Lock()
_STRATEGIES = sorted(
    name.decode() for name in SampleStrategy.SAMPLING_LOOKUP.values() if name != b"none"
)
# One collector per (registry, kind); registries are kept weakly so tests may drop them.
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Collector]] = (
    weakref.WeakKeyDictionary()
)


class _Collector:
    """Collects every registered object of one kind; subclasses say how."""

    def __init__(self) -> None:
        # Objects kept weakly: a server or client that is gone stops being reported.
        self.objects: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families depend on what is registered


def _collector(registry: CollectorRegistry | None, kind: str, cls: type[_Collector]) -> Any:
    registry = REGISTRY if registry is None else registry
    with _lock:
        per = _collectors.setdefault(registry, {})
        found = per.get(kind)
        if found is None:
            found = per[kind] = cls()
            registry.register(found)
        return found


def _request_families(
    prefix: str, label: str, what: str, items: Iterable[tuple[str, RequestStats]]
) -> Iterator[Metric]:
    """``<prefix>_requests_total`` and ``<prefix>_request_duration_seconds`` families."""
    total = CounterMetricFamily(
        f"{prefix}_requests",
        f"Requests {what}, by request name and result",
        labels=[label, "request", "result"],
    )
    latency = HistogramMetricFamily(
        f"{prefix}_request_duration_seconds",
        f"Time from sending a request to its reply ({what}), in seconds",
        labels=[label, "request"],
    )
    for owner, requests in items:
        merged: dict[str, list[float]] = {}
        for name, result, slots in requests.items():
            total.add_metric([owner, name, result], sum(slots[:-1]))
            acc = merged.setdefault(name, [0.0] * len(slots))
            for i, v in enumerate(slots):
                acc[i] += v
        for name, slots in merged.items():
            buckets, running = [], 0.0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), slots[:-1], strict=True):
                running += count
                buckets.append((_bound(bound), running))
            latency.add_metric([owner, name], buckets, slots[-1])
    yield total
    yield latency


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


#: Per-server families: (key, kind, name after ``katcpx_server_``, help).
_SERVER_FAMILIES: list[tuple[str, type[Any], str, str]] = [
    ("conn", GaugeMetricFamily, "connections", "Clients connected now"),
    ("acc", CounterMetricFamily, "connections_accepted", "Client connections accepted"),
    ("drop", CounterMetricFamily, "connections_dropped", "Client connections closed (either side)"),
    ("inf", CounterMetricFamily, "informs_sent", "Informs sent to clients"),
    ("bytes", CounterMetricFamily, "written_bytes", "Bytes written to clients"),
    ("queued", GaugeMetricFamily, "queued_bytes", "Bytes queued for clients and not yet sent"),
    (
        "slow",
        CounterMetricFamily,
        "slow_clients_disconnected",
        "Clients cut off for letting too much output queue up",
    ),
    ("syntax", CounterMetricFamily, "syntax_errors", "Malformed or over-long lines received"),
]


class _ServerCollector(_Collector):
    def collect(self) -> Iterator[Metric]:
        f: dict[str, Any] = {
            key: cls(f"katcpx_server_{name}", doc, labels=["server"])
            for key, cls, name, doc in _SERVER_FAMILIES
        }
        f["strat"] = GaugeMetricFamily(
            "katcpx_server_sampling_strategies",
            "Active sampling strategies, by strategy",
            labels=["server", "strategy"],
        )
        requests = []
        for server, stats in list(self.objects.items()):
            # The port is known only once the server started (it may have asked for port 0).
            n = stats.name or f"{type(server).__name__}:{server.bind_address[1]}"
            conns = server.client_connections() if hasattr(server, "client_connections") else []
            f["conn"].add_metric([n], len(conns))
            f["acc"].add_metric([n], stats.accepted)
            f["drop"].add_metric([n], stats.dropped)
            f["inf"].add_metric([n], stats.informs)
            f["bytes"].add_metric([n], stats.bytes_written)
            f["queued"].add_metric([n], sum(c.queued_bytes() for c in conns))
            f["slow"].add_metric([n], stats.slow_clients)
            f["syntax"].add_metric([n], stats.syntax_errors)
            counts: dict[str, int] = getattr(server, "sampling_strategy_counts", dict)()
            for strategy in _STRATEGIES:  # every strategy, so a graph shows zeros too
                f["strat"].add_metric([n, strategy], counts.get(strategy, 0))
            requests.append((n, stats.requests))
        yield from f.values()
        yield from _request_families("katcpx_server", "server", "handled", requests)


def _client_families(prefix: str, label: str, stats: list[ClientStats]) -> Iterator[Metric]:
    timeouts = CounterMetricFamily(f"{prefix}_timeouts", "Requests that timed out", labels=[label])
    reconnects = CounterMetricFamily(
        f"{prefix}_reconnects", "Connections made after the first", labels=[label]
    )
    connected = GaugeMetricFamily(
        f"{prefix}_connected", "1 while connected, else 0", labels=[label]
    )
    for s in stats:
        timeouts.add_metric([s.name], s.timeouts)
        reconnects.add_metric([s.name], s.reconnects)
        connected.add_metric([s.name], 1 if s.connected else 0)
    yield timeouts
    yield reconnects
    yield connected
    yield from _request_families(prefix, label, "made", [(s.name, s.requests) for s in stats])


class _ClientCollector(_Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _client_families("katcpx_client", "client", list(self.objects.values()))


class _ResourceCollector(_Collector):
    def collect(self) -> Iterator[Metric]:
        stats: list[ResourceStats] = list(self.objects.values())
        yield from _client_families("katcpx_resource", "resource", list(stats))
        state = StateSetMetricFamily(
            "katcpx_resource_state", "Connection and sync state", labels=["resource"]
        )
        sync = GaugeMetricFamily(
            "katcpx_resource_sync_seconds",
            "How long the last sync took (its start to synced), in seconds",
            labels=["resource"],
        )
        for s in stats:
            state.add_metric([s.name], {name: s.state == name for name in s.STATES})
            if s.sync_seconds is not None:
                sync.add_metric([s.name], s.sync_seconds)
        yield state
        yield sync


def _instrument(
    obj: Any,
    registry: CollectorRegistry | None,
    kind: str,
    cls: type[_Collector],
    make: Callable[[], Any],
) -> Any:
    collector = _collector(registry, kind, cls)
    with _lock:
        stats = getattr(obj, "metrics", None)
        if stats is None:
            stats = make()
            obj.metrics = stats
        collector.objects[obj] = stats
    return stats


def instrument_server(
    server: Any, registry: CollectorRegistry | None = None, name: str | None = None
) -> ServerStats:
    """Count `server`'s health and report it through `registry`.

    Parameters
    ----------
    server : DeviceServerBase
        The server; its ``metrics`` attribute holds the counters from now on.
    registry : prometheus_client.CollectorRegistry, optional
        Where to report (default: prometheus_client's global ``REGISTRY``).
    name : str, optional
        Value of the ``server`` label (default ``<class name>:<port>``, the port it listens
        on once started).

    Returns
    -------
    ServerStats
        The counters (the same object on every call for one server).
    """

    def make() -> ServerStats:
        return ServerStats(name or "")  # no name: the label is made when scraped

    return _instrument(server, registry, "server", _ServerCollector, make)


def instrument_client(
    client: Any, registry: CollectorRegistry | None = None, name: str | None = None
) -> ClientStats:
    """Count a client's requests, timeouts and reconnects and report them through `registry`.

    Requests made with ``call()``, ``future_request()`` and ``blocking_request()`` are
    counted, by name and result, with their latency (``callback_request()`` is not).

    Parameters
    ----------
    client : DeviceClient
        The client; its ``metrics`` attribute holds the counters from now on.
    registry : prometheus_client.CollectorRegistry, optional
        Where to report (default: the global ``REGISTRY``).
    name : str, optional
        Value of the ``client`` label (default: the server's ``host:port``).
    """

    def make() -> ClientStats:
        stats = ClientStats(name or client.bind_address_string)
        if client.is_connected():
            stats.connection_made()
        return stats

    return _instrument(client, registry, "client", _ClientCollector, make)


def instrument_resource(
    resource: Any, registry: CollectorRegistry | None = None, name: str | None = None
) -> ResourceStats:
    """Count a resource's requests, timeouts, reconnects and sync state.

    Parameters
    ----------
    resource : KATCPClientResource
        The resource; its ``metrics`` attribute holds the counters from now on.
    registry : prometheus_client.CollectorRegistry, optional
        Where to report (default: the global ``REGISTRY``).
    name : str, optional
        Value of the ``resource`` label (default: the resource's name).
    """

    def make() -> ResourceStats:
        return ResourceStats(name or resource.name, resource.state)

    return _instrument(resource, registry, "resource", _ResourceCollector, make)
