"""Simulation models of the simulated devices: pure Python and numpy, no I/O.

Every model derives from :class:`SimModel`: ``step(dt)`` / ``advance_to(t)`` evolve it in
simulated seconds, ``readings()`` returns ``{name: Value(value, status, timestamp)}`` described
by ``sensor_specs()``, and ``inject_fault(kind, **options)`` / ``clear_faults()`` drive the
fault kinds documented in each model's ``FAULTS``.
"""

from .antenna import AntennaPositioner, Axis, AxisLimits, TargetOutOfRange
from .base import FaultError, SensorSpec, SimModel, Status, Thresholds, Value
from .cryo import CoolingStage, Cryocooler
from .digitiser import Digitiser
from .power_supply import PowerSupply
from .weather import WeatherStation, WeatherVariable

__all__ = [
    "AntennaPositioner",
    "Axis",
    "AxisLimits",
    "CoolingStage",
    "Cryocooler",
    "Digitiser",
    "FaultError",
    "PowerSupply",
    "SensorSpec",
    "SimModel",
    "Status",
    "TargetOutOfRange",
    "Thresholds",
    "Value",
    "WeatherStation",
    "WeatherVariable",
]
