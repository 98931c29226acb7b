"""The per-request ``req`` that handlers receive: :class:`ClientRequestConnection`."""

from __future__ import annotations

from typing import Any

from ..message import Message
from ..parser import MessageParser
from ._connection import ClientConnection

__all__ = ["ClientRequestConnection"]


def _metrics_of(conn: Any) -> Any:
    """The server's counters behind `conn`, or None (metrics off, or a stand-in connection).

    katcp-python-style tests hand requests stand-in connections that have no server.
    """
    server = getattr(conn, "server", None)
    return None if server is None else server.metrics


class ClientRequestConnection:
    """A request together with the connection it came from (``req`` in handlers).

    Parameters
    ----------
    client_connection
        The connection the request arrived on.
    req_msg
        The request message.
    """

    __slots__ = ("client_connection", "msg", "_replied", "_started")

    def __init__(self, client_connection: ClientConnection, req_msg: Message) -> None:
        self.client_connection = client_connection
        self.msg = req_msg
        self._replied = False
        # Request latency counts from the start of the batch that dispatched the request.
        # Stand-in connections (katcp-python-style tests, testutils) have no batch clock.
        self._started = getattr(client_connection, "batch_started", 0.0)

    @property
    def replied(self) -> bool:
        """Whether the reply has been sent."""
        return self._replied

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client of the server."""
        self.client_connection.mass_inform(msg)

    def inform(self, *args: Any) -> None:
        """Send a reply inform (same name and id as the request)."""
        if self._replied:
            raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
        # Through the connection's public inform(), as katcp-python does, so stand-in
        # connections (katcpx.testutils.ClientConnectionTest, mocks) see it.
        self.client_connection.inform(Message.reply_inform(self.msg, *args))

    def inform_raw(self, data: bytes) -> None:
        """Send reply informs already formatted as complete wire lines (bulk replies)."""
        if self._replied:
            raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
        conn = self.client_connection
        if isinstance(conn, ClientConnection):
            conn.send_bytes(data)
            metrics = _metrics_of(conn)
            if metrics is not None:
                metrics.informs += data.count(b"\n") - 1  # the first line is counted when sent
        else:  # a stand-in connection: one inform() per line
            parser = MessageParser()
            for line in data.splitlines():
                if line:
                    conn.inform(parser.parse(line))

    def reply(self, *args: Any) -> None:
        """Send the reply (same name and id as the request); only once."""
        self.reply_with_message(Message.reply_to_request(self.msg, *args))

    def reply_with_message(self, rep_msg: Message) -> None:
        """Send a ready-made reply message; its name must match the request."""
        if self._replied:
            raise RuntimeError(f"Reply to request {self.msg!r} already sent.")
        self._replied = True
        conn = self.client_connection
        conn.reply(rep_msg, self.msg)
        metrics = _metrics_of(conn)
        if metrics is not None:
            args = rep_msg.arguments
            metrics.request_done(self.msg.name, args[0] if args else b"", self._started)

    def make_reply(self, *args: Any) -> Message:
        """Build (without sending) the reply to this request."""
        return Message.reply_to_request(self.msg, *args)

    def reply_again(self, *args: Any) -> None:
        """Raise: a reply was already sent (katcp-python compatibility)."""
        raise RuntimeError(f"Reply to request {self.msg!r} already sent.")

    def inform_after_reply(self, *args: Any) -> None:
        """Raise: informs cannot follow the reply (katcp-python compatibility)."""
        raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
