"""Exceptions shared by every layer of katcpx.

The names katcp-python exports (``KatcpSyntaxError``, ``FailReply``, ``AsyncReply``,
``KatcpDeviceError``, ``KatcpClientError``, ``KatcpTypeError``) keep their meaning. The client
exceptions below them (``FailReplyError`` and friends) are what katcpx's modern ``async``
client API raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._shown import show_wire

if TYPE_CHECKING:
    from .message import Message

__all__ = [
    "KatcpError",
    "KatcpSyntaxError",
    "MessageTooLong",
    "KatcpTypeError",
    "KatcpValueTypeError",
    "FailReply",
    "AsyncReply",
    "KatcpDeviceError",
    "KatcpClientError",
    "KatcpVersionError",
    "KatcpClientDisconnected",
    "NotARequestError",
    "MissingDocstringError",
    "RequestFailed",
    "FailReplyError",
    "InvalidReply",
    "RequestTimeout",
    "ConnectionLost",
]


class KatcpError(Exception):
    """Base class of every katcpx exception."""


class KatcpSyntaxError(KatcpError, ValueError):
    """A line that does not follow the KATCP message grammar.

    Parameters
    ----------
    problem
        What is wrong, in words.
    line
        The offending line (bytes as received), if known.
    column
        Zero-based byte offset of the problem within `line`, if known.
    """

    def __init__(self, problem: str, line: bytes | None = None, column: int | None = None) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        text = problem
        if column is not None:
            text += f" (at column {column + 1})"
        if line is not None:
            # The line as the client sent it, quoted (never a bytes repr); long ones cut.
            text += f" in {show_wire(line[:200])}" + ("..." if len(line) > 200 else "")
        super().__init__(text)


class MessageTooLong(KatcpSyntaxError):
    """A line longer than the configured maximum message size."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of at least {size} bytes exceeds the {limit}-byte limit")


class KatcpTypeError(KatcpError, TypeError, ValueError):
    """A value that a kattype could not pack, unpack or check.

    A ``TypeError``, as katcp-python 0.9.3's ``katcp.core.KatcpTypeError`` is, and also a
    ``ValueError``, which katcp-python's kattypes raise for bad values: catches written for
    either keep working.
    """


class KatcpValueTypeError(KatcpTypeError):
    """A value whose Python type a kattype cannot pack (``Int().pack("a")``).

    A :class:`KatcpTypeError`, so both a ``TypeError`` (as katcp-python 0.9.3 raises for such
    values) and a ``ValueError`` like every other kattype error.
    """


class FailReply(KatcpError):
    """Raised by a request handler to send a ``fail`` reply.

    The exception's message becomes the reply's second argument::

        raise FailReply("Hardware did not respond.")
    """


class AsyncReply(KatcpError):
    """Raised by a request handler that will reply later through ``req.reply``."""


class KatcpDeviceError(KatcpError):
    """An error in a device server."""


class KatcpClientError(KatcpError):
    """An error raised by a KATCP client."""


class KatcpVersionError(KatcpClientError):
    """A KATCP feature the server's protocol version does not support (e.g. message ids)."""


class KatcpClientDisconnected(KatcpClientError):
    """Raised when sending a message while not connected to the server."""


class NotARequestError(KatcpClientError, AssertionError, ValueError):
    """A request API (``blocking_request``, ``future_request``, ...) was given a reply or inform.

    An ``AssertionError``, as katcp-python 0.9.3 raises (its ``send_request`` asserts the
    message type), and a ``ValueError``, as katcpx's ``send_request`` raised before.
    """


class MissingDocstringError(KatcpError, TypeError, AssertionError):
    """A server or client class defines a ``request_*``/``inform_*``/``reply_*`` handler
    without a docstring (the ``?help`` text); raised when the class is created.

    A ``TypeError``, and an ``AssertionError`` as katcp-python 0.9.3's ``DeviceMetaclass``
    raises, with its text (``Inform 'foo' has no docstring.``) and where the handler is.
    """

    def __init__(self, kind: str, name: str, where: str) -> None:
        super().__init__(f"{where}: {kind} '{name}' has no docstring.")


class RequestFailed(KatcpClientError):
    """Base of the errors the modern client call raises for a request that did not succeed.

    Attributes
    ----------
    reply
        The reply message, when one arrived.
    informs
        The informs received for the request before it ended.
    """

    def __init__(
        self,
        text: str,
        reply: Message | None = None,
        informs: list[Message] | None = None,
    ) -> None:
        super().__init__(text)
        self.reply = reply
        self.informs = informs if informs is not None else []


class FailReplyError(RequestFailed):
    """The server replied ``fail``; the text is the server's message."""


class InvalidReply(RequestFailed):
    """The server replied ``invalid`` (for example an unknown request or bad arguments)."""


class RequestTimeout(RequestFailed, TimeoutError):
    """No reply arrived within the request's timeout."""


class ConnectionLost(RequestFailed, ConnectionError):
    """The connection closed before the reply arrived."""
