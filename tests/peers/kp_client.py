"""katcp-python 0.9.3 BlockingClient peer, driven by JSON lines on stdin/stdout.

Runs inside the katcp-python venv (see :mod:`peers.venv`). Usage::

    python kp_client.py HOST PORT [--timeout 10]

It connects, waits for the server's protocol information and prints
``{"event": "ready", "protocol": "5.0-IM"}`` (or ``{"event": "error", "error": ...}`` and exits
with status 1). Commands (see :mod:`peers` for the message encoding):

``request``
    ``name``, ``args`` (encoded arguments), optional ``timeout`` (s, default 5) and ``use_mid``
    → ``{"reply": message, "informs": [message, ...]}`` via ``blocking_request``.
``wait_informs``
    ``name``, optional ``count`` (default 1), ``timeout`` → ``{"informs": [...]}``: the first
    ``count`` unsolicited informs of that name received since connecting (consumed).
``protocol``
    → ``{"protocol": "5.0-IM", "versions": {name: [version, build]}}``.
``stop``
    Disconnect and exit; stdin EOF does the same.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from _jsonio import decode_arg, emit, encode_arg, serve_commands
from katcp import BlockingClient, Message

_MTYPES = {Message.REQUEST: "request", Message.REPLY: "reply", Message.INFORM: "inform"}


def message_to_json(msg: Any) -> dict:
    """Encode a katcp-python Message for the JSON protocol."""
    mid = msg.mid.decode("ascii") if isinstance(msg.mid, bytes) else msg.mid
    return {
        "mtype": _MTYPES[msg.mtype],
        "name": msg.name,
        "args": [encode_arg(a) for a in msg.arguments],
        "mid": None if mid is None else str(mid),
    }


class RecordingClient(BlockingClient):
    """BlockingClient that keeps every inform not belonging to a request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._informs: list[Any] = []
        self._informs_changed = threading.Condition()

    def _record(self, msg: Any) -> None:
        with self._informs_changed:
            self._informs.append(msg)
            self._informs_changed.notify_all()

    def unhandled_inform(self, msg: Any) -> None:
        self._record(msg)

    def inform_version_connect(self, msg: Any) -> Any:
        """Record and handle #version-connect."""
        self._record(msg)
        return super().inform_version_connect(msg)

    def inform_version(self, msg: Any) -> Any:
        """Record and handle the KATCP v4 #version."""
        self._record(msg)
        return super().inform_version(msg)

    def inform_build_state(self, msg: Any) -> Any:
        """Record and handle the KATCP v4 #build-state."""
        self._record(msg)
        return super().inform_build_state(msg)

    def take_informs(self, name: str, count: int, timeout: float) -> list[Any]:
        """Remove and return the first ``count`` recorded informs called ``name``."""
        deadline = time.monotonic() + timeout
        with self._informs_changed:
            while True:
                matching = [m for m in self._informs if m.name == name]
                if len(matching) >= count:
                    taken = matching[:count]
                    self._informs = [m for m in self._informs if all(m is not t for t in taken)]
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"got {len(matching)} of {count} #{name} informs within {timeout} s"
                    )
                self._informs_changed.wait(remaining)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    client = RecordingClient(args.host, args.port, timeout=args.timeout, auto_reconnect=False)
    client.setDaemon(True)
    client.start(timeout=args.timeout)
    try:
        if not client.wait_protocol(timeout=args.timeout):
            emit({"event": "error", "error": "no protocol information from the server"})
            return 1
        emit({"event": "ready", "protocol": str(client.protocol_flags)})

        def request(cmd: dict) -> dict:
            msg = Message.request(cmd["name"], *[decode_arg(a) for a in cmd.get("args", [])])
            reply, informs = client.blocking_request(
                msg, timeout=cmd.get("timeout", 5.0), use_mid=cmd.get("use_mid")
            )
            return {
                "reply": message_to_json(reply),
                "informs": [message_to_json(m) for m in informs],
            }

        def wait_informs(cmd: dict) -> dict:
            taken = client.take_informs(
                cmd["name"], cmd.get("count", 1), cmd.get("timeout", args.timeout)
            )
            return {"informs": [message_to_json(m) for m in taken]}

        def protocol(cmd: dict) -> dict:
            versions = {
                str(k): [str(x) if x is not None else None for x in v]
                for k, v in client.versions.items()
            }
            return {"protocol": str(client.protocol_flags), "versions": versions}

        serve_commands(
            {"request": request, "wait_informs": wait_informs, "protocol": protocol},
            stop_cmds=("stop",),
        )
    finally:
        client.stop(timeout=5)
        client.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
