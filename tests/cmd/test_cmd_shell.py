"""The interactive katcp-cmd session, driven through a pseudo-terminal with pexpect.

prompt_toolkit redraws the line being edited with cursor movements, so the tests look for
what katcp-cmd prints as whole lines (replies, informs, ``--`` notes) and for the text that
completion inserts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from cmd_helpers import TIMEOUT, Device, cmd_env


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "history"


def spawn_shell(address: str, history: Path, *args: str) -> pexpect.spawn:
    shell = pexpect.spawn(
        sys.executable,
        ["-m", "katcpx.cmd", *args, address],
        env=cmd_env(KATCP_CMD_HISTORY=str(history)),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(24, 120),
    )
    shell.expect("-- connected to 127.0.0.1:")
    shell.expect(r"\d+>")
    return shell


@pytest.fixture
def shell(device: Device, history: Path) -> Iterator[pexpect.spawn]:
    proc = spawn_shell(device.address, history)
    yield proc
    proc.close(force=True)


def quit_shell(proc: pexpect.spawn) -> None:
    proc.send("/quit\r")
    proc.expect(pexpect.EOF)
    proc.close()
    assert proc.exitstatus == 0


def test_completion_request_and_history(shell: pexpect.spawn, history: Path) -> None:
    shell.send("?sensor-va\t")
    shell.expect("lue")  # completion finished the request name, with a space after it
    shell.send("cpu.t\t")
    shell.expect("emp")  # and the sensor name
    shell.send("\r")
    shell.expect(r"#sensor-value \S+ 1 cpu.temp unknown 42.5\r+\n")
    shell.expect("!sensor-value ok 1\r+\n")
    shell.send('echo "two words" x\r')  # the ? is optional; quotes group
    shell.expect('!echo ok "two words" x\r+\n')
    quit_shell(shell)
    assert history.read_text().count("+?sensor-value cpu.temp \n") == 1


def test_history_persists(device: Device, history: Path) -> None:
    history.write_text("\n# 2026-01-01 00:00:00\n+?echo from-last-time\n")
    proc = spawn_shell(device.address, history)
    proc.send("\x1b[A")  # up arrow: the previous session's line
    proc.expect("from-last-time")
    proc.send("\r")
    proc.expect("!echo ok from-last-time\r+\n")
    quit_shell(proc)


def test_fail_invalid_and_local_commands(shell: pexpect.spawn) -> None:
    shell.send("broken\r")
    shell.expect('!broken fail "it is broken"\r+\n')
    shell.send("?nope\r")
    shell.expect("!nope invalid ")
    shell.send("/help\r")
    shell.expect("/watch +SENSOR")
    shell.send("/bogus\r")
    shell.expect("-- unknown command /bogus")
    shell.send('echo "unbalanced\r')
    shell.expect("-- cannot parse: No closing quotation")
    shell.send("/strategy cpu.temp bogus\r")
    shell.expect(
        r"-- cannot set strategy 'bogus' on cpu.temp: Unknown strategy name: bogus. "
        r"\(KATCP v\d strategies are auto"
    )
    shell.send("/raw\r")
    shell.expect("-- raw mode on")
    shell.send("?echo a\\_b\r")
    shell.expect(r"!echo ok a\\_b\r+\n")  # sent and shown in wire form
    shell.send("/raw\r")
    shell.expect("-- raw mode off")
    quit_shell(shell)


def test_async_inform_while_typing(own_device: Device, history: Path) -> None:
    proc = spawn_shell(own_device.address, history)
    try:
        proc.send("?ech")
        proc.expect("ech")
        own_device.command("inform hello-there from the server")
        proc.expect("#hello-there from the server\r+\n")
        # The half-typed line survived: finishing it sends "?echo after".
        proc.send("o after\r")
        proc.expect("!echo ok after\r+\n")
        proc.send("/watch fan.speed\r")
        proc.expect(r"#sensor-status \S+ 1 fan.speed unknown 1200\r+\n")
        proc.expect(r"-- watching fan.speed \(event\)")
        proc.send("?sens")
        own_device.command("set fan.speed 1500")
        proc.expect(r"#sensor-status \S+ 1 fan.speed nominal 1500\r+\n")
        proc.send("or-value fan.speed\r")
        proc.expect(r"#sensor-value \S+ 1 fan.speed nominal 1500\r+\n")
        # A new sensor: #interface-changed prints and refreshes the completions.
        own_device.command("add-sensor new.sensor")
        proc.expect("#interface-changed sensor new.sensor added\r+\n")
        proc.expect("-- completions updated: \\d+ requests, 5 sensors")
        proc.send("?sensor-value new.se\t")
        proc.expect("nsor")
        proc.send("\r")
        proc.expect(r"#sensor-value \S+ 1 new.sensor unknown 0\r+\n")
        quit_shell(proc)
    finally:
        proc.close(force=True)


def test_reconnect_after_server_restart(own_device: Device, history: Path) -> None:
    proc = spawn_shell(own_device.address, history)
    try:
        proc.send("/watch cpu.temp\r")
        proc.expect(r"-- watching cpu.temp \(event\)")
        own_device.kill()
        proc.expect("-- connection to 127.0.0.1:\\d+ lost; reconnecting...")
        proc.send("watchdog\r")
        proc.expect("-- \\?watchdog: connection lost: Not connected")
        own_device.start()  # same port
        # A new connection's greeting prints as it arrives (the first one's is shown once,
        # at the start).
        proc.expect(r"#version-connect katcp-protocol \S+\r+\n")
        proc.expect("-- reconnected to 127.0.0.1:")
        # The watch is restored on the new connection.
        proc.expect(r"#sensor-status \S+ 1 cpu.temp unknown 42.5\r+\n")
        proc.send("watchdog\r")
        proc.expect("!watchdog ok\r+\n")
        quit_shell(proc)
    finally:
        proc.close(force=True)


def test_piped_stdin_runs_lines_in_order(device: Device) -> None:
    proc = pexpect.spawn(
        "/bin/sh",
        [
            "-c",
            f"printf 'echo one\\nbroken\\n?echo two\\n' | {sys.executable} -m katcpx.cmd "
            f"{device.address}; echo EXIT=$?",
        ],
        env=cmd_env(),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    proc.expect(pexpect.EOF)
    lines = proc.before.splitlines()
    assert lines == ["!echo ok one", '!broken fail "it is broken"', "!echo ok two", "EXIT=1"]


def test_first_greeting_shown_once(own_device: Device, history: Path) -> None:
    # The first connection's greeting is printed once, when the prompt starts; a greeting
    # inform of a name already shown is not printed again, whenever it arrives (connecting
    # may finish before the whole greeting is in: script output never shows it).
    proc = spawn_shell(own_device.address, history)
    try:
        own_device.command("inform version-connect katcp-protocol 5.0-again")
        own_device.command("inform hello-there after the greeting")
        proc.expect("#hello-there after the greeting\r+\n")
        assert "5.0-again" not in proc.before
        quit_shell(proc)
    finally:
        proc.close(force=True)
