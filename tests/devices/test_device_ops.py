"""Operations of the simulated devices (antenna ``slew``/``track``, cryo ``cooldown``).

Each server runs on the test's loop with a fast simulation clock and is driven through a real
client over 127.0.0.1 with :func:`katcpx.ops.ops_for`. Waits are on replies and on
``#sensor-status`` informs, with timeouts; nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from katcpx_devices.servers import AntennaServer, CryoServer, SimDeviceServer

from katcpx.client import AsyncClient
from katcpx.message import Message
from katcpx.ops import ERROR, OK, AsyncOpAccessor, ops_for

TIMEOUT = 10.0

#: The ``connect`` fixture: ``await connect(cls, **kwargs)`` -> ``(server, client, ops)``.
Connect = Callable[..., Any]


class Client(AsyncClient):
    """An AsyncClient that records the latest ``#sensor-status`` of each sensor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.readings: dict[str, tuple[str, str]] = {}
        self._changed = asyncio.Event()

    def inform_sensor_status(self, msg: Message) -> None:
        """Record the readings."""
        args = [a.decode() for a in msg.arguments]
        for i in range(int(args[1])):
            name, status, value = args[2 + 3 * i : 5 + 3 * i]
            self.readings[name] = (status, value)
        self._changed.set()

    async def until_reading(
        self, name: str, cond: Callable[[str, str], bool], timeout: float = TIMEOUT
    ) -> tuple[str, str]:
        """Subscribe to ``name`` (event strategy) and wait until ``cond(status, value)``."""
        if name not in self.readings:
            await self.call("sensor-sampling", name, "event")
        deadline = time.monotonic() + timeout
        while not (name in self.readings and cond(*self.readings[name])):
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{name}: condition not met; now {self.readings.get(name)}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return self.readings[name]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """``await connect(cls, **kwargs)`` -> ``(server, client, ops)``; stopped afterwards."""
    made: list[tuple[SimDeviceServer, Client]] = []

    async def factory(
        cls: type[SimDeviceServer], **kwargs: Any
    ) -> tuple[Any, Client, AsyncOpAccessor]:
        kwargs.setdefault("seed", 3)
        server = cls("127.0.0.1", 0, **kwargs)
        server.start()
        await server.until_running(TIMEOUT)
        client = await Client.connect("127.0.0.1", server.bind_address[1], timeout=TIMEOUT)
        made.append((server, client))
        ops = ops_for(client)
        assert isinstance(ops, AsyncOpAccessor)
        return server, client, ops

    yield factory
    for server, client in made:
        await client.aclose()
        server.stop()
        await server.until_stopped(TIMEOUT)


def texts(reply: Any) -> list[str]:
    """The message texts of an OpReply's session."""
    return [text for _, text in reply.session["messages"]]


# -- antenna ----------------------------------------------------------------------------------


async def test_operations_are_listed(connect: Connect) -> None:
    _, _, ant = await connect(AntennaServer)
    infos = await ant.list()
    assert (infos["slew"].kind, infos["track"].kind) == ("task", "process")
    assert [p["name"] for p in infos["track"].params] == ["az", "el", "az_rate", "el_rate"]
    _, _, cryo = await connect(CryoServer)
    assert (await cryo.list())["cooldown"].kind == "task"


async def test_slew_task_reaches_the_target(connect: Connect) -> None:
    server, client, ops = await connect(AntennaServer, speed=100, progress_interval=0.02)
    reply = await asyncio.wait_for(ops.slew(az=30.0, el=60.0), TIMEOUT)
    assert reply.status == OK, reply
    session = reply.session
    assert (session["status"], session["success"]) == ("done", True)
    assert session["params"] == {"az": 30.0, "el": 60.0}
    assert texts(reply)[-2].startswith("On target at az=30.000 el=60.000")
    assert any(t.startswith("Slewing to az=30.000 el=60.000") for t in texts(reply))
    data = session["data"]
    assert data["remaining"] == 0.0
    assert abs(data["az"] - 30.0) < 0.01 and abs(data["el"] - 60.0) < 0.01
    model = server.model
    assert model.mode == "track" and model.on_target
    assert abs(model.az - 30.0) < 0.01 and abs(model.el - 60.0) < 0.01
    await client.until_reading("op.slew.status", lambda s, v: (s, v) == ("nominal", "done"))


async def test_slew_out_of_range_fails_clearly(connect: Connect) -> None:
    server, _, ops = await connect(AntennaServer, speed=100)
    reply = await asyncio.wait_for(ops.slew(az=300.0, el=45.0), TIMEOUT)
    assert reply.session["success"] is False
    assert "Cannot slew: azimuth 300.0 deg is outside the soft limits" in texts(reply)[-2]
    assert server.model.mode == "stop"


