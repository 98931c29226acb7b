"""Garbage from one client never takes the server down or holds up another client."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katcpx.message import Message

from .helpers import ExampleServer, connect, running

#: Names of real requests, so that fuzzed requests reach handlers, not only the parser.
NAMES = [
    b"help",
    b"sensor-value",
    b"sensor-sampling",
    b"sensor-list",
    b"log-level",
    b"client-list",
    b"request-timeout-hint",
    b"watchdog",
    b"version-list",
    b"nosuch",
]


def _garbage_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    raw = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"")
    lines = []
    for _ in range(count):
        noise = bytes(rng.choices(raw, k=rng.randint(0, 30)))
        if rng.random() < 0.5:
            mid = b"[%d]" % rng.randint(0, 2**32) if rng.random() < 0.3 else b""
            lines.append(b"?" + rng.choice(NAMES) + mid + b" " + noise)
        else:
            lines.append(noise)
    return lines


def _watchdog_ok(server: ExampleServer) -> None:
    with connect(server) as other:
        reply, _ = other.request("watchdog")
        assert reply.reply_ok()


def test_a_flood_of_garbage_leaves_the_server_serving():
    server = ExampleServer("127.0.0.1", 0)
    with running(server):
        with connect(server) as fuzzer:
            fuzzer.send_raw(b"\n".join(_garbage_lines(seed=1, count=2000)) + b"\n")
            # The fuzzing client is still served in order after its garbage...
            fuzzer.send(Message.request("watchdog", mid=424242))
            while True:
                msg = fuzzer.read()
                if msg.mtype == Message.REPLY and msg.mid == b"424242":
                    break
            assert msg.reply_ok()
            # ... and so is everyone else.
            _watchdog_ok(server)
        assert server.running()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=20
    )
)
def test_any_lines_then_a_request_gets_its_reply(lines):
    server = ExampleServer("127.0.0.1", 0)
    with running(server), connect(server) as client:
        client.send_raw(b"\n".join(lines) + b"\n?watchdog[7]\n")
        while True:
            msg = client.read()
            if msg.mtype == Message.REPLY and msg.mid == b"7":
                break
        assert msg.reply_ok() and msg.name == "watchdog"
