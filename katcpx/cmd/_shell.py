"""The interactive session: a prompt_toolkit prompt that sends what you type as requests.

Replies print when they arrive, so several requests may be in flight; informs the server
sends on its own print above the line being typed (prompt_toolkit's ``run_in_terminal``,
through ``print_formatted_text``). Completion knows the server's requests and sensors and
refreshes on ``#interface-changed``. When stdin is not a terminal the lines are read and
executed one after the other instead (``echo '?help' | katcp-cmd HOST:PORT``).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections import Counter
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import History
from prompt_toolkit.patch_stdout import patch_stdout

from ..client import KatcpClientDisconnected
from ..errors import FailReplyError, InvalidReply, KatcpSyntaxError, RequestFailed
from ..message import Message
from ..parser import MessageParser
from ._advice import regex_hint, sampling_params, strategy_hint
from ._completion import LOCAL_COMMANDS, KatcpCompleter, history_path, open_history
from ._connection import EXIT_ERROR, EXIT_FAIL, CmdClient, CmdError, connect, server_major
from ._printable import printable, split_words, unescape_raw
from ._render import color_enabled, decode, paint, render_message
from ._shell_notes import offer_to_wait, stop_requests
from ._tools import Output, describe_failure, request_name

__all__ = ["Shell", "run_shell"]

#: The informs of a connection's greeting (``#version-connect``; KATCP v4's ``#version`` and
#: ``#build-state``).
GREETING_INFORMS = frozenset({"version-connect", "version", "build-state"})

HELP = """\
Type requests as on telnet: '?sensor-value cpu.temp' (the '?' is optional). Quote
arguments that contain spaces ('?set-name "my device"'); katcp-cmd does the KATCP
escaping. Tab completes request and sensor names. ?help lists the server's requests.
Local commands:
"""


class Shell:
    """One interactive (or scripted) session on a connected client.

    Parameters
    ----------
    client
        The connected client (with auto-reconnect on).
    address
        ``(host, port)`` for the prompt and status lines.
    color
        Colour the output.
    raw
        Start in raw mode.
    informs, replies
        Whether to print the informs and the replies of requests.
    """

    def __init__(
        self,
        client: CmdClient,
        address: tuple[str, int],
        *,
        color: bool,
        raw: bool = False,
        informs: bool = True,
        replies: bool = True,
    ) -> None:
        self.client = client
        self.address = f"{address[0]}:{address[1]}"
        self.color = color
        self.raw = raw
        self.show_informs = informs
        self.show_replies = replies
        #: Request names (from ``?help``) and sensor names (from ``?sensor-list``) with a
        #: one-line description, for completion.
        self.requests: dict[str, str] = {}
        self.sensors: dict[str, str] = {}
        #: Sensor name -> the strategy (and parameters) set by /watch or /strategy.
        self.watches: dict[str, list[str]] = {}
        self.connected = client.is_connected()
        self.status = 0
        self.session: PromptSession[str] | None = None
        self._quiet: Counter[str] = Counter()
        self._raw_in_flight: Counter[str] = Counter()
        # Set while no raw-mode request awaits its reply (a script waits for it).
        self._raw_idle = asyncio.Event()
        self._raw_idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh_task: asyncio.Task[None] | None = None
        # The first connection's greeting is shown once, by show_versions (interactive mode:
        # the names it showed), and never in script output; connecting may return before
        # all of it has arrived. Later connections' greetings print as they come.
        self._first_connection = True
        self._greeting_shown: set[str] | None = None
        client.on_inform = self._on_inform
        client.on_reply = self._on_reply
        if client.role is not None:
            # The server's #access-role arrived with its greeting, before this shell.
            self.note("role {} ({})".format(*client.role))

    # -- output ------------------------------------------------------------------------------

    def emit(self, text: str) -> None:
        """Print a line; while the prompt runs it goes above it, leaving the typing intact."""
        if self.session is None:
            print(text, flush=True)
        else:
            print_formatted_text(ANSI(text) if self.color else text)

    def note(self, text: str, style: str = "note") -> None:
        """Print one of katcp-cmd's own remarks (``-- ...``; device text in it escaped)."""
        self.emit(paint(f"-- {printable(text, backslash=False)}", style, self.color))

    def error(self, text: str, status: int = EXIT_ERROR) -> None:
        """Report a line that failed; the scripted session's exit status is then at least
        `status` (2, a usage or connection error, by default; 1 for a refusal)."""
        self.status = max(self.status, status)
        self.note(text, "error")

    def show(self, msg: Message, unsolicited: bool = False) -> None:
        """Print a message in the current mode."""
        self.emit(render_message(msg, color=self.color, raw=self.raw, unsolicited=unsolicited))

    def _invalidate(self) -> None:
        if self.session is not None and self.session.app.is_running:
            self.session.app.invalidate()

    def prompt_message(self) -> ANSI:
        """The prompt: the address, flagged while disconnected."""
        mode = "raw " if self.raw else ""
        if self.connected:
            return ANSI(paint(f"{mode}{self.address}> ", "ok", self.color))
        return ANSI(paint(f"[disconnected] {mode}{self.address}> ", "fail", self.color))

    def toolbar(self) -> str:
        """The bottom toolbar: connection state and what the session is doing."""
        if not self.connected:
            return f" DISCONNECTED from {self.address}, reconnecting...  /help for help"
        flags = self.client.protocol_flags
        parts = [f" connected to {self.address}", f"katcp {flags}" if flags else ""]
        if self.client.role is not None:
            parts.append(printable("role {} ({})".format(*self.client.role), backslash=False))
        parts.append(f"{len(self.requests)} requests, {len(self.sensors)} sensors")
        if self.watches:
            parts.append(f"watching {len(self.watches)}")
        if self.raw:
            parts.append("RAW")
        parts.append("/help for help")
        return "  |  ".join(p for p in parts if p)

    # -- messages from the client -------------------------------------------------------------

    def show_versions(self) -> None:
        """Print the ``#version-connect`` informs of the connection, as a reconnection does.

        They arrive while connecting, before the shell prints anything.
        """
        self._greeting_shown = set(self.client.versions)
        for name, values in self.client.versions.items():
            if name in ("version", "build-state"):  # KATCP v4
                self.show(Message.inform(name, *values), unsolicited=True)
            else:
                self.show(Message.inform("version-connect", name, *values), unsolicited=True)

    def interrupted(self) -> None:
        """Ctrl-C at the prompt: say what happens to the requests still running."""
        running = [
            n for n, count in self.client.in_flight.items() if count > self._quiet[n] and count
        ]
        if not running:
            self.note("Ctrl-C: nothing running; /quit or Ctrl-D leaves")
            return
        for name in running:
            stops = stop_requests(name, self.requests)
            how = (
                "to stop it, send " + " or ".join(f"?{s}" for s in stops)
                if stops
                else "KATCP cannot cancel a request and the device lists no stop request "
                "for it; /quit leaves without waiting"
            )
            self.note(
                f"Ctrl-C: ?{name} continues on the device (its informs and reply still print "
                f"here); {how}",
                "error",
            )

    def _is_shown_greeting(self, msg: Message) -> bool:
        """Whether `msg` belongs to the first connection's greeting, shown by
        :meth:`show_versions` or not at all (script mode)."""
        if msg.name not in GREETING_INFORMS or not self._first_connection:
            return False
        if self._greeting_shown is None:
            return True
        name = msg.name
        if name == "version-connect":
            name = decode(msg.arguments[0]) if msg.arguments else ""
        return name in self._greeting_shown

    def _on_inform(self, msg: Message, unsolicited: bool) -> None:
        if self._is_shown_greeting(msg):
            return
        if msg.name == "interface-changed":
            self.schedule_refresh()
        if self._quiet[msg.name] and not unsolicited:
            return
        if unsolicited or self.show_informs:
            self.show(msg, unsolicited)

    def _on_reply(self, msg: Message) -> None:
        # A reply to a raw-mode request (no call waits for those), or a late one.
        if self._raw_in_flight[msg.name] > 0:
            self._forget_raw({msg.name: 1})
        if self.show_replies:
            self.show(msg)
        if msg.arguments[:1] != [b"ok"]:
            self.status = max(self.status, EXIT_FAIL)

    # -- completion data ----------------------------------------------------------------------

    async def _quiet_call(self, name: str, *args: Any) -> list[Message] | None:
        """Make a request whose informs are for katcp-cmd, not the screen."""
        return (await self._quiet_call_reason(name, *args))[0]

    async def _quiet_call_reason(
        self, name: str, *args: Any
    ) -> tuple[list[Message] | None, str | None]:
        """:meth:`_quiet_call`, also returning why it failed (None when it did not)."""
        self._quiet[name] += 1
        try:
            _, informs = await self.client.tracked_call(name, *args)
        except RequestFailed as exc:
            return None, str(exc)
        finally:
            self._quiet[name] -= 1
        return informs, None

    async def refresh(self, announce: bool = False) -> None:
        """Fetch request names (``?help``) and sensor names (``?sensor-list``)."""
        helps = await self._quiet_call("help")
        if helps is not None:
            self.requests = {
                decode(m.arguments[0]): _summary(m.arguments[1:]) for m in helps if m.arguments
            }
        sensors = await self._quiet_call("sensor-list")
        if sensors is not None:
            self.sensors = {
                decode(m.arguments[0]): _summary(m.arguments[1:2]) for m in sensors if m.arguments
            }
        if announce:
            self.note(
                f"completions updated: {len(self.requests)} requests, {len(self.sensors)} sensors"
            )
        self._invalidate()

    def schedule_refresh(self) -> None:
        """Refresh the completion data in the background (after ``#interface-changed``)."""
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = self._spawn(self.refresh(announce=True))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def watch_connection(self) -> None:
        """Report connection loss and recovery; restore watches after reconnecting."""
        client = self.client
        while True:
            await client.until_disconnected()
            self._first_connection = False
            self.connected = False
            self._forget_raw(dict(self._raw_in_flight))  # their replies will never come
            self.note(f"connection to {self.address} lost; reconnecting...", "fail")
            self._invalidate()
            await client.until_connected()
            await client.until_ready()
            self.connected = True
            self.note(f"reconnected to {self.address}", "ok")
            self._invalidate()
            await self.refresh()
            for sensor, strategy in list(self.watches.items()):
                await self.set_strategy(sensor, strategy, announce=False)

    # -- executing lines ----------------------------------------------------------------------

    async def execute(self, line: str, *, wait: bool = False) -> bool:
        """Execute one typed line; return False to end the session.

        Parameters
        ----------
        line
            What was typed.
        wait
            Wait for the reply before returning (scripted use); otherwise the request runs
            in the background and its reply prints when it arrives.
        """
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return await self.local_command(line)
        if self.raw:
            name = self.send_raw(line)
            if wait and name is not None:
                await self._wait_raw_reply(name)
            return True
        try:
            words = split_words(line)
            name = request_name(words[0])
        except ValueError as exc:
            self.error(f"cannot parse: {exc}")
            return True
        except CmdError as exc:
            self.error(str(exc))
            return True
        task = self._spawn(self.request(name, words[1:]))
        if wait:
            await task
        return True

    async def request(self, name: str, args: list[str]) -> None:
        """Send a request and print its reply (its informs print as they arrive)."""
        try:
            reply, _ = await self.client.tracked_call(name, *args)
        except (FailReplyError, InvalidReply) as exc:
            self.status = max(self.status, EXIT_FAIL)
            if exc.reply is not None and self.show_replies:
                self.show(exc.reply)
            return
        except RequestFailed as exc:
            self.error(describe_failure(name, exc, self.client))
            return
        if self.show_replies:
            self.show(reply)

    async def _wait_raw_reply(self, name: str) -> None:
        """Wait (in a script) until the raw-mode requests sent have their replies."""
        timeout = self.client.user_timeout or self.client.default_timeout(name)
        try:
            await asyncio.wait_for(self._raw_idle.wait(), timeout)
        except asyncio.TimeoutError:
            self.error(f"?{name}: {self.client.describe_timeout(name)}")

    def send_raw(self, line: str) -> str | None:
        """Send a line in wire format, as typed (a missing ``?`` is added).

        Returns the name of the request sent, or None (not a request, or not sent).
        """
        if line[0] not in "?!#":
            line = "?" + line
        try:
            # \xNN (as raw mode prints non-printable characters) is read back first.
            # Bytes that were not UTF-8 where typed (surrogate-escaped) go out as typed.
            msg = MessageParser().parse(unescape_raw(line).encode("utf-8", "surrogateescape"))
        except KatcpSyntaxError as exc:
            self.error(f"not a KATCP message: {exc}")
            return None
        except UnicodeEncodeError as exc:
            self.error(
                f"not a KATCP message: U+{ord(exc.object[exc.start]):04X} at column "
                f"{exc.start + 1} has no UTF-8 form (a lone surrogate)"
            )
            return None
        try:
            self.client.send_message(msg)
        except KatcpClientDisconnected:
            self.error("not connected")
            return None
        if msg.mtype != Message.REQUEST:
            return None
        # Its informs are then shown as the request's, not as unsolicited ones.
        self.client.in_flight[msg.name] += 1
        self._raw_in_flight[msg.name] += 1
        self._raw_idle.clear()
        return msg.name

    def _forget_raw(self, counts: dict[str, int]) -> None:
        """Stop counting raw-mode requests as in flight (replied, or connection lost)."""
        for name, count in counts.items():
            for counter in (self.client.in_flight, self._raw_in_flight):
                counter[name] -= count
                if counter[name] <= 0:
                    del counter[name]
        if not self._raw_in_flight:
            self._raw_idle.set()

    async def local_command(self, line: str) -> bool:
        """Run a ``/command``."""
        try:
            words = split_words(line)
        except ValueError as exc:
            self.error(f"cannot parse: {exc}")
            return True
        command, args = words[0], words[1:]
        if command in ("/quit", "/exit", "/q"):
            return False
        if command == "/help":
            width = max(len(c) for c in LOCAL_COMMANDS)
            lines = [f"  {c:<{width}}  {h}" for c, h in LOCAL_COMMANDS.items()]
            self.emit(HELP + "\n".join(lines))
        elif command == "/raw":
            self.raw = not self.raw
            self.note(
                "raw mode on: lines go out as typed (escaped), messages show as sent"
                if self.raw
                else "raw mode off"
            )
            self._invalidate()
        elif command == "/watch":
            if not args:
                self.error("usage: /watch SENSOR... [PERIOD]")
                return True
            strategy = ["event"]
            if len(args) > 1 and _is_number(args[-1]):
                strategy = ["period", args.pop()]
            for sensor in await self.expand_sensors(args):
                await self.set_strategy(sensor, strategy)
        elif command == "/unwatch" and args:
            for sensor in await self.expand_sensors(args):
                if sensor in self.watches:
                    await self.set_strategy(sensor, ["none"])
                else:
                    watched = ", ".join(self.watches) or "nothing"
                    self.error(f"{sensor} was not watched (watched: {watched})")
        elif command == "/unwatch" and not self.watches:
            self.note("nothing is watched; /watch SENSOR starts watching")
        elif command == "/unwatch":
            for sensor in args or list(self.watches):
                await self.set_strategy(sensor, ["none"])
        elif command == "/strategy":
            if len(args) < 2:
                self.error("usage: /strategy SENSOR STRATEGY [PARAM...]")
                return True
            await self.set_strategy(args[0], args[1:])
        else:
            self.error(f"unknown command {command}; /help lists them")
        return True

    async def expand_sensors(self, names: list[str]) -> list[str]:
        """Sensor names, with each ``/regex/`` replaced by the sensors it matches (as for
        ``?sensor-list`` and ``katcp-cmd get``)."""
        sensors: list[str] = []
        for name in names:
            if not (len(name) > 1 and name.startswith("/") and name.endswith("/")):
                sensors.append(name)
                continue
            # Sent even when Python cannot read it: the device may; its words come first.
            hint = regex_hint(name)
            informs, refusal = await self._quiet_call_reason("sensor-list", name)
            matched = [decode(m.arguments[0]) for m in informs or [] if m.arguments]
            if refusal is not None:
                self.error(f"{name}: {refusal}{hint}", EXIT_FAIL)
            elif not matched:
                self.error(f"no sensor matches {name}{hint}", EXIT_FAIL)
            sensors.extend(matched)
        return sensors

    async def set_strategy(self, sensor: str, strategy: list[str], announce: bool = True) -> bool:
        """Set a sensor's sampling strategy and remember it for reconnections."""
        major = server_major(self.client)
        # Parameters are seconds here; a v4 server reads milliseconds.
        wire, problem = sampling_params(strategy, major)
        try:
            await self.client.tracked_call("sensor-sampling", sensor, strategy[0], *wire)
        except (FailReplyError, InvalidReply) as exc:
            # The server's words, then what katcp-cmd knows that may help.
            hint = strategy_hint(strategy, major, problem)
            self.error(
                f"cannot set strategy {' '.join(strategy)!r} on {sensor}: {exc}{hint}", EXIT_FAIL
            )
            return False
        except RequestFailed as exc:
            self.error(f"cannot set strategy {' '.join(strategy)!r} on {sensor}: {exc}")
            return False
        if strategy[0] == "none":
            self.watches.pop(sensor, None)
            message = f"stopped watching {sensor}"
        else:
            self.watches[sensor] = strategy
            message = f"watching {sensor} ({' '.join(strategy)})"
        if announce:
            self.note(message)
        self._invalidate()
        return True

    # -- the loops ------------------------------------------------------------------------------

    async def interact(self, history: History) -> int:
        """Run the prompt until /quit or Ctrl-D."""
        self.session = PromptSession(
            self.prompt_message,
            history=history,
            completer=KatcpCompleter(self),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
        )
        watcher = self._spawn(self.watch_connection())
        self._spawn(self.refresh())
        self.note(f"connected to {self.address} (katcp {self.client.protocol_flags}); /help")
        self.show_versions()
        try:
            with patch_stdout(raw=True):
                while True:
                    try:
                        line = await self.session.prompt_async()
                    except KeyboardInterrupt:
                        self.interrupted()
                        continue
                    except EOFError:
                        break
                    if not await self.execute(line):
                        break
        finally:
            watcher.cancel()
        return 0

    async def script(self) -> int:
        """Execute lines from a non-terminal stdin one by one; the exit status is the worst."""
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or not await self.execute(line, wait=True):
                break
        return self.status

    async def close(self) -> None:
        """Stop background work and the client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()


def _summary(args: list[bytes]) -> str:
    """First line of a description argument."""
    text = decode(args[0]).strip() if args else ""
    return text.splitlines()[0] if text else ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def run_shell(
    address: tuple[str, int],
    *,
    timeout: float,
    user_timeout: float | None = None,
    wait: bool = False,
    history: str | None = None,
    color: bool | None = None,
    raw: bool = False,
    informs: bool = True,
    replies: bool = True,
    verbose: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Connect and run the interactive session (or the scripted one if stdin is no terminal).

    Returns the exit status; raises :class:`CmdError` if the first connection fails.
    """
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    options: dict[str, Any] = {
        "timeout": timeout,
        "auto_reconnect": interactive,
        "verbose": verbose,
        "user_timeout": user_timeout,
        "on_wait": Output().waiting(address),
        "ssl_context": ssl_context,
    }
    try:
        client = await connect(address, wait=wait, **options)
    except CmdError as exc:
        if not interactive or not await offer_to_wait(str(exc)):
            raise
        client = await connect(address, wait=True, **options)
    shell = Shell(
        client,
        address,
        color=color_enabled(sys.stdout, color),
        raw=raw,
        informs=informs,
        replies=replies,
    )
    try:
        if interactive:
            return await shell.interact(open_history(history_path(history)))
        return await shell.script()
    finally:
        await shell.close()
