"""Replies to request lines that do not parse.

A client whose request line breaks the grammar (an invalid escape such as ``\\w`` in
``?sensor-list /(\\w)\\1/``) would otherwise wait for its timeout: the server only logs the
line. When the line still shows that it is a request, and its name (and message id), the
server answers ``!<name>[<id>] invalid <what and where>`` (spec section 2: every request
gets a reply; ``invalid`` marks a malformed request) besides the ``#log`` it sends. A line
whose message id itself is bad (``?watchdog[0]``, ``[abc]``, ``[-1]``, out of range or
unclosed; spec 5.1 section 2.2 allows 1 to 2**31 - 1) is answered without an id, and so is
one with white space before its ``?``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import KatcpSyntaxError, MessageTooLong
from ..message import Message
from ..parser import MAX_MID

if TYPE_CHECKING:
    from ._connection import ClientConnection

__all__ = ["invalid_reply", "report_bad_line", "report_too_long"]

# "?name", optionally with anything in brackets after it (a good or a bad message id) and
# after leading white space, followed by a space, tab or the end: a line that shows it is a
# request and which. A bad id (0, -1, abc, out of range, unclosed) is not echoed back.
_HEAD = re.compile(rb"[ \t]*\?([A-Za-z][A-Za-z0-9-]*)(\[[^ \t]*)?(?=[ \t]|$)")
_GOOD_ID = re.compile(rb"\[([1-9][0-9]{0,9})\]")


def invalid_reply(err: KatcpSyntaxError) -> Message | None:
    """The ``!<name> invalid ...`` reply to the bad request line of `err`, or None.

    None when the line is not a request or its name cannot be recovered.
    """
    line = (err.line or b"").rstrip(b"\r\n")
    head = _HEAD.match(line)
    if head is None:
        return None
    name = head.group(1).decode("ascii")
    good_id = _GOOD_ID.fullmatch(head.group(2) or b"")
    mid = good_id.group(1).decode("ascii") if good_id else None
    if mid is not None and int(mid) > MAX_MID:
        mid = None  # not a valid id: answer without one
    where = f" at column {err.column + 1}" if err.column is not None else ""
    return Message.reply(name, "invalid", f"Bad message: {err.problem}{where}.", mid=mid)


def report_bad_line(conn: ClientConnection, err: KatcpSyntaxError) -> None:
    """Answer a malformed line from `conn`: ``#log error`` and, for a request, its reply.

    The server's own log record goes through the connection's rate-limited
    :class:`~katcpx.server._input_log.InputLog`.
    """
    owner = conn.server
    conn.input_log.warning("bad message from %s: %s", conn.address, err)
    if owner.metrics is not None:
        owner.metrics.syntax_error()
    conn.send_message(owner.create_log_inform("error", f"Bad message: {err}", "root"))
    reply = invalid_reply(err)
    if reply is not None:  # the client would otherwise wait for its timeout
        conn.send_message(reply)


def report_too_long(conn: ClientConnection, err: MessageTooLong) -> None:
    """Tell `conn` its line was too long, and disconnect it."""
    owner = conn.server
    text = f"Message too long: {err}"
    if owner.metrics is not None:
        owner.metrics.syntax_error()
    conn.input_log.warning("%s from %s; disconnecting", text, conn.address)
    conn.send_message(owner.create_log_inform("error", text, "root"))
    conn.stop_handling()
    owner.disconnect_client(conn, text)
