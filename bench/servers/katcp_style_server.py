"""Benchmark device server written once against katcp-python's API.

Run as ``python katcp_style_server.py katcpx [threaded] [--metrics]`` (katcpx on tornado 6)
or, inside the katcp-python 0.9.3 venv, ``python katcp_style_server.py katcp [threaded]``:
the only difference is the import, which is the point of katcpx. Without ``threaded`` the
server runs in async mode (requests handled on the loop); ``--metrics`` (katcpx only) turns
on the server's Prometheus metrics (bench_metrics.py). It prints ``{"port": N}`` once listening and runs until
its stdin closes.

Requests beyond the standard set: ``?bump n`` sets every sensor ``n`` times (each time to a
new value, so ``event`` sampling reports every change) and then replies ``ok``.
"""

import gc
import importlib
import json
import sys

katcp = importlib.import_module("katcpx" if sys.argv[1:2] == ["katcpx"] else "katcp")
# katcpx only: "--metrics" turns on the server's Prometheus metrics (bench_metrics.py).
METRICS = "--metrics" in sys.argv[2:]
N_SENSORS = 1000


class BenchServer(katcp.DeviceServer):
    VERSION_INFO = ("bench-server", 1, 0)
    BUILD_INFO = ("bench-server", 1, 0, "")

    def setup_sensors(self):
        self.bench_sensors = []
        for i in range(N_SENSORS):
            sensor = katcp.Sensor.float(f"s{i:04d}", f"bench sensor {i}", "V", [-1e9, 1e9], 0.0)
            self.bench_sensors.append(sensor)
            self.add_sensor(sensor)
        self.bumps = 0

    def request_ping(self, req, msg):
        """Reply ok (a device request: not one of the read-only standard requests)."""
        return req.make_reply("ok")

    def request_bump(self, req, msg):
        """Set every sensor n times (?bump n)."""
        n = int(msg.arguments[0])
        for _ in range(n):
            self.bumps += 1
            value = float(self.bumps)
            for sensor in self.bench_sensors:
                sensor.set_value(value)
        return katcp.Message.reply(msg.name, "ok")


def main():
    server = BenchServer("127.0.0.1", 0)
    if "threaded" not in sys.argv[2:]:
        # Async mode: every request on the loop. "threaded" keeps katcp-python's default,
        # where requests other than katcpx's read-only standard ones go to a handler thread.
        server.set_concurrency_options(thread_safe=False, handler_thread=False)
    metrics_port = server.start_metrics_server(0).port if METRICS else None
    server.start(timeout=10)
    gc.freeze()  # the 1000 sensors are permanent: keep them out of every GC pass
    print(json.dumps({"port": server.bind_address[1], "metrics_port": metrics_port}), flush=True)
    sys.stdin.read()
    server.stop()
    server.join(timeout=10)


if __name__ == "__main__":
    main()
