"""Turning KATCP messages and sensor readings into text for people (and JSON for programs).

Everything here returns strings; colour is ANSI escape codes, added only when asked for, so
the same text works on a terminal, inside prompt_toolkit (through its ``ANSI`` wrapper) and
in a pipe.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .._peer_units import seconds_from_wire, sensor_value_in_seconds
from ..message import Message
from ._printable import dump_json, printable

__all__ = [
    "SensorInfo",
    "SensorUpdate",
    "color_enabled",
    "format_time",
    "quote_argument",
    "render_message",
    "render_table",
    "render_update",
    "update_row",
]

_RESET = "\x1b[0m"
STYLES = {
    "request": "\x1b[34m",  # blue
    "ok": "\x1b[32m",  # green
    "fail": "\x1b[1;31m",  # bold red
    "invalid": "\x1b[1;35m",  # bold magenta
    "inform": "\x1b[36m",  # cyan: informs that belong to a request
    "async": "\x1b[33m",  # yellow: informs the server sent on its own
    "note": "\x1b[2m",  # dim: katcp-cmd's own remarks
    "error": "\x1b[1;31m",
}
#: Colours of sensor statuses (and of ``#log`` levels, which share the idea of severity).
SEVERITY = {
    "nominal": "\x1b[32m",
    "warn": "\x1b[33m",
    "error": "\x1b[31m",
    "failure": "\x1b[1;31m",
    "unknown": "\x1b[2m",
    "unreachable": "\x1b[2m",
    "inactive": "\x1b[2m",
    "fatal": "\x1b[1;31m",
    "warning": "\x1b[33m",
    "info": "",
    "debug": "\x1b[2m",
    "trace": "\x1b[2m",
}

_NEEDS_QUOTES = frozenset(" \t\n\r\"'\\")


def color_enabled(stream: TextIO = sys.stdout, choice: bool | None = None) -> bool:
    """Decide whether to colour output.

    Parameters
    ----------
    stream
        Where the output goes; colour needs a terminal.
    choice
        An explicit ``--color`` (True) / ``--no-color`` (False); None decides automatically:
        colour on a terminal unless ``$NO_COLOR`` is set (https://no-color.org).
    """
    if choice is not None:
        return choice
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, style: str | None, color: bool) -> str:
    """Wrap `text` in the ANSI code of `style` (a key of :data:`STYLES`) when `color`."""
    if not color or not style:
        return text
    code = STYLES.get(style, style)
    return f"{code}{text}{_RESET}" if code else text


def decode(arg: bytes) -> str:
    """Decode an argument (invalid UTF-8 becomes replacement characters).

    The text is as the device sent it: pass it through :func:`printable` (or
    :func:`quote_argument`) before it reaches a terminal.
    """
    return arg.decode("utf-8", "replace")


def shown(arg: bytes) -> str:
    """Decode an argument for display, non-printable characters escaped."""
    return printable(decode(arg))


def quote_argument(arg: str) -> str:
    """Quote one argument so that it reads unambiguously and the shell reads it back.

    Plain words stay as they are; empty arguments and those with spaces, quotes,
    backslashes or non-printable characters are double-quoted, with the non-printable
    characters escaped (:func:`~katcpx.cmd._printable.printable`), so that
    :func:`~katcpx.cmd._printable.split_words` gives `arg` back.
    """
    safe = printable(arg)
    if arg and safe == arg and not _NEEDS_QUOTES.intersection(arg):
        return arg
    return '"' + safe.replace('"', '\\"') + '"'


def format_time(timestamp: float) -> str:
    """Format seconds since the epoch as local ISO 8601 time with milliseconds."""
    try:
        when = datetime.datetime.fromtimestamp(timestamp).astimezone()
    except (OverflowError, OSError, ValueError):
        return repr(timestamp)
    return when.isoformat(timespec="milliseconds")


def render_message(
    msg: Message,
    *,
    color: bool = False,
    raw: bool = False,
    unsolicited: bool = False,
) -> str:
    """Render a message on one (logical) line.

    Parameters
    ----------
    msg
        The message.
    color
        Add ANSI colours: replies green (``ok``), bold red (``fail``) or bold magenta
        (``invalid``); informs cyan, or yellow when `unsolicited`; sensor statuses and log
        levels by severity.
    raw
        Show the escaped wire form instead of the unescaped, quoted form.
    unsolicited
        The inform was not part of a reply (``#sensor-status``, ``#log``,
        ``#interface-changed``...).
    """
    if raw:
        # The wire form escapes \0 \e \t \n \r and backslashes; the rest is escaped here.
        head = printable(bytes(msg).decode("utf-8", "replace").rstrip("\n"), backslash=False)
        name_end = head.find(" ")
        words = [head] if name_end < 0 else [head[:name_end], head[name_end + 1 :]]
        args: list[str] = words[1:]
    else:
        # Message ids are the client's business; the raw form shows them.
        prefix = {Message.REQUEST: "?", Message.REPLY: "!", Message.INFORM: "#"}[msg.mtype]
        words = [f"{prefix}{msg.name}"]
        args = [quote_argument(decode(a)) for a in msg.arguments]
    head_text = words[0]
    if msg.mtype == Message.REQUEST:
        return paint(" ".join([head_text, *args]), "request", color)
    if msg.mtype == Message.REPLY:
        code = msg.arguments[0] if msg.arguments else b""
        if code == b"ok":
            if raw:
                return paint(head_text, "ok", color) + "".join(" " + a for a in args)
            return " ".join([paint(f"{head_text} {args[0]}", "ok", color), *args[1:]])
        style = "invalid" if code == b"invalid" else "fail"
        return paint(" ".join([head_text, *args]), style, color)
    # An inform.
    style = "async" if unsolicited else "inform"
    if color and not raw:
        args = _color_severity(msg, args)
    return " ".join([paint(head_text, style, color), *args])


def _color_severity(msg: Message, args: list[str]) -> list[str]:
    """Colour the status of ``#sensor-status`` / ``#sensor-value`` and the level of ``#log``."""
    args = list(args)
    positions: Iterable[int] = ()
    if msg.name in ("sensor-status", "sensor-value") and len(args) >= 5:
        # timestamp count (name status value)*count
        positions = range(3, len(args), 3)
    elif msg.name == "log" and args:
        positions = (0,)
    for i in positions:
        if i < len(args):
            args[i] = paint(args[i], SEVERITY.get(args[i], ""), True)
    return args


@dataclass
class SensorInfo:
    """What ``?sensor-list`` says about a sensor."""

    name: str
    description: str
    units: str
    type: str
    params: list[str]

    @classmethod
    def from_inform(cls, msg: Message) -> SensorInfo:
        """Build from a ``#sensor-list`` inform."""
        args = [decode(a) for a in msg.arguments] + ["", "", "", ""]
        return cls(args[0], args[1], args[2], args[3], args[4 : len(msg.arguments)])

    def convert(self, value: str) -> Any:
        """Convert a formatted value to the Python type its sensor type suggests (for JSON)."""
        try:
            if self.type == "integer":
                return int(value)
            if self.type in ("float", "timestamp"):
                return float(value)
            if self.type == "boolean":
                return value == "1"
        except ValueError:
            pass
        return value


@dataclass
class SensorUpdate:
    """One sensor reading, as ``#sensor-value`` or ``#sensor-status`` reports it."""

    name: str
    status: str
    value: str
    timestamp: float
    info: SensorInfo | None = None

    @classmethod
    def from_inform(
        cls, msg: Message, infos: dict[str, SensorInfo] | None = None, major: int = 5
    ) -> list[SensorUpdate]:
        """Parse ``#sensor-value`` / ``#sensor-status``: ``timestamp count (name status value)*``.

        `major` is the server's KATCP major version: v4 and older servers give timestamps
        (and the values of ``timestamp`` sensors) in milliseconds (spec rev 5.1 section
        1.1); :attr:`timestamp`, and :attr:`value` of a timestamp sensor, are always seconds.
        """
        args = [decode(a) for a in msg.arguments]
        try:
            timestamp = seconds_from_wire(msg.arguments[0], major)
        except (IndexError, ValueError):
            return []
        updates = []
        for i in range(2, len(args) - 2, 3):
            name = args[i]
            info = infos.get(name) if infos else None
            value = args[i + 2]
            try:
                # A v4 timestamp sensor's value is milliseconds, like the reading's time.
                kind = info.type if info else None
                value = decode(sensor_value_in_seconds(msg.arguments[i + 2], kind, major))
            except ValueError:
                pass  # not a number: shown as sent
            updates.append(cls(name, args[i + 1], value, timestamp, info))
        return updates

    def fields(self) -> dict[str, Any]:
        """The fields available to ``--format`` (and, typed, to ``--json``)."""
        info = self.info
        return {
            "name": self.name,
            "value": info.convert(self.value) if info else self.value,
            "status": self.status,
            "timestamp": self.timestamp,
            "time": format_time(self.timestamp),
            "units": info.units if info else "",
            "type": info.type if info else "",
            "description": info.description if info else "",
        }


def render_update(
    update: SensorUpdate,
    *,
    fmt: str | None = None,
    as_json: bool = False,
    color: bool = False,
    width: int = 0,
) -> str:
    """Render a sensor reading as ``name value status time``, a ``--format`` or JSON.

    Raises
    ------
    KeyError, ValueError, IndexError
        If `fmt` names an unknown field or is malformed.
    """
    fields = update.fields()  # device text, escaped below for everything but JSON
    if as_json:
        return dump_json({k: fields[k] for k in ("name", "value", "status", "timestamp", "units")})
    if fmt is not None:
        return fmt.format(
            **{k: printable(v) if isinstance(v, str) else v for k, v in fields.items()}
        )
    name, value, status, when = update_row(update)
    status = paint(status, SEVERITY.get(status, ""), color)
    return f"{name:<{width}}  {value}  {status}  {when}"


def render_table(rows: Sequence[Sequence[str]], styles: Sequence[str] = ()) -> list[str]:
    """Align columns (the last one is left ragged).

    Parameters
    ----------
    rows
        The cells, as plain text.
    styles
        ANSI codes per row, applied to the row's third cell (a status) after padding; empty
        for no colour.
    """
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        if styles and len(cells) > 2:
            cells[2] = paint(cells[2], styles[n], True)
        lines.append("  ".join(cells).rstrip())
    return lines


def update_row(update: SensorUpdate) -> list[str]:
    """The cells of a sensor reading in a table: name, value with units, status, time."""
    units = f" {printable(update.info.units)}" if update.info and update.info.units else ""
    # Text values are quoted as the shell prints arguments: "x  y" is then one value, an
    # empty one shows as "", and the cell pastes back.
    value = update.value
    shown = quote_argument(value) if isinstance(value, str) else printable(str(value))
    return [
        printable(update.name),
        shown + units,
        printable(update.status),
        format_time(update.timestamp),
    ]
