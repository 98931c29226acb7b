"""Resource layer at scale: a container of 32 resources x 1000 sensors.

Usage (from the repository root)::

    python bench/bench_resource.py [--resources 32] [--sensors 1000]

The servers (aiokatcp announcing ``5.1-MIB``, or with ``--server katcpx`` katcpx announcing
``5.1-BIMT``; both allow bulk ``?sensor-sampling``) run in a subprocess so that they do not
share the benchmark's CPU time; the client's own CPU time is printed too. Measured, in seconds:

- **sync**: ``container.start()`` until every child is synced;
- **strategies**: ``set_sampling_strategies(".", "event")`` until every sensor has received
  its first ``#sensor-status`` update;
- **restart**: the server process is killed and started again on the same ports; the time
  until every child is synced again with its strategies re-applied, and the spread of the
  children's reconnection times (jittered backoff spreads them out).

Target: sync + strategies < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from katcpx.resource import KATCPClientResourceContainer

SERVER_SCRIPT = r"""
import asyncio, json, sys
import aiokatcp

async def main(ports, n_sensors):
    servers = []
    for port in ports:
        server = Bench("127.0.0.1", port, n_sensors)
        await server.start()
        servers.append(server)
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

class Bench(aiokatcp.DeviceServer):
    VERSION = "bench-1.0"
    BUILD_STATE = "bench-1.0.0"
    def __init__(self, host, port, n_sensors):
        super().__init__(host, port)
        for i in range(n_sensors):
            self.sensors.add(aiokatcp.Sensor(float, f"s{i:04d}", "bench", "V", default=1.0,
                             initial_status=aiokatcp.Sensor.Status.NOMINAL))

ports = json.loads(sys.argv[1])
asyncio.run(main(ports, int(sys.argv[2])))
"""

KATCPX_SERVER_SCRIPT = r"""
import asyncio, json, sys
from tornado.ioloop import IOLoop
from katcpx.flags import ProtocolFlags
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

class Bench(DeviceServer):
    PROTOCOL_INFO = ProtocolFlags(5, 1, "BIMT")
    VERSION_INFO = ("bench", 1, 0)
    BUILD_INFO = ("bench", 1, 0, "")
    def __init__(self, host, port, n_sensors):
        self.n_sensors = n_sensors
        super().__init__(host, port)
    def setup_sensors(self):
        for i in range(self.n_sensors):
            self.add_sensor(Sensor.float(f"s{i:04d}", "bench", "V", default=1.0))

async def main(ports, n_sensors):
    servers = []
    for port in ports:
        server = Bench("127.0.0.1", port, n_sensors)
        server.set_ioloop(IOLoop.current())
        server.start()
        await server.until_running()
        servers.append(server)
    print(json.dumps([s.bind_address[1] for s in servers]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

ports = json.loads(sys.argv[1])
asyncio.run(main(ports, int(sys.argv[2])))
"""
SCRIPTS = {"aiokatcp": SERVER_SCRIPT, "katcpx": KATCPX_SERVER_SCRIPT}


def start_servers(
    ports: list[int], n_sensors: int, kind: str = "aiokatcp"
) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPTS[kind], json.dumps(ports), str(n_sensors)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


async def run(n_resources: int, n_sensors: int, kind: str) -> bool:
    print(f"servers: {kind}")
    proc, ports = start_servers([0] * n_resources, n_sensors, kind)
    try:
        spec = {
            "name": "array",
            "clients": {
                f"m{i:03d}": {"address": ("127.0.0.1", port), "auto_reconnect_delay": 0.5}
                for i, port in enumerate(ports)
            },
        }
        container = KATCPClientResourceContainer(spec)
        total = n_resources * n_sensors
        t0 = time.perf_counter()
        c0 = time.process_time()
        container.start()
        await container.until_synced(timeout=60)
        t_sync = time.perf_counter() - t0
        print(f"(client CPU during sync: {time.process_time() - c0:.2f} s)")

        updated: set[int] = set()
        all_updated = asyncio.get_running_loop().create_future()

        def listener(sensor: object, reading: object) -> None:
            updated.add(id(sensor))
            if len(updated) == total and not all_updated.done():
                all_updated.set_result(None)

        for child in container.children.values():
            for ident in child.sensor:
                await child.set_sensor_listener(ident, listener)
        t0 = time.perf_counter()
        c0 = time.process_time()
        await container.set_sampling_strategies(".", "event")
        await asyncio.wait_for(all_updated, 60)
        t_strat = time.perf_counter() - t0
        print(f"(client CPU during strategies: {time.process_time() - c0:.2f} s)")
        print(f"sync of {n_resources} x {n_sensors} sensors: {t_sync:.2f} s")
        print(f"event strategies and first updates:    {t_strat:.2f} s")
        ok = t_sync + t_strat < 5.0
        print(f"{'PASS' if ok else 'MISS'}: sync + strategies < 5 s ({t_sync + t_strat:.2f} s)")

        # Restart: every child reconnects (jittered), re-syncs and re-applies its strategies.
        proc.kill()
        proc.wait()
        await container.until_all_children_in_state("disconnected", timeout=30)
        updated.clear()
        all_updated = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        # In a thread: blocking here would freeze the clients' timers and bunch them up.
        loop = asyncio.get_running_loop()
        proc, _ = await loop.run_in_executor(None, start_servers, ports, n_sensors, kind)
        await container.until_synced(timeout=60)
        await asyncio.wait_for(all_updated, 60)
        t_restart = time.perf_counter() - t0
        connects = sorted(c._client.last_connect_time for c in container.children.values())
        spread = connects[-1] - connects[0]
        print(f"restart to synced with strategies:     {t_restart:.2f} s")
        print(f"spread of reconnection times:          {spread:.3f} s")
        container.stop()
        await asyncio.gather(*container.until_stopped(timeout=10).values())
        return ok
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=32)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--server", choices=sorted(SCRIPTS), default="aiokatcp")
    args = parser.parse_args()
    ok = asyncio.run(run(args.resources, args.sensors, args.server))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
