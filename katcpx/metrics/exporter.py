"""``katcpx-exporter``: KATCP devices' sensors as Prometheus metrics, with no web UI.

Example::

    katcpx-exporter antenna=127.0.0.1:7147 weather=127.0.0.1:7149 --listen 127.0.0.1:9147

serves ``http://127.0.0.1:9147/metrics`` (the metric names are in ``docs/monitoring.md``).
Ctrl-C or SIGTERM disconnects from the devices and exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

import tornado.httpserver
import tornado.netutil
import tornado.web

from .._signals import stop_on_signals
from .._version import __version__
from ..web.hub import DeviceHub, parse_device_spec
from .web import METRICS_PATH, metrics_route

__all__ = ["DEFAULT_LISTEN", "build_parser", "main", "parse_listen", "run"]

#: Where the exporter listens unless told otherwise.
DEFAULT_LISTEN = "127.0.0.1:9147"


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``:PORT`` listens on 127.0.0.1; ``[v6]:PORT`` for IPv6).

    Raises
    ------
    ValueError
        If `text` is not of that form or the port is out of range.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port < 65536:
        raise ValueError(f"--listen {text!r}: port {port} out of range")
    return host.strip("[]") or "127.0.0.1", port


def build_parser() -> argparse.ArgumentParser:
    """Return the ``katcpx-exporter`` argument parser."""
    p = argparse.ArgumentParser(
        prog="katcpx-exporter",
        description="Serve KATCP devices' sensors as Prometheus metrics at /metrics.",
    )
    p.add_argument("devices", nargs="+", metavar="DEVICE", help="[name=]host:port of a device")
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help="HOST:PORT to serve /metrics on (default %(default)s; port 0 picks one)",
    )
    p.add_argument("--device-filter", default="", help="regex device names must match")
    p.add_argument("--sensor-filter", default="", help="regex sensor names must match")
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per device per scrape (default 5)"
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--version", action="version", version=f"katcpx-exporter {__version__}")
    return p


async def run(
    hub: DeviceHub,
    host: str,
    port: int,
    device_filter: str = "",
    sensor_filter: str = "",
    stop: asyncio.Event | None = None,
) -> None:
    """Serve `hub`'s devices' metrics on ``host:port`` until `stop` is set (or a signal).

    Raises
    ------
    OSError
        If the address cannot be bound.
    ValueError
        If a filter is not a valid regular expression.
    """
    stop = stop or asyncio.Event()
    app = tornado.web.Application([metrics_route(hub, device_filter, sensor_filter)])
    sockets = tornado.netutil.bind_sockets(port, host or None, family=socket.AF_UNSPEC)
    bound = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        with stop_on_signals(stop):
            await hub.start()
            shown = f"[{host}]" if ":" in host else host
            names = ", ".join(hub.device_names)
            print(f"katcpx-exporter: {names} at http://{shown}:{bound}{METRICS_PATH}", flush=True)
            await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        await hub.stop()
        print("katcpx-exporter: stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``katcpx-exporter``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        specs = [parse_device_spec(d) for d in args.devices]
        host, port = parse_listen(args.listen)
        hub = DeviceHub(specs, request_timeout=args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(hub, host, port, args.device_filter, args.sensor_filter))
    except OSError as exc:
        print(f"katcpx-exporter: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"katcpx-exporter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
