"""Scale-out: device-side load and latency with many websocket subscribers, with and without Redis.

The issue's shape is the default: 4 web instances x 250 websocket subscribers, each
subscribed to all 1000 sensors of one device. The device (own process) has 1000 float
sensors; during the measurement it changes ``--rate`` of them a second (round robin), each
reading stamped with ``time.time()`` at ``set_value``, so every change is one websocket
message to each of the 1000 subscribers. Subscribers (one process per web instance, a
consumer group) connect with
``?batch=1`` (one frame per loop turn of queued messages; ``--no-batch`` for one frame per
message). Scenarios:

- ``redis x1`` / ``redis x4``: katcpx-gateway -> redis-server -> 1 or 4 ``katcpx-web --redis``
  (250 subscribers each);
- ``direct x4`` (baseline): the same 1000 subscribers on 4 ``katcpx-web`` connected straight
  to the device, one per consumer group of 250, as one would scale without Redis.

Printed per scenario: the device process's CPU (percent of one core over the window), its
client connections (``?client-list``), the sensor strategies it was asked to set (its own
count of sensors named in setting ``?sensor-sampling`` requests, in that phase), websocket
updates received, and the latency from ``set_value`` to the websocket message (p50, p99).
Through Redis the device-side load must stay that of one subscriber: one client, one
strategy per sensor, whatever the number of instances.

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

from bench_gateway import cpu_seconds, many_device_class, start_many  # noqa: E402
from redis_server import RedisServer, free_port  # noqa: E402

from katcpx.client import AsyncClient  # noqa: E402

SENSORS = 1000
#: Default sensor changes a second. Each is a websocket message to all 1000 subscribers, so
#: 5 changes a second are 5,000 messages a second through the bridges: what the 2-core
#: development machine carries beside the device, the gateway, redis-server and the 1000
#: subscribers themselves (20 a second saturated it; see bench/README.md).
DEFAULT_RATE = 5.0


def run_device(port: int, rate: float, go, stop, ready) -> None:
    """The device: SENSORS float sensors; between `go` and `stop`, `rate` changes a second.

    It answers ``?sampling-count [reset]``: how many sensors setting ``?sensor-sampling``
    requests named since the start or the last reset.
    """

    class Counting(many_device_class(SENSORS)):
        sampling_set = 0

        async def request_sensor_sampling(self, req, msg):
            """Count the sensors a setting request names, then do as the standard one."""
            if len(msg.arguments) >= 2:
                self.sampling_set += len(msg.arguments[0].split(b","))
            return await super().request_sensor_sampling(req, msg)

        def request_sampling_count(self, req, msg):
            """Sensors named by setting ?sensor-sampling requests so far [reset: restart]."""
            count = self.sampling_set
            if msg.arguments and msg.arguments[0] == b"reset":
                self.sampling_set = 0
            return req.make_reply("ok", str(count))

    async def main():
        _server, objs = await start_many(port, SENSORS, Counting)
        ready.set()
        n = 0
        # Ticks of 10 ms at high rates; one change a tick below 100 a second.
        interval = 0.01 if rate >= 100 else 1.0 / rate
        per_tick = max(round(rate * interval), 1)
        next_tick = time.monotonic()
        while not stop.is_set():
            if not go.is_set():
                await asyncio.sleep(0.01)
                next_tick = time.monotonic()
                continue
            for _ in range(per_tick):
                objs[n % SENSORS].set_value(float(n), timestamp=time.time())
                n += 1
            next_tick += interval
            await asyncio.sleep(max(next_tick - time.monotonic(), 0))

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


async def start_webs(procs: list, *source: str) -> list[tuple[int, int]]:
    """Four katcpx-web instances serving `source` on free ports; their ports and pids."""
    ports = []
    for _ in range(4):
        web, line = await start(
            "-m", "katcpx.web", *source, "--port", "0", "--log-level", "WARNING", expect="serving"
        )
        procs.append(web)
        port = int(re.search(r":(\d+)/", line).group(1))  # type: ignore[union-attr]
        ports.append((port, web.pid))
    return ports


class Subscriber:
    """One websocket subscriber: records the latency of every update it gets."""

    def __init__(self, conn, latencies: list[float], hops: list[float]) -> None:
        self.conn = conn
        self.latencies = latencies
        #: set_value to the reading's arrival at the gateway (direct: at the web instance).
        self.hops = hops
        self.subscribed = asyncio.get_running_loop().create_future()
        self.measuring = False
        #: Update messages received (the subscription's snapshot counts).
        self.updates = 0
        self.task = asyncio.ensure_future(self.read())

    async def read(self) -> None:
        while True:
            text = await self.conn.read_message()
            if text is None:
                return
            now = time.time()
            if not self.measuring and self.subscribed.done():
                # Snapshots: counted without parsing (the bench must not be the bottleneck).
                self.updates += text.count('{"type":"update"')
                continue
            decoded = json.loads(text)
            for msg in decoded if isinstance(decoded, list) else (decoded,):
                kind = msg.get("type")
                if kind == "update":
                    self.updates += 1
                    if self.measuring:
                        self.latencies.append(now - msg["timestamp"])
                        self.hops.append(msg["received"] - msg["timestamp"])
                elif kind == "subscribeSafely" and not self.subscribed.done():
                    self.subscribed.set_result(msg)

    async def subscribe(self, names: list[str]) -> None:
        """Subscribe to `names`, retrying until the instance knows the device."""
        for _ in range(100):
            self.conn.write_message(
                json.dumps({"action": "subscribeSafely", "device": "many", "sensors": names})
            )
            # Each answer is awaited (a loaded instance may take seconds): a second
            # subscribe would only resend the snapshots.
            answer = await asyncio.wait_for(self.subscribed, 600)
            if answer["subscribed"] or answer["already_subscribed"]:
                return
            # Failed: the instance does not know the device yet.
            self.subscribed = asyncio.get_running_loop().create_future()
            await asyncio.sleep(0.5)
        raise RuntimeError("the web instance never knew the device")


async def device_call(port: int, *args: str) -> list:
    """Call the device; its reply's arguments (bytes) and informs."""
    async with await AsyncClient.connect("127.0.0.1", port) as client:
        reply, informs = await client.call(*args, timeout=30)
    return [reply.arguments, informs]


