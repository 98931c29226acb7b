"""Connecting for katcp-cmd: server addresses, the client class, and readable failures."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..client import DEFAULT, AsyncClient, Reply
from ..errors import KatcpClientError
from ..message import Message
from ._printable import printable

__all__ = ["CmdClient", "CmdError", "connect", "parse_address", "quiet_logger", "server_major"]

#: Exit status for a ``fail`` or ``invalid`` reply (or an unknown sensor).
EXIT_FAIL = 1
#: Exit status for connection problems, timeouts and usage errors.
EXIT_ERROR = 2

_ADDRESS = re.compile(r"^(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[^:\s]*)):(?P<port>\d+)$")


class CmdError(Exception):
    """An error to report as one line on stderr, with the exit status to use.

    Parameters
    ----------
    text
        The message for people.
    status
        The process exit status.
    """

    def __init__(self, text: str, status: int = EXIT_ERROR) -> None:
        super().__init__(text)
        self.status = status


def looks_like_address(text: str) -> bool:
    """Whether `text` is a ``HOST:PORT``, ``:PORT``, ``[IPV6]:PORT`` or bare ``PORT``."""
    return text.isdigit() or _ADDRESS.match(text) is not None


_BAD_PORT = re.compile(r"^(?:\[[^\]]+\]|[^:\s]*):(?P<port>[^:\s]*)$")


def seconds(value: float | None) -> str:
    """A duration for people: ``1 s``, ``0.5 s``, ``300 s`` (not ``1.000000``)."""
    return "no limit" if value is None else f"{value:g} s"


def bad_port_message(text: str) -> str | None:
    """Say what is wrong with a ``HOST:PORT`` whose port is not a number, else None.

    ``nohost:abc`` is then reported as such, not as a request name with no server.
    """
    match = _BAD_PORT.match(text)
    if match is None or match["port"].isdigit():
        return None
    port = match["port"]
    what = f"the port {port!r} in {text!r} is not a number" if port else f"no port in {text!r}"
    return f"{what}: give HOST:PORT, e.g. localhost:7147"


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``:PORT`` and a bare ``PORT`` mean localhost).

    Raises
    ------
    CmdError
        If `text` is not an address.
    """
    if text.isdigit():
        host, port = "localhost", int(text)
    else:
        match = _ADDRESS.match(text.strip())
        if match is None:
            raise CmdError(bad_port_message(text) or f"not a server address (HOST:PORT): {text!r}")
        host = match["ip6"] or match["host"] or "localhost"
        port = int(match["port"])
    if not 0 < port < 65536:
        raise CmdError(f"port out of range in {text!r}")
    return host, port


