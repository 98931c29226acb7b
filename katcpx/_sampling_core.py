"""The sampling strategy base class, its schedulers, its loop binding and the basic strategies
(``none``, ``auto``, ``period``, ``event``) of ``katcpx.sampling``.

Public names are re-exported by :mod:`katcpx.sampling`; see its docstring.

This module is pure logic. Time comes from a ``clock()`` callable and timers from a
:class:`Scheduler` (anything with ``call_at(when, callback)`` returning a handle with
``cancel()``; an asyncio event loop qualifies). The server supplies both; tests use
:class:`ManualScheduler`, whose clock only moves when told to.

Threading is the caller's job: ``start``, ``cancel``, ``update`` and the timer callbacks must
all run on one thread. A strategy built with ``observe=True`` (the default) attaches itself to
its sensor, so its ``update`` runs in whichever thread sets the sensor; a server whose sensors
are set from other threads builds strategies with ``observe=False`` and forwards updates
itself on its own thread.

Strategy parameters are in the units of the KATCP major version: seconds from v5,
milliseconds before (spec section 1.1). ``event-rate`` and ``differential-rate`` are new in v5.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from .codec import parse_timestamp, show_argument, show_wire
from .crossing import LoopBinding
from .errors import KatcpError
from .flags import DEFAULT_KATCP_MAJOR, SEC_TS_KATCP_MAJOR, ProtocolFlags
from .sensor import Reading, Sensor

__all__ = [
    "SamplingError",
    "TimerHandle",
    "Scheduler",
    "ManualScheduler",
    "ManualTimer",
    "SampleStrategy",
    "strategy_exists",
    "InformCallback",
    "Clock",
    "plain_number",
    "parse_seconds",
    "SampleNone",
    "SampleAuto",
    "SamplePeriod",
    "SampleEvent",
]

logger = logging.getLogger("katcp.sampling")  # katcp-python's name

InformCallback = Callable[[Sensor, Reading], None]
Clock = Callable[[], float]


def strategy_exists(name: str | bytes, major: int) -> bool:
    """Whether sampling strategy `name` exists in KATCP `major` (spec 5.1 table 9).

    The one table is katcp-python's ``ProtocolFlags.STRATEGIES_V4``/``STRATEGIES_V5``:
    ``event-rate`` and ``differential-rate`` are new in v5.
    """
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    return text in (ProtocolFlags.STRATEGIES_V5 if major >= 5 else ProtocolFlags.STRATEGIES_V4)


#: Strategy constant to the class implementing it (filled as the classes are defined).
_STRATEGY_CLASSES: dict[int, type[SampleStrategy]] = {}


class SamplingError(KatcpError, ValueError):
    """A sampling strategy that cannot be set: unknown name, or bad or missing parameters.

    The message says what is wrong in words fit for a ``!sensor-sampling fail`` reply.
    """


class TimerHandle(Protocol):
    """What :meth:`Scheduler.call_at` returns."""

    def cancel(self) -> None:
        """Stop the callback from running, if it has not run yet."""


class Scheduler(Protocol):
    """Runs callbacks at given times, on the same time base as the strategy's clock."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Arrange for ``callback()`` to run at time `when` (or as soon after as possible)."""


class ManualTimer:
    """A timer of :class:`ManualScheduler`."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the callback from running."""
        self.cancelled = True


