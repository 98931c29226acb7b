"""The client's connection: :class:`katcpx.transport.KatcpProtocol` wired to a client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..transport import KatcpProtocol

if TYPE_CHECKING:
    from ._link import ClientLink


class ClientProtocol(KatcpProtocol):
    """A :class:`KatcpProtocol` that reports to a client.

    Attributes
    ----------
    lost
        Resolves (with the error or None) once the connection has closed.
    """

    def __init__(self, client: ClientLink, max_msg_size: int, max_write_buffer: int) -> None:
        super().__init__(
            client._on_items,
            client._on_connection_lost,
            on_connection_made=client._on_connected,
            max_msg_size=max_msg_size,
            max_write_buffer=max_write_buffer,
            logger=client._logger,
        )
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if not self.lost.done():
                self.lost.set_result(exc)
