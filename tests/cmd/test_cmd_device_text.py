"""katcp-cmd, as its own process, against devices that send hostile or unusual text.

Device text never reaches the terminal raw, in any output mode; lines that could not be
sent count in a script's exit status; v4 timestamp sensor values are seconds; a refusal
shows the server's own words.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cmd_helpers import ROOT, TIMEOUT, Device, cmd_env, run_cmd
from test_cmd_shell import quit_shell, spawn_shell

# Control characters a terminal could act on: C0 but newline, DEL, C1.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")


def run_script(address: str, lines: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Pipe `lines` into ``katcp-cmd ADDRESS`` (the scripted shell)."""
    return subprocess.run(
        [sys.executable, "-m", "katcpx.cmd", *args, address],
        env=cmd_env(),
        input=lines,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )


def assert_safe(*texts: str) -> None:
    for text in texts:
        assert not UNSAFE.search(text), f"raw control character in {text!r}"


@pytest.fixture(scope="module")
def v4_device() -> Iterator[Device]:
    dev = Device(0, "v4")
    yield dev
    dev.kill()


HOSTILE = "a\0b\x1b[2Jc\td\ne\rf\\g\x07h\x7fi\x9bj"
#: How katcp-cmd shows it (and reads it back inside double quotes).
ESCAPED = "a\\0b\\e[2Jc\\td\\ne\\rf\\\\g\\x07h\\x7fi\\x9bj"


@pytest.mark.parametrize(("value", "cell"), [("x  y", '"x  y"'), ("", '""'), ("plain", "plain")])
def test_get_quotes_text_values(device: Device, value: str, cell: str) -> None:
    # One cell per value, whatever its spaces; an empty value is visible; plain words stay.
    assert run_script(device.address, f'set-name "{value}"\n').returncode == 0
    table = run_cmd("get", device.address, "device.name")
    assert table.returncode == 0
    assert f"  {cell}  " in table.stdout, table.stdout


def test_one_shot_escapes_replies_and_informs(device: Device) -> None:
    result = run_cmd(device.address, "echo", "x\x1b]0;PWNED\x07y", "\x1b[2J")
    assert result.returncode == 0
    assert_safe(result.stdout, result.stderr)
    assert result.stdout == '!echo ok "x\\e]0;PWNED\\x07y" "\\e[2J"\n'
    result = run_cmd(device.address, "nasty")
    assert result.returncode == 1
    assert_safe(result.stdout, result.stderr)
    assert result.stdout == (
        '#nasty "inform\\e[31m\\r\\nspoof"\n!nasty fail "fail\\e]0;PWNED\\x07"\n'
    )


def test_get_list_monitor_escape_sensor_text(device: Device) -> None:
    # Typed in the escaped form katcp-cmd prints (argv cannot hold \0).
    assert run_script(device.address, f'set-name "{ESCAPED}"\n').returncode == 0
    assert run_cmd(device.address, "nasty").returncode == 1  # adds sensor 'nasty'
    escaped = ESCAPED
    table = run_cmd("get", device.address, "device.name", "nasty")
    assert table.returncode == 0
    assert_safe(table.stdout, table.stderr)
    rows = table.stdout.splitlines()
    assert len(rows) == 2, table.stdout  # the value's newline does not break the table
    assert rows[0].split()[1] == f'"{escaped}"'  # text values are quoted
    assert rows[1].split()[1:3] == ['"v\\ew\\x7f"', "u\\x9b"]
    formatted = run_cmd("get", device.address, "device.name", "--format", "<{value}>")
    assert formatted.stdout == f"<{escaped}>\n"
    as_json = run_cmd("get", device.address, "device.name", "nasty", "--json")
    assert_safe(as_json.stdout)
    values = [json.loads(line)["value"] for line in as_json.stdout.splitlines()]
    assert values == [HOSTILE, "v\x1bw\x7f"]  # JSON of the true value
    listed = run_cmd("list", device.address, "--filter", "nasty")
    assert_safe(listed.stdout)
    assert listed.stdout.split() == ["nasty", "string", "u\\x9b", "desc\\e]0;T\\x07"]
    listed = run_cmd("list", device.address, "--filter", "nasty", "--json")
    assert_safe(listed.stdout)
    assert json.loads(listed.stdout)["description"] == "desc\x1b]0;T\x07"
    helps = run_cmd("list", device.address, "--requests", "--filter", "nasty")
    assert_safe(helps.stdout)
    assert "Terminal escapes \\e]0;PWNED\\x07 in help\\e[2J text" in helps.stdout
    for args in ([], ["--json"]):
        monitor = run_cmd("monitor", device.address, "device.name", "--maximum", "1", *args)
        assert monitor.returncode == 0
        assert_safe(monitor.stdout)
        assert len(monitor.stdout.splitlines()) == 1


