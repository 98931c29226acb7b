"""The client's connection: :class:`katcpx.transport.KatcpProtocol` wired to a client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..message import Message
from ..transport import KatcpProtocol

if TYPE_CHECKING:
    from ._base import ClientBase


class ClientProtocol(KatcpProtocol):
    """A :class:`KatcpProtocol` that reports to a client.

    It adds *write-through when idle*: the transport queues each message and sends the queue
    once per loop iteration, which costs a sequential client one extra loop iteration per
    request. Here the first message after the connection went quiet (nothing queued, and
    data received or a flush done since the last direct write) is written at once; the rest
    of a burst is queued and coalesced as usual, so ordering is kept.

    Attributes
    ----------
    lost
        Resolves (with the error or None) once the connection has closed.
    """

    def __init__(self, client: ClientBase, max_msg_size: int, max_write_buffer: int) -> None:
        super().__init__(
            client._on_items,
            client._on_connection_lost,
            on_connection_made=client._on_connected,
            max_msg_size=max_msg_size,
            max_write_buffer=max_write_buffer,
            logger=client._logger,
        )
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._idle = True

    def send_message(self, msg: Message) -> None:
        if self._idle:
            transport = self.transport
            if transport is not None and not self.closed and self.write_buffer_size == 0:
                self._idle = False
                transport.write(bytes(msg))
                return
        super().send_message(msg)

    def data_received(self, data: bytes) -> None:
        self._idle = True
        super().data_received(data)

    def flush(self) -> None:
        super().flush()
        self._idle = True

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if not self.lost.done():
                self.lost.set_result(exc)
