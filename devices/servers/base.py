"""SimDeviceServer: what every simulated device server shares.

A simulated device is a :class:`katcpx.server.AsyncDeviceServer` wrapped around one of the
physics models of :mod:`katcpx_devices.models`. The base class

* keeps a simulation clock (:class:`~katcpx_devices.simclock.SimClock`, ``speed`` times faster
  than the wall clock) and builds the model with a deterministic ``seed``;
* runs the model on the server's own loop with a periodic tick (a tornado
  ``PeriodicCallback``), so the model is only ever touched from one thread and needs no lock;
* creates one sensor per model reading (from ``model.sensor_specs()``) and, after every tick or
  command, pushes the readings into those sensors, only the ones whose value or status changed
  (statuses come from the model's thresholds);
* adds the simulation requests ``?sim-fault``, ``?sim-clear`` and ``?sim-speed`` and a
  ``sim.faults`` sensor.

Sensor timestamps are wall-clock (Unix) seconds at which the reading was taken, as KATCP
expects, not simulation time: at ``speed`` > 1 simulation time runs ahead of the wall clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from tornado.ioloop import PeriodicCallback

from katcpx.codec import show_argument
from katcpx.errors import FailReply
from katcpx.flags import ProtocolFlags
from katcpx.sensor import Sensor
from katcpx.server import AsyncDeviceServer, ClientRequestConnection

from ..models.base import SensorSpec, SimModel, Status, Value
from ..simclock import SimClock

__all__ = ["SimDeviceServer", "parse_fault_options"]

# A value is pushed when it differs from the published one; a float is compared exactly
# (noisy readbacks always change), so these are all the types the models produce.
_SENSOR_TYPES = {
    "float": Sensor.FLOAT,
    "integer": Sensor.INTEGER,
    "boolean": Sensor.BOOLEAN,
    "discrete": Sensor.DISCRETE,
    "string": Sensor.STRING,
}


def parse_fault_options(options: tuple[str, ...]) -> dict[str, Any]:
    """Parse ``key=value`` request arguments into fault options.

    A value is converted to an ``int`` or ``float`` when it looks like one; a value with commas
    becomes a list of such values (``channels=1,2,3``); anything else stays a string.

    Raises
    ------
    FailReply
        If an option is not of the form ``key=value``.
    """

    def convert(text: str) -> Any:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise FailReply(f"fault option {show_argument(option)} is not of the form key=value")
        parsed[key] = (
            [convert(v) for v in value.split(",") if v] if "," in value else convert(value)
        )
    return parsed


class SimDeviceServer(AsyncDeviceServer):
    """Base class of the simulated device servers.

    Subclasses set :attr:`DEVICE` and ``VERSION_INFO``, implement :meth:`make_model`, and add
    their own ``request_*`` handlers, which drive :attr:`model` and then call
    :meth:`update_sensors` so clients see the effect at once.

    Parameters
    ----------
    host, port
        Address to listen on (port 0 picks a free port; see ``bind_address``).
    speed
        Simulated seconds per wall-clock second.
    seed
        Seed of the model's random numbers; the same seed reproduces the same noise.
    tick
        Wall-clock seconds between model updates (default :attr:`TICK`).
    clock
        Simulation clock to use instead of a new ``SimClock(speed)``.
    **kwargs
        Passed to :class:`~katcpx.server.AsyncDeviceServer`.

    Notes
    -----
    Create and start the server inside the asyncio loop it should run on (as with any
    ``AsyncDeviceServer``); request handlers, the tick and sensor updates all run there.
    """

    #: Short device name used by ``katcpx-sim`` and in descriptions.
    DEVICE: ClassVar[str] = "sim"
    #: Wall-clock seconds between model updates.
    TICK: ClassVar[float] = 0.1
    #: v5.1 with message ids, request timeout hints and bulk sensor sampling.
    PROTOCOL_INFO: ClassVar[ProtocolFlags] = ProtocolFlags(
        5,
        1,
        [
            ProtocolFlags.MULTI_CLIENT,
            ProtocolFlags.MESSAGE_IDS,
            ProtocolFlags.REQUEST_TIMEOUT_HINTS,
            ProtocolFlags.BULK_SET_SENSOR_SAMPLING,
        ],
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        tick: float | None = None,
        clock: SimClock | None = None,
        **kwargs: Any,
    ) -> None:
        self.clock = clock if clock is not None else SimClock(speed)
        self.seed = seed
        self.tick_interval = float(self.TICK if tick is None else tick)
        if not self.tick_interval > 0:
            raise ValueError(f"tick must be positive, got {tick!r}")
        # The model must exist before DeviceServer.__init__ calls setup_sensors().
        self.model: SimModel = self.make_model(seed=seed, start_time=self.clock.now())
        self._model_sensors: dict[str, Sensor] = {}
        self._published: dict[str, tuple[Any, Status]] = {}
        self._periodic: PeriodicCallback | None = None
        super().__init__(host, port, **kwargs)

    # -- for subclasses -----------------------------------------------------------------------

    def make_model(self, *, seed: int | None, start_time: float) -> SimModel:
        """Build the simulation model (called once, before the sensors are set up)."""
        raise NotImplementedError

    def setup_sensors(self) -> None:
        """Add one sensor per model reading, plus ``sim.faults`` and ``sim.speed``."""
        for name, spec in self.model.sensor_specs().items():
            sensor = self.make_sensor(name, spec)
            self._model_sensors[name] = sensor
            self.add_sensor(sensor)
        self._faults_sensor = Sensor.string("sim.faults", "Simulated faults now injected")
        self._speed_sensor = Sensor.float("sim.speed", "Simulated seconds per real second")
        self.add_sensor(self._faults_sensor)
        self.add_sensor(self._speed_sensor)
        self.update_sensors()

    @staticmethod
    def make_sensor(name: str, spec: SensorSpec) -> Sensor:
        """Make the sensor that exposes the model reading ``name`` described by ``spec``."""
        params = list(spec.params) if spec.params else None
        return Sensor(_SENSOR_TYPES[spec.type], name, spec.description, spec.units, params)

    def update_sensors(self) -> None:
        """Push the model's current readings into the sensors whose value or status changed.

        Call this after changing the model in a request handler; the tick calls it too.
        """
        self._publish(self.model.readings(), time.time())
        faults = ",".join(sorted(self.model.faults))
        if self._faults_sensor.value() != faults or self._faults_sensor.status() == Status.UNKNOWN:
            status = Status.WARN if faults else Status.NOMINAL
            self._faults_sensor.set(time.time(), status, faults)
        if self._speed_sensor.value() != self.clock.speed:
            self._speed_sensor.set(time.time(), Status.NOMINAL, self.clock.speed)

    def _publish(self, readings: Mapping[str, Value], timestamp: float) -> None:
        published = self._published
        for name, reading in readings.items():
            key = (reading.value, reading.status)
            if published.get(name) == key:
                continue
            published[name] = key
            sensor = self._model_sensors.get(name)
            if sensor is not None:
                sensor.set(timestamp, int(reading.status), reading.value)

    def advance(self) -> None:
        """Bring the model up to the clock's current time and publish its readings."""
        self.model.advance_to(self.clock.now())
        self.update_sensors()

    # -- the tick -----------------------------------------------------------------------------

    def on_server_start(self) -> None:
        super().on_server_start()
        # Re-base the model on the clock: time spent between construction and start is skipped
        # in one step rather than simulated as one huge tick.
        self.model.advance_to(self.clock.now())
        self._periodic = PeriodicCallback(self._tick, self.tick_interval * 1000.0)
        self._periodic.start()

    def on_server_stop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None
        super().on_server_stop()

    def _tick(self) -> None:
        try:
            self.advance()
            self.on_tick()
        except Exception:
            # One bad update must not stop the simulation: log it and carry on.
            self._logger.exception("%s: model update failed", self.DEVICE)

    def on_tick(self) -> None:
        """Hook: called after every periodic model update (default: nothing)."""

    # -- simulation requests ------------------------------------------------------------------

    async def request_sim_fault(
        self, req: ClientRequestConnection, kind: str | None = None, *options: str
    ) -> int | None:
        """Inject a simulated fault, or list the fault kinds when called without arguments.

        Parameters
        ----------
        kind : str, optional
            The fault kind (see the informs of ``?sim-fault`` without arguments).
        options : str, optional
            ``key=value`` options of the fault, e.g. ``speed=30`` or ``channels=1,2``.

        Informs
        -------
        kind, description : str
            Without arguments: one inform per fault kind.

        Returns
        -------
        count : int
            Without arguments: the number of fault kinds.
        """
        if kind is None:
            for name, description in self.model.FAULTS.items():
                req.inform(name, description)
            return len(self.model.FAULTS)
        self.model.advance_to(self.clock.now())
        try:
            self.model.inject_fault(kind, **parse_fault_options(options))
        except (ValueError, TypeError) as exc:
            raise FailReply(str(exc)) from None
        self.update_sensors()
        return None

    async def request_sim_clear(
        self, req: ClientRequestConnection, kind: str | None = None
    ) -> None:
        """Clear one simulated fault, or all of them.

        Parameters
        ----------
        kind : str, optional
            The fault to clear; every fault when absent.
        """
        self.model.advance_to(self.clock.now())
        if kind is None:
            self.model.clear_faults()
        elif kind not in self.model.FAULTS:
            known = ", ".join(sorted(self.model.FAULTS))
            raise FailReply(f"unknown fault {show_argument(kind)} (known: {known})")
        else:
            self.model.clear_fault(kind)
        self.update_sensors()

    async def request_sim_speed(
        self, req: ClientRequestConnection, factor: float | None = None
    ) -> float:
        """Query or set the simulation speed (simulated seconds per real second).

        Parameters
        ----------
        factor : float, optional
            New speed; must be positive.

        Returns
        -------
        speed : float
            The speed now in force.
        """
        if factor is not None:
            if not (factor > 0 and math.isfinite(factor)):
                raise FailReply(f"speed must be positive and finite, got {factor!r}")
            self.model.advance_to(self.clock.now())
            self.clock.speed = factor
            self.update_sensors()
        return self.clock.speed
