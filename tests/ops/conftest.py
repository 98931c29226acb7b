"""A demo device with small operations, served on 127.0.0.1, and clients for it."""

from __future__ import annotations

import asyncio
import enum
import time

import pytest

from katcpx.client import AsyncClient
from katcpx.message import Message
from katcpx.ops import OperationsMixin, OpSession, process, task
from katcpx.server import DeviceServer

T = 5.0  # upper bound for every wait; tests finish far sooner


class Mode(enum.Enum):
    FAST = "fast"
    GENTLE = "gentle"


class Demo(OperationsMixin, DeviceServer):
    """Demo operations: each exercises one part of the session machinery."""

    VERSION_INFO = ("ops-demo", 1, 0)

    def setup_sensors(self) -> None:
        # Set per test to hold a task in 'running' until the test releases it.
        self.gate_open = asyncio.Event()
        self.calls: list[tuple[str, tuple]] = []

    def request_go(self, req, msg):
        """Start count from a plain handler (it runs in the server's handler thread)."""
        session = self.start_op("count", int(msg.arguments[0]))
        return req.make_reply("ok", session.session_id)

    @task
    async def gate(self, session: OpSession, label: str = "x") -> str:
        """Wait until the test opens the gate."""
        self.calls.append(("gate", (label,)))
        await self.gate_open.wait()
        return f"Gate {label} opened."

    @task
    async def count(self, session: OpSession, n: int, dt: float = 0.001, mode: Mode = Mode.FAST):
        """Count to n, publishing progress."""
        for i in range(n):
            session.publish(i=i, mode=mode.value)
            await asyncio.sleep(dt)
        return True, f"Counted to {n}."

    @task
    async def poll(self, session: OpSession) -> None:
        """Poll forever (every 10 ms) until aborted."""
        while True:
            await asyncio.sleep(0.01)

    @task
    async def explode(self, session: OpSession, text: str = "boom") -> None:
        """Raise an error after starting."""
        await asyncio.sleep(0)
        raise ValueError(text)

    @task
    async def refuse(self, session: OpSession) -> tuple[bool, str]:
        """End unsuccessfully without raising."""
        return False, "Interlock closed."

    @process
    async def acq(self, session: OpSession, rate: float = 100.0) -> str:
        """Acquire until stopped, polling every 1/rate s."""
        n = 0
        while not await session.sleep(1.0 / rate):
            n += 1
            session.publish(samples=n, t=time.time())
            session.degraded = n >= 3
        return "Acquisition exited cleanly."

    @process(stop_timeout=0.1)
    async def stubborn(self, session: OpSession) -> None:
        """Ignore stop requests (cancelled by the stop timeout)."""
        while True:
            await asyncio.sleep(0.01)

    @process
    async def cool_down(self, session: OpSession) -> None:
        """A hyphenated name: requests are ?cool-down-start and so on."""
        await session.until_stop_requested()


async def until_session(server, name: str, pred, timeout: float = T) -> OpSession:
    """Wait until ``pred(session)`` holds, woken by every change of the session.

    Every session change updates the ``op.<name>.session`` sensor, whose observers run on
    the server's loop (this test's loop), so an observer setting an event is enough.
    """
    sensor = server.get_sensor(f"op.{name}.session")
    changed = asyncio.Event()

    class Observer:
        def update(self, sensor, reading) -> None:
            changed.set()

    observer = Observer()
    sensor.attach(observer)
    try:
        while not pred(server.op_session(name)):
            changed.clear()
            await asyncio.wait_for(changed.wait(), timeout)
    finally:
        sensor.detach(observer)
    return server.op_session(name)


class InformClient(AsyncClient):
    """Collects ``#op-message`` and ``#sensor-status`` informs in queues."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.op_messages: asyncio.Queue[Message] = asyncio.Queue()
        self.sensor_status: asyncio.Queue[Message] = asyncio.Queue()

    def inform_op_message(self, msg: Message) -> None:
        """Keep an operation message."""
        self.op_messages.put_nowait(msg)

    def inform_sensor_status(self, msg: Message) -> None:
        """Keep a sensor update."""
        self.sensor_status.put_nowait(msg)


@pytest.fixture
async def server():
    srv = Demo("127.0.0.1", 0)
    srv.set_ioloop()
    srv.start()
    await asyncio.wait_for(srv.until_running(), T)
    yield srv
    await asyncio.wait_for(asyncio.wrap_future(srv.stop()), T)


@pytest.fixture
async def client(server):
    cl = await InformClient.connect(*server.bind_address, timeout=T)
    yield cl
    await cl.aclose()
