"""Futures for the "until ..." methods, whether or not the caller has a running event loop.

katcp-python's ``until_synced()``, ``until_connected()`` and the like return a (tornado)
Future from any thread. katcpx's waits are coroutines on asyncio futures, which need a
running loop. :func:`future_of` runs the wait on the caller's running loop when there is
one (giving an asyncio Future), and otherwise on one shared background loop (giving a
``concurrent.futures.Future``: block on ``.result(timeout)``, ``yield`` it in a tornado
coroutine, or ``asyncio.wrap_future`` it), reached through its
:class:`~katcpx.crossing.LoopBinding`. The waits wake their waiters on whatever loop they
await from, so they work from any loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from ._compat import wait_for
from .crossing import LoopBinding

__all__ = ["done_future", "future_of", "until_futures"]

T = TypeVar("T")

_lock = threading.Lock()
_waits = LoopBinding()


def _waiting_loop() -> LoopBinding:
    """The binding of the shared loop for waits made without a running loop (started on
    first use, in a daemon thread of its own)."""
    with _lock:
        if not _waits.bound:
            loop = asyncio.new_event_loop()
            bound = threading.Event()

            def run() -> None:
                _waits.bind(loop)
                bound.set()
                loop.run_forever()

            threading.Thread(target=run, name="katcpx-waits", daemon=True).start()
            bound.wait()
        return _waits


def future_of(make: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
    """Return a future of ``await make()``, with or without a running loop in this thread.

    Parameters
    ----------
    make
        Called once, on the loop that runs the wait, to make the awaitable (so coroutines
        and futures are created on that loop).

    Returns
    -------
    asyncio.Future or concurrent.futures.Future
        An asyncio Future of the caller's running loop (``make()`` itself when it returns
        one), else a ``concurrent.futures.Future``. Typed as the asyncio Future, which is
        what code that awaits it gets.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def run() -> Any:
            return await make()

        cf = _waiting_loop().run_coroutine(run())
        return cast("asyncio.Future[T]", cf)
    return asyncio.ensure_future(make())


def done_future(value: T) -> asyncio.Future[T]:
    """Return a future already resolved with `value`, of the type :func:`future_of` gives.

    For a wait whose condition already holds, so the future is ``done()`` when returned
    (katcp-python's were), where :func:`future_of` would resolve it a loop turn later.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        cf: concurrent.futures.Future[T] = concurrent.futures.Future()
        cf.set_result(value)
        return cast("asyncio.Future[T]", cf)
    fut: asyncio.Future[T] = loop.create_future()
    fut.set_result(value)
    return fut


def until_futures(
    futures: Iterable[Any], need_all: bool, timeout: float | None = None, value: Any = None
) -> asyncio.Future[Any]:
    """Future resolving (with `value`) once all (`need_all`) or any of `futures` resolved.

    Parameters
    ----------
    futures
        asyncio futures of any loop, or ``concurrent.futures.Future``.
    need_all
        Wait for all of them (else for the first).
    timeout
        Seconds; the result fails with ``asyncio.TimeoutError`` after that.
    value
        What the result resolves with (katcp-python's ``until_any`` gave the first
        future's result, True for state waits; its coroutines gave None).

    Returns
    -------
    asyncio.Future or concurrent.futures.Future
        As :func:`future_of`. The first error (or cancellation) among `futures` is its
        error. When the condition holds already it is done when returned, as
        katcp-python's combined tornado 4 futures were. Once it is settled (or times out)
        the futures still pending are cancelled.
    """
    pending = list(futures)
    # Reentrant: settling cancels the others, whose callbacks come back into settle().
    lock = threading.RLock()
    outcome: concurrent.futures.Future[None] = concurrent.futures.Future()
    left = [len(pending)]

    def settle(fut: Any) -> None:
        with lock:
            if outcome.done():
                return
            if fut.cancelled():
                outcome.set_exception(asyncio.CancelledError())
            elif fut.exception() is not None:
                outcome.set_exception(fut.exception())
            else:
                left[0] -= 1
                if need_all and left[0] > 0:
                    return
                outcome.set_result(None)

    def cancel_pending(_: Any) -> None:
        for fut in pending:
            if fut.done():
                continue
            if isinstance(fut, asyncio.Future):
                # The callback may run in any thread, and the future's loop is the caller's
                # (no binding of ours): asyncio's own hand-over is the way onto it.
                try:
                    fut.get_loop().call_soon_threadsafe(fut.cancel)
                except RuntimeError:  # its loop is closed
                    pass
            else:
                fut.cancel()

    if not pending:
        outcome.set_result(None)
    for fut in pending:
        if fut.done():
            settle(fut)
    outcome.add_done_callback(cancel_pending)
    if outcome.done() and outcome.exception() is None:
        return done_future(value)
    for fut in pending:
        if not fut.done():
            fut.add_done_callback(settle)

    async def wait() -> Any:
        await wait_for(asyncio.wrap_future(outcome), timeout)
        return value

    return future_of(wait)
