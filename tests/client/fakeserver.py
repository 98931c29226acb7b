"""A tiny raw-socket KATCP server for client edge cases (no KATCP library involved).

It runs a thread per connection on blocking sockets. Each received line is recorded and
passed to an ``on_line(conn, line)`` callback, which writes whatever raw bytes the test wants,
so malformed, oversize, reordered or missing replies are easy to produce.
"""

from __future__ import annotations

import asyncio
import queue
import re
import socket
import threading
from collections.abc import Callable
from types import TracebackType

V5_BANNER = (
    b"#version-connect katcp-protocol 5.1-IM\n"
    b"#version-connect katcp-library fake-1.0 fake-1.0\n"
    b"#version-connect katcp-device fake-dev 1.0\n"
)
V5_HINTS_BANNER = b"#version-connect katcp-protocol 5.1-IMT\n"
V5_NO_IDS_BANNER = b"#version-connect katcp-protocol 5.0\n"
V4_BANNER = b"#version fake-4.0\n#build-state fake-4.0-build\n"

_HEAD = re.compile(rb"^\?([A-Za-z][A-Za-z0-9-]*)(?:\[(\d+)\])?(.*)$")


def reply_for(line: bytes, *args: bytes) -> bytes:
    """Return ``!name[mid] ok args...\\n`` answering the request `line`."""
    m = _HEAD.match(line)
    assert m is not None, line
    mid = b"[" + m.group(2) + b"]" if m.group(2) else b""
    rest = b" ".join((b"ok",) + args)
    return b"!" + m.group(1) + mid + b" " + rest + b"\n"


def request_parts(line: bytes) -> tuple[bytes, bytes | None, list[bytes]]:
    """Split a request line into ``(name, mid, args)`` (arguments are not unescaped)."""
    m = _HEAD.match(line)
    assert m is not None, line
    return m.group(1), m.group(2), m.group(3).split()


class FakeConn:
    """One accepted connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        """Send raw bytes (ignored once the connection is gone)."""
        with self._lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection abruptly."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def ok_everything(conn: FakeConn, line: bytes) -> None:
    """Default behaviour: reply ``ok`` to every request."""
    if line.startswith(b"?"):
        conn.send(reply_for(line))


def echo(conn: FakeConn, line: bytes) -> None:
    """Reply ``ok`` to every request, followed by its arguments."""
    if line.startswith(b"?"):
        _name, _mid, args = request_parts(line)
        conn.send(reply_for(line, *args))


class FakeServer:
    """Context manager: a raw KATCP-ish server on 127.0.0.1 with an OS-chosen port.

    Attributes
    ----------
    received
        Every line received, on any connection, without its terminator.
    connections
        Each accepted :class:`FakeConn`, as it is accepted.
    """

    def __init__(
        self,
        banner: bytes = V5_BANNER,
        on_line: Callable[[FakeConn, bytes], None] = ok_everything,
    ) -> None:
        self.banner = banner
        self.on_line = on_line
        self.received: queue.Queue[bytes] = queue.Queue()
        self.connections: queue.Queue[FakeConn] = queue.Queue()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.address = ("127.0.0.1", self.port)
        self._conns: list[FakeConn] = []
        self._closed = False

    def __enter__(self) -> FakeServer:
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        self._listener.close()
        for conn in self._conns:
            conn.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = FakeConn(sock)
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: FakeConn) -> None:
        if self.banner:
            conn.send(self.banner)
        self.connections.put(conn)
        buf = b""
        while True:
            try:
                data = conn.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *lines, buf = re.split(rb"[\r\n]", buf)
            for line in lines:
                if line:
                    self.received.put(line)
                    self.on_line(conn, line)

    def next_connection(self, timeout: float = 5.0) -> FakeConn:
        """Return the next accepted connection (after its banner was sent)."""
        return self.connections.get(timeout=timeout)

    def next_line(self, timeout: float = 5.0) -> bytes:
        """Return the next received line."""
        return self.received.get(timeout=timeout)

    async def anext_connection(self, timeout: float = 5.0) -> FakeConn:
        """:meth:`next_connection` for async tests (keeps the loop running)."""
        return await asyncio.to_thread(self.next_connection, timeout)

    async def anext_line(self, timeout: float = 5.0) -> bytes:
        """:meth:`next_line` for async tests (keeps the loop running)."""
        return await asyncio.to_thread(self.next_line, timeout)


def refusing_address() -> tuple[socket.socket, tuple[str, int]]:
    """Return a bound, non-listening socket and its address: connecting there is refused.

    Keep the socket open while it is used, so the port cannot be reused (or self-connected).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, ("127.0.0.1", sock.getsockname()[1])
