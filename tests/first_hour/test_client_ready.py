"""Kind 1, a client says connected before it knows the device: connecting means ready."""

from __future__ import annotations

import asyncio

from katcpx import AsyncDeviceServer
from katcpx.client import AsyncClient, BlockingClient
from katcpx.flags import ProtocolFlags
from katcpx.kattypes import request_timeout_hint
from katcpx.message import Message


class SlowDevice(AsyncDeviceServer):
    """One request that takes longer than the clients' timeout, with a hint saying so."""

    VERSION_INFO = ("slow", 1, 0)
    BUILD_INFO = ("slow", 1, 0, "")
    PROTOCOL_INFO = ProtocolFlags(5, 1, "MIT")

    def setup_sensors(self) -> None:
        pass

    @request_timeout_hint(30.0)
    async def request_slow(self, req, seconds: float) -> float:
        """Reply after `seconds`."""
        await asyncio.sleep(seconds)
        return seconds


class ShortTimeoutClient(AsyncClient):
    """A client whose default request timeout (0.3 s) is shorter than the slow request."""

    def __init__(self, host: str, port: int, **kwargs: object) -> None:
        super().__init__(host, port, timeout=0.3, **kwargs)  # type: ignore[arg-type]


def start_server() -> SlowDevice:
    server = SlowDevice("127.0.0.1", 0)
    server.start(timeout=5)
    return server


def stop_server(server: SlowDevice) -> None:
    server.stop().result(5)
    server.join(5)


async def test_connected_client_knows_device_hints_apply_to_first_call() -> None:
    server = start_server()
    try:
        host, port = server.bind_address
        # The call goes out the moment connect() returns: its hint (30 s) must already be
        # known, or the client's 0.3 s timeout applies and it fails.
        async with await ShortTimeoutClient.connect(host, port) as client:
            assert client.is_ready()
            reply, _ = await client.call("slow", 0.8)
            assert reply.arguments == [b"ok", b"0.8"]
    finally:
        await asyncio.to_thread(stop_server, server)


async def test_connected_client_knows_device_blocking_wait_ready() -> None:
    server = start_server()

    def use() -> Message:
        client = BlockingClient(*server.bind_address, timeout=0.3)
        client.start()
        try:
            assert client.wait_ready(5)
            reply, _ = client.blocking_request(Message.request("slow", 0.8))
            return reply
        finally:
            client.stop()
            client.join(5)

    try:
        reply = await asyncio.to_thread(use)
        assert reply.arguments == [b"ok", b"0.8"]
    finally:
        await asyncio.to_thread(stop_server, server)
