"""Client life cycle and threading: managed and unmanaged loops, calls from any thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator

import pytest
from fakeserver import V4_BANNER, V5_BANNER, FakeServer, echo
from tornado import gen
from tornado.ioloop import IOLoop

from katcpx import Message, ProtocolFlags
from katcpx.client import AsyncClient, BlockingClient, CallbackClient, KatcpClientDisconnected


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(V5_BANNER, echo) as srv:
        yield srv


@pytest.fixture
def client(server: FakeServer) -> Iterator[BlockingClient]:
    c = BlockingClient(*server.address, timeout=5)
    c.start(timeout=5)
    assert c.wait_protocol(5)
    yield c
    c.stop(5)
    c.join(5)


def test_managed_start_leaves_callers_ioloop_alone(server: FakeServer) -> None:
    before = IOLoop.current(instance=False)
    c = BlockingClient(*server.address)
    c.setDaemon(True)
    c.start(timeout=5)
    try:
        assert IOLoop.current(instance=False) is before
        assert c.ioloop is not before and c.ioloop is not None
        assert c.wait_running(5) and c.wait_connected(5) and c.is_connected()
        assert c._loop_thread is not None and c._loop_thread.thread.daemon
        with pytest.raises(RuntimeError):
            c.start()
    finally:
        c.stop(5)
        c.join(5)
    assert not c.running() and not c._loop_thread.thread.is_alive()
    assert c.wait_disconnected(0)


def test_restart_after_stop(server: FakeServer) -> None:
    c = BlockingClient(*server.address)
    for _ in range(2):
        c.start(timeout=5)
        assert c.wait_protocol(5)
        reply, _ = c.blocking_request(Message.request("echo", "x"))
        assert reply.arguments == [b"ok", b"x"]
        c.stop(5)
        c.join(5)


def test_blocking_calls_from_loop_thread_raise_instead_of_deadlocking(
    client: BlockingClient,
) -> None:
    result: concurrent.futures.Future = concurrent.futures.Future()

    def on_loop() -> None:
        errors = []
        for call in (
            lambda: client.blocking_request(Message.request("echo")),
            lambda: client.wait_connected(1),
            lambda: client.wait_protocol(1),
        ):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        result.set_result(errors)

    client.ioloop.add_callback(on_loop)
    errors = result.result(5)
    assert len(errors) == 3 and all("deadlock" in e for e in errors)


def test_many_threads_share_one_blocking_client(client: BlockingClient) -> None:
    def work(tid: int) -> list[bytes]:
        out = []
        for i in range(50):
            reply, _ = client.blocking_request(Message.request("echo", f"{tid}-{i}"))
            out.append(reply.arguments[1])
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[f"{t}-{i}".encode() for i in range(50)] for t in range(8)]


def test_callback_request_from_another_thread(server: FakeServer) -> None:
    c = CallbackClient(*server.address)
    assert c.threadsafe
    c.start(timeout=5)
    try:
        assert c.wait_protocol(5)
        done: concurrent.futures.Future = concurrent.futures.Future()
        informs: list[Message] = []

        def reply_cb(msg: Message, tag: str) -> None:
            done.set_result((msg, tag, threading.get_ident() == c.ioloop_thread_id))

        c.callback_request(
            Message.request("echo", "y"),
            reply_cb=reply_cb,
            inform_cb=lambda msg, tag: informs.append(msg),
            user_data=("tag",),
        )
        msg, tag, on_loop = done.result(5)
        assert msg.arguments == [b"ok", b"y"] and tag == "tag" and on_loop
    finally:
        c.stop(5)
        c.join(5)


def test_send_message_and_request_from_another_thread(
    client: BlockingClient, server: FakeServer
) -> None:
    client.send_message(Message.inform("hello", "there"))
    mid = client.request(Message.request("echo", "z"))
    assert server.next_line() == b"#hello there"
    assert server.next_line() == b"?echo[%s] z" % mid


def test_future_request_from_plain_thread_is_a_concurrent_future(client: BlockingClient) -> None:
    fut = client.future_request(Message.request("echo", 1))
    assert isinstance(fut, concurrent.futures.Future)
    reply, informs = fut.result(5)
    assert reply.arguments == [b"ok", b"1"]


async def test_managed_client_awaited_from_another_loop(client: BlockingClient) -> None:
    reply, _ = await client.future_request(Message.request("echo", 2))
    assert reply.arguments == [b"ok", b"2"]
    reply, _ = await client.call("echo", 3)
    assert reply.arguments == [b"ok", b"3"]
    assert await client.until_connected(5) is None  # as katcp-python


async def test_future_request_under_tornado_coroutine(server: FakeServer) -> None:
    c = AsyncClient(*server.address)
    c.set_ioloop(IOLoop.current())
    c.start()
    try:
        await c.until_protocol(timeout=5)
        with pytest.raises(RuntimeError):
            c.enable_thread_safety()  # too late once running

        @gen.coroutine
        def legacy():
            reply, informs = yield c.future_request(Message.request("echo", "t"))
            return reply

        reply = await legacy()
        assert reply.arguments == [b"ok", b"t"]
        assert isinstance(c.future_request(Message.request("echo")), asyncio.Future)
    finally:
        c.stop()
        await c.until_stopped(5)


async def test_notify_connected_and_auto_reconnect(server: FakeServer) -> None:
    events: list[bool] = []

    class Client(AsyncClient):
        def notify_connected(self, connected: bool) -> None:
            events.append(connected)

    c = await Client.connect(*server.address)
    c.auto_reconnect_delay = 0.01
    try:
        first = await server.anext_connection()
        first.close()
        await server.anext_connection()
        await c.until_protocol(5)
        reply, _ = await c.call("echo", "back")
        assert reply.arguments == [b"ok", b"back"]
        assert events == [True, False, True]
        assert c.last_connect_time is not None
    finally:
        await c.aclose()
    assert events == [True, False, True, False]


async def test_preset_protocol_flags_disables_detection() -> None:
    with FakeServer(V4_BANNER, echo) as server:
        c = AsyncClient(*server.address)
        c.preset_protocol_flags(ProtocolFlags(5, 0, "I"))
        c.set_ioloop()
        c.start()
        try:
            await c.until_connected(5)
            line = None
            await c.call("echo", "p")
            line = await server.anext_line()
            assert line == b"?echo[1] p"  # ids used although the server said v4
            assert c.protocol_flags == ProtocolFlags(5, 0, "I")
        finally:
            await c.aclose()


async def test_requests_while_disconnected_fail_at_once() -> None:
    c = AsyncClient("127.0.0.1", 1)
    reply, _ = await asyncio.wrap_future(c.future_request(Message.request("x")))
    assert reply.mtype == Message.REPLY and reply.arguments[0] == b"fail"
    assert b"Not connected" in reply.arguments[1]


def test_threaded_blocking_and_loop_requests_interleave_without_loss(
    client: BlockingClient,
) -> None:
    def blocking(tid: int) -> list[bytes]:
        return [
            client.blocking_request(Message.request("echo", f"b{tid}-{i}"))[0].arguments[1]
            for i in range(200)
        ]

    async def calls() -> list[bytes]:
        # Many requests from the loop thread while other threads make blocking ones.
        replies = await asyncio.gather(*(client.call("echo", f"a{i}") for i in range(1000)))
        return [reply.arguments[1] for reply, _ in replies]

    assert client.ioloop is not None
    loop_result = asyncio.run_coroutine_threadsafe(calls(), client.ioloop.asyncio_loop)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(blocking, range(4)))
    assert results == [[f"b{t}-{i}".encode() for i in range(200)] for t in range(4)]
    assert loop_result.result(10) == [f"a{i}".encode() for i in range(1000)]


def test_blocking_request_racing_stop_fails_promptly(server: FakeServer) -> None:
    # A request handed to a loop that stops before running it used to wait out its whole
    # timeout and then raise; now the caller notices the stopped loop and fails it.
    for _ in range(5):
        c = BlockingClient(*server.address, timeout=30)
        c.start(timeout=5)
        assert c.wait_protocol(5)
        c.stop(5)
        start = time.monotonic()
        reply, _ = c.blocking_request(Message.request("echo", "late"))
        assert reply.mtype == Message.REPLY and reply.arguments[0] == b"fail"
        assert time.monotonic() - start < 5
        c.join(5)


def test_loop_thread_id_is_the_bindings_and_read_only(server: FakeServer) -> None:
    """The client's loop binding holds the loop thread's id: katcp-python's
    ``ioloop_thread_id`` reads it, names the running loop's thread, and is gone once a
    managed loop has ended (hand-offs then fail at once instead of queueing)."""
    c = BlockingClient(*server.address)
    assert c.ioloop_thread_id is None
    c.start(timeout=5)
    try:
        assert c.wait_protocol(5)
        seen: concurrent.futures.Future = concurrent.futures.Future()
        c.ioloop.add_callback(lambda: seen.set_result(threading.get_ident()))
        assert c.ioloop_thread_id == seen.result(5) != threading.get_ident()
        with pytest.raises(AttributeError):
            c.ioloop_thread_id = 1  # type: ignore[misc]
    finally:
        c.stop(5)
        c.join(5)
    assert c.ioloop_thread_id is None
    with pytest.raises(KatcpClientDisconnected):
        c.send_raw(b"?echo\n")
    c.disconnect()  # nothing to disconnect: no error


def test_stop_right_after_start_on_a_loop_in_another_thread(server: FakeServer) -> None:
    """A client on a loop that another thread runs is stopped even before its main
    coroutine has run (and so before its loop binding is bound)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for _ in range(20):
            c = BlockingClient(*server.address)
            c.set_ioloop(loop)
            c.start()
            c.stop(5)
            assert not c.running()
            assert asyncio.run_coroutine_threadsafe(_until_stopped(c), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _until_stopped(c: BlockingClient) -> bool:
    return await c.until_stopped(5)
