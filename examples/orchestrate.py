"""Orchestrate a (simulated) telescope site from a plain script: no event-loop code at all.

Run it as it is and it starts ``katcpx-sim site`` itself (100 times faster than real time)::

    python examples/orchestrate.py

or point it at devices that already run, by name and address::

    python examples/orchestrate.py --device antenna=dish1:7147 --device weather=wx:7149

Every call below blocks until done: the resources run on an ioloop in a background thread and
:func:`katcpx.resource.threadsafe_resource` hands each call over to it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from katcpx.resource import threadsafe_resource


def launch_site(speed: float) -> tuple[subprocess.Popen[str], dict[str, tuple[str, int]]]:
    """Start ``katcpx-sim site`` on free ports; return the process and the device addresses."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "katcpx_devices", "site", "--base-port", "0", "--speed", str(speed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    devices: dict[str, tuple[str, int]] = {}
    for line in proc.stdout:
        match = re.match(r"^(\w+)\s+([\w.\-]+):(\d+)\s", line)
        if match:
            devices[match.group(1)] = (match.group(2), int(match.group(3)))
        if line.startswith("Ctrl-C"):
            break
    return proc, devices


def parse_device(text: str) -> tuple[str, tuple[str, int]]:
    name, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    return name, (host, int(port))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", action="append", type=parse_device, default=[])
    parser.add_argument("--speed", type=float, default=100.0)
    args = parser.parse_args()

    proc = None
    devices = dict(args.device)
    if not devices:
        proc, devices = launch_site(args.speed)
    spec = {
        "name": "site",
        "clients": {name: {"address": addr, "controlled": True} for name, addr in devices.items()},
    }
    try:
        with threadsafe_resource(spec, sync_timeout=30) as site:
            print(f"synced {len(site.children)} devices, {len(site.sensor)} sensors")
            if "antenna" in devices:
                point_antenna(site)
            if "weather" in devices:
                for sensor in site.list_sensors("^weather_", refresh=True):
                    r = sensor.reading
                    print(f"  {sensor.name:<28} {r.value!s:>12} {sensor.units:<6} {r.status}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return 0


def point_antenna(site) -> None:
    """Slew the antenna, following its position with a listener."""
    ant = site.children.antenna

    def show(sensor, reading) -> None:
        print(f"  {sensor.name} = {reading.value:.2f}")

    # Strategies and listeners are memorised: they survive a reconnection of the device.
    ant.set_sampling_strategy("az", "event-rate 0.2 1")
    ant.set_sampling_strategy("on_target", "event")
    ant.set_sensor_listener("az", show)
    t0 = time.monotonic()
    reply = ant.req.target(30, 45)  # replies once on target (its timeout comes from the hint)
    print(f"?target: {reply!r} after {time.monotonic() - t0:.2f} s")
    assert ant.sensor.on_target.wait(True, timeout=60)
    print(f"on target at az={ant.sensor.az.get_value():.2f} el={ant.sensor.el.get_value():.2f}")


if __name__ == "__main__":
    sys.exit(main())
