"""Command line of ``katcp-cmd``: argument parsing and dispatch to the shell or a tool.

``katcp-cmd [options] [HOST:PORT] [REQUEST [ARG...]]`` opens the interactive shell, or sends
one request (kcpcmd-style, also with ``-s`` / ``$KATCP_SERVER``). ``katcp-cmd TOOL ...`` runs
one of the tools ``get``, ``request``, ``list`` and ``monitor``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from .._closed_stdout import quiet_on_closed_stdout
from ..tls import add_tls_arguments, client_context_from_args
from ._connection import (
    EXIT_ERROR,
    CmdError,
    bad_port_message,
    looks_like_address,
    parse_address,
)
from ._grammar import arrange
from ._render import color_enabled
from ._tools import Output, get, list_, monitor, one_shot

__all__ = ["main"]

PROG = "katcp-cmd"
DEFAULT_TIMEOUT = 5.0

_MAIN_EPILOG = f"""\
tools (run '{PROG} TOOL --help'):
  get HOST:PORT SENSOR...        print value, status and time of sensors
  request HOST:PORT NAME ARG...  send one request (same as the one-shot form)
  list HOST:PORT [--requests]    list sensors (or requests), optionally --filter'ed
  monitor HOST:PORT SENSOR...    print sensor updates under a sampling strategy

The server may also be given with -s or $KATCP_SERVER; a bare PORT means localhost.
The options -s, -t, --color, --no-color, -v and --wait go before or after the tool name
or address, never after a request name (there they are request arguments; -- before a
word sends it as is).
Exit status: 0 ok, 1 fail/invalid reply or unknown sensor, 2 connection, timeout or
usage error.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors say the program name once and exit with 2."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        raise CmdError(message)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s",
        "--server",
        metavar="HOST:PORT",
        help="server address (default: the first argument, or $KATCP_SERVER)",
    )
    parser.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"connection and request timeout. Given, it is used as is, also for requests "
        f"for which the device hints a longer time (?request-timeout-hint); by default "
        f"{DEFAULT_TIMEOUT:g}, or the device's hint when that is longer",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if the server is not there, keep trying until it is (Ctrl-C gives up)",
    )
    parser.add_argument(
        "--color",
        dest="color",
        action="store_true",
        default=None,
        help="colour output even when not on a terminal",
    )
    parser.add_argument(
        "--no-color", dest="color", action="store_false", help="never colour output ($NO_COLOR)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log connection activity to stderr"
    )
    add_tls_arguments(parser)


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--format",
        metavar="FMT",
        help="format each reading with str.format fields {name} {value} {status} "
        "{timestamp} {time} {units} {type} {description}",
    )


def build_main_parser() -> argparse.ArgumentParser:
    """The parser of the shell / one-shot form."""
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [options] [HOST:PORT] [REQUEST [ARG...]]\n       {PROG} TOOL ...",
        description="Talk to a KATCP device: an interactive shell when no request is "
        "given, otherwise send the request, print its informs and reply, and exit.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument(
        "-i", action="store_true", dest="toggle_informs", help="toggle printing of informs"
    )
    parser.add_argument(
        "-r", action="store_true", dest="toggle_replies", help="toggle printing of replies"
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        help="shell history file (default $KATCP_CMD_HISTORY or ~/.katcp_cmd_history)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="start the shell in raw (wire format) mode"
    )
    parser.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="[HOST:PORT] [REQUEST [ARG...]]",
        help="options go before the request name; the request's ? is optional",
    )
    return parser


def build_tool_parser(tool: str) -> argparse.ArgumentParser:
    """The parser of one tool."""
    descriptions = {
        "get": "Print the value, status and timestamp of sensors ('/regex/' names work).",
        "request": "Send one request; print its informs and reply.",
        "list": "List the server's sensors (or, with --requests, its requests).",
        "monitor": "Set a sampling strategy on sensors and print their updates until "
        "--duration or --maximum, or Ctrl-C.",
    }
    usages = {
        "get": "[HOST:PORT] SENSOR...",
        "request": "[HOST:PORT] NAME [ARG...]",
        "list": "[HOST:PORT]",
        "monitor": "[HOST:PORT] SENSOR...",
    }
    parser = _Parser(
        prog=f"{PROG} {tool}",
        usage=f"{PROG} {tool} [options] {usages[tool]}",
        description=descriptions[tool],
    )
    _common(parser)
    if tool == "request":
        parser.add_argument(
            "-i", action="store_true", dest="toggle_informs", help="toggle printing of informs"
        )
        parser.add_argument(
            "-r", action="store_true", dest="toggle_replies", help="toggle printing of replies"
        )
        parser.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return parser
    parser.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    if tool == "list":
        parser.add_argument("--filter", metavar="REGEX", help="only names matching REGEX")
        parser.add_argument("--requests", action="store_true", help="list requests instead")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        return parser
    _output_options(parser)
    if tool == "monitor":
        parser.add_argument(
            "--strategy",
            nargs="+",
            default=None,
            metavar="STRATEGY",
            help="sampling strategy and parameters, e.g. 'event', 'period 0.5', "
            "'event-rate 0.1 10' (default auto); put it after the sensor names",
        )
        parser.add_argument(
            "-p", "--period", type=float, metavar="SECONDS", help="short for --strategy period"
        )
        parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this")
        parser.add_argument("--maximum", type=int, metavar="N", help="stop after N updates")
    return parser


