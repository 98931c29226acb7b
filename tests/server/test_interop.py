"""Interoperability: aiokatcp's Client and katcp-python 0.9.3's BlockingClient against katcpx."""

from __future__ import annotations

import asyncio

import aiokatcp
import pytest
from peers import KatcpPythonClient

from katcpx.flags import ProtocolFlags
from katcpx.kattypes import request_timeout_hint
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

from .helpers import TIMEOUT, running

pytestmark = pytest.mark.peers

AWKWARD = ["with space", "new\nline", "", "back\\slash", "nul\0byte", "tab\there", "[1]", "é"]


class InteropServer(DeviceServer):
    PROTOCOL_INFO = ProtocolFlags(5, 1, "BIMT")
    VERSION_INFO = ("interop", 2, 3)
    BUILD_INFO = ("interop", 2, 3, "a1")

    def setup_sensors(self):
        self.temp = Sensor(Sensor.FLOAT, "rack.temp", "Rack temperature.", "degC", [-50.0, 150.0])
        self.temp.set_value(21.5, timestamp=1700000000.25)
        self.add_sensor(self.temp)
        self.mode = Sensor(Sensor.DISCRETE, "mode", "Mode.", "", ["idle", "busy"])
        self.mode.set_value("idle", timestamp=1700000000.0)
        self.add_sensor(self.mode)

    def request_echo(self, req, msg):
        """Echo the arguments."""
        return req.make_reply("ok", *msg.arguments)

    def request_oops(self, req, msg):
        """Fail."""
        raise RuntimeError("it broke")

    @request_timeout_hint(30)
    def request_slowish(self, req, msg):
        """Has a timeout hint."""
        return req.make_reply("ok")


@pytest.fixture
def server():
    srv = InteropServer("127.0.0.1", 0)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv):
        yield srv


# -- aiokatcp ---------------------------------------------------------------------------


def _aio(server, body):
    async def main():
        client = await asyncio.wait_for(aiokatcp.Client.connect(*server.bind_address), TIMEOUT)
        try:
            await asyncio.wait_for(body(client), TIMEOUT * 2)
        finally:
            client.close()
            await client.wait_closed()

    asyncio.run(main())


def test_aiokatcp_requests(server):
    async def body(client):
        assert client.protocol_flags == {"M", "I", "T", "B"}
        reply, informs = await client.request("help")
        assert int(reply[0]) == len(informs) >= 10
        reply, informs = await client.request("help", "echo")
        assert informs[0].arguments == [b"echo", b"Echo the arguments."]
        reply, informs = await client.request("sensor-list", "/temp/")
        assert informs[0].arguments == [
            b"rack.temp",
            b"Rack temperature.",
            b"degC",
            b"float",
            b"-50.0",
            b"150.0",
        ]
        reply, informs = await client.request("sensor-value", "rack.temp")
        assert informs[0].arguments[1:] == [b"1", b"rack.temp", b"nominal", b"21.5"]
        reply, _ = await client.request("echo", *AWKWARD)
        assert reply == [a.encode() for a in AWKWARD]
        with pytest.raises(aiokatcp.FailReply, match="it broke"):
            await client.request("oops")
        with pytest.raises(aiokatcp.InvalidReply, match="Unknown request"):
            await client.request("missing")
        assert await client.request("watchdog") == ([], [])
        _, informs = await client.request("client-list")
        assert len(informs) == 1
        assert (await client.request("log-level", "info"))[0] == [b"info"]
        _, informs = await client.request("version-list")
        assert informs[2].arguments == [b"katcp-device", b"interop-2.3", b"interop-2.3a1"]
        _, informs = await client.request("request-timeout-hint")
        assert [m.arguments for m in informs] == [[b"slowish", b"30.0"]]

    _aio(server, body)


def test_aiokatcp_sampling(server):
    async def body(client):
        statuses: asyncio.Queue = asyncio.Queue()
        client.add_inform_callback("sensor-status", lambda *args: statuses.put_nowait(args))
        await client.request("sensor-sampling", "rack.temp", "event")
        first = await statuses.get()
        assert first[1:] == (b"1", b"rack.temp", b"nominal", b"21.5")
        server.temp.set_value(22.0)
        assert (await statuses.get())[-1] == b"22.0"
        await client.request("sensor-sampling", "mode", "period", "0.02")
        for _ in range(3):
            assert (await statuses.get())[2] == b"mode"
        await client.request("sensor-sampling-clear")

    _aio(server, body)


# -- katcp-python 0.9.3 -------------------------------------------------------------------


def test_katcp_python_blocking_client(server, katcp_python):
    host, port = server.bind_address
    with KatcpPythonClient(katcp_python, host, port) as client:
        assert client.protocol_info == str(server.PROTOCOL_INFO)
        reply, informs = client.request("help", "echo")
        assert reply.reply_ok() and informs[0].arguments[1] == b"Echo the arguments."
        # All #version-connect informs precede that reply, so the client has them now.
        versions = client.protocol()["versions"]
        assert versions["katcp-device"][0] == "interop-2.3"
        assert reply.mid is not None and informs[0].mid == reply.mid  # message ids in use
        reply, informs = client.request("sensor-list")
        assert [m.arguments[0] for m in informs] == [b"mode", b"rack.temp"]
        reply, informs = client.request("sensor-value", "/mode/")
        assert informs[0].arguments[2:] == [b"mode", b"nominal", b"idle"]
        reply, _ = client.request("echo", *[a.encode() for a in AWKWARD])
        assert reply.arguments == [b"ok", *[a.encode() for a in AWKWARD]]
        reply, _ = client.request("oops")
        assert reply.arguments == [b"fail", b"RuntimeError: it broke"]
        reply, _ = client.request("missing")
        assert reply.arguments == [b"invalid", b"Unknown request."]
        assert client.request("watchdog").reply.reply_ok()
        reply, informs = client.request("client-list")
        assert reply.arguments == [b"ok", b"1"]
        assert client.request("log-level", "error").reply.arguments == [b"ok", b"error"]
        reply, informs = client.request("version-list")
        assert reply.arguments == [b"ok", b"3"]
        reply, informs = client.request("request-timeout-hint", "slowish")
        assert informs[0].arguments == [b"slowish", b"30.0"]
        reply, informs = client.request("sensor-sampling", "rack.temp", "event")
        assert reply.arguments == [b"ok", b"rack.temp", b"event"]
        first = client.wait_informs("sensor-status", 1)[0]
        assert first.arguments[2:] == [b"rack.temp", b"nominal", b"21.5"]
        server.temp.set_value(25.0)
        assert client.wait_informs("sensor-status", 1)[0].arguments[-1] == b"25.0"
        reply, _ = client.request("sensor-sampling", "mode", "period", "0.05")
        assert reply.reply_ok()
        assert len(client.wait_informs("sensor-status", 3)) == 3
