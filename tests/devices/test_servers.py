"""The simulated device servers, driven through a real katcpx client over 127.0.0.1.

Every server runs on the test's own loop with a fast simulation clock, so slews and
cool-downs take well under a second or two of wall time. Waits are on replies and on
``#sensor-status`` informs, with timeouts; nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from katcpx_devices.models import Digitiser, Status
from katcpx_devices.models.antenna import DEFAULT_AZ, DEFAULT_EL
from katcpx_devices.servers import (
    DEVICES,
    AntennaServer,
    CryoServer,
    DigitiserServer,
    PowerSupplyServer,
    SimDeviceServer,
    WeatherServer,
    parse_fault_options,
)

from katcpx.client import AsyncClient
from katcpx.errors import ConnectionLost, FailReplyError
from katcpx.message import Message

TIMEOUT = 10.0


class Client(AsyncClient):
    """An AsyncClient that records ``#sensor-status`` and ``#log`` informs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.readings: dict[str, tuple[str, str]] = {}
        self.status_count = 0
        self.logs: list[Message] = []
        self._changed = asyncio.Event()

    def inform_sensor_status(self, msg: Message) -> None:
        """Record the readings."""
        args = [a.decode() for a in msg.arguments]
        # timestamp, count, then (name, status, value) per sensor
        for i in range(int(args[1])):
            name, status, value = args[2 + 3 * i : 5 + 3 * i]
            self.readings[name] = (status, value)
        self.status_count += 1
        self._changed.set()

    def inform_log(self, msg: Message) -> None:
        """Record it."""
        self.logs.append(msg)
        self._changed.set()

    async def until(self, cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``cond()`` holds, re-checking on every recorded inform."""
        deadline = time.monotonic() + timeout
        while not cond():
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("condition not met in time")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                raise AssertionError(f"condition not met; readings {self.readings}") from None

    async def watch(self, *names: str) -> None:
        """Subscribe to event sampling of ``names``."""
        for name in names:
            await self.call("sensor-sampling", name, "event")

    async def until_reading(
        self, name: str, cond: Callable[[str, str], bool], timeout: float = TIMEOUT
    ) -> tuple[str, str]:
        await self.until(lambda: name in self.readings and cond(*self.readings[name]), timeout)
        return self.readings[name]

    async def value(self, name: str) -> tuple[str, str]:
        """``(status, value)`` of a sensor, from ``?sensor-value``."""
        _, informs = await self.call("sensor-value", name)
        args = [a.decode() for a in informs[0].arguments]
        return args[3], args[4]


async def start(cls: type[SimDeviceServer], **kwargs: Any) -> SimDeviceServer:
    kwargs.setdefault("seed", 7)
    server = cls("127.0.0.1", 0, **kwargs)
    server.start()
    await server.until_running(TIMEOUT)
    return server


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """``await connect(cls, **kwargs)`` -> ``(server, client)``; both stopped afterwards."""
    made: list[tuple[SimDeviceServer, Client]] = []

    async def factory(cls: type[SimDeviceServer], **kwargs: Any) -> tuple[Any, Client]:
        server = await start(cls, **kwargs)
        client = await Client.connect("127.0.0.1", server.bind_address[1], timeout=TIMEOUT)
        made.append((server, client))
        return server, client

    yield factory
    for server, client in made:
        await client.aclose()
        server.stop()
        await server.until_stopped(TIMEOUT)


def reply_args(reply: Message) -> list[str]:
    return [a.decode() for a in reply.arguments[1:]]


def trapezoid_time(distance: float, vmax: float, accel: float) -> float:
    """Rest-to-rest move time under rate and acceleration limits (independent of the model)."""
    distance = abs(distance)
    if distance >= vmax * vmax / accel:
        return distance / vmax + vmax / accel
    return 2 * math.sqrt(distance / accel)


# -- shared simulation requests ---------------------------------------------------------------


def test_every_device_is_registered() -> None:
    assert list(DEVICES) == ["antenna", "psu", "weather", "cryo", "digitiser"]


def test_parse_fault_options() -> None:
    assert parse_fault_options(("speed=18", "sigma=0.5", "sensor=temperature")) == {
        "speed": 18,
        "sigma": 0.5,
        "sensor": "temperature",
    }
    assert parse_fault_options(("channels=1,2,30",)) == {"channels": [1, 2, 30]}
    with pytest.raises(Exception, match="key=value"):
        parse_fault_options(("speed",))


async def test_sim_requests(connect) -> None:
    server, client = await connect(WeatherServer, speed=10)
    reply, informs = await client.call("sim-fault")
    assert reply_args(reply) == [str(len(server.model.FAULTS))]
    assert {m.arguments[0].decode() for m in informs} == set(server.model.FAULTS)

    with pytest.raises(FailReplyError, match="unknown fault 'bogus'.*gust"):
        await client.call("sim-fault", "bogus")
    with pytest.raises(FailReplyError, match="key=value"):
        await client.call("sim-fault", "gust", "fast")
    with pytest.raises(FailReplyError, match="does not take"):
        await client.call("sim-fault", "gust", "colour=red")
    with pytest.raises(FailReplyError, match="unknown fault"):
        await client.call("sim-clear", "bogus")

    await client.watch("sim.faults", "sim.speed")
    await client.call("sim-fault", "gust")
    await client.call("sim-fault", "stale")
    await client.until_reading("sim.faults", lambda s, v: v == "gust,stale" and s == "warn")
    await client.call("sim-clear", "gust")
    await client.until_reading("sim.faults", lambda s, v: v == "stale")
    await client.call("sim-clear")
    await client.until_reading("sim.faults", lambda s, v: v == "" and s == "nominal")

    reply, _ = await client.call("sim-speed")
    assert float(reply_args(reply)[0]) == 10.0
    reply, _ = await client.call("sim-speed", 25)
    assert float(reply_args(reply)[0]) == 25.0
    assert server.clock.speed == 25.0
    await client.until_reading("sim.speed", lambda s, v: float(v) == 25.0)
    for bad in (0, -1, "inf"):
        with pytest.raises(FailReplyError, match="positive"):
            await client.call("sim-speed", bad)


async def test_timeout_hints_on_slow_requests(connect) -> None:
    _, client = await connect(AntennaServer)
    _, informs = await client.call("request-timeout-hint")
    hints = {m.arguments[0].decode(): float(m.arguments[1]) for m in informs}
    assert hints["target"] >= trapezoid_time(460, DEFAULT_AZ.max_rate, DEFAULT_AZ.max_accel)
    assert hints["stow"] > 0
    assert "stop" not in hints


# -- antenna ----------------------------------------------------------------------------------


async def test_slew_takes_the_time_its_rates_imply(connect) -> None:
    speed = 40.0
    server, client = await connect(AntennaServer, speed=speed, progress_interval=0.1)
    az, el = 60.0, 60.0
    expected = max(
        trapezoid_time(az - 0.0, DEFAULT_AZ.max_rate, DEFAULT_AZ.max_accel),
        trapezoid_time(el - 90.0, DEFAULT_EL.max_rate, DEFAULT_EL.max_accel),
    )
    t0 = time.monotonic()
    reply, informs = await client.call("target", az, el)
    elapsed = time.monotonic() - t0
    assert reply.reply_ok()
    assert [float(x) for x in reply_args(reply)] == pytest.approx([az, el], abs=0.01)
    # Real time follows the simulated slew time divided by the speed-up (not a tick early).
    assert expected / speed - 0.02 <= elapsed <= expected / speed + 0.4

    # Progress informs: position and the remaining time, counting down.
    assert len(informs) >= 3
    progress = [[float(a) for a in m.arguments] for m in informs]
    assert all(m.name == "target" and len(p) == 3 for m, p in zip(informs, progress, strict=True))
    assert progress[0][2] == pytest.approx(expected, abs=1.0)
    remaining = [p[2] for p in progress]
    assert remaining == sorted(remaining, reverse=True)
    assert 0.0 < progress[-1][0] < az and el < progress[-1][1] < 90.0

    assert await client.value("on-target") == ("nominal", "1")
    assert (await client.value("mode"))[1] == "track"
    assert float((await client.value("requested-az"))[1]) == az
    assert float((await client.value("az"))[1]) == pytest.approx(az, abs=0.01)


@pytest.mark.parametrize(("az", "el"), [(300.0, 45.0), (-200.0, 45.0), (10.0, 10.0)])
async def test_target_outside_soft_limits_fails_clearly(connect, az, el) -> None:
    server, client = await connect(AntennaServer, speed=40)
    with pytest.raises(FailReplyError, match=r"outside the soft limits \["):
        await client.call("target", az, el)
    assert server.model.mode == "stop"
    with pytest.raises(FailReplyError, match="parameter 1"):
        await client.call("target", "north", 45)


async def test_stop_interrupts_a_slew_and_stow_completes(connect) -> None:
    server, client = await connect(AntennaServer, speed=20)
    await client.watch("mode")
    slew = asyncio.create_task(client.call("target", 200.0, 20.0))
    await client.until_reading("mode", lambda s, v: v == "slew")
    reply, _ = await client.call("stop")  # answered while ?target is still in progress
    assert reply.reply_ok()
    with pytest.raises(FailReplyError, match=r"interrupted by \?stop"):
        await asyncio.wait_for(slew, TIMEOUT)
    await client.until_reading("mode", lambda s, v: v == "stop")

    reply, _ = await client.call("stow")
    assert float(reply_args(reply)[0]) == pytest.approx(90.0, abs=0.01)
    assert server.model.stowed

    # A newer target supersedes the one in progress, which fails saying so.
    first = asyncio.create_task(client.call("target", -100.0, 30.0))
    await client.until_reading("mode", lambda s, v: v == "slew")
    second = asyncio.create_task(client.call("target", 5.0, 85.0))
    with pytest.raises(FailReplyError, match=r"interrupted by \?target"):
        await asyncio.wait_for(first, TIMEOUT)
    reply, _ = await asyncio.wait_for(second, TIMEOUT)
    assert [float(x) for x in reply_args(reply)] == pytest.approx([5.0, 85.0], abs=0.01)


async def test_server_shutdown_fails_a_pending_slew() -> None:
    server = await start(AntennaServer, speed=1)
    client = await Client.connect("127.0.0.1", server.bind_address[1], timeout=TIMEOUT)
    try:
        await client.watch("mode")
        slew = asyncio.create_task(client.call("target", 200.0, 20.0))
        await client.until_reading("mode", lambda s, v: v == "slew")
        server.stop()
        await server.until_stopped(TIMEOUT)
        # The client was sent #disconnect first, so it sees the connection go...
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(slew, TIMEOUT)
        # ...and the handler was told to give up rather than outlive the server.
        assert server._superseded is not None
        assert server._superseded.result() == "server shutdown"
    finally:
        await client.aclose()


def test_same_seed_same_simulation() -> None:
    def first_readings(seed: int) -> list[Any]:
        server = WeatherServer("127.0.0.1", 0, seed=seed)
        return [server.get_sensor(n).value() for n in ("temperature", "pressure", "wind-speed")]

    assert first_readings(3) == first_readings(3)
    assert first_readings(3) != first_readings(4)


async def test_antenna_faults(connect) -> None:
    server, client = await connect(AntennaServer, speed=20)
    await client.watch("mode", "az", "el-drive-ok", "az-drive-ok")

    # drive-fail during a slew ends it, and refuses new targets until cleared.
    slew = asyncio.create_task(client.call("target", 100.0, 45.0))
    await client.until_reading("mode", lambda s, v: v == "slew")
    await client.call("sim-fault", "drive-fail")
    with pytest.raises(FailReplyError, match="drive failure"):
        await asyncio.wait_for(slew, TIMEOUT)
    assert await client.until_reading("mode", lambda s, v: v == "error") == ("error", "error")
    assert client.readings["az-drive-ok"] == ("error", "0")
    with pytest.raises(FailReplyError, match="drives have failed"):
        await client.call("target", 10.0, 80.0)
    await client.call("sim-clear", "drive-fail")
    await client.until_reading("mode", lambda s, v: v == "stop")

    # stuck-el: a move needing elevation cannot complete; az-only slews still work.
    await client.call("sim-fault", "stuck-el")
    await client.until_reading("el-drive-ok", lambda s, v: (s, v) == ("error", "0"))
    el_now = server.model.el
    with pytest.raises(FailReplyError, match="cannot reach target: stuck-el"):
        await client.call("target", 10.0, 30.0)
    reply, _ = await client.call("target", 20.0, el_now)
    assert float(reply_args(reply)[0]) == pytest.approx(20.0, abs=0.01)
    await client.call("sim-clear", "stuck-el")
    await client.until_reading("el-drive-ok", lambda s, v: (s, v) == ("nominal", "1"))

    # encoder-noise: reported positions are noisy and WARN; the true position is not.
    await client.call("sim-fault", "encoder-noise", "sigma=0.5")
    await client.until_reading("az", lambda s, v: s == "warn" and abs(float(v) - 20.0) > 1e-6)
    assert server.model.actual_az == pytest.approx(20.0, abs=0.01)
    await client.call("sim-clear")
    await client.until_reading("az", lambda s, v: s == "nominal")


# -- power supply -----------------------------------------------------------------------------


async def test_psu_setpoints_and_noisy_readbacks(connect) -> None:
    server, client = await connect(PowerSupplyServer, speed=10)
    assert await client.value("state") == ("nominal", "off")
    reply, _ = await client.call("output", "on")
    assert reply_args(reply) == ["on"]
    reply, _ = await client.call("voltage", 5.0)
    assert float(reply_args(reply)[0]) == 5.0
    reply, _ = await client.call("current-limit", 1.5)
    assert float(reply_args(reply)[0]) == 1.5
    await client.watch("voltage", "current")
    seen: set[str] = set()

    def several_values() -> bool:
        if "voltage" in client.readings:
            seen.add(client.readings["voltage"][1])
        return len(seen) >= 3

    await client.until(several_values)  # the readback noise changes on every tick
    assert all(abs(float(v) - 5.0) < 0.05 for v in seen)
    status, current = await client.value("current")
    assert status == "nominal" and float(current) == pytest.approx(0.5, abs=0.01)

    for request, bad, match in [
        ("voltage", 31, "outside"),
        ("current-limit", 0, "outside"),
        ("output", "maybe", "parameter 1"),
        ("sim-load", -1, "positive"),
    ]:
        with pytest.raises(FailReplyError, match=match):
            await client.call(request, bad)


async def test_psu_trip_and_reset(connect) -> None:
    server, client = await connect(PowerSupplyServer, speed=10)
    await client.watch("state", "tripped", "current")
    await client.call("output", "on")
    await client.until_reading("state", lambda s, v: (s, v) == ("nominal", "on"))
    # 25 V into 10 ohm is 2.5 A, over the 2 A limit: the protection trips at once.
    await client.call("voltage", 25.0)
    await client.until_reading("state", lambda s, v: (s, v) == ("error", "tripped"))
    assert client.readings["tripped"] == ("error", "1")
    assert (await client.value("output-on"))[1] == "0"
    await client.until(lambda: any(b"over-current trip" in m.arguments[3] for m in client.logs))
    with pytest.raises(FailReplyError, match="reset it first"):
        await client.call("output", "on")

    await client.call("reset")
    await client.until_reading("state", lambda s, v: (s, v) == ("nominal", "off"))
    assert client.readings["tripped"] == ("nominal", "0")
    await client.call("voltage", 12.0)
    reply, _ = await client.call("output", "on")
    assert reply_args(reply) == ["on"]
    # Lowering the load trips it too.
    await client.call("sim-load", 5.0)
    await client.until_reading("state", lambda s, v: v == "tripped")


async def test_psu_faults(connect) -> None:
    server, client = await connect(PowerSupplyServer, speed=10)
    await client.watch("state", "voltage")
    await client.call("output", "on")

    # overcurrent: the load shorts and the supply trips; clearing it needs ?reset too.
    await client.call("sim-fault", "overcurrent")
    await client.until_reading("state", lambda s, v: (s, v) == ("error", "tripped"))
    await client.call("sim-clear", "overcurrent")
    assert (await client.value("state"))[1] == "tripped"
    await client.call("reset")
    await client.call("output", "on")
    await client.until_reading("state", lambda s, v: v == "on")

    # output-stuck: commands are accepted but the output keeps its voltage, so the readback
    # disagrees with the setpoint and goes ERROR.
    await client.call("sim-fault", "output-stuck")
    await client.call("voltage", 5.0)
    status, value = await client.until_reading("voltage", lambda s, v: s == "error")
    assert float(value) == pytest.approx(12.0, abs=0.05)
    assert (await client.value("voltage-setpoint"))[1] == "5.0"
    await client.call("sim-clear", "output-stuck")
    await client.until_reading(
        "voltage", lambda s, v: s == "nominal" and abs(float(v) - 5.0) < 0.05
    )

    # noisy: the voltage status flickers off nominal.
    await client.call("sim-fault", "noisy", "factor=50")
    await client.until_reading("voltage", lambda s, v: s in ("warn", "error"))


# -- weather ----------------------------------------------------------------------------------


async def test_weather_thresholds_and_gust(connect) -> None:
    server, client = await connect(WeatherServer, speed=10)
    names = ["temperature", "humidity", "pressure", "wind-speed", "wind-direction"]
    await client.watch(*names)
    await client.until(lambda: all(n in client.readings for n in names))
    assert client.readings["wind-speed"][0] == "nominal"

    reply, _ = await client.call("weather")
    values = [float(x) for x in reply_args(reply)]
    assert len(values) == 5
    assert 0.0 <= values[1] <= 100.0 and 0.0 <= values[4] < 360.0

    for speed, status in [(18, "warn"), (25, "error"), (12, "nominal")]:
        await client.call("sim-fault", "gust", f"speed={speed}")
        await client.until_reading("wind-speed", lambda s, v, sp=speed: float(v) == sp)
        assert client.readings["wind-speed"][0] == status
    await client.call("sim-fault", "gust")  # default gust: 25 m/s
    await client.until_reading("wind-speed", lambda s, v: (s, float(v)) == ("error", 25.0))
    await client.call("sim-clear", "gust")
    await client.until_reading("wind-speed", lambda s, v: float(v) < 15 and s == "nominal")


async def test_weather_dead_and_stale_sensors(connect) -> None:
    server, client = await connect(WeatherServer, speed=200)
    await client.watch("temperature", "pressure")
    await client.call("sim-fault", "sensor-dead", "sensor=temperature")
    await client.until_reading("temperature", lambda s, v: s == "unreachable")
    with pytest.raises(FailReplyError, match="no weather sensor"):
        await client.call("sim-fault", "sensor-dead", "sensor=rain")
    await client.call("sim-clear")
    await client.until_reading("temperature", lambda s, v: s == "nominal")

    # stale: values freeze, then go UNKNOWN once older than 60 simulated seconds.
    await client.call("sim-fault", "stale")
    await client.until_reading("pressure", lambda s, v: s == "unknown", timeout=5.0)
    frozen = server.model.readings()["pressure"].value
    assert float(client.readings["pressure"][1]) == frozen


# -- cryocooler -------------------------------------------------------------------------------


async def test_cryo_cools_through_its_stages(connect) -> None:
    speed = 2000.0
    server, client = await connect(CryoServer, speed=speed)
    expected = server.model.expected_cooldown_time()
    await client.watch("state", "stage")
    t0 = time.monotonic()
    reply, informs = await client.call("cooldown")
    elapsed = time.monotonic() - t0
    assert [m.arguments[0].decode() for m in informs] == ["first-stage", "second-stage"]
    assert float(informs[0].arguments[1]) <= 70.0
    assert float(reply_args(reply)[0]) < 20.5
    assert expected / speed - 0.02 <= elapsed <= expected / speed + 0.5
    await client.until_reading("state", lambda s, v: v == "cold")
    assert client.readings["stage"][1] == "second-stage"
    assert (await client.value("compressor-on"))[1] == "1"

    # A second ?cooldown when cold replies at once.
    reply, informs = await client.call("cooldown")
    assert reply.reply_ok() and informs == []

    await client.call("sim-speed", 5000)
    reply, _ = await client.call("warmup")
    assert float(reply_args(reply)[0]) >= server.model.ambient - server.model.warm_margin - 1
    await client.until_reading("state", lambda s, v: v == "warm")


async def test_cryo_faults(connect) -> None:
    server, client = await connect(CryoServer, speed=5000)
    await client.watch("state", "pressure")

    await client.call("sim-fault", "vacuum-leak")
    with pytest.raises(FailReplyError, match="cannot complete.*vacuum-leak"):
        await client.call("cooldown")
    await client.until_reading("pressure", lambda s, v: s == "error")
    await client.call("sim-clear")
    await client.until_reading("pressure", lambda s, v: s == "nominal", timeout=5.0)
    await client.call("warmup")

    await client.call("sim-fault", "compressor-trip")
    await client.until_reading("state", lambda s, v: (s, v) == ("error", "fault"))
    with pytest.raises(FailReplyError, match="compressor-trip"):
        await client.call("cooldown")
    with pytest.raises(FailReplyError, match="clear it first"):
        await client.call("warmup")
    await client.call("sim-clear", "compressor-trip")
    await client.until_reading("state", lambda s, v: v in ("warm", "warming"))
    reply, informs = await client.call("cooldown")
    assert len(informs) == 2


async def test_cryo_trip_during_cooldown_fails_the_request(connect) -> None:
    server, client = await connect(CryoServer, speed=200)
    await client.watch("state")
    cooldown = asyncio.create_task(client.call("cooldown"))
    await client.until_reading("state", lambda s, v: v == "cooling")
    await client.call("sim-fault", "compressor-trip")
    with pytest.raises(FailReplyError, match="interrupted: state is fault"):
        await asyncio.wait_for(cooldown, TIMEOUT)


# -- digitiser --------------------------------------------------------------------------------


async def test_digitiser_pushes_thousands_of_updates(connect) -> None:
    server, client = await connect(DigitiserServer, speed=1, update_rate=10)
    n = server.n_channels
    assert n == 4096
    names = [f"channel.{i:04d}" for i in range(n)]
    reply, _ = await client.call("sensor-sampling", ",".join(names), "event")
    assert reply.reply_ok()
    # The initial value of every channel, then every channel again on each new spectrum.
    await client.until(lambda: client.status_count >= 3 * n, timeout=15.0)
    assert set(client.readings) >= set(names)
    assert server.channel_updates >= 2 * n
    # Read with no await in between, so no tick can come between the two.
    reading = server.channel_sensors[100].read()
    assert reading.value == float(server.model.values[100])
    assert reading.status == int(server.model.statuses[100])
    status, value = await client.value("channel.0100")
    assert status in ("nominal", "warn", "error") and -60.0 < float(value) < 0.0


class QuietDigitiser(DigitiserServer):
    """A digitiser without noise: consecutive spectra are identical."""

    def make_model(self, *, seed: int | None, start_time: float) -> Digitiser:
        return Digitiser(
            n_channels=self.n_channels,
            update_rate=self.update_rate,
            noise_db=0.0,
            seed=seed,
            start_time=start_time,
        )


async def test_digitiser_sets_only_changed_channels(connect) -> None:
    server, client = await connect(QuietDigitiser, speed=50, n_channels=256, update_rate=1)
    assert server.channel_updates == 256  # the initial publication
    await client.watch("update-count", "channel.005", "channel.007", "dead-channels")
    await client.until_reading("update-count", lambda s, v: int(v) >= 3)
    assert server.channel_updates == 256  # identical spectra: nothing re-published

    await client.call("sim-fault", "dead-channel", "channels=5,7")
    await client.until_reading("channel.007", lambda s, v: (s, float(v)) == ("error", -100.0))
    assert client.readings["channel.005"] == ("error", "-100.0")
    assert client.readings["dead-channels"] == ("error", "2")
    assert server.channel_updates == 256 + 2

    # adc-overload: the ADC clips and every channel is ERROR from the next spectrum.
    await client.call("sim-fault", "adc-overload")
    assert await client.value("adc-clipping") == ("error", "1")
    await client.until(lambda: server.channel_updates >= 256 + 2 + 254)
    assert int(server.model.statuses.min()) == Status.ERROR


async def test_digitiser_adc_level_request(connect) -> None:
    server, client = await connect(DigitiserServer, speed=1, n_channels=64)
    reply, _ = await client.call("adc-level", -30)
    assert float(reply_args(reply)[0]) == -30.0
    assert await client.value("adc-level") == ("nominal", "-30.0")
    reply, _ = await client.call("adc-level", 5)
    assert float(reply_args(reply)[0]) == 0.0
    assert await client.value("adc-clipping") == ("error", "1")
    with pytest.raises(FailReplyError, match="parameter 1"):
        await client.call("adc-level", -100)
