"""katcpx's own health: a server's metrics port and an instrumented client."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from katcpx.client import AsyncClient, BlockingClient, is_timeout_reply
from katcpx.errors import FailReplyError, InvalidReply, RequestTimeout
from katcpx.kattypes import Float, request, return_reply
from katcpx.message import Message
from katcpx.metrics import MetricsEndpoint, instrument_client

from .conftest import TIMEOUT, Gadget, Scrape, eventually, fetch_blocking, parse


class Busy(Gadget):
    """Adds a request that fails, one that never replies in time, and a tiny output limit."""

    MAX_WRITE_BUFFER_SIZE = 64 * 1024

    @request(Float())
    @return_reply()
    def request_boom(self, req, x):
        """Fail when x is negative."""
        if x < 0:
            return ("fail", "negative")
        return ("ok",)

    async def request_slow(self, req, msg):
        """Reply after a second."""
        await asyncio.sleep(1.0)
        return req.make_reply("ok")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Busy, MetricsEndpoint, CollectorRegistry]]:
    server = Busy("127.0.0.1", 0)
    server.set_ioloop()
    server.start()
    await server.until_running(TIMEOUT)
    registry = CollectorRegistry(auto_describe=False)
    endpoint = server.start_metrics_server(0, registry=registry)
    try:
        yield server, endpoint, registry
    finally:
        endpoint.close()
        server.stop()
        await server.until_stopped(TIMEOUT)


async def scrape(endpoint: MetricsEndpoint) -> Scrape:
    return await asyncio.to_thread(fetch_blocking, endpoint.url)


async def test_server_counts_requests_connections_and_errors(served) -> None:
    server, endpoint, _ = served
    name = f"Busy:{server.bind_address[1]}"
    srv = {"server": name}
    port = server.bind_address[1]
    async with await AsyncClient.connect("127.0.0.1", port) as client:
        for _ in range(3):
            await client.call("watchdog")
        await client.call("boom", 1)
        with pytest.raises(FailReplyError):
            await client.call("boom", -1)
        with pytest.raises(InvalidReply):
            await client.call("no-such-request")
        informs = "katcpx_server_informs_sent_total"
        before = (await scrape(endpoint)).value(informs, **srv)
        await client.call("sensor-value")  # one bulk write of every sensor's inform
        after = (await scrape(endpoint)).value(informs, **srv)
        assert after - before == len(server.sensors)
        await client.call("sensor-sampling", "temp", "event")
        await client.call("sensor-sampling", "count", "period", 10)
        await client.call("sensor-sampling", "mode", "period", 10)
        s = await scrape(endpoint)
        assert s.value("katcpx_server_connections", **srv) == 1
        assert s.value("katcpx_server_sampling_strategies", strategy="period", **srv) == 2
        assert s.value("katcpx_server_sampling_strategies", strategy="event", **srv) == 1
        assert s.value("katcpx_server_sampling_strategies", strategy="auto", **srv) == 0
        assert s.value("katcpx_server_queued_bytes", **srv) == 0
    # A raw client sending garbage: syntax errors are counted, the server carries on.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"?watchdog\n!!!bad\n?bad_name\n" + b"?" + b"x" * (Busy.MAX_MSG_SIZE + 10) + b"\n")
    await writer.drain()
    await asyncio.wait_for(reader.read(), TIMEOUT)  # disconnected for the over-long line
    writer.close()

    async def settled() -> Scrape | None:
        s = await scrape(endpoint)
        return s if s.value("katcpx_server_connections_dropped_total", **srv) == 2 else None

    s = await eventually(settled, what="both connections dropped")
    assert s.value("katcpx_server_connections_accepted_total", **srv) == 2
    assert s.value("katcpx_server_connections", **srv) == 0
    assert s.value("katcpx_server_sampling_strategies", strategy="period", **srv) == 0
    assert s.value("katcpx_server_syntax_errors_total", **srv) == 3
    total = "katcpx_server_requests_total"
    assert s.value(total, request="watchdog", result="ok", **srv) == 4
    assert s.value(total, request="sensor-value", result="ok", **srv) == 1
    assert s.value(total, request="boom", result="ok", **srv) == 1
    assert s.value(total, request="boom", result="fail", **srv) == 1
    assert s.value(total, request="(unknown)", result="invalid", **srv) == 1
    hist = "katcpx_server_request_duration_seconds"
    assert s.value(f"{hist}_count", request="boom", **srv) == 2
    assert s.value(f"{hist}_bucket", request="watchdog", le="+Inf", **srv) == 4
    assert 0 < s.value(f"{hist}_sum", request="watchdog", **srv) < TIMEOUT
    assert s.value("katcpx_server_informs_sent_total", **srv) >= 4  # version-connect, #log
    assert s.value("katcpx_server_written_bytes_total", **srv) > 100


async def test_slow_client_is_counted(served) -> None:
    server, endpoint, _ = served
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.bind_address[1]))
    sock.setblocking(False)
    try:
        await eventually(
            lambda: asyncio.sleep(0, len(server.client_connections()) == 1), what="connected"
        )
        big = Message.inform("blob", "x" * 200_000)

        async def cut_off() -> bool:
            server.mass_inform(big)  # never read: output piles up until the limit
            s = await scrape(endpoint)
            return s.value("katcpx_server_slow_clients_disconnected_total") == 1

        await eventually(cut_off, what="the slow client cut off")
    finally:
        sock.close()


async def test_client_metrics(served) -> None:
    server, _, _ = served
    registry = CollectorRegistry(auto_describe=False)
    client = AsyncClient("127.0.0.1", server.bind_address[1], auto_reconnect=False)
    stats = instrument_client(client, registry, name="cli")
    client.set_ioloop()
    client.start()
    try:
        await client.until_protocol(TIMEOUT)
        await client.call("watchdog")
        with pytest.raises(FailReplyError):
            await client.call("boom", -1)
        with pytest.raises(RequestTimeout):
            await client.call("slow", timeout=0.05)
        reply, _ = await client.future_request(Message.request("watchdog"))
        assert reply.reply_ok()
        s = parse(generate_latest(registry).decode())
    finally:
        client.stop()
    cli = {"client": "cli"}
    assert s.value("katcpx_client_requests_total", request="watchdog", result="ok", **cli) == 2
    assert s.value("katcpx_client_requests_total", request="boom", result="fail", **cli) == 1
    assert s.value("katcpx_client_requests_total", request="slow", result="timeout", **cli) == 1
    assert s.value("katcpx_client_timeouts_total", **cli) == 1
    assert s.value("katcpx_client_connected", **cli) == 1
    assert s.value("katcpx_client_reconnects_total", **cli) == 0
    assert s.value("katcpx_client_request_duration_seconds_count", request="watchdog", **cli) == 2
    assert stats.connects == 1


async def test_blocking_client_metrics(served) -> None:
    server, _, _ = served
    registry = CollectorRegistry(auto_describe=False)
    client = BlockingClient("127.0.0.1", server.bind_address[1])
    instrument_client(client, registry, name="blocking")
    client.start()

    def requests() -> None:
        assert client.wait_protocol(TIMEOUT)
        reply, _ = client.blocking_request(Message.request("watchdog"), timeout=TIMEOUT)
        assert reply.reply_ok()
        reply, _ = client.blocking_request(Message.request("slow"), timeout=0.05)
        assert is_timeout_reply(reply)

    try:
        await asyncio.to_thread(requests)
        s = parse(generate_latest(registry).decode())
    finally:
        client.stop()
    total = "katcpx_client_requests_total"
    assert s.value(total, client="blocking", request="watchdog", result="ok") == 1
    assert s.value(total, client="blocking", request="slow", result="timeout") == 1
    assert s.value("katcpx_client_timeouts_total", client="blocking") == 1


async def test_callback_client_metrics(served) -> None:
    """callback_request() is counted as call() and blocking_request() are."""
    server, _, _ = served
    registry = CollectorRegistry(auto_describe=False)
    client = BlockingClient("127.0.0.1", server.bind_address[1])
    instrument_client(client, registry, name="callback")
    client.start()
    replies: list[Message] = []
    both = threading.Event()

    def on_reply(reply: Message) -> None:
        replies.append(reply)
        if len(replies) == 2:
            both.set()

    def requests() -> None:
        assert client.wait_protocol(TIMEOUT)
        client.callback_request(Message.request("watchdog"), reply_cb=on_reply)
        client.callback_request(Message.request("slow"), reply_cb=on_reply, timeout=0.05)
        assert both.wait(TIMEOUT)

    try:
        await asyncio.to_thread(requests)
        s = parse(generate_latest(registry).decode())
    finally:
        client.stop()
    assert sorted(r.name for r in replies) == ["slow", "watchdog"]
    total = "katcpx_client_requests_total"
    assert s.value(total, client="callback", request="watchdog", result="ok") == 1
    assert s.value(total, client="callback", request="slow", result="timeout") == 1
