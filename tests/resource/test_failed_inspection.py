"""A failed ?sensor-list or ?help is never taken as an empty answer (spec 5.1 section 2).

The resource stays unsynced, retries with backoff and keeps its last good model.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from katcpx.message import Message
from katcpx.resource import InspectingClient, KATCPClientResource
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

T = 5.0


class Flaky(DeviceServer):
    """Answers ?sensor-list and ?help with ``fail`` while told to."""

    VERSION_INFO = ("flaky", 1, 0)
    BUILD_INFO = ("flaky", 1, 0, "")
    fail_sensor_list = False
    fail_help = False

    def setup_sensors(self) -> None:
        self.add_sensor(Sensor.integer("counter", "A count", "", default=1))
        self.add_sensor(Sensor.float("temp", "A temperature", "degC", default=20.0))

    def request_sensor_list(self, req, msg):
        """List sensors, unless told to fail."""
        if self.fail_sensor_list:
            return req.make_reply("fail", "hardware busy")
        return super().request_sensor_list(req, msg)

    def request_help(self, req, msg):
        """List requests, unless told to fail."""
        if self.fail_help:
            return req.make_reply("fail", "hardware busy")
        return super().request_help(req, msg)

    def request_ping(self, req, msg):
        """Answer ok."""
        return req.make_reply("ok")


@pytest.fixture
def flaky():
    server = Flaky("127.0.0.1", 0)
    server.start(timeout=T)
    yield server
    server.stop().result(T)
    server.join(T)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(InspectingClient, "SYNC_RETRY_DELAY", 0.05, raising=False)
    monkeypatch.setattr(InspectingClient, "SYNC_RETRY_MAX_DELAY", 0.2, raising=False)


@contextlib.asynccontextmanager
async def started(server: DeviceServer, synced: bool = True):
    """A resource for `server`, started (and synced unless told not to wait), then stopped."""
    res = KATCPClientResource({"name": "flaky", "address": server.bind_address, "controlled": True})
    res.start()
    try:
        if synced:
            await res.until_synced(timeout=T)
        yield res
    finally:
        res.stop()
        await res.until_stopped(timeout=T)


async def stays_unsynced(res: KATCPClientResource, seconds: float = 0.5) -> None:
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        await res.until_synced(timeout=seconds)
    assert not res.synced and res.state == "syncing"


@pytest.mark.parametrize("which", ["fail_sensor_list", "fail_help"])
async def test_failed_initial_list_is_not_an_empty_model(flaky, which):
    setattr(flaky, which, True)
    async with started(flaky, synced=False) as res:
        await stays_unsynced(res)  # before: "synced" with no sensors (or no requests)
        setattr(flaky, which, False)
        await res.until_synced(timeout=T)  # the retry succeeds
        assert set(res.sensor) == {"counter", "temp"}
        assert "ping" in res.req


async def test_failed_relist_after_interface_changed_keeps_the_sensors(flaky):
    async with started(flaky) as res:
        assert set(res.sensor) == {"counter", "temp"}
        flaky.fail_sensor_list = True
        not_synced = res.until_not_synced(timeout=T)
        flaky.mass_inform(Message.inform("interface-changed", "sensor-list"))
        await not_synced
        await stays_unsynced(res)
        # The last good model is kept: before, the sensors were deleted here.
        assert set(res.sensor) == {"counter", "temp"}
        assert (await res.sensor.counter.get_value()) == 1
        flaky.add_sensor(Sensor.integer("added", "New", "", default=7))  # interface-changed
        flaky.fail_sensor_list = False
        await res.until_synced(timeout=T)
        assert set(res.sensor) == {"counter", "temp", "added"}


async def test_single_unknown_sensor_is_removed_but_other_failures_retry(flaky):
    async with started(flaky) as res:
        # "?sensor-list temp" failing with "Unknown sensor" means it is gone ...
        flaky.remove_sensor("temp")
        await res.until_not_synced(timeout=T)
        await res.until_synced(timeout=T)
        assert set(res.sensor) == {"counter"}
        # ... but any other failure of a single re-list keeps the sensor and retries.
        flaky.fail_sensor_list = True
        flaky.mass_inform(Message.inform("interface-changed", "sensor", "counter", "modified"))
        await res.until_not_synced(timeout=T)
        await stays_unsynced(res)
        assert set(res.sensor) == {"counter"}
        flaky.fail_sensor_list = False
        await res.until_synced(timeout=T)
        assert set(res.sensor) == {"counter"}


async def test_container_stays_unsynced_and_keeps_the_child_model(flaky):
    from katcpx.resource import KATCPClientResourceContainer

    c = KATCPClientResourceContainer(
        {"name": "array", "clients": {"m1": {"address": flaky.bind_address, "controlled": True}}}
    )
    c.start()
    try:
        await c.until_synced(timeout=T)
        assert {"m1_counter", "m1_temp"} <= set(c.sensor)
        flaky.fail_sensor_list = True
        not_synced = c.until_not_synced(timeout=T)
        flaky.mass_inform(Message.inform("interface-changed", "sensor-list"))
        await not_synced
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await c.until_synced(timeout=0.5)
        assert {"m1_counter", "m1_temp"} <= set(c.sensor)
        flaky.fail_sensor_list = False
        await c.until_synced(timeout=T)
    finally:
        c.stop()
        await asyncio.gather(*c.until_stopped(timeout=T).values())
