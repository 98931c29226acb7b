"""katcp-python's ``AsyncClient``, ``CallbackClient`` and ``BlockingClient``, plus ``call()``.

Replies are matched to requests by message id when the request carried one, and otherwise
to the oldest outstanding request of the same name that was sent without an id. A request
without id that times out stays queued (marked finished) until its late reply arrives, so
that reply is not taken for a newer request of the same name; the queue is cleared when the
connection drops.

Timeouts cost no timer per request: requests sharing a timeout value expire in the order they
were sent, so one loop timer per distinct timeout value serves them all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ..errors import ConnectionLost, KatcpClientError, RequestFailed, RequestTimeout
from ..flags import ProtocolFlags
from ..message import Message, check_name, format_argument
from ..transport import KatcpProtocol
from ._pending import (
    BlockingPending,
    CallbackPending,
    CallPending,
    DeadlineQueue,
    FuturePending,
    Pending,
)
from ._sync import StateEvent
from .device_client import DeviceClient, KatcpVersionError, log
from .request_args import check_callbacks, check_request, check_timeout, failed_future

__all__ = ["AsyncClient", "BlockingClient", "CallbackClient"]

_Self = TypeVar("_Self", bound="AsyncClient")
Reply = tuple[Message, list[Message]]

_REQUEST: Final = Message.REQUEST
_REPLY: Final = Message.REPLY
_get_ident = threading.get_ident


# The text of the fail reply that the compatibility methods give for a timeout (katcp-python
# words it the same way, with the seconds elapsed since sending as `timeout`);
# is_timeout_reply() recognises it, so callers need not parse it.
_TIMEOUT_TEXT: Final = "Request {name} timed out after {timeout:f} seconds."
_TIMEOUT_RE: Final = re.compile(r"Request \S+ timed out after [0-9.]+ seconds\.\Z")


def is_timeout_reply(reply: Message) -> bool:
    """Whether `reply` is the ``fail`` reply a client made up because the request timed out.

    The compatibility methods (``future_request``, ``blocking_request``, ...) report a
    timeout as a fail reply, as katcp-python does; this tells it from a server's own fail.
    """
    args = reply.arguments
    return (
        reply.mtype == Message.REPLY
        and len(args) == 2
        and args[0] == b"fail"
        and _TIMEOUT_RE.match(args[1].decode("utf-8", "replace")) is not None
    )


class _Default:
    """Type of :data:`DEFAULT`."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: ``call(..., timeout=DEFAULT)`` uses the client's default (or the server's hint).
DEFAULT = _Default()


