"""Sensor sampling on the server loop, and the batched timer scheduler."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from katcpx.flags import ProtocolFlags
from katcpx.message import Message
from katcpx.sensor import Sensor
from katcpx.server import TimerScheduler

from .helpers import TIMEOUT, ExampleServer, connect, running


@pytest.fixture(params=["async", "handler-thread"])
def server(request):
    srv = ExampleServer("127.0.0.1", 0)
    if request.param == "async":
        srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv):
        yield srv


def test_query_and_event_strategy(server):
    with connect(server) as c:
        assert c.request("sensor-sampling", "an.int")[0].arguments == [b"ok", b"an.int", b"none"]
        c.send(Message.request("sensor-sampling", "an.int", "event", mid=3))
        first = c.read()
        # The first #sensor-status goes out before the reply.
        assert bytes(first) == b"#sensor-status 1000.0 1 an.int nominal 3\n"
        assert bytes(c.read()) == b"!sensor-sampling[3] ok an.int event\n"
        assert c.request("sensor-sampling", "an.int")[0].arguments == [b"ok", b"an.int", b"event"]
        # Updates from another thread are marshalled to the loop.
        t = threading.Thread(
            target=server.int_sensor.set_value, args=(42,), kwargs={"timestamp": 1001.0}
        )
        t.start()
        t.join()
        assert (
            bytes(c.wait_inform("sensor-status")) == b"#sensor-status 1001.0 1 an.int nominal 42\n"
        )
        assert c.request("sensor-sampling", "an.int", "none")[0].arguments == [
            b"ok",
            b"an.int",
            b"none",
        ]
        server.int_sensor.set_value(43)
        reply, _ = c.request("watchdog")
        assert all(m.name != "sensor-status" for m in c.backlog)


def test_period_strategy(server):
    with connect(server) as c:
        reply, informs = c.request("sensor-sampling", "a.float", "period", "0.02")
        assert reply.arguments == [b"ok", b"a.float", b"period", b"0.02"]
        start = time.monotonic()
        for _ in range(4):
            assert c.wait_inform("sensor-status").arguments[2] == b"a.float"
        assert time.monotonic() - start >= 0.05
        assert c.request("sensor-sampling-clear")[0].arguments == [b"ok"]
        c.backlog.clear()
        # After the reply, no more period informs arrive (drain whatever was in flight).
        c.request("watchdog")
        with pytest.raises(TimeoutError):
            while True:
                msg = c.read(timeout=0.1)
                assert msg.name == "sensor-status"


def test_bad_strategy_requests(server):
    with connect(server) as c:
        assert c.request("sensor-sampling")[0].arguments[0] == b"fail"
        assert c.request("sensor-sampling", "nope", "event")[0].arguments[0] == b"fail"
        reply, _ = c.request("sensor-sampling", "an.int", "sometimes")
        # katcp-python's exact text (its users' suites compare it); katcp-cmd names the
        # strategies that exist.
        assert reply.arguments == [b"fail", b"Unknown strategy name: sometimes."]
        reply, _ = c.request("sensor-sampling", "an.int", "period")
        assert reply.arguments[0] == b"fail"
        reply, _ = c.request("sensor-sampling", "a.string", "differential", "1")
        assert reply.arguments[0] == b"fail"


class ClearCounting(ExampleServer):
    """Counts calls of the public clear_strategies() hook (katcp-python's override point)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cleared = []

    def clear_strategies(self, client_conn, remove_client=False):
        self.cleared.append(remove_client)
        super().clear_strategies(client_conn, remove_client)


def test_sampling_clear_goes_through_clear_strategies():
    srv = ClearCounting("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        c.request("sensor-sampling", "an.int", "event")
        assert c.request("sensor-sampling-clear")[0].arguments == [b"ok"]
        assert srv.cleared == [False]
        assert c.request("sensor-sampling", "an.int")[0].arguments == [b"ok", b"an.int", b"none"]


def test_strategies_dropped_on_disconnect(server):
    c = connect(server)
    c.request("sensor-sampling", "an.int", "event")
    assert server._sampling.by_sensor
    c.close()
    deadline = time.monotonic() + TIMEOUT
    while server._sampling.by_client and time.monotonic() < deadline:
        server.sync_with_ioloop(TIMEOUT)
    assert not server._sampling.by_client
    assert not server._sampling.by_sensor
    assert not server.int_sensor._observers


def test_remove_sensor_detaches_all_strategies(server):
    with connect(server) as a, connect(server) as b:
        a.request("sensor-sampling", "an.int", "event")
        b.request("sensor-sampling", "an.int", "period", "0.05")
        server.remove_sensor("an.int")
        server.sync_with_ioloop(TIMEOUT)
        assert server.int_sensor not in server._sampling.by_sensor
        assert not server.int_sensor._observers
        assert all(server.int_sensor not in s for s in server._sampling.by_client.values())


def test_status_line_cached_and_shared(server):
    with connect(server) as a, connect(server) as b:
        a.request("sensor-sampling", "an.int", "event")
        b.request("sensor-sampling", "an.int", "event")
        a.backlog.clear()
        b.backlog.clear()
        calls = []
        real = server.int_sensor.format_reading

        def counting(reading, major=5):
            calls.append(reading)
            return real(reading, major)

        server.int_sensor.format_reading = counting
        server.int_sensor.set_value(77)
        assert a.wait_inform("sensor-status").arguments[-1] == b"77"
        assert b.wait_inform("sensor-status").arguments[-1] == b"77"
        assert len(calls) == 1
        # One cache serves #sensor-value too: the reading is not formatted again.
        reply, informs = a.request("sensor-value", "an.int")
        assert reply.arguments == [b"ok", b"1"]
        assert informs[0].arguments[2:] == [b"an.int", b"nominal", b"77"]
        assert len(calls) == 1


def test_bulk_sensor_sampling():
    class Bulk(ExampleServer):
        PROTOCOL_INFO = ProtocolFlags(5, 1, "BIM")

    srv = Bulk("127.0.0.1", 0)
    srv.set_concurrency_options(False, False)
    with running(srv), connect(srv) as c:
        reply, _ = c.request("sensor-sampling", "an.int,a.float")
        assert reply.arguments == [b"fail", b"Cannot query multiple sensors."]
        # All or nothing: one unknown name changes nothing.
        reply, _ = c.request("sensor-sampling", "an.int,nope", "event")
        assert reply.arguments[0] == b"fail"
        assert not srv._sampling.by_client.get(next(iter(srv._connections)))
        c.send(Message.request("sensor-sampling", "an.int,a.float", "event", mid=9))
        got = [c.read() for _ in range(3)]
        assert [m.name for m in got] == ["sensor-status", "sensor-status", "sensor-sampling"]
        assert {m.arguments[2] for m in got[:2]} == {b"an.int", b"a.float"}
        assert got[2].arguments == [b"ok", b"an.int,a.float", b"event"]
        # A strategy one sensor can't take fails the whole request.
        reply, _ = c.request("sensor-sampling", "an.int,a.string", "differential", "1")
        assert reply.arguments[0] == b"fail"
        reply, _ = c.request("sensor-sampling", "an.int")
        assert reply.arguments == [b"ok", b"an.int", b"event"]


def test_many_period_strategies_use_one_loop_timer():
    srv = ExampleServer("127.0.0.1", 0)
    srv.set_concurrency_options(False, False)
    with running(srv):
        clients = [connect(srv) for _ in range(4)]
        try:
            for c in clients:
                for name in ("an.int", "a.float", "a.string"):
                    c.request("sensor-sampling", name, "period", "0.5")
            sampling = srv._sampling
            assert len(sampling.scheduler) == 12
            assert sampling.scheduler.loop_timers == 1
            loop_timers = srv.binding.loop._scheduled  # asyncio's own timer heap
            ours = [
                h
                for h in loop_timers
                if not h.cancelled()
                and getattr(h._callback, "__self__", None) is sampling.scheduler
            ]
            assert len(ours) == 1
        finally:
            for c in clients:
                c.close()


def test_timer_scheduler_batches_and_cancels():
    async def main():
        loop = asyncio.get_running_loop()
        sched = TimerScheduler(loop)
        fired: list[int] = []
        done = asyncio.Event()
        now = sched.clock()
        handles = [
            sched.call_at(now + 0.01 + i * 1e-5, lambda i=i: fired.append(i)) for i in range(1000)
        ]
        for h in handles[::2]:
            h.cancel()
        sched.call_at(now + 0.02, done.set)
        assert sched.loop_timers == 1
        await asyncio.wait_for(done.wait(), TIMEOUT)
        assert fired == list(range(1, 1000, 2))
        assert len(sched) == 0
        # A cancelled head does not fire; an earlier timer re-arms the loop timer.
        late = sched.call_at(sched.clock() + 10, lambda: fired.append(-1))
        early_done = asyncio.Event()
        sched.call_at(sched.clock() + 0.001, early_done.set)
        await asyncio.wait_for(early_done.wait(), TIMEOUT)
        late.cancel()
        sched.close()
        assert -1 not in fired

    asyncio.run(main())


def test_thousands_of_period_strategies_share_one_timer():
    from katcpx.crossing import LoopBinding
    from katcpx.server import SamplingManager

    class Client:
        """A sampling client: the manager sends it #sensor-status lines."""

        def __init__(self) -> None:
            self.count = 0

        def send_bytes(self, data: bytes) -> None:
            assert data.startswith(b"#sensor-status ") and data.endswith(b"\n")
            self.count += 1
            if self.count == 30:  # initial value + two periods, for 10 sensors
                reached.add(self)
                if len(reached) == len(clients):
                    all_done.set()

    async def main():
        loop = asyncio.get_running_loop()
        binding = LoopBinding()
        binding.bind(loop)
        manager = SamplingManager(binding)
        sensors = [Sensor(Sensor.INTEGER, f"s{i}", "", "") for i in range(10)]
        start = loop.time()
        for client in clients:
            manager.set_strategies(client, sensors, "period", [b"0.05"])
        assert len(manager.scheduler) == 3000
        ours = [h for h in loop._scheduled if not h.cancelled()]
        assert len(ours) == 1  # one loop timer for 3000 strategies
        await asyncio.wait_for(all_done.wait(), TIMEOUT)
        assert loop.time() - start >= 0.1 - 0.002  # two periods really passed
        for client in clients[:150]:
            manager.clear_client(client)
        assert len(manager.scheduler) == 1500
        manager.close()
        assert len(manager.scheduler) == 0 and manager.scheduler.loop_timers == 0

    reached: set[Client] = set()
    all_done = asyncio.Event()
    clients = [Client() for _ in range(300)]
    asyncio.run(main())


def test_a_sensor_updates_path_touches_six_files():
    """set_value -> observer -> strategy -> manager -> formatter -> connection -> transport.

    Traced on the loop's thread (a sensor set elsewhere reaches the loop through the
    server's LoopBinding first). docs/design.md lists the same files.
    """
    import os
    import sys

    import katcpx

    root = os.path.dirname(katcpx.__file__)
    srv = ExampleServer("127.0.0.1", 0)
    srv.set_concurrency_options(thread_safe=False, handler_thread=False)
    with running(srv), connect(srv) as c:
        c.request("sensor-sampling", "an.int", "event")
        c.backlog.clear()
        touched: set[str] = set()
        done = threading.Event()

        def profile(frame, event, arg):
            if event == "call":
                path = frame.f_code.co_filename
                if path.startswith(root):
                    touched.add(os.path.relpath(path, root))

        def update_on_loop():
            sys.setprofile(profile)
            try:
                srv.int_sensor.set_value(55, timestamp=1002.0)
            finally:
                sys.setprofile(None)
                done.set()

        srv.ioloop.add_callback(update_on_loop)
        assert done.wait(TIMEOUT)
        inform = c.wait_inform("sensor-status")
        assert inform.arguments == [b"1002.0", b"1", b"an.int", b"nominal", b"55"]
        assert touched == {
            "sensor.py",
            "server/sampling_loop.py",
            "_sampling_core.py",
            os.path.join("codec", "_values.py"),
            "server/_connection.py",
            "transport.py",
        }, touched
