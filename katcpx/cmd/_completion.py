"""What the interactive prompt offers: completion of names, and the history file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Protocol

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from ._printable import printable
from ._render import quote_argument

__all__ = [
    "LOCAL_COMMANDS",
    "KatcpCompleter",
    "CompletionSource",
    "history_path",
    "open_history",
]

#: Requests whose first argument is a sensor name.
SENSOR_REQUESTS = frozenset({"sensor-value", "sensor-list", "sensor-sampling"})
STRATEGIES = ("auto", "event", "period", "differential", "event-rate", "differential-rate", "none")

LOCAL_COMMANDS = {
    "/help": "show this help",
    "/watch": "SENSOR... [PERIOD]: print updates (event strategy, or period PERIOD); "
    "a /regex/ names every sensor it matches",
    "/unwatch": "[SENSOR...]: stop watching (all when no sensor is named)",
    "/strategy": "SENSOR STRATEGY [PARAM...]: set a sampling strategy",
    "/raw": "toggle raw mode: type and see the escaped wire format",
    "/quit": "leave (also /exit or Ctrl-D)",
}


class CompletionSource(Protocol):
    """What the completer reads: the server's requests and sensors, name -> summary."""

    requests: dict[str, str]
    sensors: dict[str, str]


def history_path(option: str | None = None) -> str:
    """The history file: `option`, else ``$KATCP_CMD_HISTORY``, else ``~/.katcp_cmd_history``."""
    return (
        option or os.environ.get("KATCP_CMD_HISTORY") or os.path.expanduser("~/.katcp_cmd_history")
    )


class KatcpCompleter(Completer):
    """Completes request names, local commands, sensor names and strategy names.

    Parameters
    ----------
    shell
        The shell whose ``requests`` and ``sensors`` (name -> summary) to offer.
    """

    def __init__(self, shell: CompletionSource) -> None:
        self.shell = shell

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        """Yield the completions of the word before the cursor."""
        text = document.text_before_cursor
        words = text.split()
        if not words or text[-1].isspace():
            words.append("")
        current, index = words[-1], len(words) - 1
        if index == 0:
            if current.startswith("/"):
                yield from _matches(current, LOCAL_COMMANDS)
            else:
                word = current[1:] if current.startswith("?") else current
                yield from _matches(word, self.shell.requests)
            return
        first = words[0].lstrip("?")
        sensors = self.shell.sensors
        if first in ("/watch", "/unwatch") or (index == 1 and first in SENSOR_REQUESTS):
            yield from _matches(current, sensors)
        elif first == "/strategy" and index == 1:
            yield from _matches(current, sensors)
        elif index == 2 and first in ("/strategy", "sensor-sampling"):
            yield from _matches(current, dict.fromkeys(STRATEGIES, ""))


def _matches(word: str, names: dict[str, str]) -> Iterable[Completion]:
    # The space ends the word, as a shell's completion does: the next word can follow.
    for name in sorted(names):
        if name.startswith(word):
            # Device names and descriptions: inserted quoted, shown escaped (_printable).
            yield Completion(
                quote_argument(name) + " ",
                start_position=-len(word),
                display=printable(name),
                display_meta=printable(names[name]),
            )


def open_history(path: str) -> History:
    """The prompt's history kept in file `path`; in memory (with a note) if it cannot be."""
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        print(f"katcp-cmd: history not saved: {path}: {exc.strerror}", file=sys.stderr)
        return InMemoryHistory()
    return FileHistory(path)
