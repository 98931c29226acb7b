"""The client's connection: :class:`katcpx.transport.KatcpProtocol` wired to a client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..transport import KatcpProtocol

if TYPE_CHECKING:
    from ._base import ClientBase

#: Size of the receive buffer reused for every read.
_RECV_BUFFER_SIZE = 256 * 1024


class ClientProtocol(KatcpProtocol, asyncio.BufferedProtocol):
    """A :class:`KatcpProtocol` that reports to a client.

    Reads go into one buffer reused for the life of the connection (the
    :class:`asyncio.BufferedProtocol` interface). A plain protocol makes asyncio allocate a
    fresh 256 KiB ``bytes`` per read and shrink it afterwards: a ``mmap``, ``mremap`` and
    ``munmap`` for every few replies, which dominated a client's system time.

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
        self._recv_buffer = bytearray(_RECV_BUFFER_SIZE)
        self._recv_view = memoryview(self._recv_buffer)

    # -- asyncio.BufferedProtocol ----------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._recv_view

    def buffer_updated(self, nbytes: int) -> None:
        # One copy of just the received bytes; the parser keeps slices of it.
        self.data_received(self._recv_view[:nbytes].tobytes())

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if not self.lost.done():
                self.lost.set_result(exc)
