"""Simulated bench power supply: setpoints, noisy readbacks, output on/off, trip and reset.

This is the device the "write your own device server" guide (``docs/devices.md``) walks
through. Its requests use the modern annotated form: the parameters' annotations parse the
request's arguments and the return annotation formats the reply.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from katcpx.errors import FailReply
from katcpx.server import ClientRequestConnection

from ..models import FaultError, PowerSupply
from .base import SimDeviceServer

__all__ = ["OutputState", "PowerSupplyServer"]


class OutputState(enum.Enum):
    """Argument of ``?output``: on the wire ``on`` or ``off``."""

    ON = "on"
    OFF = "off"


class PowerSupplyServer(SimDeviceServer):
    """Device server of a simulated programmable DC power supply.

    The supply starts with its output off, 12 V set, a 2 A current limit and a 10 ohm load
    (1.2 A when on). Raising the voltage above 20 V, or lowering the load below 6 ohm, with the
    output on trips the over-current protection: the output opens, ``state`` reads
    ``tripped`` with status ``error``, and ``?output on`` fails until ``?reset``.
    """

    DEVICE: ClassVar[str] = "psu"
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-psu", 1, 0)
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-psu", 1, 0, "")

    model: PowerSupply

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self._was_tripped = False
        super().__init__(host, port, **kwargs)

    def make_model(self, *, seed: int | None, start_time: float) -> PowerSupply:
        """12 V, 2 A limit, 10 ohm load; output off."""
        return PowerSupply(
            voltage=12.0, current_limit=2.0, load_resistance=10.0, seed=seed, start_time=start_time
        )

    def update_sensors(self) -> None:
        """Publish the readings, and log a trip once when it happens."""
        if self.model.tripped and not self._was_tripped:
            model = self.model
            demand = model.voltage_setpoint / model.load_resistance
            self.log.error(
                f"over-current trip: load demands {demand:.3f} A, limit "
                f"{model.current_limit} A; ?reset to clear"
            )
        self._was_tripped = self.model.tripped
        super().update_sensors()

    # -- requests -----------------------------------------------------------------------------

    async def request_voltage(self, req: ClientRequestConnection, volts: float) -> float:
        """Set the voltage setpoint.

        Parameters
        ----------
        volts : float
            Setpoint (V), 0 to 30.

        Returns
        -------
        volts : float
            The new setpoint (V).
        """
        self.model.advance_to(self.clock.now())
        try:
            self.model.set_voltage(volts)
        except ValueError as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        return self.model.voltage_setpoint

    async def request_current_limit(self, req: ClientRequestConnection, amps: float) -> float:
        """Set the over-current trip level.

        Parameters
        ----------
        amps : float
            Trip level (A), above 0 and at most 5.

        Returns
        -------
        amps : float
            The new trip level (A).
        """
        self.model.advance_to(self.clock.now())
        try:
            self.model.set_current_limit(amps)
        except ValueError as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        return self.model.current_limit

    async def request_output(self, req: ClientRequestConnection, state: OutputState) -> str:
        """Switch the output on or off.

        Parameters
        ----------
        state : {'on', 'off'}
            The output state wanted.

        Returns
        -------
        state : {'off', 'on', 'tripped'}
            The supply's state afterwards: switching on into an overload trips at once.
        """
        self.model.advance_to(self.clock.now())
        try:
            if state is OutputState.ON:
                self.model.turn_on()
            else:
                self.model.turn_off()
        except FaultError as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        return self.model.state

    async def request_reset(self, req: ClientRequestConnection) -> None:
        """Clear an over-current trip; the output stays off until ``?output on``."""
        self.model.advance_to(self.clock.now())
        self.model.reset()
        self.update_sensors()

    async def request_sim_load(self, req: ClientRequestConnection, ohms: float) -> float:
        """Simulation only: change the load resistance.

        Parameters
        ----------
        ohms : float
            Load resistance (ohm), positive; ``inf`` for an open circuit.

        Returns
        -------
        ohms : float
            The new load resistance.
        """
        self.model.advance_to(self.clock.now())
        try:
            self.model.set_load(ohms)
        except ValueError as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        return ohms
