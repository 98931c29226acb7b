"""Sensor sampling on the server's event loop.

Two pieces:

* :class:`TimerScheduler` — the ``scheduler`` that ``katcpx.sampling`` strategies are given.
  All timers live in one heap and are driven by a single loop timer, so thousands of
  ``period`` strategies cost one ``loop.call_at`` handle, not one per (client, sensor).
* :class:`SamplingManager` — owns sampling: it builds each client's strategies with its own
  callback, keeps which strategy each client has on each sensor, attaches a single
  observer per sampled sensor, moves updates from any thread onto the loop through the
  server's :class:`~katcpx.crossing.LoopBinding` (batched), and formats each reading once.
* :class:`ReadingFormatter` — the manager's one formatter and one cache of sensor informs:
  it serves both ``#sensor-status`` (sampling) and ``#sensor-value`` (``?sensor-value``).

A sensor update's path: ``Sensor.set_value`` → the manager's observer → the manager's
``dispatch`` (on the loop) → the strategy's ``update`` → the manager's ``send_status`` →
the formatter's cached line → ``client.send_bytes`` (the connection and its transport).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable, Sequence
from threading import get_ident
from typing import TYPE_CHECKING, Any, Protocol

from ..codec import wire_argument
from ..crossing import LoopBinding
from ..sampling import SampleStrategy, SamplingError, strategy_exists

if TYPE_CHECKING:
    from ..sensor import Reading, Sensor

__all__ = [
    "TimerScheduler",
    "TimerHandle",
    "ReadingFormatter",
    "SamplingManager",
    "SamplingClient",
]


class TimerHandle:
    """A timer from :meth:`TimerScheduler.call_at`; :meth:`cancel` stops it."""

    __slots__ = ("when", "callback", "cancelled", "_scheduler")

    def __init__(self, when: float, callback: Callable[[], Any], scheduler: TimerScheduler):
        self.when = when
        self.callback = callback
        self.cancelled = False
        self._scheduler = scheduler

    def cancel(self) -> None:
        """Cancel the timer (no-op when it already ran or was cancelled)."""
        if not self.cancelled:
            self.cancelled = True
            self._scheduler.note_cancelled()


class TimerScheduler:
    """Many timers on one loop timer.

    Times are on the `clock` time base (the loop's monotonic ``loop.time`` by default). Timers due within `resolution` of each other run in the same wake-up,
    which is what keeps a large set of period strategies cheap.

    Parameters
    ----------
    loop
        The event loop the timers run on. Every method must be called on its thread.
    clock
        Time source the `when` arguments refer to.
    resolution
        Timers due up to this many seconds in the future run together with due ones.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] | None = None,
        resolution: float = 0.001,
    ) -> None:
        self._loop = loop
        self.clock = clock if clock is not None else loop.time
        self._resolution = resolution
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = float("inf")
        self._cancelled = 0

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    @property
    def loop_timers(self) -> int:
        """Number of loop timers in use (0 or 1), for tests and diagnostics."""
        return 0 if self._timer is None else 1

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle:
        """Run `callback()` on the loop at time `when` (on the scheduler's clock)."""
        handle = TimerHandle(when, callback, self)
        heapq.heappush(self._heap, (when, next(self._counter), handle))
        if when < self._timer_when:
            self._arm(when)
        return handle

    def call_later(self, delay: float, callback: Callable[[], Any]) -> TimerHandle:
        """Run `callback()` after `delay` seconds."""
        return self.call_at(self.clock() + delay, callback)

    def close(self) -> None:
        """Cancel every timer and the loop timer."""
        for _, _, handle in self._heap:
            handle.cancelled = True
        self._heap.clear()
        self._cancelled = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = float("inf")

    def note_cancelled(self) -> None:
        """Count one cancelled timer (its handle calls this); compacts the heap lazily."""
        self._cancelled += 1
        # Lazy deletion keeps cancel O(1); compact when dead entries dominate.
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_when = when
        delay = max(0.0, when - self.clock())
        self._timer = self._loop.call_at(self._loop.time() + delay, self._run)

    def _run(self) -> None:
        self._timer = None
        self._timer_when = float("inf")
        heap = self._heap
        limit = self.clock() + self._resolution
        while heap and heap[0][0] <= limit:
            _, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                self._cancelled -= 1
                continue
            handle.cancelled = True  # ran: a later cancel() must not count it
            try:
                handle.callback()
            except Exception as exc:  # a broken strategy must not stop the others
                self._loop.call_exception_handler(
                    {
                        "message": "sampling timer callback failed",
                        "handle": handle,
                        "exception": exc,
                    }
                )
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap:
            self._arm(heap[0][0])


