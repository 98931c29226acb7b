"""The examples, run as scripts against a ``katcpx-sim site`` subprocess.

The simulated site runs 50 times faster than real time on free consecutive ports; each
example runs as its own process (as a user would run it) with a timeout, and is judged by
its exit status and its output.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from katcpx.client import AsyncClient

sys.path.insert(0, str(Path(__file__).resolve().parent / "first_hour"))
from sim_process import Sim, SimExited, child_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
N_DEVICES = 5  # katcpx-sim site: antenna, psu, weather, cryo, digitiser
WEATHER = 2  # port offset of the weather station
START_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0


def ports_free(base: int, count: int) -> bool:
    """Whether ``base .. base + count - 1`` can all be bound on 127.0.0.1 right now."""
    socks = []
    try:
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()


def env() -> dict[str, str]:
    """Environment of the subprocesses: the source tree importable, unbuffered output."""
    return child_env()


def start_site(base: int) -> Sim | None:
    """Start ``katcpx-sim site`` on ``base``...; None if it could not bind its ports."""
    try:
        return Sim("site", "--base-port", str(base), "--speed", "50", "--seed", "1")
    except SimExited as exc:
        if exc.status == 1 and "cannot start" in exc.output:
            return None  # another process took a port first
        raise


@pytest.fixture(scope="module")
def site() -> Iterator[int]:
    """A simulated site on consecutive free ports; yields the base port."""
    rng = random.Random()
    for _ in range(10):
        # Below the usual ephemeral range (32768+), where outgoing connections take ports.
        base = rng.randrange(20000, 32000)
        if not ports_free(base, N_DEVICES):
            continue
        sim = start_site(base)  # another process may still grab a port first: retry
        if sim is not None:
            break
    else:
        pytest.fail("no free consecutive ports for katcpx-sim site")
    try:
        yield base
    finally:
        sim.stop()
        assert sim.proc.returncode == 0


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env(),
    )


def weather_request(base: int, *request: str) -> None:
    """Send one request to the site's weather station (which must accept it)."""

    async def call() -> None:
        async with await AsyncClient.connect("127.0.0.1", base + WEATHER, timeout=10) as client:
            await client.call(*request)

    asyncio.run(call())


def test_orchestrate_observes(site: int) -> None:
    result = run_example("orchestrate.py", "--base-port", str(site))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Synced 3 devices." in out
    assert re.search(r"^Weather: wind [\d.]+ m/s \((nominal|warn)\)", out, re.M), out
    assert re.search(r'^Cool-down: (Started task "cooldown"|.*already running)', out, re.M), out
    assert 'OpReply: OK : Operation "slew" is not running (SUCCEEDED).' in out
    assert "On target at az=30.000 el=60.000." in out
    assert len(re.findall(r"^  target az=[\d.]+ el=60\.0000 ", out, re.M)) == 3, out
    assert 'OpReply: OK : Operation "track" is not running (SUCCEEDED).' in out
    assert re.search(r"Tracking stopped after [\d.]+ simulated s, on target", out), out
    assert 'OpReply: OK : Operation "cooldown" is running' in out


def test_orchestrate_refuses_to_slew_in_a_gale(site: int) -> None:
    weather_request(site, "sim-fault", "gust", "speed=30")
    try:
        result = run_example("orchestrate.py", "--base-port", str(site))
    finally:
        weather_request(site, "sim-clear", "gust")
    out = result.stdout
    assert result.returncode == 2, out + result.stderr
    assert re.search(r"^Weather: wind 30\.0 m/s \(error\)", out, re.M), out
    assert "Wind speed is in error: refusing to slew the antenna." in out
    assert "Slewing" not in out
