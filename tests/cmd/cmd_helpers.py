"""Helpers for the katcp-cmd tests: a device server process, and running katcp-cmd itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect

DEVICE = str(Path(__file__).with_name("device.py"))
ROOT = str(Path(__file__).resolve().parents[2])
TIMEOUT = 10


class Device:
    """The test device (``device.py``) in a child process, driven through its stdin.

    Parameters
    ----------
    port
        Port to listen on (0: any free port).
    args
        More arguments of ``device.py`` (``"v4"``: a KATCP v4 server).
    """

    def __init__(self, port: int = 0, *args: str) -> None:
        self.port = port
        self.args = list(args)
        self.proc: pexpect.spawn | None = None
        self.start()

    def start(self) -> None:
        """Start the server (on the same port as before, after a :meth:`kill`)."""
        self.proc = pexpect.spawn(
            sys.executable,
            [DEVICE, str(self.port), *self.args],
            env=cmd_env(),
            encoding="utf-8",
            timeout=TIMEOUT,
        )
        try:
            self.proc.expect(r"PORT (\d+)")
        except pexpect.EOF:
            raise RuntimeError(f"device.py did not start:\n{self.proc.before}") from None
        self.port = int(self.proc.match.group(1))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self, line: str) -> None:
        """Send a ``set``/``inform``/``add-sensor`` line and wait until the server did it."""
        assert self.proc is not None
        self.proc.sendline(line)
        self.proc.expect(f"DONE {line.split()[0]}")

    def kill(self) -> None:
        """Kill the server process and wait for it to be gone."""
        if self.proc is not None and self.proc.isalive():
            self.proc.terminate(force=True)
            self.proc.expect(pexpect.EOF)
        self.proc = None


def cmd_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: katcpx importable, no colour, no CPR queries."""
    env = dict(os.environ)
    env.pop("KATCP_SERVER", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    env["TERM"] = "xterm"
    env.update(extra)
    return env


def run_cmd(*args: str, timeout: float = TIMEOUT, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m katcpx.cmd ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "katcpx.cmd", *args],
        env=cmd_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
