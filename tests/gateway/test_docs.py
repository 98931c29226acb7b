"""Every command of docs/scale-out.md (and the README's scale-out section) run as written.

Each command line runs as its own process through the shell, with only the fixed ports
swapped for free ones (6379 for Redis, 7147-7151 for ``katcpx-sim site``, 8080/8081 for the
web instances), as tests/test_readme.py swaps 7147 for 0. Long-running commands (servers) are
started in order and awaited until ready; the others must exit with status 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, env
from .redis_server import free_port

DOC = ROOT / "docs" / "scale-out.md"
README = ROOT / "README.md"
SITE = ("antenna", "psu", "weather", "cryo", "digitiser")
READY = {
    "katcpx-sim": "Ctrl-C to stop",
    "katcpx-gateway": "katcpx-gateway: carrying",
    "katcpx-web": "katcpx-web: serving",
}
WAIT = 60.0  # generous: the machine may be shared

pytestmark = pytest.mark.slow


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.DOTALL)


def commands(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip() and line[0] != "#"]


class Runner:
    """Runs doc commands with the ports swapped; stops what it started."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.ports = {"6379": free_port(), "8080": free_port(), "8081": free_port()}
        self.procs: list[subprocess.Popen[str]] = []
        self.env = env()
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env["PATH"]])

    def swap(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"\b{old}\b", str(new), text)
        return text

    def start(self, line: str) -> None:
        """Start a server command and wait until it is ready."""
        line = self.swap(line)
        if line.startswith("katcpx-sim site"):
            line += " --base-port 0"  # free ports; the table it prints says which
        proc = subprocess.Popen(
            line,
            shell=True,
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        if line.startswith("redis-server"):
            port = int(re.search(r"--port (\d+)", line).group(1))  # type: ignore[union-attr]
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    return
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, line
                    time.sleep(0.05)
        expect = READY[line.split()[0]]
        assert proc.stdout is not None
        seen = []
        while True:
            out = proc.stdout.readline()  # the commands print their ready line at once
            assert out, f"{line!r} exited: {''.join(seen)}"
            seen.append(out)
            match = re.match(r"(\w+)\s+\S*:(\d+)\s", out)
            if match and match.group(1) in SITE:
                self.ports[str(7147 + SITE.index(match.group(1)))] = int(match.group(2))
            if expect in out:
                break
        # Keep reading its output so that it never blocks on a full pipe.
        import threading

        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # type: ignore[union-attr]

    def run(self, line: str) -> str:
        """Run a one-shot command; its output (it must succeed)."""
        done = subprocess.run(
            self.swap(line),
            shell=True,
            cwd=self.cwd,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=WAIT,
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        return done.stdout

    def get(self, port_key: str, path: str) -> object:
        url = f"http://127.0.0.1:{self.ports[port_key]}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def until_synced(self, port_key: str, device: str) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if self.get(port_key, f"/api/devices/{device}")["synced"]:  # type: ignore[index]
                    return
            except OSError:
                pass  # 404 until the instance has read the device from Redis
            if time.monotonic() > deadline:
                try:
                    devices = self.get(port_key, "/api/devices")
                except OSError as exc:
                    devices = exc
                raise AssertionError(f"{device} never synced on {port_key}: {devices} {self.ports}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.stop()


def test_one_machine(runner: Runner) -> None:
    servers, requests = blocks(DOC, "sh")[:2]
    readme = [b for b in blocks(README, "sh") if "katcpx-gateway" in b]
    assert readme == [servers], "the README's scale-out commands are the doc's"
    for line in commands(servers):
        runner.start(line)
    runner.until_synced("8080", "psu")
    runner.until_synced("8081", "psu")
    post, history = commands(requests)
    deadline = time.monotonic() + WAIT
    while True:  # a starved machine may time the request out: the command is run again
        answer = json.loads(runner.run(post))
        if answer.get("code") != "gateway_unavailable" and answer.get("status") != "timeout":
            break
        assert time.monotonic() < deadline, answer
    assert answer.get("ok") and answer["reply"] == ["12.5"], answer
    deadline = time.monotonic() + WAIT
    while True:
        body = json.loads(runner.run(history))
        if any(r["value"] == 12.5 for r in body["readings"]):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["source"] == "redis" and len(body["readings"]) <= 5


def test_several_machines(runner: Runner) -> None:
    runner.start("katcpx-sim site")  # the devices the how-to assumes
    sh = blocks(DOC, "sh")[2:]
    (toml,) = blocks(DOC, "toml")
    (redis_line,) = commands(sh[0])
    runner.start(redis_line)
    (runner.cwd / "site.toml").write_text(runner.swap(toml))
    (gateway,) = commands(sh[1])
    runner.start(gateway)
    webs = commands(sh[2])
    assert len(webs) == 2
    for line in webs:
        runner.start(line)
    for port_key in ("8080", "8081"):
        runner.until_synced(port_key, "weather")
        devices = runner.get(port_key, "/api/devices")
        assert sorted(d["device"] for d in devices) == ["psu", "weather"]  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_diagram_command(tmp_path: Path) -> None:
    (line,) = re.findall(r"`(dot -Tpng [^`]*)`", DOC.read_text())
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "scale-out.dot", tmp_path / "docs")
    subprocess.run(line, shell=True, cwd=tmp_path, check=True, timeout=60)
    assert (tmp_path / "docs" / "scale-out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
