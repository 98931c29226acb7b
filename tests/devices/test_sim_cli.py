"""``katcpx-sim`` run as a real subprocess (``python -m katcpx_devices.sim``)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from katcpx_devices.sim import build_parser

from katcpx.client import AsyncClient

TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[2]
DEVICE_NAMES = ["antenna", "psu", "weather", "cryo", "digitiser"]
ROW = re.compile(r"^(\S+)\s+(\S+):(\d+)\s+(\S+)$")


def free_port_run(n: int) -> int:
    """A base port with ``n`` consecutive free ports (best effort: another process may race)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + n >= 65535:
            continue
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


class Sim:
    """A ``katcpx-sim`` subprocess with its table parsed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.table: dict[str, tuple[str, int, str]] = {}

    @classmethod
    async def start(cls, *args: str) -> Sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "katcpx_devices.sim",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        sim = cls(proc)
        try:
            while True:
                line = await sim.readline()
                if line.startswith("Ctrl-C"):
                    break
                m = ROW.match(line)
                if m and m.group(1) != "NAME":
                    sim.table[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4))
        except BaseException:
            await sim.kill()
            raise
        return sim

    async def readline(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not raw:
            assert self.proc.stderr is not None
            err = (await self.proc.stderr.read()).decode()
            raise AssertionError(f"katcpx-sim exited early: {self.lines} {err}")
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def finish(self, sig: int) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def read_until_disconnect(reader: asyncio.StreamReader) -> list[bytes]:
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if not line:
            return lines
        lines.append(line)


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["site"])
    assert (args.base_port, args.host, args.speed, args.seed) == (7147, "127.0.0.1", 1.0, None)
    args = build_parser().parse_args(["antenna", "--port", "7200", "--speed", "10", "--seed", "3"])
    assert (args.device, args.port, args.speed, args.seed) == ("antenna", 7200, 10.0, 3)
    for bad in (["toaster"], ["site", "--speed", "0"], ["psu", "--speed", "nan"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


async def test_site_serves_every_device_and_stops_on_sigint() -> None:
    base = free_port_run(len(DEVICE_NAMES))
    sim = await Sim.start("site", "--base-port", str(base), "--speed", "50", "--seed", "1")
    try:
        assert list(sim.table) == DEVICE_NAMES
        ports = [port for _, port, _ in sim.table.values()]
        assert ports == list(range(base, base + len(DEVICE_NAMES)))
        for name, (host, port, version) in sim.table.items():
            assert host == "127.0.0.1" and version == f"katcpx-sim-{name}-1.0"
            client = await AsyncClient.connect(host, port, timeout=TIMEOUT)
            try:
                reply, _ = await client.call("watchdog")
                assert reply.reply_ok()
                reply, _ = await client.call("sim-speed")
                assert float(reply.arguments[1]) == 50.0
            finally:
                await client.aclose()

        # A client still connected at shutdown is told so with #disconnect.
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.table["antenna"][1])
        greeting = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert greeting.startswith(b"#version-connect")
        status, out, err = await sim.finish(signal.SIGINT)
        lines = await read_until_disconnect(reader)
        writer.close()
    finally:
        await sim.kill()
    assert any(line.startswith(b"#disconnect") for line in lines), lines
    assert status == 0, err
    assert "stopped" in out


async def test_single_device_stops_on_sigterm() -> None:
    sim = await Sim.start("psu", "--port", "0")
    try:
        assert list(sim.table) == ["psu"]
        host, port, _ = sim.table["psu"]
        reader, writer = await asyncio.open_connection(host, port)
        await asyncio.wait_for(reader.readline(), TIMEOUT)
        writer.write(b"?output on\n")
        await writer.drain()
        status, out, err = await sim.finish(signal.SIGTERM)
        lines = await read_until_disconnect(reader)
        writer.close()
    finally:
        await sim.kill()
    assert b"!output ok on\n" in lines
    assert any(line.startswith(b"#disconnect") for line in lines)
    assert status == 0, err


async def test_port_in_use_fails_clearly() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "katcpx_devices.sim",
            "weather",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 1
    assert f"cannot start weather on 127.0.0.1:{port}" in err.decode()


def _can_build_wheels() -> bool:
    import importlib.util

    import setuptools

    if importlib.util.find_spec("wheel") is not None:
        return True
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)  # setuptools ships bdist_wheel itself from 70.1


def _install_non_editable(target: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """Install the repository into ``target`` the way ``pip install .`` lays it out.

    Uses pip (offline: no build isolation, no dependencies) when wheels can be built here;
    otherwise setuptools' own build of the same configuration, which is what goes into the
    wheel. Neither writes into the source tree.
    """
    if _can_build_wheels():
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--no-compile", "--target", str(target), str(ROOT),
        ]  # fmt: skip
    else:
        argv = [
            "setup.py", "-q", "egg_info", "--egg-base", str(scratch), "build",
            "--build-base", str(scratch / "build"), "--build-lib", str(target),
        ]  # fmt: skip
        cmd = [
            sys.executable, "-W", "ignore", "-c",
            f"import sys, setuptools; sys.argv = {argv!r}; setuptools.setup()",
        ]  # fmt: skip
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.mark.slow
def test_non_editable_install_runs(tmp_path: Path) -> None:
    """A plain (non-editable) install carries katcpx_devices and its servers, and runs."""
    target = tmp_path / "site"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    build = _install_non_editable(target, scratch)
    assert build.returncode == 0, build.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import katcpx_devices, katcpx_devices.servers, katcpx_devices.sim;"
            "print(katcpx_devices.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).is_relative_to(target)
    helped = subprocess.run(
        [sys.executable, "-m", "katcpx_devices.sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert helped.returncode == 0, helped.stderr
    assert "site" in helped.stdout and "antenna" in helped.stdout
