"""LoopHandoff: calls from other threads run on the loop in order, one wake-up per batch."""

from __future__ import annotations

import asyncio
import threading

from katcpx.server.handoff import LoopHandoff


async def test_calls_from_a_thread_run_in_order_with_one_wakeup():
    loop = asyncio.get_running_loop()
    handoff = LoopHandoff(loop)
    wakeups = []
    real = loop.call_soon_threadsafe

    def counting(callback, *args):
        wakeups.append(callback)
        return real(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    seen: list[int] = []
    done = asyncio.Event()

    def producer():
        for i in range(500):
            handoff.call(seen.append, i)
        handoff.call(loop.call_soon, done.set)

    try:
        thread = threading.Thread(target=producer)
        thread.start()  # the loop is busy here until we await: every call joins one batch
        thread.join(5)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        del loop.call_soon_threadsafe
    assert seen == list(range(500))
    assert len(wakeups) == 1


async def test_a_failing_call_is_reported_and_the_rest_still_run():
    loop = asyncio.get_running_loop()
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        handoff = LoopHandoff(loop)
        seen: list[str] = []
        done = asyncio.Event()
        handoff.call(seen.append, "before")
        handoff.call(lambda: 1 / 0)
        handoff.call(seen.append, "after")
        handoff.call(done.set)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        loop.set_exception_handler(None)
    assert seen == ["before", "after"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], ZeroDivisionError)


def test_calls_after_the_loop_closed_are_dropped():
    loop = asyncio.new_event_loop()
    loop.close()
    handoff = LoopHandoff(loop)
    handoff.call(print, "never")  # must not raise
    handoff.call(print, "never")  # and must try again, not wait for a wake-up that can't come
    assert not handoff._calls and not handoff._wakeup_scheduled
