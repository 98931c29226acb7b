"""Orchestrate a simulated telescope site from a plain, synchronous script.

Start the simulated devices, then run the script::

    katcpx-sim site --speed 50 &
    python examples/orchestrate.py

It talks to the antenna, the weather station and the cryocooler, at ``--host`` on the ports
``katcpx-sim site`` gives them from ``--base-port`` (default 7147: antenna 7147, weather 7149,
cryo 7150), or wherever ``--device name=host:port`` says. It

1. waits until every device is synced, and reads the weather: with the wind speed in error it
   refuses to move the antenna;
2. starts the cryocooler's ``cooldown`` task, which goes on on the device meanwhile;
3. slews the antenna with its ``slew`` task (calling a task starts it and waits for the end);
4. tracks a drifting target with the ``track`` process, watching a few sensors;
5. stops tracking and prints the results of the operations (``OpReply``).

Every call blocks until it is done: :func:`katcpx.resource.threadsafe_resource` runs the
resources on an event loop in a background thread, so there is no event-loop code here.

Exit status: 0 on success, 1 if an operation failed, 2 if the weather forbids observing,
3 if a device cannot be reached (the message names it, its address and the fix).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Callable
from typing import Any

from katcpx.resource import threadsafe_resource

#: Port offsets from --base-port, in the order ``katcpx-sim site`` starts its devices.
SITE_PORTS = {"antenna": 0, "weather": 2, "cryo": 3}


def parse_device(text: str) -> tuple[str, tuple[str, int]]:
    """``name=host:port`` -> ``(name, (host, port))``."""
    name, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    if name not in SITE_PORTS or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT with NAME in {list(SITE_PORTS)}")
    return name, (host, int(port))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="host of the site's devices")
    parser.add_argument("--base-port", type=int, default=7147, help="port of the first device")
    parser.add_argument(
        "--device", action="append", type=parse_device, default=[], help="NAME=HOST:PORT"
    )
    parser.add_argument("--az", type=float, default=30.0, help="azimuth to slew to (deg)")
    parser.add_argument("--el", type=float, default=60.0, help="elevation to slew to (deg)")
    parser.add_argument(
        "--samples", type=int, default=3, help="sensor samples to print while tracking"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the observation; return the exit status."""
    args = parse_args(argv)
    addresses = {name: (args.host, args.base_port + n) for name, n in SITE_PORTS.items()}
    addresses.update(args.device)
    spec = {
        "name": "site",
        "clients": {
            name: {"address": address, "controlled": True} for name, address in addresses.items()
        },
    }
    print("Connecting to " + ", ".join(f"{n} at {h}:{p}" for n, (h, p) in addresses.items()))
    problems = unreachable(addresses)
    if problems:
        for problem in problems:
            print(f"orchestrate.py: {problem}", file=sys.stderr)
        print(
            "orchestrate.py: start the simulated site first (katcpx-sim site), or point "
            "this script at it with --host, --base-port or --device NAME=HOST:PORT",
            file=sys.stderr,
        )
        return 3
    # Returns once every device is connected and its sensors and requests are known.
    try:
        with threadsafe_resource(spec, sync_timeout=30) as site:
            print(f"Synced {len(site.children)} devices.")
            return observe(site, args)
    except TimeoutError:
        print(
            "orchestrate.py: the devices accepted connections but did not all sync within "
            "30 s: are they KATCP devices (katcpx-sim site)?",
            file=sys.stderr,
        )
        return 3


def unreachable(addresses: dict[str, tuple[str, int]], timeout: float = 5.0) -> list[str]:
    """Say which devices cannot be reached at all (connection refused, no route...).

    Checked with a plain TCP connection first, so that a missing site is reported at once
    rather than after the resource's sync timeout.
    """
    problems = []
    for name, (host, port) in addresses.items():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            problems.append(f"cannot connect to the {name} at {host}:{port}: {reason}")
    return problems


def track_data(session_json: str) -> dict[str, Any]:
    """The data the track process published, from its ``op.track.session`` sensor value."""
    return dict(json.loads(session_json).get("data") or {})


def target_beyond(az: float) -> Callable[[Any], bool]:
    """Sensor-wait condition: the track session's target azimuth has passed ``az``."""
    return lambda reading: track_data(reading.value).get("target_az", az) > az


def observe(site: Any, args: argparse.Namespace) -> int:
    """The observation proper, on a synced site (thread-safe resource container)."""
    antenna, weather, cryo = site.children.antenna, site.children.weather, site.children.cryo

    # 1. Weather: a fresh reading of each sensor (?sensor-value).
    wind = weather.sensor.wind_speed.get_reading()
    temperature = weather.sensor.temperature.get_reading()
    print(
        f"Weather: wind {wind.value:.1f} m/s ({wind.status}), "
        f"temperature {temperature.value:.1f} degC ({temperature.status})"
    )
    if wind.status in ("error", "failure"):
        print("Wind speed is in error: refusing to slew the antenna.")
        return 2

    # 2. The cool-down takes many minutes: start it and let it run while we point.
    cooldown = cryo.op.cooldown
    reply = cooldown.start()
    print(f"Cool-down: {reply.msg}")
    if not reply.ok and reply.session.get("status") != "running":  # running: carry on
        print(reply)
        return 1

    # 3. Calling a task starts it and waits until it ends (however long that takes).
    ant_ops = antenna.op
    print(f"Slewing to az={args.az} el={args.el} ...")
    slew = ant_ops.slew(az=args.az, el=args.el)
    print(slew)
    if not slew.session.get("success"):
        cooldown.abort()  # do not leave the cryocooler running unattended
        return 1

    # 4. A process runs until stopped: start it, then watch it through sensors. Every
    #    operation has two: op.<name>.status and op.<name>.session (its session, as JSON).
    track = ant_ops.track.start(az=args.az, el=args.el)
    print(f"Tracking started: {track.msg}")
    antenna.set_sampling_strategy("on_target", "event")
    antenna.set_sampling_strategy("op_track_session", "event")
    antenna.sensor.on_target.wait(True, timeout=30)
    print("On target; tracking:")
    session_sensor = antenna.sensor.op_track_session
    last_az = -1e9
    for _ in range(args.samples):
        # The process publishes a sample every half second (the target drifts at the
        # sidereal rate): wait for the next one.
        session_sensor.wait(target_beyond(last_az), timeout=30)
        data = track_data(session_sensor.value)
        last_az = data["target_az"]
        cryo_temperature = cryo.sensor.temperature.get_reading()
        print(
            f"  target az={data['target_az']:.4f} el={data['target_el']:.4f}  "
            f"antenna az={data['az']:.4f} el={data['el']:.4f}  "
            f"error={data['error'] * 3600:.1f} arcsec  "
            f"cryo {cryo_temperature.value:.1f} K ({cryo_temperature.status})"
        )

    # 5. Stop tracking (the antenna brakes) and report.
    ant_ops.track.stop()
    track = ant_ops.track.wait(timeout=30)
    print(track)
    print(cooldown.status())
    return 0 if track.session.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
