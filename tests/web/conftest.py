"""Fixtures for the katcpx-web tests: a small katcpx device server, a hub and a web server,
all on the test's own loop, and a websocket client that waits on messages with timeouts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from katcpx.kattypes import Float, Int, Str, concurrent_reply, request, return_reply
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer
from katcpx.web import DeviceHub, DeviceSpec, WebServer

TIMEOUT = 5.0


class Thermostat(DeviceServer):
    """A device with a few sensors and requests; it counts ``?sensor-sampling`` requests."""

    VERSION_INFO = ("thermostat", 1, 0)
    BUILD_INFO = ("thermostat", 1, 0, "test")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sampling_requests: list[tuple[str, ...]] = []
        self.sampling_counts: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def setup_sensors(self) -> None:
        self.temp = Sensor.float(
            "temp", "Temperature", "degC", default=20.5, initial_status=Sensor.NOMINAL
        )
        self.count = Sensor.integer(
            "count", "A counter", "", default=0, initial_status=Sensor.NOMINAL
        )
        self.mode = Sensor.discrete(
            "mode",
            "Mode",
            "",
            ["idle", "heat", "cool"],
            default="idle",
            initial_status=Sensor.NOMINAL,
        )
        self.label = Sensor.string("label", "A label", "", default="lab")
        for s in (self.temp, self.count, self.mode, self.label):
            self.add_sensor(s)

    async def request_sensor_sampling(self, req, msg):
        """Count, then do as the standard handler does."""
        args = tuple(a.decode() for a in msg.arguments)
        self.sampling_requests.append(args)
        if args:
            self.sampling_counts[args[0]] += 1
        return await super().request_sensor_sampling(req, msg)

    @request(Float())
    @return_reply(Float())
    def request_set_temp(self, req, t):
        """Set the temperature set point.

        Parameters
        ----------
        t : float
            New temperature in degrees Celsius.

        Returns
        -------
        success : {'ok', 'fail'}
        t : float
            The temperature now set.
        """
        if t < -50:
            return ("fail", "too cold")
        self.temp.set_value(t)
        return ("ok", t)

    @request(Str(), Int(default=1))
    @return_reply(Str())
    def request_greet(self, req, name, times):
        """Greet someone, sending informs.

        Parameters
        ----------
        name : str
            Who to greet.
        times : int, optional
            How many informs.
        """
        for _ in range(times):
            req.inform(f"hello {name}")
        return ("ok", name)

    @concurrent_reply
    async def request_stall(self, req, msg):
        """Never answer within a short timeout (other requests go on meanwhile)."""
        await asyncio.sleep(30)
        return req.make_reply("ok")


async def start_device(port: int = 0) -> Thermostat:
    dev = Thermostat("127.0.0.1", port)
    dev.set_concurrency_options(handler_thread=False)
    dev.set_ioloop()
    dev.start()
    await asyncio.wait_for(dev.until_running(), TIMEOUT)
    return dev


async def stop_device(dev: Thermostat) -> None:
    dev.stop()
    await asyncio.wait_for(dev.until_stopped(), TIMEOUT)


@pytest.fixture
async def device() -> AsyncIterator[Thermostat]:
    dev = await start_device()
    yield dev
    if dev.running():
        await stop_device(dev)


async def start_web(
    devices: list[DeviceSpec], strategy: tuple[str, ...] = ("event",), sync: bool = True
) -> WebServer:
    hub = DeviceHub(devices, strategy, request_timeout=2.0, auto_reconnect_delay=0.05)
    server = WebServer(hub, "127.0.0.1", 0)
    await server.start()
    if sync:
        await hub.until_synced(TIMEOUT)
    return server


@pytest.fixture
async def web(device: Thermostat) -> AsyncIterator[WebServer]:
    host, port = device.bind_address
    server = await start_web([DeviceSpec("thermo", host, port)])
    yield server
    await server.stop()


class WS:
    """A websocket client that keeps unread messages and waits for wanted ones."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, server: WebServer) -> WS:
        url = f"ws://127.0.0.1:{server.port}/api/ws"
        conn = await asyncio.wait_for(tornado.websocket.websocket_connect(url), TIMEOUT)
        ws = cls(conn)
        hello = await ws.expect(lambda m: m["type"] == "hello")
        ws.hello = hello
        return ws

    def send(self, obj: Any) -> None:
        self.conn.write_message(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        text = await asyncio.wait_for(self.conn.read_message(), timeout)
        if text is None:
            raise ConnectionError("websocket closed")
        msg = json.loads(text)
        self.seen.append(msg)
        return msg

    async def expect(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The next message satisfying `pred` (others are skipped but kept in ``seen``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no matching message")
            msg = await self.recv(remaining)
            if pred(msg):
                return msg

    async def request(self, obj: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send an action with a fresh id and return the answer (or error) bearing that id."""
        obj = dict(obj)
        obj.setdefault("id", id(obj))
        self.send(obj)
        return await self.expect(lambda m: m.get("id") == obj["id"], timeout)

    async def assert_silent(self, pred: Callable[[dict[str, Any]], bool], within: float) -> None:
        """Fail if a message satisfying `pred` arrives within `within` seconds."""
        try:
            msg = await self.expect(pred, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {msg}")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
async def ws(web: WebServer) -> AsyncIterator[WS]:
    client = await WS.connect(web)
    yield client
    client.close()


async def http(
    server: WebServer, path: str, method: str = "GET", body: Any = None
) -> tuple[int, Any]:
    """Fetch `path`; return the status and the decoded JSON body."""
    client = tornado.httpclient.AsyncHTTPClient()
    kwargs: dict[str, Any] = {"method": method, "raise_error": False, "request_timeout": TIMEOUT}
    if body is not None:
        kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        # The bridge takes state changes only as JSON (a cross-origin form cannot send it).
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif method == "POST":
        kwargs["body"] = b""
    resp = await client.fetch(f"http://127.0.0.1:{server.port}{path}", **kwargs)
    try:
        data = json.loads(resp.body) if resp.body else None
    except ValueError:
        data = resp.body.decode()
    return resp.code, data
