"""Message names, message ids, arguments and their escapes (spec 5.1 sections 2.1, 3.1)."""

from __future__ import annotations

import logging
import numbers
import re
from typing import Any, Final

from .._shown import show_wire
from ..errors import KatcpSyntaxError
from ._values import escape_argument, escape_specials

__all__ = [
    "MAX_MID",
    "CACHED_NAME_MAX",
    "check_name",
    "check_mid",
    "format_argument",
    "encode_text",
    "UNESCAPES",
    "escape_arguments",
    "unescape_argument",
    "unescape_arguments",
]

_log = logging.getLogger("katcp.core")

# ---------------------------------------------------------------------------------------------
# Message names and ids (spec 5.1 section 2.1)
# ---------------------------------------------------------------------------------------------

#: Largest message identifier the spec allows (2**31 - 1).
MAX_MID: Final = 2**31 - 1
#: Longest name (characters) that the name caches of the codec, messages and the parser
#: keep; with their entry caps each cache holds at most about 4096 * 64 bytes of names.
CACHED_NAME_MAX: Final = 64

_MESSAGE_NAME_RE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*\Z")
# Names already known to be valid. Real devices use a few hundred names at most; the caps
# stop a hostile peer from growing it without bound: in entries, and in bytes, since a name
# may be as long as a message (MiB) and only short names are kept.
_valid_names: set[str] = set()
_VALID_NAMES_CAP: Final = 4096


def check_name(name: str) -> str:
    """Return `name` if it is a valid KATCP message name, else raise `KatcpSyntaxError`.

    `KatcpSyntaxError` is a ``ValueError``; katcp-python 0.9.3 raises it here too.

    Names match ``[A-Za-z][A-Za-z0-9-]*`` (spec section 2.1).
    """
    if name in _valid_names:
        return name
    if not isinstance(name, str):
        raise KatcpSyntaxError(f"message name must be str, not {type(name).__name__}")
    if not name.isascii() or _MESSAGE_NAME_RE.match(name.encode("ascii")) is None:
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


# ---------------------------------------------------------------------------------------------
# Arguments: Python values to bytes, and escapes (spec 5.1 section 3.1)
# ---------------------------------------------------------------------------------------------


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
        return encode_text(arg)
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
        return encode_text(str.__str__(arg))
    if isinstance(arg, numbers.Integral):
        return b"%d" % int(arg)
    if isinstance(arg, numbers.Real):
        return repr(float(arg)).encode("ascii")
    return encode_text(str(arg))


def encode_text(text: str) -> bytes:
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


#: Escape code (the byte after the backslash) to the byte it stands for; ``@`` is empty.
UNESCAPES: Final = {
    92: b"\\",
    95: b" ",
    48: b"\0",
    110: b"\n",
    114: b"\r",
    101: b"\x1b",
    116: b"\t",
    64: b"",
}
_UNESCAPE_RE = re.compile(rb"\\(.)?", re.DOTALL)


def escape_arguments(args: list[bytes]) -> bytes:
    r"""Escape every argument and join them with spaces, in a few C-level passes.

    The arguments are joined with \x01 (not escaped by KATCP): when no argument holds one,
    which the count proves, the escapes are applied to the whole line at once (a handful
    of ``bytes.replace`` calls, not seven per argument), empty arguments become ``\@``
    where separators meet, and the separators become spaces.
    """
    joined = b"\x01".join(args)
    if joined.count(b"\x01") != len(args) - 1:  # a \x01 inside an argument
        return b" ".join([escape_argument(arg) for arg in args])
    out = escape_specials(joined)
    if b"" in args:
        # Two passes: the first leaves a pair between runs of empty arguments.
        out = out.replace(b"\x01\x01", b"\x01\\@\x01").replace(b"\x01\x01", b"\x01\\@\x01")
        if not out or out[0] == 1:
            out = b"\\@" + out
        if out[-1] == 1:
            out += b"\\@"
    return out.replace(b"\x01", b" ")


def _unescape_match(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    replacement = None if code is None else UNESCAPES.get(code[0])
    if replacement is None:
        if code is None:
            raise KatcpSyntaxError("trailing backslash", column=match.start())
        raise KatcpSyntaxError(f"unknown escape {show_wire(match.group())}", column=match.start())
    return replacement


def unescape_argument(arg: bytes) -> bytes:
    """Reverse :func:`escape_argument`.

    Raises
    ------
    KatcpSyntaxError
        On a bad escape; its ``column`` is the offset of the backslash in `arg`.
    """
    if 92 not in arg:
        return arg
    return _UNESCAPE_RE.sub(_unescape_match, arg)


def unescape_arguments(args: list[bytes]) -> list[bytes] | None:
    """Unescape arguments known to hold no raw special bytes; None if an escape is bad.

    For the parser's fast path: the line holds no raw NUL, ESC, CR, LF, \\v or \\f.
    All arguments are joined with \\v and escaped backslashes become \\f (neither is raw
    on this path, nor produced by an escape), so every other escape is one C-level
    ``bytes.replace`` over the whole line, and a backslash left over is a bad escape.
    The caller finds the bad escape (and its column) with :func:`unescape_argument`.
    """
    joined = (
        b"\v".join(args)
        .replace(b"\\\\", b"\f")
        .replace(b"\\_", b" ")
        .replace(b"\\n", b"\n")
        .replace(b"\\t", b"\t")
        .replace(b"\\r", b"\r")
        .replace(b"\\0", b"\0")
        .replace(b"\\e", b"\x1b")
        .replace(b"\\@", b"")
    )
    if 92 in joined:
        return None
    if 12 in joined:
        joined = joined.replace(b"\f", b"\\")
    return joined.split(b"\v")
