"""Kind 7, the interactive shell, driven through a pseudo-terminal as a user types."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from sim_process import Sim, child_env

TIMEOUT = 15


def spawn(tmp_path: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "katcpx.cmd", *args],
        env=child_env(KATCP_CMD_HISTORY=str(tmp_path / "history")),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(24, 160),
    )


@pytest.fixture
def shell(site: Sim, tmp_path: Path) -> Iterator[pexpect.spawn]:
    proc = spawn(tmp_path, site.address("antenna"))
    proc.expect("-- connected to 127.0.0.1:")
    yield proc
    proc.close(force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_shell_version_connect_on_first_connect(shell: pexpect.spawn) -> None:
    shell.expect(r"#version-connect katcp-protocol 5\.1-BIMT")
    shell.expect(r"#version-connect katcp-device katcpx-sim-antenna-1\.0")
    shell.expect(r"\d+>")


def test_shell_completion_adds_space(shell: pexpect.spawn) -> None:
    shell.expect(r"\d+>")
    shell.send("?sensor-val\t")
    # The space after it (drawn as a cursor move): the next word can be typed at once.
    shell.expect(r"ue( |\x1b\[C)")
    shell.send("el-rate\r")
    shell.expect(r"#sensor-value \S+ 1 el-rate nominal")
    shell.expect(r"!sensor-value ok 1")


def test_shell_watch_takes_regex(shell: pexpect.spawn) -> None:
    shell.expect(r"\d+>")
    shell.send("/watch /^el-/\r")
    shell.expect("-- watching el-drive-ok")
    shell.expect("-- watching el-rate")
    shell.send("/unwatch\r")
    shell.expect("-- stopped watching")
    shell.send("/unwatch\r")  # an empty state says so (kind 8)
    shell.expect("-- nothing is watched; /watch SENSOR starts watching")


def test_shell_says_what_is_wrong(shell: pexpect.spawn) -> None:
    shell.expect(r"\d+>")
    shell.send("/watch /(/\r")
    shell.expect(r"invalid regular expression /\(/: missing \)")
    shell.send("/unwatch az\r")
    shell.expect(r"az was not watched \(watched: nothing\)")
    shell.send("/strategy az fast\r")
    shell.expect(
        "cannot set strategy 'fast' on az: Unknown strategy name: fast. "
        r"\(KATCP v5 strategies are auto, differential"
    )


def test_shell_ctrl_c_says_request_continues(antenna: Sim, tmp_path: Path) -> None:
    proc = spawn(tmp_path, antenna.address("antenna"))
    try:
        proc.expect(r"\d+>")
        proc.send("target 0 20\r")  # a minute of slewing
        proc.expect("#target ")  # progress informs: it is under way
        proc.send("\x03")
        proc.expect(r"Ctrl-C: \?target continues on the device")
        proc.expect(r"to stop it, send \?stop")
        proc.send("stop\r")
        proc.expect("!stop ok")
    finally:
        proc.close(force=True)


def test_shell_wait_for_server(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn(tmp_path, "--wait", f"127.0.0.1:{port}")
    sim = None
    try:
        proc.expect(f"127.0.0.1:{port}: Connection refused; waiting for it")
        sim = Sim("weather", "--port", str(port))
        proc.expect(f"-- connected to 127.0.0.1:{port}")
        proc.expect(r"#version-connect katcp-device katcpx-sim-weather")
    finally:
        proc.close(force=True)
        if sim is not None:
            sim.stop()


def test_shell_offers_to_wait_without_server(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn(tmp_path, f"127.0.0.1:{port}")
    try:
        proc.expect(f"cannot connect to 127.0.0.1:{port}: Connection refused")
        proc.expect(r"Wait for it and connect when it is up\? \[Y/n\] ")
        proc.send("n\r")
        proc.expect(pexpect.EOF)
        proc.close()
        assert proc.exitstatus == 2
    finally:
        proc.close(force=True)


async def test_shell_wait_says_connection_refused() -> None:
    """A server still starting: say its refusal, not the silence of the one now listening."""
    from katcpx.client import AsyncClient
    from katcpx.cmd._connection import tcp_failure

    port = free_port()
    client = AsyncClient("127.0.0.1", port, auto_reconnect=False)
    client.set_ioloop()
    client.start()
    try:
        await asyncio.wait_for(client.until_stopped(), TIMEOUT)  # its one attempt failed
        with socket.socket() as listener:  # the server is up now, not yet speaking KATCP
            listener.bind(("127.0.0.1", port))
            listener.listen()
            assert tcp_failure(client) == "Connection refused"
    finally:
        await client.aclose()
