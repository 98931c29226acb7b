"""JSON-lines plumbing shared by the peer scripts (``kp_server.py``, ``kp_client.py``).

Stdlib only: it runs inside the katcp-python venv. See :mod:`peers` for the protocol.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

_stdout_lock = threading.Lock()


def encode_arg(arg: bytes) -> Any:
    """Encode one KATCP argument for JSON: ``str`` if it is UTF-8, else ``{"hex": ...}``."""
    try:
        return arg.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": arg.hex()}


def decode_arg(arg: Any) -> bytes:
    """Reverse :func:`encode_arg`; plain strings are UTF-8 encoded."""
    if isinstance(arg, dict):
        return bytes.fromhex(arg["hex"])
    return str(arg).encode("utf-8")


def emit(obj: dict) -> None:
    """Write one JSON object as one line on stdout (thread-safe) and flush it."""
    line = json.dumps(obj)
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def serve_commands(handlers: dict[str, Callable[[dict], dict]], stop_cmds: Iterable[str]) -> None:
    """Answer JSON commands from stdin until EOF or one of ``stop_cmds``.

    Each command ``{"cmd": name, "id": ..., ...}`` gets exactly one answer line with the same
    ``id``: ``{"ok": true, ...}`` merged with the handler's result, or ``{"ok": false,
    "error": text}`` if the handler raised.
    """
    stop_cmds = set(stop_cmds)
    for raw in sys.stdin:
        if not raw.strip():
            continue
        try:
            command = json.loads(raw)
            name = command["cmd"]
        except (ValueError, KeyError, TypeError) as exc:
            emit({"ok": False, "error": f"bad command line {raw!r}: {exc}"})
            continue
        answer: dict = {"id": command.get("id")}
        if name in stop_cmds:
            emit({**answer, "ok": True})
            return
        handler = handlers.get(name)
        if handler is None:
            emit({**answer, "ok": False, "error": f"unknown command {name!r}"})
            continue
        try:
            result = handler(command)
        except Exception as exc:  # report every failure to the test instead of dying
            traceback.print_exc(file=sys.stderr)
            emit({**answer, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            emit({**answer, "ok": True, **result})
