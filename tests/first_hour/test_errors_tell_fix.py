"""Kind 5, errors that don't tell the fix: each names what went wrong, where, and the fix."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest
from sim_process import ROOT, Sim, child_env

from katcpx.ops import ERROR, OK, TIMEOUT, SyncOpAccessor


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


def test_error_tells_fix_orchestrate_without_site() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    start = time.monotonic()
    result = run(str(ROOT / "examples" / "orchestrate.py"), "--base-port", str(port))
    assert time.monotonic() - start < 15  # at once, not after the 30 s sync timeout
    assert result.returncode == 3
    assert f"cannot connect to the antenna at 127.0.0.1:{port}: Connection refused" in (
        result.stderr
    )
    assert "start the simulated site first (katcpx-sim site)" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_tells_fix_web_port_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("-m", "katcpx.web", "dev=127.0.0.1:1", "--port", str(port))
    assert result.returncode == 1
    assert f"katcpx-web: cannot listen on 127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )
    assert "--port N, or --port 0 for any free port" in result.stderr


def test_error_tells_fix_sim_port_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        site = run("-m", "katcpx_devices.sim", "site", "--base-port", str(port))
        one = run("-m", "katcpx_devices.sim", "weather", "--port", str(port))
    assert site.returncode == 1 and one.returncode == 1
    assert f"cannot start antenna on 127.0.0.1:{port}: Address already in use" in site.stderr
    assert "choose another with --base-port N" in site.stderr
    assert "choose another with --port N" in one.stderr


def test_error_tells_fix_op_status_prints_name() -> None:
    assert (str(OK), str(ERROR), str(TIMEOUT)) == ("OK", "ERROR", "TIMEOUT")
    assert f"{OK}" == "OK" and f"{ERROR:d}" == "-1" and OK == 0


def test_grammar_sim_options_before_device_name() -> None:
    from katcpx_devices.sim import device_first

    assert device_first(["--speed", "50", "site", "--seed", "1"]) == [
        "site",
        "--speed",
        "50",
        "--seed",
        "1",
    ]
    assert device_first(["antenna", "--port", "0"]) == ["antenna", "--port", "0"]
    assert device_first(["--host", "site", "weather"]) == ["weather", "--host", "site"]
    with socket.socket() as busy:  # as a user types it: the options come first
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("-m", "katcpx_devices.sim", "--speed", "50", "weather", "--port", str(port))
    assert result.returncode == 1  # got as far as binding: the options were understood
    assert f"cannot start weather on 127.0.0.1:{port}" in result.stderr


def test_error_tells_fix_closed_stdout_is_quiet() -> None:
    """``katcpx-sim ... | head -3``: once the reader is gone, the tool exits without a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # like head after its lines
    try:
        result = subprocess.run(
            [sys.executable, "-m", "katcpx_devices.sim", "weather", "--port", "0"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=child_env(),
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode == 1
    # Every tool's entry point is wrapped the same way.
    from katcpx_devices.sim import main as sim_main

    from katcpx.cmd._cli import main as cmd_main
    from katcpx.gateway._cli import main as gateway_main
    from katcpx.metrics._exporter import main as exporter_main
    from katcpx.web._cli import main as web_main

    for main in (cmd_main, gateway_main, exporter_main, web_main, sim_main):
        assert main.__wrapped__ is not None  # type: ignore[attr-defined]


def test_error_tells_fix_sim_names_unknown_device() -> None:
    result = run("-m", "katcpx_devices.sim", "--speed", "50", "nosuch")
    assert result.returncode == 2
    assert "invalid choice: 'nosuch'" in result.stderr


def test_error_tells_fix_sim_port_option_for_device() -> None:
    one = run("-m", "katcpx_devices.sim", "weather", "--base-port", "27170")
    site = run("-m", "katcpx_devices.sim", "site", "--port=27170")
    assert one.returncode == 2 and site.returncode == 2
    assert "--base-port is for `site`; use --port N for one device (weather)" in one.stderr
    assert "--port is for one device; use --base-port N for site" in site.stderr


def test_error_tells_fix_cmd_port_not_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    from katcpx.cmd._cli import main

    assert main(["nohost:abc", "watchdog"]) == 2
    assert main(["get", "nohost:", "temperature"]) == 2
    err = capsys.readouterr().err
    assert "the port 'abc' in 'nohost:abc' is not a number: give HOST:PORT" in err
    assert "no port in 'nohost:': give HOST:PORT" in err
    assert "no server given" not in err


def test_error_tells_fix_cmd_timeout_says_request_may_still_run() -> None:
    from katcpx.cmd._connection import CmdClient, seconds

    assert (seconds(1.0), seconds(0.5), seconds(300)) == ("1 s", "0.5 s", "300 s")
    client = CmdClient("127.0.0.1", 1, timeout=5.0)
    assert client.describe_timeout("stow") == (
        "no reply within 5 s; the request may still be running on the device: "
        "give a larger -t N (seconds)"
    )
    client.user_timeout = 1.0
    assert client.describe_timeout("stow") == (
        "no reply within -t 1 s; the request may still be running on the device: give a larger -t"
    )


def test_error_tells_fix_unknown_operation(site: Sim) -> None:
    from katcpx.client import AsyncClient
    from katcpx.ops import ops_for

    async def status() -> str:
        async with await AsyncClient.connect("127.0.0.1", site.ports["antenna"]) as client:
            ops = ops_for(client)
            assert not isinstance(ops, SyncOpAccessor)
            return (await ops.nosuch.status()).msg

    message = asyncio.run(status())
    assert message.startswith(f"no operation 'nosuch' on {site.address('antenna')}; ")
    assert "its operations: " in message and "slew" in message, message