class _PrintableFormatter(logging.Formatter):
    """Log lines with the device text in them escaped (no raw control bytes on stderr)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record), backslash=False)


def quiet_logger(verbose: bool = False) -> logging.Logger:
    """The logger given to the client: silent, or to stderr with ``--verbose``.

    The client's own warnings would otherwise reach Python's last-resort handler and land
    on the terminal in the middle of a prompt or of tool output.
    """
    logger = logging.getLogger("katcp.cmd.client")
    logger.propagate = False
    if not logger.handlers:
        handler: logging.Handler
        if verbose:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_PrintableFormatter("%(levelname)s: %(message)s"))
        else:
            handler = logging.NullHandler()
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return logger


class CmdClient(AsyncClient):
    """An :class:`AsyncClient` that shows every inform and any reply nobody waits for.

    Attributes
    ----------
    on_inform
        Called with each inform and whether it was unsolicited (no request of that name,
        and no message id, is outstanding), before normal dispatch.
    on_reply
        Called with replies that match no outstanding :meth:`call` (raw-mode requests).
    user_timeout
        The request timeout the user typed (``-t``), or None. It wins over the server's
        request timeout hints, which only raise the default timeout.
    """

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.on_inform: Callable[[Message, bool], None] | None = None
        self.on_reply: Callable[[Message], None] | None = None
        # Names of requests in flight, to tell a request's informs from unsolicited ones
        # when the server uses no message ids.
        self.in_flight: Counter[str] = Counter()
        #: ``(role, identity)`` the server gave this client (its ``#access-role``), or None
        #: when the server has no access policy.
        self.role: tuple[str, str] | None = None
        self.user_timeout: float | None = None

    async def tracked_call(self, name: str, *args: Any) -> Reply:
        """:meth:`call`, keeping :attr:`in_flight` up to date (same returns and errors).

        The timeout is :attr:`user_timeout` when the user gave one, else the client's default
        (raised by the server's hint for `name`).
        """
        self.in_flight[name] += 1
        timeout = DEFAULT if self.user_timeout is None else self.user_timeout
        try:
            return await self.call(name, *[_as_typed(arg) for arg in args], timeout=timeout)
        finally:
            self.in_flight[name] -= 1
            if self.in_flight[name] <= 0:
                del self.in_flight[name]

    def describe_timeout(self, name: str) -> str:
        """Say that request `name` got no reply in time, that it may still run, and the fix."""
        hint = self.timeout_hint(name)
        hint_text = f" (its timeout hint is {seconds(hint)})" if hint else ""
        if self.user_timeout is not None:
            waited = f"within -t {seconds(self.user_timeout)}"
            fix = (
                "give a larger -t, or none to use the device's hint"
                if hint
                else ("give a larger -t")
            )
        else:
            timeout = self.default_timeout(name)
            waited = f"within {seconds(timeout)}" if timeout is not None else "in time"
            fix = "give a larger -t N (seconds)"
        return (
            f"no reply {waited}; the request may still be running on the device{hint_text}: {fix}"
        )

    def handle_inform(self, msg: Message) -> Any:
        """Show the inform (unless the client asked for it itself), then dispatch it."""
        if msg.name == "access-role" and len(msg.arguments) >= 2:
            role, identity = (a.decode("utf-8", "replace") for a in msg.arguments[:2])
            self.role = (role, identity)
        if self.on_inform is not None and not self.is_own_inform(msg):
            unsolicited = msg.mid is None and msg.name not in self.in_flight
            try:
                self.on_inform(msg, unsolicited)
            except Exception:
                self._logger.exception("Showing inform %s failed", msg.name)
        return super().handle_inform(msg)

    def unhandled_reply(self, msg: Message) -> None:
        """Show a reply that no :meth:`call` was waiting for."""
        if self.on_reply is not None:
            self.on_reply(msg)


def server_major(client: AsyncClient) -> int:
    """The KATCP major version the server announced (5 until it is known)."""
    flags = client.protocol_flags
    return 5 if flags is None else flags.major


async def connect(
    address: tuple[str, int],
    *,
    timeout: float,
    auto_reconnect: bool = False,
    verbose: bool = False,
    client_class: type[CmdClient] = CmdClient,
    ssl_context: ssl.SSLContext | None = None,
    user_timeout: float | None = None,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> CmdClient:
    """Connect and wait until the client is ready (protocol information and timeout hints).

    Without `wait` the first connection gets one attempt: an unreachable server is reported
    at once rather than retried. `auto_reconnect` applies once connected.

    Parameters
    ----------
    address
        ``(host, port)``.
    timeout
        Seconds allowed for the connection and the ``#version-connect`` informs; also the
        client's default request timeout.
    auto_reconnect
        Whether to reconnect after the connection drops.
    verbose
        Log the client's activity to stderr.
    client_class
        The client class to create.
    ssl_context
        TLS context (``--tls-ca``/``--tls-cert``/``--tls-key``); plain TCP when None.
    user_timeout
        The request timeout the user typed, if any (see :attr:`CmdClient.user_timeout`).
    wait
        Keep trying until the server answers, however long that takes.
    on_wait
        With `wait`: called once, with the reason, when the first attempt fails.

    Raises
    ------
    CmdError
        If the server cannot be reached or does not speak KATCP in time (without `wait`),
        or at once if it announces a malformed protocol version.
    """
    host, port = address
    client = client_class(
        host,
        port,
        timeout=timeout,
        logger=quiet_logger(verbose),
        auto_reconnect=wait,
        ssl_context=ssl_context,
    )
    client.user_timeout = user_timeout
    client.connect_timeout = timeout
    client.auto_reconnect_max_delay = 2.0 if wait else 5.0  # an operator is waiting
    client.set_ioloop()
    client.start()
    ready = asyncio.ensure_future(_ready_or_unusable(client))
    stopped = client.until_stopped()
    try:
        await asyncio.wait({ready, stopped}, timeout=timeout, return_when="FIRST_COMPLETED")
        if wait and not ready.done():
            if on_wait is not None:
                # The client's own failure first: a server still starting may accept a
                # connection by now, though it refused every one the client tried.
                on_wait(tcp_failure(client) or await _diagnose(host, port, timeout))
            await ready
    finally:
        stopped.cancel()
        ready.cancel()
    if ready.done() and not ready.cancelled() and client.is_ready():
        client.auto_reconnect = auto_reconnect
        return client
    await client.aclose()
    if client.protocol_error:
        raise CmdError(f"cannot use the server at {client.protocol_error}")
    if client.disconnect_reason:
        raise CmdError(
            f"cannot connect to {host}:{port}: the server said: {client.disconnect_reason}"
        )
    if ssl_context is not None and client.last_connect_error:
        raise CmdError(f"cannot connect to {host}:{port}: {client.last_connect_error}")
    reason = await _diagnose(host, port, timeout)
    hint = "; is the device running? --wait keeps trying" if "refused" in reason else ""
    raise CmdError(f"cannot connect to {host}:{port}: {reason}{hint}")


async def _ready_or_unusable(client: AsyncClient) -> bool:
    """Wait until `client` is ready (True), or knows that the server's protocol is unusable
    (False: a malformed ``#version-connect katcp-protocol``, see
    :attr:`~AsyncClient.protocol_error`)."""
    try:
        return await client.until_ready()
    except KatcpClientError:
        return False


def tcp_failure(client: AsyncClient) -> str | None:
    """Why the client's last TCP connection attempt failed (``Connection refused``...).

    None when it is connected, or when the reason has no error number (a timeout).
    """
    if client.is_connected() or not client.last_connect_error:
        return None
    match = re.search(r"\[Errno (\d+)\]", client.last_connect_error)
    return os.strerror(int(match[1])) if match else None


async def _diagnose(host: str, port: int, timeout: float) -> str:
    """Find out, with a plain TCP connection, why the client did not get going."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        # asyncio wraps refusals as "Connect call failed (...)"; the errno says it better.
        if exc.errno:
            return os.strerror(exc.errno) if exc.errno > 0 else (exc.strerror or str(exc))
        return str(exc) or type(exc).__name__
    writer.close()
    return f"no KATCP #version-connect within {timeout:g} s"


def _as_typed(arg: Any) -> Any:
    """A typed argument as the bytes the user typed: bytes that were not UTF-8 on the
    command line or stdin (surrogate-escaped by Python) go out unchanged. A lone surrogate
    has no such bytes; the codec then sends ``?`` and logs it, as katcp-python does."""
    if isinstance(arg, str):
        try:
            return arg.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return arg
    return arg
