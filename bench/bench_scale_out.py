"""Scale-out: device-side load and latency with many websocket subscribers, with and without Redis.

One katcpx device (own process) has 1000 float sensors; during the measurement it changes
``--rate`` of them a second (round robin), each reading stamped with ``time.time()`` at
``set_value``. Websocket subscribers (``--subscribers`` per web instance, all in this
process) each subscribe to ``--per-client`` consecutive sensors, so every instance's
subscribers together cover all 1000 sensors. Scenarios:

- ``redis x1`` / ``redis x4``: katcpx-gateway -> redis-server -> 1 or 4 ``katcpx-web --redis``;
- ``direct x4`` (baseline): 4 ``katcpx-web`` connected straight to the device, one per
  consumer group, as one would scale without Redis.

Printed per scenario: the device process's CPU (percent of one core over the window, and its
client connections), websocket updates received, and the latency from ``set_value`` to the
websocket message (p50, p99). The device-side load through Redis must stay that of one
subscriber, whatever the number of instances.

Run from the repository root: ``python bench/bench_scale_out.py [--duration 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tornado.websocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "gateway"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_gateway import cpu_seconds, start_many  # noqa: E402
from redis_server import RedisServer, free_port  # noqa: E402

from katcpx.client import AsyncClient  # noqa: E402

SENSORS = 1000


def run_device(port: int, rate: float, go, stop, ready) -> None:
    """The device: SENSORS float sensors; between `go` and `stop`, `rate` changes a second."""

    async def main():
        _server, objs = await start_many(port, SENSORS)
        ready.set()
        n = 0
        while not stop.is_set():
            if not go.is_set():
                await asyncio.sleep(0.01)
                continue
            start = time.monotonic()
            # A tick every 10 ms, rate/100 changes each.
            for _ in range(max(int(rate / 100), 1)):
                objs[n % SENSORS].set_value(float(n), timestamp=time.time())
                n += 1
            await asyncio.sleep(max(0.01 - (time.monotonic() - start), 0))

    asyncio.run(main())


async def start(*argv: str, expect: str) -> tuple[asyncio.subprocess.Process, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"{argv} exited")
        if expect in line:
            break

    async def drain() -> None:
        assert proc.stdout is not None
        while await proc.stdout.readline():
            pass

    asyncio.ensure_future(drain())
    return proc, line


async def start_webs(procs: list, *source: str) -> list[int]:
    """Four katcpx-web instances serving `source` on free ports; their ports."""
    ports = []
    for _ in range(4):
        web, line = await start(
            "-m", "katcpx.web", *source, "--port", "0", "--log-level", "WARNING", expect="serving"
        )
        procs.append(web)
        ports.append(int(re.search(r":(\d+)/", line).group(1)))  # type: ignore[union-attr]
    return ports


class Subscriber:
    """One websocket subscriber: records the latency of every update it gets."""

    def __init__(self, conn, latencies: list[float]) -> None:
        self.conn = conn
        self.latencies = latencies
        self.subscribed = asyncio.get_running_loop().create_future()
        self.measuring = False
        self.task = asyncio.ensure_future(self.read())

    async def read(self) -> None:
        while True:
            text = await self.conn.read_message()
            if text is None:
                return
            now = time.time()
            if text.startswith('{"type":"update"'):
                if self.measuring:
                    self.latencies.append(now - json.loads(text)["timestamp"])
            elif '"subscribed"' in text and not self.subscribed.done():
                self.subscribed.set_result(json.loads(text))


async def scenario(
    name: str, web_ports: list[int], device_pid: int, device_port: int, args, go
) -> dict:
    latencies: list[float] = []
    subs: list[Subscriber] = []
    for port in web_ports:
        for i in range(args.subscribers):
            conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/api/ws")
            sub = Subscriber(conn, latencies)
            first = (i * args.per_client) % SENSORS
            names = [f"s.{(first + k) % SENSORS:04d}" for k in range(args.per_client)]
            for _ in range(100):  # until the instance knows the device
                conn.write_message(
                    json.dumps({"action": "subscribeSafely", "device": "many", "sensors": names})
                )
                try:
                    answer = await asyncio.wait_for(asyncio.shield(sub.subscribed), 0.5)
                except asyncio.TimeoutError:
                    continue
                if answer["subscribed"]:
                    break
                sub.subscribed = asyncio.get_running_loop().create_future()
            subs.append(sub)
    await asyncio.sleep(1.0)  # initial snapshots drain
    for sub in subs:
        sub.measuring = True
    cpu0, t0 = cpu_seconds(device_pid), time.monotonic()
    go.set()
    await asyncio.sleep(args.duration)
    go.clear()
    cpu, elapsed = cpu_seconds(device_pid) - cpu0, time.monotonic() - t0
    await asyncio.sleep(0.5)  # stragglers
    for sub in subs:
        sub.measuring = False
        sub.conn.close()
    async with await AsyncClient.connect("127.0.0.1", device_port) as client:
        _, informs = await client.call("client-list", timeout=10)
    latencies.sort()
    return {
        "name": name,
        "cpu": 100 * cpu / elapsed,
        "clients": len(informs) - 1,  # not counting this query's own connection
        "updates": len(latencies),
        "p50": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
    }


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="sensor changes a second")
    p.add_argument("--subscribers", type=int, default=250, help="websockets per instance")
    p.add_argument("--per-client", type=int, default=10, help="sensors per websocket")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    args = p.parse_args()
    ctx = multiprocessing.get_context("spawn")
    go, stop, ready = ctx.Event(), ctx.Event(), ctx.Event()
    device_port = free_port()
    device = ctx.Process(target=run_device, args=(device_port, args.rate, go, stop, ready))
    device.start()
    ready.wait(60)
    assert device.pid is not None
    results = []
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        procs: list[asyncio.subprocess.Process] = []
        try:
            gw, _ = await start(
                "-m",
                "katcpx.gateway",
                f"many=127.0.0.1:{device_port}",
                "--redis",
                redis.url,
                "--log-level",
                "WARNING",
                expect="carrying",
            )
            procs.append(gw)
            webs = await start_webs(procs, "--redis", redis.url)
            for count in (1, 4):
                results.append(
                    await scenario(
                        f"redis x{count}", webs[:count], device.pid, device_port, args, go
                    )
                )
            for proc in procs:
                proc.terminate()
                await proc.wait()
            procs.clear()
            direct = await start_webs(procs, f"many=127.0.0.1:{device_port}")
            results.append(await scenario("direct x4", direct, device.pid, device_port, args, go))
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
            redis.kill()
            stop.set()
            device.join(10)
    print(
        f"{args.rate:g} changes/s over {SENSORS} sensors, {args.subscribers} websockets per "
        f"instance x {args.per_client} sensors each, {args.duration:g} s measured"
    )
    print(
        f"{'scenario':<10} {'device CPU':>10} {'device clients':>15} {'updates':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in results:
        print(
            f"{r['name']:<10} {r['cpu']:>9.1f}% {r['clients']:>15} {r['updates']:>9} "
            f"{r['p50']:>8.1f} {r['p99']:>8.1f}"
        )
    one, four, base = results
    print(f"device CPU, redis x4 / redis x1: {four['cpu'] / one['cpu']:.2f}")
    print(f"device CPU, direct x4 / redis x4: {base['cpu'] / four['cpu']:.2f}")
    ok = four["clients"] == one["clients"] == 1
    print(
        f"{'PASS' if ok else 'MISS'} through Redis the device has one client for 1 and 4 instances"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
