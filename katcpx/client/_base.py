"""The connection life cycle shared by the clients: loop, connect, reconnect, start and stop.

The client runs on one asyncio loop (wrapped by a tornado ``IOLoop``): either a loop of its
own in a thread it manages (the default), or the caller's loop after :meth:`set_ioloop`.
Everything that touches the connection happens on that loop; the public methods that may be
called from other threads hand their work over to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tornado.ioloop import IOLoop

from .._anyloop import future_of
from ..errors import KatcpClientDisconnected, KatcpVersionError
from ..flags import ProtocolFlags
from ..message import Message
from ..tls import describe_closed_before_greeting, describe_tls_error
from ..transport import KatcpProtocol, format_address
from ._sync import LoopThread, StateEvent

if TYPE_CHECKING:
    from ..metrics.stats import ClientStats

__all__ = ["ClientBase", "KatcpClientDisconnected", "KatcpVersionError", "format_address"]

log = logging.getLogger("katcp.client")

T = TypeVar("T")


class ClientBase:
    """Connection life cycle of :class:`~katcpx.client.DeviceClient` (see there)."""

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._managed = True
        self._daemon = True
        self._loop_thread: LoopThread | None = None
        #: Ident of the thread running the client's loop (None before start).
        self.ioloop_thread_id: int | None = None
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
        self._main_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Future[Any] | None = None
        self._sleep_fut: asyncio.Future[Any] | None = None
        self._server_supports_ids = False
        self._protocol_flags: ProtocolFlags | None = None
        # Whether this connection has announced its protocol (reset on each connection).
        self._protocol_seen = False
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
    def auto_reconnect(self) -> bool:
        """Whether the client reconnects when the connection fails or drops."""
        return self._auto_reconnect

    @auto_reconnect.setter
    def auto_reconnect(self, value: bool) -> None:
        self._auto_reconnect = bool(value)

    # -- threads ---------------------------------------------------------------------------

    def _in_loop_thread(self) -> bool:
        return threading.get_ident() == self.ioloop_thread_id

    def _run_in_loop(self, func: Callable[..., T], *args: Any, timeout: float | None = 5.0) -> T:
        """Run `func(*args)` on the client's loop from another thread and return its result.

        For calls whose caller needs the result (blocking thread-safe methods, ``send_raw``);
        sending messages hands over without waiting instead.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            raise KatcpClientDisconnected(f"Client for {self.bind_address_string} is not running")
        cfut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                cfut.set_result(func(*args))
            except BaseException as exc:
                cfut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return cfut.result(timeout)

    def disconnect(self) -> None:
        """Force client connection to close, reconnect if auto-connect set."""
        if not self._in_loop_thread():
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # loop closed: nothing to disconnect
                    loop.call_soon_threadsafe(self._disconnect)
            return
        self._disconnect()

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
        self.last_connect_time = time.time()
        self._protocol_seen = False
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
        self.ioloop_thread_id = threading.get_ident()
        self._ioloop = IOLoop.current()
        if self._stopping:
            self._stopped.set()
            return
        self._running.set()
        try:
            while not self._stopping:
                conn = await self._connect_once()
                if conn is not None:
                    await conn.lost
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
            if isinstance(last, KatcpProtocol):
                # Let connection_lost (and notify_connected(False)) run before "stopped".
                await asyncio.wait([last.lost], timeout=1.0)
            self._client_stopped()
            self._logger.info("Client connect loop for %s finished.", self.bind_address_string)
            self._stopped.set()
            if self._managed and self._loop_thread is not None:
                self._loop_thread.stop()

    # -- life cycle ------------------------------------------------------------------------

    def set_ioloop(self, ioloop: IOLoop | asyncio.AbstractEventLoop | None = None) -> None:
        """Set the tornado IOLoop (or asyncio loop) to use.

        This defaults to ``IOLoop.current()``. If ``set_ioloop()`` is never called the loop
        is managed: started in a new thread, and stopped when :meth:`stop` is called.

        Notes
        -----
        Must be called before :meth:`start`.
        """
        if self._running.is_set():
            raise RuntimeError("set_ioloop() must be called before start()")
        if ioloop is None:
            ioloop = IOLoop.current()
        if isinstance(ioloop, IOLoop):
            self._ioloop = ioloop
            self._loop = ioloop.asyncio_loop  # type: ignore[attr-defined]
        else:
            self._ioloop = None  # the IOLoop wrapper is fetched on the loop itself
            self._loop = ioloop
        self._managed = False

    def setDaemon(self, daemonic: bool) -> None:
        """Set daemonic state of the managed ioloop thread to True / False.

        Calling this method for a non-managed ioloop has no effect. Must be called before
        :meth:`start`, or it will also have no effect.
        """
        self._daemon = bool(daemonic)

    def enable_thread_safety(self) -> None:
        """Enable thread-safety features.

        Must be called before :meth:`start`. katcpx clients are always thread-safe, so this
        only records the request (see :attr:`threadsafe`).
        """
        if self._threadsafe:
            return
        if self._running.is_set():
            raise RuntimeError("Cannot enable thread safety after start")
        self._threadsafe = True
        self._wrap_marked_methods()

    def _wrap_marked_methods(self) -> None:
        """Run methods marked with katcp-python's ``make_threadsafe`` (or ``_blocking``)
        decorators on the client's loop when called from other threads."""
        for name in dir(type(self)):
            meth = getattr(self, name, None)
            if not callable(meth):
                continue
            # `is True`: mocks answer any attribute
            blocking = getattr(meth, "make_threadsafe_blocking", False) is True
            if blocking or getattr(meth, "make_threadsafe", False) is True:
                setattr(self, name, self._loop_bound(meth, blocking))

    def _loop_bound(self, meth: Callable[..., Any], blocking: bool) -> Callable[..., Any]:
        @functools.wraps(meth)
        def on_loop(*args: Any, **kwargs: Any) -> Any:
            if self._in_loop_thread():
                return meth(*args, **kwargs)
            call = functools.partial(meth, *args, **kwargs)
            if blocking:
                return self._run_in_loop(call, timeout=None)
            loop = self._loop
            if loop is None or loop.is_closed():
                raise KatcpClientDisconnected(
                    f"Client for {self.bind_address_string} is not running"
                )
            loop.call_soon_threadsafe(call)
            return None

        return on_loop

    def start(self, timeout: float | None = None) -> None:
        """Start the client (in a new thread when its loop is managed).

        Parameters
        ----------
        timeout
            Seconds to wait for the client to be running. Ignored when called from the
            client's own loop thread, where waiting would block the loop.
        """
        if self._running.is_set() or not self._stopped.is_set():
            raise RuntimeError("Device client already started.")
        if self._managed:
            thread = LoopThread(f"katcpx-client-{self.bind_address_string}")
            thread.daemon = self._daemon
            self._loop_thread = thread
            self._ioloop = thread.start()
            self._loop = self._ioloop.asyncio_loop
        loop = self._loop
        assert loop is not None
        self._stopping = False
        self._stopped.clear()
        self._connected.clear()
        self._disconnected.set()
        if not self._static_protocol_configuration:
            self._received_protocol_info.clear()
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._main_task = loop.create_task(self._install())
        else:
            loop.call_soon_threadsafe(self._spawn)
            if timeout:
                self.wait_running(timeout)

    def _spawn(self) -> None:
        assert self._loop is not None
        self._main_task = self._loop.create_task(self._install())

    def _stop_now(self) -> None:
        """Begin stopping (on the loop): no more reconnecting, close the connection."""
        self._stopping = True
        self._running.clear()
        self._client_stopped()
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self._sleep_fut is not None and not self._sleep_fut.done():
            self._sleep_fut.set_result(None)
        self._disconnect()

    def stop(self, timeout: float | None = None) -> None:
        """Stop a running client.

        From another thread this returns once the client's main coroutine has finished (and,
        for a managed loop, asks the loop thread to end; use :meth:`join` to wait for it).
        From the client's loop thread it only starts stopping; await :meth:`until_stopped`.

        Parameters
        ----------
        timeout
            Seconds to wait for the client to stop.

        Raises
        ------
        TimeoutError
            If the client did not stop within `timeout`.

        Notes
        -----
        Before :meth:`start` this does nothing (katcp-python raises ``RuntimeError``); called
        while the client is still starting, it stops the client once started.
        """
        loop = self._loop
        if loop is None or self._stopped.is_set():  # never started, or already stopped
            return
        if self._in_loop_thread():
            self._stop_now()
            return
        try:
            loop.call_soon_threadsafe(self._stop_now)
        except RuntimeError:  # loop closed: already stopped
            return
        if not self._stopped.wait(timeout):
            raise TimeoutError(f"Client for {self.bind_address_string} did not stop in time")

    def join(self, timeout: float | None = None) -> None:
        """Rejoin the client thread.

        Parameters
        ----------
        timeout
            Seconds to wait for thread to finish.

        Notes
        -----
        Does nothing if the ioloop is not managed. Use :meth:`until_stopped` instead.
        """
        if self._managed and self._loop_thread is not None:
            self._loop_thread.join(timeout)

    def running(self) -> bool:
        """Whether the client is running."""
        return self._running.is_set()

    def is_connected(self) -> bool:
        """Check if the socket is currently connected."""
        return self._connected.is_set()

    def until_stopped(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves when the client has stopped.

        Stopped means the main coroutine has ended (or never started); the running flag is
        cleared some time before that.
        """
        return future_of(lambda: self._stopped.until_set(timeout))

    def until_running(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves when the client is running."""
        return future_of(lambda: self._running.until_set(timeout))

    def until_connected(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves when the client is connected."""
        return future_of(lambda: self._until_after_running(self._connected, timeout))

    def until_protocol(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves after receipt of katcp protocol info.

        When it resolves, the server's protocol information is in :attr:`protocol_flags`.
        """
        return future_of(lambda: self._until_after_running(self._received_protocol_info, timeout))

    def until_disconnected(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves when the client is disconnected."""
        return future_of(lambda: self._disconnected.until_set(timeout))

    async def _until_after_running(self, event: StateEvent, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._running.until_set(timeout)
        remaining = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        return await event.until_set(remaining)

    def _check_not_loop(self, what: str) -> None:
        if self._in_loop_thread():
            raise RuntimeError(
                f"{what}() called from the client's own ioloop thread would deadlock; "
                f"await the until_*() / future-based equivalent instead"
            )

    def wait_running(self, timeout: float | None = None) -> bool:
        """Wait until the client is running; return whether it is.

        Do not call this from the ioloop, use :meth:`until_running`.
        """
        if self._loop is None:
            raise RuntimeError("Call start() before wait_running()")
        self._check_not_loop("wait_running")
        return self._running.wait(timeout)

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the client is connected; return whether it is.

        Do not call this from the ioloop, use :meth:`until_connected`.
        """
        self._check_not_loop("wait_connected")
        return self._connected.wait(timeout)

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Wait until the client is disconnected; return whether it is.

        Do not call this from the ioloop, use :meth:`until_disconnected`.
        """
        self._check_not_loop("wait_disconnected")
        return self._disconnected.wait(timeout)

    def wait_protocol(self, timeout: float | None = None) -> bool:
        """Wait until katcp protocol information has been received from server.

        Returns True when :attr:`protocol_flags` holds the server's protocol information. Do
        not call this from the ioloop, use :meth:`until_protocol`.
        """
        self._check_not_loop("wait_protocol")
        return self._received_protocol_info.wait(timeout)


def _resolve_none(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def tls_options(client: ClientBase) -> dict[str, Any]:
    """``create_connection`` keywords for `client`'s TLS context (none for plain TCP)."""
    ctx = client.ssl_context
    if ctx is None:
        return {}
    return {"ssl": ctx, "server_hostname": client.bind_address[0]}
