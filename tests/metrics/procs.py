"""Real processes for the end-to-end metrics tests: katcpx-sim, katcpx-exporter and Debian's
Prometheus, each on free ports on 127.0.0.1, read line by line with timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import TIMEOUT

ROW = re.compile(r"^(\S+)\s+(\S+):(\d+)\s+(\S+)$")
URL = re.compile(r"(http://\S+)")
PROMETHEUS = "/usr/bin/prometheus"


def prometheus_binary() -> str:
    """Debian's prometheus; skipped (with the reason) only when absent outside CI."""
    found = shutil.which("prometheus") or (PROMETHEUS if os.path.exists(PROMETHEUS) else None)
    if found:
        return found
    message = "Debian's prometheus is not installed (apt-get install prometheus; .ci/run does)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Proc:
    """A subprocess whose output is read a line at a time."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []

    @classmethod
    async def start(cls, name: str, *argv: str, cwd: str | None = None) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
        )
        return cls(proc, name)

    async def readline(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not raw:
            raise AssertionError(f"{self.name} exited: {''.join(self.lines)}")
        line = raw.decode(errors="replace").rstrip("\n")
        self.lines.append(line + "\n")
        return line

    async def wait_line(self, pattern: str) -> re.Match[str]:
        while True:
            m = re.search(pattern, await self.readline())
            if m:
                return m

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)


async def start_sim(*extra: str) -> tuple[Proc, dict[str, int], str]:
    """``katcpx-sim site`` on free ports with its metrics port: (proc, ports, metrics URL)."""
    sim = await Proc.start(
        "katcpx-sim",
        sys.executable, "-m", "katcpx_devices.sim", "site", "--base-port", "0",
        "--metrics-port", "0", *extra,
    )  # fmt: skip
    ports: dict[str, int] = {}
    metrics = ""
    while True:
        line = await sim.readline()
        if line.startswith("Ctrl-C"):
            break
        if "metrics at" in line:
            metrics = URL.search(line).group(1)  # type: ignore[union-attr]
        m = ROW.match(line)
        if m and m.group(1) != "NAME":
            ports[m.group(1)] = int(m.group(3))
    assert metrics, sim.lines
    return sim, ports, metrics


async def start_exporter(devices: dict[str, int], *extra: str) -> tuple[Proc, str]:
    """``katcpx-exporter`` for `devices` (name -> port) on a free port: (proc, metrics URL)."""
    specs = [f"{name}=127.0.0.1:{port}" for name, port in devices.items()]
    exporter = await Proc.start(
        "katcpx-exporter",
        sys.executable, "-m", "katcpx.metrics._exporter", *specs,
        "--listen", "127.0.0.1:0", *extra,
    )  # fmt: skip
    m = await exporter.wait_line(r"at (http://\S+)")
    return exporter, m.group(1)


class Prometheus:
    """Debian's prometheus on a free port, scraping `targets` every second."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    async def start(cls, directory: Path, targets: dict[str, str]) -> Prometheus:
        binary = prometheus_binary()
        jobs = []
        for job, url in targets.items():
            parsed = urllib.parse.urlparse(url)
            jobs.append(
                {
                    "job_name": job,
                    "metrics_path": parsed.path or "/metrics",
                    "static_configs": [{"targets": [parsed.netloc]}],
                }
            )
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": jobs,
        }
        # JSON is YAML: no YAML library needed to write the config.
        (directory / "prometheus.yml").write_text(json.dumps(config, indent=2))
        port = free_port()
        proc = await Proc.start(
            "prometheus",
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            cwd=str(directory),
        )
        prom = cls(proc, port)
        await prom.proc.wait_line("Server is ready to receive web requests")
        return prom

    async def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                return json.loads(response.read())

        return await asyncio.to_thread(fetch)

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        answer = await self.get("/api/v1/query", query=promql)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    async def drain(self) -> None:
        """Keep reading prometheus's log so its pipe never fills."""
        while True:
            try:
                await self.proc.readline()
            except asyncio.TimeoutError:
                continue  # quiet for a while: keep listening
            except AssertionError:
                return  # it exited


def free_port_run(count: int) -> int:
    """A base port with `count` consecutive ports free now (another process may still race)."""
    for _ in range(100):
        base = free_port()
        if base + count >= 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no run of free ports")
