"""Future and event helpers of katcp-python's ``katcp.core`` on tornado 6.

On tornado 6 a tornado ``Future`` is an :class:`asyncio.Future`, so every helper here returns
asyncio futures bound to the current loop (or the ``ioloop`` given). None of these classes is
thread-safe, as in katcp-python: call them from the loop's thread, except
:meth:`AsyncEvent.wait_with_ioloop` which is meant for other threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from tornado import gen
from tornado.concurrent import chain_future
from tornado.ioloop import IOLoop

__all__ = [
    "AsyncCallbackEvent",
    "AsyncEvent",
    "AsyncState",
    "LatencyTimer",
    "future_timeout_manager",
    "hashable_identity",
    "log_coroutine_exceptions",
    "log_future_exceptions",
    "steal_docstring_from",
    "transform_future",
    "until_any",
    "until_later",
    "until_some",
]

logger = logging.getLogger("katcp.core")


def _resolved(value: Any = True, ioloop: IOLoop | None = None) -> asyncio.Future[Any]:
    future = _new_future(ioloop)
    future.set_result(value)
    return future


def _new_future(ioloop: IOLoop | None) -> asyncio.Future[Any]:
    """A future of ``ioloop``'s asyncio loop (else of the current one).

    An event made in one thread for a loop running in another (katcp-python's
    ``InspectingClientAsync(..., ioloop=loop)``) must wake waiters on *that* loop; a bare
    ``asyncio.Future()`` would bind to the constructing thread's loop and never wake them.
    """
    loop = getattr(ioloop, "asyncio_loop", None)
    return loop.create_future() if loop is not None else asyncio.Future()


def _with_timeout(
    future: asyncio.Future[Any], timeout: float | None, ioloop: IOLoop
) -> asyncio.Future[Any]:
    if not timeout:
        return future
    # with_timeout does not cancel the wrapped future, so an event can still set it later.
    return gen.with_timeout(ioloop.time() + timeout, future)


class AsyncEvent:
    """An event like :class:`threading.Event` whose waiting is a future.

    Parameters
    ----------
    ioloop
        Loop whose clock timeouts use; ``IOLoop.current()`` by default.

    Notes
    -----
    katcp-python's ``katcp.core.AsyncEvent``: :meth:`until_set` returns a future that
    resolves (with True) once the event is set.
    """

    def __init__(self, ioloop: IOLoop | None = None) -> None:
        self._ioloop = ioloop or IOLoop.current()
        self._flag = False
        self._waiter = _new_future(self._ioloop)

    def isSet(self) -> bool:
        """Return whether the event is set."""
        return self._flag

    is_set = isSet

    def set(self) -> None:
        """Set the event and resolve the futures :meth:`until_set` returned."""
        self._flag = True
        # A fresh waiter first: a callback woken below may clear and wait again.
        waiter, self._waiter = self._waiter, _new_future(self._ioloop)
        if not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        """Clear the event."""
        self._flag = False

    def until_set(self, timeout: float | None = None) -> asyncio.Future[Any]:
        """Return a future that resolves when the event is set.

        Parameters
        ----------
        timeout
            Seconds; the future raises ``tornado.util.TimeoutError`` after it. None waits
            forever.
        """
        if self._flag:
            return _resolved(True, self._ioloop)
        return _with_timeout(self._waiter, timeout, self._ioloop)

    def wait_with_ioloop(self, ioloop: IOLoop, timeout: float | None = None) -> bool:
        """Block the calling thread until the event is set; never call it on ``ioloop``.

        Returns
        -------
        bool
            True if the event was set within ``timeout`` seconds, else the flag's value.
        """
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        ioloop.add_callback(lambda: chain_future(self.until_set(), result))
        try:
            result.result(timeout)
            return True
        except concurrent.futures.TimeoutError:
            return self._flag


class AsyncCallbackEvent(AsyncEvent):
    """:class:`AsyncEvent` that calls ``callback(True)`` whenever it is set or cleared.

    katcp-python calls the callback with True on clear as well; katcpx keeps that.
    """

    def __init__(self, callback: Callable[[bool], Any] = lambda x: x) -> None:
        self._callback = callback
        super().__init__()

    def _notify(self) -> None:
        try:
            self._callback(True)
        except Exception:
            logger.exception("Unhandled exception calling event change callback")

    def set(self) -> None:
        super().set()
        self._notify()

    def clear(self) -> None:
        super().clear()
        self._notify()


class AsyncState:
    """A value out of a fixed set of states that can be waited on with futures.

    Parameters
    ----------
    valid_states
        The states, in order; the first is the initial state unless ``initial_state`` is given.
    initial_state
        Initial state.
    ioloop
        Loop whose clock timeouts use.
    """

    def __init__(
        self,
        valid_states: Iterable[Hashable],
        initial_state: Hashable | None = None,
        ioloop: IOLoop | None = None,
    ) -> None:
        self._ioloop = ioloop or IOLoop.current()
        ordered = tuple(valid_states)
        self._valid_states = frozenset(ordered)
        self._state = ordered[0] if initial_state is None else initial_state
        if self._state not in self._valid_states:
            raise ValueError(f"initial state {self._state!r} is not one of {ordered}")
        self._waiters = {state: _new_future(self._ioloop) for state in ordered}

    @property
    def state(self) -> Hashable:
        """The current state."""
        return self._state

    @property
    def valid_states(self) -> frozenset[Hashable]:
        """All the states."""
        return self._valid_states

    def _check(self, state: Hashable) -> None:
        if state not in self._valid_states:
            raise ValueError(f"State must be one of {self._valid_states}, not {state}")

    def set_state(self, state: Hashable) -> None:
        """Set the state, resolving the futures that wait for it.

        Raises
        ------
        ValueError
            If ``state`` is not a valid state.
        """
        self._check(state)
        self._state = state
        waiter, self._waiters[state] = self._waiters[state], _new_future(self._ioloop)
        if not waiter.done():
            waiter.set_result(True)

    def until_state(self, state: Hashable, timeout: float | None = None) -> asyncio.Future[Any]:
        """Return a future that resolves (True) when ``state`` is set.

        Raises
        ------
        ValueError
            If ``state`` is not a valid state.
        """
        self._check(state)
        if state == self._state:
            return _resolved(True, self._ioloop)
        return _with_timeout(self._waiters[state], timeout, self._ioloop)

    def until_state_in(
        self, *states: Hashable, timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Return a future that resolves when any of ``states`` is set."""
        return until_any(*(self.until_state(s, timeout=timeout) for s in states))


