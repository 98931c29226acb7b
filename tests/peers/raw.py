"""A deliberately dumb KATCP line client on a plain socket, independent of every KATCP library.

Useful to check what a server really puts on the wire. It splits lines on spaces and does not
unescape arguments.
"""

from __future__ import annotations

import re
import socket
import time
from types import TracebackType

__all__ = ["RawConnection", "line_name"]

_EOL = re.compile(rb"[\r\n]")


def line_name(line: bytes) -> tuple[bytes, bytes]:
    """Return ``(type_char_and_name, mid)`` of a wire line: ``b"!echo[3] ok"`` → ``(b"!echo", b"3")``.

    The id is ``b""`` when the line has none.
    """
    head = line.split(b" ", 1)[0]
    name, _, mid = head.partition(b"[")
    return name, mid.rstrip(b"]")


class RawConnection:
    """Blocking socket connection that reads and writes whole KATCP lines, with timeouts.

    Parameters
    ----------
    host, port : str, int
        Server address.
    timeout : float
        Seconds allowed for connecting and for each :meth:`read_line`.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""

    def send_line(self, line: bytes) -> None:
        """Send one line; a missing trailing ``\\n`` is added."""
        self.sock.sendall(line if line.endswith(b"\n") else line + b"\n")

    def read_line(self, timeout: float | None = None) -> bytes:
        """Return the next line without its terminator (``\\n`` or ``\\r``).

        Raises
        ------
        TimeoutError
            If no complete line arrives in time.
        ConnectionError
            If the server closes the connection.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            match = _EOL.search(self._buffer)
            if match:
                line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
                if line.strip():
                    return line
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line; buffered {self._buffer!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no complete line; buffered {self._buffer!r}") from None
            if not chunk:
                raise ConnectionError(f"connection closed; buffered {self._buffer!r}")
            self._buffer += chunk

    def read_until(self, prefix: bytes, timeout: float | None = None) -> list[bytes]:
        """Read lines until one whose type and name are ``prefix`` (e.g. ``b"!help"``).

        Returns
        -------
        list of bytes
            Every line read, the matching one last.
        """
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if line_name(line)[0] == prefix:
                return lines

    def request(self, line: bytes, timeout: float | None = None) -> tuple[bytes, list[bytes]]:
        """Send request ``line`` and return ``(reply, other_lines_before_it)``.

        The reply is the first ``!`` line with the request's name.
        """
        self.send_line(line)
        name = line_name(line.strip())[0]
        lines = self.read_until(b"!" + name[1:], timeout)
        return lines[-1], lines[:-1]

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
