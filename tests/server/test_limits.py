"""Resource limits and fairness between clients."""

from __future__ import annotations

import logging
import socket
import threading
import time

from katcpx.message import Message
from katcpx.server import ConnectionState

from .helpers import TIMEOUT, Client, ExampleServer, connect, running


class Small(ExampleServer):
    MAX_MSG_SIZE = 1000
    MAX_WRITE_BUFFER_SIZE = 64 * 1024

    def request_spam(self, req, msg):
        """Send 10 MB of reply informs at once."""
        for _ in range(10_000):
            req.inform("x" * 1000)
        return req.make_reply("ok")


def _server(cls=ExampleServer, **kwargs):
    srv = cls("127.0.0.1", 0, **kwargs)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    return srv


def test_message_too_long_disconnects():
    srv = _server(Small)
    with running(srv), connect(srv) as c, connect(srv) as other:
        c.send_raw(b"?watchdog " + b"x" * 2000 + b"\n?watchdog\n")
        rest = [m for m in c.read_until_closed() if m.name != "client-connected"]
        assert [m.name for m in rest] == ["log", "disconnect"]
        assert rest[0].arguments[0] == b"error"
        assert b"too long" in rest[0].arguments[3]
        assert other.request("watchdog")[0].reply_ok()


def _watchdog_latencies(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        reply, _ = client.request("watchdog", timeout=TIMEOUT)
        assert reply.reply_ok()
        out.append(time.perf_counter() - t0)
    return out


def test_slow_reader_is_disconnected_and_others_unaffected(caplog):
    srv = _server(Small, logger=logging.getLogger("test.limits"))
    caplog.set_level(logging.WARNING)
    with running(srv), connect(srv) as good:
        baseline = max(_watchdog_latencies(good, 5))
        slow = socket.create_connection(srv.bind_address)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        deadline = time.monotonic() + TIMEOUT
        while len(srv._connections) < 2 and time.monotonic() < deadline:
            srv.sync_with_ioloop(TIMEOUT)
        try:
            # One request whose output the client never reads. (A client sending many
            # requests is paused instead while its output is high: test_bad_input_flow.)
            slow.sendall(b"?spam\n")
            latencies = []
            deadline = time.monotonic() + TIMEOUT
            while len(srv._connections) > 1 and time.monotonic() < deadline:
                latencies += _watchdog_latencies(good, 1)
            assert len(srv._connections) == 1, "slow reader was not disconnected"
            assert max(latencies, default=0) < max(0.5, 20 * baseline)
            assert any("not reading" in r.getMessage() for r in caplog.records)
        finally:
            slow.close()
        assert good.request("watchdog")[0].reply_ok()


def test_pipelining_client_cannot_starve_another():
    srv = _server()
    n = 100_000
    with running(srv), connect(srv) as greedy, connect(srv) as polite:
        done = threading.Event()
        count = [0]

        def drain():
            buf = b""
            while count[0] < n:
                data = greedy.sock.recv(1 << 20)
                if not data:
                    break
                buf += data
                lines = buf.split(b"\n")
                buf = lines.pop()
                count[0] += sum(1 for line in lines if line.startswith(b"!watchdog"))
            done.set()

        greedy.sock.settimeout(30)
        reader = threading.Thread(target=drain)
        reader.start()
        writer = threading.Thread(target=greedy.sock.sendall, args=(b"?watchdog\n" * n,))
        writer.start()
        # Wait until the greedy flood is being handled, then time the polite client.
        while count[0] < 1000 and not done.is_set():
            time.sleep(0.001)  # polling a counter the reader thread updates
        latencies = _watchdog_latencies(polite, 20)
        in_progress = count[0] < n
        writer.join(30)
        assert done.wait(30)
        reader.join(5)
        assert count[0] == n
        assert in_progress, "flood finished before the polite client was timed"
        assert max(latencies) < 0.25, latencies


def test_reading_pauses_for_a_backlogged_client():
    srv = _server()
    with running(srv), connect(srv) as c:
        conn = next(iter(srv._connections))
        # Hold its messages as if on_client_connect had not finished.
        srv.binding.call_and_wait(setattr, conn, "_state", ConnectionState.CONNECTING)
        c.send_raw(b"?watchdog\n" * (srv.MAX_QUEUED_REQUESTS * 2))
        deadline = time.monotonic() + TIMEOUT
        while not conn._paused and time.monotonic() < deadline:
            srv.sync_with_ioloop(TIMEOUT)
        assert conn._paused
        srv.binding.call(conn.ready)
        replies = 0
        while replies < srv.MAX_QUEUED_REQUESTS * 2:
            msg = c.read()
            if msg.name == "watchdog":
                replies += 1
        assert not conn._paused
        assert c.request("watchdog")[0] == Message.reply("watchdog", "ok")
