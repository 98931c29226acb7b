"""Per-client objects: :class:`ClientConnection` and the per-request ``req``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import KatcpSyntaxError, MessageTooLong
from ..message import Message
from ..parser import MessageParser
from ..tls import refuse_tls_on_plain_port
from ..transport import KatcpProtocol
from .access import Role, admit, announce_role

if TYPE_CHECKING:
    from .base import DeviceServerBase

__all__ = [
    "ActivityTracker",
    "ClientConnection",
    "ClientRequestConnection",
    "Link",
    "RunStopped",
    "ServerProtocol",
]

_clock = time.perf_counter

#: A read bringing at most this many messages to an empty queue marks its client as waiting
#: for replies (interactive): while one is, pipelining clients get short turns. Pipelining
#: clients among themselves share the loop by message count, in full turns, since short
#: turns would cost each of them a send and a loop iteration per few requests.
INTERACTIVE_BATCH = 4


class ServerProtocol(KatcpProtocol):
    """The transport protocol of one server-side connection; feeds a :class:`ClientConnection`."""

    conn: ClientConnection | None

    def __init__(self, server: DeviceServerBase) -> None:
        super().__init__(
            _messages_received,
            _connection_lost,
            on_connection_made=_connection_made,
            max_msg_size=server.MAX_MSG_SIZE,
            max_write_buffer=server.MAX_WRITE_BUFFER_SIZE,
            logger=server._logger,
        )
        self.server = server
        self.conn = None
        self._first_data = True

    def data_received(self, data: bytes) -> None:
        if self._first_data:
            self._first_data = False
            if refuse_tls_on_plain_port(self, data, self.server.ssl_context):
                return
        super().data_received(data)

    def abort(self) -> None:
        # The transport aborts only when a peer lets MAX_WRITE_BUFFER_SIZE of output pile up.
        if not self.closed and self.server.metrics is not None:
            self.server.metrics.slow_client()
        super().abort()


def _connection_made(proto: KatcpProtocol) -> None:
    assert isinstance(proto, ServerProtocol)
    conn = proto.conn = ClientConnection(proto.server, proto, proto.peer)
    policy = proto.server.access_policy
    admit(conn, proto.transport, policy)
    proto.server._connection_made(conn)
    announce_role(conn, policy)


def _messages_received(proto: KatcpProtocol, items: list[Message | KatcpSyntaxError]) -> None:
    assert isinstance(proto, ServerProtocol)
    if proto.conn is not None:
        proto.conn._received(items, proto.batch_bytes)


def _connection_lost(proto: KatcpProtocol, exc: Exception | None) -> None:
    assert isinstance(proto, ServerProtocol)
    if proto.conn is not None:
        proto.server._connection_lost(proto.conn, exc)


class RunStopped:
    """What a run of requests handed to the handler thread resolves to when one of them
    left its request running: that request's future, and the messages after it."""

    __slots__ = ("running", "leftovers")

    def __init__(self, running: Any, leftovers: list[Message]) -> None:
        self.running = running
        self.leftovers = leftovers