class LatencyTimer:
    """Say when a loop that keeps getting already-done futures should yield to the ioloop.

    Parameters
    ----------
    max_loop_latency
        Seconds a coroutine may go without a trip through the loop.
    ioloop
        Loop whose clock is used.
    """

    def __init__(self, max_loop_latency: float, ioloop: IOLoop | None = None) -> None:
        self.max_loop_latency = max_loop_latency
        self.ioloop = ioloop or IOLoop.current()
        self.prev_done = False
        self.done_since = self.ioloop.time()
        self.done = False

    def check_future(self, fut: Any) -> None:
        """Call with each future about to be awaited."""
        done = self.done = fut.done()
        if done and not self.prev_done:
            self.done_since = self.ioloop.time()
        self.prev_done = done

    def time_to_yield(self) -> bool:
        """After :meth:`check_future`: True when it is time to ``yield gen.moment``."""
        return self.done and self.ioloop.time() - self.done_since > self.max_loop_latency


def hashable_identity(obj: Any) -> Hashable:
    """A hashable id that is the same for every bound-method object of one method."""
    if hasattr(obj, "__func__"):
        return (id(obj.__func__), id(obj.__self__))
    if isinstance(obj, (str, bytes)):
        return obj
    return id(obj)


def until_later(delay: float, ioloop: IOLoop | None = None) -> asyncio.Future[Any]:
    """Return a future that resolves (None) after ``delay`` seconds."""
    loop = ioloop or IOLoop.current()
    future: asyncio.Future[Any] = asyncio.Future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    loop.call_later(delay, resolve)
    return future


def until_any(
    *futures: Any, timeout: float | None = None, ioloop: IOLoop | None = None
) -> asyncio.Future[Any]:
    """Return a future resolving like the first of ``futures`` to resolve (value or error)."""
    loop = ioloop or IOLoop.current()
    first: asyncio.Future[Any] = asyncio.Future()
    wrapped = [asyncio.ensure_future(f) if not asyncio.isfuture(f) else f for f in futures]

    def done(resolved: Any) -> None:
        if first.done():
            return
        if resolved.cancelled():
            first.cancel()
        elif resolved.exception() is not None:
            first.set_exception(resolved.exception())
        else:
            first.set_result(resolved.result())
        # Drop this callback from the others so long-lived futures do not pile them up.
        for other in wrapped:
            other.remove_done_callback(done)

    # One already done resolves the result at once (asyncio would run the callback only on
    # the loop's next turn), so until_any(resolved, ...) is done when returned, as
    # katcp-python's is.
    for future in wrapped:
        if future.done():
            done(future)
            return _with_timeout(first, timeout, loop)
    for future in wrapped:
        future.add_done_callback(done)
        if first.done():
            break
    return _with_timeout(first, timeout, loop)


