"""Requests of every compatibility call go through send_request/send_message (katcp-python)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from fakeserver import V5_BANNER, FakeServer, echo

from katcpx import Message
from katcpx.client import AsyncClient, BlockingClient, CallbackClient
from katcpx.errors import KatcpClientError


class Recording(BlockingClient):
    """Records what passes through the two hooks katcp-python clients override."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent_requests: list[str] = []
        self.sent_messages: list[str] = []
        self.lock = threading.Lock()

    def send_request(self, msg: Message) -> None:
        with self.lock:
            self.sent_requests.append(msg.name)
        super().send_request(msg)

    def send_message(self, msg: Message) -> None:
        with self.lock:
            self.sent_messages.append(msg.name)
        super().send_message(msg)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(V5_BANNER, echo) as srv:
        yield srv


@pytest.fixture
def client(server: FakeServer) -> Iterator[Recording]:
    c = Recording(*server.address, timeout=5)
    c.start(timeout=5)
    assert c.wait_protocol(5)
    yield c
    c.stop(5)
    c.join(5)


def test_blocking_request_goes_through_send_message(client: Recording) -> None:
    reply, _ = client.blocking_request(Message.request("first", "x"))
    assert reply.arguments == [b"ok", b"x"]
    assert "first" in client.sent_requests and "first" in client.sent_messages


def test_callback_request_goes_through_send_message(client: Recording) -> None:
    got = threading.Event()
    replies: list[Message] = []

    def reply_cb(msg: Message) -> None:
        replies.append(msg)
        got.set()

    client.callback_request(Message.request("second", "y"), reply_cb=reply_cb)
    assert got.wait(5)
    assert replies[0].arguments == [b"ok", b"y"]
    assert client.sent_requests.count("second") == 1
    assert client.sent_messages.count("second") == 1


def test_future_request_and_call_go_through_send_message(client: Recording) -> None:
    reply, _ = client.future_request(Message.request("third")).result(5)
    assert reply.name == "third"

    async def call() -> Message:
        return (await client.call("fourth", "z"))[0]

    assert asyncio.run(call()).arguments == [b"ok", b"z"]
    assert {"third", "fourth"} <= set(client.sent_messages)


def test_a_hook_that_raises_fails_the_request_instead_of_leaving_it_pending(
    server: FakeServer,
) -> None:
    class Refusing(CallbackClient):
        def send_message(self, msg: Message) -> None:
            if msg.name == "refused":
                raise RuntimeError("not today")
            super().send_message(msg)

    c = Refusing(*server.address, timeout=5)
    c.start(timeout=5)
    try:
        assert c.wait_protocol(5)
        reply, _ = c.blocking_request(Message.request("refused"), timeout=5)
        assert reply.arguments[0] == b"fail" and b"not today" in reply.arguments[1]
        assert c.blocking_request(Message.request("fine"))[0].name == "fine"
    finally:
        c.stop(5)
        c.join(5)


def test_plain_clients_are_not_hooked() -> None:
    # The fast path (no hook call) stays for clients that do not override the hooks.
    assert not AsyncClient("127.0.0.1", 1)._send_hooked
    assert Recording("127.0.0.1", 1)._send_hooked


def test_a_send_message_replaced_on_the_instance_sees_every_request(server: FakeServer) -> None:
    # katcp-python's tests wrap client.send_message in a mock to read the message ids.
    c = CallbackClient(*server.address, timeout=5)
    c.start(timeout=5)
    try:
        assert c.wait_protocol(5)
        seen: list[bytes | None] = []
        plain_send = c.send_message

        def recording(msg: Message) -> None:
            seen.append(msg.mid)
            plain_send(msg)

        c.send_message = recording  # type: ignore[method-assign]
        assert c._send_hooked
        for _ in range(3):
            assert c.blocking_request(Message.request("watchdog"))[0].reply_ok()
        assert len(seen) == 3 and len(set(seen)) == 3 and None not in seen
    finally:
        c.stop(5)
        c.join(5)


def test_a_client_error_from_the_hook_is_the_fail_text(server: FakeServer) -> None:
    # As katcp-python: a KatcpClientError raised while sending becomes the fail reply's text.
    class Erroring(CallbackClient):
        def send_message(self, msg: Message) -> None:
            raise KatcpClientError(f"Error {msg.name}")

    c = Erroring(*server.address, timeout=5)
    c.start(timeout=5)
    try:
        assert c.wait_protocol(5)
        reply, _ = c.blocking_request(Message.request("foo"), timeout=5)
        assert reply.arguments == [b"fail", b"Error foo"]
    finally:
        c.stop(5)
        c.join(5)