class ReadingFormatter:
    """Formats sensor readings for one protocol version, each reading once.

    Parameters
    ----------
    major : int
        KATCP major version of the informs (timestamps in ms and v4 statuses before 5).

    Notes
    -----
    The cache holds one entry per sensor: its last formatted reading, keyed by the
    reading's identity (readings are immutable tuples, and a sensor stores a new one on
    every set). It is bounded by the number of sensors; :meth:`forget` drops a removed one.
    Use it from one thread (the server's loop).
    """

    __slots__ = ("major", "_cache")

    def __init__(self, major: int = 5) -> None:
        self.major = major
        # sensor -> (reading, its escaped "ts 1 name status value" tail)
        self._cache: dict[Sensor, tuple[Reading, bytes]] = {}

    def _tail(self, sensor: Sensor, reading: Reading) -> bytes:
        cached = self._cache.get(sensor)
        if cached is not None and cached[0] is reading:
            return cached[1]
        timestamp, status, value = sensor.format_reading(reading, self.major)
        name = wire_argument(sensor.name.encode("utf-8"))
        tail = b"%s 1 %s %s %s" % (timestamp, name, status, wire_argument(value))
        self._cache[sensor] = (reading, tail)
        return tail

    def status_line(self, sensor: Sensor, reading: Reading) -> bytes:
        """The ``#sensor-status`` wire line (with its ``\\n``) of `reading` of `sensor`."""
        return b"#sensor-status %s\n" % self._tail(sensor, reading)

    def value_line(self, sensor: Sensor, mid: bytes | None = None) -> bytes:
        """The ``#sensor-value`` wire line (without ``\\n``) of `sensor`'s current reading.

        Parameters
        ----------
        mid : bytes, optional
            The message id of the ``?sensor-value`` request it answers.
        """
        tail = self._tail(sensor, sensor.read())
        if mid is None:
            return b"#sensor-value %s" % tail
        return b"#sensor-value[%s] %s" % (mid, tail)

    def forget(self, sensor: Sensor) -> None:
        """Drop `sensor`'s entry (it was removed from the server)."""
        self._cache.pop(sensor, None)


#: A ``katcpx.sampling`` strategy (built with ``observe=False``).
Strategy = SampleStrategy


class SamplingClient(Protocol):
    """What the manager needs of a client connection: a way to send wire bytes."""

    def send_bytes(self, data: bytes) -> None:
        """Queue formatted wire bytes for the client (on the loop)."""


class _SensorObserver:
    """The one observer the manager attaches to a sampled sensor.

    ``update`` may be called from any thread; updates from other threads reach the loop
    through the server's binding, which wakes the loop once per batch.
    """

    __slots__ = ("manager", "sensor")

    def __init__(self, manager: SamplingManager, sensor: Sensor) -> None:
        self.manager = manager
        self.sensor = sensor

    def update(self, sensor: Sensor, reading: Any) -> None:
        manager = self.manager
        # The binding's on_loop() inline: this runs for every reading of every sensor.
        if get_ident() == manager.binding.thread_id:
            manager.dispatch(sensor, reading)
        else:
            manager.binding.call(manager.dispatch, sensor, reading)


