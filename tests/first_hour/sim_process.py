"""``katcpx-sim`` in a child process on free ports, and katcp-cmd run as a user runs it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def child_env(**extra: str) -> dict[str, str]:
    """Environment of child processes: the source tree importable, no colour, unbuffered."""
    env = dict(os.environ)
    env.pop("KATCP_SERVER", None)
    paths = [str(ROOT), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        PROMPT_TOOLKIT_NO_CPR="1",
        TERM="xterm",
    )
    env.update(extra)
    return env


class Sim:
    """``katcpx-sim DEVICE --port 0`` (or ``site --base-port 0``) in a child process.

    Attributes
    ----------
    ports
        Device name -> the port it listens on, from the table katcpx-sim prints.
    """

    def __init__(self, device: str = "site", *args: str) -> None:
        port_option = ["--base-port", "0"] if device == "site" else ["--port", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "katcpx_devices.sim", device, *port_option, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(),
        )
        self.ports: dict[str, int] = {}
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        output: list[str] = []
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"katcpx-sim exited: {''.join(output)}")
            output.append(line)
            words = line.split()
            if len(words) == 3 and ":" in words[1] and words[1].rsplit(":", 1)[1].isdigit():
                self.ports[words[0]] = int(words[1].rsplit(":", 1)[1])
            if line.startswith("Ctrl-C to stop"):
                return

    def address(self, name: str) -> str:
        """``127.0.0.1:PORT`` of a device."""
        return f"127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        """Stop it as Ctrl-C would, and wait for it to end."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def run_cmd(*args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``katcp-cmd ARGS`` (as ``python -m katcpx.cmd``) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "katcpx.cmd", *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
