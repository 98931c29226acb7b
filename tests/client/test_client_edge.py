"""Client behaviour against a raw fake server: protocol detection, matching, robustness."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from fakeserver import (
    V4_BANNER,
    V5_BANNER,
    V5_HINTS_BANNER,
    V5_NO_IDS_BANNER,
    FakeConn,
    FakeServer,
    refusing_address,
    reply_for,
    request_parts,
)

from katcpx import ConnectionLost, FailReplyError, InvalidReply, Message, RequestTimeout
from katcpx.client import (
    AsyncClient,
    BlockingClient,
    DeviceClient,
    KatcpVersionError,
    is_timeout_reply,
)


def silent(conn: FakeConn, line: bytes) -> None:
    """Never reply."""


async def connect(server: FakeServer, **kwargs) -> AsyncClient:
    client = await AsyncClient.connect(*server.address, timeout=5, **kwargs)
    return client


async def test_v5_detection_and_message_ids() -> None:
    with FakeServer(V5_BANNER) as server:
        client = await connect(server)
        try:
            assert str(client.protocol_flags) == "5.1-IM"
            assert client.versions["katcp-library"] == ("fake-1.0", "fake-1.0")
            reply, informs = await client.call("watchdog", timeout=5)
            assert reply.reply_ok() and informs == []
            assert server.next_line() == b"?watchdog[1]"
            assert client.convert_seconds(1.5) == 1.5
        finally:
            await client.aclose()


async def test_v4_detection_no_ids_and_ms_timestamps() -> None:
    with FakeServer(V4_BANNER) as server:
        client = await connect(server)
        try:
            assert client.protocol_flags.major == 4
            assert client.versions["build-state"] == ("fake-4.0-build",)
            await client.call("watchdog", timeout=5)
            assert server.next_line() == b"?watchdog"  # no id for a v4 server
            assert client.convert_seconds(1.5) == 1500.0
            with pytest.raises(KatcpVersionError):
                await client.call("watchdog", use_mid=True)
            # The compatibility API turns the version error into a fail reply.
            reply, _ = await client.future_request(Message.request("watchdog", mid=7))
            assert reply.mtype == Message.REPLY and not reply.reply_ok()
        finally:
            await client.aclose()


async def test_replies_without_ids_match_oldest_request_of_that_name() -> None:
    held: list[bytes] = []

    def reverse_names(conn: FakeConn, line: bytes) -> None:
        # Hold back 'a' requests; answer them in order after the 'b' one.
        name, _mid, args = request_parts(line)
        if name == b"a":
            held.append(reply_for(line, *args))
        else:
            conn.send(reply_for(line, *args))
            for data in held:
                conn.send(data)

    with FakeServer(V5_NO_IDS_BANNER, reverse_names) as server:
        client = await connect(server)
        try:
            calls = [asyncio.ensure_future(client.call("a", i, timeout=5)) for i in range(3)]
            b = asyncio.ensure_future(client.call("b", "x", timeout=5))
            results = await asyncio.gather(b, *calls)
            assert results[0][0].arguments == [b"ok", b"x"]
            assert [r[0].arguments[1] for r in results[1:]] == [b"0", b"1", b"2"]
        finally:
            await client.aclose()


async def test_10k_pipelined_mixed_ids_none_lost_none_mismatched() -> None:
    def scramble(conn: FakeConn, line: bytes) -> None:
        # Replies to requests with ids come back in reverse order of each pair; those
        # without ids stay in order (as the spec requires for a name without ids).
        name, mid, args = request_parts(line)
        data = reply_for(line, *args)
        if mid is None:
            conn.send(data)
        elif int(mid) % 2:
            scramble.held = data  # type: ignore[attr-defined]
        else:
            conn.send(data + getattr(scramble, "held", b""))
            scramble.held = b""  # type: ignore[attr-defined]

    with FakeServer(V5_BANNER, scramble) as server:
        client = await connect(server)
        try:
            n = 10_000
            calls = [client.call("echo", i, use_mid=(i % 3 != 0), timeout=30) for i in range(n)]
            results = await asyncio.gather(*calls)
            assert [int(reply.arguments[1]) for reply, _ in results] == list(range(n))
        finally:
            await client.aclose()


async def test_informs_routed_by_id_and_unsolicited_informs_to_handlers() -> None:
    seen: list[Message] = []

    class Client(AsyncClient):
        def inform_sensor_status(self, msg: Message) -> None:
            """Record it."""
            seen.append(msg)

        def unhandled_inform(self, msg: Message) -> None:
            seen.append(msg)

    def informs(conn: FakeConn, line: bytes) -> None:
        name, mid, _ = request_parts(line)
        conn.send(b"#sensor-status 1.0 1 x nominal 3\n")
        conn.send(b"#%s[%s] one\n#%s[%s] two\n" % (name, mid, name, mid))
        conn.send(b"#other thing\n")
        conn.send(reply_for(line, b"2"))

    with FakeServer(V5_BANNER, informs) as server:
        client = await Client.connect(*server.address, timeout=5)
        try:
            reply, got = await client.call("help", timeout=5)
            assert [m.arguments for m in got] == [[b"one"], [b"two"]]
            assert [m.name for m in seen] == ["sensor-status", "other"]
        finally:
            await client.aclose()


async def test_malformed_line_logged_and_skipped_without_reply(caplog) -> None:
    def garbage_first(conn: FakeConn, line: bytes) -> None:
        conn.send(b"!bad[x name\n")
        conn.send(b"no-type-character here\n")
        conn.send(reply_for(line))

    with FakeServer(V5_BANNER, garbage_first) as server:
        client = await connect(server)
        try:
            with caplog.at_level(logging.ERROR, logger="katcp.client"):
                reply, _ = await client.call("watchdog", timeout=5)
            assert reply.reply_ok()
            assert sum("BAD MESSAGE" in r.getMessage() for r in caplog.records) == 2
            # Still the same connection, and the client sent nothing but the request.
            await client.call("watchdog", timeout=5)
            assert [server.next_line(), server.next_line()] == [b"?watchdog[1]", b"?watchdog[2]"]
            assert server.received.empty()
            assert server.connections.qsize() == 1
        finally:
            await client.aclose()


async def test_oversize_line_closes_connection_then_reconnects() -> None:
    class Small(AsyncClient):
        MAX_MSG_SIZE = 1000

    def huge(conn: FakeConn, line: bytes) -> None:
        if line.startswith(b"?huge"):
            conn.send(b"#log " + b"x" * 5000 + b"\n")
        else:
            conn.send(reply_for(line))

    with FakeServer(V5_BANNER, huge) as server:
        client = await Small.connect(*server.address, timeout=5)
        client.auto_reconnect_delay = 0.01
        try:
            await server.anext_connection()
            with pytest.raises(ConnectionLost):
                await client.call("huge", timeout=5)
            await server.anext_connection()  # the client came back
            await client.until_connected(5)
            await client.until_protocol(5)
            reply, _ = await client.call("watchdog", timeout=5)
            assert reply.reply_ok()
        finally:
            await client.aclose()


async def test_protocol_info_is_forgotten_when_the_connection_drops() -> None:
    with FakeServer(V5_BANNER) as server:
        client = await connect(server)
        # Stay disconnected long enough to look: no reconnection within the test.
        client.auto_reconnect_delay = 60.0
        client.auto_reconnect_jitter = 0.0
        try:
            conn = await server.anext_connection()
            assert client.protocol_flags is not None
            conn.close()
            await client.until_disconnected(5)
            with pytest.raises(asyncio.TimeoutError):
                await client.until_protocol(0.1)
            assert not await asyncio.to_thread(client.wait_protocol, 0.05)
        finally:
            await client.aclose()


async def test_message_larger_than_one_read_arrives_whole() -> None:
    big = b"0123456789abcdefghijklmnopqrstuvwxyz" * 10000  # 360 KB: several reads

    def answer(conn: FakeConn, line: bytes) -> None:
        name, mid, _ = request_parts(line)
        conn.send(b"#big[" + mid + b"] " + big + b"\n" + reply_for(line))

    with FakeServer(V5_BANNER, answer) as server:
        client = await connect(server)
        try:
            for _ in range(3):
                reply, informs = await client.call("big", timeout=5)
                assert reply.reply_ok() and [m.arguments for m in informs] == [[big]]
        finally:
            await client.aclose()


async def test_server_vanishing_mid_request_fails_it_promptly() -> None:
    def vanish(conn: FakeConn, line: bytes) -> None:
        conn.close()

    with FakeServer(V5_BANNER, vanish) as server:
        client = await connect(server, auto_reconnect=False)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ConnectionLost):
                await client.call("slow", timeout=30)
            assert loop.time() - start < 2
        finally:
            await client.aclose()


async def test_compat_requests_fail_as_replies_on_timeout_and_drop() -> None:
    with FakeServer(V5_BANNER, silent) as server:
        client = await connect(server)
        try:
            reply, informs = await client.future_request(Message.request("slow"), timeout=0.05)
            assert reply.mtype == Message.REPLY  # never a request-type message
            assert reply.arguments[0] == b"fail"
            assert b"timed out" in reply.arguments[1]
            assert is_timeout_reply(reply)
            assert not is_timeout_reply(Message.reply("slow", "fail", "Hardware timed out."))
            assert not is_timeout_reply(Message.reply("slow", "ok"))
            fut = client.future_request(Message.request("slow"), timeout=30)
            await server.anext_line()
            await server.anext_line()
            client.disconnect()
            reply, _ = await asyncio.wait_for(fut, 5)
            assert reply.mtype == Message.REPLY and reply.arguments[0] == b"fail"
            assert b"Connection closed" in reply.arguments[1]
            assert not is_timeout_reply(reply)
        finally:
            await client.aclose()


async def test_modern_call_errors_carry_server_message() -> None:
    def answers(conn: FakeConn, line: bytes) -> None:
        name, mid, _ = request_parts(line)
        if name == b"bad":
            conn.send(b"!bad[%s] fail Hardware\\_on\\_fire\n" % mid)
        else:
            conn.send(b"!%s[%s] invalid Unknown\\_request.\n" % (name, mid))

    with FakeServer(V5_BANNER, answers) as server:
        client = await connect(server)
        try:
            with pytest.raises(FailReplyError, match="Hardware on fire") as info:
                await client.call("bad")
            assert info.value.reply is not None and info.value.reply.arguments[0] == b"fail"
            with pytest.raises(InvalidReply, match="Unknown request."):
                await client.call("nothing")
        finally:
            await client.aclose()


async def test_timeout_and_late_reply_without_id_does_not_match_next_request() -> None:
    pending: list[bytes] = []

    def slow_first(conn: FakeConn, line: bytes) -> None:
        name, mid, args = request_parts(line)
        pending.append(reply_for(line, *args))
        if len(pending) == 2:  # the late reply of the first, then the second's
            conn.send(b"".join(pending))

    with FakeServer(V5_NO_IDS_BANNER, slow_first) as server:
        client = await connect(server)
        try:
            with pytest.raises(RequestTimeout):
                await client.call("echo", "first", timeout=0.05)
            reply, _ = await client.call("echo", "second", timeout=5)
            assert reply.arguments == [b"ok", b"second"]
        finally:
            await client.aclose()


async def test_request_timeout_hint_used_as_default(caplog) -> None:
    def hints(conn: FakeConn, line: bytes) -> None:
        name, mid, _ = request_parts(line)
        if name == b"request-timeout-hint":
            conn.send(b"#request-timeout-hint[%s] slow 30.0\n" % mid)
            conn.send(reply_for(line, b"1"))
        # 'slow' never replies

    with FakeServer(V5_HINTS_BANNER, hints) as server:
        client = await AsyncClient.connect(*server.address, timeout=5.0)
        client._request_timeout = 0.05
        try:
            assert await server.anext_line() == b"?request-timeout-hint[1]"
            for _ in range(100):  # the hint request's reply is processed on the loop
                if client._timeout_hints:
                    break
                await asyncio.sleep(0.01)
            assert client._timeout_hints == {"slow": 30.0}
            assert client._timeout_for("slow", None) == 30.0
            assert client._timeout_for("other", None) == 0.05
            with pytest.raises(RequestTimeout):
                await client.call("other")
        finally:
            await client.aclose()


async def test_reconnect_backoff_is_bounded_jittered_and_logged(caplog) -> None:
    sock, address = refusing_address()  # every attempt fails
    client = AsyncClient(*address)
    client.auto_reconnect_delay = 0.01
    client.auto_reconnect_max_delay = 0.04
    client.max_reconnect_attempts = 4
    client.set_ioloop()
    with caplog.at_level(logging.INFO, logger="katcp.client"):
        client.start()
        await asyncio.wait_for(client.until_stopped(), 10)
    sock.close()
    attempts = [r for r in caplog.records if "Failed to connect" in r.getMessage()]
    assert len(attempts) == 4
    assert all(r.levelno == logging.INFO for r in attempts)
    assert any("Giving up" in r.getMessage() for r in caplog.records)
    delays = [client._reconnect_delay() for _ in range(50)]
    assert all(0.02 <= d <= 0.04 for d in delays) and len(set(delays)) > 1


async def test_handler_dispatch_and_request_type_from_server() -> None:
    got: list[str] = []
    done = asyncio.Event()

    class Client(DeviceClient):
        def reply_watchdog(self, msg: Message) -> None:
            """Record it."""
            got.append(f"reply {msg.arguments[0].decode()}")

        def request_ping(self, msg: Message) -> Message:
            """Answer it."""
            got.append("request")
            return Message.reply("ping", "ok")

        def unhandled_reply(self, msg: Message) -> None:
            got.append("unhandled " + msg.name)
            done.set()

    received: list[bytes] = []
    gotline = threading.Event()

    def peer(conn: FakeConn, line: bytes) -> None:
        if line.startswith(b"?watchdog"):
            conn.send(b"?ping[9]\n!watchdog ok\n!stray ok\n")
        else:
            received.append(line)
            gotline.set()

    with FakeServer(V5_BANNER, peer) as server:
        client = Client(*server.address)
        client.set_ioloop()
        client.start()
        try:
            await client.until_protocol(5)
            client.send_request(Message.request("watchdog"))
            await asyncio.wait_for(done.wait(), 5)
            assert got == ["request", "reply ok", "unhandled stray"]
            assert await asyncio.to_thread(gotline.wait, 5)
            assert received == [b"!ping[9] ok"]
        finally:
            client.stop()
            await client.until_stopped(5)


def test_blocking_request_fails_promptly_when_server_vanishes() -> None:
    with FakeServer(V5_BANNER, lambda conn, line: conn.close()) as server:
        client = BlockingClient(*server.address, auto_reconnect=False)
        client.start(timeout=5)
        try:
            assert client.wait_protocol(5)
            reply, _ = client.blocking_request(Message.request("x"), timeout=30)
            assert reply.mtype == Message.REPLY and reply.arguments[0] == b"fail"
        finally:
            client.stop(5)
            client.join(5)