def run_subscribers(port, count, per_client, batch, ready, measure, results) -> None:
    """One consumer group in its own process: `count` websockets on the instance at `port`.

    Each subscribes to `per_client` sensors and waits for its snapshot; then `ready` is
    set. Latencies are recorded while `measure` is set; then the latencies, the first hops,
    the setup time (s) and this process's CPU (fraction of a core) go to `results`.
    """

    async def main():
        latencies: list[float] = []
        hops: list[float] = []
        subs: list[Subscriber] = []
        query = "?batch=1" if batch else ""
        start = time.monotonic()
        pending = []
        for i in range(count):
            url = f"ws://127.0.0.1:{port}/api/ws{query}"
            conn = await tornado.websocket.websocket_connect(url, max_message_size=64 << 20)
            sub = Subscriber(conn, latencies, hops)
            first = (i * per_client) % SENSORS
            pending.append(
                sub.subscribe([f"s.{(first + k) % SENSORS:04d}" for k in range(per_client)])
            )
            subs.append(sub)
        await asyncio.gather(*pending)
        # Until every subscriber has its snapshot (an update per sensor), so the window
        # measures the changes alone.
        while min(sub.updates for sub in subs) < per_client:
            if time.monotonic() - start > 900:
                raise RuntimeError("snapshots did not arrive within 900 s")
            await asyncio.sleep(0.2)
        setup = time.monotonic() - start
        ready.set()
        while not measure.is_set():
            await asyncio.sleep(0.005)
        for sub in subs:
            sub.measuring = True
        cpu0, t0 = time.process_time(), time.monotonic()
        while measure.is_set():
            await asyncio.sleep(0.005)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
        for sub in subs:
            sub.measuring = False
            sub.conn.close()
        results.send((latencies, hops, setup, cpu))

    asyncio.run(main())