def future_timeout_manager(timeout: float | None = None, ioloop: IOLoop | None = None) -> Any:
    """Return ``maybe_timeout(future)`` applying one timeout across several awaits.

    ``maybe_timeout.remaining()`` gives the seconds left (None without a timeout).
    """
    loop = ioloop or IOLoop.current()
    start = loop.time()

    def remaining() -> float | None:
        return timeout - (loop.time() - start) if timeout else None

    def maybe_timeout(future: Any) -> Any:
        if not timeout:
            return future
        return gen.with_timeout(start + timeout, future)

    maybe_timeout.remaining = remaining  # type: ignore[attr-defined]
    return maybe_timeout


@gen.coroutine
def until_some(*args: Any, **kwargs: Any) -> Any:
    """Resolve once ``done_at_least`` of the futures (positional or keyword) resolve.

    Parameters
    ----------
    *args, **kwargs
        The futures, either all positional or all by keyword.
    done_at_least
        How many must resolve; all of them by default.
    timeout
        Seconds; raises ``tornado.util.TimeoutError`` after it.

    Returns
    -------
    list of (index or key, result)
        In the order they resolved.
    """
    done_at_least = kwargs.pop("done_at_least", None)
    timeout = kwargs.pop("timeout", None)
    if done_at_least is None:
        done_at_least = len(args) + len(kwargs)
    waiter = gen.WaitIterator(*args, **kwargs)
    maybe_timeout = future_timeout_manager(timeout)
    results: list[tuple[Any, Any]] = []
    while not waiter.done() and len(results) < done_at_least:
        result = yield maybe_timeout(waiter.next())
        results.append((waiter.current_index, result))
    return results


def transform_future(transformation: Callable[[Any], Any], future: Any) -> asyncio.Future[Any]:
    """Return a future resolving to ``transformation(result)``, or to ``future``'s error."""
    new: asyncio.Future[Any] = asyncio.Future()

    def done(resolved: Any) -> None:
        if new.done():
            return
        try:
            new.set_result(transformation(resolved.result()))
        except Exception as exc:  # the future's own error, or the transformation's
            new.set_exception(exc)

    if future.done():
        done(future)  # already resolved: resolve at once, as tornado 4 futures did
    else:
        future.add_done_callback(done)
    return new


def log_future_exceptions(
    logger: logging.Logger, future: Any, ignore: tuple[type[BaseException], ...] = ()
) -> None:
    """Log ``future``'s exception on ``logger`` when it fails, unless of a type in ``ignore``."""

    def log_it(resolved: Any) -> None:
        try:
            resolved.result()
        except ignore:
            pass
        except Exception:
            logger.exception("Unhandled exception returned by future")

    future.add_done_callback(log_it)


def log_coroutine_exceptions(coro: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a coroutine method so its failures are logged on ``self._logger``.

    The wrapped method still returns its future; an exception raised while calling it comes
    back as a failed future, as katcp-python's decorator does.
    """

    @functools.wraps(coro)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        future: Any
        try:
            future = coro(self, *args, **kwargs)
            if asyncio.iscoroutine(future):
                future = asyncio.ensure_future(future)
        except Exception as exc:
            future = asyncio.Future()
            future.set_exception(exc)

        def log_it(resolved: Any) -> None:
            try:
                resolved.result()
            except Exception:
                self._logger.exception(f"Unhandled exception calling coroutine {coro!r}")

        future.add_done_callback(log_it)
        return future

    return wrapped


def steal_docstring_from(obj: Any) -> Callable[[Any], Any]:
    """Decorator: give the decorated function ``obj``'s docstring."""

    def deco(fn: Any) -> Any:
        docs = [obj.__doc__]
        if fn.__doc__:
            docs.append(fn.__doc__)
        fn.__doc__ = "\n\n".join(d for d in docs if d)
        return fn

    return deco
