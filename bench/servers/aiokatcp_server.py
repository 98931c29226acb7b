"""The benchmark device server of ``katcp_style_server.py``, written for aiokatcp.

Prints ``{"port": N}`` once listening and runs until its stdin closes.
"""

import asyncio
import gc
import json
import sys

import aiokatcp

N_SENSORS = 1000


class BenchServer(aiokatcp.DeviceServer):
    VERSION = "bench-server-1.0"
    BUILD_STATE = "bench-server-1.0.0"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bench_sensors = []
        for i in range(N_SENSORS):
            sensor = aiokatcp.Sensor(float, f"s{i:04d}", f"bench sensor {i}", "V")
            self.bench_sensors.append(sensor)
            self.sensors.add(sensor)
        self.bumps = 0

    async def request_ping(self, ctx) -> None:
        """Reply ok (a device request)."""

    async def request_bump(self, ctx, n: int) -> None:
        """Set every sensor n times (?bump n)."""
        for _ in range(n):
            self.bumps += 1
            value = float(self.bumps)
            for sensor in self.bench_sensors:
                sensor.value = value


async def main():
    server = BenchServer("127.0.0.1", 0)
    await server.start()
    gc.freeze()  # the 1000 sensors are permanent: keep them out of every GC pass
    port = server.server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
