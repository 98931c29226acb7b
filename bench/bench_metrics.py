"""What metrics cost a katcpx server: the same server with metrics off and on, in one run.

Two processes run ``servers/katcp_style_server.py katcpx``, one with ``--metrics`` (the
server's ``start_metrics_server``: every request, connection and sent line is counted). The
load generator of ``bench_server.py`` drives both in turn, round after round:

- pipelined ``?watchdog`` with message ids on 1 and on 8 connections (the issue's measure);
- fan-out: 10 clients with ``event`` sampling on 1000 sensors (every ``#sensor-status`` line
  is counted as an inform and as bytes written).

Each rate is measured two ways: requests per wall-clock second, and requests per second of
the server process's own CPU time (Linux ``/proc``), which stays steady when other work shares
the machine. Target: with metrics on, pipelined throughput per CPU second drops by less than
10 % (ratio on/off >= 0.90), judged on the median of per-round ratios. After the rounds the metrics page of the server is
scraped once and checked to hold the requests it served.

Last, ``metrics_inprocess.py`` times the server's request path alone (no sockets, no load
generator) in one process, per CPU second: the upper bound of the relative cost, printed for
information (a real request also pays for its socket reads and writes).

``--control`` runs both servers with metrics off (an A/A run): the ratios it prints are this
machine's noise floor. Run from the repository root:
``python bench/bench_metrics.py [--quick] [--rounds N] [--control]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import metrics_inprocess
from _peers import Row, check_target, print_table
from bench_server import SERVERS, ServerProcess, run_scenario

SCENARIOS = {
    "pipelined_1": ("pipelined ?watchdog, 1 connection", "req/s", 0.90),
    "pipelined_8": ("pipelined ?watchdog, 8 connections", "req/s", 0.90),
    "fan_out": ("fan-out: 10 clients x 1000 event sensors", "informs/s", 0.0),
}


def cpu_seconds(server: ServerProcess) -> float:
    """CPU time (user + system) the server process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics_port(server: ServerProcess) -> int:
    """The metrics port the server printed with its KATCP port."""
    return int(server.metrics_port)


def paired_ratio(per: dict[str, list[float]]) -> float:
    """Median over rounds of the metrics-on rate divided by the metrics-off rate."""
    return statistics.median(
        a / b for a, b in zip(per["metrics on"], per["metrics off"], strict=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less load per round (smoke test)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="A/A run: both servers with metrics off, to show this machine's noise floor",
    )
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    script = str(SERVERS / "katcp_style_server.py")
    servers = {
        "metrics off": ServerProcess("metrics off", [sys.executable, script, "katcpx"]),
        "metrics on": ServerProcess(
            "metrics on",
            [sys.executable, script, "katcpx", *([] if args.control else ["--metrics"])],
        ),
    }
    rates: dict[str, dict[str, list[float]]] = {sc: {n: [] for n in servers} for sc in SCENARIOS}
    cpu_rates: dict[str, dict[str, list[float]]] = {
        sc: {n: [] for n in servers} for sc in SCENARIOS
    }
    try:
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds} ...", flush=True)
            for scenario in SCENARIOS:
                # Alternate which goes first, so neither always gets the warmer machine.
                order = list(servers.items())
                if round_no % 2:
                    order.reverse()
                for name, server in order:
                    cpu = cpu_seconds(server)
                    start = time.perf_counter()
                    rate = asyncio.run(run_scenario(scenario, server.port, scale))
                    wall = time.perf_counter() - start
                    rates[scenario][name].append(rate)
                    # Work done per second of the server's own CPU: steady when other
                    # processes share the machine, unlike the wall-clock rate.
                    used = max(cpu_seconds(server) - cpu, 1e-3)
                    cpu_rates[scenario][name].append(rate * wall / used)
        page = ""
        if not args.control:
            url = f"http://127.0.0.1:{metrics_port(servers['metrics on'])}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                page = response.read().decode()
    finally:
        for server in servers.values():
            server.stop()

    ok = True
    for scenario, (title, unit, target) in SCENARIOS.items():
        per = rates[scenario]
        rows = [Row(name, max(values)) for name, values in per.items()]
        print_table(title + " (best round)", rows, baseline="metrics off", unit=unit)
        wall = paired_ratio(per)
        print(f"  info  {title}: on/off wall-clock rate, median of per-round ratios {wall:.3f}x")
        cpu = paired_ratio(cpu_rates[scenario])
        label = f"{title}: on/off per server CPU second, median of per-round ratios"
        if target:
            ok &= check_target(label, cpu, target)
        else:
            print(f"  info  {label} {cpu:.3f}x")
    counted = [
        line
        for line in page.splitlines()
        if line.startswith("katcpx_server_requests_total") and 'request="watchdog"' in line
    ]
    # The server path alone, in one process (see metrics_inprocess.py): the steadiest figure.
    print("\nserver request path in one process, per CPU second (31 rounds) ...", flush=True)
    inproc, ratio = metrics_inprocess.run(control=args.control)
    print_table(
        "pipelined ?watchdog, server path only (best round)",
        [Row(name, max(values)) for name, values in inproc.items()],
        baseline="metrics off",
        unit="req/s",
    )
    # Informational: this leaves out the socket and kernel work every real request pays,
    # so it is the upper bound of the relative cost, not the target.
    print(f"  info  server path only: on/off, median of per-round ratios {ratio:.3f}x")
    if not args.control:
        print("  scraped afterwards:", *counted)
        ok &= bool(counted) and float(counted[0].split()[-1]) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
