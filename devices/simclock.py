"""Simulation clocks.

A simulated device never reads the wall clock itself: it is handed a clock whose ``now()``
returns *simulation* seconds. :class:`SimClock` runs ``speed`` times faster than its time
source, so a 20-minute cool-down can be watched in 12 seconds; :class:`ManualClock` only moves
when told to, which makes tests deterministic and free of sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SimClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells simulation time in seconds."""

    def now(self) -> float:
        """Return the current simulation time in seconds."""
        ...

    def __call__(self) -> float:
        """Return the current simulation time (same as :meth:`now`)."""
        ...


class SimClock:
    """Simulation time that runs ``speed`` times faster than a real time source.

    Parameters
    ----------
    speed
        Simulated seconds per source second; must be positive.
    start
        Simulation time at construction. ``None`` starts at the source's current reading, so
        that at ``speed=1`` simulation time equals wall-clock time.
    time_source
        Real time in seconds, e.g. :func:`time.time` (default) or :func:`time.monotonic`.

    Notes
    -----
    Changing :attr:`speed` re-bases the clock so simulation time stays continuous. The clock
    never runs backwards, even if the source does (NTP steps on ``time.time``).
    """

    def __init__(
        self,
        speed: float = 1.0,
        start: float | None = None,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        _check_speed(speed)
        self._source = time_source
        self._speed = float(speed)
        self._origin_real = float(time_source())
        self._origin_sim = self._origin_real if start is None else float(start)
        self._last = self._origin_sim

    @property
    def speed(self) -> float:
        """Simulated seconds per source second."""
        return self._speed

    @speed.setter
    def speed(self, speed: float) -> None:
        _check_speed(speed)
        # Re-base at the current instant so the change only affects the future.
        now_sim = self.now()
        self._origin_real = float(self._source())
        self._origin_sim = now_sim
        self._speed = float(speed)

    def now(self) -> float:
        """Return the current simulation time in seconds."""
        t = self._origin_sim + (float(self._source()) - self._origin_real) * self._speed
        if t < self._last:
            t = self._last
        self._last = t
        return t

    def __call__(self) -> float:
        """Return the current simulation time (same as :meth:`now`)."""
        return self.now()

    def sim_delay(self, real_seconds: float) -> float:
        """Return how many simulated seconds pass during ``real_seconds`` of source time."""
        return real_seconds * self._speed

    def real_delay(self, sim_seconds: float) -> float:
        """Return how many source seconds it takes for ``sim_seconds`` to pass.

        Useful for scheduling the next model update on a real event loop.
        """
        return sim_seconds / self._speed

    def __repr__(self) -> str:
        return f"SimClock(speed={self._speed!r}, now={self.now()!r})"


class ManualClock:
    """A clock that only moves when told to; for tests and scripted scenarios.

    Parameters
    ----------
    start
        Initial simulation time in seconds.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        """Return the current simulation time in seconds."""
        return self._t

    def __call__(self) -> float:
        """Return the current simulation time (same as :meth:`now`)."""
        return self._t

    def advance(self, dt: float) -> float:
        """Move the clock forward by ``dt`` seconds and return the new time.

        Raises
        ------
        ValueError
            If ``dt`` is negative: simulation time never runs backwards.
        """
        if dt < 0:
            raise ValueError(f"cannot advance a clock by a negative interval ({dt!r} s)")
        self._t += float(dt)
        return self._t

    def set(self, t: float) -> None:
        """Set the clock to ``t``, which must not be earlier than the current time."""
        if t < self._t:
            raise ValueError(f"cannot move the clock back from {self._t!r} to {t!r}")
        self._t = float(t)

    def __repr__(self) -> str:
        return f"ManualClock({self._t!r})"


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError(f"clock speed must be positive, got {speed!r}")
