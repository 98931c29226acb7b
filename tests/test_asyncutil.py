"""katcp-python's future helpers (katcpx.core / katcpx.asyncutil) on tornado 6."""

from __future__ import annotations

import asyncio

import pytest
from tornado.util import TimeoutError as TornadoTimeout

from katcpx.core import AsyncEvent, AsyncState, until_any, until_some
from katcpx.resource_client import transform_future


async def test_async_event_until_set_and_timeout():
    event = AsyncEvent()
    waiter = event.until_set()
    assert not waiter.done()
    event.set()
    assert await waiter is True
    assert event.is_set() and (await event.until_set()) is True
    event.clear()
    with pytest.raises(TornadoTimeout):
        await event.until_set(timeout=0.01)


async def test_async_state_waits_for_states():
    state = AsyncState(["idle", "busy", "done"])
    assert state.state == "idle"
    busy = state.until_state("busy")
    any_end = state.until_state_in("done", "busy")
    state.set_state("busy")
    assert await busy is True and await any_end is True
    with pytest.raises(ValueError, match="State must be one of"):
        state.set_state("nonsense")


async def test_until_any_and_until_some():
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    any_of = until_any(first, second)
    second.set_result("b")
    assert await any_of == "b"
    futures = [loop.create_future() for _ in range(3)]
    some = until_some(*futures, done_at_least=2)
    futures[2].set_result("c")
    futures[0].set_result("a")
    assert sorted(await some) == [(0, "a"), (2, "c")]


async def test_until_any_of_a_resolved_future_is_done_at_once():
    # katcp-python's until_any(state.until_state(current), ...) was done when returned.
    loop = asyncio.get_running_loop()
    pending, resolved = loop.create_future(), loop.create_future()
    resolved.set_result("now")
    any_of = until_any(pending, resolved)
    assert any_of.done() and any_of.result() == "now"
    state = AsyncState(("a", "b"), "a")
    assert until_any(state.until_state("b"), state.until_state("a")).done()


async def test_transform_future_passes_results_and_errors():
    loop = asyncio.get_running_loop()
    source = loop.create_future()
    doubled = transform_future(lambda x: 2 * x, source)
    source.set_result(21)
    assert await doubled == 42
    failing = loop.create_future()
    failing.set_exception(KeyError("gone"))
    with pytest.raises(KeyError):
        await transform_future(lambda x: x, failing)
