"""Book-keeping for one outstanding request: how its reply, informs and failure are delivered.

One small class per delivery style keeps the per-message path to a single method call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import FailReplyError, InvalidReply, RequestFailed
from ..message import Message

log = logging.getLogger("katcp.client")

_OK = b"ok"
_INVALID = b"invalid"


class _SettableFuture(Protocol):
    """An asyncio or concurrent.futures future."""

    def done(self) -> bool: ...
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


class DeadlineQueue:
    """Outstanding requests that share one timeout value, in deadline order.

    Requests with equal timeouts time out in the order they were sent, so one loop timer
    armed for the oldest live entry serves the whole queue: no timer is created or cancelled
    per request. Finished entries are dropped lazily from the front.
    """

    __slots__ = ("entries", "handle")

    def __init__(self) -> None:
        self.entries: deque[Pending] = deque()
        self.handle: asyncio.TimerHandle | None = None


class Pending:
    """An outstanding request.

    Attributes
    ----------
    name
        The request name.
    mid
        The message id used on the wire, or None.
    deadline
        Loop time at which the request times out (when it has a timeout).
    timeout
        The timeout in seconds (None: none); it also names the request's deadline queue.
    queue
        The entries of the request's deadline queue (None without a timeout), so that a
        reply can drop finished entries without looking the queue up.
    done
        Set once the request has ended; a timed-out request without id stays queued, done,
        so that its late reply is not taken for the next request's.
    """

    __slots__ = ("deadline", "done", "informs", "mid", "name", "queue", "timeout")

    def __init__(self, name: str) -> None:
        self.name = name
        self.mid: bytes | None = None
        self.deadline = 0.0
        self.timeout: float | None = None
        self.queue: deque[Pending] | None = None
        self.done = False
        self.informs: list[Message] = []

    def inform(self, msg: Message) -> bool:
        """Take an inform that belongs to this request; False passes it to the base handler."""
        self.informs.append(msg)
        return True

    def reply(self, msg: Message) -> bool:
        """Take the reply; False passes it to the base handler."""
        raise NotImplementedError

    def fail(self, reason: str, exc_type: type[RequestFailed]) -> None:
        """End the request without a reply from the server.

        Compatibility styles turn this into a ``fail`` reply carrying `reason`; the modern
        call raises `exc_type`.
        """
        self.reply(Message.reply(self.name, "fail", reason, mid=self.mid))


class FuturePending(Pending):
    """Resolves a future with ``(reply, informs)`` (``future_request``, ``blocking_request``)."""

    __slots__ = ("future",)

    def __init__(self, name: str, future: _SettableFuture) -> None:
        # Slots set inline rather than through Pending.__init__: this runs per request.
        self.name = name
        self.mid = None
        self.deadline = 0.0
        self.timeout = None
        self.queue = None
        self.done = False
        self.informs = []
        self.future = future

    def reply(self, msg: Message) -> bool:
        fut = self.future
        if not fut.done():
            try:
                fut.set_result((msg, self.informs))
            except Exception:  # a concurrent future cancelled from another thread
                pass
        return True


class BlockingPending(Pending):
    """``blocking_request``: the waiting thread sleeps on a lock that the reply releases.

    A bare lock is the cheapest cross-thread wake-up; a ``concurrent.futures.Future`` costs a
    condition variable and more bookkeeping per request.
    """

    __slots__ = ("lock", "result")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.lock = threading.Lock()
        self.lock.acquire()
        self.result: tuple[Message, list[Message]] | None = None

    def reply(self, msg: Message) -> bool:
        if self.result is None:
            self.result = (msg, self.informs)
            try:
                self.lock.release()
            except RuntimeError:  # resolved twice at once (a stopped loop's last gasp)
                pass
        return True


class CallPending(FuturePending):
    """The modern call: resolves with ``(reply, informs)`` for ``ok``, else raises."""

    __slots__ = ()

    def reply(self, msg: Message) -> bool:
        args = msg.arguments
        if args and args[0] == _OK:
            fut = self.future
            if not fut.done():
                try:
                    fut.set_result((msg, self.informs))
                except Exception:  # a concurrent future cancelled from another thread
                    pass
            return True
        text = args[1].decode("utf-8", "replace") if len(args) > 1 else ""
        exc_type = InvalidReply if args and args[0] == _INVALID else FailReplyError
        self._raise(exc_type(text or f"request {self.name} failed: {msg}", msg, self.informs))
        return True

    def fail(self, reason: str, exc_type: type[RequestFailed]) -> None:
        self._raise(exc_type(reason, None, self.informs))

    def _raise(self, exc: BaseException) -> None:
        fut = self.future
        if not fut.done():
            try:
                fut.set_exception(exc)
            except Exception:  # a concurrent future cancelled from another thread
                pass


class CallbackPending(Pending):
    """katcp-python's ``callback_request``: ``reply_cb(msg, *user_data)`` and ``inform_cb``."""

    __slots__ = ("inform_cb", "reply_cb", "user_data")

    def __init__(
        self,
        name: str,
        reply_cb: Callable[..., Any] | None,
        inform_cb: Callable[..., Any] | None,
        user_data: tuple[Any, ...] | None,
    ) -> None:
        super().__init__(name)
        self.reply_cb = reply_cb
        self.inform_cb = inform_cb
        self.user_data = user_data or ()

    def inform(self, msg: Message) -> bool:
        return self._call(self.inform_cb, msg, "inform")

    def reply(self, msg: Message) -> bool:
        return self._call(self.reply_cb, msg, "reply")

    def _call(self, callback: Callable[..., Any] | None, msg: Message, what: str) -> bool:
        """Run a user callback; its exceptions are logged, never raised into the client."""
        if callback is None:
            return False
        try:
            callback(msg, *self.user_data)
        except Exception:
            log.exception("Callback %s %s FAIL", what, msg.name)
        return True
