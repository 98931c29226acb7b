"""The monitoring examples of README.md and docs/monitoring.md, each run as its own process.

Shell blocks run with their fixed ports (7147..., 9100, 9147) moved to free ones, so the test
never collides with a real site; everything else is run as written.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import eventually, fetch
from .procs import Proc, free_port, free_port_run

ROOT = Path(__file__).resolve().parents[2]
DOCS = {"README.md": ROOT / "README.md", "monitoring.md": ROOT / "docs" / "monitoring.md"}
PROGRAMS = {
    "katcpx-sim": [sys.executable, "-m", "katcpx_devices.sim"],
    "katcpx-exporter": [sys.executable, "-m", "katcpx.metrics.exporter"],
}


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.DOTALL)


def test_metrics_server_example_runs_as_written() -> None:
    (block,) = [b for b in blocks(DOCS["monitoring.md"], "python") if "start_metrics_server" in b]
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics\n", result.stdout), result.stdout


@pytest.mark.parametrize("doc", sorted(DOCS))
async def test_exporter_example_runs(doc: str) -> None:
    (block,) = [b for b in blocks(DOCS[doc], "sh") if "katcpx-exporter" in b]
    base = free_port_run(5)
    moved = {"9100": str(free_port()), "9147": str(free_port())}
    moved.update({str(7147 + i): str(base + i) for i in range(5)})
    text = re.sub(r"\b(7147|7148|7149|7150|7151|9100|9147)\b", lambda m: moved[m.group(1)], block)
    procs: list[Proc] = []
    try:
        exporter_url = sim_metrics = None
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            argv = shlex.split(line.rstrip(" &"))
            program = argv[0]
            assert program in PROGRAMS, line
            if program == "katcpx-sim":
                argv += ["--base-port", str(base)]
            proc = await Proc.start(program, *PROGRAMS[program], *argv[1:])
            procs.append(proc)
            if program == "katcpx-sim":
                if "--metrics-port" in argv:
                    sim_metrics = (await proc.wait_line(r"metrics at (http://\S+)")).group(1)
                await proc.wait_line("^Ctrl-C")
            else:
                exporter_url = (await proc.wait_line(r"at (http://\S+)")).group(1)
        assert exporter_url is not None
        devices = re.findall(r"(\w+)=127\.0\.0\.1:", text)
        assert devices

        async def all_up() -> object:
            s = await fetch(exporter_url)
            return all(s.value("katcp_device_up", device=d) == 1 for d in devices) and s

        scrape = await eventually(all_up, what="every device up")
        assert all(scrape.sensors(d) for d in devices)
        if sim_metrics is not None:
            health = await fetch(sim_metrics)
            assert health.value("katcpx_server_connections", server="psu") == 1
    finally:
        codes = [await p.stop() for p in reversed(procs)]
    assert codes == [0] * len(procs), [p.lines for p in procs]
