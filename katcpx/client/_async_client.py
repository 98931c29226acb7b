"""katcp-python's ``AsyncClient``, ``CallbackClient`` and ``BlockingClient``, plus ``call()``.

These are the ways to make a request; matching the replies to the requests is
:class:`~katcpx.client._requesting.RequestingClient`'s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ..errors import ConnectionLost, KatcpVersionError, RequestTimeout
from ..message import Message
from ._link import log
from ._pending import BlockingPending, CallbackPending, CallPending, FuturePending, Pending
from ._request_args import check_callbacks, check_request, check_timeout, failed_future
from ._requesting import TIMEOUT_TEXT, RequestingClient, is_timeout_reply

__all__ = ["DEFAULT", "AsyncClient", "BlockingClient", "CallbackClient", "is_timeout_reply"]

_Self = TypeVar("_Self", bound="AsyncClient")
Reply = tuple[Message, list[Message]]

#: Seconds a blocking caller waits between checks that the client's loop still runs.
_POLL: Final = 0.5


class _Default:
    """Type of :data:`DEFAULT`."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: ``call(..., timeout=DEFAULT)`` uses the client's default (or the server's hint).
DEFAULT = _Default()


class AsyncClient(RequestingClient):
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
            return failed_future(exc, self._binding.loop if self._binding.on_loop() else None)
        timeout = self._timeout_for(msg.name, timeout)
        if self._binding.on_loop():
            fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
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
        if self._binding.on_loop():
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
        binding = self._binding
        loop = binding.loop
        if not binding.call(self._start_flushed, entry, msg, timeout, use_mid):
            entry.done = True  # not running
            entry.fail(f"Not connected to device {self.bind_address_string}", ConnectionLost)
        # The deadline counts from the hand-over.
        deadline = None if timeout is None else time.monotonic() + timeout + 1.0
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
            remaining = _POLL if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                # The loop is stuck (or still starting): report the timeout as the loop
                # would have. katcp-python raises RuntimeError here.
                entry.done = True
                assert timeout is not None and deadline is not None
                elapsed = time.monotonic() - deadline + timeout + 1.0  # since the hand-over
                entry.fail(TIMEOUT_TEXT.format(name=entry.name, timeout=elapsed), RequestTimeout)
                assert entry.result is not None
                return entry.result
            if entry.lock.acquire(timeout=min(remaining, _POLL)):
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
        if self._binding.on_loop():
            loop = asyncio.get_running_loop()
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
                self._start_call(CallPending(name, fut), conn, loop, name, args, resolved)
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
        if self._stopped.is_set():  # never started, or already stopped
            return
        if self._binding.on_loop():
            self.stop()
            await self.until_stopped()
        else:
            self._ask_to_stop()
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
    as a timeout (see :meth:`katcpx.metrics._stats.ClientStats.reply_received`).
    """
    started = time.perf_counter()

    def counted(reply: Message, *user_data: Any) -> Any:
        metrics.reply_received(name, reply, started)
        return None if reply_cb is None else reply_cb(reply, *user_data)

    return counted
