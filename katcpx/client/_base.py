"""The clients' public life cycle: choose the loop, start, stop, and wait for a state.

The connection itself (state, events, the connect/reconnect loop) is
:class:`katcpx.client._link.ClientLink`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from .._anyloop import future_of
from ..errors import KatcpClientDisconnected, KatcpClientError
from ._link import ClientLink
from ._sync import LoopThread, StateEvent

__all__ = ["ClientBase"]


class ClientBase(ClientLink):
    """Connection life cycle of :class:`~katcpx.client.DeviceClient` (see there)."""

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
            self._chosen_loop = ioloop.asyncio_loop  # type: ignore[attr-defined]
        else:
            self._ioloop = None  # the IOLoop wrapper is fetched on the loop itself
            self._chosen_loop = ioloop
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
        binding = self._binding

        @functools.wraps(meth)
        def on_loop(*args: Any, **kwargs: Any) -> Any:
            if binding.on_loop():
                return meth(*args, **kwargs)
            call = functools.partial(meth, *args, **kwargs)
            if blocking:
                return self._run_in_loop(call, timeout=None)
            if not binding.call(call):
                raise KatcpClientDisconnected(
                    f"Client for {self.bind_address_string} is not running"
                )
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
            thread = LoopThread(f"katcpx-client-{self.bind_address_string}", self._binding)
            thread.daemon = self._daemon
            self._loop_thread = thread
            self._ioloop = thread.start()
            loop = self._ioloop.asyncio_loop
        else:
            assert self._chosen_loop is not None
            loop = self._chosen_loop
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
            self._binding.bind(loop)  # now, so that a blocking call made next is refused
            self._spawn()
            return
        if self._managed:
            self._binding.call(self._spawn)  # bound by the loop thread
        else:
            # The caller's loop, run by another thread: the binding is bound only once
            # _install runs there, so this one hand-over is asyncio's own.
            loop.call_soon_threadsafe(self._spawn)
        if timeout:
            self.wait_running(timeout)

    def _spawn(self) -> None:
        """Start the main coroutine (on the client's loop)."""
        asyncio.get_running_loop().create_task(self._install())

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
        if self._stopped.is_set():  # never started, or already stopped
            return
        if self._binding.on_loop():
            self._stop_now()
            return
        self._ask_to_stop()
        if not self._stopped.wait(timeout):
            raise TimeoutError(f"Client for {self.bind_address_string} did not stop in time")

    def _ask_to_stop(self) -> None:
        """From another thread: have the loop begin stopping, even if it is still starting."""
        if self._binding.call(self._stop_now):
            return
        # Not bound yet (still starting) or the loop is gone: _install checks the flag
        # after binding, so one of the two sees the request.
        self._stopping = True
        self._binding.call(self._stop_now)

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

    def until_connected(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Return future that resolves (None, as katcp-python's) when the client is connected.

        It fails with ``TimeoutError("Timeout")`` after `timeout` seconds, as katcp-python's.
        """
        return future_of(lambda: self._until_after_running(self._connected, timeout))

    def until_protocol(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Return future that resolves (None) after receipt of katcp protocol info.

        When it resolves, the server's protocol information is in :attr:`protocol_flags`.

        Raises
        ------
        KatcpClientError
            (From the future.) At once, if the server announced a malformed protocol
            version (:attr:`protocol_error` says which); katcp-python resolves then with a
            version of None.
        """
        return future_of(lambda: self._until_protocol(timeout))

    async def _until_protocol(self, timeout: float | None) -> None:
        await self._until_after_running(self._received_protocol_info, timeout)
        if self.protocol_error is not None:
            raise KatcpClientError(self.protocol_error)

    def until_disconnected(self, timeout: float | None = None) -> asyncio.Future[bool]:
        """Return future that resolves when the client is disconnected."""
        return future_of(lambda: self._disconnected.until_set(timeout))

    async def _until_after_running(self, event: StateEvent, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._running.until_set(timeout)
        remaining = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        await event.until_set(remaining)  # katcp-python's coroutine resolves with None

    def _check_not_loop(self, what: str) -> None:
        if self._binding.on_loop():
            raise RuntimeError(
                f"{what}() called from the client's own ioloop thread would deadlock; "
                f"await the until_*() / future-based equivalent instead"
            )

    def wait_running(self, timeout: float | None = None) -> bool:
        """Wait until the client is running; return whether it is.

        Do not call this from the ioloop, use :meth:`until_running`.
        """
        if self._loop_thread is None and self._chosen_loop is None:
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

        Returns True when :attr:`protocol_flags` holds the server's protocol information;
        False after `timeout` seconds, or at once if the server announced a malformed
        protocol version (:attr:`protocol_error` says which, and the client logs it at
        ERROR). Do not call this from the ioloop, use :meth:`until_protocol`.
        """
        self._check_not_loop("wait_protocol")
        return self._received_protocol_info.wait(timeout) and self.protocol_error is None
