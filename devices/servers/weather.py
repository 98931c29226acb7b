"""Simulated weather station: correlated random walks with threshold statuses.

The station has one request of its own, written with katcp-python's classic decorators
(``@request`` / ``@return_reply``) to show that style next to the annotated one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from katcpx.kattypes import Float, request, return_reply
from katcpx.server import ClientRequestConnection

from ..models import WeatherStation
from .base import SimDeviceServer

__all__ = ["WeatherServer"]


class WeatherServer(SimDeviceServer):
    """Device server of a simulated weather station.

    Sensors ``temperature`` (degC), ``humidity`` (%), ``pressure`` (hPa), ``wind-speed``
    (m/s, WARN above 15, ERROR above 20) and ``wind-direction`` (deg) follow the model's
    correlated walks; their statuses come from the model's thresholds.
    """

    DEVICE: ClassVar[str] = "weather"
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-weather", 1, 0)
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-weather", 1, 0, "")

    model: WeatherStation

    def make_model(self, *, seed: int | None, start_time: float) -> WeatherStation:
        """A Karoo-like station (the model's defaults)."""
        return WeatherStation(seed=seed, start_time=start_time)

    @request()
    @return_reply(Float(), Float(), Float(), Float(), Float())
    def request_weather(self, req: ClientRequestConnection) -> tuple[Any, ...]:
        """Report the current weather in one reply.

        Returns
        -------
        temperature, humidity, pressure, wind_speed, wind_direction : float
            degC, %, hPa, m/s and deg, with faults applied.
        """
        self.advance()
        readings = self.model.readings()
        names = ("temperature", "humidity", "pressure", "wind-speed", "wind-direction")
        return ("ok", *(float(readings[name].value) for name in names))
