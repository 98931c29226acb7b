"""katcpx.crossing.LoopBinding: the one cross-thread primitive."""

from __future__ import annotations

import asyncio
import threading

import pytest

from katcpx.crossing import LoopBinding, LoopGone


@pytest.fixture
def bound():
    binding = LoopBinding()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        binding.bind(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    yield binding, thread
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    binding.unbind()
    loop.close()


def test_unbound_binding_drops_calls_and_refuses_waits():
    binding = LoopBinding()
    assert not binding.bound and not binding.on_loop()
    assert binding.call(print) is False
    with pytest.raises(LoopGone):
        binding.call_and_wait(print)


def test_calls_from_a_thread_run_on_the_loop_in_order(bound):
    binding, thread = bound
    seen: list[tuple[int, int]] = []
    done = threading.Event()
    for i in range(1000):
        assert binding.call(lambda i=i: seen.append((i, threading.get_ident())))
    binding.call(done.set)
    assert done.wait(5)
    assert [i for i, _ in seen] == list(range(1000))
    assert {t for _, t in seen} == {thread.ident}
    assert not binding.on_loop()


def test_call_and_wait_returns_the_result_and_raises_the_error(bound):
    binding, thread = bound
    assert binding.call_and_wait(lambda: (binding.on_loop(), threading.get_ident())) == (
        True,
        thread.ident,
    )
    with pytest.raises(ZeroDivisionError):
        binding.call_and_wait(lambda: 1 / 0, timeout=5)
    block = threading.Event()
    assert binding.call(lambda: block.wait(5))
    with pytest.raises(TimeoutError):
        binding.call_and_wait(lambda: None, timeout=0.05)
    block.set()


def test_a_failing_call_does_not_lose_the_rest(bound):
    binding, _ = bound
    done = threading.Event()
    errors: list[dict] = []
    binding.loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))
    binding.call(lambda: 1 / 0)
    binding.call(done.set)
    assert done.wait(5)
    assert isinstance(errors[0]["exception"], ZeroDivisionError)


def test_run_coroutine(bound):
    binding, _ = bound

    async def answer() -> int:
        return 42

    assert binding.run_coroutine(answer()).result(5) == 42
    binding.unbind()
    coro = answer()
    with pytest.raises(LoopGone):
        binding.run_coroutine(coro)
