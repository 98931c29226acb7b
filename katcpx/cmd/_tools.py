"""The non-interactive modes: one request, and the ``get``/``list``/``monitor`` tools.

Each tool is a coroutine taking parsed options and returning the exit status; failures meant
for people are raised as :class:`~katcpx.cmd.CmdError`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..errors import ConnectionLost, FailReplyError, InvalidReply, RequestFailed, RequestTimeout
from ..message import Message
from ._advice import regex_hint, sampling_params, strategy_hint
from ._connection import EXIT_ERROR, EXIT_FAIL, CmdClient, CmdError, connect, server_major
from ._grammar import TOOLS
from ._printable import dump_json, printable
from ._render import (
    SEVERITY,
    SensorInfo,
    SensorUpdate,
    decode,
    render_message,
    render_table,
    render_update,
    update_row,
)
from ._shell_notes import stop_requests

__all__ = ["Output", "get", "list_", "monitor", "one_shot", "request_name"]


@dataclass
class Output:
    """Where and how the tools print.

    Attributes
    ----------
    color
        Use ANSI colours.
    out, err
        The streams for results and for error lines.
    """

    color: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str) -> None:
        """Print one line of results (flushed: monitors and pipes want it now)."""
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        """Print one error line on stderr (device text in it shown escaped)."""
        print(f"katcp-cmd: {printable(text, backslash=False)}", file=self.err, flush=True)

    def waiting(self, address: tuple[str, int]) -> Callable[[str], None]:
        """What ``--wait`` says (on stderr) when the server is not there yet."""

        def say(reason: str) -> None:
            self.error(f"{address[0]}:{address[1]}: {reason}; waiting for it (Ctrl-C to give up)")

        return say


async def _connect(
    address: tuple[str, int],
    output: Output,
    timeout: float,
    user_timeout: float | None,
    wait: bool,
    verbose: bool,
    ssl_context: ssl.SSLContext | None,
) -> CmdClient:
    """Connect for a tool (see :func:`~katcpx.cmd._connection.connect`)."""
    return await connect(
        address,
        timeout=timeout,
        verbose=verbose,
        user_timeout=user_timeout,
        wait=wait,
        on_wait=output.waiting(address),
        ssl_context=ssl_context,
    )


def request_name(word: str) -> str:
    """The request name from a typed word: the ``?`` is optional.

    Raises
    ------
    CmdError
        If the word is not a valid KATCP name.
    """
    name = word[1:] if word.startswith("?") else word
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name):
        raise CmdError(f"not a request name: {word!r}")
    return name


def failure_status(exc: RequestFailed) -> int:
    """Exit status for a failed request: 1 if the server said no, 2 if it never answered."""
    return EXIT_FAIL if isinstance(exc, FailReplyError | InvalidReply) else EXIT_ERROR


def describe_failure(name: str, exc: RequestFailed, client: CmdClient | None = None) -> str:
    """One line about a request that got no reply (with `client`: its timeout and the fix)."""
    if isinstance(exc, RequestTimeout):
        if client is not None:
            return f"?{name}: {client.describe_timeout(name)}"
        return f"?{name}: no reply: {exc}"
    if isinstance(exc, ConnectionLost):
        return f"?{name}: connection lost: {exc}"
    return f"?{name}: {exc}"


async def _stop_requests_of(client: CmdClient, name: str) -> list[str]:
    """The device's requests that could stop `name` (from ``?help``; [] if it cannot say)."""
    client.on_inform = None  # the ?help informs are for us, not output
    try:
        _, informs = await client.call("help", timeout=2.0)
    except (RequestFailed, OSError, asyncio.CancelledError):
        return []
    requests = {decode(m.arguments[0]): "" for m in informs if m.arguments}
    return stop_requests(name, requests)


