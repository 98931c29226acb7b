"""Memory stays bounded in bytes whatever clients send (real sockets, tracemalloc).

tracemalloc sees the whole process, so the server thread, the parser's and the message
module's caches and the connection queues are all counted.
"""

from __future__ import annotations

import gc
import socket
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from .helpers import TIMEOUT, ExampleServer, connect, running

MIB = 1024 * 1024


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _current() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _read_lines(sock: socket.socket, count: int) -> None:
    seen = 0
    while seen < count:
        data = sock.recv(4 * MIB)
        assert data, "server closed the connection"
        seen += data.count(b"\n")


def test_distinct_huge_request_names_leave_nothing_behind(traced: None) -> None:
    with running(ExampleServer("127.0.0.1", 0)) as server, connect(server) as client:
        client.request("watchdog")  # warm up
        before = _current()
        for i in range(100):
            # A 1 MiB name, different every time: each gets "!<name> invalid ...".
            name = b"x%d" % i + b"y" * (MIB - 10)
            client.sock.sendall(b"?" + name + b"\n")
            _read_lines(client.sock, 1)
        grown = _current() - before
    # Each line passes through; none may stay in a cache (it was +261 MiB).
    assert grown < 8 * MIB, f"{grown / MIB:.1f} MiB left behind"


def test_queued_requests_are_bounded_in_bytes(traced: None) -> None:
    release = threading.Event()

    class Server(ExampleServer):
        def request_block(self, req, msg):
            """Block the handler thread until released."""
            release.wait(TIMEOUT * 4)
            return req.make_reply("ok")

    with running(Server("127.0.0.1", 0)) as server, connect(server) as client:
        before = _current()
        sock = client.sock
        sock.sendall(b"?block\n")
        # 40 requests of 1 MiB each queue behind the blocked handler. The server must stop
        # reading once MAX_QUEUED_BYTES (4 MiB) wait, so sending stalls.
        payload = b"?block " + b"z" * (MIB - 8) + b"\n"
        sock.settimeout(2.0)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(40):
                sock.sendall(payload)
                sent += 1
        grown = _current() - before
        release.set()
    assert sent < 40
    # Queue limit + one over-the-limit read + a partial line, with room for the rest.
    assert grown < server.MAX_QUEUED_BYTES + 8 * MIB, f"{grown / MIB:.1f} MiB queued"