async def test_abort_of_slew_is_prompt_and_brakes(connect: Connect) -> None:
    server, client, ops = await connect(AntennaServer, speed=2, progress_interval=0.05)
    reply = await ops.slew.start(az=200.0, el=20.0)  # a 100 s (simulated) slew
    assert reply.status == OK, reply
    await client.until_reading("az-rate", lambda s, v: float(v) > 0.0)
    t0 = time.monotonic()
    aborted = await ops.slew.abort()
    reply = await ops.slew.wait(timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    assert aborted.status == OK, aborted
    assert elapsed < 0.5
    assert (reply.session["status"], reply.session["success"]) == ("done", False)
    assert texts(reply)[-2].startswith("Aborted after")
    # Braking: the drive aims at its stopping point, nowhere near the slew's target.
    model = server.model
    assert model.mode == "stop"
    assert model.az_axis.target < 50.0
    await client.until_reading("op.slew.status", lambda s, v: (s, v) == ("error", "done"))


async def test_stop_request_interrupts_a_slew_task(connect: Connect) -> None:
    server, client, ops = await connect(AntennaServer, speed=2, progress_interval=0.05)
    await ops.slew.start(az=200.0, el=20.0)
    await client.until_reading("mode", lambda s, v: v == "slew")
    await client.call("stop")  # the plain request still works and wins
    reply = await ops.slew.wait(timeout=TIMEOUT)
    assert reply.session["success"] is False
    assert texts(reply)[-2] == "Slew interrupted by ?stop."
    assert server.model.mode == "stop"


async def test_second_start_fails_clearly(connect: Connect) -> None:
    _, _, ops = await connect(AntennaServer, speed=1)
    first = await ops.slew.start(az=200.0, el=20.0)
    assert first.status == OK, first
    sid = first.session["session_id"]
    second = await ops.slew.start(az=10.0, el=50.0)
    assert second.status == ERROR
    assert second.msg == f'Operation "slew" is already running (session {sid}).'
    # The refusal carries the running session, which is unaffected.
    assert second.session["session_id"] == sid
    assert second.session["params"] == {"az": 200.0, "el": 20.0}
    assert (await ops.slew.abort()).status == OK


async def test_track_process_runs_until_stopped(connect: Connect) -> None:
    server, client, ops = await connect(AntennaServer, speed=50, progress_interval=0.02)
    # A target drifting at 0.05 deg/s in azimuth: fast enough to see in a few simulated s.
    reply = await ops.track.start(az=10.0, el=80.0, az_rate=0.05)
    assert reply.status == OK, reply

    def acquired(status: str, value: str) -> bool:
        return '"on_target":true' in value and "Target acquired" in value

    await client.until_reading("op.track.session", acquired)
    status = await ops.track.status()
    assert status.session["status"] == "running"
    assert status.session["data"]["error"] <= server.model.tolerance
    assert server.model.mode == "track"
    # Keep tracking while the target moves on by at least 0.2 deg.
    await client.until_reading("requested-az", lambda s, v: float(v) > 10.2)

    stopped = await ops.track.stop()
    assert stopped.status == OK, stopped
    reply = await ops.track.wait(timeout=TIMEOUT)
    assert (reply.session["status"], reply.session["success"]) == ("done", True)
    assert texts(reply)[-2].startswith("Tracking stopped after")
    assert server.model.mode == "stop"
    assert reply.session["data"]["target_az"] > 10.2
    await client.until_reading("op.track.status", lambda s, v: (s, v) == ("nominal", "done"))
    # A process is stopped, not aborted.
    assert (await ops.track.abort()).status == ERROR


async def test_motion_command_ends_tracking(connect: Connect) -> None:
    server, client, ops = await connect(AntennaServer, speed=50, progress_interval=0.02)
    await ops.track.start(az=0.0, el=85.0)
    await client.until_reading("mode", lambda s, v: v == "track")
    await asyncio.wait_for(client.call("target", 5.0, 85.0), TIMEOUT)
    reply = await ops.track.wait(timeout=TIMEOUT)
    assert reply.session["success"] is False
    assert texts(reply)[-2] == "Tracking interrupted by ?target."
    assert server.model.requested == (5.0, 85.0)


# -- cryocooler -------------------------------------------------------------------------------


async def test_cooldown_task_reaches_cold(connect: Connect) -> None:
    server, _, ops = await connect(CryoServer, speed=5000)
    reply = await asyncio.wait_for(ops.cooldown(), TIMEOUT)
    assert reply.status == OK, reply
    assert reply.session["success"] is True
    messages = texts(reply)
    stages = [t for t in messages if t.startswith("Stage ")]
    assert [t.split()[1] for t in stages] == ["first-stage", "second-stage"]
    assert messages[-2].startswith("Cold: ")
    data = reply.session["data"]
    assert (data["state"], data["stage"]) == ("cold", "second-stage")
    assert data["temperature"] < 20.5
    assert server.model.state == "cold"


async def test_fault_during_cooldown_fails_it(connect: Connect) -> None:
    server, client, ops = await connect(CryoServer, speed=200)
    assert (await ops.cooldown.start()).status == OK
    await client.until_reading("state", lambda s, v: v == "cooling")
    await client.call("sim-fault", "compressor-trip")
    reply = await ops.cooldown.wait(timeout=TIMEOUT)
    assert reply.status == OK  # the wait worked; the session tells how the cool-down ended
    assert (reply.session["status"], reply.session["success"]) == ("done", False)
    assert texts(reply)[-2] == (
        "Cool-down failed: cool-down interrupted: state is fault (compressor-trip)."
    )
    assert reply.session["data"]["state"] == "fault"
    # Refused from the start while the fault lasts.
    again = await asyncio.wait_for(ops.cooldown(), TIMEOUT)
    assert again.session["success"] is False
    assert texts(again)[-2].startswith("Cannot cool down:")


async def test_abort_of_cooldown_warms_up(connect: Connect) -> None:
    server, client, ops = await connect(CryoServer, speed=50)
    await ops.cooldown.start()
    await client.until_reading("state", lambda s, v: v == "cooling")
    second = await ops.cooldown.start()
    assert second.status == ERROR
    assert second.msg.startswith('Operation "cooldown" is already running')
    assert (await ops.cooldown.abort()).status == OK
    reply = await ops.cooldown.wait(timeout=TIMEOUT)
    assert reply.session["success"] is False
    assert any(t.startswith("Compressor off at") for t in texts(reply))
    # Barely cooled, so it may already read warm again; either way the compressor is off.
    assert server.model.state in ("warming", "warm")
    assert not server.model.compressor_on
    await client.until_reading("compressor-on", lambda s, v: v == "0")
