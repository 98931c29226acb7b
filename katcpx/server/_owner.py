"""The interface a server offers its connections: :class:`ConnectionOwner` (typing only)."""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..crossing import LoopBinding
from ..message import Message
from .access import AccessPolicy

if TYPE_CHECKING:
    from ..metrics._stats import ServerStats
    from ._connection import ActivityTracker, ClientConnection

__all__ = ["ConnectionOwner"]


class ConnectionOwner(Protocol):
    """What a :class:`ClientConnection` needs from its server (``DeviceServerBase``)."""

    # Limits (class attributes of the server; see DeviceServerBase).
    MAX_MSG_SIZE: ClassVar[int]
    MAX_WRITE_BUFFER_SIZE: ClassVar[int]
    MAX_REQUESTS_PER_TURN: ClassVar[int]
    MAX_TURN_SECONDS: ClassVar[float]
    MAX_QUEUED_REQUESTS: ClassVar[int]
    MAX_QUEUED_BYTES: ClassVar[int]
    ORDERED_WAIT_LIMIT: ClassVar[float | None]

    @property
    def binding(self) -> LoopBinding: ...
    @property
    def logger(self) -> logging.Logger: ...
    @property
    def metrics(self) -> ServerStats | None: ...
    @property
    def activity(self) -> ActivityTracker: ...
    @property
    def ssl_context(self) -> ssl.SSLContext | None: ...
    @property
    def access_policy(self) -> AccessPolicy: ...

    # Lifecycle.
    def connection_made(self, conn: ClientConnection) -> None: ...
    def connection_closed(self, conn: ClientConnection, exc: BaseException | None) -> None: ...
    def disconnect_client(self, conn: ClientConnection, reason: str) -> None: ...

    # Dispatch.
    def is_loop_safe(self, msg: Message) -> bool: ...
    def handle_loop_safe(self, client_conn: ClientConnection, msg: Message) -> None: ...
    def handles_runs(self) -> bool: ...
    def runs_on_loop(self, msg: Message) -> bool: ...
    def on_message(self, client_conn: ClientConnection, msg: Message) -> Any: ...
    def on_message_run(self, client_conn: ClientConnection, run: list[Message]) -> Any: ...

    # Sending.
    def mass_inform(self, msg: Message) -> None: ...
    def create_log_inform(
        self, level_name: str, msg: str, name: str, timestamp: float | None = None
    ) -> Message: ...
