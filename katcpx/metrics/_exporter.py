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
import re
import socket
import sys
from collections.abc import Sequence

import tornado.httpserver
import tornado.netutil
import tornado.web

from .._closed_stdout import quiet_on_closed_stdout
from .._signals import stop_on_signals
from .._version import __version__
from ..web._hub import DeviceHub, DeviceSpec, parse_device_spec
from ._options import (
    DEFAULT_MAX_STRING_LENGTH,
    LOG_LEVELS,
    add_metrics_options,
    configure_logging,
    log_level,
    positive_seconds,
)
from ._web import METRICS_PATH, metrics_route

__all__ = ["DEFAULT_LISTEN", "build_parser", "main", "parse_device", "parse_listen", "run"]

#: Where the exporter listens unless told otherwise.
DEFAULT_LISTEN = "127.0.0.1:9147"


log = logging.getLogger("katcpx.exporter")

_LISTEN_HINT = "give another --listen HOST:PORT (port 0 picks a free one)"


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
        raise ValueError(
            f"--listen {text!r}: port {port} out of range (0 to 65535; 0 picks a free one)"
        )
    return host.strip("[]") or "127.0.0.1", port


def parse_device(text: str) -> DeviceSpec:
    """Parse a device argument, ``[name=]host:port``; the host must be given.

    Raises
    ------
    ValueError
        If `text` is not of that form, or its name or host is empty.
    """
    address = text.strip().partition("=")[2] if "=" in text else text.strip()
    host, colon, _ = address.rpartition(":")
    if colon and not host.strip().strip("[]"):
        raise ValueError(f"device {text!r}: empty host (write name=HOST:PORT, e.g. 127.0.0.1)")
    return parse_device_spec(text)


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
    add_metrics_options(p)
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds (> 0) each device has to answer a scrape (default 5)",
    )
    p.add_argument(
        "--log-level",
        type=log_level,
        default="INFO",
        metavar="LEVEL",
        help=f"logging level: {', '.join(LOG_LEVELS)}, any case (default INFO)",
    )
    p.add_argument("--version", action="version", version=f"katcpx-exporter {__version__}")
    return p


async def run(
    hub: DeviceHub,
    host: str,
    port: int,
    device_filter: str = "",
    sensor_filter: str = "",
    stop: asyncio.Event | None = None,
    timeout: float | None = None,
    max_string_length: int | None = DEFAULT_MAX_STRING_LENGTH,
) -> None:
    """Serve `hub`'s devices' metrics on ``host:port`` until `stop` is set (or a signal).

    `timeout` (seconds > 0, default the hub's ``request_timeout``) bounds each device's
    answer to a scrape; `max_string_length` is as for :class:`SensorExporter`.

    Raises
    ------
    OSError
        If the address cannot be bound.
    ValueError
        If a filter is not a valid regular expression.
    """
    stop = stop or asyncio.Event()
    route = metrics_route(hub, device_filter, sensor_filter, timeout, max_string_length)
    app = tornado.web.Application([route], log_function=_log_request)
    sockets = tornado.netutil.bind_sockets(port, host or None, family=socket.AF_UNSPEC)
    bound = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        with stop_on_signals(stop):
            await hub.start()
            shown = f"[{host}]" if ":" in host else host
            names = ", ".join(hub.device_names) or "no devices"
            print(f"katcpx-exporter: {names} at http://{shown}:{bound}{METRICS_PATH}", flush=True)
            waiting = asyncio.ensure_future(_warn_unreachable(hub, timeout or hub.request_timeout))
            try:
                await stop.wait()
            finally:
                waiting.cancel()
    finally:
        server.stop()
        await server.close_all_connections()
        await hub.stop()
        print("katcpx-exporter: stopped.", flush=True)


async def _warn_unreachable(hub: DeviceHub, seconds: float) -> None:
    """WARNING for each device still not connected `seconds` after start (the client itself
    only logs its retries at INFO)."""
    names = hub.device_names
    waits = [hub.resource(name).wait_connected() for name in names]
    if not waits:
        return
    try:
        await asyncio.wait(waits, timeout=seconds)
    finally:
        for fut in waits:
            fut.cancel()  # no-op for those done
    for name, fut in zip(names, waits, strict=True):
        if fut.cancelled():
            log.warning(
                "device %s at %s: not connected after %g s; still trying",
                name,
                hub.resource(name).address_string,
                seconds,
            )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Prometheus scrapes every few seconds: successful requests are DEBUG, not INFO.
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING
    request = handler.request
    log.log(level, "%d %s %s (%s)", status, request.method, request.uri, request.remote_ip)


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``katcpx-exporter``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        specs = [parse_device(d) for d in args.devices]
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(args.log_level)
    included = [s for s in specs if re.search(args.device_filter, s.name)]
    if not included:
        log.warning(
            "--device-filter %r excludes every device given (%s): /metrics will have none",
            args.device_filter,
            ", ".join(s.name for s in specs),
        )
    try:
        # Excluded devices are not connected to at all.
        hub = DeviceHub(included, request_timeout=args.timeout, logger=log)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(
            run(
                hub,
                host,
                port,
                args.device_filter,
                args.sensor_filter,
                timeout=args.timeout,
                max_string_length=args.max_string_length,
            )
        )
    except OSError as exc:
        print(
            f"katcpx-exporter: cannot listen on {host}:{port} (--listen {args.listen}): "
            f"{exc.strerror or exc}; {_LISTEN_HINT}",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:
        print(f"katcpx-exporter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
