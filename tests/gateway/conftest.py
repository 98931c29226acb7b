"""Fixtures for the scale-out tests: a real redis-server, gateways and web instances.

The gateway and the web instances run either in-process (to read their counters) or as the
real commands in subprocesses (to kill them as a crash would).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from web.conftest import WS as BaseWS

from .redis_server import REDIS_SERVER, RedisServer

TIMEOUT = 30.0  # waits end as soon as their event comes; generous for a loaded machine
ROOT = Path(__file__).resolve().parents[2]

if REDIS_SERVER is None:  # pragma: no cover - CI installs it (.ci/run)
    pytest.skip(
        "redis-server not installed (apt-get install redis-server)", allow_module_level=True
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def env() -> dict[str, str]:
    """Subprocess environment: the source tree importable, output unbuffered."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), PYTHONUNBUFFERED="1")


class Program:
    """A katcpx command run as ``python -m module args``; its first line is awaited."""

    def __init__(self, module: str, *args: str) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.proc: asyncio.subprocess.Process | None = None
        self.first_line = ""
        self.lines: list[str] = []

    async def start(self, expect: str) -> str:
        """Start it; return its first output line, which must contain `expect`."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env(),
        )
        assert self.proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT * 2)).decode()
            assert line, f"{self.argv} exited: {self.proc.returncode}"
            self.lines.append(line)
            if expect in line:
                self.first_line = line
                break
        asyncio.ensure_future(self._drain())
        return self.first_line

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode())

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def stop(self) -> int | None:
        """SIGTERM, and the exit status (killed if it does not exit in time)."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None


async def start_gateway(redis_url: str, *devices: str, extra: tuple[str, ...] = ()) -> Program:
    prog = Program("katcpx.gateway", *devices, "--redis", redis_url, "--log-level", "WARNING")
    prog.argv += list(extra)
    await prog.start("katcpx-gateway: carrying")
    return prog


async def start_web_redis(redis_url: str, *extra: str) -> tuple[Program, Any]:
    """A ``katcpx-web --redis`` subprocess (with `extra` arguments) and an object with its
    ``port``."""
    prog = Program(
        "katcpx.web", "--redis", redis_url, "--port", "0", "--log-level", "WARNING", *extra
    )
    line = await prog.start("katcpx-web: serving")
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    return prog, SimpleNamespace(port=int(match.group(1)))


@pytest.fixture
async def programs() -> AsyncIterator[list[Program]]:
    """Programs to stop at the end of the test."""
    started: list[Program] = []
    yield started
    for prog in started:
        await prog.stop()


async def start_site(programs: list[Program]) -> dict[str, str]:
    """``katcpx-sim site`` on free ports (50 times real time); its devices' addresses."""
    site = Program("katcpx_devices.sim", "site", "--base-port", "0", "--speed", "50")
    programs.append(site)
    await site.start("Ctrl-C to stop")
    addresses = {}
    for line in site.lines:
        match = re.match(r"(\w+)\s+\S*:(\d+)\s", line)
        if match and match.group(1) != "NAME":
            addresses[match.group(1)] = f"127.0.0.1:{match.group(2)}"
    return addresses


async def until_synced(ws: Any, device: str) -> None:
    """Wait until the websocket has been told that `device` is synced."""
    if any(d["device"] == device and d["synced"] for d in ws.hello["devices"]):
        return
    await ws.expect(lambda m: m["type"] == "device" and m["device"] == device and m["synced"])


async def wait_until(condition: Any, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll `condition()` (every 20 ms) until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {condition}")
        await asyncio.sleep(0.02)


class Collector:
    """A sink (as a websocket is) that keeps every message it is pushed."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def push(self, text: str, key: Any = None) -> None:
        self.messages.append(json.loads(text))

    def updates(self, sensor: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "update" and m["sensor"] == sensor]


class WS(BaseWS):
    """The web tests' websocket client, with this directory's longer default waits."""

    async def expect(self, pred: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await super().expect(pred, timeout)

    async def request(self, obj: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        return await super().request(obj, timeout)
