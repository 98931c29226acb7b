"""Parsing KATCP lines into messages (no I/O).

`MessageParser` parses one line. `StreamParser` is what transports use: feed it the bytes as
they arrive and it returns the complete messages, with a `KatcpSyntaxError` object in place
of each malformed line so that the caller can report it in order.

Lines are split and unescaped in one pass by the codec's C speedups where they are built
(``katcpx.codec.SPEEDUPS``); a line they are unsure of, and every line without them, takes
the pure-Python path. There, most lines contain no backslash and no other special byte and
take a fast path that is a single ``bytes.split`` plus a dictionary look-up of the message
head, with no work per character in Python.
"""

from __future__ import annotations

import re
from typing import Final

from .codec import (
    CACHED_NAME_MAX,
    MAX_MID,
    check_name,
    fast_split_line,
    show_wire,
    unescape_argument,
    unescape_arguments,
)
from .errors import KatcpSyntaxError, MessageTooLong
from .message import Message

__all__ = ["MessageParser", "StreamParser", "parse_line", "DEFAULT_MAX_MSG_SIZE"]

#: Default longest line accepted, in bytes (2 MiB).
DEFAULT_MAX_MSG_SIZE: Final = 2 * 1024 * 1024

_TYPES: Final = {63: Message.REQUEST, 33: Message.REPLY, 35: Message.INFORM}  # ? ! #
# Bytes that send a line down the careful path: escapes, raw NUL/ESC (forbidden), and
# \v \f, which bytes.split() would wrongly treat as separators.
_CAREFUL_BYTES: Final = b"\\\x00\x1b\x0b\x0c\r\n"
# The subset of those that can never appear raw in a valid line.
_FORBIDDEN_BYTES: Final = b"\x00\x1b\x0b\x0c\r\n"
_TOKEN_RE = re.compile(rb"[^ \t]+")
_BAD_RAW_RE = re.compile(rb"[\x00\x1b\r\n]")
_RAW_NAMES: Final = {0: "NUL", 27: "ESC", 13: "carriage return", 10: "newline"}

# Parsed heads without a message id, e.g. b"#sensor-status" -> (INFORM, "sensor-status").
# Capped in entries and in key length (bytes), so that a peer sending endless new or huge
# names cannot grow it without bound.
_head_cache: dict[bytes, tuple[int, str]] = {}
_HEAD_CACHE_CAP: Final = 4096


