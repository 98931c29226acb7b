"""An automatic ``#interface-changed`` and the device's own for one change reach clients once.

katcp-python devices send ``#interface-changed`` themselves after ``add_sensor``; katcpx
sends one automatically too. The automatic one waits for the end of the loop turn (a grace
period for changes made off the loop) and is dropped when the device sent its own.
"""

from __future__ import annotations

import asyncio

import pytest

from katcpx import DeviceServer, Message, Sensor
from katcpx.inspecting_client import InspectingClientAsync


class Device(DeviceServer):
    VERSION_INFO = ("d", 1, 0)
    BUILD_INFO = ("d", 1, 0, "")

    def setup_sensors(self) -> None:
        pass


@pytest.fixture
def server():
    srv = Device("127.0.0.1", 0)
    srv.start(timeout=5)
    yield srv
    srv.stop()
    srv.join(5)


async def _changes_until(
    reader: asyncio.StreamReader, last: bytes, prefix: bytes = b"#interface-changed"
) -> list[bytes]:
    """The lines starting with `prefix` read up to and including `last` (or the first)."""
    seen = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 5)).rstrip(b"\n")
        if line.startswith(prefix):
            seen.append(line)
        if line == last or (not last and seen):
            return seen


def _add_and_announce(srv: Device, name: str) -> None:
    srv.add_sensor(Sensor.integer(name, "", "", default=1))
    srv.mass_inform(Message.inform("interface-changed", "sensor-list"))


async def test_device_and_automatic_inform_reach_a_client_once(server):
    reader, writer = await asyncio.open_connection(*server.bind_address)
    await _changes_until(reader, b"", prefix=b"#version-connect katcp-device")  # registered
    syncs = []
    all_synced = asyncio.Event()
    client = InspectingClientAsync(*server.bind_address)

    def on_state(state, changes):
        if changes:
            syncs.append(state)
        if state.synced and {"a", "b", "c"} <= set(client.sensors):
            all_synced.set()

    client.set_state_callback(on_state)
    await client.connect(timeout=5)
    try:
        await client.until_synced(timeout=5)
        synced_before = len(syncs)
        # Off the loop (this test's thread is not the server's loop thread).
        _add_and_announce(server, "a")
        # On the server's loop, in one turn.
        server.ioloop.add_callback(_add_and_announce, server, "b")
        seen: list[bytes] = []
        while len(seen) < 2:
            seen += await _changes_until(reader, b"")
        assert seen == [b"#interface-changed sensor-list"] * 2
        # A change the device does not announce: its automatic inform still comes. (Made
        # only now: a device's own inform sent after it would cover it, and drop it.)
        server.add_sensor(Sensor.integer("c", "", "", default=1))
        seen = await _changes_until(reader, b"#interface-changed sensor c added")
        assert seen == [b"#interface-changed sensor c added"]
        await asyncio.wait_for(all_synced.wait(), 5)
        # Three #interface-changed, so at most three re-syncs (not six).
        assert 1 <= len(syncs) - synced_before <= 3, syncs[synced_before:]
    finally:
        client.stop()
        writer.close()
