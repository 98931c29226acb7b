"""KATCP messages: construction, argument formatting and escaping (no I/O).

A message is a request (``?``), reply (``!``) or inform (``#``) with a name, an optional
message id and a list of arguments. Arguments are stored already formatted as ``bytes``
(katcp-python does the same), so formatting a message for the wire only has to escape and
join.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Final

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
]

#: Largest message identifier the spec allows (2**31 - 1).
MAX_MID: Final = 2**31 - 1

_NAME_RE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*\Z")
#: Bytes that may not appear raw inside an argument (the spec's <special> production).
_SPECIAL_BYTES: Final = b"\\ \0\n\r\x1b\t"
_SPECIAL_BYTES_BUT_SPACE: Final = b"\\\0\n\r\x1b\t"
_UNESCAPE_CODES: Final = {
    b"\\": b"\\",
    b"_": b" ",
    b"0": b"\0",
    b"n": b"\n",
    b"r": b"\r",
    b"e": b"\x1b",
    b"t": b"\t",
    b"@": b"",
}
_UNESCAPE_RE = re.compile(rb"\\(.)?", re.DOTALL)
_log = logging.getLogger("katcp.core")

# Names already known to be valid. Real devices use a few hundred names at most; the caps
# stop a hostile peer from growing it without bound: in entries, and in bytes, since a name
# may be as long as a message (MiB) and only short names are kept.
_valid_names: set[str] = set()
_VALID_NAMES_CAP: Final = 4096
#: Longest name (characters) that the name caches of this module and the parser keep;
#: with their entry caps each cache holds at most about 4096 * 64 bytes of names.
CACHED_NAME_MAX: Final = 64


def check_name(name: str) -> str:
    """Return `name` if it is a valid KATCP message name, else raise `KatcpSyntaxError`.

    `KatcpSyntaxError` is a ``ValueError``; katcp-python 0.9.3 raises it here too.

    Names match ``[A-Za-z][A-Za-z0-9-]*`` (spec section 2.1).
    """
    if name in _valid_names:
        return name
    if not isinstance(name, str):
        raise KatcpSyntaxError(f"message name must be str, not {type(name).__name__}")
    if not name.isascii() or _NAME_RE.match(name.encode("ascii")) is None:
        # katcp-python 0.9.3's exception class and text (a subclass of ValueError here).
        raise KatcpSyntaxError(
            "Command name should consist only of alphanumeric characters and dashes"
            f" (got {name!r})."
        )
    if len(_valid_names) < _VALID_NAMES_CAP and len(name) <= CACHED_NAME_MAX:
        _valid_names.add(name)
    return name


def check_mid(mid: bytes | str | int | None) -> bytes | None:
    """Normalise a message id to its digits as ``bytes`` (or None).

    Accepts an int, or str/bytes of digits, in the range 1 to 2**31-1 (spec 5.1 section
    2.2; katcp-python 0.9.3 also takes 0 and leading zeros).

    Raises
    ------
    KatcpSyntaxError
        (A ``ValueError``.) For anything else, as katcp-python 0.9.3 raises
        (``Invalid message id 'abc'.``).
    """
    if mid is None:
        return None
    if isinstance(mid, bool):
        raise KatcpSyntaxError(f"Invalid message id {mid!r}: must be an integer, not bool.")
    if isinstance(mid, numbers.Integral):
        value = int(mid)
    else:
        try:
            raw = mid.encode("ascii") if isinstance(mid, str) else bytes(mid)
        except (TypeError, ValueError):
            raw = b""
        if not raw.isdigit() or raw[:1] == b"0":
            raise KatcpSyntaxError(f"Invalid message id {mid!r}.")
        value = int(raw)
    if not 1 <= value <= MAX_MID:
        raise KatcpSyntaxError(f"Invalid message id {mid!r}: outside the range 1 to {MAX_MID}.")
    return b"%d" % value


def format_argument(arg: Any) -> bytes:
    """Format one message argument as bytes (before escaping).

    bool → ``1``/``0``; int → decimal; float → ``repr`` (round-trips exactly); str → UTF-8;
    bytes → unchanged; None → empty argument. numpy scalars format as their Python type;
    anything else formats as ``str(arg)``.
    """
    kind = type(arg)
    if kind is bytes:
        return arg
    if kind is str:
        return _encode_text(arg)
    if kind is bool:
        return b"1" if arg else b"0"
    if kind is int:
        return b"%d" % arg
    if kind is float:
        return repr(arg).encode("ascii")
    if arg is None:
        return b""
    # Subclasses and numpy scalars (numpy.bool_ is not an int; numpy.float64 is a float).
    if isinstance(arg, bool) or getattr(getattr(arg, "dtype", None), "kind", None) == "b":
        return b"1" if arg else b"0"
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return _encode_text(str.__str__(arg))
    if isinstance(arg, numbers.Integral):
        return b"%d" % int(arg)
    if isinstance(arg, numbers.Real):
        return repr(float(arg)).encode("ascii")
    return _encode_text(str(arg))


def _encode_text(text: str) -> bytes:
    """Encode `text` as UTF-8; characters UTF-8 cannot hold (lone surrogates) become ``?``.

    This is what katcp-python 0.9.3 does, logging an error: a message is still sent, and
    the log names the argument that was changed.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        _log.error(
            "message argument %.200r holds characters UTF-8 cannot encode; replaced with '?'", text
        )
        return text.encode("utf-8", "replace")


