"""Make ``docs/web-dashboard.png``: katcpx-web's dashboard against the simulated site.

Run from the repository root (needs the ``test`` extra for selenium, and Debian's chromium
and chromium-driver)::

    python docs/make_screenshot.py [OUT.png] [--settle SECONDS]

It starts ``katcpx-sim site`` and ``katcpx-web`` on free ports, opens the dashboard in
headless Chromium, filters the sensors, plots the weather station's temperature, opens the
antenna's ``?target`` form, waits `--settle` seconds for the plot to fill, and saves the PNG.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docs.docs_runner import child_env, port_free  # noqa: E402
from tests.web import browser  # noqa: E402

DEVICES = ("antenna", "psu", "weather", "cryo", "digitiser")


def _start(args: list[str], ready: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a child process and read its output up to a line starting with `ready`."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(ready):
            return proc, lines
    raise SystemExit(f"{' '.join(args)} exited:\n{''.join(lines)}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "web-dashboard.png"))
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before the shot")
    args = parser.parse_args(argv)
    problem = browser.missing()
    if problem:
        print(f"make_screenshot.py: {problem}", file=sys.stderr)
        return 2
    # The documented ports when they are free (the picture then shows them), else any.
    base = "7147" if all(port_free(p) for p in range(7147, 7152)) else "0"
    sim, table = _start(
        ["-m", "katcpx_devices.sim", "site", "--base-port", base, "--seed", "1", "--speed", "5"],
        "Ctrl-C to stop",
    )
    web = None
    try:
        ports = dict(re.findall(r"^(\w+)\s+\S+:(\d+)\s", "".join(table), re.M))
        specs = [f"{name}=127.0.0.1:{ports[name]}" for name in DEVICES]
        web, lines = _start(["-m", "katcpx.web", *specs, "--port", "0"], "katcpx-web: serving")
        url = lines[-1].rsplit(" on ", 1)[1].strip()
        browser.screenshot(
            url, args.out, "^(psu|weather)", "weather/temperature", "target", args.settle
        )
        print(f"make_screenshot.py: wrote {args.out} from {url}")
    finally:
        if web is not None:
            _stop(web)
        _stop(sim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
