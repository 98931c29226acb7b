"""``katcpx-gateway``: carry KATCP devices' sensors into Redis for ``katcpx-web --redis``.

Devices are named as for ``katcpx-web`` (``[name=]host:port`` arguments and/or the same
JSON/TOML config file, read by :func:`katcpx.web._cli.load_config`).

Examples
--------
::

    katcpx-gateway antenna=127.0.0.1:7147 weather=127.0.0.1:7149 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._closed_stdout import quiet_on_closed_stdout
from .._version import __version__
from ..web._cli import devices_and_options, strategy_from
from ..web._redis_keys import DEFAULT_PREFIX

__all__ = ["build_parser", "main", "run"]

log = logging.getLogger("katcpx.gateway")

#: Redis of the gateway unless told otherwise.
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, not {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Return the ``katcpx-gateway`` argument parser."""
    p = argparse.ArgumentParser(
        prog="katcpx-gateway",
        description="Carry KATCP devices' sensors into Redis (one subscription per sensor) "
        "and run control requests from katcpx-web --redis instances.",
    )
    p.add_argument("devices", nargs="*", metavar="DEVICE", help="a device as [name=]host:port")
    p.add_argument("-c", "--config", type=Path, help="katcpx-web's JSON or TOML config file")
    p.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help=f"Redis URL (or 'redis' in the config; default {DEFAULT_URL})",
    )
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default %(default)s)")
    p.add_argument(
        "--sensors", default="", metavar="REGEX", help="carry only sensors whose names match"
    )
    p.add_argument(
        "--maxlen",
        type=_positive(int),
        default=100_000,
        help="approximate readings kept per device stream, 0 for no bound (default %(default)s)",
    )
    p.add_argument(
        "--max-age",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="seconds of readings kept per device stream (default: no age bound)",
    )
    p.add_argument(
        "--buffer",
        type=_positive(int),
        default=1_000_000,
        help="readings held while Redis is unreachable (default %(default)s)",
    )
    p.add_argument(
        "--min-interval",
        type=_positive(float),
        default=None,
        help="rate limit per sensor in seconds, as for katcpx-web (default 0: every change)",
    )
    p.add_argument("--max-interval", type=_positive(float), default=None)
    p.add_argument("--timeout", type=_positive(float), default=None, help="request timeout")
    p.add_argument(
        "--users",
        metavar="FILE",
        help="users file shared with katcpx-web --users: control requests are checked "
        "per web user (docs/security.md)",
    )
    p.add_argument(
        "--takeover",
        action="store_true",
        help="start even if another gateway's heartbeat is live in this Redis database, e.g. "
        "one that just crashed (default: refuse, exit status 2)",
    )
    p.add_argument("--log-level", default=None, help="logging level (default INFO)")
    p.add_argument("--version", action="version", version=f"katcpx-gateway {__version__}")
    return p


async def run(gateway: Any, stop: asyncio.Event | None = None) -> None:
    """Start `gateway`, say so, serve until `stop` is set (or SIGINT/SIGTERM), stop it."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await gateway.start()
        names = ", ".join(gateway.hub.device_names)
        print(f"katcpx-gateway: carrying {names} into {gateway.redis_url}", flush=True)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await gateway.stop()


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``katcpx-gateway``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    specs, options, opt = devices_and_options(parser, args)

    logging.basicConfig(
        level=str(opt("log_level", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not specs:
        parser.error("no devices: give [name=]host:port arguments or --config")
    try:
        from ._service import Gateway, GatewayConflict  # needs redis-py: the 'redis' extra
    except ImportError as exc:
        parser.error(f"{exc}: install katcpx with the 'redis' extra")
    policy = None
    if args.users:
        from ..web._users import load_users
        from ._policy import UserPolicy

        try:
            policy = UserPolicy(load_users(args.users))
        except (OSError, ValueError) as exc:
            # One line, as katcpx-web says it: the usage would hide the error.
            raise SystemExit(f"katcpx-gateway: --users: {exc}") from None
    try:
        strategy = strategy_from(float(opt("min_interval", 0.0)), float(opt("max_interval", 60.0)))
        gateway = Gateway(
            specs,
            str(opt("redis", DEFAULT_URL)),
            prefix=args.prefix,
            strategy=strategy,
            sensors=args.sensors,
            maxlen=args.maxlen,
            max_age=args.max_age or None,
            buffer_limit=max(args.buffer, 1),
            request_timeout=float(opt("timeout", 5.0)),
            policy=policy,
            takeover=args.takeover,
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run(gateway))
    except GatewayConflict as exc:
        print(f"katcpx-gateway: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
