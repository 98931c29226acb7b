"""katcp-cmd's one-shot request form and its exit codes, run as a subprocess."""

from __future__ import annotations

import socket

from cmd_helpers import Device, run_cmd


def test_request_prints_informs_and_reply(device: Device) -> None:
    result = run_cmd(device.address, "?sensor-value", "cpu.temp")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("#sensor-value ")
    assert lines[0].endswith(" 1 cpu.temp unknown 42.5")
    assert lines[1] == "!sensor-value ok 1"
    assert result.stderr == ""


def test_question_mark_optional_and_arguments_escaped(device: Device) -> None:
    # Spaces, an empty argument and a backslash survive the KATCP escaping both ways.
    result = run_cmd(device.address, "echo", "a b", "", "back\\slash")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '!echo ok "a b" "" "back\\\\slash"\n'


def test_fail_and_invalid_exit_1(device: Device) -> None:
    result = run_cmd(device.address, "broken")
    assert (result.returncode, result.stdout) == (1, '!broken fail "it is broken"\n')
    result = run_cmd(device.address, "no-such-request")
    assert result.returncode == 1
    assert result.stdout.startswith("!no-such-request invalid ")


def test_toggle_informs_and_replies(device: Device) -> None:
    result = run_cmd("-i", device.address, "progress")
    assert result.stdout == "!progress ok\n"
    result = run_cmd("-r", device.address, "progress")
    assert result.stdout == '#progress "step one"\n#progress "step two"\n'


def test_server_from_option_and_environment(device: Device) -> None:
    assert run_cmd("-i", "-s", device.address, "progress").stdout == "!progress ok\n"
    result = run_cmd("watchdog", KATCP_SERVER=device.address)
    assert (result.returncode, result.stdout) == (0, "!watchdog ok\n")
    result = run_cmd("request", "-s", device.address, "watchdog")
    assert (result.returncode, result.stdout) == (0, "!watchdog ok\n")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_exit_2() -> None:
    result = run_cmd(f"127.0.0.1:{_closed_port()}", "help")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("katcp-cmd: cannot connect to 127.0.0.1:")
    assert "refused" in lines[0]


def test_usage_errors_exit_2() -> None:
    result = run_cmd("help")  # no server anywhere
    assert result.returncode == 2
    assert "no server given" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cmd("127.0.0.1:1", "bad_name!")
    assert result.returncode == 2
    assert result.stderr.strip() == "katcp-cmd: not a request name: 'bad_name!'"
    result = run_cmd("monitor", "--bogus-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_timeout_exit_2() -> None:
    # A server that accepts but never speaks KATCP: the connection times out.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = run_cmd("-t", "0.3", f"127.0.0.1:{port}", "help")
    assert result.returncode == 2
    assert "no KATCP #version-connect" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_color_highlights_fail_and_ok(device: Device) -> None:
    result = run_cmd("--color", device.address, "broken")
    assert result.stdout == '\x1b[1;31m!broken fail "it is broken"\x1b[0m\n'
    result = run_cmd("--color", device.address, "progress")
    assert result.stdout.splitlines() == [
        '\x1b[36m#progress\x1b[0m "step one"',
        '\x1b[36m#progress\x1b[0m "step two"',
        "\x1b[32m!progress ok\x1b[0m",
    ]
