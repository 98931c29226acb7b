"""Kind 4, stale data shown as fresh: cached readings are refreshed or carry their age."""

from __future__ import annotations

import pytest

from katcpx.sensor import Sensor
from katcpx.web import _rest as rest
from katcpx.web._freshness import freshness

from .conftest import http
from .test_ws import is_update


async def test_stale_data_rest_list_is_refreshed(web, device):
    status, body = await http(web, "/api/devices/thermo/sensors?filter=^temp$")
    assert status == 200 and body[0]["value"] == 20.5
    device.temp.set_value(3.3)  # nobody samples temp: the hub's copy is now out of date
    status, body = await http(web, "/api/devices/thermo/sensors?filter=^temp$")
    (temp,) = body
    assert temp["value"] == 3.3 and temp["stale"] is False and temp["age"] < 1.0


async def test_stale_data_rest_list_marked_when_not_refreshed(web, device, monkeypatch):
    monkeypatch.setattr(rest, "REFRESH_LIMIT", 0)
    device.temp.set_value(3.3)
    status, body = await http(web, "/api/devices/thermo/sensors?filter=^temp$")
    (temp,) = body
    assert temp["value"] != 3.3  # the cached reading (none yet here), but it says so
    assert temp["stale"] is True and (temp["age"] is None or temp["age"] >= 0)


async def test_stale_data_ws_first_update_marked_stale(ws, device):
    ans = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
    assert ans["subscribed"] == ["temp"]
    await ws.expect(is_update("temp", 20.5))
    await ws.request({"action": "unsubscribe", "device": "thermo", "sensor": "temp"})
    device.temp.set_value(7.5, Sensor.WARN)  # unsampled: the hub does not see this
    ws.seen.clear()
    await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
    fresh = await ws.expect(is_update("temp", 7.5))
    assert fresh["stale"] is False
    cached = [m for m in ws.seen if m["type"] == "update" and m["value"] == 20.5]
    # The old reading, if sent first, said it was old.
    assert all(m["stale"] is True for m in cached), cached


@pytest.mark.parametrize(
    ("received", "since", "connected", "now", "stale"),
    [
        (0.0, None, True, 100.0, True),  # no reading at all
        (50.0, None, True, 100.0, True),  # last seen 50 s ago, not sampled
        (99.5, None, True, 100.0, False),  # just read
        (50.0, 40.0, True, 100.0, False),  # sampled since before it arrived: current
        (30.0, 40.0, True, 100.0, True),  # older than the sampling
        (99.5, 40.0, False, 100.0, True),  # device down
    ],
)
def test_stale_data_rule(received, since, connected, now, stale):
    assert freshness(received, since, connected, now)["stale"] is stale
