"""The web bridge: device link errors shown, websocket auth, origin scheme."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import tornado.httpclient
import tornado.websocket

from katcpx.web import DeviceHub, DeviceSpec, WebServer
from katcpx.web._auth import Guard

from .helpers import DeviceWithRequests, Pki
from .test_web import FIRE, TIMEOUT, TOKEN, start_site, stop_site


async def until(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_tls_device_without_tls_ca_is_warned_and_shown(pki: Pki, caplog) -> None:
    caplog.set_level(logging.INFO, "katcp.web")
    device = DeviceWithRequests("127.0.0.1", 0, ssl_context=pki.server_ctx())
    device.set_concurrency_options(thread_safe=False, handler_thread=False)
    device.set_ioloop()
    device.start()
    await asyncio.wait_for(device.until_running(), TIMEOUT)
    hub = DeviceHub(
        [DeviceSpec("dig", *device.bind_address)], ("event",), auto_reconnect_delay=0.05
    )
    web = WebServer(hub, "127.0.0.1", 0)
    await web.start()
    try:

        def warnings() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and "requires TLS" in r.getMessage()
            ]

        await until(lambda: any(w.startswith("device dig:") for w in warnings()))
        found = [w for w in warnings() if w.startswith("device dig:")]
        assert "--tls-ca" in found[0] and len(found) == 1, found
        await until(lambda: hub.device_message("dig")["error"] is not None)
        # Reconnecting does not repeat the warning.
        attempts = len([r for r in caplog.records if "Connected to" in r.getMessage()])
        await until(
            lambda: (
                len([r for r in caplog.records if "Connected to" in r.getMessage()]) >= attempts + 2
            ),
            timeout=15.0,  # the device waits 2 s for a TLS hello each time
        )
        assert len([w for w in warnings() if w.startswith("device dig:")]) == 1
        client = tornado.httpclient.AsyncHTTPClient()
        resp = await client.fetch(f"http://127.0.0.1:{web.port}/api/devices/dig")
        state = json.loads(resp.body)
        assert "This port requires TLS" in state["error"], state
    finally:
        await web.stop()
        device.stop()
        await asyncio.wait_for(device.until_stopped(), TIMEOUT)


async def test_failed_websocket_auth_drops_control() -> None:
    site = await start_site(None, Guard(TOKEN))
    try:
        ws = await site.ws()
        try:
            answer = await ws.request({"action": "auth"})
            assert answer["code"] == "unauthorized" and "missing token" in answer["error"]
            answer = await ws.request({"action": "auth", "token": TOKEN})
            assert answer["ok"]
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["ok"], answer
            answer = await ws.request({"action": "auth", "token": "wrong"})
            assert answer["code"] == "unauthorized" and answer["error"] == "wrong token"
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["type"] == "error" and answer["code"] == "unauthorized", answer
        finally:
            ws.close()
    finally:
        await stop_site(site)


async def test_origin_scheme_counts(pki: Pki) -> None:
    # An HTTPS bridge: a page from http://same-host:port is another origin.
    site = await start_site(pki, Guard(TOKEN))
    try:
        host = f"127.0.0.1:{site.web.port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = await site.http(FIRE, "POST", {}, {**auth, "Origin": f"http://{host}"})
        assert status == 403 and body["code"] == "forbidden", body
        status, body = await site.http(FIRE, "POST", {}, {**auth, "Origin": f"https://{host}"})
        assert status == 200, body
        url = f"wss://{host}/api/ws"
        for origin, ok in ((f"http://{host}", False), (f"https://{host}", True)):
            req = tornado.httpclient.HTTPRequest(
                url, ssl_options=site.client_ctx, headers={"Origin": origin}
            )
            try:
                conn = await asyncio.wait_for(tornado.websocket.websocket_connect(req), TIMEOUT)
            except tornado.httpclient.HTTPClientError as exc:
                assert not ok and exc.code == 403
            else:
                assert ok
                conn.close()
    finally:
        await stop_site(site)
