"""Device text made safe for a terminal, and the typed form that gives it back.

Everything katcp-cmd prints that came from the device (message arguments, sensor names,
values, units, descriptions, help text, log messages, errors quoting the device) goes
through :func:`printable` first, so that a device cannot move the cursor, clear the screen
or retitle the terminal with escape sequences. Control characters are shown with the KATCP
escapes (spec rev 5.1 section 3.1: ``\\0 \\e \\t \\n \\r \\\\``), other C0/C1 controls and DEL
as ``\\xNN``, and any other non-printable character as ``\\uNNNN`` / ``\\UNNNNNNNN``.

:func:`split_words` reads typed lines back: inside double quotes those escapes mean the
character they show, so a printed argument pasted into the shell is the same argument.
:func:`unescape_raw` does the same for raw-mode (wire format) lines, where KATCP's own
escapes are left to the parser.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dump_json", "printable", "split_words", "unescape_raw"]

#: The KATCP escapes, by the character they stand for.
_KATCP_ESCAPES = {"\0": "0", "\x1b": "e", "\t": "t", "\n": "n", "\r": "r"}
_UNESCAPES = {v: k for k, v in _KATCP_ESCAPES.items()}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
# What needs escaping: controls, DEL, C1 controls and other non-printable characters.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]|[^\x00-\x7f]")


def _escape_char(char: str) -> str:
    if char in _KATCP_ESCAPES:
        return "\\" + _KATCP_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable() and char not in _KATCP_ESCAPES:
        return char  # printable non-ASCII text stays readable
    return _escape_char(char)


def printable(text: str, *, backslash: bool = True) -> str:
    """Escape the non-printable characters of device text for a terminal.

    Parameters
    ----------
    text
        Text from the device (decoded).
    backslash
        Also double backslashes (so that the result reads back unambiguously); False for
        text whose backslashes are already escapes (KATCP wire form).

    Returns
    -------
    str
        `text` with no control characters in it.
    """
    if backslash and "\\" in text:
        text = text.replace("\\", "\\\\")
    return _UNSAFE.sub(_escape_match, text)


def dump_json(record: Any) -> str:
    """``json.dumps`` with DEL escaped too: JSON of the true value, safe on a terminal.

    ``json.dumps`` escapes C0 controls and (with ``ensure_ascii``) everything non-ASCII; DEL
    can only appear inside strings, where ``\\u007f`` is its JSON escape.
    """
    return json.dumps(record).replace("\x7f", "\\u007f")


def _read_escape(line: str, i: int) -> tuple[str, int] | None:
    """The character of the escape at ``line[i]`` (after a backslash) and the next index."""
    char = line[i : i + 1]
    if char in _UNESCAPES:
        return _UNESCAPES[char], i + 1
    if char in _HEX_DIGITS:
        digits = line[i + 1 : i + 1 + _HEX_DIGITS[char]]
        if len(digits) == _HEX_DIGITS[char] and re.fullmatch(r"[0-9a-fA-F]+", digits):
            code = int(digits, 16)
            if code <= 0x10FFFF:
                return chr(code), i + 1 + len(digits)
    return None


def split_words(line: str) -> list[str]:
    """Split a typed line into words, as a POSIX shell does (``shlex.split``), except that
    inside double quotes ``\\0 \\e \\t \\n \\r \\xNN \\uNNNN \\UNNNNNNNN`` stand for the
    character they name (the form :func:`printable` prints); ``\\\\`` and ``\\"`` are a
    backslash and a quote, and a backslash before anything else stays as it is.

    Raises
    ------
    ValueError
        For an unterminated quote, or a backslash at the end of the line.
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if char.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
            continue
        in_word = True
        if char == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ValueError(f"No closing quotation (' at column {i + 1})")
            word.append(line[i + 1 : end])
            i = end + 1
        elif char == '"':
            i = _double_quoted(line, i, word)
        elif char == "\\":
            if i + 1 >= n:
                raise ValueError("No escaped character (\\ at the end of the line)")
            word.append(line[i + 1])
            i += 2
        else:
            word.append(char)
            i += 1
    if in_word:
        words.append("".join(word))
    return words


def _double_quoted(line: str, start: int, word: list[str]) -> int:
    """Append the double-quoted text starting at ``line[start]`` to `word`; the next index."""
    i = start + 1
    while i < len(line):
        char = line[i]
        if char == '"':
            return i + 1
        if char == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            if nxt in '"\\':
                word.append(nxt)
                i += 2
                continue
            escaped = _read_escape(line, i + 1)
            if escaped is not None:
                word.append(escaped[0])
                i = escaped[1]
                continue
        word.append(char)
        i += 1
    raise ValueError(f'No closing quotation (" at column {start + 1})')


def unescape_raw(line: str) -> str:
    """Turn the ``\\xNN``-style escapes :func:`printable` adds to wire text back into KATCP.

    A character that KATCP escapes itself (space, ``\\0``, ESC, tab, newline, CR,
    backslash) becomes its KATCP escape; others become the character. KATCP escapes are
    left for the message parser.
    """
    out: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char != "\\" or i + 1 >= len(line):
            out.append(char)
            i += 1
            continue
        escaped = _read_escape(line, i + 1) if line[i + 1] in _HEX_DIGITS else None
        if escaped is None:
            out.append(line[i : i + 2])  # a KATCP escape (or a bad one, for the parser)
            i += 2
            continue
        value, i = escaped
        if value == " ":
            out.append("\\_")
        elif value == "\\":
            out.append("\\\\")
        else:
            out.append(_escape_char(value) if value in _KATCP_ESCAPES else value)
    return "".join(out)
