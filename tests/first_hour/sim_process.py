"""``katcpx-sim`` in a child process on free ports, and katcp-cmd run as a user runs it."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "docs"))

from docs_runner import child_env as docs_child_env  # noqa: E402

START_TIMEOUT = 30.0


def child_env(**extra: str) -> dict[str, str]:
    """Environment of child processes: the source tree importable, no colour, unbuffered."""
    return docs_child_env(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", **extra)


class SimExited(AssertionError):
    """katcpx-sim exited instead of serving (status 1: a port was taken)."""

    def __init__(self, status: int, output: str) -> None:
        super().__init__(f"katcpx-sim exited with {status}: {output}")
        self.status = status
        self.output = output


class Sim:
    """``katcpx-sim DEVICE --port 0`` (or ``site --base-port 0``) in a child process.

    Attributes
    ----------
    ports
        Device name -> the port it listens on, from the table katcpx-sim prints.
    """

    def __init__(self, device: str = "site", *args: str) -> None:
        port_option = ["--base-port", "0"] if device == "site" else ["--port", "0"]
        if "--port" in args or "--base-port" in args:
            port_option = []
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
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"katcpx-sim did not start: {''.join(output)}") from None
            if line is None:
                raise SimExited(self.proc.wait(10), "".join(output))
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