class SamplingManager:
    """Per-client, per-sensor sampling strategies, all on one event loop.

    Parameters
    ----------
    binding : LoopBinding
        The server's loop binding: the loop the strategies and timers run on, and the way
        sensor updates made on other threads reach it. Every method but the observers'
        runs on that loop; the scheduler is made on first use, once the binding is bound.
    major : int
        KATCP major version: the strategies that exist, parameter units (ms before v5) and
        the timestamp format.
    clock : callable, optional
        Time source for strategies and the timer scheduler (default: the loop's clock).

    Notes
    -----
    Formatting: :attr:`formatter` formats each reading once, however many clients receive
    it, and serves ``#sensor-value`` from the same cache.
    """

    def __init__(
        self,
        binding: LoopBinding,
        major: int = 5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.binding = binding
        self.major = major
        self.formatter = ReadingFormatter(major)
        self._clock = clock
        self._scheduler: TimerScheduler | None = None
        #: client connection -> {sensor: strategy}
        self.by_client: dict[Any, dict[Sensor, Strategy]] = {}
        #: sensor -> {client connection: strategy}
        self.by_sensor: dict[Sensor, dict[Any, Strategy]] = {}
        self._observers: dict[Sensor, _SensorObserver] = {}

    @property
    def scheduler(self) -> TimerScheduler:
        """The one timer scheduler of every strategy (made once the binding is bound).

        Raises
        ------
        RuntimeError
            If the binding has no loop yet.
        """
        if self._scheduler is None:
            loop = self.binding.loop
            if loop is None:
                raise RuntimeError("the sampling manager's loop binding is not bound")
            self._scheduler = TimerScheduler(loop, self._clock)
        return self._scheduler

    @property
    def clock(self) -> Callable[[], float]:
        """The strategies' clock (the scheduler's), in seconds."""
        return self.scheduler.clock

    # -- formatting --------------------------------------------------------------------

    def send_status(self, client: SamplingClient, sensor: Sensor, reading: Reading) -> None:
        """Send `client` the ``#sensor-status`` of `reading`: every strategy's callback."""
        client.send_bytes(self.formatter.status_line(sensor, reading))

    # -- strategies --------------------------------------------------------------------

    def make_strategy(
        self, client: SamplingClient, sensor: Sensor, name: str | bytes, params: Sequence[Any]
    ) -> Strategy:
        """Build (not start) `client`'s strategy `name` on `sensor`, reporting to it.

        Parameters are in the units of :attr:`major` (ms before v5), as the client sent
        them.

        Raises
        ------
        SamplingError
            For a strategy that does not exist (in this version), or bad parameters; the
            text is fit for the ``!sensor-sampling fail`` reply (katcp-python's texts).
        """
        raw = name.encode("ascii", "replace") if isinstance(name, str) else name
        shown = raw.decode("utf-8", "replace")
        if raw not in SampleStrategy.SAMPLING_LOOKUP_REV:
            raise SamplingError(f"Unknown strategy name: {shown}.")
        if not strategy_exists(raw, self.major):
            raise SamplingError(f"Strategy {shown} not allowed for version {self.major} of katcp")
        return SampleStrategy.get_strategy(
            raw,
            functools.partial(self.send_status, client),
            sensor,
            *params,
            clock=self.clock,
            scheduler=self.scheduler,
            major=self.major,
            observe=False,
        )

    def set_strategies(
        self,
        client: SamplingClient,
        sensors: Sequence[Sensor],
        name: str | bytes,
        params: Sequence[Any],
    ) -> tuple[bytes, list[bytes]]:
        """Give `client` strategy `name` on every sensor of `sensors`, all or nothing.

        Starting a strategy sends its first ``#sensor-status`` at once (before the reply).

        Returns
        -------
        tuple
            The strategy's name and parameters as formatted for the reply.

        Raises
        ------
        SamplingError
            As :meth:`make_strategy`; then no strategy of `client` has changed.
        """
        new = [(sensor, self.make_strategy(client, sensor, name, params)) for sensor in sensors]
        for sensor, strategy in new:
            is_none = strategy.get_sampling() == SampleStrategy.NONE
            self.set_strategy(client, sensor, None if is_none else strategy)
        return new[-1][1].get_sampling_formatted()

    def get_strategy(self, client: Any, sensor: Sensor) -> Strategy | None:
        """The strategy `client` has on `sensor`, or None."""
        return self.by_client.get(client, {}).get(sensor)

    def set_strategy(self, client: Any, sensor: Sensor, strategy: Strategy | None) -> None:
        """Replace `client`'s strategy on `sensor` (None removes it) and start the new one."""
        self._drop(client, sensor)
        if strategy is None:
            return
        self.by_client.setdefault(client, {})[sensor] = strategy
        self.by_sensor.setdefault(sensor, {})[client] = strategy
        if sensor not in self._observers:
            observer = _SensorObserver(self, sensor)
            self._observers[sensor] = observer
            sensor.attach(observer)
        strategy.start()

    def strategy_counts(self) -> dict[str, int]:
        """Active strategies by name (``event``, ``period``, ...); a snapshot, any thread."""
        counts: dict[str, int] = {}
        for strategies in list(self.by_client.values()):
            for strategy in list(strategies.values()):
                name = strategy.get_sampling_formatted()[0].decode()
                counts[name] = counts.get(name, 0) + 1
        return counts

    def clear_client(self, client: Any, remove: bool = True) -> None:
        """Cancel all of `client`'s strategies (and forget the client if `remove`)."""
        strategies = self.by_client.get(client)
        if strategies:
            for sensor in list(strategies):
                self._drop(client, sensor)
        if remove:
            self.by_client.pop(client, None)

    def remove_sensor(self, sensor: Sensor) -> None:
        """Cancel every client's strategy on `sensor`, detach from it and forget it."""
        for client in list(self.by_sensor.get(sensor, ())):
            self._drop(client, sensor)
        self._detach(sensor)
        self.formatter.forget(sensor)

    def replace_sensor(self, old: Sensor, new: Sensor) -> list[tuple[Any, SamplingError]]:
        """Move every client's strategy on `old` onto `new`, a sensor replacing it.

        Each client keeps its strategy's kind and parameters on `new`, started as if just
        set, so it gets `new`'s current reading at once (spec 5.1 section 4.2: the sensor
        was ``modified``, its samplers are the clients' business, not the device's).

        Returns
        -------
        list of (client, SamplingError)
            The strategies that do not fit `new` (say ``differential`` on a sensor that is
            now a string): those are dropped, and the caller reports them.
        """
        moved = [
            (client, strategy.get_sampling_formatted())
            for client, strategy in self.by_sensor.get(old, {}).items()
        ]
        self.remove_sensor(old)
        failed: list[tuple[Any, SamplingError]] = []
        for client, (name, params) in moved:
            try:
                strategy = self.make_strategy(client, new, name, params)
            except SamplingError as exc:
                failed.append((client, exc))
                continue
            self.set_strategy(client, new, strategy)
        return failed

    def close(self) -> None:
        """Cancel everything (server shutdown)."""
        for client in list(self.by_client):
            self.clear_client(client)
        for sensor in list(self._observers):
            self._detach(sensor)
        if self._scheduler is not None:
            self._scheduler.close()

    def _drop(self, client: Any, sensor: Sensor) -> None:
        strategies = self.by_client.get(client)
        old = strategies.pop(sensor, None) if strategies else None
        if old is None:
            return
        old.cancel()
        clients = self.by_sensor.get(sensor)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self.by_sensor[sensor]
                self._detach(sensor)

    def _detach(self, sensor: Sensor) -> None:
        self.by_sensor.pop(sensor, None)
        observer = self._observers.pop(sensor, None)
        if observer is not None:
            sensor.detach(observer)

    # -- updates -----------------------------------------------------------------------

    def dispatch(self, sensor: Sensor, reading: Any) -> None:
        """Hand a sensor update to every strategy that observes it (on the loop)."""
        clients = self.by_sensor.get(sensor)
        if not clients:
            return
        for strategy in list(clients.values()):
            if not strategy.OBSERVE_UPDATES:  # e.g. period: timers only
                continue
            try:
                strategy.update(sensor, reading)
            except Exception as exc:
                loop = self.binding.loop
                if loop is not None:
                    loop.call_exception_handler(
                        {
                            "message": f"sampling strategy update failed for sensor {sensor.name}",
                            "exception": exc,
                        }
                    )
