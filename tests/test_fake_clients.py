"""Fake clients (katcp-python's katcp.fake_clients API): no socket, registered handlers."""

from __future__ import annotations

from katcpx.fake_clients import fake_inspecting_client_factory, fake_KATCP_client_resource_factory
from katcpx.inspecting_client import InspectingClientAsync
from katcpx.kattypes import Int, request, return_reply
from katcpx.resource import KATCPClientResource


class Handlers:
    @request(Int(), Int())
    @return_reply(Int())
    def request_add(self, req, a, b):
        """Add two numbers."""
        req.inform("adding", a, b)
        return ("ok", a + b)


SENSORS = {
    "an-int": ("An integer", "things", "integer", 0, 10),
    "a-str": ("A string", "", "string"),
}


async def test_fake_inspecting_client_syncs_and_answers():
    client, manager = fake_inspecting_client_factory(InspectingClientAsync, {}, "nowhere", 1)
    await client.connect()
    await client.until_synced(timeout=5)
    manager.add_sensors(SENSORS)
    manager.add_request_handlers_object(Handlers())
    await client.until_not_synced(timeout=5)
    await client.until_synced(timeout=5)
    assert set(client.sensors) == {"an-int", "a-str"}
    assert {"add", "help", "sensor-list"} <= set(client.requests)
    sensor = await client.future_get_sensor("an-int")
    assert sensor.stype == "integer" and sensor.params == [0, 10]
    reply, informs = await client.simple_request("add", 2, 3, mid=7)
    assert reply.arguments == [b"ok", b"5"] and reply.mid == b"7"
    assert [m.arguments for m in informs] == [[b"adding", b"2", b"3"]]
    reply, _ = await client.simple_request("unregistered")
    assert reply.reply_ok()  # katcp-python's fakes answer ok to what they do not know
    client.stop()


async def test_fake_resource_gets_its_model_and_requests():
    spec = {"name": "dev", "address": ("nowhere", 1), "controlled": True}
    resource, manager = fake_KATCP_client_resource_factory(KATCPClientResource, {}, spec)
    resource.start()
    await resource.until_synced(timeout=5)
    assert len(resource.sensor) == 0
    manager.add_sensors(SENSORS)
    manager.add_request_handlers_object(Handlers())
    await resource.until_state("syncing", timeout=5)
    await resource.until_synced(timeout=5)
    assert sorted(dict.keys(resource.sensor)) == ["a_str", "an_int"]
    reply = await resource.req.add(4, 5)
    assert reply.succeeded and reply.reply.arguments == [b"ok", b"9"]
    resource.stop()