class AsyncClient(DeviceClient):
    """Implement async and callback-based requests on top of :class:`DeviceClient`.

    This client uses message ids if the server supports them.

    Parameters
    ----------
    host
        Host to connect to.
    port
        Port to connect to.
    tb_limit
        Maximum number of stack frames logged when a handler raises.
    timeout
        Default seconds to wait for a reply; each request may override it. None: no
        timeout. When the server announces request timeout hints (the ``T`` flag) and
        :attr:`use_timeout_hints` is true, a request's default is the larger of this and
        the server's hint for it.
    logger
        Logger to log to.
    auto_reconnect
        Whether to reconnect when the connection dies.

    Notes
    -----
    The compatibility methods (:meth:`callback_request`, :meth:`future_request`,
    :meth:`blocking_request`) never raise for a failed request: a timeout, a lost connection
    or a stopped client resolves as a ``fail`` *reply* saying so, as in katcp-python. The
    modern :meth:`call` raises instead.

    Examples
    --------
    >>> async def main():
    ...     async with await AsyncClient.connect("localhost", 10000) as client:
    ...         reply, informs = await client.call("sensor-value", "cpu.temp", timeout=5)
    """

    def __init__(
        self,
        host: str,
        port: int,
        tb_limit: int = 20,
        timeout: float | None = 5.0,
        logger: logging.Logger = log,
        auto_reconnect: bool = True,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            tb_limit=tb_limit,
            logger=logger,
            auto_reconnect=auto_reconnect,
            ssl_context=ssl_context,
        )
        self._request_timeout = timeout
        #: Whether to fetch ``?request-timeout-hint`` from servers with the ``T`` flag.
        #: None (undecided, no fetch) until :meth:`connect`, :meth:`until_ready` or
        #: :meth:`wait_ready` turn it on; False keeps it off even then. With katcp-python's
        #: API (``start()``, ``wait_protocol()``) the client sends nothing by itself, as
        #: katcp-python 0.9.3 does, so message ids are the caller's own.
        self.use_timeout_hints: bool | None = None
        self._timeout_hints: dict[str, float] = {}
        # Set once the connection is usable: protocol known and timeout hints fetched.
        self._ready = StateEvent()
        # Requests the client makes for itself (the hints): their informs are not output.
        self._own: set[Pending] = set()
        self._by_mid: dict[bytes, Pending] = {}
        self._by_name: dict[str, deque[Pending]] = {}
        # Timeout value -> requests with that timeout, in deadline order.
        self._deadlines: dict[float, DeadlineQueue] = {}
        cls = type(self)
        # Whether a subclass overrides send_request or send_message; see _send_hooked.
        self._class_send_hooked = (
            cls.send_request is not DeviceClient.send_request
            or cls.send_message is not DeviceClient.send_message
        )

    @property
    def _send_hooked(self) -> bool:
        """Whether requests must go through send_request/send_message.

        True when a subclass overrides either, or either is replaced on the instance (a
        test wrapping ``client.send_message`` in a mock): then every request goes through
        them, as in katcp-python; otherwise straight to the connection.
        """
        attrs = self.__dict__
        return self._class_send_hooked or "send_message" in attrs or "send_request" in attrs

    # -- request book-keeping --------------------------------------------------------------

    def timeout_hint(self, name: str) -> float | None:
        """The server's request timeout hint for request `name` (seconds), or None.

        Hints are fetched on connect from servers with the ``T`` flag (KATCP v5.1, 9.1).
        """
        return self._timeout_hints.get(name)

    def default_timeout(self, name: str) -> float | None:
        """The timeout (seconds) a request `name` gets by default: ours, raised by a hint."""
        return self._timeout_for(name, None)

    def _timeout_for(self, name: str, timeout: float | None) -> float | None:
        """Resolve a compatibility-style timeout (None means the default)."""
        if timeout is None:
            timeout = self._request_timeout
            hint = self._timeout_hints.get(name)
            if hint and (timeout is None or hint > timeout):
                timeout = hint
        return timeout

    def _start(
        self, entry: Pending, msg: Message, timeout: float | None, use_mid: bool | None
    ) -> None:
        """Register `entry` for `msg` and send it; runs on the client's loop."""
        conn = self._conn
        if conn is None:
            entry.mid = msg.mid
            entry.done = True
            entry.fail(f"Not connected to device {self.bind_address_string}", ConnectionLost)
            return
        mid = msg.mid
        if mid is None:
            if use_mid is None:
                use_mid = self._server_supports_ids
            if use_mid:
                mid = msg.mid = self._next_id()
                while mid in self._by_mid:  # only after wrapping past 2**31 - 1
                    mid = msg.mid = self._next_id()
        elif mid in self._by_mid:
            entry.mid = mid
            entry.done = True
            entry.fail(f"Message id {mid.decode()} is already in use", RequestFailed)
            return
        if mid is not None and not self._server_supports_ids:
            entry.mid = mid
            entry.done = True
            entry.fail("Message IDs not supported by server", RequestFailed)
            return
        entry.mid = mid
        hooked = self._send_hooked
        if hooked:
            # katcp-python sends every request through send_request -> send_message, so a
            # subclass overriding either sees it. Sent before registering: on this loop
            # thread no reply can be read in between, and a hook that raises leaves nothing.
            try:
                self.send_request(msg)
            except KatcpClientError as e:
                # katcp-python's fail reply carries the client error's text as it is.
                entry.done = True
                entry.fail(str(e), ConnectionLost)
                return
            except Exception as e:
                entry.done = True
                entry.fail(f"Could not send request {msg.name}: {e}", ConnectionLost)
                return
        if mid is None:
            queue = self._by_name.get(msg.name)
            if queue is None:
                queue = self._by_name[msg.name] = deque()
            queue.append(entry)
        else:
            self._by_mid[mid] = entry
        if timeout is not None:
            self._arm_timeout(entry, timeout)
        if not hooked:
            conn.send_message(msg)

    def _start_call(
        self,
        entry: Pending,
        conn: KatcpProtocol,
        name: str,
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> None:
        """:meth:`_start` for :meth:`call` when the request gets a message id (the usual case).

        It skips the checks that cannot apply to a fresh request. Runs on the client's loop.
        """
        check_name(name)
        # Format before registering: a bad argument raises with nothing left behind.
        formatted = [format_argument(arg) for arg in args] if args else []
        by_mid = self._by_mid
        mid = self._next_id()
        while mid in by_mid:  # only taken after wrapping past 2**31 - 1
            mid = self._next_id()
        entry.mid = mid
        by_mid[mid] = entry
        if timeout is not None:
            self._arm_timeout(entry, timeout)
        conn.write(bytes(Message._new(_REQUEST, name, formatted, mid)))

    def _arm_timeout(self, entry: Pending, timeout: float) -> None:
        """Queue `entry` to time out; requests sharing a timeout value share one loop timer."""
        loop = self._loop
        assert loop is not None
        entry.timeout = timeout
        entry.deadline = deadline = loop.time() + timeout
        dq = self._deadlines.get(timeout)
        if dq is None:
            dq = self._deadlines[timeout] = DeadlineQueue()
        entry.queue = dq.entries
        dq.entries.append(entry)
        if dq.handle is None:
            dq.handle = loop.call_at(deadline, self._expire, dq)

    def _expire(self, dq: DeadlineQueue) -> None:
        """Time out the expired requests of `dq` and re-arm its timer for the next one."""
        dq.handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        entries = dq.entries
        while entries:
            entry = entries[0]
            if entry.done:
                entries.popleft()
            elif entry.deadline > now:
                dq.handle = loop.call_at(entry.deadline, self._expire, dq)
                return
            else:
                entries.popleft()
                self._on_timeout(entry)

    @staticmethod
    def _finished(entry: Pending) -> None:
        """Drop finished entries from the front of `entry`'s deadline queue."""
        entries = entry.queue
        if entries is not None:
            while entries and entries[0].done:
                entries.popleft()

    def _on_timeout(self, entry: Pending) -> None:
        if entry.done:
            return
        entry.done = True
        if entry.mid is not None:
            self._by_mid.pop(entry.mid, None)
        # An entry without id stays queued (done): a late reply must not match a newer request.
        assert entry.timeout is not None  # only entries with a timeout are queued to expire
        # katcp-python reports the time elapsed since the request was sent, not the timeout.
        assert self._loop is not None
        elapsed = self._loop.time() - entry.deadline + entry.timeout
        entry.fail(_TIMEOUT_TEXT.format(name=entry.name, timeout=elapsed), RequestTimeout)

    def _fail_all(self, reason: str) -> None:
        entries = list(self._by_mid.values())
        for queue in self._by_name.values():
            entries.extend(queue)
        self._by_mid = {}
        self._by_name = {}
        for dq in self._deadlines.values():
            if dq.handle is not None:
                dq.handle.cancel()
        self._deadlines = {}
        for entry in entries:
            if entry.done:
                continue
            entry.done = True
            entry.fail(reason, ConnectionLost)

    def _connection_closed(self) -> None:
        self._fail_all("Connection closed before reply was received")
        self._ready.clear()

    def _client_stopped(self) -> None:
        self._fail_all("Client stopped before reply was received")

    def handle_reply(self, msg: Message) -> Any:
        """Handle a reply message related to a current request.

        Replies that match no outstanding request go to the base class method (and so to
        ``reply_*`` handlers or :meth:`unhandled_reply`).

        Parameters
        ----------
        msg
            The reply message to dispatch.
        """
        mid = msg.mid
        entry: Pending | None
        if mid is not None:
            entry = self._by_mid.pop(mid, None)
            if entry is not None and entry.name != msg.name:
                self._logger.warning(
                    "Reply %s does not match request %s[%s]", msg, entry.name, mid.decode()
                )
                self._by_mid[mid] = entry
                entry = None
        else:
            queue = self._by_name.get(msg.name)
            entry = queue.popleft() if queue else None
            if entry is not None and entry.done:
                entry = None  # the late reply of a timed-out request
        if entry is None:
            return super().handle_reply(msg)
        entry.done = True
        if entry.queue is not None:
            self._finished(entry)
        if not entry.reply(msg):
            return super().handle_reply(msg)
        return None

    def _on_items(self, conn: KatcpProtocol, items: list[Any]) -> None:
        """Dispatch a batch of received items, resolving replies to requests in place.

        A reply whose id names an outstanding request of the same name is what most of a
        busy client's traffic is; it goes straight to its request here, skipping
        :meth:`handle_message` and :meth:`handle_reply`. Everything else, and every item
        when those methods are overridden or debug logging is on, takes the general path.
        """
        cls = type(self)
        if (
            cls.handle_message is not _handle_message
            or cls.handle_reply is not _handle_reply
            or "handle_message" in self.__dict__
            or "handle_reply" in self.__dict__
            or self._logger.isEnabledFor(logging.DEBUG)
        ):
            DeviceClient._on_items(self, conn, items)
            return
        by_mid = self._by_mid
        transport = conn.transport
        for item in items:
            if transport is None or transport.is_closing():
                return  # closed by a handler: the rest of the batch is moot
            if type(item) is Message and item.mtype == _REPLY:
                mid = item.mid
                entry = by_mid.pop(mid, None) if mid is not None else None
                if entry is not None:
                    if entry.name == item.name:
                        entry.done = True
                        queue = entry.queue
                        if queue is not None:
                            while queue and queue[0].done:
                                queue.popleft()
                        try:
                            if entry.reply(item):
                                continue
                        except Exception:
                            self._logger.exception(
                                "Unhandled exception in handle_message() from %s for message %s",
                                self.bind_address_string,
                                item,
                            )
                            continue
                    else:
                        by_mid[mid] = entry  # type: ignore[index]  # the general path warns
            DeviceClient._on_items(self, conn, [item])

    def handle_inform(self, msg: Message) -> Any:
        """Handle inform messages related to any current requests.

        Informs not related to a current request go up to the base class method.

        Parameters
        ----------
        msg
            The inform message to dispatch.
        """
        mid = msg.mid
        entry: Pending | None
        if mid is not None:
            entry = self._by_mid.get(mid)
        else:
            queue = self._by_name.get(msg.name)
            entry = queue[0] if queue else None
            if entry is not None and entry.done:
                entry = None
        if entry is None or not entry.inform(msg):
            return super().handle_inform(msg)
        return None

    # -- timeout hints -----------------------------------------------------------------------

    def _protocol_detected(self) -> None:
        flags = self._protocol_flags
        if (
            self.use_timeout_hints
            and self._conn is not None
            and flags is not None
            and flags.supports(ProtocolFlags.REQUEST_TIMEOUT_HINTS)
            and self._in_loop_thread()
        ):
            self._ready.clear()
            self._fetch_timeout_hints()
        elif self._conn is not None:
            self._ready.set()

    def _on_connected(self, conn: KatcpProtocol) -> None:
        self._ready.clear()
        super()._on_connected(conn)
        if self._static_protocol_configuration and self._conn is conn:
            self._protocol_detected()

    def _fetch_timeout_hints(self) -> None:
        hints: dict[str, float] = {}

        def inform_cb(msg: Message) -> None:
            if len(msg.arguments) >= 2:
                try:
                    hints[msg.arguments[0].decode()] = float(msg.arguments[1])
                except ValueError:
                    pass

        def reply_cb(msg: Message) -> None:
            self._own.discard(entry)
            if msg.reply_ok():
                self._timeout_hints = hints
            # Ready even when the server refused: requests then use the client's timeout.
            if self._conn is not None:
                self._ready.set()

        entry = CallbackPending("request-timeout-hint", reply_cb, inform_cb, None)
        self._own.add(entry)
        self._start(entry, Message.request("request-timeout-hint"), self._request_timeout, None)

    def is_own_inform(self, msg: Message) -> bool:
        """Whether `msg` is an inform of a request the client made for itself.

        The client asks the server for its request timeout hints on each connection; tools
        that print informs use this to leave those out of their output.

        Parameters
        ----------
        msg
            An inform message received by this client.
        """
        if not self._own:
            return False
        if msg.mid is not None:
            return self._by_mid.get(msg.mid) in self._own
        queue = self._by_name.get(msg.name)
        return bool(queue) and queue[0] in self._own  # type: ignore[index]

    def is_ready(self) -> bool:
        """Whether the client is connected and knows the server's protocol and timeout hints."""
        return self._ready.is_set()

    def until_ready(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return a future that resolves once the client is ready to make requests.

        Ready means connected, with the server's protocol information (as
        :meth:`until_protocol`) and, from servers with the ``T`` flag, its request timeout
        hints: a request made after this uses the hint the server gives for it.

        Raises
        ------
        TimeoutError
            (From the future.) If the client is not ready within `timeout` seconds.
        """
        return asyncio.ensure_future(self._until_ready(timeout))

    async def _until_ready(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._running.until_set(timeout)
        if self._in_loop_thread():
            self._enable_timeout_hints()
        else:
            await asyncio.to_thread(self._run_in_loop, self._enable_timeout_hints)
        remaining = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        return await self._ready.until_set(remaining)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the client is ready (see :meth:`until_ready`); return whether it is.

        Do not call this from the ioloop, use :meth:`until_ready`.
        """
        self._check_not_loop("wait_ready")
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._running.wait(timeout):
            return False
        self._run_in_loop(self._enable_timeout_hints)
        return self._ready.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _enable_timeout_hints(self) -> None:
        """Fetch timeout hints from now on, and now if the protocol is already known.

        Runs on the loop. Called by the katcpx "ready" API only (see
        :attr:`use_timeout_hints`).
        """
        if self.use_timeout_hints is not None:
            return
        self.use_timeout_hints = True
        if self._ready.is_set():
            self._protocol_detected()

    # -- compatibility request methods ---------------------------------------------------------

    def callback_request(
        self,
        msg: Message,
        reply_cb: Callable[..., Any] | None = None,
        inform_cb: Callable[..., Any] | None = None,
        user_data: tuple[Any, ...] | None = None,
        timeout: float | None = None,
        use_mid: bool | None = None,
    ) -> None:
        """Send a request message.

        May be called from any thread; the callbacks run on the client's loop.

        Parameters
        ----------
        msg
            The request message to send.
        reply_cb
            The reply callback with signature ``reply_cb(msg)`` or ``reply_cb(msg, *user_data)``.
        inform_cb
            The inform callback with signature ``inform_cb(msg)`` or
            ``inform_cb(msg, *user_data)``.
        user_data
            Optional user data to send to the reply and inform callbacks.
        timeout
            How long to wait for a reply. The default is the timeout set when creating the
            client.
        use_mid
            Whether to use message IDs. Default is to use message IDs if the server supports
            them.
        """
        # Bad arguments fail here, in the caller, not later on the loop (katcp-python's errors).
        check_request("callback_request", msg, timeout)
        check_callbacks(reply_cb, inform_cb, user_data)
        if self.metrics is not None:  # count it as call() and blocking_request() are
            reply_cb = _counted_reply_cb(self.metrics, msg.name, reply_cb)
        entry = CallbackPending(msg.name, reply_cb, inform_cb, user_data)
        self._dispatch_start(entry, msg, self._timeout_for(msg.name, timeout), use_mid)

    def _dispatch_start(
        self, entry: Pending, msg: Message, timeout: float | None, use_mid: bool | None
    ) -> None:
        if self._in_loop_thread():
            self._start(entry, msg, timeout, use_mid)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            entry.done = True
            entry.fail(f"Not connected to device {self.bind_address_string}", ConnectionLost)
            return
        loop.call_soon_threadsafe(self._start, entry, msg, timeout, use_mid)

    def future_request(
        self, msg: Message, timeout: float | None = None, use_mid: bool | None = None
    ) -> asyncio.Future[Reply] | concurrent.futures.Future[Reply]:
        """Send a request message, with future replies.

        Parameters
        ----------
        msg
            The request message to send.
        timeout
            How long to wait for a reply. The default is the timeout set when creating the
            client.
        use_mid
            Whether to use message IDs. Default is to use message IDs if the server supports
            them.

        Returns
        -------
        future
            Resolves with ``(reply, informs)``. Called on the client's loop it is a future of
            that loop (a tornado 6 Future is an asyncio Future). Called from another thread
            it is a future of the caller's running loop, or a ``concurrent.futures.Future``
            when the caller has no running loop. It has already failed, as katcp-python's
            does, with ``NotARequestError`` (an ``AssertionError``) when `msg` is not a
            request, or ``TypeError`` when `timeout` is neither a number nor None.
        """
        try:  # in the caller, not on the loop; katcp-python fails the future it returns
            check_request("future_request", msg, timeout)
        except (AssertionError, TypeError) as exc:
            return failed_future(exc, self._loop if self._in_loop_thread() else None)
        timeout = self._timeout_for(msg.name, timeout)
        if self._in_loop_thread():
            assert self._loop is not None
            fut: asyncio.Future[Reply] = self._loop.create_future()
            if self.metrics is not None:
                self.metrics.track(msg.name, fut)
            self._start(FuturePending(msg.name, fut), msg, timeout, use_mid)
            return fut
        cfut: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        if self.metrics is not None:
            self.metrics.track(msg.name, cfut)
        self._dispatch_start(FuturePending(msg.name, cfut), msg, timeout, use_mid)
        try:
            caller_loop = asyncio.get_running_loop()
        except RuntimeError:
            return cfut
        return asyncio.wrap_future(cfut, loop=caller_loop)

    def _check_blocking_allowed(self, what: str) -> None:
        # _get_running_loop() returns None instead of raising: this runs on every request.
        loop = self._loop
        if (loop is not None and asyncio._get_running_loop() is loop) or self._in_loop_thread():
            raise RuntimeError(
                f"{what}() called from the client's own ioloop thread would deadlock; "
                f"use future_request() or await call() instead"
            )

    def blocking_request(
        self, msg: Message, timeout: float | None = None, use_mid: bool | None = None
    ) -> Reply:
        """Send a request message and wait for its reply.

        Parameters
        ----------
        msg
            The request message to send.
        timeout
            How long to wait for a reply. The default is the timeout set when creating the
            client.
        use_mid
            Whether to use message IDs. Default is to use message IDs if the server supports
            them.

        Returns
        -------
        reply : Message
            The reply message received (a ``fail`` reply if the request timed out or the
            connection was lost).
        informs : list of Message
            The inform messages received.

        Raises
        ------
        RuntimeError
            If called from the client's own loop thread, where it would deadlock.
        NotARequestError
            (An ``AssertionError``, as katcp-python raises.) `msg` is not a request.
        TypeError
            `timeout` is neither a number nor None.
        """
        self._check_blocking_allowed("blocking_request")
        check_request("blocking_request", msg, timeout)  # in the caller, not on the loop
        started = time.perf_counter()  # for the client's request latency metrics
        timeout = self._timeout_for(msg.name, timeout)
        entry = BlockingPending(msg.name)
        loop = self._loop
        try:
            if loop is None or loop.is_closed():
                raise RuntimeError("loop closed")
            loop.call_soon_threadsafe(self._start_flushed, entry, msg, timeout, use_mid)
        except RuntimeError:  # closed, now or just before the hand-over
            entry.done = True
            entry.fail(f"Not connected to device {self.bind_address_string}", ConnectionLost)
        # The deadline counts from the hand-over, not from the end of this first wait.
        deadline = None if timeout is None else time.monotonic() + timeout + 1.0
        if entry.lock.acquire(timeout=0.5 if timeout is None else min(timeout + 1.0, 0.5)):
            assert entry.result is not None
            result = entry.result
        else:
            result = self._wait_handed_over(entry, loop, deadline, timeout)
        if self.metrics is not None:
            self.metrics.reply_received(msg.name, result[0], started)
        return result

    def _wait_handed_over(
        self,
        entry: BlockingPending,
        loop: asyncio.AbstractEventLoop | None,
        deadline: float | None,
        timeout: float | None,
    ) -> Reply:
        """Wait for a request handed to the loop, failing it if the loop stops first.

        A loop that stops (the client stopping) between the hand-over and running the
        request drops it; once the loop has stopped nothing else can resolve the request,
        so this thread does. Otherwise the loop's own deadline resolves it; `deadline`
        (``time.monotonic()`` seconds: the request timeout plus one second from the
        hand-over) guards a stuck loop; `timeout` (seconds) is the request's, for the reply.
        """
        while True:
            remaining = 0.5 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                # The loop is stuck (or still starting): report the timeout as the loop
                # would have. katcp-python raises RuntimeError here.
                entry.done = True
                assert timeout is not None and deadline is not None
                elapsed = time.monotonic() - deadline + timeout + 1.0  # since the hand-over
                entry.fail(_TIMEOUT_TEXT.format(name=entry.name, timeout=elapsed), RequestTimeout)
                assert entry.result is not None
                return entry.result
            if entry.lock.acquire(timeout=min(remaining, 0.5)):
                assert entry.result is not None
                return entry.result
            if (
                loop is None
                or loop.is_closed()
                or (self._stopped.is_set() and not loop.is_running())
            ):
                entry.done = True
                entry.fail("Client stopped before reply was received", ConnectionLost)

    def _start_flushed(
        self, entry: Pending, msg: Message, timeout: float | None, use_mid: bool | None
    ) -> None:
        # A blocking caller sends one request at a time: send it now rather than at the end
        # of the loop iteration, saving an iteration per request.
        self._start(entry, msg, timeout, use_mid)
        conn = self._conn
        if conn is not None:
            conn.flush()

    # -- modern API ----------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        *args: Any,
        timeout: float | None | _Default = DEFAULT,
        use_mid: bool | None = None,
    ) -> Reply:
        """Make a request and return ``(reply, informs)`` if the server replies ``ok``.

        Awaitable from the client's loop, or from any other running loop when the client's
        loop is managed.

        Parameters
        ----------
        name
            The request name, e.g. ``"sensor-value"``.
        *args
            Request arguments (formatted like :class:`~katcpx.message.Message` arguments).
        timeout
            Seconds to wait for the reply; None waits forever. By default the client's
            timeout (or the server's timeout hint for `name`, if larger).
        use_mid
            Whether to use a message id. Default: if the server supports them.

        Raises
        ------
        FailReplyError
            The server replied ``fail``; the exception text is the server's message.
        InvalidReply
            The server replied ``invalid``.
        RequestTimeout
            No reply within `timeout`.
        ConnectionLost
            The client is not connected, or the connection dropped before the reply.
        KatcpVersionError
            `use_mid` is true but the server does not support message ids.
        """
        if use_mid and not self._server_supports_ids:
            raise KatcpVersionError("Message IDs not supported by server")
        if timeout is not DEFAULT:
            check_timeout("call", timeout)  # in the caller, not on the loop
        if timeout is DEFAULT:
            resolved = (
                self._timeout_for(name, None) if self._timeout_hints else self._request_timeout
            )
        else:
            resolved = timeout  # type: ignore[assignment]
        if _get_ident() == self.ioloop_thread_id:
            loop = self._loop
            assert loop is not None
            fut: asyncio.Future[Reply] = loop.create_future()
            if self.metrics is not None:
                self.metrics.track(name, fut)
            conn = self._conn
            if (
                use_mid is not False
                and self._server_supports_ids
                and conn is not None
                and not self._send_hooked
            ):
                self._start_call(CallPending(name, fut), conn, name, args, resolved)
            else:
                self._start(CallPending(name, fut), Message.request(name, *args), resolved, use_mid)
            return await fut
        msg = Message.request(name, *args)
        cfut: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        if self.metrics is not None:
            self.metrics.track(name, cfut)
        self._dispatch_start(CallPending(name, cfut), msg, resolved, use_mid)
        return await asyncio.wrap_future(cfut)

    @classmethod
    async def connect(
        cls: type[_Self], host: str, port: int, *, timeout: float | None = 10.0, **kwargs: Any
    ) -> _Self:
        """Create a client on the running loop, start it and wait until it is ready.

        Ready means what :meth:`until_ready` says: the server's protocol information and its
        request timeout hints have arrived, so the first request already gets its hint.

        Parameters
        ----------
        host, port
            The server's address.
        timeout
            Seconds to wait for the connection and protocol information.
        **kwargs
            Passed to the constructor.

        Raises
        ------
        TimeoutError
            If the client was not ready within `timeout`.
        """
        client = cls(host, port, **kwargs)
        client.use_timeout_hints = True
        client.set_ioloop()
        client.start()
        try:
            await client.until_ready(timeout)
        except BaseException:
            await client.aclose()
            raise
        return client

    async def aclose(self) -> None:
        """Stop the client and wait until it has stopped (from any running loop)."""
        if self._loop is None:
            return
        if self._in_loop_thread() or asyncio.get_running_loop() is self._loop:
            self.stop()
            await self.until_stopped()
        else:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._stop_now)
            await self._stopped.until_set()
            await asyncio.to_thread(self.join)

    async def __aenter__(self: _Self) -> _Self:
        if self._stopped.is_set():
            if self._managed:
                self.set_ioloop()
            self.start()
            await self.until_ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_handle_message = DeviceClient.handle_message
