"""KATCP messages: construction and the wire line (no I/O).

A message is a request (``?``), reply (``!``) or inform (``#``) with a name, an optional
message id and a list of arguments. Arguments are stored already formatted as ``bytes``
(katcp-python does the same), so formatting a message for the wire only has to escape and
join. Names, ids, argument formatting and escapes are the wire codec's
(:mod:`katcpx.codec`); this module re-exports katcp-python's names for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

from .codec import (
    CACHED_NAME_MAX,
    MAX_MID,
    SPECIAL_BYTES,
    check_mid,
    check_name,
    escape_argument,
    escape_arguments,
    fast_format_line,
    format_argument,
    unescape_argument,
    wire_argument,
)
from .errors import KatcpSyntaxError

__all__ = [
    "Message",
    "format_argument",
    "escape_argument",
    "wire_argument",
    "unescape_argument",
    "check_name",
    "check_mid",
    "MAX_MID",
    "CACHED_NAME_MAX",
]


#: Every special byte but the space: a joined line's spaces are counted instead.
_SPECIAL_BYTES_BUT_SPACE: Final = SPECIAL_BYTES.replace(b" ", b"")

_TYPE_PREFIX: Final = {0: b"?", 1: b"!", 2: b"#"}
# Encoded ``?name`` heads by message type (indexed by ``mtype``), capped like the name cache.
_HEADS: tuple[dict[str, bytes], ...] = ({}, {}, {})
_HEADS_CAP: Final = 4096


class Message:
    """A KATCP message.

    Parameters
    ----------
    mtype
        ``Message.REQUEST``, ``Message.REPLY`` or ``Message.INFORM``.
    name
        The message name, matching ``[A-Za-z][A-Za-z0-9-]*``.
    arguments
        The arguments: bytes, str, int, float, bool or None (see :func:`format_argument`).
        They are formatted to bytes at construction.
    mid
        Message id: an int, or str/bytes of digits, in 1..2**31-1; stored as bytes.

    Notes
    -----
    ``bytes(msg)`` is the escaped wire form, *including* the terminating ``\\n``.
    ``str(msg)`` is the escaped wire form without the ``\\n``, decoded as UTF-8, as in
    katcp-python 0.9.3. Bytes that are not UTF-8 show as ``\\xNN``, where katcp-python
    raises ``UnicodeDecodeError`` (a crash in its server's logging).
    """

    __slots__ = ("mtype", "name", "arguments", "mid")

    # The values are katcp-python 0.9.3's (``range(3)``): user code compares them.
    REQUEST: ClassVar[int] = 0
    REPLY: ClassVar[int] = 1
    INFORM: ClassVar[int] = 2

    #: Wire symbol of each message type.
    TYPE_SYMBOLS: ClassVar[dict[int, str]] = {0: "?", 1: "!", 2: "#"}
    #: Message type of each wire symbol.
    TYPE_SYMBOL_LOOKUP: ClassVar[dict[str, int]] = {"?": 0, "!": 1, "#": 2}
    #: Name of each message type, as katcp-python 0.9.3 spells it.
    TYPE_NAMES: ClassVar[dict[int, str]] = {0: "REQUEST", 1: "REPLY", 2: "INFORM"}

    OK: ClassVar[bytes] = b"ok"
    FAIL: ClassVar[bytes] = b"fail"
    INVALID: ClassVar[bytes] = b"invalid"

    mtype: int
    name: str
    arguments: list[bytes]
    mid: bytes | None

    def __init__(
        self,
        mtype: int,
        name: str,
        arguments: Iterable[Any] | None = None,
        mid: bytes | str | int | None = None,
    ) -> None:
        if mtype not in _TYPE_PREFIX:
            # katcp-python 0.9.3's exception class and text.
            raise KatcpSyntaxError(f"Invalid command type {mtype!r}.")
        self.mtype = mtype
        self.name = check_name(name)
        self.arguments = [format_argument(arg) for arg in arguments] if arguments else []
        self.mid = check_mid(mid)

    @classmethod
    def from_parts(
        cls, mtype: int, name: str, arguments: list[bytes], mid: bytes | None
    ) -> Message:
        """Build a message from trusted, already formatted parts, without checks.

        For the parser and for code that formats arguments itself: `name` must be a valid
        name, `arguments` formatted bytes (the list is kept, not copied) and `mid` digits.
        """
        msg = cls.__new__(cls)
        msg.mtype = mtype
        msg.name = name
        msg.arguments = arguments
        msg.mid = mid
        return msg

    # -- helpers -------------------------------------------------------------------------

    @classmethod
    def request(cls, name: str, *args: Any, **kwargs: Any) -> Message:
        """Create a request message; keyword ``mid`` sets the message id."""
        return cls(cls.REQUEST, name, args, kwargs.pop("mid", None), **kwargs)

    @classmethod
    def reply(cls, name: str, *args: Any, **kwargs: Any) -> Message:
        """Create a reply message; keyword ``mid`` sets the message id."""
        return cls(cls.REPLY, name, args, kwargs.pop("mid", None), **kwargs)

    @classmethod
    def inform(cls, name: str, *args: Any, **kwargs: Any) -> Message:
        """Create an inform message; keyword ``mid`` sets the message id."""
        return cls(cls.INFORM, name, args, kwargs.pop("mid", None), **kwargs)

    @classmethod
    def reply_to_request(cls, req_msg: Message, *args: Any) -> Message:
        """Create the reply to `req_msg`, copying its name and message id."""
        msg = cls.from_parts(cls.REPLY, req_msg.name, [], req_msg.mid)
        if args:
            msg.arguments = [format_argument(arg) for arg in args]
        return msg

    @classmethod
    def reply_inform(cls, req_msg: Message, *args: Any) -> Message:
        """Create an inform in reply to `req_msg`, copying its name and message id."""
        msg = cls.from_parts(cls.INFORM, req_msg.name, [], req_msg.mid)
        if args:
            msg.arguments = [format_argument(arg) for arg in args]
        return msg

    def copy(self) -> Message:
        """Return a shallow copy of the message and its argument list."""
        return self.from_parts(self.mtype, self.name, list(self.arguments), self.mid)

    @staticmethod
    def format_argument(arg: Any) -> bytes:
        """Format a message argument to bytes (see :func:`format_argument`)."""
        return format_argument(arg)

    def reply_ok(self) -> bool:
        """Return True if this is a reply whose first argument is ``ok``."""
        return self.mtype == self.REPLY and bool(self.arguments) and self.arguments[0] == b"ok"

    # -- representations -----------------------------------------------------------------

    def __bytes__(self) -> bytes:
        heads = _HEADS[self.mtype]
        head = heads.get(self.name)
        if head is None:
            head = _TYPE_PREFIX[self.mtype] + self.name.encode("ascii")
            if len(heads) < _HEADS_CAP and len(self.name) <= CACHED_NAME_MAX:
                heads[self.name] = head
        mid = self.mid
        if mid is not None:
            head = b"%s[%s]" % (head, mid)
        args = self.arguments
        if fast_format_line is not None:
            line = fast_format_line(head, args)
            if line is not None:
                return line
        if not args:
            return head + b"\n"
        if b"" in args:  # an empty argument is always escaped (\@): no need to look
            return b"%s %s\n" % (head, escape_arguments(args))
        # Two C-level scans: no special byte but spaces, and only the join's own spaces,
        # means nothing needs escaping (most messages); spaces alone (text) take the short
        # escape path.
        joined = b" ".join(args)
        if len(joined.translate(None, _SPECIAL_BYTES_BUT_SPACE)) != len(joined):
            joined = escape_arguments(args)
        elif joined.count(b" ") != len(args) - 1:
            # Text whose only special bytes are spaces (the usual reason to escape), inlined
            # from the codec for speed: join on \x01 (none inside, the count proves) and
            # escape the spaces, then the separators become spaces.
            joined = b"\x01".join(args)
            if joined.count(b"\x01") == len(args) - 1:
                joined = joined.replace(b" ", b"\\_").replace(b"\x01", b" ")
            else:
                joined = escape_arguments(args)
        return b"%s %s\n" % (head, joined)

    def __str__(self) -> str:
        return bytes(self)[:-1].decode("utf-8", "backslashreplace")

    def __repr__(self) -> str:
        args = ", ".join(repr(arg.decode("utf-8", "backslashreplace")) for arg in self.arguments)
        mid = f"[{self.mid.decode('ascii')}]" if self.mid is not None else ""
        return f"<Message {self.TYPE_NAMES[self.mtype].lower()} {self.name}{mid} ({args})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.mtype == other.mtype
            and self.name == other.name
            and self.mid == other.mid
            and self.arguments == other.arguments
        )

    __hash__ = None  # type: ignore[assignment]  # mutable
