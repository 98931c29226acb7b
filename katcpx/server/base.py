"""DeviceServerBase: listening, the event loop, and message dispatch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import socket
import ssl
import sys
import threading
import time
import traceback
import types
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.ioloop import IOLoop

from .._compat import Python2Next
from ..codec import format_timestamp
from ..errors import AsyncReply, FailReply, KatcpSyntaxError, MessageTooLong
from ..flags import ProtocolFlags
from ..message import Message
from ..tls import TlsAcceptor
from .access import DEFAULT_POLICY, AccessPolicy, Role, refusal
from .bad_line import invalid_reply
from .connection import (
    ActivityTracker,
    ClientConnection,
    ClientRequestConnection,
    RunStopped,
    ServerProtocol,
)
from .handler_thread import HandlerThread, HandlerThreadStopped, is_coroutine_handler
from .handoff import LoopHandoff
from .metaclass import DeviceMetaclass, Handler, prepare_handler

if TYPE_CHECKING:
    from ..metrics._endpoint import MetricsEndpoint
    from ..metrics._stats import ServerStats

__all__ = ["DeviceServerBase"]

log = logging.getLogger("katcp.server")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
#: Seconds start() waits, from another thread, for a managed server's stop under way.
_RESTART_WAIT = 5.0

AnyFuture = asyncio.Future[Any] | concurrent.futures.Future[Any]


def _is_pending(value: Any) -> bool:
    return inspect.isawaitable(value) or isinstance(value, concurrent.futures.Future)


class DeviceServerBase(Python2Next, metaclass=DeviceMetaclass):
    """Base class for device servers.

    Subclasses add ``request_*`` methods taking ``(self, req, msg)`` that return the reply
    message (or raise :class:`~katcpx.errors.FailReply`), and optionally ``inform_*`` and
    ``reply_*`` methods. Normally you subclass :class:`~katcpx.server.DeviceServer`, which
    adds the standard requests.

    Parameters
    ----------
    host : str
        Host to listen on. ``""`` listens on every IPv4 and IPv6 interface.
    port : int
        Port to listen on; 0 picks a free port (see :attr:`bind_address`).
    tb_limit : int, optional
        Maximum number of stack frames sent to a client in an error traceback (only when
        :attr:`SEND_TRACEBACKS` is true; by default a failing handler's reply carries just
        ``ExceptionType: message`` and the full traceback goes to `logger`).
    logger : logging.Logger, optional
        Logger to log messages to.
    ssl_context : ssl.SSLContext, optional
        Serve TLS with this context (see :mod:`katcpx.tls`); plain TCP when None.
    access_policy : AccessPolicy, optional
        Gives each client its role (see :mod:`katcpx.server.access`); everyone is
        ``admin`` when None.

    Notes
    -----
    Limits are class attributes, to be changed before :meth:`start`:
    :attr:`MAX_MSG_SIZE`, :attr:`MAX_WRITE_BUFFER_SIZE`, :attr:`MAX_REQUESTS_PER_TURN`,
    :attr:`MAX_QUEUED_REQUESTS`, :attr:`MAX_QUEUED_BYTES`, :attr:`ORDERED_WAIT_LIMIT`, :attr:`DISCONNECT_TIMEOUT`.
    """

    #: Protocol version and flags (katcp-python's default: v5.0 with M and I).
    PROTOCOL_INFO: ClassVar[ProtocolFlags] = ProtocolFlags(
        5, 0, [ProtocolFlags.MULTI_CLIENT, ProtocolFlags.MESSAGE_IDS]
    )
    #: Listen backlog.
    BACKLOG: ClassVar[int] = 128
    #: Longest accepted message in bytes; a longer line gets ``#log error``, ``#disconnect``
    #: and the connection is closed.
    MAX_MSG_SIZE: ClassVar[int] = 2 * 1024 * 1024
    #: Output bytes queued for one client beyond which it is disconnected (slow reader).
    MAX_WRITE_BUFFER_SIZE: ClassVar[int] = 4 * 1024 * 1024
    #: Messages handled per connection per loop turn (fairness between clients).
    MAX_REQUESTS_PER_TURN: ClassVar[int] = 128
    #: Seconds of request handling per connection per loop turn (at least one request):
    #: a client pipelining requests delays another client's request by about this much.
    MAX_TURN_SECONDS: ClassVar[float] = 50e-6
    #: Queued messages per connection beyond which reading from it pauses.
    MAX_QUEUED_REQUESTS: ClassVar[int] = 1024
    #: Received bytes queued per connection beyond which reading from it pauses (with
    #: :attr:`MAX_MSG_SIZE`, what bounds a connection's input memory).
    MAX_QUEUED_BYTES: ClassVar[int] = 4 * 1024 * 1024
    #: Seconds a connection waits for an unfinished request (an ``async def`` handler or a
    #: returned future) before handling its next messages anyway; the late reply is still
    #: sent. None waits for ever (katcp-python's behaviour).
    ORDERED_WAIT_LIMIT: ClassVar[float | None] = 10.0
    #: Seconds ``on_client_disconnect`` may take.
    DISCONNECT_TIMEOUT: ClassVar[float] = 1.0
    #: Send tracebacks (at most `tb_limit` frames) in fail replies instead of a short message.
    SEND_TRACEBACKS: ClassVar[bool] = False
    #: With :attr:`SEND_TRACEBACKS`, keep full file paths (otherwise only file names).
    TRACEBACK_PATHS: ClassVar[bool] = False

    _request_handlers: dict[str, Handler]
    _inform_handlers: dict[str, Handler]
    _reply_handlers: dict[str, Handler]

    def __init__(
        self,
        host: str,
        port: int,
        tb_limit: int = 20,
        logger: logging.Logger = log,
        *,
        ssl_context: ssl.SSLContext | None = None,
        access_policy: AccessPolicy | None = None,
    ) -> None:
        self._bindaddr: tuple[str, int] = (host, port)
        #: TLS context of the listening sockets, or None for plain TCP.
        self.ssl_context = ssl_context
        #: Gives each client its role when it connects.
        self.access_policy = access_policy or DEFAULT_POLICY
        self._tb_limit = tb_limit
        self._logger = logger
        self.ioloop: IOLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._handoff: LoopHandoff | None = None
        self._managed = True
        self._daemon = False
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._starting = False
        # stop() called while starting: honoured as soon as the start completes.
        self._stop_requested = False
        # Set from the start of stopping until the next start().
        self._closing = False
        # start() called on the loop while a stop was still under way: done once stopped.
        self._start_after_stop = False
        self._running_cf: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped_cf: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._listeners: list[asyncio.base_events.Server] = []
        self._connections: dict[ClientConnection, None] = {}
        #: Which connections sent something lately (their turns shorten for each other).
        self.activity = ActivityTracker()
        self._handler_executor: HandlerThread | None = None
        self._concurrency_options: dict[str, bool] = {}
        self.set_concurrency_options()
        #: Counters kept while metrics are on (see :meth:`enable_metrics`), else None.
        self.metrics: ServerStats | None = None

    # -- configuration ------------------------------------------------------------------

    @property
    def bind_address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (the real port once started)."""
        return self._bindaddr

    def setDaemon(self, daemonic: bool) -> None:
        """Set the daemon flag of the managed ioloop thread (before :meth:`start`)."""
        self._daemon = bool(daemonic)

    def set_ioloop(self, ioloop: IOLoop | asyncio.AbstractEventLoop | None = None) -> None:
        """Run on `ioloop` (default ``IOLoop.current()``) instead of a managed thread.

        Must be called before :meth:`start`. `ioloop` may be a tornado IOLoop or an asyncio
        event loop. The server then never starts or stops the loop; inside
        ``asyncio.run()`` call it from the running loop (or pass the loop).
        """
        if self._running.is_set() or self._starting:
            raise RuntimeError("set_ioloop() must be called before start()")
        if isinstance(ioloop, asyncio.AbstractEventLoop):
            # Its IOLoop wrapper is looked up on the loop itself, in _install.
            self.ioloop = None
            self._loop = ioloop
        else:
            self.ioloop = ioloop if ioloop is not None else IOLoop.current()
            self._loop = self.ioloop.asyncio_loop  # type: ignore[attr-defined]
        self._managed = False

    def set_concurrency_options(
        self, thread_safe: bool = True, handler_thread: bool = True
    ) -> None:
        """Set concurrency options; must be called before :meth:`start`.

        Parameters
        ----------
        thread_safe : bool
            Make the public methods safe to call from any thread. In katcpx sending is
            always thread-safe (it costs one thread-id check), so this only gates
            `handler_thread`.
        handler_thread : bool
            Handle all messages (from every client) in one separate request-handling
            thread, as katcp-python before 0.6 did. Needs `thread_safe`. A blocking handler
            then blocks other requests but not sampling or I/O. ``async def`` handlers and
            handlers returning futures still complete on the loop.
        """
        if handler_thread and not thread_safe:
            raise ValueError("handler_thread=True requires thread_safe=True")
        self._concurrency_options = {"thread_safe": thread_safe, "handler_thread": handler_thread}
        # As katcp-python: the dispatch is installed on the instance, so a subclass's
        # on_message override is never on the dispatch path (requests stay answered even
        # if it does not call super); handle_message/handle_request overrides still are.
        self.on_message = types.MethodType(DeviceServerBase.on_message, self)  # type: ignore[method-assign]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the server: in a new managed ioloop thread unless :meth:`set_ioloop` was used.

        The listening sockets are bound before this returns (so :attr:`bind_address` is
        known). The calling thread's current IOLoop is left unchanged. Called while a
        :meth:`stop` is still under way (as in ``server.stop(); server.start()`` on the
        server's loop), the start happens as soon as the stop has finished, as with
        katcp-python.

        Parameters
        ----------
        timeout : float or None, optional
            Seconds to wait until the server is running (ignored on the loop's own thread).

        Returns
        -------
        None
            Always, as katcp-python's ``DeviceServer.start``; :meth:`wait_running` or
            :meth:`running` say whether it runs.

        Raises
        ------
        Exception
            When `timeout` is given and the server failed to start (for example an
            exception in :meth:`on_server_start`), that exception.
        """
        if (self._closing or self._stop_requested) and not self._stopped.is_set():
            # A stop is still under way (its listeners close a few loop turns later), as
            # after katcp-python's ``server.stop(); server.start()``: start once it is done.
            if self._in_loop_thread() or not self._managed:
                self._start_after_stop = True
                if not timeout or self._in_loop_thread():
                    return None
                deadline = time.monotonic() + timeout
                self._stopped.wait(timeout)
                self._running.wait(max(0.0, deadline - time.monotonic()))
                return None
            self._stopped.wait(_RESTART_WAIT)
        if self._running.is_set() or self._starting:
            raise RuntimeError("Server already started")
        socks = self._bind_sockets()
        self._starting = True
        self._stop_requested = False
        self._closing = False
        self._stopped.clear()
        self._running_cf = concurrent.futures.Future()
        self._stopped_cf = concurrent.futures.Future()
        if self._concurrency_options["handler_thread"]:
            self._handler_executor = HandlerThread(f"{type(self).__name__}.message_handler")
        if self._managed:
            self._thread = threading.Thread(
                target=self._run_managed,
                args=(socks,),
                name=f"{type(self).__name__}.ioloop",
                daemon=self._daemon,
            )
            self._thread.start()
        else:
            assert self._loop is not None
            self._threadsafe(self._loop, self._spawn_install, socks)
        if timeout and not self._in_loop_thread():
            try:
                self._running_cf.result(timeout)  # raises what stopped the server starting
            except concurrent.futures.TimeoutError:
                pass  # not running yet: katcp-python returns (None) all the same
        return None

    def stop(self, timeout: float | None = 1.0) -> concurrent.futures.Future[None]:
        """Stop the server: send ``#disconnect`` to every client, close, stop a managed loop.

        Parameters
        ----------
        timeout : float or None, optional
            Seconds to wait for the server to have *started* (from another thread).

        Returns
        -------
        concurrent.futures.Future
            Resolves when the server is stopped (``asyncio.wrap_future`` it to await).

        Notes
        -----
        Called before the server finished starting (say on a :meth:`set_ioloop` loop that
        has not run yet), the stop takes effect as soon as the start completes. Called
        before :meth:`start` or after the server stopped, it does nothing.
        """
        self._start_after_stop = False  # a start deferred until a stop finished is off
        if timeout and not self._in_loop_thread():
            self._running.wait(timeout)
        stopped = self._stopped_cf
        loop = self._loop
        if loop is None or not (self._running.is_set() or self._starting):
            if not stopped.done():
                stopped.set_result(None)
            return stopped
        self._stop_requested = True
        try:
            self._threadsafe(loop, self._spawn_uninstall)
        except RuntimeError:  # loop already closed
            if not stopped.done():
                stopped.set_result(None)
        return stopped

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server (and its managed thread) to finish stopping."""
        if self._thread is not None:
            self._thread.join(timeout)
            return
        loop = self._loop
        if loop is not None and not loop.is_running() and not self._stopped.is_set():
            # Nothing runs the loop that would finish the stop (say an AsyncDeviceServer
            # started outside a running loop): waiting would never end. katcp-python
            # returns at once here too.
            self._logger.warning("join: the server's ioloop is not running; not waiting")
            return
        self._stopped.wait(timeout)

    def running(self) -> bool:
        """Whether the server is running."""
        return self._running.is_set()

    def wait_running(self, timeout: float | None = None) -> bool:
        """Block until the server is running; returns whether it is."""
        return self._running.wait(timeout)

    def until_running(self, timeout: float | None = None) -> Awaitable[None]:
        """Awaitable that resolves when the server is running."""
        return self._awaitable(self._running_cf, timeout)

    def until_stopped(self, timeout: float | None = None) -> Awaitable[None]:
        """Awaitable that resolves when the server has stopped."""
        return self._awaitable(self._stopped_cf, timeout)

    def sync_with_ioloop(self, timeout: float | None = None) -> Awaitable[None] | None:
        """Let the ioloop complete a loop iteration.

        From another thread this blocks (raising ``concurrent.futures.TimeoutError`` after
        `timeout`); on the loop's thread it returns a future to await instead.
        """
        loop = self._loop
        if loop is None or loop.is_closed() or not (self._running.is_set() or self._starting):
            return None  # not started, or stopped: no loop iteration to wait for
        if self._in_loop_thread():
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            return fut
        cf: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(cf.set_result, None)
        except RuntimeError:  # closed meanwhile
            return None
        cf.result(timeout)
        return None

    def _awaitable(
        self, cf: concurrent.futures.Future[None], timeout: float | None
    ) -> Awaitable[None]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return cf  # type: ignore[return-value]  # no loop here: a blocking future
        fut = asyncio.wrap_future(cf)
        return asyncio.ensure_future(asyncio.wait_for(fut, timeout)) if timeout else fut

    def _in_loop_thread(self) -> bool:
        return self._loop_thread_id is not None and threading.get_ident() == self._loop_thread_id

    @staticmethod
    def _threadsafe(loop: asyncio.AbstractEventLoop, func: Callable[..., Any], *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            func(*args)
        else:
            loop.call_soon_threadsafe(func, *args)

    def _bind_sockets(self) -> list[socket.socket]:
        host, port = self._bindaddr
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        socks: list[socket.socket] = []
        seen = set()
        try:
            for family, stype, proto, _, sockaddr in infos:
                if (family, sockaddr) in seen:
                    continue
                seen.add((family, sockaddr))
                if socks and port == 0:
                    # Same free port on every address family.
                    sockaddr = (sockaddr[0], socks[0].getsockname()[1], *sockaddr[2:])
                sock = socket.socket(family, stype, proto)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(sockaddr)
                except OSError:
                    sock.close()
                    if socks or len(infos) > 1 and family == socket.AF_INET6:
                        # e.g. no IPv6 on this host: serve the families that work.
                        self._logger.warning("could not bind %s", sockaddr, exc_info=True)
                        continue
                    raise
                sock.listen(self.BACKLOG)
                sock.setblocking(False)
                socks.append(sock)
            if not socks:
                raise OSError(f"could not bind to {self._bindaddr!r}")
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        self._bindaddr = (host, socks[0].getsockname()[1])
        return socks

    def _run_managed(self, socks: list[socket.socket]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.create_task(self._install(socks))
            loop.run_forever()
            # Let transports finish closing before the loop goes away.
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            if self.ioloop is not None:
                self.ioloop.close()
            loop.close()
            self._loop_thread_id = None
            self._finish_stopped()

    def _spawn_install(self, socks: list[socket.socket]) -> None:
        assert self._loop is not None
        self._loop.create_task(self._install(socks))

    async def _install(self, socks: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._handoff = LoopHandoff(loop)
        self._loop_thread_id = threading.get_ident()
        if self._managed or self.ioloop is None:
            # Made inside the server's running loop: no other thread's current IOLoop changes.
            self.ioloop = IOLoop.current()
        try:
            self._on_install(loop)
            self.on_server_start()

            def factory() -> ServerProtocol:
                return ServerProtocol(self)

            ctx = self.ssl_context
            for line in self.access_policy.unreachable_grants(
                ctx is not None, ctx is not None and ctx.verify_mode != ssl.CERT_NONE
            ):
                self._logger.warning("access policy: %s", line)
            serve: Callable[[], asyncio.BaseProtocol] = (
                factory if ctx is None else lambda: TlsAcceptor(ctx, factory, self._logger)
            )
            for sock in socks:
                self._listeners.append(await loop.create_server(serve, sock=sock))
        except BaseException as exc:
            self._logger.exception("server failed to start")
            for sock in socks:
                sock.close()
            self._starting = False
            self._running_cf.set_exception(exc)
            if self._managed:
                loop.stop()
            else:
                self._finish_stopped()
            return
        self._starting = False
        self._running.set()
        self._running_cf.set_result(None)
        if self._stop_requested:  # stop() came while starting
            loop.create_task(self._uninstall())

    def _spawn_uninstall(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self._uninstall())

    async def _uninstall(self) -> None:
        if not self._running.is_set():
            return  # not started yet (_install sees _stop_requested), or already stopping
        self._running.clear()
        self._closing = True
        try:
            await self._close_listeners()
            await self._disconnect_all("Device server shutting down.")
            try:
                self.on_server_stop()
            except Exception:
                self._logger.exception("error in on_server_stop")
            self._on_uninstall()
        finally:
            if self._handler_executor is not None:
                self._handler_executor.shutdown()
                self._handler_executor = None
            if self._managed:
                assert self._loop is not None
                self._loop.stop()
            else:
                self._finish_stopped()

    async def _close_listeners(self) -> None:
        """Stop accepting, let accepts already made become connections, then close.

        asyncio turns an accepted socket into a transport in a task of its own; closing the
        listener before that task runs leaves the socket open but unserved (no protocol,
        no EOF). So accepting stops first (the kernel keeps later connections queued, and
        closing the listener resets those), and the in-flight ones get two loop turns.
        """
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            for sock in listener.sockets:
                try:
                    loop.remove_reader(sock.fileno())
                except (NotImplementedError, ValueError):  # not a selector loop
                    pass
        for _ in range(2):
            await asyncio.sleep(0)
        for listener in self._listeners:
            listener.close()
        self._listeners = []

    async def _disconnect_all(self, reason: str) -> None:
        """Disconnect every client, including ones whose accept was still in flight.

        A socket accepted just before the listeners closed becomes a connection a couple of
        loop iterations later (asyncio makes its transport in a task); those are waited for
        too, so every client gets ``#disconnect`` (spec 5.1 section 4.2) and EOF.
        """
        done: set[ClientConnection] = set()
        quiet_turns = 0
        while quiet_turns < 3:
            conns = [conn for conn in self._connections if conn not in done]
            if not conns:
                quiet_turns += 1
                await asyncio.sleep(0)
                continue
            quiet_turns = 0
            done.update(conns)
            await asyncio.gather(
                *(self._disconnect_async(conn, reason, True) for conn in conns),
                return_exceptions=True,
            )

    def _finish_stopped(self) -> None:
        self._running.clear()
        self._starting = False
        self._stopped.set()
        if not self._stopped_cf.done():
            self._stopped_cf.set_result(None)
        if self._start_after_stop:
            self._start_after_stop = False
            try:
                self.start()
            except Exception:
                self._logger.exception("could not start the server again after stopping")

    def on_server_start(self) -> None:
        """Run on the server's loop as it starts, before it accepts clients.

        Override to start periodic work that belongs to the server's lifetime (polling
        hardware, a simulation tick); ``self.ioloop`` is the running loop. An exception here
        stops the server from starting.
        """

    def on_server_stop(self) -> None:
        """Run on the server's loop as it stops, after every client got ``#disconnect``.

        Override to stop what :meth:`on_server_start` started. Exceptions are logged.
        """

    def _on_install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hook run on the loop before listening starts."""

    def _on_uninstall(self) -> None:
        """Hook run on the loop after every client is disconnected."""

    # -- connections ----------------------------------------------------------------------

    def _connection_made(self, conn: ClientConnection) -> None:
        self._connections[conn] = None
        if self.metrics is not None:
            self.metrics.connection_accepted()
        if self._closing:  # made after stop() disconnected everyone: tell it too
            self._disconnect_client(conn, "Device server shutting down.")
            return
        try:
            ready = self.on_client_connect(conn)
        except Exception:
            self._logger.exception("on_client_connect failed for %s", conn.address)
            self._disconnect_client(conn, "Device error initialising connection.")
            return
        if _is_pending(ready):
            fut = self._watch(ready)
            fut.add_done_callback(lambda f: self._connect_done(conn, f))
        else:
            conn._ready()

    def _connect_done(self, conn: ClientConnection, fut: AnyFuture) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._logger.error(
                "on_client_connect failed for %s", conn.address, exc_info=fut.exception()
            )
            self._disconnect_client(conn, "Device error initialising connection.")
        else:
            conn._ready()

    def _connection_lost(self, conn: ClientConnection, exc: BaseException | None) -> None:
        conn._lost()
        if self.metrics is not None:
            self.metrics.connection_dropped()
        if conn in self._connections:
            del self._connections[conn]
            reason = repr(exc) if exc else "Socket EOF"  # katcp-python's reasons
            assert self._loop is not None
            self._loop.create_task(self._disconnect_async(conn, reason, False))

    def _disconnect_client(self, conn: ClientConnection, reason: str) -> None:
        """Disconnect `conn` after ``on_client_disconnect`` (loop thread)."""
        assert self._loop is not None
        self._loop.create_task(self._disconnect_async(conn, reason, not conn._closed))

    async def _disconnect_async(self, conn: ClientConnection, reason: str, valid: bool) -> None:
        if not conn.client_disconnect_called:
            conn.on_client_disconnect_was_called()
            try:
                result = self.on_client_disconnect(conn, reason, valid)
                if _is_pending(result):
                    await asyncio.wait_for(self._as_asyncio(result), self.DISCONNECT_TIMEOUT)
            except Exception:
                self._logger.exception("on_client_disconnect failed for %s", conn.address)
        self._connections.pop(conn, None)
        if not conn._closed:
            conn._link.close()
        conn._lost()

    def _message_too_long(self, conn: ClientConnection, err: MessageTooLong) -> None:
        text = f"Message too long: {err}"
        if self.metrics is not None:
            self.metrics.syntax_error()
        self._logger.warning("%s from %s; disconnecting", text, conn.address)
        conn._send(self.create_log_inform("error", text, "root"))
        conn.stop_handling()
        self._disconnect_client(conn, text)

    def _syntax_error(self, conn: ClientConnection, err: KatcpSyntaxError) -> None:
        self._logger.warning("bad message from %s: %s", conn.address, err)
        if self.metrics is not None:
            self.metrics.syntax_error()
        conn._send(self.create_log_inform("error", f"Bad message: {err}", "root"))
        reply = invalid_reply(err)
        if reply is not None:  # the client would otherwise wait for its timeout
            conn._send(reply)

    def on_client_connect(self, conn: ClientConnection) -> Any:
        """Called after a client connects; may return a future to delay its requests.

        Subclasses override this to greet clients or do house-keeping.
        """
        return None

    def on_client_disconnect(self, conn: ClientConnection, msg: str, connection_valid: bool) -> Any:
        """Called before a connection closes; may return a future (bounded wait).

        Parameters
        ----------
        conn : ClientConnection
            The connection being closed.
        msg : str
            Why it is being closed.
        connection_valid : bool
            Whether the connection can still be written to.
        """
        return None

    # -- dispatch ---------------------------------------------------------------------------

    def on_message(self, client_conn: ClientConnection, msg: Message) -> Any:
        """Handle one message with the configured concurrency (katcp-python's hook).

        As in katcp-python, :meth:`set_concurrency_options` installs this on the instance:
        a subclass overriding it is not called (override :meth:`handle_message` or
        :meth:`handle_request` to see every message).

        Returns None, or a future that resolves when the next message may be handled.
        """
        executor = self._handler_executor
        if executor is None:
            result = self.handle_message(client_conn, msg)
            return result if _is_pending(result) else None
        if self.is_loop_safe(msg):
            self.handle_loop_safe(client_conn, msg)
            return None
        if msg.mtype == Message.REQUEST and is_coroutine_handler(
            self._request_handlers.get(msg.name, _no_handler)
        ):
            # Coroutines need the loop (see is_coroutine_handler); still in order.
            result = self.handle_message(client_conn, msg)
            return result if _is_pending(result) else None
        outer: concurrent.futures.Future[None] = concurrent.futures.Future()

        def ran(f: concurrent.futures.Future[Any]) -> None:
            # A cancelled future (the executor shut down) has no exception() to ask: it
            # raises CancelledError, which would leave the connection busy for good.
            exc = None if f.cancelled() else f.exception()
            inner = None if f.cancelled() or exc is not None else f.result()
            if exc is not None:
                # A handle_message override raised before replying: no request unanswered.
                self.refuse_message(client_conn, msg, str(exc))
            if _is_pending(inner):
                self._watch(inner).add_done_callback(lambda _: outer.set_result(None))
            else:
                outer.set_result(None)

        try:
            executor.submit(self.handle_message, client_conn, msg).add_done_callback(ran)
        except HandlerThreadStopped as exc:  # stopping: still no request goes unanswered
            self.refuse_message(client_conn, msg, str(exc))
            return None
        return outer

    def runs_on_loop(self, msg: Message) -> bool:
        """Whether :meth:`on_message` handles `msg` on the loop, not in the handler thread.

        True for the read-only standard requests (:meth:`is_loop_safe`) and for requests whose
        handler is a coroutine (they need the loop, see ``is_coroutine_handler``). Such a
        message ends a run of requests handed to the handler thread at once.
        """
        if self.is_loop_safe(msg):
            return True
        return msg.mtype == Message.REQUEST and is_coroutine_handler(
            self._request_handlers.get(msg.name, _no_handler)
        )

    def refuse_message(self, client_conn: ClientConnection, msg: Message, why: str) -> None:
        """Answer a message that could not be handled: a request gets a ``fail`` reply.

        Informs and replies from clients are logged and dropped.
        """
        self._logger.error("could not handle %s from %s: %s", msg, client_conn.address, why)
        if msg.mtype == Message.REQUEST:
            client_conn.reply(
                Message.reply(msg.name, "fail", f"Request could not be handled: {why}"), msg
            )

    def handles_runs(self) -> bool:
        """Whether connections may hand :meth:`on_message_run` runs of requests at once.

        True in handler-thread mode unless code assigned its own ``on_message`` to the
        instance (then each message goes through it, as in katcp-python).
        """
        # Only code assigning its own on_message to the instance replaces the dispatch.
        on_message = getattr(self.on_message, "__func__", None)
        return self._handler_executor is not None and on_message is DeviceServerBase.on_message

    def on_message_run(self, client_conn: ClientConnection, run: list[Message]) -> AnyFuture:
        """Handle consecutive messages of one client in the handler thread, in one hand-off.

        The messages are handled in order, as :meth:`on_message` would one by one, but the
        loop and the handler thread meet once per run instead of twice per message.

        Returns
        -------
        concurrent.futures.Future
            Resolves to None once the run is done, or, if a handler left a request running
            (it returned a future), to a :class:`RunStopped` holding that future and the
            messages after it, which wait for it (the connection queues them again first).
        """
        executor = self._handler_executor
        assert executor is not None

        def handle_all() -> RunStopped | None:
            for index, msg in enumerate(run):
                try:
                    result = self.handle_message(client_conn, msg)
                except Exception as exc:  # nothing a client sends may kill the server
                    self.refuse_message(client_conn, msg, str(exc))  # and none unanswered
                    continue
                if _is_pending(result):
                    return RunStopped(self._watch(result), run[index + 1 :])
            return None

        try:
            return executor.submit(handle_all)
        except HandlerThreadStopped as exc:  # stopping: still no request goes unanswered
            for msg in run:
                self.refuse_message(client_conn, msg, str(exc))
            done: concurrent.futures.Future[RunStopped | None] = concurrent.futures.Future()
            done.set_result(None)
            return done

    def is_loop_safe(self, msg: Message) -> bool:
        """Whether `msg` is a read-only standard request answered on the loop at once.

        These (``?watchdog``, ``?help``, ``?sensor-list``, ``?sensor-value``,
        ``?version-list``, ``?client-list``, unless a subclass overrides them) never wait
        for the handler thread nor for an unfinished request on their connection, so a
        slow or stuck device handler cannot make a server look dead. Their replies may
        therefore overtake the reply of an earlier, still running request (spec rev 5.1
        section 2.2 matches replies by message id, not order).
        """
        if msg.mtype != Message.REQUEST:
            return False
        handler = self._request_handlers.get(msg.name)
        return handler is not None and getattr(handler, "_loop_safe", False)

    def handle_loop_safe(self, client_conn: ClientConnection, msg: Message) -> None:
        """Handle a request for which :meth:`is_loop_safe` is true, on the loop, now."""
        self.handle_message(client_conn, msg)

    def handle_message(self, client_conn: ClientConnection, msg: Message) -> Any:
        """Handle a message of any type from a client (dispatches by type)."""
        if msg.mtype == Message.REQUEST:
            return self.handle_request(client_conn, msg)
        if msg.mtype == Message.INFORM:
            return self.handle_inform(client_conn, msg)
        if msg.mtype == Message.REPLY:
            return self.handle_reply(client_conn, msg)
        client_conn.inform(
            self.create_log_inform(
                "error", f"Unexpected message type received by server ['{msg}'].", "root"
            )
        )
        return None

    def handle_request(self, connection: ClientConnection, msg: Message) -> AnyFuture | None:
        """Dispatch a request to its handler and send the reply.

        Returns
        -------
        Future or None
            For a handler still running (an ``async def``, or one that returned a future)
            a future that resolves once it replied, unless the handler is
            ``@concurrent_reply``; otherwise None.
        """
        handler = self._request_handlers.get(msg.name)
        if handler is None:
            # katcp-python's text and level; the name is cut (the record must not keep a
            # MiB-long name alive).
            self._logger.error("%s INVALID: Unknown request.", msg.name[:200])
            if self.metrics is not None:
                self.metrics.unknown_request()
            connection.reply(Message.reply(msg.name, "invalid", "Unknown request."), msg)
            return None
        # Stand-in connections (katcp-python-style tests) carry no role: the default, admin.
        if getattr(connection, "role", Role.ADMIN) is not Role.ADMIN:
            refused = refusal(connection, msg.name, handler, msg, self._logger)
            if refused is not None:
                connection.reply(Message.reply(msg.name, "fail", refused), msg)
                return None
        req = ClientRequestConnection(connection, msg)
        try:
            result = handler(self, req, msg)
        except AsyncReply:
            return None
        except FailReply as exc:
            self._send_fail(req, str(exc))
            return None
        except Exception:
            self._send_result(req, self.create_exception_reply_and_log(msg, sys.exc_info()))  # type: ignore[arg-type]
            return None
        if not _is_pending(result):
            self._send_result(req, result)
            return None
        fut = self._watch(result)
        fut.add_done_callback(lambda f: self._async_done(req, f))
        if getattr(handler, "_concurrent_reply", False):
            return None
        return fut

    def _async_done(self, req: ClientRequestConnection, fut: AnyFuture) -> None:
        if fut.cancelled():
            self._send_fail(req, "Request cancelled.")
            return
        exc = fut.exception()
        if exc is None:
            self._send_result(req, fut.result())
        elif isinstance(exc, AsyncReply):
            pass
        elif isinstance(exc, FailReply):
            self._send_fail(req, str(exc), " FUTURE")  # katcp-python's log wording
        else:
            self._send_result(
                req,
                self.create_exception_reply_and_log(req.msg, (type(exc), exc, exc.__traceback__)),
            )

    def _send_fail(self, req: ClientRequestConnection, reason: str, how: str = "") -> None:
        # katcp-python's level and wording (`how` " FUTURE" for a handler that finished
        # later); the log keeps no MiB-long reason alive.
        self._logger.error("Request %s%s FAIL: %s", req.msg.name, how, reason[:1000])
        self._send_result(req, Message.reply(req.msg.name, "fail", reason))

    def _send_result(self, req: ClientRequestConnection, result: Any) -> None:
        if req.replied:
            if result is not None:
                self._logger.error(
                    "%s: handler returned a reply after replying; dropped", req.msg.name
                )
            return
        if isinstance(result, Message):
            if result.mtype != Message.REPLY or result.name != req.msg.name:
                self._logger.error("%s: handler returned %r, not its reply", req.msg.name, result)
                result = Message.reply(
                    req.msg.name, "fail", "Request handler returned a bad reply."
                )
            req.reply_with_message(result)
        elif isinstance(result, tuple | list):
            req.reply(*result)
        else:
            self._logger.error("%s: handler returned %r instead of a reply", req.msg.name, result)
            req.reply("fail", "Request handler returned no reply.")

    def _watch(self, awaitable: Any) -> AnyFuture:
        """A future for `awaitable` whose callbacks run safely (loop futures on the loop)."""
        loop = self._loop
        assert loop is not None
        if isinstance(awaitable, concurrent.futures.Future):
            return awaitable
        if self._in_loop_thread():
            return asyncio.ensure_future(awaitable, loop=loop)
        if inspect.iscoroutine(awaitable):
            return asyncio.run_coroutine_threadsafe(awaitable, loop)
        cf: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def chain() -> None:
            fut = asyncio.ensure_future(awaitable, loop=loop)
            asyncio.futures._chain_future(fut, cf)  # type: ignore[attr-defined]

        loop.call_soon_threadsafe(chain)
        return cf

    def _as_asyncio(self, awaitable: Any) -> asyncio.Future[Any]:
        if isinstance(awaitable, concurrent.futures.Future):
            return asyncio.wrap_future(awaitable)
        return asyncio.ensure_future(awaitable)

    def create_exception_reply_and_log(self, req_msg: Message, exc_info: ExcInfo) -> Message:
        """Log a handler's exception (with traceback) and build its ``fail`` reply."""
        e_type, e_value, trace = exc_info
        self._logger.error("Request %s FAIL", req_msg.name, exc_info=exc_info)
        return Message.reply(req_msg.name, "fail", self._format_exception(e_type, e_value, trace))

    def _format_exception(
        self, e_type: type[BaseException], e_value: BaseException, trace: TracebackType | None
    ) -> str:
        short = "".join(traceback.format_exception_only(e_type, e_value)).strip()
        if not self.SEND_TRACEBACKS:
            return short
        frames = traceback.extract_tb(trace, limit=-self._tb_limit if self._tb_limit else None)
        if not self.TRACEBACK_PATHS:
            for frame in frames:
                frame.filename = os.path.basename(frame.filename)
        return "Traceback (most recent call last):\n" + "".join(frames.format()) + short

    def handle_inform(self, connection: ClientConnection, msg: Message) -> None:
        """Dispatch an inform from a client to its ``inform_*`` handler, if any."""
        handler = self._inform_handlers.get(msg.name)
        if handler is None:
            return
        try:
            handler(self, connection, msg)
        except Exception:
            self._logger.exception("Inform %s FAIL", msg.name)

    def handle_reply(self, connection: ClientConnection, msg: Message) -> None:
        """Dispatch a reply from a client to its ``reply_*`` handler.

        A server sends no requests unless a subclass does, so a reply without a
        ``reply_*`` handler is unexpected: the client gets ``#log error`` naming it (as
        aiokatcp does) rather than having it silently ignored.
        """
        handler = self._reply_handlers.get(msg.name)
        if handler is None:
            self._logger.warning("unexpected reply %s from %s", msg.name, connection.address)
            connection.inform(
                self.create_log_inform(
                    "error", f"Unexpected reply {msg.name} received by server.", "root"
                )
            )
            return
        try:
            handler(self, connection, msg)
        except Exception:
            self._logger.exception("Reply %s FAIL", msg.name)

    # -- metrics ----------------------------------------------------------------------------

    def enable_metrics(self, registry: Any = None, name: str | None = None) -> ServerStats:
        """Start counting this server's health and register it with a Prometheus registry.

        See :func:`katcpx.metrics.instrument_server` (this calls it) and
        ``docs/monitoring.md`` for the metrics. Calling it again returns the same counters.
        """
        from ..metrics._health import instrument_server

        return instrument_server(self, registry, name)

    def start_metrics_server(
        self, port: int, host: str = "127.0.0.1", registry: Any = None
    ) -> MetricsEndpoint:
        """Enable metrics and serve them over HTTP at ``http://host:port/metrics``.

        Parameters
        ----------
        port : int
            Port of the metrics HTTP server; 0 picks a free one (``endpoint.port``).
        host : str, optional
            Address to listen on.
        registry : prometheus_client.CollectorRegistry, optional
            Registry to serve (default: prometheus_client's global ``REGISTRY``).

        Returns
        -------
        katcpx.metrics.MetricsEndpoint
            The HTTP server; its ``close()`` stops it (stopping the KATCP server does not).

        Raises
        ------
        OSError
            If the port cannot be bound.
        """
        from ..metrics._endpoint import serve_metrics

        self.enable_metrics(registry)
        return serve_metrics(port, host, registry)

    # -- dynamic requests -------------------------------------------------------------------

    def add_request_handler(self, name: str, handler: Handler) -> None:
        """Add (or replace) the handler of request `name` on this instance only.

        `handler` is called like a ``request_*`` method, as ``handler(server, req, msg)``
        (or annotated, see ``kattypes.prepare_request_handler``), and needs a docstring.
        Running servers send ``#interface-changed request <name> added``.
        """
        if handler.__doc__ is None:
            raise TypeError(f"request handler {name!r} has no docstring")
        Message(Message.REQUEST, name)  # validates the name
        if not type(self).check_protocol(handler):
            raise ValueError(f"request {name!r} is not available for {self.PROTOCOL_INFO}")
        if "_request_handlers" not in self.__dict__:
            self._request_handlers = dict(type(self)._request_handlers)
        self._request_handlers[name] = prepare_handler(handler, self.PROTOCOL_INFO.major)
        self._interface_changed("request", name, "added")

    def remove_request_handler(self, name: str) -> None:
        """Remove request `name` from this instance (``KeyError`` if unknown)."""
        if "_request_handlers" not in self.__dict__:
            self._request_handlers = dict(type(self)._request_handlers)
        del self._request_handlers[name]
        self._interface_changed("request", name, "removed")

    def _interface_changed(self, *args: str) -> None:
        if self._running.is_set():
            self.mass_inform(Message.inform("interface-changed", *args))

    # -- sending ----------------------------------------------------------------------------

    def inform(self, connection: ClientConnection, msg: Message) -> None:
        """Send an asynchronous inform to one client."""
        connection.inform(msg)

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client (formatted once). Thread-safe."""
        if msg.mtype != Message.INFORM:
            raise ValueError(f"mass_inform() needs an inform message, not {msg!r}")
        loop = self._loop
        if loop is None:
            return
        if not self._in_loop_thread():
            if self._handoff is not None:
                self._handoff.call(self.mass_inform, msg)
            return
        data = bytes(msg)
        for conn in self._connections:
            conn._send_bytes(data)

    def reply(self, connection: ClientConnection, reply: Message, orig_req: Message) -> None:
        """Send an asynchronous reply to `orig_req` (its message id is copied)."""
        connection.reply(reply, orig_req)

    def reply_inform(
        self, connection: ClientConnection, inform: Message, orig_req: Message
    ) -> None:
        """Send an inform that is part of the reply to `orig_req` (its id is copied)."""
        connection.reply_inform(inform, orig_req)

    def create_log_inform(
        self, level_name: str, msg: str, name: str, timestamp: float | None = None
    ) -> Message:
        """Create a ``#log`` inform (seconds since v5, milliseconds before)."""
        if timestamp is None:
            timestamp = time.time()
        major = self.PROTOCOL_INFO.major
        # The codec's one timestamp rule: the exact decimal (milliseconds before v5).
        return Message.inform("log", level_name, format_timestamp(timestamp, major), name, msg)


def _no_handler(*args: Any) -> None:
    """Stands in for the handler of an unknown request (not a coroutine)."""
