"""Matching replies to requests: the outstanding requests of a client, their timeouts, and
the server's request timeout hints.

Replies are matched to requests by message id when the request carried one, and otherwise
to the oldest outstanding request of the same name that was sent without an id. A request
without id that times out stays queued (marked finished) until its late reply arrives, so
that reply is not taken for a newer request of the same name; the queue is cleared when the
connection drops.

Timeouts cost no timer per request: requests sharing a timeout value expire in the order they
were sent, so one loop timer per distinct timeout value serves them all.

The ways to make a request (``call``, ``future_request``, ``blocking_request`` ...) are
:class:`katcpx.client.AsyncClient`'s, in :mod:`katcpx.client._async_client`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections import deque
from typing import Any, Final

from ..errors import ConnectionLost, KatcpClientError, RequestFailed, RequestTimeout
from ..flags import ProtocolFlags
from ..message import Message
from ..transport import KatcpProtocol
from ._device_client import DeviceClient
from ._link import log
from ._pending import CallbackPending, DeadlineQueue, Pending
from ._sync import StateEvent

__all__ = ["TIMEOUT_TEXT", "RequestingClient", "is_timeout_reply"]

_REPLY: Final = Message.REPLY

# The text of the fail reply that the compatibility methods give for a timeout (katcp-python
# words it the same way); is_timeout_reply() recognises it, so callers need not parse it.
TIMEOUT_TEXT: Final = "Request {name} timed out after {timeout:f} seconds."
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


class RequestingClient(DeviceClient):
    """:class:`DeviceClient` plus the book-keeping of outstanding requests (see the module).

    The base of :class:`~katcpx.client.AsyncClient`, whose docstring gives the parameters.
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
            self._arm_timeout(entry, timeout, self._binding.loop)
        if not hooked:
            conn.send_message(msg)

    def _start_call(
        self,
        entry: Pending,
        conn: KatcpProtocol,
        loop: asyncio.AbstractEventLoop,
        name: str,
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> None:
        """:meth:`_start` for :meth:`call` when the request gets a message id (the usual case).

        It skips the checks that cannot apply to a fresh request. Runs on the client's
        `loop`.
        """
        # Built before registering: a bad name or argument raises with nothing left behind.
        msg = Message(Message.REQUEST, name, args)
        by_mid = self._by_mid
        mid = self._next_id()
        while mid in by_mid:  # only taken after wrapping past 2**31 - 1
            mid = self._next_id()
        entry.mid = mid
        by_mid[mid] = entry
        if timeout is not None:
            self._arm_timeout(entry, timeout, loop)
        msg.mid = mid
        conn.write(bytes(msg))

    def _arm_timeout(
        self, entry: Pending, timeout: float, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Queue `entry` to time out on the client's `loop` (where this runs); requests
        sharing a timeout value share one loop timer."""
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
        loop = self._binding.loop
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
        loop = self._binding.loop
        assert loop is not None
        # The seconds since the request went out, as katcp-python words it (a loop that was
        # busy makes it a little more than the timeout).
        elapsed = loop.time() - (entry.deadline - entry.timeout)
        entry.fail(TIMEOUT_TEXT.format(name=entry.name, timeout=elapsed), RequestTimeout)

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
            super()._on_items(conn, items)
            return
        by_mid = self._by_mid
        transport = conn.transport
        general = super()._on_items
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
                            self._log_handler_error(item)
                            continue
                    else:
                        by_mid[mid] = entry  # type: ignore[index]  # the general path warns
            general(conn, [item])

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
            and self._binding.on_loop()
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
        KatcpClientError
            (From the future.) At once, if the server announced a malformed protocol version
            (:attr:`protocol_error`).
        """
        return asyncio.ensure_future(self._until_ready(timeout))

    async def _until_ready(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._running.until_set(timeout)
        if self._binding.on_loop():
            self._enable_timeout_hints()
        else:
            await asyncio.to_thread(self._run_in_loop, self._enable_timeout_hints)
        remaining = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        # Ready implies the protocol is known: a malformed one fails here at once.
        await self._until_protocol(remaining)
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
        # Ready implies the protocol is known: a malformed one returns False at once.
        if not self.wait_protocol(
            None if deadline is None else max(0.0, deadline - time.monotonic())
        ):
            return False
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

    def _dispatch_start(
        self, entry: Pending, msg: Message, timeout: float | None, use_mid: bool | None
    ) -> None:
        if self._binding.on_loop():
            self._start(entry, msg, timeout, use_mid)
        elif not self._binding.call(self._start, entry, msg, timeout, use_mid):
            entry.done = True
            entry.fail(f"Not connected to device {self.bind_address_string}", ConnectionLost)


_handle_message = DeviceClient.handle_message
_handle_reply = RequestingClient.handle_reply
