"""until_synced() and until_not_synced() called where no loop runs return a Future.

katcp-python returns a Future there (tests and scripts call them from plain threads); katcpx
raised RuntimeError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator

import pytest
from tornado.ioloop import IOLoop

from katcpx.resource import KATCPClientResource, KATCPClientResourceContainer

T = 5.0


@pytest.fixture
def side_ioloop() -> Iterator[IOLoop]:
    """A tornado IOLoop running in another thread; the test's own thread has no loop."""
    ready = threading.Event()
    holder: list[IOLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        holder.append(IOLoop.current())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(T)
    yield holder[0]
    holder[0].add_callback(holder[0].asyncio_loop.stop)
    thread.join(T)


def no_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def test_resource_until_synced_and_not_synced_without_a_loop(katcpx_dish, side_ioloop):
    assert no_running_loop()
    res = KATCPClientResource(
        {"name": "dish", "address": katcpx_dish.bind_address, "controlled": True}
    )
    # Before start: it is not synced, so until_not_synced is already done.
    not_synced = res.until_not_synced()
    assert isinstance(not_synced, concurrent.futures.Future)
    assert not_synced.result(T) is True
    synced = res.until_synced()
    assert isinstance(synced, concurrent.futures.Future) and not synced.done()
    res.set_ioloop(side_ioloop)
    res.start()
    try:
        assert synced.result(T) is True
        assert res.state == "synced" and res.synced
        assert res.until_synced(timeout=T).result(T) is True
        later = res.until_not_synced(timeout=T)
        katcpx_dish.stop().result(T)  # the device goes away: the resource unsyncs
        assert later.result(T) is True
    finally:
        res.stop()
        res.until_stopped(T).result(T)


def test_until_synced_timeout_without_a_loop_fails_the_future():
    res = KATCPClientResource({"name": "nobody", "address": ("127.0.0.1", 1)})
    fut = res.until_synced(timeout=0.05)
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        fut.result(T)


def test_container_until_synced_and_not_synced_without_a_loop(katcpx_dish, side_ioloop):
    assert no_running_loop()
    c = KATCPClientResourceContainer(
        {
            "name": "array",
            "clients": {"m001": {"address": katcpx_dish.bind_address, "controlled": True}},
        }
    )
    assert c.until_not_synced().result(T) is None
    synced = c.until_synced(timeout=T)
    assert isinstance(synced, concurrent.futures.Future)
    c.set_ioloop(side_ioloop)
    c.start()
    try:
        synced.result(T)
        assert c.until_all_children_in_state("synced", T).result(T) is None
        assert c.until_any_child_in_state("synced", T).result(T) is True
    finally:
        c.stop()
        for fut in c.until_stopped(T).values():
            fut.result(T)


def test_a_wait_whose_state_holds_already_is_done_when_returned():
    # katcp-python's futures were done at once when the state already held (no loop turn).
    assert no_running_loop()
    res = KATCPClientResource({"name": "nobody", "address": ("127.0.0.1", 1)})
    assert res.until_not_synced().done()
    assert res.until_state("disconnected").done()
    assert not res.until_synced().done()

    async def on_a_loop() -> tuple[bool, bool]:
        return res.until_not_synced().done(), res.until_synced().done()

    assert asyncio.run(on_a_loop()) == (True, False)


def test_container_combines_its_childrens_futures():
    # The container waits on its children's until_synced()/until_not_synced(), whatever
    # futures they give; already resolved ones make its future done when returned.
    c = KATCPClientResourceContainer(
        {
            "name": "array",
            "clients": {name: {"address": ("127.0.0.1", 1)} for name in ("a", "b")},
        }
    )
    assert c.until_not_synced().done() and not c.until_synced().done()
    a, b = (c.children[name] for name in ("a", "b"))
    done: concurrent.futures.Future[None] = concurrent.futures.Future()
    done.set_result(None)
    gates = {name: concurrent.futures.Future() for name in ("a", "b")}
    for child in (a, b):
        child.until_synced = lambda *args, **kw: done
        child.until_not_synced = lambda *args, name=child.name, **kw: gates[name]
    assert c.until_synced().done()
    not_synced = c.until_not_synced(timeout=T)
    assert not not_synced.done()
    gates["b"].set_result(True)  # one child unsyncs: the container is not synced
    assert not_synced.result(T) is None
    assert gates["a"].cancelled()  # the other wait is dropped, not left pending
