"""Fixtures for the resource tests: small aiokatcp device servers on the test's own loop."""

import asyncio
import enum

import aiokatcp
import pytest

Mode = enum.Enum("Mode", {"IDLE": "idle", "TRACK": "track"})


class Antenna(aiokatcp.DeviceServer):
    """A pretend antenna: ``?target az el`` slews, ``on-target`` becomes true shortly after."""

    VERSION = "antenna-1.0"
    BUILD_STATE = "antenna-1.0.0"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, n_extra: int = 0) -> None:
        super().__init__(host, port)
        self.sensors.add(
            aiokatcp.Sensor(
                float,
                "pos.az",
                "Azimuth",
                "deg",
                default=0.0,
                initial_status=aiokatcp.Sensor.Status.NOMINAL,
            )
        )
        self.sensors.add(
            aiokatcp.Sensor(
                float,
                "pos.el",
                "Elevation",
                "deg",
                default=90.0,
                initial_status=aiokatcp.Sensor.Status.NOMINAL,
            )
        )
        self.sensors.add(
            aiokatcp.Sensor(
                bool,
                "on-target",
                "On target",
                default=True,
                initial_status=aiokatcp.Sensor.Status.NOMINAL,
            )
        )
        self.sensors.add(
            aiokatcp.Sensor(
                Mode,
                "mode",
                "Mode",
                default=Mode.IDLE,
                initial_status=aiokatcp.Sensor.Status.NOMINAL,
            )
        )
        for i in range(n_extra):
            self.sensors.add(
                aiokatcp.Sensor(
                    int,
                    f"extra.s{i:04d}",
                    "Extra",
                    default=i,
                    initial_status=aiokatcp.Sensor.Status.NOMINAL,
                )
            )
        self.slew_time = 0.05
        self._slew: asyncio.TimerHandle | None = None

    async def request_target(self, ctx, az: float, el: float) -> None:
        """Point at (az, el) degrees; on-target goes true when the slew ends."""
        self.sensors["on-target"].value = False
        self.sensors["mode"].value = Mode.TRACK

        def arrive() -> None:
            self.sensors["pos.az"].value = az
            self.sensors["pos.el"].value = el
            self.sensors["on-target"].value = True

        self._slew = asyncio.get_running_loop().call_later(self.slew_time, arrive)

    async def request_fail_me(self, ctx) -> None:
        """Always fails."""
        raise aiokatcp.FailReply("as requested")

    async def request_add_sensor(self, ctx, name: str, value: int) -> None:
        """Add an integer sensor at runtime and announce it."""
        self.sensors.add(
            aiokatcp.Sensor(
                int, name, "Added", default=value, initial_status=aiokatcp.Sensor.Status.NOMINAL
            )
        )
        self.mass_inform("interface-changed", "sensor-list")

    async def request_remove_sensor(self, ctx, name: str) -> None:
        """Remove a sensor at runtime and announce it."""
        del self.sensors[name]
        self.mass_inform("interface-changed", "sensor", name, "removed")

    async def request_enable_extra(self, ctx) -> None:
        """Add the ?extra request at runtime and announce it."""
        handler = _Extras._request_handlers["extra"]
        self._request_handlers = {**self._request_handlers, "extra": handler}
        self.mass_inform("interface-changed", "request", "extra", "added")


class _Extras(aiokatcp.DeviceServer):
    """Only a source of the ?extra handler for Antenna.request_enable_extra."""

    VERSION = BUILD_STATE = "extras"

    async def request_extra(self, ctx, x: int) -> int:
        """Double a number."""
        return 2 * x


class ServerHandle:
    """Runs an :class:`Antenna` and can restart it on the same port."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.server: Antenna | None = None
        self.port = 0

    async def start(self) -> Antenna:
        self.server = Antenna("127.0.0.1", self.port, **self.kwargs)
        await self.server.start()
        self.port = self.server.sockets[0].getsockname()[1]
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


@pytest.fixture
async def antenna():
    handle = ServerHandle()
    await handle.start()
    yield handle
    await handle.stop()


from katcpx.flags import ProtocolFlags  # noqa: E402
from katcpx.kattypes import request_timeout_hint  # noqa: E402
from katcpx.sensor import Sensor  # noqa: E402
from katcpx.server import DeviceServer  # noqa: E402


class KatcpxDish(DeviceServer):
    """A katcpx server with timeout hints and bulk sampling (5.1-BIMT)."""

    PROTOCOL_INFO = ProtocolFlags(5, 1, "BIMT")
    VERSION_INFO = ("dish", 1, 0)
    BUILD_INFO = ("dish", 1, 0, "")

    def setup_sensors(self) -> None:
        self.add_sensor(Sensor.float("pos.az", "Azimuth", "deg", default=0.0))
        self.add_sensor(Sensor.boolean("on-target", "On target", default=True))
        self.add_sensor(Sensor.float("temp", "Temperature", "degC", default=20.0))

    @request_timeout_hint(7.5)
    def request_target(self, req, msg):
        """Point at az el (arrives at once)."""
        self.get_sensor("pos.az").set_value(float(msg.arguments[0]))
        return req.make_reply("ok")


@pytest.fixture
def katcpx_dish():
    """A :class:`KatcpxDish` running in its own managed thread."""
    server = KatcpxDish("127.0.0.1", 0)
    server.start(timeout=5)
    yield server
    if server.running():  # a test may have stopped it already
        server.stop()
    server.join(timeout=5)
