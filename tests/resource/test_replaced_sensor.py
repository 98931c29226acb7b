"""A resource keeps its sampling strategy on a sensor the server replaces.

``#interface-changed sensor <name> modified`` (spec 5.1 section 4.2) makes the resource
re-inspect that sensor and set its memorised strategy again: katcpx's server keeps it
anyway, aiokatcp's drops it with the old sensor. Real servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio

import aiokatcp
from server.helpers import ExampleServer

from katcpx import Sensor
from katcpx.resource import KATCPClientResource

T = 5.0


async def _resource(address: tuple[str, int]) -> KATCPClientResource:
    res = KATCPClientResource({"name": "dev", "address": address, "controlled": True})
    res.start()
    await res.until_synced(timeout=T)
    return res


async def _stop(res: KATCPClientResource) -> None:
    res.stop()
    await res.until_stopped(timeout=T)


async def test_a_resource_keeps_its_strategy_on_a_replaced_katcpx_sensor() -> None:
    server = ExampleServer("127.0.0.1", 0)
    await asyncio.to_thread(server.start, T)
    res = await _resource(server.bind_address)
    try:
        assert await res.sensor.an_int.set_strategy("event") == (True, ("event",))
        new = Sensor(Sensor.INTEGER, "an.int", "An integer.", "counts", [0, 100], default=50)
        server.add_sensor(new)
        assert await res.sensor.an_int.wait(50, timeout=T)
        await res.until_synced(timeout=T)
        new.set_value(77)
        assert await res.sensor.an_int.wait(77, timeout=T)
        reply = await res.req.sensor_sampling("an.int")
        assert reply.messages[0].arguments == [b"ok", b"an.int", b"event"]
    finally:
        await _stop(res)
        await asyncio.to_thread(lambda: server.stop().result(T))
        await asyncio.to_thread(server.join, T)


async def test_a_resource_sets_its_strategy_again_when_a_server_drops_it(antenna) -> None:
    """aiokatcp drops the strategies of a replaced sensor: ``modified`` re-applies them."""
    res = await _resource(antenna.address)
    try:
        assert await res.sensor.pos_az.set_strategy("event") == (True, ("event",))
        await res.sensor.pos_az.wait(0.0, timeout=T)
        sensors = antenna.server.sensors
        replacement = aiokatcp.Sensor(
            float,
            "pos.az",
            "Azimuth",
            "deg",
            default=7.0,
            initial_status=aiokatcp.Sensor.Status.NOMINAL,
        )
        sensors.add(replacement)  # aiokatcp: the old sensor's samplers go with it
        antenna.server.mass_inform("interface-changed", "sensor", "pos.az", "modified")
        assert await res.sensor.pos_az.wait(7.0, timeout=T)
        replacement.value = 8.0
        assert await res.sensor.pos_az.wait(8.0, timeout=T)
    finally:
        await _stop(res)
