"""Bench power supply with over-current protection and noisy readbacks.

The output is ideal and instantaneous: when on it holds the voltage setpoint and the resistive
load draws ``V / R``. If that exceeds the current limit the protection trips: the output opens
and stays off (status ERROR) until :meth:`PowerSupply.reset`. Protection is evaluated at once
on every command and after every step, so a command that overloads the output trips it
before it returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from .base import FaultError, SensorSpec, SimModel, Status, Thresholds, Value

__all__ = ["PowerSupply"]

STATES = ("off", "on", "tripped")


class PowerSupply(SimModel):
    """Programmable DC power supply driving a resistive load.

    Parameters
    ----------
    voltage
        Voltage setpoint (V).
    current_limit
        Over-current trip level (A).
    load_resistance
        Load resistance (ohm).
    max_voltage, max_current
        Ranges the setpoints must lie in.
    voltage_noise, current_noise
        Standard deviation of the readback noise (V, A), drawn once per step.
    regulation_warn, regulation_error
        Relative deviation of the voltage readback from what was commanded (setpoint when on,
        0 V when off; absolute below 1 V) above which the voltage reading is WARN / ERROR.
    short_resistance
        Load resistance (ohm) during the ``overcurrent`` fault.
    seed, start_time
        See :class:`~katcpx_devices.models.base.SimModel`.
    """

    FAULTS: ClassVar[Mapping[str, str]] = {
        "overcurrent": (
            "The load fails short (option resistance, ohm; default short_resistance): if the "
            "output is on it trips at once; clearing restores the configured load (the supply "
            "stays tripped until reset())."
        ),
        "output-stuck": (
            "The output freezes at its state and voltage at injection: commands still change "
            "the setpoints (and are reported) but not the output, so the voltage reading goes "
            "WARN/ERROR once it disagrees with the command. Protection still trips. Clearing "
            "makes the output follow the commands again."
        ),
        "noisy": (
            "Readback noise is multiplied by option factor (default 50), so the voltage "
            "reading's status flickers to WARN/ERROR."
        ),
    }
    SENSORS: ClassVar[Mapping[str, SensorSpec]] = {
        "state": SensorSpec("discrete", "Output state", "", STATES),
        "output-on": SensorSpec("boolean", "Output enabled"),
        "tripped": SensorSpec("boolean", "Over-current protection has tripped"),
        "voltage": SensorSpec("float", "Output voltage readback", "V"),
        "current": SensorSpec("float", "Output current readback", "A"),
        "power": SensorSpec("float", "Output power", "W"),
        "voltage-setpoint": SensorSpec("float", "Voltage setpoint", "V"),
        "current-limit": SensorSpec("float", "Over-current trip level", "A"),
    }

    def __init__(
        self,
        voltage: float = 12.0,
        current_limit: float = 2.0,
        load_resistance: float = 10.0,
        *,
        max_voltage: float = 30.0,
        max_current: float = 5.0,
        voltage_noise: float = 0.005,
        current_noise: float = 0.001,
        regulation_warn: float = 0.02,
        regulation_error: float = 0.10,
        short_resistance: float = 0.05,
        seed: int | None = None,
        start_time: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, start_time=start_time)
        self.max_voltage = float(max_voltage)
        self.max_current = float(max_current)
        self.voltage_noise = float(voltage_noise)
        self.current_noise = float(current_noise)
        self.regulation_warn = float(regulation_warn)
        self.regulation_error = float(regulation_error)
        self.short_resistance = float(short_resistance)
        self._voltage_setpoint = 0.0
        self._current_limit = self.max_current
        self._load = math.inf
        self._enabled = False  # commanded on/off
        self._tripped = False
        self.trip_time: float | None = None
        # What the output actually does; differs from the command only while stuck.
        self._out_on = False
        self._out_voltage = 0.0
        self._noise = (0.0, 0.0)
        self.set_voltage(voltage)
        self.set_current_limit(current_limit)
        self.set_load(load_resistance)

    # -- commands ---------------------------------------------------------------------------

    def set_voltage(self, volts: float) -> None:
        """Set the voltage setpoint (V), in ``[0, max_voltage]``."""
        if not 0.0 <= volts <= self.max_voltage:
            raise ValueError(f"voltage {volts!r} V is outside [0, {self.max_voltage}] V")
        self._voltage_setpoint = float(volts)
        self._apply()

    def set_current_limit(self, amps: float) -> None:
        """Set the over-current trip level (A), in ``(0, max_current]``."""
        if not 0.0 < amps <= self.max_current:
            raise ValueError(f"current limit {amps!r} A is outside (0, {self.max_current}] A")
        self._current_limit = float(amps)
        self._apply()

    def set_load(self, ohms: float) -> None:
        """Change the load resistance (ohm); positive, ``inf`` for an open circuit."""
        if not ohms > 0:
            raise ValueError(f"load resistance must be positive, got {ohms!r} ohm")
        self._load = float(ohms)
        self._apply()

    def turn_on(self) -> None:
        """Enable the output.

        Raises
        ------
        FaultError
            While tripped: call :meth:`reset` first.
        """
        if self._tripped:
            raise FaultError("power supply has tripped on over-current; reset it first")
        self._enabled = True
        self._apply()

    def turn_off(self) -> None:
        """Disable the output."""
        self._enabled = False
        self._apply()

    def reset(self) -> None:
        """Clear a trip; the output stays off until :meth:`turn_on`."""
        self._tripped = False
        self.trip_time = None
        self._enabled = False
        self._apply()

    # -- state ------------------------------------------------------------------------------

    @property
    def voltage_setpoint(self) -> float:
        """Voltage setpoint (V)."""
        return self._voltage_setpoint

    @property
    def current_limit(self) -> float:
        """Over-current trip level (A)."""
        return self._current_limit

    @property
    def load_resistance(self) -> float:
        """Effective load resistance (ohm), including an ``overcurrent`` short."""
        if "overcurrent" in self.faults:
            return float(self.fault_options("overcurrent").get("resistance", self.short_resistance))
        return self._load

    @property
    def output_on(self) -> bool:
        """Whether the output is actually energised."""
        return self._out_on

    @property
    def tripped(self) -> bool:
        """Whether over-current protection has tripped."""
        return self._tripped

    @property
    def state(self) -> str:
        """``off``, ``on`` or ``tripped``."""
        if self._tripped:
            return "tripped"
        return "on" if self._out_on else "off"

    @property
    def voltage(self) -> float:
        """True output voltage (V)."""
        return self._out_voltage if self._out_on else 0.0

    @property
    def current(self) -> float:
        """True output current (A)."""
        return self.voltage / self.load_resistance

    @property
    def voltage_readback(self) -> float:
        """Measured output voltage (V), with noise."""
        return self.voltage + self._noise[0]

    @property
    def current_readback(self) -> float:
        """Measured output current (A), with noise."""
        return self.current + self._noise[1]

    # -- physics ----------------------------------------------------------------------------

    def _apply(self) -> None:
        """Make the output follow the commands (unless stuck), then check protection."""
        if "output-stuck" not in self.faults:
            self._out_on = self._enabled and not self._tripped
            self._out_voltage = self._voltage_setpoint
        if self._out_on and self.current > self._current_limit:
            self._tripped = True
            self.trip_time = self._time
            self._enabled = False
            self._out_on = False

    def _advance(self, dt: float) -> None:
        factor = 1.0
        if "noisy" in self.faults:
            factor = float(self.fault_options("noisy").get("factor", 50.0))
        self._noise = (
            float(self.rng.normal(0.0, self.voltage_noise * factor)),
            float(self.rng.normal(0.0, self.current_noise * factor)),
        )
        self._apply()

    # -- faults -----------------------------------------------------------------------------

    def _fault_started(self, kind: str, options: Mapping[str, Any]) -> None:
        allowed = {"overcurrent": {"resistance"}, "noisy": {"factor"}}.get(kind, set())
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"fault {kind!r} does not take {sorted(unknown)}")
        if kind == "overcurrent" and not float(options.get("resistance", 1.0)) > 0:
            raise ValueError("overcurrent resistance must be positive")
        if kind == "noisy" and not float(options.get("factor", 1.0)) >= 0:
            raise ValueError("noisy factor must be non-negative")

    def inject_fault(self, kind: str, **options: Any) -> None:
        """Inject a fault (see :attr:`FAULTS`); its effect is immediate."""
        super().inject_fault(kind, **options)
        self._apply()

    def clear_fault(self, kind: str) -> None:
        """Clear one fault; the output re-evaluates at once."""
        super().clear_fault(kind)
        self._apply()

    # -- readings ---------------------------------------------------------------------------

    def _voltage_status(self, readback: float) -> Status:
        if self._tripped:
            return Status.ERROR
        commanded = self._voltage_setpoint if self._enabled else 0.0
        dev = abs(readback - commanded) / max(commanded, 1.0)
        return Thresholds(warn_high=self.regulation_warn, error_high=self.regulation_error).status(
            dev
        )

    def readings(self) -> dict[str, Value]:
        """Return the supply's readings (see :attr:`SENSORS`)."""
        t = self._time
        ok = Status.NOMINAL
        v, i = self.voltage_readback, self.current_readback
        trip_status = Status.ERROR if self._tripped else ok
        i_thr = Thresholds(warn_high=0.9 * self._current_limit)
        return {
            "state": Value(self.state, trip_status, t),
            "output-on": Value(self._out_on, ok, t),
            "tripped": Value(self._tripped, trip_status, t),
            "voltage": Value(v, self._voltage_status(v), t),
            "current": Value(i, Status.ERROR if self._tripped else i_thr.status(i), t),
            "power": Value(self.voltage * self.current, ok, t),
            "voltage-setpoint": Value(self._voltage_setpoint, ok, t),
            "current-limit": Value(self._current_limit, ok, t),
        }

    def __repr__(self) -> str:
        return (
            f"PowerSupply(state={self.state!r}, V={self.voltage:.3f}, "
            f"I={self.current:.3f}, limit={self._current_limit}, R={self.load_resistance})"
        )
