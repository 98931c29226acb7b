"""katcp-cmd as a new user runs it against the simulated site: one test per kind of fault.

Kinds: 1 a client says connected before it knows the device; 2 an explicit user choice
loses to a default; 3 command-line grammar; 5 errors that don't tell the fix; 7 the shell
(here its one-shot form); 8 empty states.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from sim_process import Sim, child_env, run_cmd


def test_connected_knows_device_no_stray_hint_informs(site: Sim) -> None:
    # The #request-timeout-hint informs katcp-cmd asks for itself are never output.
    for _ in range(5):
        result = run_cmd(site.address("antenna"), "?sensor-value", "az")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["#sensor-value", "!sensor-value"], lines


def test_explicit_choice_wins_timeout_over_hint(antenna: Sim) -> None:
    # ?target hints 300 s; a 70-degree slew takes over a minute; -t 1 is what counts.
    start = time.monotonic()
    result = run_cmd("-t", "1", "-i", antenna.address("antenna"), "target", "0", "20")
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "?target: no reply within -t 1 s; the request may still be running on the device "
        "(its timeout hint is 300 s): give a larger -t, or none to use the device's hint"
    ) in result.stderr, result.stderr
    assert elapsed < 15, elapsed


def test_explicit_choice_wins_said_in_help() -> None:
    result = run_cmd("--help")
    text = " ".join(result.stdout.split())
    assert "Given, it is used as is, also for requests for which the device hints" in text


def test_grammar_common_options_before_tool_name(site: Sim) -> None:
    weather = site.address("weather")
    for args in (
        ["-t", "2", "get", weather, "temperature"],
        ["-s", weather, "get", "temperature"],
        ["--no-color", "get", weather, "temperature"],
        ["get", weather, "temperature", "-t", "2", "--no-color"],
        ["-t", "2", "get", "-s", weather, "temperature"],
    ):
        result = run_cmd(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.startswith("temperature "), (args, result.stdout)


def test_grammar_options_after_address(site: Sim) -> None:
    result = run_cmd(site.address("weather"), "-t", "2", "-i", "sensor-value", "temperature")
    assert (result.returncode, result.stdout) == (0, "!sensor-value ok 1\n"), result.stderr


def test_grammar_misplaced_option_says_where_it_goes(site: Sim) -> None:
    weather = site.address("weather")
    result = run_cmd("--json", "get", weather, "temperature")
    assert result.returncode == 2
    assert "--json is an option of the get, list, monitor tools: put it after the tool name" in (
        result.stderr
    )
    result = run_cmd(weather, "sensor-value", "temperature", "--no-color")
    assert result.returncode == 2
    assert "--no-color after the request name 'sensor-value' would be sent" in result.stderr
    assert "put it before the request name" in result.stderr
    result = run_cmd("-i", "get", weather, "temperature")
    assert result.returncode == 2
    assert "-i is not an option of the get tool" in result.stderr
    # A tool name after the address is a request: say so when the device has no such request.
    result = run_cmd(weather, "get", "temperature")
    assert result.returncode == 1
    assert f"katcp-cmd get {weather} ..." in result.stderr
    # -- sends what follows as it is.
    result = run_cmd(site.address("antenna"), "sensor-value", "--", "--no-color")
    assert result.returncode == 1
    assert "!sensor-value fail" in result.stdout


def test_error_tells_fix_invalid_regex(site: Sim) -> None:
    result = run_cmd("get", site.address("weather"), "/(/")
    assert result.returncode == 1
    # The device's words first, then katcp-cmd's hint.
    assert "'/(/': Invalid regular expression /(/: missing ): (." in result.stderr
    assert "(Python's re: invalid regular expression /(/: missing )" in result.stderr
    assert "unknown sensor" not in result.stderr and "no sensor matches" not in result.stderr


def test_error_tells_fix_unknown_strategy(site: Sim) -> None:
    result = run_cmd("monitor", site.address("weather"), "temperature", "--strategy", "fast")
    assert result.returncode == 1
    assert (
        "Unknown strategy name: fast. (KATCP v5 strategies are auto, differential" in result.stderr
    )


def test_error_tells_fix_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    result = run_cmd(f"127.0.0.1:{port}", "watchdog")
    assert result.returncode == 2
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in result.stderr
    assert "--wait keeps trying" in result.stderr


def test_empty_state_list_filter_matches_nothing(site: Sim) -> None:
    result = run_cmd("list", site.address("weather"), "--filter", "^nothing")
    assert result.returncode == 1 and result.stdout == ""
    assert "none of the 7 sensors matches --filter '^nothing'" in result.stderr


def test_shell_ctrl_c_one_shot_says_request_continues(antenna: Sim) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "katcpx.cmd", antenna.address("antenna"), "target", "0", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("#target ")  # progress: it is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert "interrupted: ?target was sent and continues on the device" in err
    host_port = antenna.address("antenna")
    assert f"to stop it, send ?stop (katcp-cmd {host_port} stop)" in err, err
