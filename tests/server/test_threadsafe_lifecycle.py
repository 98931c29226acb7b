"""Thread-safe methods of servers and clients called before start completes or after stop.

Each is a no-op or takes effect; none raises (katcp-python's contract for them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from katcpx.client import AsyncClient, BlockingClient, CallbackClient, is_timeout_reply
from katcpx.message import Message
from katcpx.sensor import Sensor

from .helpers import TIMEOUT, Client, ExampleServer, connect, running


@pytest.fixture
def side_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in another thread, as a user's set_ioloop() loop would."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    loop.close()


def hold(loop: asyncio.AbstractEventLoop) -> threading.Event:
    """Keep `loop` busy until the returned event is set (so a start cannot complete)."""
    gate = threading.Event()
    loop.call_soon_threadsafe(gate.wait, TIMEOUT)
    return gate


def server_calls(srv: ExampleServer) -> list:
    return [
        lambda: srv.mass_inform(Message.inform("hello")),
        lambda: srv.add_sensor(Sensor.integer(f"late.{threading.get_ident()}.{id(srv)}")),
        lambda: srv.sync_with_ioloop(TIMEOUT) if not srv.running() else None,
        lambda: srv.until_running(),
        lambda: srv.until_stopped(),
        lambda: srv.wait_running(0),
        lambda: srv.running(),
        lambda: srv.join(0),
        lambda: srv.stop(0),
    ]


def test_server_methods_before_start_and_after_stop_do_not_raise():
    srv = ExampleServer("127.0.0.1", 0)
    for call in server_calls(srv):
        call()  # never started
    with running(srv):
        pass
    for call in server_calls(srv):
        call()  # stopped
    assert srv.sync_with_ioloop(TIMEOUT) is None
    # And it starts again afterwards.
    with running(srv), connect(srv) as c:
        assert c.request("watchdog")[0].reply_ok()


def test_server_stop_while_set_ioloop_start_is_pending_takes_effect(side_loop):
    srv = ExampleServer("127.0.0.1", 0)
    srv.set_ioloop(side_loop)
    gate = hold(side_loop)
    srv.start()
    for call in server_calls(srv)[:2]:
        call()
    stopped = srv.stop(0)
    gate.set()
    stopped.result(TIMEOUT)
    assert not srv.running()
    # Today's fault: the stop was dropped and the next start raised "Server already started".
    srv.start(timeout=TIMEOUT)
    assert srv.running()
    with connect(srv) as c:
        assert c.request("watchdog")[0].reply_ok()
    srv.stop().result(TIMEOUT)


def test_server_stop_on_its_own_loop_before_start_completes():
    async def main() -> bool:
        srv = ExampleServer("127.0.0.1", 0)
        srv.set_ioloop(asyncio.get_running_loop())
        srv.start()
        stopped = srv.stop()  # same thread, before the loop ran the start
        await asyncio.wait_for(asyncio.wrap_future(stopped), TIMEOUT)
        return srv.running()

    assert asyncio.run(main()) is False


def test_server_start_right_after_stop_on_its_own_loop_takes_effect():
    # katcp-python's ``server.stop(); server.start()`` on the server's loop: the stop is
    # still closing the listeners when start() comes, so the start waits for it to finish.
    async def main() -> list[bytes]:
        srv = ExampleServer("127.0.0.1", 0)
        srv.set_ioloop(asyncio.get_running_loop())
        srv.start()
        await asyncio.wait_for(asyncio.wrap_future(srv._running_cf), TIMEOUT)
        port = srv.bind_address[1]
        stopped = srv.stop()
        srv.start()  # raised "Address already in use" before
        await asyncio.wait_for(asyncio.wrap_future(stopped), TIMEOUT)
        await asyncio.wait_for(asyncio.wrap_future(srv._running_cf), TIMEOUT)
        assert srv.running() and srv.bind_address[1] == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"?watchdog\n")
        lines = []
        while not lines or not lines[-1].startswith(b"!watchdog"):
            lines.append(await asyncio.wait_for(reader.readline(), TIMEOUT))
        writer.close()
        await asyncio.wait_for(asyncio.wrap_future(srv.stop()), TIMEOUT)
        return lines

    assert asyncio.run(main())[-1] == b"!watchdog ok\n"


def test_server_start_from_another_thread_right_after_stop(side_loop):
    srv = ExampleServer("127.0.0.1", 0)
    srv.set_ioloop(side_loop)
    srv.start(timeout=TIMEOUT)
    assert srv.running()
    gate = hold(side_loop)  # the stop cannot finish until the gate opens
    srv.stop(0)
    threading.Timer(0.2, gate.set).start()
    srv.start(timeout=TIMEOUT)  # waits for the stop, then starts
    assert srv.running()
    with connect(srv) as c:
        assert c.request("watchdog")[0].reply_ok()
    srv.stop().result(TIMEOUT)


def test_server_stop_cancels_a_start_waiting_for_the_previous_stop():
    async def main() -> bool:
        srv = ExampleServer("127.0.0.1", 0)
        srv.set_ioloop(asyncio.get_running_loop())
        srv.start()
        await asyncio.wait_for(asyncio.wrap_future(srv._running_cf), TIMEOUT)
        stopped = srv.stop()
        srv.start()
        srv.stop()  # the latest call wins: stay stopped
        await asyncio.wait_for(asyncio.wrap_future(stopped), TIMEOUT)
        for _ in range(5):
            await asyncio.sleep(0)
        return srv.running()

    assert asyncio.run(main()) is False


CLIENTS = [BlockingClient, CallbackClient, AsyncClient]


def client_calls(c) -> list:
    calls = [
        lambda: c.callback_request(Message.request("watchdog"), timeout=0.5),
        lambda: c.future_request(Message.request("watchdog"), timeout=0.5),
        lambda: c.until_connected(0.01),
        lambda: c.until_protocol(0.01),
        lambda: c.until_running(0.01),
        lambda: c.until_stopped(0.01),
        lambda: c.wait_connected(0),
        lambda: c.wait_protocol(0),
        lambda: c.wait_disconnected(0),
        lambda: c.is_connected(),
        lambda: c.running(),
        lambda: c.disconnect(),
        lambda: c.join(0),
    ]
    if isinstance(c, CallbackClient):
        calls.append(lambda: c.blocking_request(Message.request("watchdog"), timeout=0.5))
    return calls


def check_send_message(c, caplog) -> None:
    # From another thread, as katcp-python's thread-safe clients: no raise, and not
    # silently either: with no running loop the dropped message is logged at once.
    caplog.clear()
    with caplog.at_level("WARNING"):
        c.send_message(Message.request("watchdog"))
        assert c.request(Message.request("watchdog")) is not None
    assert caplog.text.count("Dropped ?watchdog") == 2


def check_send_message_pending(c) -> None:
    # The loop is busy starting the client: the hand-over returns at once.
    started = time.monotonic()
    c.send_message(Message.request("watchdog"))
    assert c.request(Message.request("watchdog")) is not None
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("cls", CLIENTS)
def test_client_methods_before_start_and_after_stop_do_not_raise(cls, caplog):
    with running(ExampleServer("127.0.0.1", 0)) as srv:
        c = cls(*srv.bind_address, timeout=1)
        for call in client_calls(c):
            call()  # never started
        check_send_message(c, caplog)
        c.stop(TIMEOUT)  # katcp-python raises RuntimeError here; a no-op in katcpx
        c.start(timeout=TIMEOUT)
        assert c.wait_protocol(TIMEOUT)
        c.stop(TIMEOUT)
        c.join(TIMEOUT)
        for call in client_calls(c):
            call()  # stopped: the loop is closed now
        check_send_message(c, caplog)
        c.stop(TIMEOUT)


@pytest.mark.parametrize("cls", CLIENTS)
def test_client_stop_while_set_ioloop_start_is_pending_takes_effect(cls, side_loop, caplog):
    with running(ExampleServer("127.0.0.1", 0)) as srv:
        c = cls(*srv.bind_address, timeout=1)
        c.set_ioloop(side_loop)
        gate = hold(side_loop)
        c.start()
        check_send_message_pending(c)  # not connected yet: returns at once, no timeout
        timer = threading.Timer(0.2, gate.set)
        timer.start()
        c.stop(TIMEOUT)
        assert not c.running()
        c.start(timeout=TIMEOUT)
        assert c.wait_protocol(TIMEOUT)
        reply, _ = c.future_request(Message.request("watchdog")).result(TIMEOUT)
        assert reply.reply_ok()
        c.stop(TIMEOUT)


@contextlib.contextmanager
def client_on(loop: asyncio.AbstractEventLoop, cls=BlockingClient):
    """A client of a fresh server, running on `loop`, stopped afterwards."""
    with running(ExampleServer("127.0.0.1", 0)) as srv:
        c = cls(*srv.bind_address, timeout=1)
        c.set_ioloop(loop)
        c.start(timeout=TIMEOUT)
        assert c.wait_protocol(TIMEOUT)
        try:
            yield c
        finally:
            c.stop(TIMEOUT)


def test_blocking_request_on_a_stuck_loop_gets_a_timeout_reply(side_loop):
    with client_on(side_loop) as c:
        gate = hold(side_loop)
        try:
            # katcp-python raises RuntimeError("Unexpected error: ...") here.
            reply, _ = c.blocking_request(Message.request("watchdog"), timeout=0.2)
        finally:
            gate.set()
        assert is_timeout_reply(reply)
        assert c.blocking_request(Message.request("watchdog"))[0].reply_ok()


def test_send_message_from_another_thread_does_not_wait_for_the_loop(side_loop):
    with client_on(side_loop, CallbackClient) as c:
        got = concurrent.futures.Future()
        c.callback_request(Message.request("watchdog"), reply_cb=got.set_result)
        assert got.result(TIMEOUT).reply_ok()
        gate = hold(side_loop)
        c.send_message(Message.request("watchdog", mid=77))  # returns while the loop is busy
        gate.set()


@pytest.mark.parametrize("handler_thread", [True, False])
def test_stop_tells_a_connection_accepted_just_before_it(handler_thread):
    # The race is tight: a connect immediately followed by stop(). Before the fix, asyncio
    # had accepted the socket but the listener closed before its transport was made, so
    # the client got neither #disconnect nor EOF (nearly every round here).
    for _ in range(15):
        srv = ExampleServer("127.0.0.1", 0)
        srv.set_concurrency_options(handler_thread=handler_thread)
        srv.start(timeout=TIMEOUT)
        c = Client(srv.bind_address)
        srv.stop(0)
        try:
            messages = c.read_until_closed()
        finally:
            c.close()
            srv.join(TIMEOUT)
        assert c.closed, "no EOF"
        assert [m.name for m in messages if m.mtype == Message.INFORM][-1] == "disconnect"


def test_stop_tells_every_one_of_many_connections():
    srv = ExampleServer("127.0.0.1", 0)
    srv.start(timeout=TIMEOUT)
    clients = [Client(srv.bind_address) for _ in range(10)]
    srv.stop(0)
    try:
        for c in clients:
            messages = c.read_until_closed()
            assert c.closed
            assert messages[-1].name == "disconnect"
    finally:
        for c in clients:
            c.close()
        srv.join(TIMEOUT)
