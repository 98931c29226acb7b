"""Sensor sampling on the server's event loop.

Two pieces:

* :class:`TimerScheduler` — the ``scheduler`` that ``katcpx.sampling`` strategies are given.
  All timers live in one heap and are driven by a single loop timer, so thousands of
  ``period`` strategies cost one ``loop.call_at`` handle, not one per (client, sensor).
* :class:`SamplingManager` — which strategy each client has on each sensor. It attaches a
  single observer per sampled sensor, moves updates from any thread onto the loop in
  batches, and caches each reading's formatted ``#sensor-status`` line so a reading is
  formatted once however many clients receive it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..crossing import LoopBinding
from ..message import Message
from ..sampling import SampleStrategy

if TYPE_CHECKING:
    from ..sensor import Sensor

__all__ = ["TimerScheduler", "TimerHandle", "SamplingManager"]


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
            self._scheduler._cancelled_one()


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

    def _cancelled_one(self) -> None:
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


#: A ``katcpx.sampling`` strategy (built with ``observe=False``).
Strategy = SampleStrategy


class _SensorObserver:
    """The one observer the manager attaches to a sampled sensor.

    ``update`` may be called from any thread. Updates from foreign threads are queued and
    the loop is woken once per batch rather than once per update.
    """

    __slots__ = ("manager", "sensor")

    def __init__(self, manager: SamplingManager, sensor: Sensor) -> None:
        self.manager = manager
        self.sensor = sensor

    def update(self, sensor: Sensor, reading: Any) -> None:
        manager = self.manager
        if manager.binding.on_loop():
            manager._dispatch(sensor, reading)
        else:
            manager.binding.call(manager._dispatch, sensor, reading)


class SamplingManager:
    """Per-client, per-sensor sampling strategies, all on one event loop.

    Parameters
    ----------
    loop
        The server's event loop.
    major
        KATCP major version, which selects the timestamp format.
    clock
        Time source for strategies and the timer scheduler (default ``loop.time``).
    binding
        How sensor updates made on other threads reach the loop: the server's binding
        (default: one bound to `loop` as run by the calling thread).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        major: int = 5,
        clock: Callable[[], float] | None = None,
        binding: LoopBinding | None = None,
    ) -> None:
        self.loop = loop
        if binding is None:
            binding = LoopBinding()
            binding.bind(loop)
        self.binding = binding
        self.major = major
        self.scheduler = TimerScheduler(loop, clock)
        self.clock = self.scheduler.clock
        #: client connection -> {sensor: strategy}
        self.by_client: dict[Any, dict[Sensor, Strategy]] = {}
        #: sensor -> {client connection: strategy}
        self.by_sensor: dict[Sensor, dict[Any, Strategy]] = {}
        self._observers: dict[Sensor, _SensorObserver] = {}
        self._status_cache: dict[Sensor, tuple[Any, bytes]] = {}

    # -- formatting --------------------------------------------------------------------

    def status_line(self, sensor: Sensor, reading: Any) -> bytes:
        """The ``#sensor-status`` wire line for `reading`, formatted once per reading."""
        cached = self._status_cache.get(sensor)
        if cached is not None and cached[0] is reading:
            return cached[1]
        timestamp, status, value = sensor.format_reading(reading, major=self.major)
        line = bytes(
            Message._new(
                Message.INFORM,
                "sensor-status",
                [timestamp, b"1", sensor.name.encode("utf-8"), status, value],
                None,
            )
        )
        self._status_cache[sensor] = (reading, line)
        return line

    # -- strategies --------------------------------------------------------------------

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

    def clear_client(self, client: Any, remove: bool = True) -> None:
        """Cancel all of `client`'s strategies (and forget the client if `remove`)."""
        strategies = self.by_client.get(client)
        if strategies:
            for sensor in list(strategies):
                self._drop(client, sensor)
        if remove:
            self.by_client.pop(client, None)

    def remove_sensor(self, sensor: Sensor) -> None:
        """Cancel every client's strategy on `sensor` and detach from it."""
        for client in list(self.by_sensor.get(sensor, ())):
            self._drop(client, sensor)
        self._detach(sensor)

    def close(self) -> None:
        """Cancel everything (server shutdown)."""
        for client in list(self.by_client):
            self.clear_client(client)
        for sensor in list(self._observers):
            self._detach(sensor)
        self.scheduler.close()

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
        self._status_cache.pop(sensor, None)
        observer = self._observers.pop(sensor, None)
        if observer is not None:
            sensor.detach(observer)

    # -- updates -----------------------------------------------------------------------

    def _dispatch(self, sensor: Sensor, reading: Any) -> None:
        clients = self.by_sensor.get(sensor)
        if not clients:
            return
        for strategy in list(clients.values()):
            if not strategy.OBSERVE_UPDATES:  # e.g. period: timers only
                continue
            try:
                strategy.update(sensor, reading)
            except Exception as exc:
                self.loop.call_exception_handler(
                    {
                        "message": f"sampling strategy update failed for sensor {sensor.name}",
                        "exception": exc,
                    }
                )