class ManualScheduler:
    """A deterministic scheduler and clock for tests: time moves only in :meth:`advance`.

    Parameters
    ----------
    start
        The initial time in seconds.

    Examples
    --------
    >>> sched = ManualScheduler()
    >>> _ = sched.call_at(1.5, lambda: print("tick", sched.time()))
    >>> sched.advance(2.0)
    tick 1.5
    1
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, ManualTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """The current time; pass ``sched.time`` as a strategy's clock."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> ManualTimer:
        """Schedule ``callback()`` at `when`; ties run in the order they were scheduled."""
        timer = ManualTimer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def run_until(self, when: float) -> int:
        """Run every timer due at or before `when`, in time order, moving the clock to each.

        Timers that callbacks schedule are run too if they fall due by `when`.
        The clock ends at `when` (it never goes backwards). Returns how many callbacks ran.
        """
        ran = 0
        heap = self._heap
        while heap and heap[0][0] <= when:
            due, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, due)
            timer.callback()
            ran += 1
        self._now = max(self._now, when)
        return ran

    def advance(self, seconds: float) -> int:
        """Move the clock forward by `seconds`, running timers that fall due."""
        return self.run_until(self._now + seconds)

    @property
    def pending(self) -> int:
        """The number of timers scheduled and not cancelled."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    def next_due(self) -> float | None:
        """The time of the next live timer, or None."""
        for due, _, timer in sorted(self._heap):
            if not timer.cancelled:
                return due
        return None


def _format_param(param: Any) -> bytes:
    if isinstance(param, bytes):
        return param
    if isinstance(param, str):
        return param.encode("ascii", "replace")
    if isinstance(param, int):
        return b"%d" % param
    return repr(float(param)).encode("ascii")


class SampleStrategy:
    """Base class of the sampling strategies; build them with :meth:`get_strategy`.

    Parameters
    ----------
    inform_callback
        Called as ``inform_callback(sensor, reading)`` each time the strategy wants a
        ``#sensor-status`` sent. Exceptions it raises are logged, not propagated.
    sensor
        The sensor to sample.
    *params
        The strategy parameters as received (bytes) or as numbers, in the units of `major`.
    clock
        Returns the current time in seconds, on the scheduler's time base;
        ``time.monotonic`` by default (what asyncio loops use).
    scheduler
        Runs timer callbacks; needed by ``period``, ``event-rate`` and ``differential-rate``.
    major
        KATCP major version of the client: fixes parameter units and allowed strategies
        (:func:`strategy_exists`).
    observe
        If True, :meth:`start` attaches the strategy to the sensor as an observer and
        :meth:`cancel` detaches it. If False the caller must forward sensor updates by
        calling :meth:`update` (on the scheduler's thread).
    ioloop
        katcp-python's binding: a tornado ``IOLoop`` whose clock and timers the strategy uses
        when no `scheduler` is given. Bound strategies behave as katcp-python's: :meth:`start`
        runs on the loop's next turn, and sensor updates from other threads are handed to the
        loop, so `inform_callback` is only ever called on the loop's thread. Without
        `scheduler` and `ioloop`, a strategy made while a loop runs in this thread binds to
        that loop (``IOLoop.current()``); otherwise it is pure and calls back synchronously.
        tornado is imported only for such a binding.

    Raises
    ------
    SamplingError
        For a wrong number of parameters, bad parameter values, a strategy that does not
        suit the sensor type or does not exist in `major`.
    """

    # Strategy constants, with katcp-python's values.
    NONE: ClassVar[int] = 0
    AUTO: ClassVar[int] = 1
    PERIOD: ClassVar[int] = 2
    EVENT: ClassVar[int] = 3
    DIFFERENTIAL: ClassVar[int] = 4
    EVENT_RATE: ClassVar[int] = 5
    DIFFERENTIAL_RATE: ClassVar[int] = 6

    #: Strategy constant to KATCP name.
    SAMPLING_LOOKUP: ClassVar[dict[int, bytes]] = {
        NONE: b"none",
        AUTO: b"auto",
        PERIOD: b"period",
        EVENT: b"event",
        DIFFERENTIAL: b"differential",
        EVENT_RATE: b"event-rate",
        DIFFERENTIAL_RATE: b"differential-rate",
    }
    #: KATCP name to strategy constant.
    SAMPLING_LOOKUP_REV: ClassVar[dict[bytes, int]] = {v: k for k, v in SAMPLING_LOOKUP.items()}

    #: True if the strategy needs sensor updates.
    OBSERVE_UPDATES: ClassVar[bool] = False
    #: True if the strategy needs timers (without a scheduler it binds to an IOLoop).
    NEEDS_SCHEDULER: ClassVar[bool] = False
    #: This class's strategy constant.
    STRATEGY: ClassVar[int]
    #: Names of the parameters, for error messages.
    PARAM_NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        inform_callback: InformCallback,
        sensor: Sensor,
        *params: Any,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        major: int = DEFAULT_KATCP_MAJOR,
        observe: bool = True,
        ioloop: Any = None,
    ) -> None:
        name = self.SAMPLING_LOOKUP[self.STRATEGY].decode()
        #: katcp-python's attribute: the tornado IOLoop a loop-bound strategy runs on.
        self.ioloop: Any = None
        #: How a loop-bound strategy crosses onto its loop (bound once it starts there).
        self.loop_binding: LoopBinding | None = None
        if scheduler is None and (
            ioloop is not None or self.NEEDS_SCHEDULER or _loop_running_here()
        ):
            self.ioloop = ioloop if ioloop is not None else _current_ioloop()
            self.loop_binding = LoopBinding()
            clock = self.ioloop.time
            scheduler = _IOLoopScheduler(self.ioloop)
        if not strategy_exists(name, major):
            raise SamplingError(f"the {name!r} strategy needs KATCP version 5 or later")
        if len(params) != len(self.PARAM_NAMES):
            if self.PARAM_NAMES:
                wanted = (
                    f"{len(self.PARAM_NAMES)} parameter{'s' if len(self.PARAM_NAMES) > 1 else ''}"
                    f" ({' '.join(self.PARAM_NAMES)})"
                )
            else:
                wanted = "no parameters"
            raise SamplingError(f"the {name!r} strategy takes {wanted}, got {len(params)}")
        self._inform_callback = inform_callback
        self._sensor = sensor
        self._params = params
        self._clock: Clock = clock if clock is not None else time.monotonic
        self._scheduler = scheduler
        self._major = major
        self._observe = observe and self.OBSERVE_UPDATES
        if self.loop_binding is not None:
            # The sensor calls observer.update from its setter's thread: hand it to the loop.
            self.update = _on_loop(self.loop_binding, self, type(self).update)  # type: ignore[method-assign,assignment]
        self._started = False
        self._cancelled = False

    @classmethod
    def get_strategy(
        cls,
        strategy_name: str | bytes,
        inform_callback: InformCallback,
        sensor: Sensor,
        *params: Any,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        major: int = DEFAULT_KATCP_MAJOR,
        observe: bool = True,
        ioloop: Any = None,
    ) -> SampleStrategy:
        """Build the strategy called `strategy_name`; see the class for the parameters.

        Raises
        ------
        SamplingError
            For an unknown strategy name or parameters that do not suit it.
        """
        raw = (
            strategy_name.encode("ascii", "replace")
            if isinstance(strategy_name, str)
            else strategy_name
        )
        try:
            strategy_cls = _STRATEGY_CLASSES[cls.SAMPLING_LOOKUP_REV[raw]]
        except KeyError:
            known = ", ".join(n.decode() for n in cls.SAMPLING_LOOKUP.values())
            raise SamplingError(
                f"unknown sampling strategy {show_wire(raw)}; known strategies are {known}"
            ) from None
        return strategy_cls(
            inform_callback,
            sensor,
            *params,
            clock=clock,
            scheduler=scheduler,
            major=major,
            observe=observe,
            ioloop=ioloop,
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "STRATEGY" in cls.__dict__:
            _STRATEGY_CLASSES.setdefault(cls.STRATEGY, cls)

    def _need_scheduler(self) -> Scheduler:
        if self._scheduler is None:
            name = self.SAMPLING_LOOKUP[self.STRATEGY].decode()
            raise TypeError(f"the {name!r} strategy needs a scheduler")
        return self._scheduler

    @property
    def sensor(self) -> Sensor:
        """The sampled sensor."""
        return self._sensor

    def get_sampling(self) -> int:
        """Return the strategy constant (``SampleStrategy.PERIOD`` etc.)."""
        return self.STRATEGY

    def get_sampling_formatted(self) -> tuple[bytes, list[bytes]]:
        """Return the strategy name and parameters as bytes, for the ``?sensor-sampling`` reply.

        Parameters are echoed as the client sent them (katcp-python does the same).
        """
        return self.SAMPLING_LOOKUP[self.STRATEGY], [_format_param(p) for p in self._params]

    def inform(self, reading: Reading) -> None:
        """Pass `reading` to the inform callback, logging (not raising) its errors."""
        try:
            self._inform_callback(self._sensor, reading)
        except Exception:
            logger.exception("inform callback failed for sensor %r", self._sensor.name)

    def update(self, sensor: Sensor, reading: Reading) -> None:
        """Receive a sensor update (the observer interface); a no-op here."""

    def start(self) -> None:
        """Start sampling: attach to the sensor if needed and send the first reading.

        Spec 7.1: every strategy but ``none`` reports the current value at once.

        Raises
        ------
        RuntimeError
            If the strategy was started before or cancelled.
        """
        if self._started or self._cancelled:
            raise RuntimeError("a sampling strategy can only be started once")
        self._started = True
        if self.ioloop is not None:
            self.ioloop.add_callback(self._first_run)
            return
        if self._observe:
            self._sensor.attach(self)
        self._start()

    def _first_run(self) -> None:
        """Start a loop-bound strategy, on its loop's thread."""
        assert self.loop_binding is not None  # only loop-bound strategies start here
        self.loop_binding.bind(self.ioloop.asyncio_loop)
        if self._cancelled:
            return
        if self._observe:
            self._sensor.attach(self)
        self._start()

    def _start(self) -> None:
        self.inform(self._sensor.read())

    def cancel(self) -> None:
        """Stop sampling: detach from the sensor and cancel timers. Safe to call twice."""
        if self._cancelled:
            return
        self._cancelled = True
        if self._observe and self._started:
            self._sensor.detach(self)
        if self.ioloop is not None:
            self.ioloop.add_callback(self._cancel_timers)
        else:
            self._cancel_timers()

    def _cancel_timers(self) -> None:
        pass

    def __repr__(self) -> str:
        name, params = self.get_sampling_formatted()
        shown = b" ".join([name, *params]).decode("ascii", "replace")
        return f"<{type(self).__name__} {shown!r} on {self._sensor.name!r}>"


def _loop_running_here() -> bool:
    import asyncio  # only to ask; the pure strategies never use it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _current_ioloop() -> Any:
    from tornado.ioloop import IOLoop

    return IOLoop.current()


class _IOLoopScheduler:
    """The scheduler interface over a tornado IOLoop (its ``call_at`` handles cancel)."""

    def __init__(self, ioloop: Any) -> None:
        self._ioloop = ioloop

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self._ioloop.call_at(when, callback)


def _on_loop(
    binding: LoopBinding,
    strategy: SampleStrategy,
    update: Callable[[Any, Sensor, Reading], None],
) -> Callable[[Sensor, Reading], None]:
    """``update`` bound to `strategy`, run on its loop's thread whoever calls it."""

    def update_on_loop(sensor: Sensor, reading: Reading) -> None:
        binding.call_here_or_soon(update, strategy, sensor, reading)

    return update_on_loop


def plain_number(param: Any, what: str) -> Any:
    """Return a strategy parameter as bytes or a number. Refuse parameter types that are neither formatted bytes/str nor numbers."""
    if isinstance(param, bool) or not isinstance(param, (bytes, str, int, float)):
        raise SamplingError(f"{what} must be a number, not {show_argument(param)}")
    return param.encode("ascii", "replace") if isinstance(param, str) else param


def parse_seconds(param: Any, what: str, major: int) -> float:
    """Parse a period given in `major`'s units (ms before v5) into seconds.

    Non-finite values are refused however written: ``inf``, ``nan``, and numbers that
    overflow to infinity such as ``1e400``. There is no lower bound beyond what each
    strategy checks (positive periods): spec 5.1 section 7.1 (table 9) sets none and
    katcp-python 0.9.3 accepts any positive period, so a client may ask for a period as
    small as ``1e-300``; it then gets a ``#sensor-status`` about every loop iteration, only
    on its own connection, whose output flow control bounds what it costs the others.

    Raises
    ------
    SamplingError
        `param` is not a number, or not finite.
    """
    param = plain_number(param, what)
    try:
        seconds = parse_timestamp(param, major) if isinstance(param, bytes) else float(param)
    except (ValueError, OverflowError):
        raise SamplingError(f"{what} must be a number, not {show_argument(param)}") from None
    if not math.isfinite(seconds):
        raise SamplingError(f"{what} must be finite, not {show_argument(param)}")
    if isinstance(param, bytes) or major >= SEC_TS_KATCP_MAJOR:
        return seconds
    return seconds / 1000


class SampleNone(SampleStrategy):
    """The ``none`` strategy: never report."""

    STRATEGY = SampleStrategy.NONE

    def _start(self) -> None:
        pass


class SampleAuto(SampleStrategy):
    """The ``auto`` strategy: report every update of the sensor."""

    STRATEGY = SampleStrategy.AUTO
    OBSERVE_UPDATES = True

    def update(self, sensor: Sensor, reading: Reading) -> None:
        """Report `reading`."""
        if not self._cancelled:
            self.inform(reading)


class SamplePeriod(SampleStrategy):
    """The ``period`` strategy: report the current reading every `period`.

    Ticks stay on a fixed grid (no drift). After a stall of more than a period, missed ticks
    are dropped, not sent in a burst. Each tick costs one ``call_at`` and no other allocation.
    """

    STRATEGY = SampleStrategy.PERIOD
    PARAM_NAMES = ("period",)
    NEEDS_SCHEDULER = True

    def __init__(
        self, inform_callback: InformCallback, sensor: Sensor, *params: Any, **kwargs: Any
    ) -> None:
        super().__init__(inform_callback, sensor, *params, **kwargs)
        self._period = parse_seconds(params[0], "period", self._major)
        if self._period <= 0:
            raise SamplingError("period must be positive")
        self._sched = self._need_scheduler()
        self._handle: TimerHandle | None = None
        self._next = 0.0
        self._tick_callback = self._tick  # bound once, not per tick

    @property
    def period(self) -> float:
        """The period in seconds."""
        return self._period

    def _start(self) -> None:
        now = self._clock()
        self.inform(self._sensor.read())
        self._next = now + self._period
        self._handle = self._sched.call_at(self._next, self._tick_callback)

    def _tick(self) -> None:
        if self._cancelled:
            return
        self.inform(self._sensor.read())
        period = self._period
        self._next += period
        now = self._clock()
        if self._next <= now:
            self._next = now + period
        self._handle = self._sched.call_at(self._next, self._tick_callback)

    def _cancel_timers(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SampleEvent(SampleStrategy):
    """The ``event`` strategy: report whenever the value or the status changes."""

    STRATEGY = SampleStrategy.EVENT
    OBSERVE_UPDATES = True

    _last_status: int | None = None
    _last_value: Any = None

    def _start(self) -> None:
        reading = self._sensor.read()
        self._last_status = reading.status
        self._last_value = reading.value
        self.inform(reading)

    def _changed(self, reading: Reading) -> bool:
        return reading.status != self._last_status or reading.value != self._last_value

    def update(self, sensor: Sensor, reading: Reading) -> None:
        """Report `reading` if it differs from the last reported one."""
        if self._cancelled or not self._changed(reading):
            return
        self._last_status = reading.status
        self._last_value = reading.value
        self.inform(reading)
