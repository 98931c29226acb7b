"""Client side of operations: OpReply, and the async and blocking accessors."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import time

import pytest
from conftest import Demo, T

from katcpx.client import BlockingClient
from katcpx.message import Message
from katcpx.ops import (
    ERROR,
    OK,
    TIMEOUT,
    AsyncOpAccessor,
    OpReply,
    SyncOpAccessor,
    op_accessor,
    ops_for,
)
from katcpx.resource import KATCPClientResource, threadsafe_resource


@pytest.fixture
def ops(client) -> AsyncOpAccessor:
    acc = ops_for(client)
    assert isinstance(acc, AsyncOpAccessor)
    return acc


def test_opreply_repr_reads_like_ocs():
    now = time.time()
    session = {
        "session_id": 7,
        "op_name": "acq",
        "op_kind": "process",
        "status": "done",
        "success": True,
        "degraded": False,
        "start_time": now - 10.0,
        "end_time": now - 3.5,
        "params": {},
        "data": {"samples": 3},
        "messages": [[now - 10.0, 'Status is now "starting".'], [now - 3.5, "Bye."]],
        "messages_total": 5,
    }
    lines = repr(OpReply(OK, "Session active.", session)).splitlines()
    assert lines[0] == "OpReply: OK : Session active."
    assert lines[1].startswith("  acq[session=7]; status=done without error 3.5 s ago")
    assert lines[1].endswith("took 6.5 s")
    assert lines[2] == "  messages (2 of 5):"
    assert lines[3].endswith(' Status is now "starting".') and lines[3].startswith("    ")
    assert lines[5].startswith("  other keys in .session: op_kind, success, degraded")
    running = dict(session, status="running", end_time=None, success=None, degraded=True)
    text = str(OpReply(TIMEOUT, "Timed out.", running))
    assert "status=running for 10.0 s (degraded)" in text
    failed = dict(session, success=False, start_time=now - 400, end_time=now - 250)
    assert "done with error 4.2 mins ago, took 2.5 mins" in repr(OpReply(OK, "", failed))
    assert repr(OpReply(ERROR, "Unknown request.", {})) == "OpReply: ERROR : Unknown request."


async def test_async_task_start_wait_and_call(ops, server):
    reply = await ops.count.start(n=3)
    assert reply.status is OK and reply.ok
    assert reply.session["status"] == "starting"
    assert reply.msg == 'Started task "count".'
    reply = await ops.count.wait(T)
    assert reply.status is OK and reply.session["success"] is True
    assert reply.msg == 'Operation "count" is not running (SUCCEEDED).'
    # Calling a task directly runs it to the end; keywords may skip defaults in between.
    reply = await ops.count(n=2, mode="gentle")
    assert reply.ok and reply.session["status"] == "done"
    assert reply.session["params"] == {"n": 2, "dt": 0.001, "mode": "gentle"}
    assert reply.session["data"] == {"i": 1, "mode": "gentle"}
    reply = await ops.count(4, 0.0)
    assert reply.session["params"]["n"] == 4


async def test_async_process_start_status_stop(ops):
    reply = await ops.acq.status()
    assert reply.ok and reply.session["status"] == "idle"
    assert "no session yet" in repr(reply)
    await ops.acq.start(rate=200.0)
    reply = await ops.acq()  # a process called directly: its status
    assert reply.session["status"] in ("starting", "running")
    reply = await ops.acq.stop()
    assert reply.ok and reply.msg == 'Requested stop on process "acq".'
    reply = await ops.acq.wait(T)
    assert reply.ok and reply.session["success"] is True
    assert reply.session["status"] == "done"
    assert "done without error" in repr(reply)


async def test_errors_come_back_as_error_replies(ops, server):
    await ops.gate.start(label="busy")
    reply = await ops.gate.start()
    assert reply.status is ERROR
    assert "already running" in reply.msg
    # the session of the running operation is filled in
    assert reply.session["params"] == {"label": "busy"}
    reply = await ops.gate.stop()
    assert reply.status is ERROR and reply.msg == '"gate" is a task: use abort() instead.'
    reply = await ops.gate.wait(0.05)
    assert reply.status is TIMEOUT and reply.session["status"] == "running"
    reply = await ops.gate.abort()
    assert reply.ok
    reply = await ops.gate.wait(T)
    assert reply.ok and reply.session["success"] is False
    reply = await ops.gate.abort()
    assert reply.status is ERROR and "No session" in reply.msg
    reply = await ops.acq.abort()
    assert reply.status is ERROR and "use stop()" in reply.msg
    reply = await ops.explode()
    assert reply.ok and reply.session["success"] is False


async def test_accessor_names_and_parameters(ops):
    infos = await ops.list()
    assert infos["cool-down"].kind == "process"
    assert "cool_down" in dir(ops)
    assert ops.cool_down.name == "cool-down" and ops["cool-down"].name == "cool-down"
    with pytest.raises(TypeError, match="unknown parameter"):
        await ops.count.start(n=1, speed=3)
    with pytest.raises(TypeError, match="missing parameter 'n'"):
        await ops.count.start(dt=0.1)
    with pytest.raises(TypeError, match="multiple values"):
        await ops.count.start(1, n=1)
    with pytest.raises(KeyError):
        await ops.nope()
    reply = await ops.nope.status()
    assert reply.status is ERROR and "Unknown request" in reply.msg
    # It names the operation, the device, and the operations the device has.
    assert ops.device.startswith("127.0.0.1:")
    assert reply.msg.startswith(f"no operation 'nope' on {ops.device}; ")
    assert "its operations: " in reply.msg and "cool_down" in reply.msg
    with pytest.raises(AttributeError):
        ops._private  # noqa: B018


async def test_resource_accessor(server):
    res = KATCPClientResource({"name": "demo", "address": server.bind_address, "controlled": True})
    res.start()
    try:
        await asyncio.wait_for(res.until_synced(), T)
        ops = ops_for(res)
        assert isinstance(ops, AsyncOpAccessor)
        assert isinstance(res.op, AsyncOpAccessor) and res.op is res.op
        reply = await ops.count(n=2)
        assert reply.ok and reply.session["success"] is True
        reply = await res.op.count(n=1)
        assert reply.ok and reply.session["success"] is True
        reply = await ops.gate.abort()
        assert reply.status is ERROR
    finally:
        res.stop()
        await asyncio.wait_for(res.until_stopped(), T)


async def test_wait_without_timeout_repeats_bounded_waits(server, monkeypatch):
    import katcpx.ops._client as ops_client

    monkeypatch.setattr(ops_client, "WAIT_CHUNK", 0.02)
    waits = []
    three_waits = asyncio.Event()
    original = server._op_req_wait

    async def counting_wait(req, name, timeout):
        waits.append(timeout)
        if len(waits) >= 3:
            three_waits.set()
        return await original(req, name, timeout)

    monkeypatch.setattr(server, "_op_req_wait", counting_wait)
    res = KATCPClientResource({"name": "demo", "address": server.bind_address})
    res.start()
    try:
        await asyncio.wait_for(res.until_synced(), T)
        ops = ops_for(res)
        await ops.gate.start()
        waiting = asyncio.ensure_future(ops.gate.wait())
        # Several short waits come and go while the task runs; the call keeps waiting.
        await asyncio.wait_for(three_waits.wait(), T)
        assert not waiting.done() and set(waits) == {0.02}
        server.gate_open.set()
        reply = await asyncio.wait_for(waiting, T)
        assert reply.status is OK and reply.session["success"] is True
    finally:
        res.stop()
        await asyncio.wait_for(res.until_stopped(), T)


@pytest.fixture
def threaded_server():
    """A Demo server running its own loop thread, for blocking (sync) clients."""
    srv = Demo("127.0.0.1", 0)
    srv.start(timeout=T)
    yield srv
    srv.stop().result(T)
    srv.join(T)


def test_sync_accessor_over_blocking_client(threaded_server):
    client = BlockingClient(*threaded_server.bind_address)
    client.start()
    try:
        assert client.wait_protocol(T)
        ops = ops_for(client, sync=True)
        assert isinstance(ops, SyncOpAccessor)
        reply = ops.count(n=3)
        assert reply.ok and reply.session["success"] is True
        assert ops.poll.start().ok
        t0 = time.monotonic()
        assert ops.poll.abort().ok
        reply = ops.poll.wait(T)
        assert time.monotonic() - t0 < 0.5
        assert reply.session["success"] is False
        assert "cool-down" in ops.list()
    finally:
        client.stop()
        client.join(T)


def test_sync_accessor_over_threadsafe_resource(threaded_server):
    spec = {"name": "demo", "address": threaded_server.bind_address, "controlled": True}
    with threadsafe_resource(spec, sync_timeout=T) as res:
        ops = ops_for(res)
        assert isinstance(ops, SyncOpAccessor)
        assert isinstance(res.op, SyncOpAccessor)
        assert res.op.count(n=1).session["success"] is True
        assert ops.acq.start(rate=100.0).ok
        assert ops.acq().session["status"] in ("starting", "running")
        assert ops.acq.stop().ok
        reply = ops.acq.wait(T)
        assert reply.status is OK and reply.session["success"] is True
        reply = ops.gate.start()
        assert reply.ok
        assert ops.gate.wait(0.05).status is TIMEOUT
        threaded_server.ioloop.add_callback(threaded_server.gate_open.set)
        assert ops.gate.wait(T).session["success"] is True


async def test_accessor_over_any_request_caller(client, server):
    """Operations need only ``await caller(name, *args, timeout=)`` -> ``(reply, informs)``:
    here a caller over the compatibility ``future_request``, which never raises."""
    sent: list[str] = []

    async def caller(name, *args, timeout=None):
        sent.append(name)
        return await client.future_request(Message.request(name, *args), timeout)

    acc = op_accessor(caller, device="demo", timeout=T)
    assert isinstance(acc, AsyncOpAccessor)
    reply = await acc.count(n=2)
    assert reply.ok and reply.session["success"] is True
    assert sent[:3] == ["op-list", "count-start", "count-wait"]
    refused = await acc.count.abort()  # not running: the server's fail reply, readable
    assert refused.status is ERROR and "is running" in refused.msg


def test_operations_do_not_import_resources():
    """ops builds on clients only; resources build their accessor on ops (no import cycle),
    so no module of katcpx.ops imports katcpx.resource, not even inside a function."""
    import katcpx.ops

    imported = []
    for path in pathlib.Path(katcpx.ops.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.append((path.name, "." * node.level + (node.module or "")))
            elif isinstance(node, ast.Import):
                imported.extend((path.name, alias.name) for alias in node.names)
    assert imported and not [i for i in imported if "resource" in i[1]]
