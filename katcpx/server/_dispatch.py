"""DeviceServerBase's dispatch half: request lookup, the handler-thread hand-off, replies.

A request's path in the default (handler-thread) mode: the transport
(``katcpx/transport.py``) parses it and hands it to its connection (``_connection.py``),
which queues it and gives runs of requests to :meth:`DeviceServerBase.on_message_run`
here; the handler thread (``_handler_thread.py``) calls the handler; the reply goes back
through the connection's :meth:`~ClientConnection.send_message` to the transport.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import sys
import time
import traceback
import types
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .._compat import Python2Next
from ..codec import format_timestamp
from ..errors import AsyncReply, FailReply
from ..flags import ProtocolFlags
from ..message import Message
from ._connection import (
    AnyFuture,
    ClientConnection,
    ClientRequestConnection,
    ConnectionState,
    RunStopped,
    is_pending,
)
from ._handler_thread import HandlerThreadStopped, is_coroutine_handler
from ._input_log import input_log
from ._runtime import ServerRuntime
from .access import Role, refusal
from .metaclass import DeviceMetaclass, Handler, prepare_handler

if TYPE_CHECKING:
    from ..metrics._endpoint import MetricsEndpoint
    from ..metrics._stats import ServerStats
    from ._owner import ConnectionOwner

__all__ = ["DeviceServerBase", "loop_safe"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# The handlers marked with loop_safe (functions, not names: a subclass overriding one of
# these requests gets katcp-python's ordering back).
_LOOP_SAFE: set[Callable[..., Any]] = set()


def loop_safe(func: F) -> F:
    """Mark a read-only standard handler as answered on the loop at once.

    See :meth:`DeviceServerBase.is_loop_safe`.
    """
    _LOOP_SAFE.add(func)
    return func


class DeviceServerBase(ServerRuntime, Python2Next, metaclass=DeviceMetaclass):
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
    #: Longest accepted message in bytes; a longer line gets ``#log error``, ``#disconnect``
    #: and the connection is closed.
    MAX_MSG_SIZE: ClassVar[int] = 2 * 1024 * 1024
    #: Output bytes queued for one client beyond which it is disconnected (slow reader).
    MAX_WRITE_BUFFER_SIZE: ClassVar[int] = 4 * 1024 * 1024
    #: Messages handled per connection per loop turn (fairness between clients).
    MAX_REQUESTS_PER_TURN: ClassVar[int] = 128
    #: Seconds of request handling per connection per loop turn (at least one request)
    #: while an interactive client is active: a client pipelining requests delays another
    #: client's request by about this much.
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
    #: Send tracebacks (at most `tb_limit` frames) in fail replies instead of a short message.
    SEND_TRACEBACKS: ClassVar[bool] = False
    #: With :attr:`SEND_TRACEBACKS`, keep full file paths (otherwise only file names).
    TRACEBACK_PATHS: ClassVar[bool] = False

    _request_handlers: dict[str, Handler]
    _inform_handlers: dict[str, Handler]
    _reply_handlers: dict[str, Handler]

    # -- clients ---------------------------------------------------------------------------

    def connection_made(self, conn: ClientConnection) -> None:
        """A client connected: run ``on_client_connect``, then let `conn` handle messages."""
        self._connections[conn] = None
        if self.metrics is not None:
            self.metrics.connection_accepted()
        if self._closing:  # made after stop() disconnected everyone: tell it too
            self.disconnect_client(conn, "Device server shutting down.")
            return
        try:
            ready = self.on_client_connect(conn)
        except Exception:
            self._logger.exception("on_client_connect failed for %s", conn.address)
            self.disconnect_client(conn, "Device error initialising connection.")
            return
        if is_pending(ready):
            self.watch(ready).add_done_callback(lambda f: self._connect_done(conn, f))
        else:
            conn.ready()

    def _connect_done(self, conn: ClientConnection, fut: AnyFuture) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._logger.error(
                "on_client_connect failed for %s", conn.address, exc_info=fut.exception()
            )
            self.disconnect_client(conn, "Device error initialising connection.")
        else:
            conn.ready()

    def client_connections(self) -> list[ClientConnection]:
        """The connected clients now (a snapshot; safe from any thread)."""
        return list(self._connections)

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client (formatted once). Thread-safe."""
        if msg.mtype != Message.INFORM:
            raise ValueError(f"mass_inform() needs an inform message, not {msg!r}")
        if msg.name == "interface-changed":  # the device's own: no automatic one as well
            self.interface_changes.device_sent()
        self._binding.call_here_or_soon(self._inform_all, msg)

    def _inform_all(self, msg: Message) -> None:
        data = bytes(msg)
        for conn in self._connections:
            conn.send_bytes(data)

    def run_on_loop(
        self, coro: Coroutine[Any, Any, T]
    ) -> asyncio.Future[T] | concurrent.futures.Future[T]:
        """Run `coro` on the server's loop and return a future of its result.

        On the loop's thread the future is an asyncio Task; from any other thread it is a
        :class:`concurrent.futures.Future`.

        Raises
        ------
        RuntimeError
            If the server has no loop yet (it was never started).
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._binding.loop
        if running is not None and (loop is None or running is loop):
            return running.create_task(coro)
        return self._binding.run_coroutine(coro)

    def watch(self, awaitable: Any) -> AnyFuture:
        """A future for `awaitable` (a handler's result) whose callbacks run safely.

        A ``concurrent.futures.Future`` is returned as it is; anything else is awaited on
        the server's loop (from another thread, through the binding).
        """
        if isinstance(awaitable, concurrent.futures.Future):
            return awaitable
        binding = self._binding
        if binding.on_loop():
            return asyncio.ensure_future(awaitable, loop=binding.loop)
        if inspect.iscoroutine(awaitable):
            return binding.run_coroutine(awaitable)

        async def wait() -> Any:
            return await awaitable

        return binding.run_coroutine(wait())

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
            return result if is_pending(result) else None
        if self.is_loop_safe(msg):
            self.handle_loop_safe(client_conn, msg)
            return None
        if msg.mtype == Message.REQUEST and is_coroutine_handler(
            self._request_handlers.get(msg.name, _no_handler)
        ):
            # Coroutines need the loop (see is_coroutine_handler); still in order.
            result = self.handle_message(client_conn, msg)
            return result if is_pending(result) else None
        outer: concurrent.futures.Future[None] = concurrent.futures.Future()

        def ran(f: concurrent.futures.Future[Any]) -> None:
            # A cancelled future (the executor shut down) has no exception() to ask: it
            # raises CancelledError, which would leave the connection busy for good.
            exc = None if f.cancelled() else f.exception()
            inner = None if f.cancelled() or exc is not None else f.result()
            if exc is not None:
                # A handle_message override raised before replying: no request unanswered.
                self.refuse_message(client_conn, msg, str(exc))
            if is_pending(inner):
                self.watch(inner).add_done_callback(lambda _: outer.set_result(None))
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
        bad = input_log(client_conn, self._logger)  # rate-limited per client
        bad.error("could not handle %s from %s: %s", msg, client_conn.address, why)
        if msg.mtype == Message.REQUEST:
            client_conn.reply(
                Message.reply(msg.name, "fail", f"Request could not be handled: {why}"), msg
            )

    def set_concurrency_options(
        self, thread_safe: bool = True, handler_thread: bool = True
    ) -> None:
        """Set concurrency options; must be called before :meth:`start` (see the runtime's).

        As katcp-python, this installs the dispatch (:meth:`on_message`) on the instance, so
        a subclass's ``on_message`` override is never on the dispatch path (requests stay
        answered even if it does not call super); ``handle_message``/``handle_request``
        overrides still are.
        """
        super().set_concurrency_options(thread_safe, handler_thread)
        self.on_message = types.MethodType(DeviceServerBase.on_message, self)  # type: ignore[method-assign]

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
                if is_pending(result):
                    return RunStopped(self.watch(result), run[index + 1 :])
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
        return handler in _LOOP_SAFE

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
            input_log(connection, self._logger).error(
                "%s INVALID: Unknown request.", msg.name[:200]
            )
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
        if not is_pending(result):
            self._send_result(req, result)
            return None
        fut = self.watch(result)
        if isinstance(fut, asyncio.Future):
            self.track_handler(fut)
        fut.add_done_callback(lambda f: self._async_done(req, f))
        if getattr(handler, "_concurrent_reply", False):
            return None
        return fut

    def _async_done(self, req: ClientRequestConnection, fut: AnyFuture) -> None:
        if fut.cancelled():
            if getattr(req.client_connection, "state", None) is not ConnectionState.CLOSED:
                self._send_fail(req, "Request cancelled.")  # not when stopping cancelled it
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
        bad = input_log(req.client_connection, self._logger)  # rate-limited per client
        bad.error("Request %s%s FAIL: %s", req.msg.name, how, reason[:1000])
        self._send_result(req, Message.reply(req.msg.name, "fail", reason))

    def _send_result(self, req: ClientRequestConnection, result: Any) -> None:
        if req.replied:
            if result is not None:
                # Spec rev 5.1 section 2.2: one reply per request (katcp-python sends both).
                self._logger.error(
                    "handler request_%s returned a reply (%r) after it had replied; dropped",
                    req.msg.name,
                    result,
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

    def create_exception_reply_and_log(self, req_msg: Message, exc_info: ExcInfo) -> Message:
        """Log a handler's exception (with traceback) and build its ``fail`` reply."""
        e_type, e_value, trace = exc_info
        self._logger.error("Request %s FAIL", req_msg.name, exc_info=exc_info)
        return Message.reply(req_msg.name, "fail", self._format_exception(e_type, e_value, trace))

    def _format_exception(
        self, e_type: type[BaseException], e_value: BaseException, trace: TracebackType | None
    ) -> str:
        # The class name only (as for builtins): "KatcpTypeError: ...", not the module path.
        short = exception_text(e_value)
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
            bad = input_log(connection, self._logger)  # rate-limited per client
            bad.warning("unexpected reply %s from %s", msg.name, connection.address)
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
        Running servers send ``#interface-changed request <name> added`` (``modified`` when
        it replaces a handler: spec 5.1 section 4.2).
        """
        if handler.__doc__ is None:
            raise TypeError(f"request handler {name!r} has no docstring")
        Message(Message.REQUEST, name)  # validates the name
        if not type(self).check_protocol(handler):
            raise ValueError(f"request {name!r} is not available for {self.PROTOCOL_INFO}")
        if "_request_handlers" not in self.__dict__:  # copy the class's before changing it
            self._request_handlers = dict(self._request_handlers)
        change = "modified" if name in self._request_handlers else "added"
        self._request_handlers[name] = prepare_handler(handler, self.PROTOCOL_INFO.major)
        self._interface_changed("request", name, change)

    def remove_request_handler(self, name: str) -> None:
        """Remove request `name` from this instance (``KeyError`` if unknown)."""
        if "_request_handlers" not in self.__dict__:  # copy the class's before changing it
            self._request_handlers = dict(self._request_handlers)
        del self._request_handlers[name]
        self._interface_changed("request", name, "removed")

    def _interface_changed(self, *args: str) -> None:
        if self._running.is_set():  # coalesced with the device's own (_interface_changes.py)
            self.interface_changes.automatic(
                Message.inform("interface-changed", *args), self._inform_all
            )

    # -- sending ----------------------------------------------------------------------------

    def inform(self, connection: ClientConnection, msg: Message) -> None:
        """Send an asynchronous inform to one client."""
        connection.inform(msg)

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


def exception_text(exc: BaseException) -> str:
    """``"<class name>: <message>"`` for a ``fail`` reply (no module path, as for builtins)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _no_handler(*args: Any) -> None:
    """Stands in for the handler of an unknown request (not a coroutine)."""


if TYPE_CHECKING:

    def _is_connection_owner(server: DeviceServerBase) -> ConnectionOwner:
        return server  # mypy checks that a server is what its connections need
