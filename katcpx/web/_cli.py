"""``katcpx-web``: serve KATCP devices to browsers (dashboard, REST API, websocket).

Examples
--------
Two devices, named::

    katcpx-web antenna=127.0.0.1:7147 weather=127.0.0.1:7148 --port 8080

From a config file (JSON or TOML), at most 10 updates a second per sensor::

    katcpx-web --config site.toml --min-interval 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._closed_stdout import quiet_on_closed_stdout
from .._signals import stop_on_signals
from .._version import __version__
from ..metrics._options import (
    add_metrics_options,
    configure_logging,
    log_level,
    positive_seconds,
)
from ._app import WebServer
from ._auth import add_web_security_arguments, device_tls, web_security
from ._hub import DeviceHub, DeviceSpec, parse_device_spec
from ._messages import listen_error
from ._source import SensorSource

__all__ = ["build_parser", "load_config", "main", "run", "strategy_from"]

log = logging.getLogger("katcp.web")

_CONFIG_KEYS = {
    "devices",
    "host",
    "port",
    "min_interval",
    "max_interval",
    "timeout",
    "allowed_origins",
    "log_level",
    "redis",
}


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the ``katcpx-web`` argument parser."""
    p = argparse.ArgumentParser(
        prog="katcpx-web",
        description="Serve KATCP devices to browsers: live dashboard, REST API and websocket.",
    )
    p.add_argument(
        "devices",
        nargs="*",
        metavar="DEVICE",
        help="a device as [name=]host:port (added to those of --config)",
    )
    p.add_argument("-c", "--config", type=Path, help="JSON or TOML file of devices and options")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default 8080)")
    p.add_argument(
        "--min-interval",
        type=_seconds,
        default=None,
        help="rate limit: at most one update per sensor per this many seconds, via the "
        "event-rate strategy (default 0: the event strategy, every change)",
    )
    p.add_argument(
        "--max-interval",
        type=_seconds,
        default=None,
        help="with --min-interval: send a sensor at least this often (default 60)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        help="request timeout; given (here or in --config), it is used as is, also for "
        "requests the device hints need longer; by default a request's hint, else 5",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="another browser origin allowed to open the websocket ('*' for any)",
    )
    add_web_security_arguments(p)
    p.add_argument("--log-level", type=log_level, default=None, help="logging level (default INFO)")
    add_metrics_options(p)
    p.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="serve from the Redis a katcpx-gateway writes to, instead of connecting to "
        "devices (docs/scale-out.md)",
    )
    p.add_argument("--version", action="version", version=f"katcpx-web {__version__}")
    return p


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ModuleNotFoundError:
            raise ValueError("TOML config files need Python 3.11 or the tomli package") from None
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


def load_config(path: Path) -> tuple[list[DeviceSpec], dict[str, Any]]:
    """Read a config file: JSON (``.json``) or TOML (anything else).

    Devices are a table/object ``{name = "host:port"}`` or a list of tables with ``name``
    (optional), ``address`` (``host:port``) or ``host`` and ``port``, and an optional
    ``description``. Other keys: ``host``, ``port``, ``min_interval``, ``max_interval``,
    ``timeout``, ``allowed_origins`` and ``log_level``.

    Returns
    -------
    tuple
        The devices and the other options.

    Raises
    ------
    ValueError
        If the file cannot be parsed or is not of that form.
    """
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = _read_toml(path)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object/table at the top")
    unknown = set(data) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    raw = data.get("devices", [])
    specs: list[DeviceSpec] = []
    if isinstance(raw, dict):
        for name, address in raw.items():
            if not isinstance(address, str):
                raise ValueError(f"{path}: device {name!r}: address must be 'host:port'")
            specs.append(parse_device_spec(f"{name}={address}"))
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, str):
                specs.append(parse_device_spec(item))
                continue
            if not isinstance(item, dict):
                raise ValueError(f"{path}: a device must be a string or a table")
            address = item.get("address")
            if address is None and "port" in item:
                address = f"{item.get('host', '127.0.0.1')}:{item['port']}"
            if not isinstance(address, str):
                raise ValueError(f"{path}: device {item!r} has no address")
            name = item.get("name")
            text = f"{name}={address}" if name else address
            specs.append(parse_device_spec(text, str(item.get("description", ""))))
    else:
        raise ValueError(f"{path}: 'devices' must be a table or a list")
    options = {k: v for k, v in data.items() if k != "devices"}
    return specs, options


