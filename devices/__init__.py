"""katcpx_devices: simulated KATCP devices for katcpx.

This package (the ``devices/`` directory of the katcpx repository, imported as
``katcpx_devices``) holds the simulation clock and the device physics models; device servers
built on :mod:`katcpx.server` wrap them.
"""

from .models import (
    AntennaPositioner,
    Cryocooler,
    Digitiser,
    FaultError,
    PowerSupply,
    SimModel,
    Status,
    TargetOutOfRange,
    Value,
    WeatherStation,
)
from .simclock import Clock, ManualClock, SimClock

__all__ = [
    "AntennaPositioner",
    "Clock",
    "Cryocooler",
    "Digitiser",
    "FaultError",
    "ManualClock",
    "PowerSupply",
    "SimClock",
    "SimModel",
    "Status",
    "TargetOutOfRange",
    "Value",
    "WeatherStation",
]
