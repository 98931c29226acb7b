"""A client's link to its server: state, connection events, and the connect/reconnect loop.

The client runs on one asyncio loop (wrapped by a tornado ``IOLoop``): either a loop of its
own in a thread it manages (the default), or the caller's loop after ``set_ioloop``.
Everything that touches the connection happens on that loop; the public methods that may be
called from other threads cross over through the client's
:class:`~katcpx.crossing.LoopBinding`, which :meth:`ClientLink._install` binds on the loop.
The public life cycle (start, stop, waits) is :class:`katcpx.client._base.ClientBase`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tornado.ioloop import IOLoop

from ..crossing import LoopBinding, LoopGone
from ..errors import KatcpClientDisconnected
from ..flags import ProtocolFlags
from ..message import Message
from ..tls import describe_closed_before_greeting, describe_tls_error
from ..transport import KatcpProtocol, format_address
from ._sync import LoopThread, StateEvent

if TYPE_CHECKING:
    from ..metrics._stats import ClientStats

__all__ = ["ClientLink", "tls_options"]

log = logging.getLogger("katcp.client")

T = TypeVar("T")


class ClientLink:
    """State and connection handling of :class:`~katcpx.client.DeviceClient` (see there)."""

    #: Maximum size of a received message; a longer line closes the connection.
    MAX_MSG_SIZE: ClassVar[int] = 2 * 1024 * 1024
    #: Outstanding bytes to send above which the connection is closed.
    MAX_WRITE_BUFFER_SIZE: ClassVar[int] = 4 * 1024 * 1024
    #: Kept for compatibility; the asyncio transport delivers data in bounded batches.
    MAX_LOOP_LATENCY: ClassVar[float] = 0.03

    def __init__(
        self,
        host: str,
        port: int,
        tb_limit: int = 20,
        logger: logging.Logger = log,
        auto_reconnect: bool = True,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            host = "0.0.0.0"
        self._bindaddr = (host, int(port))
        self._tb_limit = tb_limit
        self._logger = logger
        self._auto_reconnect = auto_reconnect
        #: TLS context for the connection (see :mod:`katcpx.tls`), or None for plain TCP.
        self.ssl_context = ssl_context
        #: One line on why the last connection attempt failed, or None.
        self.last_connect_error: str | None = None
        #: Text of the server's ``#disconnect`` on the current (or last) connection, or None.
        self.disconnect_reason: str | None = None
        self._warned_reason: str | None = None
        #: Seconds before the first reconnection attempt; doubles per consecutive failure.
        self.auto_reconnect_delay = 0.5
        #: Upper bound of the reconnection delay, in seconds.
        self.auto_reconnect_max_delay = 30.0
        #: Fraction of each delay that is randomly taken off, so clients don't reconnect in step.
        self.auto_reconnect_jitter = 0.5
        #: Consecutive failed connection attempts allowed before giving up (None: no limit).
        self.max_reconnect_attempts: int | None = None
        #: Seconds allowed for one TCP connection attempt.
        self.connect_timeout = 10.0
        self._connect_failures = 0
        self._static_protocol_configuration = False
        self._static_protocol_flags: ProtocolFlags | None = None
        # next() on a count is atomic, so ids can be taken from any thread.
        self._msg_ids = itertools.count(1)
        self._ioloop: IOLoop | None = None
        # The loop set_ioloop() chose (None: managed); once running, the binding has it.
        self._chosen_loop: asyncio.AbstractEventLoop | None = None
        # The one way onto the client's loop from other threads.
        self._binding = LoopBinding()
        self._managed = True
        self._daemon = True
        self._loop_thread: LoopThread | None = None
        self._threadsafe = False
        #: Time (seconds since the epoch) of the last successful connection.
        self.last_connect_time: float | None = None
        self._stopped = StateEvent()
        self._stopped.set()
        self._running = StateEvent()
        self._connected = StateEvent()
        self._disconnected = StateEvent()
        self._disconnected.set()
        self._received_protocol_info = StateEvent()
        self._stopping = False
        self._conn: KatcpProtocol | None = None
        # Resolves once the latest connection has closed (made with it, on the loop).
        self._conn_lost: asyncio.Future[None] | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Future[Any] | None = None
        self._sleep_fut: asyncio.Future[Any] | None = None
        self._server_supports_ids = False
        self._protocol_flags: ProtocolFlags | None = None
        # Whether this connection has announced its protocol (reset on each connection).
        self._protocol_seen = False
        #: Why the server's protocol cannot be used (a malformed ``#version-connect
        #: katcp-protocol``), or None; reset on each connection.
        self.protocol_error: str | None = None
        #: Version information from the server, ``{name: (version, ...)}``.
        self.versions: dict[str, tuple[str, ...]] = {}
        #: Counters kept while metrics are on (``katcpx.metrics.instrument_client``).
        self.metrics: ClientStats | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def protocol_flags(self) -> ProtocolFlags | None:
        """The server's :class:`ProtocolFlags`, once known."""
        return self._protocol_flags

    @protocol_flags.setter
    def protocol_flags(self, val: ProtocolFlags) -> None:
        self._protocol_flags = val
        self._server_supports_ids = val.supports(ProtocolFlags.MESSAGE_IDS)
        self._received_protocol_info.set()
        self._protocol_detected()

    @property
    def bind_address(self) -> tuple[str, int]:
        """(host, port) where the client is connecting."""
        return self._bindaddr

    @property
    def bind_address_string(self) -> str:
        """:attr:`bind_address` as ``host:port``."""
        return format_address(self._bindaddr)

    @property
    def sockname(self) -> tuple[str, int]:
        """Local (host, port) of the connection, or ``(host, -1)`` when not connected."""
        conn = self._conn
        if conn is not None and conn.transport is not None:
            name = conn.transport.get_extra_info("sockname")
            if name:
                return (name[0], name[1])
        return (self._bindaddr[0], -1)

    @property
    def sockname_string(self) -> str:
        """:attr:`sockname` as ``host:port``."""
        return format_address(self.sockname)

    @property
    def threadsafe(self) -> bool:
        """Whether :meth:`enable_thread_safety` was called."""
        return self._threadsafe

    @property
    def ioloop(self) -> IOLoop | None:
        """The tornado IOLoop the client runs on (None before :meth:`start`)."""
        return self._ioloop

    @property
    def ioloop_thread_id(self) -> int | None:
        """Ident of the thread running the client's loop (None when not running).

        katcp-python's attribute, read-only here: the client's loop binding holds it.
        """
        return self._binding.thread_id

    @property
    def auto_reconnect(self) -> bool:
        """Whether the client reconnects when the connection fails or drops."""
        return self._auto_reconnect

    @auto_reconnect.setter
    def auto_reconnect(self, value: bool) -> None:
        self._auto_reconnect = bool(value)

    # -- threads ---------------------------------------------------------------------------

    def _run_in_loop(self, func: Callable[..., T], *args: Any, timeout: float | None = 5.0) -> T:
        """Run `func(*args)` on the client's loop and return its result (from any thread).

        For calls whose caller needs the result (blocking thread-safe methods, ``send_raw``);
        sending messages hands over without waiting instead.

        Raises
        ------
        KatcpClientDisconnected
            If the client's loop is not running.
        TimeoutError
            If the call did not finish within `timeout` seconds.
        """
        try:
            return self._binding.call_and_wait(func, *args, timeout=timeout)
        except LoopGone:
            raise KatcpClientDisconnected(
                f"Client for {self.bind_address_string} is not running"
            ) from None

    def disconnect(self) -> None:
        """Force client connection to close, reconnect if auto-connect set."""
        # Dropped when the loop is gone: then there is no connection to close.
        self._binding.call_here_or_soon(self._disconnect)

    def note_disconnect_reason(self, msg: Message) -> None:
        """Remember the text of the server's ``#disconnect`` inform `msg` (spec section 4.3)."""
        if msg.arguments:
            self.disconnect_reason = msg.arguments[0].decode("utf-8", "replace")

    def _disconnect(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.close()

    def _on_items(self, conn: KatcpProtocol, items: list[Any]) -> None:
        """Dispatch one batch of received items (implemented by DeviceClient)."""
        raise NotImplementedError

    def _protocol_detected(self) -> None:
        """Hook called when protocol flags are (re)set; subclasses extend it."""

    def _protocol_unusable(self, reason: str) -> None:
        """The server announced a protocol the client cannot read: say so once, at ERROR,
        and wake whoever waits for the protocol (:meth:`wait_protocol` returns False,
        :meth:`until_protocol` fails) rather than let them time out."""
        self.protocol_error = f"{self.bind_address_string}: {reason}"
        self._logger.error("%s", self.protocol_error)
        self._received_protocol_info.set()

    def notify_connected(self, connected: bool) -> None:
        """Event handler that is called whenever the connection status changes.

        Override in derived class for desired behaviour. It should never block: the client
        processes no data from the server until it returns.

        Parameters
        ----------
        connected
            Whether the client has just connected (True) or just disconnected (False).
        """

    # -- connection --------------------------------------------------------------------------

    def next(self) -> Any:
        """Python 2 iterator protocol left over in katcp-python's API; clients aren't iterators."""
        nxt = getattr(type(self), "__next__", None)
        if nxt is None:
            raise TypeError(f"{type(self).__name__!r} object is not an iterator")
        return nxt(self)

    def _on_connected(self, conn: KatcpProtocol) -> None:
        self._conn = conn
        self._conn_lost = asyncio.get_running_loop().create_future()
        self.last_connect_time = time.time()
        self._protocol_seen = False
        self.protocol_error = None
        if not self._static_protocol_configuration:
            self._received_protocol_info.clear()
            self._server_supports_ids = False
        self._disconnected.clear()
        self._connected.set()
        self._warned_reason = self.disconnect_reason
        self.disconnect_reason = None
        self._logger.info("Connected to %s", self.bind_address_string)
        if self.metrics is not None:
            self.metrics.connection_made()
        try:
            self.notify_connected(True)
        except Exception:
            self._logger.exception("Notify connect failed. Disconnecting.")
            conn.close()

    def _on_connection_lost(self, conn: KatcpProtocol, exc: Exception | None) -> None:
        if conn is not self._conn:
            return
        try:
            self._link_closed(exc)
        finally:
            # Last: the main coroutine resumes after everything the close set in motion.
            if self._conn_lost is not None and not self._conn_lost.done():
                self._conn_lost.set_result(None)

    def _link_closed(self, exc: Exception | None) -> None:
        self._conn = None
        self._connected.clear()
        greeted = self._received_protocol_info.is_set()
        if self.metrics is not None:
            self.metrics.connection_lost()
        if not self._static_protocol_configuration:
            # The next connection announces its own protocol: until it does, until_protocol()
            # and wait_protocol() must wait rather than report the old connection's.
            self._received_protocol_info.clear()
        self._disconnected.set()
        reason = self.disconnect_reason
        if reason is not None and not self._stopping:
            # The server said why (e.g. "This port requires TLS"): that is the error, not the
            # close. Warned once per distinct reason, so a reconnect loop does not flood.
            self.last_connect_error = f"{self.bind_address_string} disconnected us: {reason}"
            level = logging.DEBUG if reason == self._warned_reason else logging.WARNING
            self._logger.log(level, "%s", self.last_connect_error)
        elif self.ssl_context is not None and not greeted and not self._stopping:
            # Under TLS 1.3 a server refuses a client certificate (or its absence) only
            # after the handshake, and asyncio drops its alert: the link just closes.
            self.last_connect_error = (
                describe_tls_error(exc, self.bind_address_string)
                if exc is not None
                else describe_closed_before_greeting(self.ssl_context, self.bind_address_string)
            )
            self._logger.warning("%s", self.last_connect_error)
        elif exc is not None:
            self._logger.warning(
                "Client stream for server %s closed with error %r", self.bind_address_string, exc
            )
        else:
            self._logger.info("Connection to %s closed", self.bind_address_string)
        self._connection_closed()
        try:
            self.notify_connected(False)
        except Exception:
            self._logger.exception("Notify connect failed")

    def _connection_closed(self) -> None:
        """Hook called after the connection drops; subclasses fail pending requests here."""

    def _client_stopped(self) -> None:
        """Hook called when the client stops; subclasses fail pending requests here."""

    def _make_protocol(self) -> KatcpProtocol:
        return KatcpProtocol(
            self._on_items,
            self._on_connection_lost,
            on_connection_made=self._on_connected,
            max_msg_size=self.MAX_MSG_SIZE,
            max_write_buffer=self.MAX_WRITE_BUFFER_SIZE,
            logger=self._logger,
        )

    async def _connect_once(self) -> KatcpProtocol | None:
        """Try one connection; return the protocol when connected."""
        loop = asyncio.get_running_loop()
        host, port = self._bindaddr
        task = asyncio.ensure_future(
            asyncio.wait_for(
                loop.create_connection(self._make_protocol, host, port, **tls_options(self)),
                self.connect_timeout,
            )
        )
        self._connect_task = task
        try:
            _transport, conn = await task
        except asyncio.CancelledError:
            if self._stopping:
                return None
            raise
        except (OSError, asyncio.TimeoutError) as exc:
            self._connect_failures += 1
            if self.ssl_context is not None and isinstance(exc, ssl.SSLError | ConnectionError):
                self.last_connect_error = describe_tls_error(exc, self.bind_address_string)
                self._logger.warning("%s", self.last_connect_error)
            else:
                self.last_connect_error = f"{self.bind_address_string}: {exc or type(exc).__name__}"
            self._logger.info(
                "Failed to connect to %s (attempt %d): %s",
                self.bind_address_string,
                self._connect_failures,
                exc or type(exc).__name__,
            )
            return None
        finally:
            self._connect_task = None
        self._connect_failures = 0
        return conn

    def _reconnect_delay(self) -> float:
        attempt = max(self._connect_failures, 1)
        delay = min(self.auto_reconnect_max_delay, self.auto_reconnect_delay * 2 ** (attempt - 1))
        return delay * (1.0 - self.auto_reconnect_jitter * random.random())

    async def _sleep(self, delay: float) -> None:
        """Sleep `delay` seconds unless the client stops first."""
        loop = asyncio.get_running_loop()
        fut = self._sleep_fut = loop.create_future()
        handle = loop.call_later(delay, _resolve_none, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleep_fut = None

    async def _install(self) -> None:
        """Main coroutine: connect, wait for the connection to drop, reconnect, until stopped."""
        self._binding.bind()
        self._main_task = asyncio.current_task()
        self._ioloop = IOLoop.current()
        if self._stopping:
            self._stopped.set()
            return
        self._running.set()
        try:
            while not self._stopping:
                conn = await self._connect_once()
                if conn is not None:
                    assert self._conn_lost is not None  # made by _on_connected
                    await self._conn_lost
                if self._stopping:
                    break
                if not self._auto_reconnect:
                    if conn is None:
                        self._logger.error(
                            "Failed to connect to %s; not reconnecting", self.bind_address_string
                        )
                    break
                limit = self.max_reconnect_attempts
                if limit is not None and self._connect_failures >= limit:
                    self._logger.error(
                        "Giving up on %s after %d failed connection attempts",
                        self.bind_address_string,
                        self._connect_failures,
                    )
                    break
                delay = self._reconnect_delay()
                self._logger.info(
                    "Reconnecting to %s in %.3f s (attempt %d)",
                    self.bind_address_string,
                    delay,
                    self._connect_failures + 1,
                )
                await self._sleep(delay)
        except Exception:
            self._logger.exception("Unhandled exception in client connect loop")
        finally:
            self._running.clear()
            self._stopping = True
            last = self._conn
            self._disconnect()
            if last is not None and self._conn_lost is not None:
                # Let connection_lost (and notify_connected(False)) run before "stopped".
                await asyncio.wait([self._conn_lost], timeout=1.0)
            self._client_stopped()
            self._logger.info("Client connect loop for %s finished.", self.bind_address_string)
            self._stopped.set()
            if self._managed and self._loop_thread is not None:
                self._loop_thread.stop()  # the loop ends with this coroutine


def _resolve_none(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def tls_options(client: ClientLink) -> dict[str, Any]:
    """``create_connection`` keywords for `client`'s TLS context (none for plain TCP)."""
    ctx = client.ssl_context
    if ctx is None:
        return {}
    return {"ssl": ctx, "server_hostname": client.bind_address[0]}
