"""The differential and rate-limited sampling strategies of spec 5.1 section 7.1, table 9
(``differential``, ``event-rate``, ``differential-rate``; ``katcpx.sampling``).

Public names are re-exported by :mod:`katcpx.sampling`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ._sampling_core import (
    InformCallback,
    SampleEvent,
    SampleStrategy,
    SamplingError,
    TimerHandle,
    parse_seconds,
    plain_number,
)
from .codec import show_argument
from .sensor import Reading, Sensor

__all__ = [
    "SampleDifferential",
    "SampleEventRate",
    "SampleDifferentialRate",
]


def _parse_difference(sensor: Sensor, param: Any, strategy: str, major: int) -> Any:
    """The ``difference`` parameter: an int for integer sensors, else a float (seconds)."""
    stype = Sensor.SENSOR_TYPE_LOOKUP[sensor.stype]
    if stype not in (Sensor.INTEGER, Sensor.FLOAT, Sensor.TIMESTAMP):
        # Spec table 9 allows differential strategies for integer and float sensors only;
        # timestamp sensors are accepted too, as katcp-python does.
        raise SamplingError(
            f"{strategy} strategy needs a numeric sensor (integer, float or timestamp), "
            f"not a {sensor.stype} sensor"
        )
    param = plain_number(param, "difference")
    if stype == Sensor.TIMESTAMP:
        difference: Any = parse_seconds(param, "difference", major)
    elif isinstance(param, bytes):
        try:
            difference = Sensor.parse_params(stype, [param])[0]
        except ValueError:
            raise SamplingError(
                f"difference must be {'an integer' if stype == Sensor.INTEGER else 'a number'} "
                f"for {sensor.stype} sensors, not {show_argument(param)}"
            ) from None
    elif stype == Sensor.INTEGER:
        if not isinstance(param, int):
            raise SamplingError(
                f"difference must be an integer for integer sensors, not {show_argument(param)}"
            )
        difference = param
    else:
        difference = float(param)
    if isinstance(difference, float) and not math.isfinite(difference):
        raise SamplingError(f"difference must be finite, not {show_argument(param)}")
    if difference <= 0:
        raise SamplingError("difference must be positive")
    return difference


class _DifferenceTest:
    """The change test of the differential strategies: the status changed, or the value
    moved by more than the difference from the last reported value."""

    _last_status: int | None
    _last_value: Any
    _difference: Any

    def _changed(self, reading: Reading) -> bool:
        if reading.status != self._last_status:
            return True
        try:
            return bool(abs(reading.value - self._last_value) > self._difference)
        except TypeError:  # a value set() let through unchecked, e.g. None with failure
            return bool(reading.value != self._last_value)


class SampleDifferential(_DifferenceTest, SampleEvent):
    """The ``differential`` strategy: report when the value moves by more than `difference`
    from the last reported value, or the status changes.

    For integer, float and timestamp sensors (a timestamp difference is in seconds, or
    milliseconds before v5).
    """

    STRATEGY = SampleStrategy.DIFFERENTIAL
    PARAM_NAMES = ("difference",)

    def __init__(
        self, inform_callback: InformCallback, sensor: Sensor, *params: Any, **kwargs: Any
    ) -> None:
        super().__init__(inform_callback, sensor, *params, **kwargs)
        self._difference = _parse_difference(sensor, params[0], "differential", self._major)


class SampleEventRate(SampleStrategy):
    """The ``event-rate`` strategy: report changes, but at most once per `shortest-period`
    and at least once per `longest-period`.

    A change within `shortest-period` of the last report is held back and sent (as the
    newest reading) when `shortest-period` has passed, unless the value went back to what
    was last reported. New in KATCP v5.
    """

    STRATEGY = SampleStrategy.EVENT_RATE
    OBSERVE_UPDATES = True
    PARAM_NAMES: ClassVar[tuple[str, ...]] = ("shortest-period", "longest-period")
    NEEDS_SCHEDULER = True

    def __init__(
        self, inform_callback: InformCallback, sensor: Sensor, *params: Any, **kwargs: Any
    ) -> None:
        super().__init__(inform_callback, sensor, *params, **kwargs)
        shortest, longest = params[-2:]
        self._shortest = parse_seconds(shortest, "shortest-period", self._major)
        self._longest = parse_seconds(longest, "longest-period", self._major)
        if self._shortest < 0:
            raise SamplingError("shortest-period must not be negative")
        if self._longest <= 0:
            raise SamplingError("longest-period must be positive")
        if self._shortest > self._longest:
            # The spec leaves this undefined; refusing it is the only unsurprising choice.
            raise SamplingError("shortest-period must not exceed longest-period")
        self._sched = self._need_scheduler()
        self._last_status: int | None = None
        self._last_value: Any = None
        self._last_time = 0.0
        self._pending: Reading | None = None
        self._short_handle: TimerHandle | None = None
        self._long_handle: TimerHandle | None = None
        self._long_when = 0.0
        self._short_callback = self._short_due
        self._long_callback = self._long_due

    def _send(self, reading: Reading, now: float) -> None:
        self._last_status = reading.status
        self._last_value = reading.value
        self._last_time = now
        self._pending = None
        self.inform(reading)

    def _start(self) -> None:
        now = self._clock()
        self._send(self._sensor.read(), now)
        self._long_when = now + self._longest
        self._long_handle = self._sched.call_at(self._long_when, self._long_callback)

    def _changed(self, reading: Reading) -> bool:
        return reading.status != self._last_status or reading.value != self._last_value

    def update(self, sensor: Sensor, reading: Reading) -> None:
        """Report `reading` now, later, or not at all, as the strategy dictates."""
        if self._cancelled:
            return
        if self._pending is not None:
            self._pending = reading  # a held-back report is due; it will carry the newest
            return
        if not self._changed(reading):
            return
        now = self._clock()
        not_before = self._last_time + self._shortest
        if now >= not_before:
            self._send(reading, now)
        else:
            self._pending = reading
            self._short_handle = self._sched.call_at(not_before, self._short_callback)

    def _short_due(self) -> None:
        self._short_handle = None
        pending = self._pending
        if self._cancelled or pending is None:
            return
        if self._changed(pending):
            self._send(pending, self._clock())
        else:
            self._pending = None

    def _long_due(self) -> None:
        # Reports do not move this timer (that would cost a cancel and call_at per report);
        # it wakes at the old deadline and moves itself on if a report came since. Whether
        # one came is judged from the deadlines, not the clock: schedulers that batch timers
        # fire slightly early, and a clock test would then re-arm the same deadline.
        self._long_handle = None
        if self._cancelled:
            return
        if self._last_time + self._longest <= self._long_when:
            self._send(self._sensor.read(), self._clock())
        self._long_when = self._last_time + self._longest
        self._long_handle = self._sched.call_at(self._long_when, self._long_callback)

    def _cancel_timers(self) -> None:
        for handle in (self._short_handle, self._long_handle):
            if handle is not None:
                handle.cancel()
        self._short_handle = self._long_handle = None
        self._pending = None


class SampleDifferentialRate(_DifferenceTest, SampleEventRate):
    """The ``differential-rate`` strategy: as ``event-rate``, but a change only counts when
    the value moves by more than `difference` from the last reported value (or the status
    changes). For integer, float and timestamp sensors. New in KATCP v5.
    """

    STRATEGY = SampleStrategy.DIFFERENTIAL_RATE
    PARAM_NAMES = ("difference", "shortest-period", "longest-period")

    def __init__(
        self, inform_callback: InformCallback, sensor: Sensor, *params: Any, **kwargs: Any
    ) -> None:
        super().__init__(inform_callback, sensor, *params, **kwargs)
        self._difference = _parse_difference(sensor, params[0], "differential-rate", self._major)
