"""Futures for the "until ..." methods, whether or not the caller has a running event loop.

katcp-python's ``until_synced()``, ``until_connected()`` and the like return a (tornado)
Future from any thread. katcpx's waits are coroutines on asyncio futures, which need a
running loop. :func:`future_of` runs the wait on the caller's running loop when there is
one (giving an asyncio Future), and otherwise on one shared background loop (giving a
``concurrent.futures.Future``: block on ``.result(timeout)``, ``yield`` it in a tornado
coroutine, or ``asyncio.wrap_future`` it). The waits wake their waiters through
``call_soon_threadsafe``, so they work from any loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

__all__ = ["future_of"]

T = TypeVar("T")

_lock = threading.Lock()
_shared_loop: asyncio.AbstractEventLoop | None = None


def _waiting_loop() -> asyncio.AbstractEventLoop:
    """The shared loop for waits made without a running loop (started on first use)."""
    global _shared_loop
    with _lock:
        if _shared_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="katcpx-waits", daemon=True)
            thread.start()
            _shared_loop = loop
        return _shared_loop


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

        cf = asyncio.run_coroutine_threadsafe(run(), _waiting_loop())
        return cast("asyncio.Future[T]", cf)
    return asyncio.ensure_future(make())
