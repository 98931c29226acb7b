"""Device server benchmark: katcpx against aiokatcp and katcp-python 0.9.3, in one run.

Each server runs in its own process (katcp-python from its tornado-4 venv) and serves the same
1000 float sensors (see ``servers/``). One load generator, identical for all three, drives it
over raw loopback sockets and counts reply lines, so the numbers measure the servers:

- sequential ``?watchdog`` round trips (median and 99th percentile latency);
- pipelined ``?watchdog`` with message ids on 1 and on 8 connections;
- pipelined ``?ping``, a device request (handler thread in the default mode), 1 connection;
- a full ``?sensor-value`` dump of 1000 sensors;
- fan-out: 10 clients with ``event`` sampling on all 1000 sensors, then ``?bump`` makes the
  server change every sensor repeatedly; the rate is ``#sensor-status`` lines received per
  second across the 10 clients.

Targets (katcpx vs aiokatcp on a 2-core machine): pipelined (async mode, 1 and 8
connections) >= 5x, fan-out >= 8x, sensor-value dump >= 3x, median latency no worse; the
device request in handler-thread mode >= 4x katcp-python's threaded server.
``--only SCENARIO`` (repeatable) runs a subset.

Run from the repository root: ``python bench/bench_server.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _peers import REPO_ROOT, Row, check_target, ensure_katcp_python_venv, print_table

SERVERS = Path(__file__).resolve().parent / "servers"
N_SENSORS = 1000


class ServerProcess:
    """One benchmark server in a subprocess; stops when its stdin closes."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        # Server logs go to a file: katcp-python logs tracebacks for clients that simply
        # disconnected, which would bury the results.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO_ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"{name} server did not start:\n{self.log.read()}")
        announced = json.loads(line)
        self.port = int(announced["port"])
        #: Port of the server's metrics page (bench_metrics.py), or None.
        self.metrics_port = announced.get("metrics_port")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def connect(
    port: int, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect (over TLS with `tls`) and wait until the server's connect-time informs are done."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, limit=2**24, ssl=tls, server_hostname="127.0.0.1" if tls else None
    )
    writer.write(b"?watchdog[1]\n")
    await read_until_count(reader, b"!watchdog[1]", 1)
    return reader, writer