def _parse_head(head: bytes, line: bytes) -> tuple[int, str, bytes | None]:
    """Split ``?name[mid]`` into its parts, validating each."""
    mtype = _TYPES.get(head[0])
    if mtype is None:
        raise KatcpSyntaxError(
            f"missing message type character (one of ?, !, #), found {show_wire(head[:1])}",
            line,
            0,
        )
    mid: bytes | None = None
    end = len(head)
    bracket = head.find(b"[")
    if bracket >= 0:
        close = head.find(b"]", bracket)
        if close < 0:
            raise KatcpSyntaxError("message id not closed with ]", line, end - 1)
        if close != end - 1:
            # ?watchdog[1]x: the id is closed, but the head goes on (spec 5.1 section 2.1:
            # white space separates the name[id] from the arguments).
            raise KatcpSyntaxError(
                f"no white space after the message id's ], found {show_wire(head[close + 1 :])}",
                line,
                close + 1,
            )
        mid = head[bracket + 1 : -1]
        if not mid.isdigit() or mid[:1] == b"0":
            raise KatcpSyntaxError(
                f"bad message id {show_wire(mid)}: must be 1..{MAX_MID}", line, bracket
            )
        if int(mid) > MAX_MID:
            raise KatcpSyntaxError(
                f"message id {mid.decode()} out of range 1..{MAX_MID}", line, bracket
            )
        end = bracket
    elif b"]" in head:
        raise KatcpSyntaxError("] without a message id's [ before it", line, head.find(b"]"))
    raw_name = head[1:end]
    try:
        name = check_name(raw_name.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise KatcpSyntaxError(
            f"bad message name {show_wire(raw_name)}: must match [A-Za-z][A-Za-z0-9-]*", line, 1
        ) from None
    if len(_head_cache) < _HEAD_CACHE_CAP and end <= CACHED_NAME_MAX + 1:  # + type char
        # Keyed without the id, so that StreamParser.feed's fast path also serves ids.
        _head_cache[head if mid is None else head[:end]] = (mtype, name)
    return mtype, name, mid


def _unescape_token(token: bytes, line: bytes, offset: int) -> bytes:
    bad = _BAD_RAW_RE.search(token)
    if bad is not None:
        raise KatcpSyntaxError(
            f"raw {_RAW_NAMES[token[bad.start()]]} in argument (must be escaped)",
            line,
            offset + bad.start(),
        )
    try:
        return unescape_argument(token)
    except KatcpSyntaxError as error:
        raise KatcpSyntaxError(error.problem, line, offset + (error.column or 0)) from None


def _parse_careful(line: bytes) -> Message:
    """Parse a line that has escapes or suspicious bytes, byte by byte where needed."""
    if not line or line[0] in (32, 9):
        raise KatcpSyntaxError("line starts with white space instead of ?, ! or #", line, 0)
    tokens = list(_TOKEN_RE.finditer(line))
    head_match = tokens[0]
    head = head_match.group()
    bad = re.search(rb"[^A-Za-z0-9\-\[\]?!#]", head)
    close = head.find(b"]")
    # A bad byte after a message id's ] is the missing white space: _parse_head says so.
    if bad is not None and head[0] in _TYPES and not 0 <= close < bad.start():
        raise KatcpSyntaxError(
            f"bad byte {show_wire(head[bad.start() : bad.start() + 1])} in message name",
            line,
            bad.start(),
        )
    mtype, name, mid = _parse_head(head, line)
    arguments = [_unescape_token(m.group(), line, m.start()) for m in tokens[1:]]
    return Message.from_parts(mtype, name, arguments, mid)


def parse_line(line: bytes) -> Message:
    """Parse one line (without its end-of-line) into a `Message`.

    Raises
    ------
    KatcpSyntaxError
        If the line is not a valid KATCP message; the text names the problem and column.
    """
    if fast_split_line is not None:
        parts = fast_split_line(line)
        if parts is not None:
            head = parts[0]
            del parts[0]
            return _message(head, parts, line)
    return _parse_line_python(line)


def _parse_line_python(line: bytes) -> Message:
    """`parse_line` in pure Python: the authority on errors, and the fallback."""
    parts = line.split()
    if not parts:
        raise KatcpSyntaxError("empty line", line, 0)
    if line[0] in (32, 9):
        raise KatcpSyntaxError("line starts with white space instead of ?, ! or #", line, 0)
    head = parts[0]
    del parts[0]
    size = len(line)
    if len(line.translate(None, _CAREFUL_BYTES)) != size:
        if 92 not in line or len(line.translate(None, _FORBIDDEN_BYTES)) != size:
            return _parse_careful(line)
        if 92 in head:
            return _parse_careful(line)
        # Escapes but nothing forbidden: bytes.split() was right, unescape the arguments.
        unescaped = unescape_arguments(parts)
        if unescaped is None:
            return _parse_careful(line)  # for the error text, with its column
        parts = unescaped
    return _message(head, parts, line)


def _message(head: bytes, parts: list[bytes], line: bytes) -> Message:
    """The message of a split line: its raw head and unescaped arguments."""
    cached = _head_cache.get(head)
    if cached is not None:
        return Message.from_parts(cached[0], cached[1], parts, None)
    known = _known_head_with_mid(head)
    if known is not None:
        return Message.from_parts(known[0], known[1], parts, known[2])
    mtype, name, mid = _parse_head(head, line)
    return Message.from_parts(mtype, name, parts, mid)


def _known_head_with_mid(head: bytes) -> tuple[int, str, bytes] | None:
    """``?name[mid]`` with a cached head and a plain id (no leading zero, in range)."""
    bracket = head.find(b"[")
    if bracket > 0 and head[-1] == 93:  # ]
        cached = _head_cache.get(head[:bracket])
        mid = head[bracket + 1 : -1]
        if (
            cached is not None
            and mid.isdigit()
            and mid[0] != 48  # 0
            and (len(mid) < 10 or int(mid) <= MAX_MID)
        ):
            return cached[0], cached[1], mid
    return None


def _detached(error: KatcpSyntaxError) -> KatcpSyntaxError:
    """`error` without its traceback and the exception it replaced.

    Both hold frames (through ``f_back``, down to `StreamParser.feed`'s, whose list holds
    `error`): a reference cycle per malformed line that only the garbage collector frees. A
    flood of bad lines made gen-2 collections of 50-100 ms, stalling every client.
    """
    error.__context__ = None
    return error.with_traceback(None)


class MessageParser:
    """Parses lines into `Message` objects (katcp-python's API)."""

    def parse(self, line: bytes | str) -> Message:
        """Parse a line and return a `Message`.

        Parameters
        ----------
        line
            The line; a single trailing ``\\n``, ``\\r`` or ``\\r\\n`` is allowed.
            A str is encoded as UTF-8.

        Raises
        ------
        KatcpSyntaxError
            If the line is not a valid KATCP message.
        """
        if isinstance(line, str):
            line = line.encode("utf-8")
        if line[-1:] == b"\n":
            line = line[:-1]
        if line[-1:] == b"\r":
            line = line[:-1]
        return parse_line(line)


class StreamParser:
    """Incremental parser: bytes in, messages (and syntax errors) out.

    Parameters
    ----------
    max_msg_size
        Longest line accepted, in bytes. A longer line yields one `MessageTooLong`
        and the rest of it, up to the next end-of-line, is discarded.

    Notes
    -----
    ``\\n`` and ``\\r`` both end a line; blank and whitespace-only lines are ignored, as the
    spec asks.
    """

    __slots__ = ("max_msg_size", "_partial", "_partial_len", "_discarding")

    def __init__(self, max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        self.max_msg_size = max_msg_size
        self._partial: list[bytes] = []
        self._partial_len = 0
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held back for the next `feed`."""
        return self._partial_len

    def feed(self, data: bytes) -> list[Message | KatcpSyntaxError]:
        """Add received bytes; return the messages and errors of the lines they complete."""
        out: list[Message | KatcpSyntaxError] = []
        if not data:
            return out
        lines = data.splitlines()
        complete = data[-1] in (10, 13)
        tail = b"" if complete else lines.pop()
        if self._partial or self._discarding:
            if lines:
                first = lines[0]
                lines[0] = b"".join(self._partial) + first
                self._partial = []
                self._partial_len = 0
                if self._discarding:
                    self._discarding = False
                    del lines[0]  # the end of an over-long line
        limit = self.max_msg_size
        cache = _head_cache
        new = Message.from_parts
        split = fast_split_line
        for line in lines:
            if not line:
                continue
            if len(line) > limit:
                out.append(MessageTooLong(len(line), limit))
                continue
            parts = split(line) if split is not None else None
            if parts is not None:
                head = parts[0]
                del parts[0]
                cached = cache.get(head)
                if cached is not None:
                    out.append(new(cached[0], cached[1], parts, None))
                    continue
                try:
                    out.append(_message(head, parts, line))
                except KatcpSyntaxError as error:
                    out.append(_detached(error))
                continue
            # Fast path, inlined from parse_line: plain line with a known head.
            if len(line.translate(None, _CAREFUL_BYTES)) == len(line):
                parts = line.split()
                if not parts:
                    continue
                head = parts[0]
                cached = cache.get(head)
                if cached is not None and line[0] not in (32, 9):
                    del parts[0]
                    out.append(new(cached[0], cached[1], parts, None))
                    continue
                known = _known_head_with_mid(head)
                if known is not None and line[0] not in (32, 9):
                    del parts[0]
                    out.append(new(known[0], known[1], parts, known[2]))
                    continue
            try:
                out.append(parse_line(line))
            except KatcpSyntaxError as error:
                out.append(_detached(error))
        if tail:
            if self._discarding:
                pass
            elif self._partial_len + len(tail) > limit:
                out.append(MessageTooLong(self._partial_len + len(tail), limit))
                self._partial = []
                self._partial_len = 0
                self._discarding = True
            else:
                self._partial.append(tail)
                self._partial_len += len(tail)
        return out
