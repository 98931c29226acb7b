"""katcpx's InspectingClientAsync (katcp-python's API) against a real DeviceTestServer."""

from __future__ import annotations

import asyncio

import pytest

from katcpx import Message
from katcpx.inspecting_client import InspectingClientAsync, InspectingClientStateType
from katcpx.testutils import DeviceTestServer


class QuickRetry(InspectingClientAsync):
    initial_resync_timeout = 0.05
    max_resync_timeout = 0.1


@pytest.fixture
def server():
    srv = DeviceTestServer("127.0.0.1", 0)
    srv.start(timeout=5)
    yield srv
    assert srv.stop() is None  # as katcp-python's DeviceTestServer.stop
    srv.join(5)


async def test_syncs_the_model_and_follows_interface_changes(server):
    states = []
    client = InspectingClientAsync(*server.bind_address)
    client.set_state_callback(lambda state, changes: states.append((state, changes)))
    await client.connect(timeout=5)
    try:
        await client.until_synced(timeout=5)
        assert {"an.int", "a.float"} <= set(client.sensors)
        assert {"help", "slow-command"} <= set(client.requests)
        sensor = await client.future_get_sensor("an.int")
        assert sensor.name == "an.int" and sensor.stype == "integer"
        request = await client.future_get_request("slow-command")
        assert request.name == "slow-command" and request.description.startswith("A slow command")
        assert states[-1][0] == InspectingClientStateType(True, True, False, True)
        assert any(changes and "an.int" in changes.sensors.added for _, changes in states)
        # A lookup of something unknown asks the device, and answers False.
        assert await client.future_check_sensor("no.such.sensor") is False
        reply, informs = await client.simple_request("sensor-value", "an.int")
        assert reply.reply_ok() and informs[0].arguments[2] == b"an.int"
    finally:
        client.stop()


async def test_a_failed_sensor_list_keeps_the_model_and_retries(server):
    client = QuickRetry(*server.bind_address)
    unsynced_reports = 0
    retried = asyncio.Event()

    def on_state(state, changes):
        nonlocal unsynced_reports
        if server.break_sensor_list and not state.synced:
            unsynced_reports += 1
            if unsynced_reports >= 6:  # the loop went round (and failed) more than once
                retried.set()

    client.set_state_callback(on_state)
    await client.connect(timeout=5)
    try:
        await client.until_synced(timeout=5)
        before = set(client.sensors)
        server.break_sensor_list = "broken on purpose"
        server.mass_inform(Message.inform("interface-changed"))
        await asyncio.wait_for(retried.wait(), 5)
        # Only ok is success (spec 5.1 s2): never synced on a fail, and the model is kept.
        assert not client.synced
        assert set(client.sensors) == before
        server.break_sensor_list = False
        await client.until_synced(timeout=5)
        assert set(client.sensors) == before
    finally:
        client.stop()