def devices_and_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[DeviceSpec], dict[str, Any], Callable[[str, Any], Any]]:
    """The devices and options of a katcpx-web style command line (katcpx-web, katcpx-gateway).

    Devices come from ``--config`` then the positional ``[name=]host:port`` arguments; an
    option given on the command line beats the config file's.

    Returns
    -------
    specs, options, opt
        The device specs, the config file's options, and ``opt(name, default)``: the
        option's command-line value, else the config file's, else `default`.

    Raises
    ------
    SystemExit
        Through ``parser.error`` on a bad config file or device argument.
    """
    specs: list[DeviceSpec] = []
    options: dict[str, Any] = {}
    try:
        if args.config is not None:
            specs, options = load_config(args.config)
        specs += [parse_device_spec(d) for d in args.devices]
    except ValueError as exc:
        parser.error(str(exc))

    def opt(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return options.get(name, default) if value is None else value

    return specs, options, opt


def strategy_from(min_interval: float, max_interval: float = 60.0) -> tuple[str, ...]:
    """The sampling strategy for a rate limit: ``event`` if `min_interval` is 0.

    Raises
    ------
    ValueError
        If `max_interval` is not positive or is below `min_interval`.
    """
    if min_interval <= 0:
        return ("event",)
    if max_interval <= 0 or max_interval < min_interval:
        raise ValueError("max_interval must be positive and at least min_interval")
    return ("event-rate", repr(float(min_interval)), repr(float(max_interval)))


async def run(server: WebServer, stop: asyncio.Event | None = None) -> None:
    """Start `server`, print its URL, serve until `stop` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        try:
            await server.start()
            names = ", ".join(server.hub.device_names) or "no devices"
            if hasattr(server.hub, "check_loaded"):  # --redis: devices come and go with Redis
                names = "the katcpx-gateway's devices (from Redis)"
            print(f"katcpx-web: serving {names} on {server.url}", flush=True)
            await stop.wait()
        finally:
            await server.stop()


def redis_source(
    parser: argparse.ArgumentParser,
    url: str,
    devices: list[str],
    timeout: float,
    strategy_given: bool = False,
) -> SensorSource:
    """The ``--redis`` source (imported only then: it needs the ``redis`` extra).

    The devices are the gateway's: those of a shared config file are left to it, and
    devices on the command line are an error.
    """
    if devices:
        parser.error("--redis serves the gateway's devices: give the devices to katcpx-gateway")
    if strategy_given:
        parser.error("with --redis the gateway samples: give --min-interval to katcpx-gateway")
    try:
        from ._redis_source import RedisSource
    except ImportError as exc:
        parser.error(f"--redis needs redis-py (the 'redis' extra): {exc}")
    return RedisSource(url, request_timeout=timeout)


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``katcpx-web``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    specs, options, opt = devices_and_options(parser, args)

    try:
        configure_logging(log_level(str(opt("log_level", "INFO"))))
    except argparse.ArgumentTypeError as exc:
        parser.error(f"log_level: {exc}")
    redis_url = opt("redis", None)
    if not specs and not redis_url:
        parser.error("no devices: give [name=]host:port arguments or --config")
    hub: SensorSource
    try:
        typed = opt("timeout", None)
        if redis_url:
            given = args.min_interval is not None or args.max_interval is not None
            hub = redis_source(
                parser,
                url=str(redis_url),
                devices=args.devices,
                timeout=float(5.0 if typed is None else typed),
                strategy_given=given,
            )
        else:
            strategy = strategy_from(
                float(opt("min_interval", 0.0)), float(opt("max_interval", 60.0))
            )
            device_hub = DeviceHub(
                specs,
                strategy,
                request_timeout=float(5.0 if typed is None else typed),
                ssl_context=device_tls(args),
            )
            # What the user typed beats device hints.
            device_hub.timeout_wins = typed is not None
            hub = device_hub
        origins = opt("allow_origin", None) or options.get("allowed_origins", [])
        host = str(opt("host", "127.0.0.1"))
        guard, browser_tls = web_security(args, host, tuple(origins), bool(redis_url))
        if redis_url and guard.users is not None:
            from ._redis_source import RedisSource

            if isinstance(hub, RedisSource):
                hub.require_users = True  # refuse control unless the gateway checks users
        metrics = {
            k: getattr(args, k) for k in ("device_filter", "sensor_filter", "max_string_length")
        }
        server = WebServer(
            hub,
            host,
            int(opt("port", 8080)),
            origins,
            guard=guard,
            ssl_context=browser_tls,
            metrics=metrics,
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    guard.announce(host)
    try:
        asyncio.run(run(server))
    except OSError as exc:
        print(f"katcpx-web: {listen_error(exc, server.host, server.port)}", file=sys.stderr)
        return 1
    return 0
