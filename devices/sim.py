"""``katcpx-sim``: run simulated KATCP devices from the command line.

Examples
--------
One device::

    katcpx-sim antenna --port 7147

A whole simulated site, one device per port from 7147, 100 times faster than real time::

    katcpx-sim site --speed 100 --seed 1

``python -m katcpx_devices.sim`` (or ``python -m katcpx_devices``) does the same. Ctrl-C or
SIGTERM shuts the servers down cleanly: every connected client receives ``#disconnect``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from katcpx._closed_stdout import quiet_on_closed_stdout
from katcpx.metrics import MetricsEndpoint, serve_metrics
from katcpx.metrics._options import port_number
from katcpx.server.access import load_policy
from katcpx.tls import add_tls_arguments, server_context_from_args

from .servers import DEVICES, SimDeviceServer
from .servers.digitiser import DigitiserServer

__all__ = ["build_parser", "main", "run"]

DEFAULT_PORT = 7147


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be positive and finite, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the ``katcpx-sim`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    common.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        help="simulated seconds per real second (default %(default)s)",
    )
    common.add_argument(
        "--seed", type=int, default=None, help="random seed, for reproducible noise"
    )
    common.add_argument(
        "--channels",
        type=int,
        default=4096,
        help="digitiser: number of channel sensors (default %(default)s)",
    )
    common.add_argument(
        "--rate",
        type=_positive,
        default=1.0,
        help="digitiser: spectra per simulated second (default %(default)s)",
    )
    common.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        help="serve the servers' own Prometheus metrics on this port (0 picks one)",
    )
    common.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Python logging level (default %(default)s)",
    )
    common.add_argument(
        "--access",
        metavar="FILE",
        help="TOML access policy: default role and grants by certificate name or address",
    )
    add_tls_arguments(common, server=True)
    parser = argparse.ArgumentParser(
        prog="katcpx-sim",
        description="Run simulated KATCP devices: one device, or a whole site.",
    )
    sub = parser.add_subparsers(dest="device", required=True, metavar="DEVICE")
    for name, cls in DEVICES.items():
        doc = (cls.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, parents=[common], help=doc, description=doc)
        p.add_argument(
            "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)"
        )
    p = sub.add_parser(
        "site",
        parents=[common],
        help="every device, on consecutive ports",
        description="Run every simulated device, on consecutive ports from --base-port.",
    )
    p.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_PORT,
        help="port of the first device (default %(default)s); 0 picks free ports",
    )
    return parser


def _make_server(name: str, host: str, port: int, args: argparse.Namespace) -> SimDeviceServer:
    cls = DEVICES[name]
    kwargs: dict[str, Any] = {"speed": args.speed, "seed": args.seed}
    if issubclass(cls, DigitiserServer):
        kwargs.update(n_channels=args.channels, update_rate=args.rate)
    return cls(host, port, ssl_context=args.ssl_context, access_policy=args.policy, **kwargs)


def _load_security(args: argparse.Namespace) -> None:
    """Read the TLS files and the access policy once, for every device (exits on errors)."""
    args.ssl_context = server_context_from_args(args, "katcpx-sim")
    args.policy = None
    if args.access:
        try:
            args.policy = load_policy(args.access)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"katcpx-sim: bad --access file: {exc}") from None


async def run(args: argparse.Namespace, out: Any = None) -> int:
    """Start the devices ``args`` asks for, print their table, and serve until signalled.

    Returns the process exit status.
    """
    out = sys.stdout if out is None else out
    _load_security(args)
    if args.device == "site":
        base = args.base_port
        wanted = [(name, base + i if base else 0) for i, name in enumerate(DEVICES)]
    else:
        wanted = [(args.device, args.port)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
            pass

    servers: list[tuple[str, SimDeviceServer]] = []
    endpoint: MetricsEndpoint | None = None
    status = 0
    try:
        for name, port in wanted:
            try:
                server = _make_server(name, args.host, port, args)
                if args.metrics_port is not None:
                    server.enable_metrics(name=name)
                server.start()
                await server.until_running(10.0)
            except OSError as exc:
                option = (
                    "--base-port N (the devices take N, N+1...)"
                    if args.device == "site"
                    else "--port N"
                )
                print(
                    f"katcpx-sim: cannot start {name} on {args.host}:{port}: "
                    f"{exc.strerror or exc}; if another program uses the port, choose "
                    f"another with {option}, or 0 for free ports",
                    file=sys.stderr,
                )
                return 1
            servers.append((name, server))
        if args.metrics_port is not None:
            try:
                endpoint = serve_metrics(args.metrics_port, args.host)
            except OSError as exc:
                print(
                    f"katcpx-sim: cannot serve metrics on {args.host}:{args.metrics_port}: "
                    f"{exc.strerror or exc}; pick another port with --metrics-port PORT "
                    "(0 picks a free one)",
                    file=sys.stderr,
                )
                return 1
            print(f"katcpx-sim: metrics at {endpoint.url}", file=out)
        seed = "none" if args.seed is None else args.seed
        print(
            f"katcpx-sim: {len(servers)} simulated device(s), speed {args.speed:g}, seed {seed}",
            file=out,
        )
        print(f"katcpx-sim: {describe_security(args)}", file=out)
        print(f"{'NAME':<10} {'ADDRESS':<22} VERSION", file=out)
        for name, server in servers:
            host, port = server.bind_address
            address = f"{host or '*'}:{port}"
            print(f"{name:<10} {address:<22} {server.version()}", file=out)
        print("Ctrl-C to stop.", file=out, flush=True)
        # Devices stopped by ?halt end the process once none is left, as a katcp-python
        # server run by a script does (its join() returns): nothing would be listening.
        halted: list[str] = []
        watchers = [  # noqa: F841 - kept referenced while they run
            asyncio.ensure_future(_until_halted(name, server, halted, len(servers), stop, out))
            for name, server in servers
        ]
        # Not cancelled: that would cancel the servers' shared "stopped" future too. They end
        # when the servers stop below, seeing `stop` set.
        await stop.wait()
        if len(halted) == len(servers):
            print("katcpx-sim: every device was halted (?halt); exiting.", file=out, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
        if endpoint is not None:
            endpoint.close()
        # Stop them all at once; each sends #disconnect to its clients first.
        for _, server in servers:
            server.stop()
        for name, server in servers:
            try:
                await server.until_stopped(5.0)
            except Exception as exc:
                print(f"katcpx-sim: {name} did not stop cleanly: {exc}", file=sys.stderr)
                status = 1
    print("katcpx-sim: stopped.", file=out, flush=True)
    return status


async def _until_halted(
    name: str, server: SimDeviceServer, halted: list[str], total: int, stop: asyncio.Event, out: Any
) -> None:
    """Note `name` in `halted` when `server` stops on its own; set `stop` when all have."""
    await server.until_stopped()
    if stop.is_set():
        return
    halted.append(name)
    left = total - len(halted)
    print(f"katcpx-sim: {name} was halted (?halt); {left} device(s) left.", file=out, flush=True)
    if not left:
        stop.set()


def describe_security(args: argparse.Namespace) -> str:
    """One line on how the devices are protected, for the start-up banner."""
    if args.ssl_context is None:
        link = "plain TCP (no TLS)"
    elif args.tls_ca:
        link = "TLS, client certificates required"
    else:
        link = "TLS"
    policy = args.policy
    if policy is None:
        access = "no access policy (every client is admin)"
    else:
        access = f"access policy {args.access} (default role {policy.default_role})"
    return f"{link}; {access}"


#: Options that take a value (so the word after them is no device name).
_VALUE_OPTIONS = frozenset(
    {
        "--host",
        "--speed",
        "--seed",
        "--channels",
        "--rate",
        "--log-level",
        "--port",
        "--base-port",
        "--metrics-port",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--access",
    }
)


def device_first(argv: Sequence[str]) -> list[str]:
    """Move the device name to the front, so options work before it as after it.

    ``katcpx-sim --speed 50 site`` is then ``katcpx-sim site --speed 50``.
    """
    words = list(argv)
    for i, word in enumerate(words):
        if word in DEVICES or word == "site":
            if i > 0 and words[i - 1] in _VALUE_OPTIONS:
                continue
            return [word, *words[:i], *words[i + 1 :]]
        if not word.startswith("-") and (i == 0 or words[i - 1] not in _VALUE_OPTIONS):
            # An unknown device name: first too, so argparse names it (not an option's value).
            return [word, *words[:i], *words[i + 1 :]]
    return words


def misplaced_port_option(argv: Sequence[str]) -> str | None:
    """Say which port option fits, when ``--port`` and ``--base-port`` are mixed up.

    Parameters
    ----------
    argv
        The arguments, device name first (see `device_first`).

    Returns
    -------
    The message, or None if the port options fit the device.
    """
    if not argv:
        return None
    device, options = argv[0], [word.split("=", 1)[0] for word in argv[1:]]
    if device == "site" and "--port" in options:
        return "--port is for one device; use --base-port N for site (the devices take N, N+1...)"
    if device in DEVICES and "--base-port" in options:
        return f"--base-port is for `site`; use --port N for one device ({device})"
    return None


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``katcpx-sim``; returns the exit status."""
    words = device_first(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    misplaced = misplaced_port_option(words)
    if misplaced is not None:
        parser.error(misplaced)
    args = parser.parse_args(words)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
