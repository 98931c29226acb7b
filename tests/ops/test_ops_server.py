"""Operations over plain KATCP: generated requests, sessions, sensors and informs."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import Demo, InformClient, T, until_session

from katcpx.errors import FailReplyError, InvalidReply
from katcpx.ops import OperationsMixin, OpStatus, process, task
from katcpx.sensor import Sensor
from katcpx.server import AsyncDeviceServer, DeviceServer


def session_of(reply) -> dict:
    """The session JSON of an ``!<op>-<verb> ok <text> <json>`` reply."""
    return json.loads(reply.arguments[2])


class Recorder:
    """Sensor observer recording every value set (server side, so nothing coalesces)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.statuses: list[int] = []

    def update(self, sensor, reading) -> None:
        self.values.append(reading.value)
        self.statuses.append(reading.status)


def changes(values: list[str]) -> list[str]:
    """`values` without consecutive repeats (a sensor's status may change, not its value)."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


async def wait_done(client, op: str) -> dict:
    reply, _ = await client.call(f"{op}-wait", T, timeout=T + 1)
    session = session_of(reply)
    assert session["status"] == "done"
    return session


async def test_help_lists_generated_requests(client):
    _, informs = await client.call("help")
    names = {m.arguments[0].decode() for m in informs}
    assert {"gate-start", "gate-status", "gate-wait", "gate-abort"} <= names
    assert {"acq-start", "acq-status", "acq-wait", "acq-stop"} <= names
    assert {"cool-down-start", "cool-down-stop", "op-list"} <= names
    # Tasks are aborted, processes stopped: no cross-over requests.
    assert "gate-stop" not in names and "acq-abort" not in names
    _, informs = await client.call("help", "count-start")
    text = informs[0].arguments[1].decode()
    assert "Count to n" in text and "n (int)" in text and "dt (float, default 0.001)" in text


async def test_op_list_describes_operations(client):
    reply, informs = await client.call("op-list")
    assert reply.arguments == [b"ok", b"8"]
    rows = {m.arguments[0].decode(): [a.decode() for a in m.arguments[1:]] for m in informs}
    assert rows["acq"][:2] == ["process", "idle"]
    assert rows["count"][0] == "task"
    params = json.loads(rows["count"][2])
    assert [p["name"] for p in params] == ["n", "dt", "mode"]
    assert params[0]["required"] and not params[1]["required"]
    assert params[2]["default"] == "fast"
    with pytest.raises(FailReplyError, match="Unknown operation"):
        await client.call("op-list", "nope")


async def test_status_of_op_that_never_ran(client, server):
    reply, _ = await client.call("gate-status")
    assert session_of(reply)["status"] == "idle"
    assert session_of(reply)["session_id"] is None
    assert server.get_sensor("op.gate.status").value() == "idle"
    # wait returns at once when there is nothing to wait for
    reply, _ = await client.call("gate-wait", 10, timeout=T)
    assert session_of(reply)["status"] == "idle"


async def test_task_state_transitions(client, server):
    rec = Recorder()
    server.get_sensor("op.gate.status").attach(rec)
    reply, _ = await client.call("gate-start", "a")
    session = session_of(reply)
    assert reply.arguments[1] == b'Started task "gate".'
    assert session["status"] == "starting" and session["params"] == {"label": "a"}
    reply, _ = await client.call("gate-status")
    assert session_of(reply)["status"] == "running"
    assert session_of(reply)["success"] is None
    server.gate_open.set()
    session = await wait_done(client, "gate")
    assert session["success"] is True
    assert session["start_time"] <= session["end_time"]
    assert [m[1] for m in session["messages"]] == [
        'Status is now "starting".',
        'Status is now "running".',
        "Gate a opened.",
        'Status is now "done".',
    ]
    assert rec.values == ["starting", "running", "done"]
    assert server.get_sensor("op.gate.status").read().status == Sensor.NOMINAL
    # The session sensor carries the same session.
    assert json.loads(server.get_sensor("op.gate.session").value())["success"] is True


async def test_messages_are_mass_informed(client, server):
    other = await InformClient.connect(*server.bind_address, timeout=T)
    try:
        reply, _ = await client.call("count-start", 3)
        sid = session_of(reply)["session_id"]
        await wait_done(client, "count")
        for cl in (client, other):
            texts = []
            while not texts or texts[-1] != 'Status is now "done".':
                msg = await asyncio.wait_for(cl.op_messages.get(), T)
                name, msg_sid, ts, text = (a.decode() for a in msg.arguments)
                assert (name, int(msg_sid)) == ("count", sid)
                assert abs(float(ts) - time.time()) < 60
                texts.append(text)
            assert texts == [
                'Status is now "starting".',
                'Status is now "running".',
                "Counted to 3.",
                'Status is now "done".',
            ]
    finally:
        await other.aclose()


async def test_status_sensor_sampled_by_clients(client, server):
    await client.call("sensor-sampling", "op.acq.status", "event")
    first = await asyncio.wait_for(client.sensor_status.get(), T)
    assert first.arguments[-1] == b"idle"
    await client.call("acq-start")
    await client.call("acq-stop")
    await wait_done(client, "acq")
    seen = []
    while not seen or seen[-1] != "done":
        msg = await asyncio.wait_for(client.sensor_status.get(), T)
        seen.append(msg.arguments[-1].decode())
    assert changes(seen) == ["starting", "running", "stopping", "done"]


async def test_process_stop_is_prompt_and_clean(client, server):
    rec = Recorder()
    server.get_sensor("op.acq.status").attach(rec)
    await client.call("acq-start", 100.0)
    # Let it acquire a few samples first.
    await until_session(server, "acq", lambda s: s.data.get("samples", 0) >= 3)
    t0 = time.monotonic()
    reply, _ = await client.call("acq-stop")
    assert session_of(reply)["status"] == "stopping"
    session = await wait_done(client, "acq")
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5, elapsed
    assert session["success"] is True
    assert session["data"]["samples"] >= 3
    assert "Acquisition exited cleanly." in [m[1] for m in session["messages"]]
    assert changes(rec.values) == ["starting", "running", "stopping", "done"]
    # Stopping something that is not running fails clearly.
    with pytest.raises(FailReplyError, match='No session of "acq" is running'):
        await client.call("acq-stop")


async def test_task_abort_is_prompt(client, server):
    await client.call("poll-start")
    reply, _ = await client.call("poll-status")
    assert session_of(reply)["status"] == "running"
    t0 = time.monotonic()
    reply, _ = await client.call("poll-abort")
    assert reply.arguments[1] == b'Requested abort on task "poll".'
    session = await wait_done(client, "poll")
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5, elapsed
    assert session["success"] is False
    texts = [m[1] for m in session["messages"]]
    assert "Abort requested." in texts and any(t.startswith("Aborted after") for t in texts)
    assert texts.index('Status is now "stopping".') < texts.index('Status is now "done".')
    assert server.get_sensor("op.poll.status").read().status == Sensor.ERROR
    with pytest.raises(FailReplyError, match="No session"):
        await client.call("poll-abort")


async def test_failing_task_ends_failed_and_server_keeps_running(client):
    await client.call("explode-start", "kaboom")
    session = await wait_done(client, "explode")
    assert session["success"] is False
    assert "Error: ValueError: kaboom" in [m[1] for m in session["messages"]]
    await client.call("watchdog")
    # and it can run again
    await client.call("explode-start")
    session = await wait_done(client, "explode")
    assert "Error: ValueError: boom" in [m[1] for m in session["messages"]]


async def test_unsuccessful_return_value(client):
    await client.call("refuse-start")
    session = await wait_done(client, "refuse")
    assert session["success"] is False
    assert session["messages"][-2][1] == "Interlock closed."


async def test_second_start_fails(client, server):
    reply, _ = await client.call("gate-start", "one")
    sid = session_of(reply)["session_id"]
    with pytest.raises(FailReplyError, match=rf'"gate" is already running \(session {sid}\)'):
        await client.call("gate-start", "two")
    assert server.calls == [("gate", ("one",))]
    server.gate_open.set()
    session = await wait_done(client, "gate")
    assert session["session_id"] == sid and session["success"] is True
    # Once done it starts again, with a new session id.
    reply, _ = await client.call("gate-start", "three")
    assert session_of(reply)["session_id"] > sid
    await wait_done(client, "gate")


async def test_bad_parameters_fail_naming_them(client):
    with pytest.raises(FailReplyError, match=r"parameter 1 \(n\)"):
        await client.call("count-start", "many")
    with pytest.raises(FailReplyError, match="Too many parameters"):
        await client.call("count-start", 1, 0.1, "fast", 4)
    with pytest.raises(FailReplyError, match="mode"):
        await client.call("count-start", 1, 0.1, "reckless")
    reply, _ = await client.call("count-status")
    assert session_of(reply)["status"] == "idle"  # nothing was started
    reply, _ = await client.call("count-start", 2, 0.0, "gentle")
    assert session_of(reply)["params"] == {"n": 2, "dt": 0.0, "mode": "gentle"}
    session = await wait_done(client, "count")
    assert session["data"] == {"i": 1, "mode": "gentle"}


async def test_tasks_run_alongside_other_requests(client, server):
    await client.call("gate-start")
    # A wait holds no connection hostage: later requests on the same connection answer.
    wait = asyncio.ensure_future(client.call("gate-wait", T, timeout=T + 1))
    for _ in range(3):
        await client.call("watchdog")
    await client.call("sensor-value", "op.gate.status")
    # Another task runs to completion while the first is still running.
    await client.call("count-start", 5)
    assert (await wait_done(client, "count"))["success"] is True
    assert not wait.done()
    assert server.op_session("gate").status is OpStatus.RUNNING
    server.gate_open.set()
    reply, _ = await asyncio.wait_for(wait, T)
    assert session_of(reply)["success"] is True


async def test_wait_timeout_reports_still_running(client, server):
    await client.call("gate-start")
    t0 = time.monotonic()
    reply, _ = await client.call("gate-wait", 0.05, timeout=T)
    assert time.monotonic() - t0 < 1.0
    assert reply.arguments[1].decode().startswith("Timed out after 0.05 s")
    assert session_of(reply)["status"] == "running"
    server.gate_open.set()
    await wait_done(client, "gate")


async def test_reconnecting_client_reads_final_status(server):
    first = await InformClient.connect(*server.bind_address, timeout=T)
    reply, _ = await first.call("gate-start", "r")
    sid = session_of(reply)["session_id"]
    await first.aclose()
    # The operation outlives the connection that started it.
    assert server.op_session("gate").status is OpStatus.RUNNING
    second = await InformClient.connect(*server.bind_address, timeout=T)
    try:
        wait = asyncio.ensure_future(second.call("gate-wait", T, timeout=T + 1))
        reply, _ = await second.call("gate-status")
        assert session_of(reply)["session_id"] == sid
        server.gate_open.set()
        reply, _ = await asyncio.wait_for(wait, T)
        session = session_of(reply)
        assert (session["session_id"], session["success"]) == (sid, True)
    finally:
        await second.aclose()


async def test_reconnect_with_auto_reconnect_client(server):
    cl = await InformClient.connect(*server.bind_address, timeout=T, auto_reconnect=True)
    try:
        await cl.call("gate-start")
        # Drop the connection from the server side; the client reconnects by itself.
        for conn in list(server._connections):
            conn._link.close()
        await asyncio.wait_for(cl.until_disconnected(), T)
        # (until_protocol alone still reports the old connection's protocol information)
        await asyncio.wait_for(cl.until_connected(), T)
        await asyncio.wait_for(cl.until_protocol(), T)
        server.gate_open.set()
        session = await wait_done(cl, "gate")
        assert session["success"] is True
    finally:
        await cl.aclose()


async def test_degraded_process_and_published_data(client, server):
    await client.call("acq-start", 200.0)
    await until_session(server, "acq", lambda s: s.degraded)
    reply, _ = await client.call("acq-status")
    session = session_of(reply)
    assert session["degraded"] is True and session["data"]["samples"] >= 3
    assert server.get_sensor("op.acq.status").read().status == Sensor.WARN
    on_sensor = json.loads(server.get_sensor("op.acq.session").value())
    assert on_sensor["degraded"] is True
    await client.call("acq-stop")
    await wait_done(client, "acq")


async def test_stop_timeout_cancels_a_stubborn_process(client):
    await client.call("stubborn-start")
    t0 = time.monotonic()
    await client.call("stubborn-stop")
    session = await wait_done(client, "stubborn")
    assert time.monotonic() - t0 < 0.5
    assert session["success"] is False
    assert session["messages"][-2][1] == "Cancelled: did not stop within the stop timeout."


async def test_hyphenated_operation_name(client, server):
    await client.call("cool-down-start")
    assert server.get_sensor("op.cool-down.status").value() in ("starting", "running")
    await client.call("cool-down-stop")
    assert (await wait_done(client, "cool-down"))["success"] is True
    with pytest.raises(InvalidReply):
        await client.call("cool-down-abort")


async def test_server_stop_cancels_running_operations():
    srv = Demo("127.0.0.1", 0)
    srv.set_ioloop()
    srv.start()
    await asyncio.wait_for(srv.until_running(), T)
    srv.start_op("poll")
    srv.start_op("acq")
    await asyncio.wait_for(asyncio.wrap_future(srv.stop()), T)
    runners = [state.runner for state in srv._op_states.values() if state.runner is not None]
    await asyncio.wait_for(asyncio.gather(*runners, return_exceptions=True), T)
    assert srv.op_session("poll").done and srv.op_session("acq").done
    assert srv.op_session("poll").success is False
    # The sessions' last words are said on the stopping server's loop, not dropped.
    texts = [text for _, text in srv.op_session("poll").messages]
    assert texts[-2:] == ["Cancelled (server shutting down).", 'Status is now "done".']


async def test_local_api(server):
    session = server.start_op("count", 2, dt=0.0)
    with pytest.raises(Exception, match="already"):
        server.start_op("count", 1)
    await asyncio.wait_for(session.until_done(), T)
    assert session.success and session.data["i"] == 1
    with pytest.raises(Exception, match="is a task"):
        server.stop_op("count")
    with pytest.raises(Exception, match="is a process"):
        server.abort_op("acq")
    with pytest.raises(Exception, match="Bad parameters"):
        server.start_op("count", nope=1)


async def test_local_api_from_the_handler_thread(client, server):
    reply, _ = await client.call("go", 3)
    session = await wait_done(client, "count")
    assert session["session_id"] == int(reply.arguments[1])
    assert session["params"]["n"] == 3 and session["success"] is True


async def test_abort_before_the_task_first_runs(server):
    session = server.start_op("poll")
    server.abort_op("poll")  # same loop turn: the coroutine never started
    await asyncio.wait_for(session.until_done(), T)
    assert session.success is False
    assert [text for _, text in session.messages][-2:] == ["Aborted.", 'Status is now "done".']


async def test_ops_from_plain_mixins_and_redefinition():
    class CountOps:
        @task
        async def tally(self, session, n: int) -> str:
            """Tally up to n."""
            return f"Tally {n}."

    class Base(OperationsMixin, DeviceServer):
        def setup_sensors(self):
            pass

    class Dev(CountOps, Base):
        @task
        async def count(self, session, text: str) -> str:
            """Redefined in a subclass."""
            return text

    class Sub(Dev):
        @task
        async def tally(self, session, n: int, m: int = 1) -> str:
            """Tally with a step."""
            return f"Tally {n} by {m}."

    assert set(Dev._request_handlers) >= {"tally-start", "tally-abort", "count-start"}
    assert "Tally up to n" in Dev._request_handlers["tally-start"].__doc__
    assert "m (int, default 1)" in Sub._request_handlers["tally-start"].__doc__
    srv = Sub("127.0.0.1", 0)
    srv.set_ioloop()
    srv.start()
    await asyncio.wait_for(srv.until_running(), T)
    cl = await InformClient.connect(*srv.bind_address, timeout=T)
    try:
        await cl.call("tally-start", 3, 2)
        session = await wait_done(cl, "tally")
        assert session["messages"][-2][1] == "Tally 3 by 2."
    finally:
        await cl.aclose()
        await asyncio.wait_for(asyncio.wrap_future(srv.stop()), T)


def test_declaration_errors():
    with pytest.raises(TypeError, match="async def"):

        @task
        def sync_op(self, session):
            pass

    with pytest.raises(TypeError, match="no annotation"):

        @task
        async def untyped(self, session, x):
            pass

    with pytest.raises(TypeError, match="positional"):

        @process
        async def kw(self, session, *, x: int):
            pass

    with pytest.raises(TypeError, match="before the server class"):

        class Wrong(DeviceServer, OperationsMixin):
            def setup_sensors(self):
                pass


async def test_operations_on_an_async_device_server():
    class AsyncDemo(Demo, AsyncDeviceServer):
        """Demo handling requests on the loop (no handler thread)."""

    srv = AsyncDemo("127.0.0.1", 0)
    srv.start()
    await asyncio.wait_for(srv.until_running(), T)
    cl = await InformClient.connect(*srv.bind_address, timeout=T)
    try:
        await cl.call("count-start", 3)
        session = await wait_done(cl, "count")
        assert session["success"] is True and session["data"]["i"] == 2
    finally:
        await cl.aclose()
        await asyncio.wait_for(asyncio.wrap_future(srv.stop()), T)


async def test_driven_by_aiokatcp_client(server):
    aiokatcp = pytest.importorskip("aiokatcp")
    peer = await asyncio.wait_for(aiokatcp.Client.connect(*server.bind_address), T)
    try:
        reply, _ = await asyncio.wait_for(peer.request("count-start", 3, 0.0, "gentle"), T)
        assert reply[0] == b'Started task "count".'
        reply, _ = await asyncio.wait_for(peer.request("count-wait", T), T + 1)
        session = json.loads(reply[1])
        assert session["success"] is True and session["data"] == {"i": 2, "mode": "gentle"}
        with pytest.raises(aiokatcp.FailReply, match="No session"):
            await asyncio.wait_for(peer.request("count-abort"), T)
    finally:
        peer.close()
        await peer.wait_closed()


async def test_messages_and_data_from_worker_threads_reach_the_loop_in_order(caplog):
    """add_message() and publish() from other threads cross through the server's loop
    binding, in order; once the server has stopped they are dropped with a warning."""
    finish = []

    class Threaded(OperationsMixin, DeviceServer):
        VERSION_INFO = ("threaded-ops", 1, 0)

        def setup_sensors(self) -> None:
            pass

        @task
        async def work(self, session) -> None:
            """Report from a worker thread."""

            def worker() -> None:
                for i in range(50):
                    session.add_message(f"step {i}")
                    session.publish(i=i)

            await asyncio.to_thread(worker)
            finish.append(session)

    srv = Threaded("127.0.0.1", 0)
    srv.start(timeout=T)  # its own loop thread: this test's loop is another thread
    try:
        cl = await InformClient.connect(*srv.bind_address, timeout=T)
        try:
            await cl.call("work-start")
            session = await wait_done(cl, "work")
        finally:
            await cl.aclose()
        texts = [text for _, text in session["messages"]]
        steps = [t for t in texts if t.startswith("step ")]
        assert steps == [f"step {i}" for i in range(50)]
        assert session["data"] == {"i": 49}
    finally:
        await asyncio.wait_for(asyncio.wrap_future(srv.stop()), T)
        await asyncio.to_thread(srv.join, T)
    with caplog.at_level("WARNING", logger="katcp.ops"):
        await asyncio.to_thread(finish[0].add_message, "too late")
    assert "dropped: the server has stopped" in caplog.text
    assert finish[0].messages[-1][1] != "too late"