async def read_until_count(reader: asyncio.StreamReader, token: bytes, count: int) -> bytes:
    """Read until `token` has been seen `count` times; return the last chunk's tail."""
    seen = 0
    carry = b""
    while seen < count:
        data = await reader.read(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        data = carry + data
        seen += data.count(token)
        # Keep a tail so a token split across reads is still counted exactly once.
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        seen -= carry.count(token)
    return carry


async def sequential_latency(port: int, count: int) -> tuple[float, float]:
    reader, writer = await connect(port)
    times = []
    for i in range(count):
        start = time.perf_counter()
        writer.write(b"?watchdog[%d]\n" % (i + 2))
        await reader.readuntil(b"\n")
        times.append(time.perf_counter() - start)
    writer.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


async def pipelined(
    port: int,
    connections: int,
    per_connection: int,
    window: int = 500,
    tls: ssl.SSLContext | None = None,
    request: bytes = b"watchdog",
) -> float:
    conns = [await connect(port, tls) for _ in range(connections)]

    async def drive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        done = 0
        carry = b""
        while done < per_connection:
            burst = min(window - (sent - done), per_connection - sent)
            if burst > 0:
                writer.write(b"".join(b"?%s[%d]\n" % (request, sent + k + 2) for k in range(burst)))
                sent += burst
            data = await reader.read(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            done += data[:cut].count(b"!%s[" % request)

    start = time.perf_counter()
    await asyncio.gather(*(drive(r, w) for r, w in conns))
    elapsed = time.perf_counter() - start
    for _, writer in conns:
        writer.close()
    return connections * per_connection / elapsed


async def sensor_value_dump(port: int, repeats: int) -> float:
    reader, writer = await connect(port)
    start = time.perf_counter()
    for i in range(repeats):
        writer.write(b"?sensor-value[%d]\n" % (i + 2))
        await read_until_count(reader, b"!sensor-value[", 1)
    elapsed = time.perf_counter() - start
    writer.close()
    return repeats / elapsed


async def fan_out(port: int, clients: int, bumps: int) -> float:
    conns = [await connect(port) for _ in range(clients)]
    for _reader, writer in conns:
        writer.write(
            b"".join(b"?sensor-sampling[%d] s%04d event\n" % (i + 2, i) for i in range(N_SENSORS))
        )
    # Each subscription first sends the current value, then its reply.
    for reader, _ in conns:
        await read_until_count(reader, b"!sensor-sampling[", N_SENSORS)
    control_reader, control_writer = await connect(port)
    expected = bumps * N_SENSORS

    async def drain(reader: asyncio.StreamReader) -> None:
        await read_until_count(reader, b"#sensor-status", expected)

    start = time.perf_counter()
    control_writer.write(b"?bump[2] %d\n" % bumps)
    await asyncio.gather(*(drain(r) for r, _ in conns))
    elapsed = time.perf_counter() - start
    for _, writer in [*conns, (control_reader, control_writer)]:
        writer.close()
    return clients * expected / elapsed


#: Scenario name -> (what it measures, unit, target ratio vs aiokatcp, run(port, scale) -> rate).
SCENARIOS: dict[str, tuple[str, str, float]] = {
    "latency": ("sequential ?watchdog, median round trip", "1/s", 1.0),
    "pipelined_1": ("pipelined ?watchdog, 1 connection", "req/s", 5.0),
    "pipelined_8": ("pipelined ?watchdog, 8 connections", "req/s", 5.0),
    # ?ping is a device request: in katcpx's and katcp-python's default (handler-thread)
    # mode it crosses to the handler thread, unlike the read-only ?watchdog.
    "pipelined_device": ("pipelined ?ping (device request), handler-thread mode", "req/s", 3.0),
    "sensor_value": ("?sensor-value of 1000 sensors", "dumps/s", 3.0),
    "fan_out": ("fan-out: 10 clients x 1000 event sensors", "informs/s", 8.0),
}


async def run_scenario(name: str, port: int, scale: float) -> float:
    """Run one scenario against the server on `port`; return its rate (higher is better)."""
    if name == "latency":
        median, _p99 = await sequential_latency(port, int(1000 * scale))
        return 1.0 / median
    if name == "pipelined_1":
        return await pipelined(port, 1, int(20000 * scale))
    if name == "pipelined_8":
        return await pipelined(port, 8, int(4000 * scale))
    if name == "pipelined_device":
        return await pipelined(port, 1, int(20000 * scale), request=b"ping")
    if name == "sensor_value":
        return await sensor_value_dump(port, max(1, int(20 * scale)))
    if name == "fan_out":
        return await fan_out(port, 10, max(1, int(5 * scale)))
    raise ValueError(name)


def _servers_for(scenario: str) -> tuple[str, str, str]:
    """katcpx, aiokatcp and katcp-python servers of a scenario (katcpx first)."""
    if scenario == "pipelined_device":
        return ("katcpx threaded", "aiokatcp", "katcp-python threaded")
    return ("katcpx", "aiokatcp", "katcp-python")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less load per round (smoke test)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run only these scenarios"
    )
    args = parser.parse_args()
    scenarios = {sc: SCENARIOS[sc] for sc in (args.only or SCENARIOS)}
    scale = 0.25 if args.quick else 1.0
    kp_python = str(ensure_katcp_python_venv())
    argvs = {
        "katcpx": [sys.executable, str(SERVERS / "katcp_style_server.py"), "katcpx"],
        "aiokatcp": [sys.executable, str(SERVERS / "aiokatcp_server.py")],
        "katcp-python": [kp_python, str(SERVERS / "katcp_style_server.py"), "katcp"],
    }
    # All servers stay up and every round measures each of them in turn, so a burst of load
    # from elsewhere on the machine hits all of them in that round, not just one.
    # The device-request scenario compares the handler-thread (default) modes.
    argvs["katcpx threaded"] = [*argvs["katcpx"], "threaded"]
    argvs["katcp-python threaded"] = [*argvs["katcp-python"], "threaded"]
    needed = {name for sc in scenarios for name in _servers_for(sc)}
    servers = {name: ServerProcess(name, argv) for name, argv in argvs.items() if name in needed}
    rates: dict[str, dict[str, list[float]]] = {
        sc: {n: [] for n in _servers_for(sc)} for sc in scenarios
    }
    try:
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds} ...", flush=True)
            for scenario in scenarios:
                for name in _servers_for(scenario):
                    server = servers[name]
                    rate = asyncio.run(run_scenario(scenario, server.port, scale))
                    rates[scenario][name].append(rate)
    finally:
        for server in servers.values():
            server.stop()

    ok = True
    for scenario, (title, unit, target) in scenarios.items():
        per_impl = rates[scenario]
        rows = [Row(name, max(values)) for name, values in per_impl.items()]
        print_table(title + " (best round)", rows, unit=unit)
        ours, theirs, kp = _servers_for(scenario)
        paired = statistics.median(
            k / a for k, a in zip(per_impl[ours], per_impl[theirs], strict=True)
        )
        ok &= check_target(f"{title}, median of per-round ratios", paired, target)
        if scenario == "pipelined_device":
            vs_kp = statistics.median(
                k / p for k, p in zip(per_impl[ours], per_impl[kp], strict=True)
            )
            ok &= check_target(f"{title}, vs katcp-python's threaded server", vs_kp, 4.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
