"""docs/security.md runs as written: every block, in order, each as its own process.

The certificates are made with the page's OpenSSL commands in a temporary folder; the site's
ports (7147.., and 8443 for the bridge) are replaced by free ones the programs pick (port 0)
and print, which is the only change.
Shell blocks of one command per line run line by line; the certificate block runs whole
(it is one script). ``text`` blocks show output and are compared where they are exact.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("curl") is None,
    reason="needs the openssl and curl commands (.ci/run installs them)",
)


def blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.DOTALL)


class Background:
    """A long-running command; its output lines are collected by a thread."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], ready: str) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"{command!r} exited: {''.join(self.output)}")
            self.output.append(line)
            if ready in line:
                return

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def lines_of(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_security_page_runs_as_written(tmp_path: Path) -> None:
    # Free ports: the site and the bridge pick their own (port 0) and print them.
    psu_port = web_port = 0

    def ports(text: str) -> str:
        text = text.replace("--base-port 7147", "--base-port 0").replace("8443", str(web_port))
        return text.replace("7148", str(psu_port))

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    found = blocks()
    assert [lang for lang, _ in found] == [
        "sh",
        "toml",
        "sh",
        "text",
        "sh",
        "text",
        "sh",
        "sh",
        "python",
        "text",
    ]
    (
        certs_sh,
        access_toml,
        sim_sh,
        banner_text,
        cmd_sh,
        cmd_text,
        web_sh,
        curl_sh,
        python_block,
        python_text,
    ) = (text for _, text in found)

    # Certificates: one script.
    made = run(certs_sh, tmp_path, env)
    assert made.returncode == 0, made.stderr
    for name in ("ca", "device", "operator", "observer", "bridge"):
        assert (tmp_path / f"{name}.pem").exists()
    (tmp_path / "access.toml").write_text(access_toml)

    (sim_command,) = lines_of(sim_sh)
    sim = Background(ports(sim_command), tmp_path, env, "Ctrl-C to stop")
    web = None
    try:
        banner = "".join(sim.output)
        psu_port = int(re.search(r"^psu +127\.0\.0\.1:(\d+)", banner, re.M).group(1))
        assert "TLS, client certificates required; access policy access.toml" in banner

        commands = lines_of(cmd_sh)
        results = [run(ports(c), tmp_path, env) for c in commands]
        codes = [r.returncode for r in results]
        assert codes == [0, 0, 1, 2], [(r.stdout, r.stderr) for r in results]
        assert results[0].stdout.strip() == "!voltage ok 12.0"
        assert "voltage-setpoint nominal 12.0" in results[1].stdout
        assert "needs role control; this client has role read" in results[2].stdout
        assert "client certificate" in results[3].stderr
        assert banner_text.splitlines()[1] in banner
        shown = cmd_text
        assert shown.splitlines()[0] == results[0].stdout.strip()
        assert shown.splitlines()[3] == results[2].stdout.strip()
        assert ports(shown.splitlines()[4]) == results[3].stderr.strip()

        token_command, web_command = lines_of(web_sh)
        assert run(token_command, tmp_path, env).returncode == 0
        web = Background(ports(web_command), tmp_path, env, "serving psu on https://")
        web_port = int(re.search(r"https://[^:]+:(\d+)/", "".join(web.output)).group(1))
        # The bridge connects to the device (as "bridge", a control grant) in the background.
        deadline = time.monotonic() + TIMEOUT
        read_cmd, refused_cmd, change_cmd = lines_of(curl_sh)
        while True:
            read = run(ports(read_cmd), tmp_path, env)
            if read.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # polling a subprocess: no event to wait on
        assert read.returncode == 0, read.stdout + read.stderr
        assert '"value":12.0' in read.stdout
        refused = run(ports(refused_cmd), tmp_path, env)
        assert '"code":"unauthorized"' in refused.stdout
        change = run(ports(change_cmd), tmp_path, env)
        assert change.returncode == 0 and '"ok":true' in change.stdout, change.stdout

        script = tmp_path / "heater.py"
        script.write_text(python_block)
        out = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == python_text
    finally:
        if web is not None:
            web.stop()
        sim.stop()


def test_readme_security_commands_are_the_tested_ones() -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    section = readme.split("## Security: TLS and access control", 1)[1].split("\n## ", 1)[0]
    (commands,) = re.findall(r"```text\n(.*?)```", section, re.DOTALL)
    tested = "\n".join(text for lang, text in blocks() if lang == "sh")
    for line in commands.splitlines():
        assert line in tested, line
