"""Simulated digitiser/correlator: thousands of channel sensors, for scale tests.

Each model update produces the whole spectrum as numpy arrays. The server compares them with
the arrays it published last (one vectorised comparison) and sets only the channel sensors
whose value or status changed, with one ``Sensor.set`` per changed channel and no other
per-channel Python work.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from katcpx.kattypes import Float, request, return_reply
from katcpx.sensor import Sensor
from katcpx.server import ClientRequestConnection

from ..models import Digitiser
from .base import SimDeviceServer

__all__ = ["DigitiserServer"]


class DigitiserServer(SimDeviceServer):
    """Device server of a simulated digitiser with one sensor per frequency channel.

    Parameters
    ----------
    host, port
        Address to listen on.
    n_channels
        Number of channels, each exposed as sensor ``channel.NNNN`` (dB).
    update_rate
        Spectra per simulated second.
    **kwargs
        ``speed``, ``seed``, ``tick``, ``clock``: see
        :class:`~katcpx_devices.servers.base.SimDeviceServer`.
    """

    DEVICE: ClassVar[str] = "digitiser"
    VERSION_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-digitiser", 1, 0)
    BUILD_INFO: ClassVar[tuple[Any, ...]] = ("katcpx-sim-digitiser", 1, 0, "")

    model: Digitiser

    def __init__(
        self,
        host: str,
        port: int,
        *,
        n_channels: int = 4096,
        update_rate: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.n_channels = int(n_channels)
        self.update_rate = float(update_rate)
        super().__init__(host, port, **kwargs)

    def make_model(self, *, seed: int | None, start_time: float) -> Digitiser:
        """A digitiser with :attr:`n_channels` channels updated at :attr:`update_rate`."""
        return Digitiser(
            n_channels=self.n_channels,
            update_rate=self.update_rate,
            seed=seed,
            start_time=start_time,
        )

    def setup_sensors(self) -> None:
        """Add the channel sensors, then the model's scalar sensors."""
        width = len(str(self.n_channels - 1))
        spec = Digitiser.CHANNEL_SPEC
        self.channel_sensors = [
            Sensor.float(f"channel.{i:0{width}d}", f"{spec.description} of channel {i}", spec.units)
            for i in range(self.n_channels)
        ]
        for sensor in self.channel_sensors:
            self.add_sensor(sensor)
        # NaN never equals anything, so the first update publishes every channel.
        self._channel_values = np.full(self.n_channels, np.nan)
        self._channel_statuses = np.zeros(self.n_channels, dtype=np.int8)
        self._channel_count = -1
        #: Channel sensor updates published so far (for monitoring the simulator's load).
        self.channel_updates = 0
        super().setup_sensors()

    def update_sensors(self) -> None:
        """Publish the scalar readings and, after a new model update, the changed channels."""
        super().update_sensors()
        model = self.model
        if model.update_count == self._channel_count:
            return
        values, statuses = model.values, model.statuses
        changed = np.flatnonzero(
            (values != self._channel_values) | (statuses != self._channel_statuses)
        )
        timestamp = time.time()
        sensors = self.channel_sensors
        # tolist() converts to Python floats/ints in C, once, rather than per sensor.
        for i, value, status in zip(
            changed.tolist(), values[changed].tolist(), statuses[changed].tolist(), strict=True
        ):
            sensors[i].set(timestamp, status, value)
        self.channel_updates += len(changed)
        # The model never modifies arrays it has handed out, so keeping references is safe.
        self._channel_values, self._channel_statuses = values, statuses
        self._channel_count = model.update_count

    @request(Float(min=-80.0, max=10.0))
    @return_reply(Float())
    def request_adc_level(self, req: ClientRequestConnection, level: float) -> tuple[Any, ...]:
        """Set the ADC input level; channel powers follow from the next spectrum.

        Parameters
        ----------
        level : float
            Input level (dBFS), -80 to 10; at 0 or above the ADC clips.

        Returns
        -------
        level : float
            The ADC level reading (dBFS), at most 0.
        """
        self.model.advance_to(self.clock.now())
        self.model.input_level = float(level)
        self.update_sensors()
        return ("ok", self.model.adc_level)
