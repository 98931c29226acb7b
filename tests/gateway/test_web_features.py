"""katcpx-web --redis with the bridge's other features: /metrics and the token guard."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient

from .conftest import TIMEOUT, Program, start_gateway, start_site

pytestmark = pytest.mark.slow


async def start_web(programs: list[Program], redis_url: str, *extra: str) -> Program:
    """A ``katcpx-web --redis`` subprocess, stopped at the end by `programs`."""
    prog = Program("katcpx.web", "--redis", redis_url, "--port", "0", *extra)
    programs.append(prog)
    line = await prog.start("katcpx-web: serving")
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    prog.port = int(match.group(1))  # type: ignore[attr-defined]
    return prog


async def until(condition: Any, what: str) -> None:
    """Await `condition()` until it is true (each try is a real request); fail after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fetch(port: int, path: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    client = tornado.httpclient.AsyncHTTPClient()
    return await client.fetch(
        f"http://127.0.0.1:{port}{path}", raise_error=False, request_timeout=TIMEOUT, **kwargs
    )


async def test_metrics_of_redis_instance_come_from_redis(redis_server, programs):
    site = await start_site(programs)
    gateway = await start_gateway(redis_server.url, f"psu={site['psu']}")
    programs.append(gateway)
    web = await start_web(programs, redis_server.url)
    up = 'katcp_device_up{device="psu"} 1.0'
    setpoint = 'katcp_sensor_value{device="psu",sensor="voltage-setpoint"} 12.0'
    body = ""

    async def scraped(*wanted: str) -> bool:
        nonlocal body
        resp = await fetch(web.port, "/metrics")
        assert resp.code == 200, resp.body
        body = resp.body.decode()
        return all(w in body for w in wanted)

    await until(lambda: scraped(up, setpoint), "psu's sensors on /metrics")
    assert 'katcp_sensor_info{description="Voltage setpoint"' in body
    assert (
        'katcp_sensor_status{device="psu",sensor="voltage-setpoint",status="nominal"} 1.0' in body
    )
    # The gateway, not this instance, connects: no reconnect counts of its own.
    assert 'katcp_device_reconnects_total{device="psu"}' not in body
    # A change through the gateway shows on the next scrape; the filters apply.
    resp = await fetch(
        web.port,
        "/api/devices/psu/requests/voltage",
        method="POST",
        body=json.dumps([7.5]),
        headers={"Content-Type": "application/json"},
    )
    assert resp.code == 200, resp.body
    await until(
        lambda: scraped('katcp_sensor_value{device="psu",sensor="voltage-setpoint"} 7.5'),
        "the new setpoint on /metrics",
    )
    # With the gateway gone, the device is reported down and its sensors are left out.
    gateway.kill()
    await until(lambda: scraped('katcp_device_up{device="psu"} 0.0'), "psu down on /metrics")
    assert "voltage-setpoint" not in body


async def test_metrics_filters_apply_to_redis_instance(redis_server, programs):
    site = await start_site(programs)
    programs.append(await start_gateway(redis_server.url, f"psu={site['psu']}"))
    web = await start_web(programs, redis_server.url, "--sensor-filter", "^voltage")
    body = ""

    async def scraped() -> bool:
        nonlocal body
        body = (await fetch(web.port, "/metrics")).body.decode()
        return 'sensor="voltage-setpoint"' in body

    await until(scraped, "filtered sensors on /metrics")
    sensors = set(re.findall(r'katcp_sensor_status\{device="psu",sensor="([^"]+)"', body))
    assert sensors and all(s.startswith("voltage") for s in sensors), sensors


async def test_token_guards_control_through_the_gateway(redis_server, programs, tmp_path: Path):
    site = await start_site(programs)
    programs.append(await start_gateway(redis_server.url, f"psu={site['psu']}"))
    token = "s3cret-token-for-the-test"
    (tmp_path / "web.token").write_text(token + "\n")
    web = await start_web(programs, redis_server.url, "--token-file", str(tmp_path / "web.token"))
    path = "/api/devices/psu/requests/voltage"
    headers = {"Content-Type": "application/json"}

    async def synced() -> bool:
        resp = await fetch(web.port, "/api/devices/psu")
        return resp.code == 200 and json.loads(resp.body)["synced"]

    await until(synced, "psu synced through the gateway")
    refused = await fetch(web.port, path, method="POST", body="[4.5]", headers=headers)
    assert refused.code == 401, refused.body
    assert json.loads(refused.body)["code"] == "unauthorized"
    wrong = dict(headers, Authorization="Bearer not-the-token")
    assert (await fetch(web.port, path, method="POST", body="[4.5]", headers=wrong)).code == 401
    allowed = dict(headers, Authorization=f"Bearer {token}")
    deadline = time.monotonic() + TIMEOUT
    while True:  # the gateway may still be taking its first control request
        resp = await fetch(web.port, path, method="POST", body="[4.5]", headers=allowed)
        if resp.code != 503 or time.monotonic() > deadline:
            break
    assert resp.code == 200, resp.body
    assert json.loads(resp.body)["reply"] == ["4.5"]
    # Reading stays open.
    assert (await fetch(web.port, "/api/devices/psu/sensors/voltage-setpoint")).code == 200