def test_script_shell_escapes_and_pastes_back(device: Device) -> None:
    result = run_script(device.address, "?nasty\n/raw\n?nasty\n")
    assert_safe(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert "#log warn" in result.stdout and '"log\\e[2J\\0"' in result.stdout
    assert '!nasty fail "fail\\e]0;PWNED\\x07"' in lines
    assert "!nasty fail fail\\e]0;PWNED\\x07" in lines  # raw (wire) form
    # What katcp-cmd printed, typed back, sends the same arguments.
    echoed = run_cmd(device.address, "echo", HOSTILE.replace("\0", ""), "é ✓", "")
    printed = echoed.stdout.strip()
    again = run_script(device.address, printed.replace("!echo ok", "?echo", 1) + "\n")
    assert again.stdout.strip() == printed
    raw_again = run_script(device.address, "/raw\n?echo a\\x07b\\x20c\n?echo\n")
    assert raw_again.stdout.splitlines()[1:] == ["!echo ok a\\x07b\\_c", "!echo ok"]


def test_interactive_shell_escapes(device: Device, tmp_path: Path) -> None:
    shell = spawn_shell(device.address, tmp_path / "history")
    try:
        shell.send("nasty\r")
        shell.expect_exact('!nasty fail "fail\\e]0;PWNED\\x07"')
        assert "PWNED\x07" not in shell.before
        assert "spoof" in shell.before and "\x1b[31m" not in shell.before
        quit_shell(shell)
    finally:
        shell.close(force=True)


def test_verbose_log_escapes_device_text(device: Device) -> None:
    result = run_cmd("-v", device.address, "nasty")
    assert_safe(result.stderr)
    assert "PWNED" in result.stdout


@pytest.mark.parametrize(
    "lines",
    [
        "/raw\n?echo bad\\q\n",
        "/bogus\n",
        'echo "unterminated\n',
        "?1abc\n",
        "/watch\n",
        "/strategy cpu.temp\n",
        "/raw\n?echo \\ud800\n",  # a lone surrogate has no UTF-8 form: not sent
    ],
)
def test_script_exit_status_counts_unsent_lines(device: Device, lines: str) -> None:
    result = run_script(device.address, "?watchdog\n" + lines + "?watchdog\n")
    assert result.stdout.count("!watchdog ok") == 2  # the script goes on
    assert result.returncode == 2, result.stdout


def test_script_exit_status_refused_strategy(device: Device) -> None:
    result = run_script(device.address, "/strategy cpu.temp bogus\n?watchdog\n")
    assert "Unknown strategy name: bogus" in result.stdout
    assert result.returncode == 1


def test_v4_timestamp_sensor_values_in_seconds(v4_device: Device) -> None:
    assert run_cmd(v4_device.address, "set-clock", "1700000000.25").returncode == 0
    text = run_cmd("get", v4_device.address, "clock.set")
    assert text.stdout.split()[1] == "1700000000.25"
    as_json = run_cmd("get", v4_device.address, "clock.set", "--json")
    assert json.loads(as_json.stdout)["value"] == 1700000000.25
    for args in ([], ["--json"]):
        monitor = run_cmd("monitor", v4_device.address, "clock.set", "--maximum", "1", *args)
        assert "1700000000.25" in monitor.stdout and "1700000000250" not in monitor.stdout
    # The wire form of a request's informs stays as the device sent it.
    wire = run_cmd(v4_device.address, "sensor-value", "clock.set")
    assert " clock.set nominal 1700000000250\n" in wire.stdout


@pytest.mark.parametrize(
    ("strategy", "said"),
    [
        ("event-rate 0.5 2", "Strategy event-rate not allowed for version 4 of katcp"),
        ("period abc", "period must be a number"),
    ],
)
def test_refusal_shows_server_reason(v4_device: Device, strategy: str, said: str) -> None:
    result = run_cmd("monitor", v4_device.address, "cpu.temp", "--strategy", strategy)
    assert result.returncode == 1
    assert said in result.stderr
    shell = run_script(v4_device.address, f"/strategy cpu.temp {strategy}\n")
    assert said in shell.stdout
    assert shell.returncode == 1


@pytest.mark.parametrize("lines", [b"/raw\n?echo a\xff\xfeb\n", b"echo a\xff\xfeb\n"])
def test_bytes_typed_that_are_not_utf8_go_out_as_typed(device: Device, lines: bytes) -> None:
    # KATCP arguments are bytes: what the user typed is sent unchanged (not '?'), in raw
    # mode and in the shell, and no traceback.
    result = subprocess.run(
        [sys.executable, "-m", "katcpx.cmd", device.address],
        env=cmd_env(),
        input=lines,
        capture_output=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The echo came back as the same two bytes that are not UTF-8 (shown as U+FFFD each),
    # not as "??" (what the codec sends for text it cannot encode).
    assert "!echo ok a\ufffd\ufffdb".encode() in result.stdout, result.stdout
    assert b"Traceback" not in result.stderr
