"""The clients against real servers: katcpx, aiokatcp and katcp-python 0.9.3 (v5.0, v5.1, v4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from peers import AiokatcpServerThread, KatcpPythonServer
from peers.catalogue import HINTED_TIMEOUT

from katcpx import FailReplyError, InvalidReply, Message, RequestTimeout
from katcpx.client import AsyncClient, BlockingClient

pytestmark = pytest.mark.peers


def _katcpx_server() -> Iterator[tuple[str, int]]:
    from katcpx.server import DeviceServer

    class Server(DeviceServer):
        VERSION_INFO = ("katcpx-client-test", 1, 0)
        BUILD_INFO = ("katcpx-client-test", 1, 0, "")

        def setup_sensors(self) -> None:
            pass

        def request_echo(self, req, msg):
            """Reply ok with the request's arguments."""
            return Message.reply("echo", "ok", *msg.arguments)

        def request_fail_with(self, req, msg):
            """Fail with the given message."""
            return Message.reply("fail-with", "fail", *(msg.arguments or [b"expected failure"]))

        def request_inform_burst(self, req, msg):
            """Send count informs, then reply."""
            count = int(msg.arguments[0])
            for i in range(count):
                req.inform(i)
            return Message.reply("inform-burst", "ok", count)

    server = Server("127.0.0.1", 0)
    server.start(timeout=5)
    try:
        yield server.bind_address
    finally:
        server.stop()
        server.join(5)


@pytest.fixture(
    params=["katcpx", "aiokatcp", "katcp-python-5.0", "katcp-python-5.1", "katcp-python-4"]
)
def server(request) -> Iterator[tuple[str, tuple[str, int]]]:
    """``(kind, (host, port))`` of a running server of each implementation."""
    kind = request.param
    if kind == "katcpx":
        yield from ((kind, addr) for addr in _katcpx_server())
    elif kind == "aiokatcp":
        with AiokatcpServerThread() as aio:
            yield kind, aio.address
    else:
        python = request.getfixturevalue("katcp_python")
        with KatcpPythonServer(python, protocol=kind.rsplit("-", 1)[1]) as kp:
            yield kind, kp.address


def test_blocking_client(server) -> None:
    kind, address = server
    client = BlockingClient(*address, timeout=5)
    client.start(timeout=5)
    try:
        assert client.wait_protocol(5)
        v4 = kind == "katcp-python-4"
        assert client.protocol_flags.major == (4 if v4 else 5)
        assert client.convert_seconds(2) == (2000 if v4 else 2)
        reply, informs = client.blocking_request(Message.request("echo", "a b", "c"))
        assert reply.arguments == [b"ok", b"a b", b"c"] and informs == []
        assert (reply.mid is None) == v4
        reply, informs = client.blocking_request(Message.request("inform-burst", 3))
        assert reply.reply_ok() and [m.arguments[0] for m in informs] == [b"0", b"1", b"2"]
        reply, informs = client.blocking_request(Message.request("help", "echo"), use_mid=False)
        assert reply.reply_ok() and reply.mid is None and len(informs) == 1
        reply, _ = client.blocking_request(Message.request("fail-with", "nope"))
        assert reply.arguments[:2] == [b"fail", b"nope"]
    finally:
        client.stop(5)
        client.join(5)
    assert not client.running()


async def test_async_call(server) -> None:
    kind, address = server
    async with await AsyncClient.connect(*address, timeout=10) as client:
        replies = await asyncio.gather(*[client.call("echo", i) for i in range(200)])
        assert [int(r.arguments[1]) for r, _ in replies] == list(range(200))
        with pytest.raises(FailReplyError, match="nope"):
            await client.call("fail-with", "nope")
        with pytest.raises(InvalidReply):
            await client.call("no-such-request")
        reply, informs = await client.call("inform-burst", 2, use_mid=False)
        assert len(informs) == 2


async def test_slow_request_timeout_and_informs(aiokatcp_server) -> None:
    async with await AsyncClient.connect(*aiokatcp_server) as client:
        with pytest.raises(RequestTimeout) as info:
            await client.call("slow-echo", 5, timeout=0.1)
        assert [m.arguments for m in info.value.informs] == [[b"started"]]
        reply, informs = await client.call("slow-echo", 0.01, "x", timeout=5)
        assert reply.arguments == [b"ok", b"x"]


def test_katcp_python_timeout_hints(katcp_python) -> None:
    with KatcpPythonServer(katcp_python, protocol="5.1") as kp:
        client = BlockingClient(*kp.address, timeout=1.0)
        client.start(timeout=5)
        try:
            assert client.wait_protocol(5)
            assert client.protocol_flags.supports("T")
            # katcp-python's API alone sends nothing by itself (no hints fetched) ...
            client.blocking_request(Message.request("watchdog"))
            assert client._timeout_for("hinted", None) == pytest.approx(1.0)
            # ... katcpx's "ready" API fetches them.
            assert client.wait_ready(5)
            assert client._timeout_for("hinted", None) == pytest.approx(HINTED_TIMEOUT)
            reply, _ = client.blocking_request(Message.request("hinted"))
            assert reply.reply_ok()
        finally:
            client.stop(5)
            client.join(5)


@pytest.mark.parametrize("kind", ["katcpx", "aiokatcp"])
async def test_pipelined_mixed_ids_against_real_servers(kind: str) -> None:
    # The 10k case runs against the fake server (test_client_edge); this checks real servers.
    n = 2000
    if kind == "katcpx":
        gen = _katcpx_server()
        address = next(gen)
    else:
        aio = AiokatcpServerThread().__enter__()
        address = aio.address
    try:
        async with await AsyncClient.connect(*address) as client:
            calls = [client.call("echo", i, use_mid=(i % 3 != 0), timeout=60) for i in range(n)]
            results = await asyncio.gather(*calls)
            assert [int(reply.arguments[1]) for reply, _ in results] == list(range(n))
    finally:
        if kind == "katcpx":
            gen.close()
        else:
            await asyncio.to_thread(aio.__exit__, None, None, None)
