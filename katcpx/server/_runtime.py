"""A server's runtime: listening sockets, the event loop (managed thread or the caller's),
start/stop/join, and the set of connected clients.

:class:`ServerRuntime` is the lower half of :class:`~katcpx.server.DeviceServerBase`; the
dispatch half (``_dispatch.py``) adds message handling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from .._joinable_thread import JoinableThread
from ..crossing import LoopBinding
from ..tls import TlsAcceptor
from ._connection import (
    ActivityTracker,
    ClientConnection,
    ConnectionState,
    is_pending,
)
from ._handler_thread import HandlerThread
from ._interface_changes import InterfaceChanges
from .access import DEFAULT_POLICY, AccessPolicy

if TYPE_CHECKING:
    from ..metrics._stats import ServerStats
    from ._owner import ConnectionOwner

__all__ = ["ServerRuntime"]

log = logging.getLogger("katcp.server")

#: Seconds start() waits, from another thread, for a managed server's stop under way.
_RESTART_WAIT = 5.0


class ServerRuntime:
    """Listening, the loop a server runs on, its lifecycle and its connections.

    See :class:`~katcpx.server.DeviceServerBase` for the parameters.
    """

    #: Listen backlog.
    BACKLOG: ClassVar[int] = 128
    #: Seconds ``on_client_disconnect`` may take.
    DISCONNECT_TIMEOUT: ClassVar[float] = 1.0

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
        # The loop set_ioloop() chose, until the server runs on it; then the binding has it.
        self._given_loop: asyncio.AbstractEventLoop | None = None
        self._binding = LoopBinding()
        #: The automatic ``#interface-changed`` informs still to be sent (coalesced).
        self.interface_changes = InterfaceChanges(self._binding)
        self._managed = True
        self._daemon = False
        self._thread: JoinableThread | None = None
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
        #: Which interactive connections sent something lately (turns shorten for them).
        self.activity = ActivityTracker()
        self._handler_executor: HandlerThread | None = None
        # The handler thread of the last stop, which join() waits for (katcp-python's join
        # returns once the handler in flight finished).
        self._retired_handler: HandlerThread | None = None
        self._concurrency_options: dict[str, bool] = {}
        self.set_concurrency_options()
        #: Counters kept while metrics are on (see :meth:`enable_metrics`), else None.
        self.metrics: ServerStats | None = None
        # Request handlers still running on the loop (async ones): cancelled on stop.
        self._handler_tasks: set[asyncio.Future[Any]] = set()

    # -- configuration ------------------------------------------------------------------

    @property
    def bind_address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (the real port once started)."""
        return self._bindaddr

    @property
    def binding(self) -> LoopBinding:
        """The server's :class:`~katcpx.crossing.LoopBinding`: its loop, and the way onto it.

        Shared with its connections, its sampling manager and its operations; bound while
        the server runs.
        """
        return self._binding

    @property
    def logger(self) -> logging.Logger:
        """The logger given to the constructor."""
        return self._logger

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
            self._given_loop = ioloop
        else:
            self.ioloop = ioloop if ioloop is not None else IOLoop.current()
            self._given_loop = self.ioloop.asyncio_loop  # type: ignore[attr-defined]
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
        on_loop = self._binding.on_loop()
        if (self._closing or self._stop_requested) and not self._stopped.is_set():
            # A stop is still under way (its listeners close a few loop turns later), as
            # after katcp-python's ``server.stop(); server.start()``: start once it is done.
            if on_loop or not self._managed:
                self._start_after_stop = True
                if not timeout or on_loop:
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
            self._handler_executor = HandlerThread(
                f"{type(self).__name__}.message_handler", lambda: self._binding.loop
            )
        if self._managed:
            self._thread = JoinableThread(
                target=self._run_managed,
                args=(socks,),
                name=f"{type(self).__name__}.ioloop",
                daemon=self._daemon,
            )
            self._thread.start()
        else:
            loop = self._given_loop
            assert loop is not None
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(self._install(socks))
            else:
                # The binding is bound on the loop's own thread once the loop runs (often
                # later, as in ``server.start(); ioloop.start()``): until then this one
                # hand-off is the only way onto it.
                loop.call_soon_threadsafe(self._spawn_install, socks)
        if timeout and not on_loop:
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
        if timeout and not self._binding.on_loop():
            self._running.wait(timeout)
        stopped = self._stopped_cf
        if not (self._running.is_set() or self._starting):
            if not stopped.done():
                stopped.set_result(None)
            return stopped
        self._stop_requested = True  # seen by _install when the start is still under way
        if not self._binding.call_here_or_soon(self._spawn_uninstall) and not self._starting:
            if not stopped.done():  # the loop is gone
                stopped.set_result(None)
        return stopped

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server (its managed thread and its handler thread) to finish stopping.

        As katcp-python's, it returns once a request handler still running in the handler
        thread has finished (at most `timeout` seconds in all). A ``KeyboardInterrupt``
        (Ctrl-C) while it waits leaves the server alone, so README's shutdown works:
        ``join()``; on ``KeyboardInterrupt`` ``stop(); join()``, which returns once every
        client got ``#disconnect``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._join_loop(timeout)
        retired = self._retired_handler
        if retired is not None and not self._running.is_set():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            retired.join(left)

    def _join_loop(self, timeout: float | None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            return
        loop = self._binding.loop or self._given_loop
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
        binding = self._binding
        loop = binding.loop
        if loop is None or loop.is_closed() or not (self._running.is_set() or self._starting):
            return None  # not started, or stopped: no loop iteration to wait for
        if binding.on_loop():
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            return fut
        cf: concurrent.futures.Future[None] = concurrent.futures.Future()
        if binding.call(cf.set_result, None):
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

    def _bind_sockets(self) -> list[socket.socket]:
        host, port = self._bindaddr
        # "" listens on every IPv4 and IPv6 interface; tornado gives every family the same
        # free port when `port` is 0.
        socks = bind_sockets(port, host or None, backlog=self.BACKLOG)
        self._bindaddr = (host, socks[0].getsockname()[1])
        return socks

    def _run_managed(self, socks: list[socket.socket]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.create_task(self._install(socks))
            loop.run_forever()
            # Let transports finish closing before the loop goes away.
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            if self.ioloop is not None:
                self.ioloop.close()
            self._binding.unbind()
            loop.close()
            self._finish_stopped()

    def _spawn_install(self, socks: list[socket.socket]) -> None:
        asyncio.get_running_loop().create_task(self._install(socks))

    async def _install(self, socks: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        self._binding.bind(loop)
        if self._managed or self.ioloop is None:
            # Made inside the server's running loop: no other thread's current IOLoop changes.
            self.ioloop = IOLoop.current()
        try:
            self._on_install(loop)
            self.on_server_start()

            def factory() -> asyncio.BaseProtocol:
                return self.new_connection().protocol

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
        asyncio.get_running_loop().create_task(self._uninstall())

    async def _uninstall(self) -> None:
        if not self._running.is_set():
            return  # not started yet (_install sees _stop_requested), or already stopping
        self._running.clear()
        self._closing = True
        try:
            await self._close_listeners()
            await self._disconnect_all("Device server shutting down.")
            await self._cancel_handlers()
            try:
                self.on_server_stop()
            except Exception:
                self._logger.exception("error in on_server_stop")
            self._on_uninstall()
        finally:
            if self._handler_executor is not None:
                self._handler_executor.shutdown()
                self._retired_handler = self._handler_executor
                self._handler_executor = None
            if self._managed:
                asyncio.get_running_loop().stop()
            else:
                # The caller's loop goes on running: the binding stays, as calls handed
                # to it still run (and find no clients); a restart binds it again.
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

    def track_handler(self, fut: asyncio.Future[Any]) -> None:
        """Remember a request handler running on the loop, so that stopping cancels it.

        Its client is disconnected by then; left pending, the loop would end with the task
        still in it ("Task was destroyed but it is pending!"). Handlers in the handler
        thread are not cancelled: :meth:`join` waits for them, as katcp-python's.
        """
        if not fut.done():
            self._handler_tasks.add(fut)
            fut.add_done_callback(self._handler_tasks.discard)

    async def _cancel_handlers(self) -> None:
        tasks = [task for task in self._handler_tasks if not task.done()]
        self._handler_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # A handler may clean up when cancelled; one that will not end is left.
            await asyncio.wait(tasks, timeout=self.DISCONNECT_TIMEOUT)

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

    # -- connections (the ConnectionOwner side; loop thread) -------------------------------

    def new_connection(self) -> ClientConnection:
        """A connection for a client about to connect (loop thread, server running).

        Its :attr:`~ClientConnection.protocol` is what the event loop gets for the socket.
        """
        # Only DeviceServerBase (this class and the dispatch half) is ever instantiated.
        return ClientConnection(cast("ConnectionOwner", self))

    def connection_closed(self, conn: ClientConnection, exc: BaseException | None) -> None:
        """`conn`'s transport closed; a client that left gets ``on_client_disconnect``."""
        if self.metrics is not None:
            self.metrics.connection_dropped()
        if conn in self._connections:
            del self._connections[conn]
            reason = repr(exc) if exc else "Socket EOF"  # katcp-python's reasons
            asyncio.get_running_loop().create_task(self._disconnect_async(conn, reason, False))

    def disconnect_client(self, conn: ClientConnection, reason: str) -> None:
        """Disconnect `conn` after ``on_client_disconnect`` (loop thread)."""
        valid = conn.state is not ConnectionState.CLOSED
        asyncio.get_running_loop().create_task(self._disconnect_async(conn, reason, valid))

    async def _disconnect_async(self, conn: ClientConnection, reason: str, valid: bool) -> None:
        if not conn.client_disconnect_called:
            conn.on_client_disconnect_was_called()
            try:
                result = self.on_client_disconnect(conn, reason, valid)
                if is_pending(result):
                    await asyncio.wait_for(_as_asyncio(result), self.DISCONNECT_TIMEOUT)
            except Exception:
                self._logger.exception("on_client_disconnect failed for %s", conn.address)
        self._connections.pop(conn, None)
        conn.close()

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


def _as_asyncio(awaitable: Any) -> asyncio.Future[Any]:
    if isinstance(awaitable, concurrent.futures.Future):
        return asyncio.wrap_future(awaitable)
    return asyncio.ensure_future(awaitable)
