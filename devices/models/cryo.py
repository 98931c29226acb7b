"""Cryocooler of a receiver: staged cool-down, warm-up, compressor and vacuum faults.

The cold-head temperature relaxes exponentially towards a target that depends on the state:

- ``cooling``: towards the *floor* of the current stage with that stage's time constant, until
  it crosses the stage's *threshold*; then the next stage takes over. After the last stage the
  state is ``cold``. Stage ``k`` thus takes ``tau_k * ln((T0 - floor_k) / (thr_k - floor_k))``,
  which :meth:`Cryocooler.expected_cooldown_time` sums.
- ``cold``: held towards the last stage's floor.
- ``warming`` (heaters on, compressor off): towards ambient with ``warm_tau``; ``warm`` when
  within ``warm_margin`` of ambient.
- ``warm`` and ``fault``: compressor off, drifting towards ambient (``fault`` twice as slowly:
  no heaters).

Crossings are solved in closed form, so the result of ``step(dt)`` does not depend on how the
interval is divided. Vacuum pressure relaxes exponentially in ``log10``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import FaultError, SensorSpec, SimModel, Status, Thresholds, Value

__all__ = ["DEFAULT_STAGES", "STATES", "CoolingStage", "Cryocooler"]

STATES = ("warm", "cooling", "cold", "warming", "fault")


@dataclass(frozen=True)
class CoolingStage:
    """One stage of the cool-down.

    Attributes
    ----------
    name
        Stage name, reported by the ``stage`` reading once reached.
    threshold
        Temperature (K) at or below which the stage counts as reached.
    floor
        Temperature (K) the stage approaches; must be below ``threshold``.
    tau
        Time constant (s) of the exponential approach.
    """

    name: str
    threshold: float
    floor: float
    tau: float


#: First stage to 70 K (about 16 simulated minutes), second stage to 20 K (8 more).
DEFAULT_STAGES: tuple[CoolingStage, ...] = (
    CoolingStage("first-stage", threshold=70.0, floor=60.0, tau=300.0),
    CoolingStage("second-stage", threshold=20.0, floor=15.0, tau=200.0),
)


def _crossing_time(t0: float, target: float, level: float, tau: float) -> float:
    """Time for ``target + (t0 - target) exp(-t / tau)`` to reach ``level`` (``inf``: never)."""
    if (t0 - level) * (level - target) <= 0:
        return math.inf  # level is not strictly between start and asymptote
    return tau * math.log((t0 - target) / (level - target))


class Cryocooler(SimModel):
    """Receiver cryocooler.

    Parameters
    ----------
    stages
        Cool-down stages, warmest first (thresholds strictly decreasing).
    ambient
        Ambient temperature (K); the initial temperature.
    warm_tau
        Time constant (s) of a heated warm-up.
    warm_margin
        A warming receiver is ``warm`` within this many kelvin of ambient.
    cold_fault_temp
        A ``cold`` receiver whose temperature rises above this (K) goes to ``fault``; above the
        last stage's threshold the temperature reading is WARN.
    leak_floor
        Lowest temperature (K) reachable during a ``vacuum-leak`` (gas conduction heat load).
    base_pressure, leak_pressure
        Vacuum pressure (mbar) normally and at the end of a leak.
    pressure_tau
        Time constant (s) of pressure changes.
    readback_noise
        Standard deviation (K) of temperature readback noise, drawn once per step.
    seed, start_time
        See :class:`~katcpx_devices.models.base.SimModel`.
    """

    FAULTS: ClassVar[Mapping[str, str]] = {
        "compressor-trip": (
            "The compressor stops: state 'fault' at once from any state, the cold head drifts "
            "to ambient (2 * warm_tau), start_cooldown() raises FaultError. Clearing the fault "
            "leaves the receiver 'warming' (or 'warm' if already near ambient)."
        ),
        "vacuum-leak": (
            "Vacuum pressure rises towards leak_pressure (ERROR above 1e-2 mbar) and the "
            "temperature cannot go below leak_floor: a cool-down stalls short of the first stage "
            "(stays 'cooling'), a cold receiver warms and goes to 'fault' above cold_fault_temp. "
            "Clearing lets the pressure recover and, from 'fault', leaves it 'warming'."
        ),
    }
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = {
        "state": SensorSpec("discrete", "Cryocooler state", "", STATES),
        "temperature": SensorSpec("float", "Cold-head temperature", "K"),
        "stage": SensorSpec("string", "Coldest cool-down stage reached ('none' if none)"),
        "pressure": SensorSpec("float", "Cryostat vacuum pressure", "mbar"),
        "compressor-on": SensorSpec("boolean", "Compressor running"),
        "cooldown-remaining": SensorSpec("float", "Expected time until cold", "s"),
    }

    def __init__(
        self,
        stages: Sequence[CoolingStage] = DEFAULT_STAGES,
        *,
        ambient: float = 300.0,
        warm_tau: float = 600.0,
        warm_margin: float = 5.0,
        cold_fault_temp: float = 30.0,
        leak_floor: float = 80.0,
        base_pressure: float = 1e-6,
        leak_pressure: float = 1e-1,
        pressure_tau: float = 120.0,
        readback_noise: float = 0.05,
        seed: int | None = None,
        start_time: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, start_time=start_time)
        self.stages = tuple(stages)
        if not self.stages:
            raise ValueError("a cryocooler needs at least one stage")
        prev = math.inf
        for st in self.stages:
            if not (st.floor < st.threshold < prev and st.tau > 0):
                raise ValueError(f"bad stage {st!r}: need floor < threshold < previous, tau > 0")
            prev = st.threshold
        self.ambient = float(ambient)
        self.warm_tau = float(warm_tau)
        self.warm_margin = float(warm_margin)
        self.cold_fault_temp = float(cold_fault_temp)
        self.leak_floor = float(leak_floor)
        self.base_pressure = float(base_pressure)
        self.leak_pressure = float(leak_pressure)
        self.pressure_tau = float(pressure_tau)
        self.readback_noise = float(readback_noise)
        self._temp = self.ambient
        self._log_p = math.log10(self.base_pressure)
        self._state = "warm"
        self._noise = 0.0
        self.pressure_thresholds = Thresholds(warn_high=1e-4, error_high=1e-2)

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """One of ``warm``, ``cooling``, ``cold``, ``warming``, ``fault``."""
        return self._state

    @property
    def temperature(self) -> float:
        """True cold-head temperature (K)."""
        return self._temp

    @property
    def temperature_readback(self) -> float:
        """Measured cold-head temperature (K), with noise."""
        return self._temp + self._noise

    @property
    def pressure(self) -> float:
        """Vacuum pressure (mbar)."""
        return float(10.0**self._log_p)

    @property
    def compressor_on(self) -> bool:
        """Whether the compressor runs (cooling or cold)."""
        return self._state in ("cooling", "cold")

    @property
    def stage(self) -> str:
        """Name of the coldest stage whose threshold the temperature is at or below."""
        reached = [st.name for st in self.stages if self._temp <= st.threshold]
        return reached[-1] if reached else "none"

    def _floor(self, stage: CoolingStage) -> float:
        if "vacuum-leak" in self.faults:
            return max(stage.floor, self.leak_floor)
        return stage.floor

    def expected_cooldown_time(self) -> float:
        """Simulated seconds a cool-down takes from the current temperature.

        ``inf`` if it cannot complete (a vacuum leak or compressor trip).
        """
        if "compressor-trip" in self.faults:
            return math.inf
        temp, total = self._temp, 0.0
        for st in self.stages:
            if temp <= st.threshold:
                continue
            total += _crossing_time(temp, self._floor(st), st.threshold, st.tau)
            temp = st.threshold
        return total

    # -- commands ---------------------------------------------------------------------------

    def start_cooldown(self) -> float:
        """Start the compressor (from ``warm`` or ``warming``); returns the expected time.

        Already ``cooling`` or ``cold``: nothing changes.

        Raises
        ------
        FaultError
            In state ``fault``.
        """
        if self._state == "fault":
            raise FaultError(f"cryocooler fault ({', '.join(sorted(self.faults))}); clear it first")
        if self._state in ("warm", "warming"):
            self._state = "cooling"
            self._settle()
        return self.expected_cooldown_time()

    def warmup(self) -> None:
        """Stop the compressor and heat to ambient (``warming``, then ``warm``).

        Does nothing when already ``warm`` or ``warming``, or in ``fault``.
        """
        if self._state in ("cooling", "cold"):
            self._state = "warming"
            self._settle()

    # -- physics ----------------------------------------------------------------------------

    def _settle(self) -> None:
        """Apply the state changes the current temperature implies."""
        if self._state == "cooling" and self._temp <= self.stages[-1].threshold:
            self._state = "cold"
        elif self._state == "cold" and self._temp > self.cold_fault_temp:
            self._state = "fault"
        elif self._state == "warming" and self._temp >= self.ambient - self.warm_margin:
            self._state = "warm"

    def _regime(self) -> tuple[float, float, float]:
        """Return ``(asymptote, tau, level at which the regime ends)`` for the current state."""
        if self._state == "cooling":
            st = next(s for s in self.stages if self._temp > s.threshold)
            return self._floor(st), st.tau, st.threshold
        if self._state == "cold":
            last = self.stages[-1]
            return self._floor(last), last.tau, self.cold_fault_temp
        if self._state == "warming":
            return self.ambient, self.warm_tau, self.ambient - self.warm_margin
        tau = 2 * self.warm_tau if self._state == "fault" else self.warm_tau
        return self.ambient, tau, math.nan

    def _advance(self, dt: float) -> None:
        remaining = dt
        for _ in range(4 * len(self.stages) + 8):  # one pass per regime change, at most
            if remaining <= 0:
                break
            self._settle()
            target, tau, level = self._regime()
            t_cross = (
                math.inf if math.isnan(level) else _crossing_time(self._temp, target, level, tau)
            )
            if t_cross <= remaining:
                self._temp = level  # exact, so the next regime is selected cleanly
                remaining -= t_cross
            else:
                self._temp = target + (self._temp - target) * math.exp(-remaining / tau)
                remaining = 0.0
        self._settle()
        p_target = math.log10(
            self.leak_pressure if "vacuum-leak" in self.faults else self.base_pressure
        )
        self._log_p = p_target + (self._log_p - p_target) * math.exp(-dt / self.pressure_tau)
        self._noise = float(self.rng.normal(0.0, self.readback_noise))

    # -- faults -----------------------------------------------------------------------------

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        super()._fault_started(kind, options)
        if kind == "compressor-trip":
            self._state = "fault"

    def _fault_cleared(self, kind: str, options: Mapping[str, Any]) -> None:
        if self._state == "fault" and not self.faults:
            near = self._temp >= self.ambient - self.warm_margin
            self._state = "warm" if near else "warming"

    # -- readings ---------------------------------------------------------------------------

    def _temperature_status(self, temp: float) -> Status:
        if self._state == "fault":
            return Status.ERROR
        if self._state == "cold":
            return Thresholds(
                warn_high=self.stages[-1].threshold, error_high=self.cold_fault_temp
            ).status(temp)
        return Status.NOMINAL

    def readings(self) -> dict[str, Value]:
        """Return the cryocooler's readings (see :attr:`SENSORS`)."""
        t = self._time
        ok = Status.NOMINAL
        temp = self.temperature_readback
        return {
            "state": Value(self._state, Status.ERROR if self._state == "fault" else ok, t),
            "temperature": Value(temp, self._temperature_status(temp), t),
            "stage": Value(self.stage, ok, t),
            "pressure": Value(self.pressure, self.pressure_thresholds.status(self.pressure), t),
            "compressor-on": Value(self.compressor_on, ok, t),
            "cooldown-remaining": Value(
                self.expected_cooldown_time() if self._state == "cooling" else 0.0, ok, t
            ),
        }