async def one_shot(
    address: tuple[str, int],
    words: list[str],
    *,
    timeout: float,
    user_timeout: float | None = None,
    wait: bool = False,
    informs: bool,
    replies: bool,
    output: Output,
    verbose: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Send one request, print its informs and reply, and return the exit status."""
    name = request_name(words[0])
    client = await _connect(address, output, timeout, user_timeout, wait, verbose, ssl_context)

    def on_inform(msg: Message, unsolicited: bool) -> None:
        if informs and not unsolicited:
            output.line(render_message(msg, color=output.color))

    client.on_inform = on_inform
    try:
        reply, _ = await client.tracked_call(name, *words[1:])
    except asyncio.CancelledError:  # Ctrl-C: say what happens to the request
        host, port = address
        stops = await _stop_requests_of(client, name)
        how = (
            "to stop it, send " + " or ".join(f"?{s} (katcp-cmd {host}:{port} {s})" for s in stops)
            if stops
            else "to stop it, send the device's stop request if it has one (katcp-cmd list "
            f"{host}:{port} --requests --filter 'stop|abort')"
        )
        output.error(
            f"interrupted: ?{name} was sent and continues on the device at {host}:{port} "
            f"until it replies (KATCP cannot cancel a request); {how}"
        )
        raise
    except (FailReplyError, InvalidReply) as exc:
        if replies and exc.reply is not None:
            output.line(render_message(exc.reply, color=output.color))
        if isinstance(exc, InvalidReply) and name in TOOLS:
            host, port = address
            output.error(
                f"the device has no ?{name} request; for katcp-cmd's {name} tool put "
                f"the tool name first: katcp-cmd {name} {host}:{port} ..."
            )
        return EXIT_FAIL
    except RequestFailed as exc:
        output.error(describe_failure(name, exc, client))
        return EXIT_ERROR
    finally:
        await client.aclose()
    if replies:
        output.line(render_message(reply, color=output.color))
    return 0


async def _sensor_infos(
    client: CmdClient, names: list[str], output: Output
) -> tuple[dict[str, SensorInfo], bool]:
    """``?sensor-list`` each name (a ``/regex/`` too); report unknown ones.

    Returns the sensors found and whether every name matched.
    """
    infos: dict[str, SensorInfo] = {}
    all_found = True
    for name in names:
        # A /regex/ Python cannot read is still sent: the device's words come first.
        hint = regex_hint(name)
        try:
            _, informs = await client.tracked_call("sensor-list", name)
        except (FailReplyError, InvalidReply) as exc:
            what = "sensor pattern" if hint else "unknown sensor"
            output.error(f"{what} {name!r}: {exc}{hint}")
            all_found = False
            continue
        if not informs:
            output.error(f"no sensor matches {name!r}{hint}")
            all_found = False
        for inform in informs:
            info = SensorInfo.from_inform(inform)
            infos[info.name] = info
    return infos, all_found


async def get(
    address: tuple[str, int],
    names: list[str],
    *,
    timeout: float,
    user_timeout: float | None = None,
    wait: bool = False,
    fmt: str | None,
    as_json: bool,
    output: Output,
    verbose: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Print value, status and timestamp of sensors (like ``caproto-get``)."""
    client = await _connect(address, output, timeout, user_timeout, wait, verbose, ssl_context)
    try:
        infos, all_found = await _sensor_infos(client, names, output)
        updates: list[SensorUpdate] = []
        for name in infos:
            try:
                _, informs = await client.tracked_call("sensor-value", name)
            except (FailReplyError, InvalidReply) as exc:
                output.error(f"{name}: {exc}")
                all_found = False
                continue
            for inform in informs:
                updates.extend(SensorUpdate.from_inform(inform, infos, server_major(client)))
    except RequestFailed as exc:
        raise CmdError(describe_failure("sensor-value", exc, client), failure_status(exc)) from None
    finally:
        await client.aclose()
    if fmt is None and not as_json:
        styles = [SEVERITY.get(u.status, "") for u in updates] if output.color else []
        lines = render_table([update_row(u) for u in updates], styles)
    else:
        lines = [_render(u, fmt, as_json, output) for u in updates]
    for line in lines:
        output.line(line)
    return 0 if all_found else EXIT_FAIL


def _render(
    update: SensorUpdate, fmt: str | None, as_json: bool, output: Output, width: int = 0
) -> str:
    try:
        return render_update(update, fmt=fmt, as_json=as_json, color=output.color, width=width)
    except (KeyError, IndexError, ValueError) as exc:
        raise CmdError(
            f"bad --format {fmt!r}: {exc!s}; fields are name, value, status, timestamp, "
            "time, units, type, description"
        ) from None


async def list_(
    address: tuple[str, int],
    *,
    timeout: float,
    user_timeout: float | None = None,
    wait: bool = False,
    pattern: str | None,
    requests: bool,
    as_json: bool,
    output: Output,
    verbose: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """List sensors (name, type, units, description), or requests with ``--requests``."""
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise CmdError(f"bad --filter regular expression {pattern!r}: {exc}") from None
    client = await _connect(address, output, timeout, user_timeout, wait, verbose, ssl_context)
    try:
        _, informs = await client.tracked_call("help" if requests else "sensor-list")
    except RequestFailed as exc:
        raise CmdError(describe_failure("sensor-list", exc, client), failure_status(exc)) from None
    finally:
        await client.aclose()
    rows: list[list[str]] = []
    shown = 0
    for inform in informs:
        args = [decode(a) for a in inform.arguments]  # escaped when printed as text
        if not args or (regex is not None and not regex.search(args[0])):
            continue
        if requests:
            row = [args[0], args[1] if len(args) > 1 else ""]
            record: dict[str, Any] = {"name": row[0], "description": row[1]}
        else:
            info = SensorInfo.from_inform(inform)
            row = [info.name, info.type, info.units, info.description]
            record = {
                "name": info.name,
                "type": info.type,
                "units": info.units,
                "description": info.description,
                "params": info.params,
            }
        shown += 1
        if as_json:
            output.line(dump_json(record))
        else:
            rows.append(row)
    if requests:
        # Request descriptions run over several lines; the first is the summary.
        rows = [[r[0], r[1].strip().splitlines()[0] if r[1].strip() else ""] for r in rows]
    rows = [[printable(cell) for cell in row] for row in rows]
    for line in render_table(rows):
        output.line(line)
    if not shown:  # an empty list says why, rather than printing nothing
        what = "requests" if requests else "sensors"
        if informs:
            output.error(
                f"none of the {len(informs)} {what} matches --filter {pattern!r}; "
                f"without --filter all are listed"
            )
        else:
            output.error(f"the device lists no {what}")
        return EXIT_FAIL
    return 0


async def monitor(
    address: tuple[str, int],
    names: list[str],
    *,
    timeout: float,
    user_timeout: float | None = None,
    wait: bool = False,
    strategy: list[str],
    duration: float | None,
    maximum: int | None,
    fmt: str | None,
    as_json: bool,
    output: Output,
    verbose: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Set a sampling strategy on sensors and print their updates (like ``caproto-monitor``).

    Stops after `duration` seconds or `maximum` updates, or when interrupted; exits with 2
    if the connection drops. A monitored sensor that the device removes is reported on
    stderr; one it adds back or replaces (``#interface-changed``) is reported and gets the
    strategy again.
    """
    client = await _connect(address, output, timeout, user_timeout, wait, verbose, ssl_context)
    done = asyncio.get_running_loop().create_future()
    count = 0
    tasks: set[asyncio.Future[None]] = set()  # strategies set again, held until done
    try:
        infos, all_found = await _sensor_infos(client, names, output)
        if not all_found:
            return EXIT_FAIL
        width = max(len(n) for n in infos)
        major = server_major(client)

        async def set_strategy(name: str) -> None:
            # --period and strategy parameters are seconds; a v4 server reads ms.
            wire, problem = sampling_params(strategy, major, infos[name].type)
            try:
                await client.tracked_call("sensor-sampling", name, strategy[0], *wire)
            except (FailReplyError, InvalidReply) as exc:
                # The server's words, then what katcp-cmd knows that may help.
                hint = strategy_hint(strategy, major, problem)
                raise CmdError(
                    f"cannot set strategy {' '.join(strategy)!r} on {name}: {exc}{hint}",
                    EXIT_FAIL,
                ) from None

        async def set_again(name: str) -> None:
            try:
                await set_strategy(name)
            except (CmdError, RequestFailed) as exc:
                if not done.done():
                    done.set_exception(exc)

        def sensor_changed(msg: Message) -> None:
            # A monitored sensor removed, added back or replaced (spec 5.1 section 4.2):
            # say so, and set the strategy again on the sensor the device now has.
            args = msg.arguments
            if args and args[0] != b"sensor":
                return
            changed = [args[1].decode("utf-8", "replace")] if len(args) > 1 else list(infos)
            change = args[2].decode("utf-8", "replace") if len(args) > 2 else "changed"
            for name in changed:
                if name not in infos:
                    continue
                if change == "removed":
                    output.error(f"{name}: removed by the device; no updates until it is back")
                else:
                    output.error(f"{name}: {change} by the device; setting the strategy again")
                    tasks.add(task := asyncio.ensure_future(set_again(name)))
                    task.add_done_callback(tasks.discard)

        def on_inform(msg: Message, unsolicited: bool) -> None:
            nonlocal count
            if msg.name == "interface-changed" and not done.done():
                sensor_changed(msg)
                return
            if msg.name != "sensor-status" or done.done():
                return
            for update in SensorUpdate.from_inform(msg, infos, major):
                if update.name not in infos:
                    continue
                try:
                    output.line(_render(update, fmt, as_json, output, width))
                except CmdError as exc:
                    done.set_exception(exc)
                    return
                count += 1
                if maximum is not None and count >= maximum:
                    done.set_result(None)
                    return

        client.on_inform = on_inform
        for name in infos:
            await set_strategy(name)
        if maximum is not None and count >= maximum:
            return 0
        lost = client.until_disconnected()
        try:
            await asyncio.wait({done, lost}, timeout=duration, return_when="FIRST_COMPLETED")
        finally:
            lost.cancel()
        if done.done():
            done.result()  # raises a --format error
        elif not client.is_connected():
            raise CmdError(f"connection to {address[0]}:{address[1]} lost")
        return 0
    except ConnectionLost:
        # Also while the strategies were being set: the updates may already be printing.
        raise CmdError(f"connection to {address[0]}:{address[1]} lost") from None
    except RequestFailed as exc:
        raise CmdError(
            describe_failure("sensor-sampling", exc, client), failure_status(exc)
        ) from None
    finally:
        if not done.done():
            done.cancel()
        for task in tasks:
            task.cancel()
        await client.aclose()
