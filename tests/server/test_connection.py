"""The connection owns its lifecycle: one state, its own bad-line handling, public sending."""

from __future__ import annotations

import threading
import time

from katcpx.message import Message
from katcpx.server import ConnectionState

from .helpers import TIMEOUT, ExampleServer, connect, running


class Small(ExampleServer):
    MAX_MSG_SIZE = 1000


def _only_connection(srv: ExampleServer):
    deadline = time.monotonic() + TIMEOUT
    while not srv.client_connections() and time.monotonic() < deadline:
        srv.sync_with_ioloop(TIMEOUT)
    (conn,) = srv.client_connections()
    return conn


def _wait_state(srv: ExampleServer, conn, state: ConnectionState) -> None:
    deadline = time.monotonic() + TIMEOUT
    while conn.state is not state and time.monotonic() < deadline:
        srv.sync_with_ioloop(TIMEOUT)
    assert conn.state is state


def test_state_moves_from_open_to_closed_after_an_over_long_line():
    srv = Small("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        conn = _only_connection(srv)
        assert c.request("watchdog")[0] == Message.reply("watchdog", "ok")
        assert conn.state is ConnectionState.OPEN
        c.send_raw(b"?watchdog " + b"x" * 2000 + b"\n?watchdog\n")
        seen = c.read_until_closed()
        names = [(m.mtype, m.name) for m in seen]
        # The connection answered the line itself: #log error, #disconnect, no reply to
        # the request queued behind the bad line.
        assert (Message.INFORM, "log") in names and (Message.INFORM, "disconnect") in names
        assert (Message.REPLY, "watchdog") not in names
        _wait_state(srv, conn, ConnectionState.CLOSED)
        assert conn.client_disconnect_called


def test_a_bad_line_is_answered_and_the_connection_stays_open():
    srv = ExampleServer("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        conn = _only_connection(srv)
        c.send_raw(b"?watch\\qdog[7]\n")
        log = c.wait_inform("log")
        assert b"Bad message" in log.arguments[3]
        assert c.request("watchdog")[0] == Message.reply("watchdog", "ok")
        assert conn.state is ConnectionState.OPEN


def test_send_bytes_from_another_thread_keeps_order():
    srv = ExampleServer("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        conn = _only_connection(srv)

        def send() -> None:
            for i in range(50):
                conn.send_bytes(b"#tick %d\n" % i)

        thread = threading.Thread(target=send)
        thread.start()
        thread.join(TIMEOUT)
        got = [c.wait_inform("tick").arguments[0] for _ in range(50)]
        assert got == [b"%d" % i for i in range(50)]


def test_pipelining_clients_do_not_shorten_each_others_turns():
    srv = ExampleServer("127.0.0.1", 0)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv), connect(srv) as a, connect(srv) as b, connect(srv) as c:
        for client in (a, b):
            client.send_raw(b"".join(b"?watchdog[%d]\n" % (i + 1) for i in range(200)))
        for client in (a, b):
            replies = 0
            while replies < 200:
                if client.read().name == "watchdog":
                    replies += 1
        conns = srv.client_connections()
        now = time.perf_counter()
        # Neither counts as an interactive client, so neither got MAX_TURN_SECONDS turns.
        assert not any(srv.activity.others_active(conn, now) for conn in conns)
        # A client that sends one request and waits is interactive: the others' turns
        # shorten for it.
        assert c.request("watchdog")[0].arguments[0] == b"ok"
        now = time.perf_counter()
        assert sum(srv.activity.others_active(conn, now) for conn in conns) == 2


def test_one_binding_serves_the_server_its_sampling_and_its_connections():
    srv = ExampleServer("127.0.0.1", 0)
    with running(srv), connect(srv):
        binding = srv.binding
        assert not binding.on_loop()
        assert binding.call_and_wait(binding.on_loop, timeout=TIMEOUT)
        assert srv._sampling is not None and srv._sampling.binding is binding
        assert binding.loop is not None and binding.loop.is_running()
    assert srv.binding is binding and not binding.bound  # a managed loop is gone
