"""Pieces shared by all simulation models: statuses, thresholds, readings, fault bookkeeping."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

__all__ = [
    "FaultError",
    "SensorSpec",
    "SimModel",
    "Status",
    "Thresholds",
    "Value",
]


class Status(enum.IntEnum):
    """KATCP sensor statuses, numbered as katcp-python's ``Sensor`` constants."""

    UNKNOWN = 0
    NOMINAL = 1
    WARN = 2
    ERROR = 3
    FAILURE = 4
    UNREACHABLE = 5
    INACTIVE = 6


class Value(NamedTuple):
    """One model reading: what a device layer needs to set a sensor.

    Attributes
    ----------
    value
        The reading (float, int, bool or str).
    status
        The KATCP status of the reading.
    timestamp
        Simulation time (s) at which the value was sampled.
    """

    value: Any
    status: Status
    timestamp: float


@dataclass(frozen=True)
class SensorSpec:
    """How a model reading should be exposed as a KATCP sensor.

    Attributes
    ----------
    type
        KATCP sensor type name: ``"float"``, ``"integer"``, ``"boolean"``, ``"discrete"``,
        ``"string"``.
    description
        Human-readable description.
    units
        Units string ("" if none).
    params
        Range ``[min, max]`` for numeric sensors, or the allowed values of a discrete sensor.
    """

    type: str
    description: str
    units: str = ""
    params: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Thresholds:
    """Map a numeric value to a :class:`Status` by warn and error bounds.

    A value outside ``[error_low, error_high]`` is ``ERROR``; otherwise outside
    ``[warn_low, warn_high]`` it is ``WARN``; otherwise ``NOMINAL``. A bound of ``None`` is not
    checked. NaN maps to ``UNKNOWN``. Bounds are exclusive: a value equal to a bound is on the
    better side.
    """

    warn_low: float | None = None
    warn_high: float | None = None
    error_low: float | None = None
    error_high: float | None = None

    def status(self, value: float) -> Status:
        """Return the status of ``value``."""
        if math.isnan(value):
            return Status.UNKNOWN
        if (self.error_low is not None and value < self.error_low) or (
            self.error_high is not None and value > self.error_high
        ):
            return Status.ERROR
        if (self.warn_low is not None and value < self.warn_low) or (
            self.warn_high is not None and value > self.warn_high
        ):
            return Status.WARN
        return Status.NOMINAL

    def statuses(self, values: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`status`: return an ``int8`` array of statuses for ``values``."""
        values = np.asarray(values, dtype=float)
        out = np.full(values.shape, int(Status.NOMINAL), dtype=np.int8)
        warn = np.zeros(values.shape, dtype=bool)
        if self.warn_low is not None:
            warn |= values < self.warn_low
        if self.warn_high is not None:
            warn |= values > self.warn_high
        err = np.zeros(values.shape, dtype=bool)
        if self.error_low is not None:
            err |= values < self.error_low
        if self.error_high is not None:
            err |= values > self.error_high
        out[warn] = Status.WARN
        out[err] = Status.ERROR
        out[np.isnan(values)] = Status.UNKNOWN
        return out


class FaultError(RuntimeError):
    """A command was refused because an injected fault (or its consequence) prevents it."""


@dataclass
class _FaultState:
    active: dict[str, dict[str, Any]] = field(default_factory=dict)


class SimModel:
    """Base class of the simulation models.

    Subclasses implement :meth:`_advance` (physics over an interval), :meth:`readings`, and
    optionally :meth:`_fault_started` / :meth:`_fault_cleared`; they list their fault kinds,
    each with a one-line description of its behaviour, in :attr:`FAULTS`, and their readings
    in :attr:`SENSORS`.

    Parameters
    ----------
    seed
        Seed for the model's :func:`numpy.random.default_rng`; the same seed and the same
        sequence of calls reproduce a run exactly.
    start_time
        Simulation time (s) of the initial state.
    """

    #: Fault kinds this model understands, mapped to a description of their behaviour.
    FAULTS: ClassVar[Mapping[str, str]] = {}
    #: Readings returned by :meth:`readings`, mapped to how to expose them as sensors.
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = {}

    def __init__(self, *, seed: int | None = None, start_time: float = 0.0) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._time = float(start_time)
        self._faults = _FaultState()

    @property
    def time(self) -> float:
        """Simulation time (s) of the current state."""
        return self._time

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds.

        Raises
        ------
        ValueError
            If ``dt`` is negative or not finite.
        """
        if not (dt >= 0 and math.isfinite(dt)):
            raise ValueError(f"step interval must be finite and non-negative, got {dt!r}")
        if dt == 0:
            return
        self._advance(float(dt))
        self._time += float(dt)

    def advance_to(self, t: float) -> None:
        """Advance the simulation to time ``t``.

        A time at or before :attr:`time` is ignored, so several callers (a periodic update and
        a request handler, say) can share one model without coordinating.
        """
        if t > self._time:
            self.step(t - self._time)

    def _advance(self, dt: float) -> None:
        """Evolve the state by ``dt`` > 0 seconds; :attr:`time` is still the start time."""
        raise NotImplementedError

    # -- faults -----------------------------------------------------------------------------

    @property
    def faults(self) -> frozenset[str]:
        """Kinds of the faults currently injected."""
        return frozenset(self._faults.active)

    def fault_options(self, kind: str) -> Mapping[str, Any]:
        """Return the options an active fault was injected with (empty if not active)."""
        return dict(self._faults.active.get(kind, {}))

    def inject_fault(self, kind: str, **options: Any) -> None:
        """Inject a fault of ``kind`` (one of :attr:`FAULTS`); see the subclass for options.

        Injecting a fault that is already active replaces its options.

        Raises
        ------
        ValueError
            If ``kind`` is not a fault this model knows, or an option is invalid.
        """
        if kind not in self.FAULTS:
            known = ", ".join(sorted(self.FAULTS))
            raise ValueError(f"unknown fault {kind!r} for {type(self).__name__} (known: {known})")
        self._fault_started(kind, options)
        self._faults.active[kind] = dict(options)

    def clear_fault(self, kind: str) -> None:
        """Clear one fault; clearing a fault that is not active does nothing."""
        if kind in self._faults.active:
            options = self._faults.active.pop(kind)
            self._fault_cleared(kind, options)

    def clear_faults(self) -> None:
        """Clear every active fault."""
        for kind in list(self._faults.active):
            self.clear_fault(kind)

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        """Hook: validate ``options`` and apply the immediate effect of a new fault."""
        if options:
            raise ValueError(f"fault {kind!r} takes no options, got {sorted(options)}")

    def _fault_cleared(self, kind: str, options: Mapping[str, Any]) -> None:
        """Hook: undo the lasting effect of a fault being cleared."""

    # -- readings ---------------------------------------------------------------------------

    def sensor_specs(self) -> Mapping[str, SensorSpec]:
        """Return how each reading should be exposed as a sensor (default :attr:`SENSORS`)."""
        return self.SENSORS

    def readings(self) -> dict[str, Value]:
        """Return every reading of the model, keyed as in :attr:`SENSORS`."""
        raise NotImplementedError