def escape_argument(arg: bytes) -> bytes:
    """Escape the special bytes of one argument; the empty argument becomes ``\\@``."""
    if not arg:
        return b"\\@"
    return _escape_specials(arg)


def _escape_specials(data: bytes) -> bytes:
    """Escape every special byte of `data` (one argument, or several joined by \\x01)."""
    # Backslash first, so the backslashes the other escapes add are not doubled.
    return (
        data.replace(b"\\", b"\\\\")
        .replace(b" ", b"\\_")
        .replace(b"\0", b"\\0")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\x1b", b"\\e")
        .replace(b"\t", b"\\t")
    )


def _escape_joined(args: list[bytes]) -> bytes:
    r"""Escape every argument and join them with spaces, in a few C-level passes.

    The arguments are joined with \x01 (not escaped by KATCP): when no argument holds one,
    which the count proves, the escapes are applied to the whole line at once (a handful of
    ``bytes.replace`` calls, not seven per argument), empty arguments become ``\@`` where
    separators meet, and the separators become spaces.
    """
    joined = b"\x01".join(args)
    if joined.count(b"\x01") != len(args) - 1:  # a \x01 inside an argument
        return b" ".join([escape_argument(arg) for arg in args])
    out = _escape_specials(joined)
    if b"" in args:
        # Two passes: the first leaves a pair between runs of empty arguments.
        out = out.replace(b"\x01\x01", b"\x01\\@\x01").replace(b"\x01\x01", b"\x01\\@\x01")
        if not out or out[:1] == b"\x01":
            out = b"\\@" + out
        if out[-1:] == b"\x01":
            out += b"\\@"
    return out.replace(b"\x01", b" ")


def wire_argument(arg: bytes) -> bytes:
    """Return formatted argument `arg` as it goes on the wire: escaped only if it must be."""
    if arg and len(arg.translate(None, _SPECIAL_BYTES)) == len(arg):
        return arg
    return escape_argument(arg)


def _unescape_match(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    try:
        return _UNESCAPE_CODES[code]
    except KeyError:
        if code is None:
            raise KatcpSyntaxError("trailing backslash", column=match.start()) from None
        raise KatcpSyntaxError(f"unknown escape {match.group()!r}", column=match.start()) from None


def unescape_argument(arg: bytes) -> bytes:
    """Reverse :func:`escape_argument`; raises `KatcpSyntaxError` on a bad escape."""
    if b"\\" not in arg:
        return arg
    return _UNESCAPE_RE.sub(_unescape_match, arg)


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
    def _new(cls, mtype: int, name: str, arguments: list[bytes], mid: bytes | None) -> Message:
        """Build a message from trusted, already formatted parts (no checks)."""
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
        msg = cls._new(cls.REPLY, req_msg.name, [], req_msg.mid)
        if args:
            msg.arguments = [format_argument(arg) for arg in args]
        return msg

    @classmethod
    def reply_inform(cls, req_msg: Message, *args: Any) -> Message:
        """Create an inform in reply to `req_msg`, copying its name and message id."""
        msg = cls._new(cls.INFORM, req_msg.name, [], req_msg.mid)
        if args:
            msg.arguments = [format_argument(arg) for arg in args]
        return msg

    def copy(self) -> Message:
        """Return a shallow copy of the message and its argument list."""
        return self._new(self.mtype, self.name, list(self.arguments), self.mid)

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
        if not args:
            return head + b"\n"
        # One C-level scan decides whether anything needs escaping (most messages don't):
        # the join's own spaces are counted rather than searched for.
        joined = b" ".join(args)
        if (
            b"" in args
            or joined.count(b" ") != len(args) - 1
            or len(joined.translate(None, _SPECIAL_BYTES_BUT_SPACE)) != len(joined)
        ):
            joined = _escape_joined(args)
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
