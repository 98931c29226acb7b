"""Tests for katcpx.transport.KatcpProtocol over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from katcpx import KatcpSyntaxError, Message, MessageTooLong
from katcpx.transport import KatcpProtocol, format_address


class Recorder:
    """Collects what one side of a connection receives."""

    def __init__(self) -> None:
        self.items: list[Message | KatcpSyntaxError] = []
        self.got = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.want = 1

    def on_messages(self, proto: KatcpProtocol, items: list) -> None:
        self.items.extend(items)
        if len(self.items) >= self.want:
            self.got.set()

    def on_lost(self, proto: KatcpProtocol, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def _pair(**kwargs):
    """A KatcpProtocol server side and a plain asyncio stream client."""
    loop = asyncio.get_running_loop()
    rec = Recorder()
    protos: list[KatcpProtocol] = []
    made = asyncio.Event()

    def factory() -> KatcpProtocol:
        proto = KatcpProtocol(
            rec.on_messages, rec.on_lost, on_connection_made=lambda p: made.set(), **kwargs
        )
        protos.append(proto)
        return proto

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(made.wait(), 5)
    return server, protos[0], rec, reader, writer


def _count_writes(proto: KatcpProtocol) -> list[bytes]:
    """Record every chunk `proto` hands its transport (each is one send())."""
    assert proto.transport is not None
    writes: list[bytes] = []
    real_write = proto.transport.write

    def counting_write(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    proto.transport.write = counting_write  # type: ignore[method-assign]
    return writes


async def test_receives_messages_and_errors_in_order():
    server, proto, rec, reader, writer = await _pair()
    rec.want = 3
    writer.write(b"?a[1] x\n?bad y\\q\n#b\n")
    await asyncio.wait_for(rec.got.wait(), 5)
    assert rec.items[0] == Message.request("a", "x", mid=1)
    assert isinstance(rec.items[1], KatcpSyntaxError)
    assert rec.items[2] == Message.inform("b")
    assert proto.peer.startswith("127.0.0.1:")
    writer.close()
    assert await asyncio.wait_for(rec.lost, 5) is None
    server.close()


async def test_output_is_coalesced_after_one_direct_write():
    server, proto, rec, reader, writer = await _pair()
    writes = _count_writes(proto)
    for i in range(100):
        proto.send_message(Message.inform("n", i))
    proto.send_messages([Message.inform("m", 1), Message.inform("m", 2)])
    # The first message went out at once (the connection was idle); the rest wait for the
    # loop to turn and then leave together.
    assert writes == [b"#n 0\n"]
    lines = [await asyncio.wait_for(reader.readline(), 5) for _ in range(102)]
    assert len(writes) == 2
    assert lines[0] == b"#n 0\n" and lines[99] == b"#n 99\n" and lines[101] == b"#m 2\n"
    writer.close()
    server.close()


async def test_over_long_line_reaches_owner_as_message_too_long():
    server, proto, rec, reader, writer = await _pair(max_msg_size=100)
    rec.want = 2
    writer.write(b"?x " + b"a" * 500 + b"\n?y\n")
    await asyncio.wait_for(rec.got.wait(), 5)
    assert isinstance(rec.items[0], MessageTooLong)
    assert rec.items[1] == Message.request("y")
    writer.close()
    server.close()


async def test_peer_that_stops_reading_is_disconnected_past_the_bound(caplog):
    server, proto, rec, reader, writer = await _pair(max_write_buffer=256 * 1024)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # The client never reads; keep queueing until the server gives up on it.
    chunk = Message.inform("flood", "x" * 1000)
    with caplog.at_level(logging.WARNING, logger="katcp.transport"):
        for _ in range(2000):
            if proto.closed:
                break
            for _ in range(100):
                proto.send_message(chunk)
            await asyncio.sleep(0)  # let the loop flush: this is the code under test
        await asyncio.wait_for(rec.lost, 10)
    assert proto.closed
    assert any("not reading" in r.getMessage() for r in caplog.records)
    writer.close()
    server.close()


async def test_close_flushes_queued_output():
    server, proto, rec, reader, writer = await _pair()
    proto.send_message(Message.inform("disconnect", "bye"))
    proto.close()
    assert await asyncio.wait_for(reader.readline(), 5) == b"#disconnect bye\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    server.close()


def test_write_after_close_is_ignored():
    proto = KatcpProtocol(lambda p, i: None, lambda p, e: None)
    proto.connection_lost(None)
    proto.send_message(Message.inform("x"))
    assert proto.write_buffer_size == 0


@pytest.mark.parametrize(
    ("address", "text"),
    [(("127.0.0.1", 80), "127.0.0.1:80"), (("::1", 80, 0, 0), "[::1]:80"), ("unix", "unix")],
)
def test_format_address(address, text):
    assert format_address(address) == text


async def test_corked_output_leaves_in_one_send_at_uncork():
    server, proto, rec, reader, writer = await _pair()
    writes = _count_writes(proto)
    proto.cork()
    for i in range(10):
        proto.send_message(Message.reply("n", i))
    assert writes == []  # held, not even the first line goes out at once
    proto.uncork()
    assert len(writes) == 1 and writes[0].count(b"\n") == 10
    lines = [await asyncio.wait_for(reader.readline(), 5) for _ in range(10)]
    assert lines[-1] == b"!n 9\n"
    writer.close()
    server.close()


async def test_screen_sees_the_first_bytes_and_lost_resolves():
    seen: list[bytes] = []

    def screen(proto: KatcpProtocol, data: bytes) -> bool:
        seen.append(data)
        proto.close()
        return True  # dropped: never parsed

    server, proto, rec, reader, writer = await _pair(screen=screen)
    writer.write(b"?first\n")
    assert await asyncio.wait_for(proto.lost, 5) is None
    assert seen == [b"?first\n"] and rec.items == []
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    server.close()
