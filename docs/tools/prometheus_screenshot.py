"""Make docs/prometheus-graph.png: Prometheus graphing a simulated sensor.

Starts ``katcpx-sim site`` (10 times real time) and ``katcpx-exporter`` in front of its
weather station, Debian's ``prometheus`` scraping the exporter every second, lets a minute of
data accumulate, then has headless Chromium photograph Prometheus' graph page for the
station's wind speed. Everything listens on free ports on 127.0.0.1 and lives in a
temporary directory.

Run from the repository root: ``python docs/tools/prometheus_screenshot.py [--seconds 60]``.
Needs ``/usr/bin/prometheus`` and ``/usr/bin/chromium`` (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "prometheus-graph.png"
QUERY = 'katcp_sensor_value{device="weather",sensor="wind-speed"}'
sys.path.insert(0, str(ROOT))  # the browser flags are the dashboard screenshot's own
from tests.web.browser import CHROMIUM, FLAGS  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 30.0) -> re.Match[str]:
    """Read `proc`'s output until a line matches `pattern`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"{proc.args[0]}: no line matching {pattern!r}:\n{''.join(seen)}")


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.loads(response.read())["data"]["result"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="data to gather first")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNG")
    args = parser.parse_args()
    procs: list[subprocess.Popen[str]] = []

    def start(*argv: str, **kw: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
        )  # type: ignore[call-overload]
        procs.append(proc)
        return proc

    with tempfile.TemporaryDirectory(prefix="katcpx-prom-") as tmp:
        try:
            sim = start(
                sys.executable, "-m", "katcpx_devices.sim", "site", "--base-port", "0",
                "--speed", "10", "--seed", "3", "--channels", "64",
            )  # fmt: skip
            weather = int(read_until(sim, r"^weather\s+\S+:(\d+)").group(1))
            exporter = start(
                sys.executable, "-m", "katcpx.metrics._exporter",
                f"weather=127.0.0.1:{weather}", "--listen", "127.0.0.1:0",
            )  # fmt: skip
            target = read_until(exporter, r"at http://(\S+)/metrics").group(1)
            config = {
                "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                "scrape_configs": [
                    {"job_name": "katcpx-exporter", "static_configs": [{"targets": [target]}]}
                ],
            }
            (Path(tmp) / "prometheus.yml").write_text(json.dumps(config))
            port = free_port()
            start(
                "/usr/bin/prometheus",
                f"--config.file={tmp}/prometheus.yml",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
                cwd=tmp,
            )
            base = f"http://127.0.0.1:{port}"
            read_until(procs[-1], "Server is ready to receive web requests")
            deadline = time.monotonic() + 30
            while not query(base, QUERY):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Prometheus never saw {QUERY}")
                time.sleep(0.5)
            print(f"gathering {args.seconds:g} s of data ...", flush=True)
            time.sleep(args.seconds)
            page = f"{base}/graph?" + urllib.parse.urlencode(
                {"g0.expr": QUERY, "g0.tab": "0", "g0.range_input": "1m", "g0.stacked": "0"}
            )
            with tempfile.TemporaryDirectory(prefix="katcpx-chromium-") as profile:
                subprocess.run(
                    [
                        CHROMIUM,
                        *FLAGS,
                        "--hide-scrollbars",
                        f"--user-data-dir={profile}",
                        "--window-size=1280,860",
                        "--virtual-time-budget=15000",
                        f"--screenshot={args.out}",
                        page,
                    ],
                    check=True,
                    timeout=120,
                    capture_output=True,
                )
            print(f"wrote {args.out}")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
