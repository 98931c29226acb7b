"""Client benchmark: katcpx against aiokatcp and katcp-python 0.9.3, in one run.

One benchmark server runs in its own process (``servers/``; katcpx's by default), so the
client process's CPU time is the clients' alone. Measured, as requests per second and client
CPU microseconds per request (process CPU time over the run, all threads):

- sequential ``?watchdog``: katcpx ``BlockingClient.blocking_request``, katcp-python's
  ``BlockingClient.blocking_request`` (in its tornado-4 venv) and aiokatcp's ``Client.request``;
- 100 requests in flight: katcpx's async ``AsyncClient.call`` against aiokatcp's ``request``.

Targets: katcpx async CPU per request <= 0.5x aiokatcp's; katcpx ``BlockingClient``
sequential rate >= 2x katcp-python's.

Run from the repository root: ``python bench/bench_client.py [--quick] [--server aiokatcp]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from _peers import Row, check_target, ensure_katcp_python_venv, print_table, run_katcp_python
from bench_server import SERVERS, ServerProcess

KATCP_PYTHON_SEQUENTIAL = """
import json, sys, time
import katcp
args = json.load(sys.stdin)
client = katcp.BlockingClient("127.0.0.1", args["port"])
client.start()
client.wait_protocol(10)
request = katcp.Message.request
for _ in range(200):
    client.blocking_request(request("watchdog"))
n = args["count"]
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(n):
    reply, informs = client.blocking_request(request("watchdog"))
    assert reply.reply_ok(), reply
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
client.stop()
client.join(10)
print(json.dumps({"rate": n / wall, "cpu_us": cpu / n * 1e6}))
"""


def katcpx_blocking(port: int, count: int) -> tuple[float, float]:
    import katcpx

    client = katcpx.BlockingClient("127.0.0.1", port)
    client.start()
    client.wait_protocol(10)
    request = katcpx.Message.request
    for _ in range(200):
        client.blocking_request(request("watchdog"))
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        reply, _informs = client.blocking_request(request("watchdog"))
        assert reply.reply_ok(), reply
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    client.stop()
    client.join(10)
    return count / wall, cpu / count * 1e6


async def _timed(
    count: int, in_flight: int, one: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    for _ in range(200):
        await one()
    cpu, wall = time.process_time(), time.perf_counter()
    share = count // in_flight
    await asyncio.gather(*(worker(share) for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = share * in_flight
    return done / wall, cpu / done * 1e6


async def katcpx_async(port: int, count: int, in_flight: int) -> tuple[float, float]:
    import katcpx

    client = await katcpx.AsyncClient.connect("127.0.0.1", port)
    try:
        return await _timed(count, in_flight, lambda: client.call("watchdog"))
    finally:
        await client.aclose()


async def aiokatcp_async(port: int, count: int, in_flight: int) -> tuple[float, float]:
    import aiokatcp

    client = await aiokatcp.Client.connect("127.0.0.1", port)
    try:
        return await _timed(count, in_flight, lambda: client.request("watchdog"))
    finally:
        client.close()
        await client.wait_closed()


async def warm_up(port: int, count: int) -> None:
    """Send `count` pipelined ``?watchdog`` so every client meets an equally warm server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(b"?watchdog[%d]\n" % (i + 1) for i in range(count)))
    seen = 0
    while seen < count:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        seen += data.count(b"!watchdog[")
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the load (smoke test)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--server", choices=["katcpx", "aiokatcp"], default="katcpx")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    sequential, concurrent = int(5000 * scale), int(20000 * scale)
    ensure_katcp_python_venv()
    argv = {
        "katcpx": [sys.executable, str(SERVERS / "katcp_style_server.py"), "katcpx"],
        "aiokatcp": [sys.executable, str(SERVERS / "aiokatcp_server.py")],
    }[args.server]
    server = ServerProcess(args.server, argv)
    # Each round measures every client in turn against the same (warm) server, so neither
    # a cold server nor a burst of load elsewhere favours whichever client runs first.
    seq: dict[str, list[tuple[float, float]]] = {"katcpx": [], "aiokatcp": [], "katcp-python": []}
    conc: dict[str, list[tuple[float, float]]] = {"katcpx": [], "aiokatcp": []}
    try:
        print(f"server: {args.server}; sequential x{sequential}, 100 in flight x{concurrent}")
        asyncio.run(warm_up(server.port, 5000))
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds} ...", flush=True)
            seq["katcpx"].append(katcpx_blocking(server.port, sequential))
            kp = run_katcp_python(
                KATCP_PYTHON_SEQUENTIAL, {"port": server.port, "count": sequential}
            )
            seq["katcp-python"].append((kp["rate"], kp["cpu_us"]))
            seq["aiokatcp"].append(asyncio.run(aiokatcp_async(server.port, sequential, 1)))
            conc["katcpx"].append(asyncio.run(katcpx_async(server.port, concurrent, 100)))
            conc["aiokatcp"].append(asyncio.run(aiokatcp_async(server.port, concurrent, 100)))
    finally:
        server.stop()

    def best(results: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
        return {
            name: (max(r for r, _ in runs), min(c for _, c in runs))
            for name, runs in results.items()
        }

    def paired(results: dict[str, list[tuple[float, float]]], baseline: str, cpu: bool) -> float:
        index = 1 if cpu else 0
        pairs = zip(results["katcpx"], results[baseline], strict=True)
        # For CPU the ratio is baseline/katcpx (less CPU is better), for rates katcpx/baseline.
        return statistics.median(
            (b[index] / k[index]) if cpu else (k[index] / b[index]) for k, b in pairs
        )

    def rate_rows(results: dict[str, tuple[float, float]]) -> list[Row]:
        return [
            Row(name, rate, f"{cpu:.0f} us CPU/request") for name, (rate, cpu) in results.items()
        ]

    def cpu_rows(results: dict[str, tuple[float, float]]) -> list[Row]:
        # Inverted, so that higher is better like every other table.
        return [Row(name, 1e6 / cpu, f"{cpu:.1f} us") for name, (_rate, cpu) in results.items()]

    ok = True
    print_table(
        "sequential ?watchdog (best round)",
        rate_rows(best(seq)),
        baseline="katcp-python",
        unit="req/s",
    )
    ok &= check_target(
        "BlockingClient sequential vs katcp-python, median of per-round ratios",
        paired(seq, "katcp-python", cpu=False),
        2.0,
    )
    print_table("sequential: requests per client CPU second", cpu_rows(best(seq)), unit="req/CPU-s")
    print_table("100 in flight (best round)", rate_rows(best(conc)), unit="req/s")
    print_table(
        "100 in flight: requests per client CPU second", cpu_rows(best(conc)), unit="req/CPU-s"
    )
    # CPU per request <= 0.5x aiokatcp's  <=>  aiokatcp's CPU / katcpx's >= 2.
    ok &= check_target(
        "async client CPU per request (aiokatcp's / katcpx's), median of per-round ratios",
        paired(conc, "aiokatcp", cpu=True),
        2.0,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
