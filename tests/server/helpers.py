"""Test helpers for the server tests: a blocking KATCP client and server context managers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, TypeVar

from katcpx.message import Message
from katcpx.parser import StreamParser
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer, DeviceServerBase

T = TypeVar("T", bound=DeviceServerBase)

TIMEOUT = 5.0


class Client:
    """Blocking KATCP client on a plain socket that parses with katcpx's StreamParser.

    Messages read while waiting for something else are kept in ``backlog``.
    """

    def __init__(self, address: tuple[str, int], timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address[:2], timeout=timeout)
        self.timeout = timeout
        self.parser = StreamParser()
        self.queue: deque[Message] = deque()
        self.backlog: list[Message] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg: Message) -> None:
        self.sock.sendall(bytes(msg))

    def read(self, timeout: float | None = None) -> Message:
        """Next message; TimeoutError or ConnectionError when none comes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no message") from None
            if not data:
                self.closed = True
                raise ConnectionError("server closed the connection")
            for item in self.parser.feed(data):
                assert isinstance(item, Message), item
                self.queue.append(item)
        return self.queue.popleft()

    def wait_inform(self, name: str, timeout: float | None = None) -> Message:
        for i, msg in enumerate(self.backlog):
            if msg.mtype == Message.INFORM and msg.name == name:
                return self.backlog.pop(i)
        while True:
            msg = self.read(timeout)
            if msg.mtype == Message.INFORM and msg.name == name:
                return msg
            self.backlog.append(msg)

    def request(
        self, name: str, *args: Any, mid: int | None = None, timeout: float | None = None
    ) -> tuple[Message, list[Message]]:
        """Send ``?name args`` and return its reply and informs."""
        req = Message.request(name, *args, mid=mid)
        self.send(req)
        informs = []
        while True:
            msg = self.read(timeout)
            if msg.name == name and msg.mid == req.mid:
                if msg.mtype == Message.REPLY:
                    return msg, informs
                if msg.mtype == Message.INFORM:
                    informs.append(msg)
                    continue
            self.backlog.append(msg)

    def read_until_closed(self, timeout: float | None = None) -> list[Message]:
        out = []
        with contextlib.suppress(ConnectionError):
            while True:
                out.append(self.read(timeout))
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(server: DeviceServerBase, skip_greeting: bool = True) -> Client:
    client = Client(server.bind_address)
    if skip_greeting and isinstance(server, DeviceServer):
        if server.PROTOCOL_INFO.major >= 5:
            for _ in range(3):
                msg = client.read()
                assert msg.name == "version-connect", msg
        else:
            assert client.read().name == "version"
            assert client.read().name == "build-state"
    return client


@contextlib.contextmanager
def running(server: T) -> Iterator[T]:
    """Start `server` on its managed thread, stop and join it afterwards."""
    server.start(timeout=TIMEOUT)
    assert server.running()
    try:
        yield server
    finally:
        server.stop().result(TIMEOUT)
        server.join(TIMEOUT)


class ExampleServer(DeviceServer):
    """A DeviceServer with a few sensors for tests."""

    VERSION_INFO = ("example", 1, 2)
    BUILD_INFO = ("example", 1, 2, "rc3")

    def setup_sensors(self) -> None:
        self.int_sensor = Sensor(Sensor.INTEGER, "an.int", "An integer.", "counts", [0, 100])
        self.float_sensor = Sensor(Sensor.FLOAT, "a.float", "A float.", "V", [0.0, 5.0])
        self.str_sensor = Sensor(Sensor.STRING, "a.string", "A string.", "")
        for sensor in (self.int_sensor, self.float_sensor, self.str_sensor):
            self.add_sensor(sensor)
        self.int_sensor.set_value(3, timestamp=1000.0)