def _split_server(
    words: list[str], server: str | None, *, need_words: bool
) -> tuple[tuple[str, int] | None, list[str]]:
    """Take the server address from the words, ``-s`` or ``$KATCP_SERVER``."""
    if words and looks_like_address(words[0]):
        if server is not None:
            raise CmdError(f"server given twice: -s {server} and {words[0]}")
        return parse_address(words[0]), words[1:]
    if server is None:
        server = os.environ.get("KATCP_SERVER") or None
    if server is None:
        if need_words and not words:
            return None, words
        if words and (bad := bad_port_message(words[0])) is not None:
            raise CmdError(bad)
        raise CmdError("no server given: use HOST:PORT, -s HOST:PORT or $KATCP_SERVER")
    return parse_address(server), words


def _run(
    coro: Coroutine[Any, Any, int], interrupted: int = 130, *, sigint_cancels: bool = True
) -> int:
    """Run a tool; Ctrl-C ends it with status `interrupted` (128 + SIGINT by default).

    With `sigint_cancels`, Ctrl-C cancels only the tool's own task, so its ``except
    CancelledError`` can still talk to the device (say how to stop a running request), on
    every Python: 3.11's ``asyncio.run`` does this itself, 3.10's cancels every task at once.
    """
    try:
        return asyncio.run(_cancelled_by_sigint(coro, interrupted) if sigint_cancels else coro)
    except KeyboardInterrupt:
        return interrupted


async def _cancelled_by_sigint(coro: Coroutine[Any, Any, int], interrupted: int) -> int:
    """Await `coro`; SIGINT cancels it, and then the result is `interrupted`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    hit = False

    def on_sigint() -> None:
        nonlocal hit
        hit = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here: as before
        return await task
    try:
        return await task
    except asyncio.CancelledError:
        if hit:
            return interrupted
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _timeouts(opts: argparse.Namespace) -> dict[str, Any]:
    """The connection timeout, and the request timeout the user typed (None: not typed)."""
    if opts.timeout is not None and not opts.timeout > 0:
        raise CmdError(f"-t/--timeout must be a positive number of seconds, not {opts.timeout:g}")
    return {
        "timeout": DEFAULT_TIMEOUT if opts.timeout is None else opts.timeout,
        "user_timeout": opts.timeout,
        "wait": opts.wait,
    }


def _dispatch(argv: list[str]) -> int:
    tool, argv = arrange(argv)
    if tool is not None:
        return _dispatch_tool(tool, argv)
    opts = build_main_parser().parse_args(argv)
    address, words = _split_server(list(opts.words), opts.server, need_words=True)
    if address is None:
        build_main_parser().print_help(sys.stderr)
        return EXIT_ERROR
    if words:
        output = Output(color=color_enabled(sys.stdout, opts.color))
        return _run(
            one_shot(
                address,
                words,
                informs=not opts.toggle_informs,
                replies=not opts.toggle_replies,
                output=output,
                verbose=opts.verbose,
                ssl_context=client_context_from_args(opts, PROG),
                **_timeouts(opts),
            )
        )
    from ._shell import run_shell  # prompt_toolkit is only needed here

    return _run(
        run_shell(
            address,
            history=opts.history,
            color=opts.color,
            raw=opts.raw,
            informs=not opts.toggle_informs,
            replies=not opts.toggle_replies,
            verbose=opts.verbose,
            ssl_context=client_context_from_args(opts, PROG),
            **_timeouts(opts),
        ),
        sigint_cancels=False,  # the shell's prompt takes Ctrl-C itself
    )


def _dispatch_tool(tool: str, argv: list[str]) -> int:
    parser = build_tool_parser(tool)
    opts = parser.parse_args(argv)
    address, words = _split_server(list(opts.words), opts.server, need_words=False)
    assert address is not None
    output = Output(color=color_enabled(sys.stdout, opts.color))
    common: dict[str, Any] = {
        "output": output,
        "verbose": opts.verbose,
        "ssl_context": client_context_from_args(opts, PROG),
        **_timeouts(opts),
    }
    if tool == "request":
        if not words:
            raise CmdError("request: no request name given")
        return _run(
            one_shot(
                address,
                words,
                informs=not opts.toggle_informs,
                replies=not opts.toggle_replies,
                **common,
            )
        )
    if tool == "list":
        if words:
            raise CmdError(f"list: unexpected arguments {' '.join(words)!r} (use --filter)")
        return _run(
            list_(address, pattern=opts.filter, requests=opts.requests, as_json=opts.json, **common)
        )
    if not words:
        raise CmdError(f"{tool}: no sensor names given")
    if tool == "get":
        return _run(get(address, words, fmt=opts.format, as_json=opts.json, **common))
    strategy = _strategy(opts.strategy, opts.period)
    if opts.maximum is not None and opts.maximum < 1:
        raise CmdError("--maximum must be at least 1")
    return _run(
        monitor(
            address,
            words,
            strategy=strategy,
            duration=opts.duration,
            maximum=opts.maximum,
            fmt=opts.format,
            as_json=opts.json,
            **common,
        ),
        interrupted=0,  # Ctrl-C is the normal way to stop an open-ended monitor
    )


def _strategy(words: list[str] | None, period: float | None) -> list[str]:
    if words is not None and period is not None:
        raise CmdError("give --strategy or --period, not both")
    if period is not None:
        return ["period", repr(period)]
    if not words:
        return ["auto"]
    # "--strategy 'period 0.5'" arrives as one word.
    return [w for word in words for w in word.split()]


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``katcp-cmd`` and return its exit status.

    Parameters
    ----------
    argv
        The arguments (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    err = Output()
    try:
        return _dispatch(args)
    except CmdError as exc:
        err.error(str(exc))
        return exc.status
