"""Handler-thread mode hands runs of pipelined device requests to the thread in one go.

Order and the wait for a request left running must be exactly as with one hand-off per
request; a subclass overriding ``on_message`` still sees every message.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from katcpx.message import Message

from .helpers import TIMEOUT, ExampleServer, connect, running


class RunServer(ExampleServer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate: concurrent.futures.Future[Message] = concurrent.futures.Future()

    def request_echo(self, req, msg):
        """Reply with the arguments."""
        return req.make_reply("ok", *msg.arguments)

    def request_gated(self, req, msg):
        """Reply when the test opens the gate (a future, left running)."""
        return self.gate


def test_run_stops_at_a_running_request_and_the_rest_waits_in_order() -> None:
    with running(RunServer("127.0.0.1", 0)) as server, connect(server) as client:
        assert server.handles_runs()
        client.send_raw(b"?echo 1\n?gated\n?echo 2\n?sensor-sampling an.int\n?echo 3\n")
        assert bytes(client.read()) == b"!echo ok 1\n"
        with pytest.raises(TimeoutError):
            client.read(timeout=0.2)  # everything after ?gated waits for it
        server.gate.set_result(Message.reply("gated", "ok", "late"))
        got = [bytes(client.read()) for _ in range(4)]
        assert got == [
            b"!gated ok late\n",
            b"!echo ok 2\n",
            b"!sensor-sampling ok an.int none\n",
            b"!echo ok 3\n",
        ]


def test_many_pipelined_device_requests_keep_their_order() -> None:
    with running(RunServer("127.0.0.1", 0)) as server, connect(server) as client:
        client.send_raw(b"".join(b"?echo %d\n" % i for i in range(2000)))
        for i in range(2000):
            assert client.read(TIMEOUT).arguments == [b"ok", b"%d" % i]


def test_overridden_handle_message_sees_every_message() -> None:
    # katcp-python's hook for every message (on_message is installed on the instance).
    seen: list[str] = []

    class Hooked(RunServer):
        def handle_message(self, client_conn, msg):
            seen.append(msg.name)
            return super().handle_message(client_conn, msg)

    with running(Hooked("127.0.0.1", 0)) as server, connect(server) as client:
        assert server.handles_runs()
        client.send_raw(b"?echo 1\n?echo 2\n?echo 3\n")
        assert [client.read().arguments[1] for _ in range(3)] == [b"1", b"2", b"3"]
    assert seen == ["echo", "echo", "echo"]