_handle_reply = AsyncClient.handle_reply


class CallbackClient(AsyncClient):
    """An :class:`AsyncClient` meant to be used from threads other than its own loop's.

    Parameters are those of :class:`AsyncClient`; thread safety is enabled at construction.
    """

    def __init__(
        self,
        host: str,
        port: int,
        tb_limit: int = 20,
        timeout: float | None = 5.0,
        logger: logging.Logger = log,
        auto_reconnect: bool = True,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            tb_limit=tb_limit,
            timeout=timeout,
            logger=logger,
            auto_reconnect=auto_reconnect,
            ssl_context=ssl_context,
        )
        self.enable_thread_safety()


class BlockingClient(CallbackClient):
    """A :class:`CallbackClient` used through :meth:`blocking_request` from other threads."""


def _counted_reply_cb(
    metrics: Any, name: str, reply_cb: Callable[..., Any] | None
) -> Callable[..., Any]:
    """Wrap `reply_cb` so the client's metrics count request `name` when its reply comes.

    The clock starts now, when the request is sent; a timeout's made-up ``fail`` reply counts
    as a timeout (see :meth:`katcpx.metrics.stats.ClientStats.reply_received`).
    """
    started = time.perf_counter()

    def counted(reply: Message, *user_data: Any) -> Any:
        metrics.reply_received(name, reply, started)
        return None if reply_cb is None else reply_cb(reply, *user_data)

    return counted
