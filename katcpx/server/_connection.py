"""One client of a server: :class:`ClientConnection`, owner of its transport and its state."""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import inspect
import time
from collections import deque
from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any

from ..errors import KatcpSyntaxError, MessageTooLong
from ..message import Message
from ..parser import MessageParser
from ..tls import refuse_tls_on_plain_port
from ..transport import KatcpProtocol
from ._bad_line import report_bad_line, report_too_long
from ._input_log import InputLog
from .access import Role, admit, announce_role

if TYPE_CHECKING:
    from ._owner import ConnectionOwner

__all__ = [
    "ActivityTracker",
    "AnyFuture",
    "ClientConnection",
    "ClientRequestConnection",
    "ConnectionState",
    "is_pending",
    "RunStopped",
]

_clock = time.perf_counter

#: A read bringing at most this many messages to an empty queue marks its client as waiting
#: for replies (interactive): while one is, pipelining clients get short turns. Pipelining
#: clients among themselves share the loop by message count, in full turns, since short
#: turns would cost each of them a send and a loop iteration per few requests.
INTERACTIVE_BATCH = 4


class ConnectionState(enum.Enum):
    """Where a :class:`ClientConnection` is in its life (it only moves forward)."""

    #: Connected; ``on_client_connect`` has not finished, so messages wait.
    CONNECTING = "connecting"
    #: Messages are handled.
    OPEN = "open"
    #: Being disconnected: no further message is handled; sending still works.
    CLOSING = "closing"
    #: The transport is closed: nothing more is sent or handled.
    CLOSED = "closed"


AnyFuture = asyncio.Future[Any] | concurrent.futures.Future[Any]

# What handlers return when they are done: checked first, since inspect.isawaitable costs
# several isinstance checks, for every request.
_DONE_TYPES = frozenset({type(None), Message, tuple, list})


def is_pending(value: Any) -> bool:
    """Whether a handler's result is still to come (an awaitable or a future)."""
    if type(value) in _DONE_TYPES:
        return False
    return inspect.isawaitable(value) or isinstance(value, concurrent.futures.Future)


class ActivityTracker:
    """Which interactive connections sent something lately (is anyone waiting behind me?).

    Keeps the last two distinct connections that received data, with the time (seconds,
    ``time.perf_counter``). O(1) per read.
    """

    #: Seconds during which a connection that sent something counts as active.
    WINDOW = 0.05

    __slots__ = ("_last", "_last_t", "_prev", "_prev_t")

    def __init__(self) -> None:
        self._last: object = None
        self._last_t = 0.0
        self._prev: object = None
        self._prev_t = 0.0

    def received(self, conn: object, now: float) -> None:
        """Record that `conn` received data at `now`."""
        if conn is not self._last:
            self._prev, self._prev_t = self._last, self._last_t
            self._last = conn
        self._last_t = now

    def others_active(self, conn: object, now: float) -> bool:
        """Whether a connection other than `conn` received data within :attr:`WINDOW`."""
        if self._last is not conn:
            return self._last is not None and now - self._last_t < self.WINDOW
        return self._prev is not None and now - self._prev_t < self.WINDOW


class RunStopped:
    """What a run of requests handed to the handler thread resolves to when one of them
    left its request running: that request's future, and the messages after it."""

    __slots__ = ("running", "leftovers")

    def __init__(self, running: Any, leftovers: list[Message]) -> None:
        self.running = running
        self.leftovers = leftovers