async def scenario(
    name: str,
    webs: list[tuple[int, int]],
    device_pid: int,
    device_port: int,
    args,
    go,
    gateway_pid: int | None = None,
) -> dict:
    # One process of subscribers per web instance (a consumer group): on a shared machine
    # one process reading every websocket would get one process's share of the CPU.
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    measure = ctx.Event()
    workers = []
    for port, _pid in webs:
        ready = ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(
            target=run_subscribers,
            args=(
                port,
                args.subscribers,
                args.per_client,
                not args.no_batch,
                ready,
                measure,
                sender,
            ),
        )
        worker.start()
        workers.append((worker, ready, receiver))
    for _worker, ready, _ in workers:
        if not await loop.run_in_executor(None, ready.wait, 900):
            raise RuntimeError(f"subscribers of {name} not ready within 900 s")
    await asyncio.sleep(1.0)
    measure.set()
    pids = {"device": [device_pid], "web": [pid for _, pid in webs]}
    if gateway_pid is not None:
        pids["gateway"] = [gateway_pid]
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    t0 = time.monotonic()
    go.set()
    await asyncio.sleep(args.duration)
    go.clear()
    elapsed = time.monotonic() - t0
    used = {k: (sum(cpu_seconds(p) for p in v) - cpu0[k]) / elapsed for k, v in pids.items()}
    cpu = used["device"] * elapsed
    await asyncio.sleep(0.5)  # stragglers
    measure.clear()
    latencies: list[float] = []
    hops: list[float] = []
    setup = 0.0
    used["subscribers"] = 0.0
    for worker, _, receiver in workers:
        lat, hop, took, worker_cpu = await loop.run_in_executor(None, receiver.recv)
        latencies += lat
        hops += hop
        setup = max(setup, took)
        used["subscribers"] += worker_cpu
        worker.join(30)
    subs = range(len(webs) * args.subscribers)
    _, informs = await device_call(device_port, "client-list")
    (_, count), _ = await device_call(device_port, "sampling-count")
    latencies.sort()
    hops.sort()
    expected = len(subs) * args.rate * args.per_client / SENSORS * elapsed
    return {
        "name": name,
        "subscribers": len(subs),
        "setup": setup,
        "cpu": 100 * cpu / elapsed,
        "others": used,
        "clients": len(informs) - 1,  # not counting this query's own connection
        "strategies": int(count),
        "expected": expected,
        "updates": len(latencies),
        "p50": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "hop50": 1000 * statistics.median(hops) if hops else float("nan"),
    }


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="sensor changes a second (%(default)s)"
    )
    p.add_argument("--subscribers", type=int, default=250, help="websockets per instance")
    p.add_argument(
        "--per-client", type=int, default=SENSORS, help="sensors per websocket (%(default)s)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument(
        "--no-batch", action="store_true", help="one websocket frame per message (no ?batch=1)"
    )
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
                        f"redis x{count}", webs[:count], device.pid, device_port, args, go, gw.pid
                    )
                )
            for proc in procs:
                proc.terminate()
                await proc.wait()
            procs.clear()
            await device_call(device_port, "sampling-count", "reset")
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
    frames = "one frame per message" if args.no_batch else "?batch=1 frames"
    print(
        f"{args.rate:g} changes/s over {SENSORS} sensors; {args.subscribers} websockets per "
        f"instance, each subscribed to {args.per_client} sensors ({frames}); "
        f"{args.duration:g} s measured"
    )
    print(
        f"{'scenario':<10} {'websockets':>10} {'setup s':>8} {'device CPU':>10} "
        f"{'clients':>8} {'strategies':>10} {'updates':>16} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'hop p50':>8}"
    )
    for r in results:
        got = f"{r['updates']}/{r['expected']:.0f}"
        print(
            f"{r['name']:<10} {r['subscribers']:>10} {r['setup']:>8.1f} {r['cpu']:>9.1f}% "
            f"{r['clients']:>8} {r['strategies']:>10} {got:>16} {r['p50']:>8.1f} "
            f"{r['p99']:>8.1f} {r['hop50']:>8.1f}"
        )
    print(
        "hop p50: set_value to the reading's arrival at the gateway (direct: at katcpx-web), "
        "the first hop of the latency"
    )
    print("CPU of the other processes over the window (percent of one core):")
    for r in results:
        print(
            f"  {r['name']:<10} "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["others"].items() if k != "device")
        )
    one, four, base = results
    print(f"device CPU, redis x4 / redis x1: {four['cpu'] / one['cpu']:.2f}")
    print(f"device CPU, direct x4 / redis x4: {base['cpu'] / four['cpu']:.2f}")
    ok = four["clients"] == one["clients"] == 1 and four["strategies"] == SENSORS
    print(
        f"{'PASS' if ok else 'MISS'} through Redis the device has one client and one strategy "
        f"per sensor for 1 and 4 instances ({four['clients']} client, "
        f"{four['strategies']} strategies; direct x4: {base['clients']}, {base['strategies']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
