"""The clients' public surface (katcp-python's names) and request timeout book-keeping."""

from __future__ import annotations

import asyncio

import pytest
from fakeserver import V5_BANNER, FakeConn, FakeServer, refusing_address, reply_for, request_parts

from katcpx import Message, ProtocolFlags, RequestTimeout
from katcpx.client import AsyncClient, BlockingClient, CallbackClient, DeviceClient, request_check

# The methods and attributes katcp-python 0.9.3's Core API lists for each client.
DEVICE_CLIENT_NAMES = """
    convert_seconds disconnect enable_thread_safety handle_inform handle_message handle_reply
    handle_request inform_build_state inform_version inform_version_connect is_connected join
    next notify_connected preset_protocol_flags request running send_message send_request
    set_ioloop start stop unhandled_inform unhandled_reply unhandled_request until_connected
    until_protocol until_running until_stopped wait_connected wait_disconnected wait_protocol
    wait_running MAX_MSG_SIZE MAX_WRITE_BUFFER_SIZE MAX_LOOP_LATENCY
""".split()
ASYNC_CLIENT_NAMES = (
    DEVICE_CLIENT_NAMES + "blocking_request callback_request future_request".split()
)
CALLBACK_CLIENT_NAMES = ASYNC_CLIENT_NAMES + ["setDaemon"]


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (DeviceClient, DEVICE_CLIENT_NAMES),
        (AsyncClient, ASYNC_CLIENT_NAMES),
        (CallbackClient, CALLBACK_CLIENT_NAMES),
        (BlockingClient, CALLBACK_CLIENT_NAMES),
    ],
)
def test_katcp_python_names_present(cls: type, names: list[str]) -> None:
    missing = [name for name in names if not hasattr(cls, name)]
    assert missing == []


def test_constructor_defaults_and_attributes() -> None:
    client = BlockingClient("", 7147)
    assert client.bind_address == ("0.0.0.0", 7147)
    assert client.auto_reconnect is True
    client.auto_reconnect = False
    assert client.auto_reconnect is False
    assert client._request_timeout == 5.0
    assert DeviceClient.MAX_MSG_SIZE == 2 * 1024 * 1024
    assert client.protocol_flags is None and not client.is_connected() and not client.running()
    with pytest.raises(TypeError):
        client.next()
    client.stop()  # never started: a no-op (katcp-python raises RuntimeError; README)
    assert not client.running()


def test_handler_tables_follow_subclasses() -> None:
    class Client(DeviceClient):
        def inform_sensor_status(self, msg: Message) -> None:
            """Handle sensor updates."""

        def reply_my_request(self, msg: Message) -> None:
            """Handle a reply."""

    assert "version-connect" in Client._inform_handlers
    assert "sensor-status" in Client._inform_handlers
    assert "sensor-status" not in DeviceClient._inform_handlers
    assert "my-request" in Client._reply_handlers


async def test_deadline_queues_time_out_each_request_at_its_own_deadline() -> None:
    answered: set[bytes] = set()

    def only_fast(conn: FakeConn, line: bytes) -> None:
        _name, _mid, args = request_parts(line)
        if args[0].startswith(b"answer"):
            answered.add(args[0])
            conn.send(reply_for(line, *args))

    with FakeServer(V5_BANNER, only_fast) as server:
        client = await AsyncClient.connect(*server.address)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            calls = {
                "slow-0.3": client.call("echo", "slow", timeout=0.3),
                "answer-0.3": client.call("echo", "answer", timeout=0.3),
                "slow-0.1": client.call("echo", "slow", timeout=0.1),
                "slow-none": client.call("echo", "slow", timeout=None),
            }
            tasks = {k: asyncio.ensure_future(v) for k, v in calls.items()}
            done, _ = await asyncio.wait(
                [tasks["slow-0.3"], tasks["answer-0.3"], tasks["slow-0.1"]], timeout=5
            )
            assert len(done) == 3
            assert tasks["answer-0.3"].result()[0].reply_ok()
            with pytest.raises(RequestTimeout, match="0.1"):
                tasks["slow-0.1"].result()
            with pytest.raises(RequestTimeout, match="0.3"):
                tasks["slow-0.3"].result()
            assert loop.time() - start >= 0.3
            assert not tasks["slow-none"].done()
            # Finished entries do not pile up in the deadline queues.
            assert all(not dq.entries for dq in client._deadlines.values())
            tasks["slow-none"].cancel()
        finally:
            await client.aclose()


async def test_duplicate_message_id_is_refused() -> None:
    with FakeServer(V5_BANNER, lambda conn, line: None) as server:
        client = await AsyncClient.connect(*server.address)
        try:
            first = client.future_request(Message.request("x", mid=5), timeout=5)
            reply, _ = await client.future_request(Message.request("x", mid=5))
            assert reply.mtype == Message.REPLY and b"already in use" in reply.arguments[1]
            assert not first.done()
        finally:
            await client.aclose()
        reply, _ = await first
        assert b"Client stopped" in reply.arguments[1]


def test_convert_seconds_follows_protocol_version() -> None:
    client = DeviceClient("127.0.0.1", 1)
    assert client.convert_seconds(1.5) == 1.5  # unknown: v5 assumed
    client.preset_protocol_flags(ProtocolFlags(4, 0, ""))
    assert client.convert_seconds(1.5) == 1500.0
    client.preset_protocol_flags(ProtocolFlags(3, 0, ""))
    assert client.convert_seconds(1.0015) == 1001  # truncated to whole ms before v4
    assert client.wait_protocol(0)


async def test_until_futures_time_out() -> None:
    sock, address = refusing_address()
    client = AsyncClient(*address)
    client.auto_reconnect_delay = 0.01
    client.set_ioloop()
    client.start()
    try:
        assert await client.until_running(5)
        with pytest.raises(TimeoutError):
            await client.until_connected(timeout=0.05)
        with pytest.raises(TimeoutError):
            await client.until_protocol(timeout=0.05)
    finally:
        await client.aclose()
        sock.close()
    assert await client.until_stopped(0)


def test_request_check_raises_katcp_pythons_text_on_a_refusal() -> None:
    """katcp.client.request_check: the reply and informs for ok, else the given exception
    with katcp-python's text (real line breaks, not a backslash and an n)."""

    def refuse_nope(conn: FakeConn, line: bytes) -> None:
        name, mid, args = request_parts(line)
        tag = b"[" + mid + b"]" if mid else b""
        conn.send(b"!nope" + tag + b" fail no\n" if name == b"nope" else reply_for(line, *args))

    with FakeServer(V5_BANNER, refuse_nope) as server:
        client = BlockingClient(*server.address, timeout=5)
        client.start(timeout=5)
        try:
            assert client.wait_protocol(5)
            reply, informs = request_check(client, ValueError, "echo", "x", timeout=5)
            assert reply.arguments == [b"ok", b"x"] and informs == []
            with pytest.raises(ValueError) as err:
                request_check(client, ValueError, "nope")
            text = str(err.value)
            assert text.startswith('Unexpected failure reply "!nope')
            assert ' fail no"\n with device at ' in text
            assert f'{client.bind_address_string}, request \n"?nope' in text
        finally:
            client.stop(5)
            client.join(5)