class ClientConnection:
    """The connection between the server and one client.

    It owns its transport (:attr:`protocol`, a :class:`katcpx.transport.KatcpProtocol`) and
    its one :attr:`state`, queues what the client sends and hands it to its server (a
    :class:`ConnectionOwner`), and answers malformed and over-long lines itself.

    All sending methods may be called from any thread: off the server's loop they hand
    the message to the loop through the server's :class:`~katcpx.crossing.LoopBinding`
    (order is kept per thread, and a burst of replies costs one wake-up of the loop).
    Incoming requests are queued and handled in order, at most
    ``server.MAX_REQUESTS_PER_TURN`` per loop turn, so a client that pipelines many
    requests cannot starve the others; reading from a client pauses while more than
    ``server.MAX_QUEUED_REQUESTS`` of its requests, or more than ``server.MAX_QUEUED_BYTES``
    received bytes, wait, and while more than an eighth of ``server.MAX_WRITE_BUFFER_SIZE``
    of output waits for it (its messages, valid or malformed, are then not handled until
    it has read some: a client that sends faster than it reads is slowed down, not cut off).

    Parameters
    ----------
    server
        The owning device server; its loop must be running (connections are made by it).
    """

    def __init__(self, server: ConnectionOwner) -> None:
        self._owner = server
        #: The server this client is connected to.
        self.server = server
        binding = server.binding
        loop = binding.loop
        assert loop is not None, "connections exist only while the server runs"
        self._binding = binding
        self._loop = loop
        self._link = KatcpProtocol(
            self.received,
            self.transport_lost,
            on_connection_made=self.transport_made,
            max_msg_size=server.MAX_MSG_SIZE,
            max_write_buffer=server.MAX_WRITE_BUFFER_SIZE,
            logger=server.logger,
            on_overflow=self._overflow,
            screen=self._screen,
            on_output_full=self._output_full_changed,
        )
        self._state = ConnectionState.CONNECTING
        self._disconnect_called = False
        self._pending: deque[Message | KatcpSyntaxError] = deque()
        # Read-only standard requests that arrived while an ordered request was running:
        # answered at once rather than behind it (see DeviceServerBase.is_loop_safe).
        self._express: deque[Message] = deque()
        self._waiting_on: Any = None  # the unfinished ordered request's future
        self._wait_since = 0.0  # time.perf_counter() when that wait began
        self._wait_timer: asyncio.TimerHandle | None = None
        self._pump_scheduled = False
        self._paused = False
        # More output waits for the client than the transport's high-water mark: its
        # messages wait (and reading pauses) until it has read some, whatever they are.
        self._output_full = False
        self._bulk_at = -1e9  # perf_counter() of this client's last pipelined read
        #: Common name of the client's verified TLS certificate, or None.
        self.identity: str | None = None
        #: What the client may do (see :mod:`katcpx.server.access`).
        self.role = Role.ADMIN
        #: KATCP level from which this client gets ``#log`` (its ``?log-level``), or None
        #: to follow the server's ``log.level``.
        self.log_level: int | None = None
        # Bytes received since the queues were last empty: an upper bound on what they hold.
        self._queued_bytes = 0
        #: perf_counter() when the current batch of requests began (metrics on), else 0.0.
        self.batch_started = 0.0
        #: The server's log records about this client's bad input, rate-limited.
        self.input_log = InputLog(server.logger, lambda: self.address, self._call_later)

    # -- katcp-python API -------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` of the client."""
        return self._link.peer

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life."""
        return self._state

    @property
    def protocol(self) -> KatcpProtocol:
        """The transport protocol carrying the connection (give it to the event loop)."""
        return self._link

    @property
    def client_disconnect_called(self) -> bool:
        """Whether ``on_client_disconnect`` has been called for this connection."""
        return self._disconnect_called

    def on_client_disconnect_was_called(self) -> None:
        """Record that ``on_client_disconnect`` ran; a second call raises RuntimeError."""
        if self._disconnect_called:
            raise RuntimeError('"on_client_disconnect" already called for this connection')
        self._disconnect_called = True

    def disconnect(self, reason: str) -> None:
        """Disconnect the client, telling it `reason` with ``#disconnect`` first."""
        self._binding.call_here_or_soon(self._owner.disconnect_client, self, reason)

    def inform(self, msg: Message) -> None:
        """Send an asynchronous inform to this client."""
        if msg.mtype != Message.INFORM:
            raise ValueError(f"inform() needs an inform message, not {msg!r}")
        self.send_message(msg)

    def reply_inform(self, inform: Message, orig_req: Message) -> None:
        """Send an inform that is part of the reply to `orig_req` (its id is copied)."""
        if inform.mtype != Message.INFORM or inform.name != orig_req.name:
            raise ValueError(f"{inform!r} is not an inform for {orig_req!r}")
        inform.mid = orig_req.mid
        self.send_message(inform)

    def reply(self, reply: Message, orig_req: Message) -> None:
        """Send the reply to `orig_req` (its id is copied)."""
        if reply.mtype != Message.REPLY or reply.name != orig_req.name:
            raise ValueError(f"{reply!r} is not a reply to {orig_req!r}")
        reply.mid = orig_req.mid
        self.send_message(reply)

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client of the server."""
        self._owner.mass_inform(msg)

    def __repr__(self) -> str:
        return f"<ClientConnection {self.address}>"

    # -- sending ----------------------------------------------------------------------

    def send_message(self, msg: Message) -> None:
        """Send `msg` as it is (any thread; in order with this thread's other sends)."""
        # The binding's on_loop() inline: this runs for every reply and inform.
        if get_ident() == self._binding.thread_id:
            self._write(bytes(msg))
        else:
            self._binding.call(self._format_and_write, msg)

    def send_bytes(self, data: bytes) -> None:
        """Send complete, formatted wire lines (any thread; in order with other sends)."""
        if get_ident() == self._binding.thread_id:  # inline, as in send_message
            self._write(data)
        else:
            self._binding.call(self._write, data)

    def _format_and_write(self, msg: Message) -> None:
        self._write(bytes(msg))

    def _write(self, data: bytes) -> None:
        if self._state is not ConnectionState.CLOSED:
            self._link.write(data)
            metrics = self._owner.metrics
            if metrics is not None:
                # Inline, not a call: this runs for every line to every client (fan-out).
                metrics.bytes_written += len(data)
                if data[0] == 35:  # '#': an inform (inform_raw counts a bulk reply's others)
                    metrics.informs += 1

    def queued_bytes(self) -> int:
        """Bytes of output queued for this client and not yet sent (any thread; a snapshot)."""
        return self._link.write_buffer_size

    # -- lifecycle (loop thread) ------------------------------------------------------

    def transport_made(self, protocol: KatcpProtocol) -> None:
        """The transport is up: admit the client and tell the server (transport callback)."""
        policy = self._owner.access_policy
        admit(self, protocol.transport, policy)
        # The greeting (#version-connect lines, #access-role) leaves in one send(), so a
        # client sees all of it at once rather than the first line alone.
        protocol.cork()
        try:
            self._owner.connection_made(self)
            announce_role(self, policy)
        finally:
            protocol.uncork()

    def _screen(self, protocol: KatcpProtocol, data: bytes) -> bool:
        return refuse_tls_on_plain_port(protocol, data, self._owner.ssl_context)

    def _overflow(self, protocol: KatcpProtocol) -> None:
        # The transport aborts only when a peer lets MAX_WRITE_BUFFER_SIZE of output pile up.
        if self._owner.metrics is not None:
            self._owner.metrics.slow_client()

    def ready(self) -> None:
        """``on_client_connect`` is done: start handling the client's messages."""
        if self._state is ConnectionState.CONNECTING:
            self._state = ConnectionState.OPEN
            self._schedule_pump()

    def stop_handling(self) -> None:
        """Handle no more messages from this client (it is being disconnected)."""
        if self._state is not ConnectionState.CLOSED:
            self._state = ConnectionState.CLOSING
        self._pending.clear()
        self._express.clear()

    def close(self) -> None:
        """Send what is queued, then close the transport (loop thread)."""
        if self._state is not ConnectionState.CLOSED:
            self._link.close()
            self._closed()

    def transport_lost(self, protocol: KatcpProtocol, exc: Exception | None) -> None:
        """The transport closed (transport callback): tell the server."""
        self._closed()
        self._owner.connection_closed(self, exc)

    def _call_later(self, delay: float, func: Callable[[], None]) -> None:
        self._binding.call_here_or_soon(self._loop.call_later, delay, func)

    def _closed(self) -> None:
        if self._state is not ConnectionState.CLOSED:
            self.input_log.close()
        self._state = ConnectionState.CLOSED
        self._pending.clear()
        self._express.clear()
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None

    # -- receiving (loop thread only) -------------------------------------------------

    def received(self, protocol: KatcpProtocol, items: list[Message | KatcpSyntaxError]) -> None:
        """Queue a batch of parsed items and start handling them (transport callback)."""
        state = self._state
        if state is ConnectionState.CLOSED or state is ConnectionState.CLOSING:
            return
        owner = self._owner
        self._queued_bytes += protocol.batch_bytes
        # A client with nothing queued is served within this read, not a loop turn later
        # behind whoever has a backlog: that is what keeps its latency near idle.
        at_once = not self._pending and not self._pump_scheduled
        now = _clock()
        if not at_once or len(items) > INTERACTIVE_BATCH:
            self._bulk_at = now
        elif now - self._bulk_at > owner.activity.WINDOW:
            # A client waiting for a reply or two: others' turns shorten for it.
            owner.activity.received(self, now)
        waiting = self._waiting_on is not None
        if waiting and state is ConnectionState.OPEN:
            # An ordered request is still running: read-only standard requests go round it.
            for item in items:
                if isinstance(item, Message) and owner.is_loop_safe(item):
                    self._express.append(item)
                else:
                    self._pending.append(item)
        else:
            self._pending.extend(items)
        queued = len(self._pending) + len(self._express)
        too_much = (
            queued > owner.MAX_QUEUED_REQUESTS
            or self._queued_bytes > owner.MAX_QUEUED_BYTES
            or self._output_full
        )
        if too_much and not self._paused:
            # Back-pressure: stop reading this client until its queue drains.
            self._paused = True
            self._link.pause_reading()
        busy = waiting or state is not ConnectionState.OPEN
        if at_once and (not busy or self._express):
            self._pump()
        else:
            self._schedule_pump()

    def _output_full_changed(self, protocol: KatcpProtocol, full: bool) -> None:
        # Transport callback: too much output waits for the client (full) or not any more.
        self._output_full = full
        if full:
            if not self._paused:
                self._paused = True
                self._link.pause_reading()
            return
        self._schedule_pump()
        self._resume_if_drained()

    def _resume_if_drained(self) -> None:
        owner = self._owner
        if (
            self._paused
            and not self._output_full
            and len(self._pending) + len(self._express) <= owner.MAX_QUEUED_REQUESTS // 2
            and self._queued_bytes <= owner.MAX_QUEUED_BYTES
            and self._state is ConnectionState.OPEN
        ):
            self._paused = False
            self._link.resume_reading()

    def _schedule_pump(self) -> None:
        if self._pump_scheduled or self._output_full:
            return
        idle = self._state is ConnectionState.OPEN and self._waiting_on is None
        if (idle and self._pending) or self._express:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        # Everything a turn sends goes out in one send() at its end.
        link = self._link
        link.cork()
        try:
            self._pump_turn()
        finally:
            link.uncork()

    def _pump_turn(self) -> None:
        self._pump_scheduled = False
        owner = self._owner
        if owner.metrics is not None:  # one clock reading per batch, for request latency
            self.batch_started = _clock()
        pending = self._pending
        per_turn = owner.MAX_REQUESTS_PER_TURN
        budget = per_turn
        runs = owner.handles_runs()
        # While interactive clients are active a turn also ends after MAX_TURN_SECONDS,
        # whatever the requests cost, so that a client pipelining many requests delays them
        # by about that much. Otherwise a client keeps the loop for the whole budget: each
        # turn costs system calls (poll, send), so short turns would only lower throughput.
        clock = _clock
        now = clock()
        if owner.activity.others_active(self, now):
            deadline = now + owner.MAX_TURN_SECONDS
        else:
            deadline = now + 3600.0
        open_ = ConnectionState.OPEN
        express = self._express
        while (
            express
            and self._state is open_
            and budget > 0
            and clock() < deadline
            and not self._output_full
            and not self._link.held_output_high
        ):
            budget -= 1
            request = express.popleft()
            try:
                owner.handle_loop_safe(self, request)
            except Exception:  # nothing a client sends may kill the server
                owner.logger.exception("error handling %s from %s", request, self.address)
        while pending and self._waiting_on is None and self._state is open_ and budget > 0:
            if self._output_full or self._link.held_output_high:
                break  # resumed by _output_full_changed once the client has read some
            budget -= 1
            if clock() >= deadline and budget < per_turn - 1:
                break  # at least one request per turn
            item = pending.popleft()
            if isinstance(item, MessageTooLong):
                report_too_long(self, item)
                return
            if isinstance(item, KatcpSyntaxError):
                report_bad_line(self, item)
                continue
            done: Any = None
            is_run = False
            try:
                if runs and not owner.runs_on_loop(item):
                    # Handler-thread mode: hand over every following device request in
                    # one go (the thread handles them in order), not one per round trip.
                    run = [item]
                    while pending and budget > 0:
                        following = pending[0]
                        if not isinstance(following, Message) or owner.runs_on_loop(following):
                            break
                        pending.popleft()
                        run.append(following)
                        budget -= 1
                    done = owner.on_message_run(self, run)
                    is_run = True
                else:
                    done = owner.on_message(self, item)
            except Exception as exc:  # nothing a client sends may kill the server
                owner.logger.exception("error handling %s from %s", item, self.address)
                if item.mtype == Message.REQUEST:  # and no request goes unanswered
                    self.reply(Message.reply(item.name, "fail", f"Request failed: {exc}"), item)
                continue
            # A finished run still goes through _request_done: it may have stopped early.
            if done is not None and (is_run or not done.done()):
                # Ordered request still running: wait for it before the next one, but
                # not for ever (a future that never completes must not wedge the client).
                self._waiting_on = done
                self._wait_since = clock()
                limit = owner.ORDERED_WAIT_LIMIT
                if limit is not None and self._wait_timer is None:
                    # One timer per connection, re-armed lazily: not one per request.
                    self._wait_timer = self._loop.call_later(limit, self._check_wait)
                done.add_done_callback(self._done_callback)
        if not pending and not express:
            self._queued_bytes = 0
        self._resume_if_drained()
        # Whatever is left waits for the next loop turn, so other clients get a go.
        self._schedule_pump()

    # -- waiting for unfinished requests (loop thread) ---------------------------------

    def _done_callback(self, fut: concurrent.futures.Future[Any]) -> None:
        self._binding.call_here_or_soon(self._request_done, fut)

    def _request_done(self, fut: Any) -> None:
        outcome = None
        if isinstance(fut, concurrent.futures.Future) and not fut.cancelled():
            outcome = fut.result() if fut.exception() is None else None
        if isinstance(outcome, RunStopped):
            # A run stopped at a request still running: the rest of the run goes back to
            # the front of the queue, and waits for that request.
            inner: Any = outcome.running
            if self._state is not ConnectionState.CLOSED:
                self._pending.extendleft(reversed(outcome.leftovers))
            if self._waiting_on is fut and not inner.done():
                self._waiting_on = inner
                inner.add_done_callback(self._done_callback)
                return
        if self._waiting_on is fut:  # not released already by ORDERED_WAIT_LIMIT
            self._waiting_on = None
        self._schedule_pump()

    def _check_wait(self) -> None:
        self._wait_timer = None
        limit = self._owner.ORDERED_WAIT_LIMIT
        if self._waiting_on is None or self._state is ConnectionState.CLOSED or limit is None:
            return
        waited = _clock() - self._wait_since
        if waited < limit:  # a later request: wait for the rest of its time
            self._wait_timer = self._loop.call_later(limit - waited, self._check_wait)
            return
        self._owner.logger.warning(
            "%s: request still running after %s s; handling the next messages anyway",
            self.address,
            limit,
        )
        self._waiting_on = None
        self._schedule_pump()


def _metrics_of(conn: Any) -> Any:
    """The server's counters behind `conn`, or None (metrics off, or a stand-in connection).

    katcp-python-style tests hand requests stand-in connections that have no server.
    """
    server = getattr(conn, "server", None)
    return None if server is None else server.metrics


class ClientRequestConnection:
    """A request together with the connection it came from (``req`` in handlers).

    Parameters
    ----------
    client_connection
        The connection the request arrived on.
    req_msg
        The request message.
    """

    __slots__ = ("client_connection", "msg", "_replied", "_started")

    def __init__(self, client_connection: ClientConnection, req_msg: Message) -> None:
        self.client_connection = client_connection
        self.msg = req_msg
        self._replied = False
        # Request latency counts from the start of the batch that dispatched the request.
        # Stand-in connections (katcp-python-style tests, testutils) have no batch clock.
        self._started = getattr(client_connection, "batch_started", 0.0)

    @property
    def replied(self) -> bool:
        """Whether the reply has been sent."""
        return self._replied

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client of the server."""
        self.client_connection.mass_inform(msg)

    def inform(self, *args: Any) -> None:
        """Send a reply inform (same name and id as the request)."""
        if self._replied:
            raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
        # Through the connection's public inform(), as katcp-python does, so stand-in
        # connections (katcpx.testutils.ClientConnectionTest, mocks) see it.
        self.client_connection.inform(Message.reply_inform(self.msg, *args))

    def inform_raw(self, data: bytes) -> None:
        """Send reply informs already formatted as complete wire lines (bulk replies)."""
        if self._replied:
            raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
        conn = self.client_connection
        if isinstance(conn, ClientConnection):
            conn.send_bytes(data)
            metrics = _metrics_of(conn)
            if metrics is not None:
                metrics.informs += data.count(b"\n") - 1  # the first line is counted when sent
        else:  # a stand-in connection: one inform() per line
            parser = MessageParser()
            for line in data.splitlines():
                if line:
                    conn.inform(parser.parse(line))

    def reply(self, *args: Any) -> None:
        """Send the reply (same name and id as the request); only once."""
        self.reply_with_message(Message.reply_to_request(self.msg, *args))

    def reply_with_message(self, rep_msg: Message) -> None:
        """Send a ready-made reply message; its name must match the request."""
        if self._replied:
            raise RuntimeError(f"Reply to request {self.msg!r} already sent.")
        self._replied = True
        conn = self.client_connection
        conn.reply(rep_msg, self.msg)
        metrics = _metrics_of(conn)
        if metrics is not None:
            args = rep_msg.arguments
            metrics.request_done(self.msg.name, args[0] if args else b"", self._started)

    def make_reply(self, *args: Any) -> Message:
        """Build (without sending) the reply to this request."""
        return Message.reply_to_request(self.msg, *args)

    def reply_again(self, *args: Any) -> None:
        """Raise: a reply was already sent (katcp-python compatibility)."""
        raise RuntimeError(f"Reply to request {self.msg!r} already sent.")

    def inform_after_reply(self, *args: Any) -> None:
        """Raise: informs cannot follow the reply (katcp-python compatibility)."""
        raise RuntimeError(f"Cannot send inform for request {self.msg!r} after sending reply.")
