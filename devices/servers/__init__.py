"""KATCP device servers wrapping the simulation models.

Each server is a :class:`~katcpx.server.AsyncDeviceServer` subclass of
:class:`SimDeviceServer`; :data:`DEVICES` maps the names ``katcpx-sim`` knows to them.
"""

from __future__ import annotations

from .antenna import AntennaServer
from .base import SimDeviceServer, parse_fault_options
from .cryo import CryoServer
from .digitiser import DigitiserServer
from .power_supply import OutputState, PowerSupplyServer
from .weather import WeatherServer

#: Device servers by ``katcpx-sim`` name, in the order ``katcpx-sim site`` starts them.
DEVICES: dict[str, type[SimDeviceServer]] = {
    "antenna": AntennaServer,
    "psu": PowerSupplyServer,
    "weather": WeatherServer,
    "cryo": CryoServer,
    "digitiser": DigitiserServer,
}

__all__ = [
    "DEVICES",
    "AntennaServer",
    "CryoServer",
    "DigitiserServer",
    "OutputState",
    "PowerSupplyServer",
    "SimDeviceServer",
    "WeatherServer",
    "parse_fault_options",
]