class ActivityTracker:
    """Which connections sent something lately (fairness: is anyone waiting behind me?).

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


class Link(Protocol):
    """What a :class:`ClientConnection` needs from the transport carrying it."""

    def send_message(self, msg: Message) -> None: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...


class ClientConnection:
    """The connection between the server and one client.

    All sending methods may be called from any thread: off the server's loop they hand
    the message to the loop through the server's :class:`LoopHandoff` (order is kept per
    thread, and a burst of replies costs one wake-up of the loop).
    Incoming requests are queued and handled in order, at most
    ``server.MAX_REQUESTS_PER_TURN`` per loop turn, so a client that pipelines many
    requests cannot starve the others; reading from a client pauses while more than
    ``server.MAX_QUEUED_REQUESTS`` of its requests, or more than ``server.MAX_QUEUED_BYTES``
    received bytes, wait.

    Parameters
    ----------
    server
        The owning device server.
    link
        The transport object carrying the connection.
    address
        ``host:port`` of the peer.
    """

    def __init__(self, server: DeviceServerBase, link: Link, address: str) -> None:
        self._server = server
        #: The server this client is connected to.
        self.server = server
        self._link = link
        self._address = address
        loop = server._loop
        assert loop is not None, "connections exist only while the server runs"
        self._loop = loop
        handoff = server._handoff
        assert handoff is not None, "the server makes its hand-off before accepting clients"
        self._handoff = handoff
        self._loop_thread_id = server._loop_thread_id
        self._disconnect_called = False
        self._closed = False
        self._pending: deque[Message | KatcpSyntaxError] = deque()
        # Read-only standard requests that arrived while an ordered request was running:
        # answered at once rather than behind it (see DeviceServerBase.is_loop_safe).
        self._express: deque[Message] = deque()
        self._busy = True  # until on_client_connect is done
        self._handling = False  # True from on_client_connect done until stop_handling()
        self._waiting_on: Any = None  # the unfinished ordered request's future
        self._wait_since = 0.0  # time.perf_counter() when that wait began
        self._wait_timer: asyncio.TimerHandle | None = None
        self._pump_scheduled = False
        self._paused = False
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

    # -- katcp-python API -------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` of the client."""
        return self._address

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
        self._call_in_loop(self._server._disconnect_client, self, reason)

    def inform(self, msg: Message) -> None:
        """Send an asynchronous inform to this client."""
        if msg.mtype != Message.INFORM:
            raise ValueError(f"inform() needs an inform message, not {msg!r}")
        self._send(msg)

    def reply_inform(self, inform: Message, orig_req: Message) -> None:
        """Send an inform that is part of the reply to `orig_req` (its id is copied)."""
        if inform.mtype != Message.INFORM or inform.name != orig_req.name:
            raise ValueError(f"{inform!r} is not an inform for {orig_req!r}")
        inform.mid = orig_req.mid
        self._send(inform)

    def reply(self, reply: Message, orig_req: Message) -> None:
        """Send the reply to `orig_req` (its id is copied)."""
        if reply.mtype != Message.REPLY or reply.name != orig_req.name:
            raise ValueError(f"{reply!r} is not a reply to {orig_req!r}")
        reply.mid = orig_req.mid
        self._send(reply)

    def mass_inform(self, msg: Message) -> None:
        """Send an inform to every client of the server."""
        self._server.mass_inform(msg)

    def __repr__(self) -> str:
        return f"<ClientConnection {self._address}>"

    # -- sending ----------------------------------------------------------------------

    def _in_loop(self) -> bool:
        return threading.get_ident() == self._loop_thread_id

    def _call_in_loop(self, func: Any, *args: Any) -> None:
        if self._in_loop():
            func(*args)
        else:
            self._handoff.call(func, *args)

    def _send(self, msg: Message) -> None:
        if self._in_loop():
            if not self._closed:
                self._send_bytes(bytes(msg))
        else:
            self._handoff.call(self._send_now, msg)

    def _send_now(self, msg: Message) -> None:
        if not self._closed:
            self._send_bytes(bytes(msg))

    def _send_raw(self, data: bytes) -> None:
        """Send pre-formatted lines from any thread, in order with other sends."""
        if self._in_loop():
            self._send_bytes(data)
        else:
            self._handoff.call(self._send_bytes, data)

    def _send_bytes(self, data: bytes) -> None:
        """Send a pre-formatted line (loop thread only)."""
        if not self._closed:
            self._link.write(data)
            metrics = self._server.metrics
            if metrics is not None:
                # Inline, not a call: this runs for every line to every client (fan-out).
                metrics.bytes_written += len(data)
                if data[0] == 35:  # '#': an inform (inform_raw counts a bulk reply's others)
                    metrics.informs += 1

    def queued_bytes(self) -> int:
        """Bytes of output queued for this client and not yet sent (any thread; a snapshot)."""
        return int(getattr(self._link, "write_buffer_size", 0))

    # -- receiving (loop thread only) -------------------------------------------------

    def _received(self, items: list[Message | KatcpSyntaxError], nbytes: int = 0) -> None:
        """Queue a batch of parsed items (from `nbytes` received) and start handling them."""
        if self._closed:
            return
        server = self._server
        self._queued_bytes += nbytes
        # A client with nothing queued is served within this read, not a loop turn later
        # behind whoever has a backlog: that is what keeps its latency near idle.
        at_once = not self._pending and not self._pump_scheduled
        now = _clock()
        if not at_once or len(items) > INTERACTIVE_BATCH:
            self._bulk_at = now
        elif now - self._bulk_at > server.activity.WINDOW:
            # A client waiting for a reply or two: others' turns shorten for it.
            server.activity.received(self, now)
        if self._busy and self._handling:
            # An ordered request is still running: read-only standard requests go round it.
            for item in items:
                if isinstance(item, Message) and server.is_loop_safe(item):
                    self._express.append(item)
                else:
                    self._pending.append(item)
        else:
            self._pending.extend(items)
        queued = len(self._pending) + len(self._express)
        too_much = (
            queued > server.MAX_QUEUED_REQUESTS or self._queued_bytes > server.MAX_QUEUED_BYTES
        )
        if too_much and not self._paused:
            # Back-pressure: stop reading this client until its queue drains.
            self._paused = True
            self._link.pause_reading()
        if at_once and (not self._busy or self._express):
            self._pump()
        else:
            self._schedule_pump()

    def _ready(self) -> None:
        """Allow message handling (after connect, or when an ordered request is done)."""
        self._busy = False
        self._handling = not self._closed
        self._schedule_pump()

    def stop_handling(self) -> None:
        """Handle no more messages from this client (it is being disconnected)."""
        self._busy = True
        self._handling = False
        self._express.clear()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and ((not self._busy and self._pending) or self._express):
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        link = self._link
        link.cork()
        try:
            self._pump_corked()
        finally:
            link.uncork()

    def _pump_corked(self) -> None:
        self._pump_scheduled = False
        server = self._server
        if server.metrics is not None:  # one clock reading per batch, for request latency
            self.batch_started = _clock()
        pending = self._pending
        budget = server.MAX_REQUESTS_PER_TURN
        runs = server.handles_runs()
        # While other clients are active a turn also ends after MAX_TURN_SECONDS, whatever
        # the requests cost, so that a client pipelining many requests delays the others by
        # about that much. Alone, a client keeps the loop for the whole budget: each turn
        # costs system calls (poll, send), so short turns would only lower its throughput.
        clock = time.perf_counter
        now = clock()
        if server.activity.others_active(self, now):
            deadline = now + server.MAX_TURN_SECONDS
        else:
            deadline = now + 3600.0
        express = self._express
        while express and not self._closed and budget > 0 and clock() < deadline:
            budget -= 1
            request = express.popleft()
            try:
                server.handle_loop_safe(self, request)
            except Exception:  # nothing a client sends may kill the server
                server._logger.exception("error handling %s from %s", request, self._address)
        while pending and not self._busy and not self._closed and budget > 0:
            budget -= 1
            if clock() >= deadline and budget < server.MAX_REQUESTS_PER_TURN - 1:
                break  # at least one request per turn
            item = pending.popleft()
            if isinstance(item, MessageTooLong):
                server._message_too_long(self, item)
                return
            if isinstance(item, KatcpSyntaxError):
                server._syntax_error(self, item)
                continue
            done: Any = None
            is_run = False
            try:
                if runs and not server.runs_on_loop(item):
                    # Handler-thread mode: hand over every following device request in
                    # one go (the thread handles them in order), not one per round trip.
                    run = [item]
                    while pending and budget > 0:
                        following = pending[0]
                        if not isinstance(following, Message) or server.runs_on_loop(following):
                            break
                        pending.popleft()
                        run.append(following)
                        budget -= 1
                    done = server.on_message_run(self, run)
                    is_run = True
                else:
                    done = server.on_message(self, item)
            except Exception as exc:  # nothing a client sends may kill the server
                server._logger.exception("error handling %s from %s", item, self._address)
                if item.mtype == Message.REQUEST:  # and no request goes unanswered
                    self.reply(Message.reply(item.name, "fail", f"Request failed: {exc}"), item)
                continue
            # A finished run still goes through _request_done: it may have stopped early.
            if done is not None and (is_run or not done.done()):
                # Ordered request still running: wait for it before the next one, but
                # not for ever (a future that never completes must not wedge the client).
                self._busy = True
                self._waiting_on = done
                self._wait_since = clock()
                limit = server.ORDERED_WAIT_LIMIT
                if limit is not None and self._wait_timer is None:
                    # One timer per connection, re-armed lazily: not one per request.
                    self._wait_timer = self._loop.call_later(limit, self._check_wait)
                done.add_done_callback(self._done_callback)
        queued = len(pending) + len(express)
        if not queued:
            self._queued_bytes = 0
        if (
            self._paused
            and queued <= server.MAX_QUEUED_REQUESTS // 2
            and self._queued_bytes <= server.MAX_QUEUED_BYTES
            and not self._closed
        ):
            self._paused = False
            self._link.resume_reading()
        # Whatever is left waits for the next loop turn, so other clients get a go.
        self._schedule_pump()

    def _done_callback(self, fut: concurrent.futures.Future[Any]) -> None:
        try:
            self._call_in_loop(self._request_done, fut)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _request_done(self, fut: Any) -> None:
        outcome = None
        if isinstance(fut, concurrent.futures.Future) and not fut.cancelled():
            outcome = fut.result() if fut.exception() is None else None
        if isinstance(outcome, RunStopped):
            # A run stopped at a request still running: the rest of the run goes back to
            # the front of the queue, and waits for that request.
            inner: Any = outcome.running
            self._pending.extendleft(reversed(outcome.leftovers))
            if self._waiting_on is fut and not inner.done():
                self._waiting_on = inner
                inner.add_done_callback(self._done_callback)
                return
        if self._waiting_on is fut:  # not released already by ORDERED_WAIT_LIMIT
            self._release_wait()
        elif not self._busy:
            self._schedule_pump()

    def _check_wait(self) -> None:
        self._wait_timer = None
        limit = self._server.ORDERED_WAIT_LIMIT
        if self._waiting_on is None or self._closed or limit is None:
            return
        waited = time.perf_counter() - self._wait_since
        if waited < limit:  # a later request: wait for the rest of its time
            self._wait_timer = self._loop.call_later(limit - waited, self._check_wait)
            return
        self._server._logger.warning(
            "%s: request still running after %s s; handling the next messages anyway",
            self._address,
            limit,
        )
        self._release_wait()

    def _release_wait(self) -> None:
        self._waiting_on = None
        self._ready()

    def _lost(self) -> None:
        self._closed = True
        self._handling = False
        self._pending.clear()
        self._express.clear()
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None


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
            conn._send_raw(data)
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
