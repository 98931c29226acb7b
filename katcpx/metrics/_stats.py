"""Plain counters kept by servers, clients and resources on their hot paths.

Nothing here imports ``prometheus_client``: recording an event is an integer increment or a
list-slot increment, done on the object's own loop thread. The collectors in
:mod:`katcpx.metrics._health` read these counters when Prometheus scrapes, from whatever
thread serves the scrape; a scrape may see a count one event behind, never a broken one.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "LATENCY_BUCKETS",
    "ClientStats",
    "RequestStats",
    "ResourceStats",
    "ServerStats",
    "reply_result",
]

#: Upper bounds (seconds) of the request latency histograms' buckets; +Inf is implied.
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_NBUCKETS = len(LATENCY_BUCKETS) + 1  # the last slot counts everything above the last bound
_RESULTS: Final = {b"ok": "ok", b"fail": "fail", b"invalid": "invalid"}

#: Request label used for unknown requests, so client-chosen names cannot grow the label set.
UNKNOWN_REQUEST: Final = "(unknown)"

_clock = time.perf_counter


def _new_slots() -> list[float]:
    """A count per latency bucket (the last for latencies above every bound), then the sum."""
    return [0] * _NBUCKETS + [0.0]


def reply_result(status: bytes) -> str:
    """The ``result`` label of a reply whose first argument is `status`.

    ``ok``, ``fail`` and ``invalid`` (spec section 2.3) map to themselves; any other status
    word counts as ``fail``.
    """
    return _RESULTS.get(status, "fail")


class RequestStats:
    """Request counts and latencies by request name and result.

    Each ``(request, result)`` pair owns one list: a count per latency bucket (the last
    slot for latencies above every bound) followed by the sum of latencies in seconds.
    """

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[float]] = {}

    def observe(self, name: str, result: str, seconds: float) -> None:
        """Count one request of `name` that ended with `result` after `seconds`."""
        slots = self.by_key.get((name, result))
        if slots is None:
            slots = self.by_key[(name, result)] = _new_slots()
        slots[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        slots[_NBUCKETS] += seconds

    def items(self) -> Iterator[tuple[str, str, list[float]]]:
        """``(request, result, slots)`` for every pair seen so far (a copy of each list)."""
        for (name, result), slots in list(self.by_key.items()):
            yield name, result, list(slots)


class ServerStats:
    """What a device server counts while metrics are on (see ``enable_metrics``).

    Attributes
    ----------
    name
        Value of the ``server`` label.
    accepted, dropped
        Connections accepted and closed since metrics were enabled.
    requests
        Requests by name and result, with latencies (dispatch to reply, seconds).
    informs, bytes_written
        Informs sent and bytes handed to the transports, over all clients (the connection
        increments them in place: that runs for every line sent).
    slow_clients
        Clients disconnected because their queued output passed ``MAX_WRITE_BUFFER_SIZE``.
    syntax_errors
        Malformed (including over-long) lines received.
    """

    __slots__ = (
        "name",
        "accepted",
        "dropped",
        "_by_name",
        "informs",
        "bytes_written",
        "slow_clients",
        "syntax_errors",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.accepted = 0
        self.dropped = 0
        # request name -> reply status word -> latency bucket counts and sum
        self._by_name: dict[str, dict[bytes, list[float]]] = {}
        self.informs = 0
        self.bytes_written = 0
        self.slow_clients = 0
        self.syntax_errors = 0

    # One method per event, each called from one place in the server.

    def connection_accepted(self) -> None:
        """A client connected."""
        self.accepted += 1

    def connection_dropped(self) -> None:
        """A client's connection closed (for whatever reason)."""
        self.dropped += 1

    def request_done(self, name: str, status: bytes, started: float) -> None:
        """A reply with first argument `status` went out for request `name`.

        `started` is the :func:`time.perf_counter` reading taken when the batch of requests
        that dispatched it began (0.0: dispatched before metrics were on; latency unknown,
        counted as 0).
        """
        # RequestStats.observe inlined, keyed by the raw status (mapped to a result label
        # when scraped): this runs for every request, so each step counts.
        seconds = _clock() - started if started else 0.0
        try:
            slots = self._by_name[name][status]
        except KeyError:
            slots = self._by_name.setdefault(name, {}).setdefault(status, _new_slots())
        slots[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        slots[_NBUCKETS] += seconds

    @property
    def requests(self) -> RequestStats:
        """Requests by name and result (``ok``, ``fail``, ``invalid``), with latencies."""
        merged = RequestStats()
        for name, by_status in list(self._by_name.items()):
            for status, slots in list(by_status.items()):
                into = merged.by_key.setdefault((name, reply_result(status)), _new_slots())
                for i, v in enumerate(list(slots)):
                    into[i] += v
        return merged

    def unknown_request(self) -> None:
        """An unknown request was answered ``invalid`` at once."""
        self.request_done(UNKNOWN_REQUEST, b"invalid", _clock())

    def slow_client(self) -> None:
        """A client was cut off for not reading its output."""
        self.slow_clients += 1

    def syntax_error(self) -> None:
        """A malformed line arrived."""
        self.syntax_errors += 1


class ClientStats:
    """What a client (or a resource) counts while metrics are on.

    Attributes
    ----------
    name
        Value of the ``client`` (or ``resource``) label.
    requests
        Requests by name and result (``ok``, ``fail``, ``invalid``, ``timeout``, ``lost``),
        with latencies in seconds.
    connects
        Connections made; reconnections are all but the first.
    connected
        Whether connected now.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = RequestStats()
        self.connects = 0
        self.connected = False

    @property
    def reconnects(self) -> int:
        """Connections made after the first."""
        return max(0, self.connects - 1)

    @property
    def timeouts(self) -> int:
        """Requests that timed out."""
        return sum(
            int(sum(slots[:_NBUCKETS]))
            for _, result, slots in self.requests.items()
            if result == "timeout"
        )

    def connection_made(self) -> None:
        """The client connected."""
        self.connects += 1
        self.connected = True

    def connection_lost(self) -> None:
        """The client's connection dropped."""
        self.connected = False

    def track(self, name: str, future: Any) -> None:
        """Count request `name` when `future` (its ``(reply, informs)`` future) resolves."""
        started = _clock()
        future.add_done_callback(lambda f: self._done(name, f, started))

    def reply_received(self, name: str, reply: Any, started: float) -> None:
        """Count request `name`, whose reply (a Message) came after `started` (perf_counter).

        A ``fail`` reply the client made up for a timeout counts as ``timeout``.
        """
        self.requests.observe(name, _reply_result(reply), _clock() - started)

    def _done(self, name: str, future: Any, started: float) -> None:
        self.requests.observe(name, _future_result(future), _clock() - started)


class ResourceStats(ClientStats):
    """A resource's counters: those of a client, plus its sync state.

    Attributes
    ----------
    state
        ``disconnected``, ``syncing`` or ``synced``.
    sync_seconds
        How long the last sync took (start of that sync to synced: from the connection for
        the first, from ``#interface-changed`` for a re-sync), or None before the first.
    """

    STATES: Final = ("disconnected", "syncing", "synced")

    def __init__(self, name: str, state: str = "disconnected") -> None:
        super().__init__(name)
        self.state = state
        if state != "disconnected":
            self.connection_made()
        self.sync_seconds: float | None = None
        self._sync_started = 0.0

    def state_changed(self, state: str) -> None:
        """The resource went to `state`."""
        old, self.state = self.state, state
        if state == "syncing" and old != "syncing":
            if old == "disconnected":
                self.connection_made()
            # Every sync is timed from its own start: a re-sync (#interface-changed) is not
            # timed from the connection, which would grow with uptime.
            self._sync_started = _clock()
        elif state == "synced" and old == "syncing":
            self.sync_seconds = _clock() - self._sync_started
        elif state == "disconnected":
            self.connection_lost()


def _reply_result(reply: Any) -> str:
    """The ``result`` label of a reply message a client received (or made up)."""
    from ..client import is_timeout_reply  # here, so this module needs only the stdlib

    if is_timeout_reply(reply):
        return "timeout"
    return reply_result(reply.arguments[0] if reply.arguments else b"")


def _future_result(future: Any) -> str:
    """The ``result`` label of a finished request future."""
    from ..errors import ConnectionLost, FailReplyError, InvalidReply, RequestTimeout

    if future.cancelled():
        return "lost"
    exc = future.exception()
    if exc is None:
        reply = future.result()
        # A KATCPReply (resources) or a (reply, informs) tuple (clients).
        return _reply_result(reply.reply if hasattr(reply, "reply") else reply[0])
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, FailReplyError):
        return "fail"
    if isinstance(exc, InvalidReply):
        return "invalid"
    if isinstance(exc, ConnectionLost):
        return "lost"
    return "fail"
