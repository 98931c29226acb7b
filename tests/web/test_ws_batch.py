"""``/api/ws?batch=1``: frames carry JSON arrays of messages; plain sockets are unchanged."""

from __future__ import annotations

import asyncio
import json

import tornado.websocket

from .conftest import TIMEOUT


async def frames(conn, until, timeout: float = TIMEOUT) -> list:
    """Raw frames, decoded, until `until(messages so far)` holds."""
    got: list = []
    seen: list = []
    while not until(seen):
        text = await asyncio.wait_for(conn.read_message(), timeout)
        assert text is not None, "websocket closed"
        frame = json.loads(text)
        got.append(frame)
        seen.extend(frame if isinstance(frame, list) else [frame])
    return got


def has_update(sensor: str, value=None):
    return lambda msgs: any(
        m["type"] == "update" and m["sensor"] == sensor and (value is None or m["value"] == value)
        for m in msgs
    )


async def test_batched_socket_gets_arrays_and_plain_socket_objects(web, device):
    base = f"ws://127.0.0.1:{web.port}/api/ws"
    batched = await tornado.websocket.websocket_connect(base + "?batch=1")
    plain = await tornado.websocket.websocket_connect(base)
    try:
        sub = {"action": "subscribe", "device": "thermo", "sensors": ["temp", "count", "mode"]}
        for conn in (batched, plain):
            conn.write_message(json.dumps(sub))
        got = await frames(batched, has_update("mode"))
        assert all(isinstance(f, list) and f for f in got), got
        msgs = [m for f in got for m in f]
        assert msgs[0]["type"] == "hello"
        kinds = [m["type"] for m in msgs[1:]]
        # The summary, then the metas and updates of the sensors, in few frames.
        assert kinds == ["subscribe"] + ["meta"] * 3 + ["update"] * 3, kinds
        assert len(got) < len(msgs)
        got = await frames(plain, has_update("mode"))
        assert all(isinstance(f, dict) for f in got), got
        # Readings changed in one loop turn share a frame.
        device.temp.set_value(1.5)
        device.count.set_value(7)
        got = await frames(batched, has_update("count", 7))
        assert [m["sensor"] for f in got for m in f] == ["temp", "count"]
        assert len(got) == 1, got
    finally:
        batched.close()
        plain.close()
