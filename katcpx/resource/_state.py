"""A named state with awaitable transitions (katcp-python's ``AsyncState``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from .._anyloop import done_future, future_of
from .._compat import wait_for
from ..crossing import LoopBinding

__all__ = ["StateMachine"]


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(True)


class StateMachine:
    """Holds one of a fixed set of states; futures resolve when a wanted state is reached.

    :meth:`set_state` runs on the owner's loop; a waiter awaiting from another loop (or
    from a thread without one, see :func:`~katcpx._anyloop.future_of`) is woken on its own
    loop, through a :class:`~katcpx.crossing.LoopBinding` made on that loop when it began
    waiting.

    Parameters
    ----------
    states
        The valid state names.
    initial
        The initial state.
    """

    def __init__(self, states: Iterable[str], initial: str) -> None:
        self.states = tuple(states)
        if initial not in self.states:
            raise ValueError(f"unknown state {initial!r}")
        self.state = initial
        self._waiters: list[tuple[frozenset[str], asyncio.Future[bool], LoopBinding]] = []
        # Waiters may be added from other loops' threads while set_state runs.
        self._lock = threading.Lock()

    def set_state(self, state: str) -> None:
        """Change the state and wake the waiters wanting it."""
        if state not in self.states:
            raise ValueError(f"unknown state {state!r}")
        with self._lock:
            self.state = state
            waiters, self._waiters = self._waiters, []
        keep = []
        for wanted, fut, binding in waiters:
            if fut.done():
                continue
            if state in wanted:
                binding.call_here_or_soon(_resolve, fut)
            else:
                keep.append((wanted, fut, binding))
        with self._lock:
            self._waiters = keep + self._waiters

    def until_state(self, state: str, timeout: float | None = None) -> asyncio.Future[bool]:
        """Future resolving with True when the state is `state` (now or later).

        It fails with ``TimeoutError('Timeout')`` after `timeout` seconds, as katcp-python's. Without a running
        loop in the calling thread it is a ``concurrent.futures.Future``.
        """
        return self.until_state_in((state,), timeout)

    def until_state_in(
        self, states: Iterable[str], timeout: float | None = None
    ) -> asyncio.Future[bool]:
        """Future resolving with True when the state is one of `states`."""
        wanted = frozenset(states)
        unknown = wanted - set(self.states)
        if unknown:
            raise ValueError(f"unknown state(s) {sorted(unknown)}")
        if self.state in wanted:  # done when returned, as katcp-python's is
            return done_future(True)
        return future_of(lambda: self._until_in(wanted, timeout))

    def _until_in(self, wanted: frozenset[str], timeout: float | None) -> asyncio.Future[bool]:
        binding = LoopBinding()
        binding.bind()
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self.state in wanted:
                fut.set_result(True)
                return fut
            self._waiters.append((wanted, fut, binding))
        if timeout is None:
            return fut
        return asyncio.ensure_future(wait_for(fut, timeout))
