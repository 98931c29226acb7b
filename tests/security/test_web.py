"""The guarded web bridge: token, read-only, cross-origin, bad input; over HTTPS/WSS and TLS."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from katcpx.server.access import AccessPolicy, Grant, Role
from katcpx.web import DeviceHub, DeviceSpec, WebServer
from katcpx.web._auth import MAX_JSON_DEPTH, Guard

from .helpers import DeviceWithRequests, Pki

TIMEOUT = 5.0
TOKEN = "s3cret-token"


class Site:
    """A device (optionally TLS with a policy) and a bridge in front of it."""

    def __init__(self, device: DeviceWithRequests, web: WebServer, client_ctx: Any) -> None:
        self.device = device
        self.web = web
        self.client_ctx = client_ctx

    @property
    def base(self) -> str:
        scheme = "https" if self.web.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.web.port}"

    async def http(
        self,
        path: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        client = tornado.httpclient.AsyncHTTPClient()
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        kwargs: dict[str, Any] = {"method": method, "headers": hdrs}
        if method == "POST":
            kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body or {})
        req = tornado.httpclient.HTTPRequest(
            self.base + path, ssl_options=self.client_ctx, request_timeout=TIMEOUT, **kwargs
        )
        resp = await client.fetch(req, raise_error=False)
        return resp.code, json.loads(resp.body) if resp.body else None

    async def ws(self) -> WS:
        url = self.base.replace("http", "ws", 1) + "/api/ws"
        req = tornado.httpclient.HTTPRequest(url, ssl_options=self.client_ctx)
        conn = await asyncio.wait_for(tornado.websocket.websocket_connect(req), TIMEOUT)
        ws = WS(conn)
        ws.hello = await ws.next()
        assert ws.hello["type"] == "hello"
        return ws


class WS:
    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.hello: dict[str, Any] = {}
        self.serial = 0

    async def next(self) -> dict[str, Any]:
        text = await asyncio.wait_for(self.conn.read_message(), TIMEOUT)
        if text is None:
            raise ConnectionError("websocket closed")
        return json.loads(text)

    async def send_raw(self, text: str) -> dict[str, Any]:
        """Send `text`; the next answer that is not a sensor push."""
        self.conn.write_message(text)
        while True:
            msg = await self.next()
            if msg["type"] not in ("update", "meta", "device"):
                return msg

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.serial += 1
        obj = dict(obj, id=self.serial)
        self.conn.write_message(json.dumps(obj))
        while True:
            msg = await self.next()
            if msg.get("id") == self.serial:
                return msg

    def close(self) -> None:
        self.conn.close()


async def start_site(pki: Pki | None, guard: Guard | None, *, mutual: bool = False) -> Site:
    kwargs: dict[str, Any] = {}
    if pki is not None and mutual:
        kwargs["ssl_context"] = pki.server_ctx(mutual=True)
        kwargs["access_policy"] = AccessPolicy("read", [Grant(Role.CONTROL, cert_cn="bridge")])
    device = DeviceWithRequests("127.0.0.1", 0, **kwargs)
    device.set_concurrency_options(thread_safe=False, handler_thread=False)
    device.set_ioloop()
    device.start()
    await asyncio.wait_for(device.until_running(), TIMEOUT)
    device_tls = pki.client_ctx("bridge") if pki is not None and mutual else None
    hub = DeviceHub(
        [DeviceSpec("dev", *device.bind_address)],
        ("event",),
        request_timeout=2.0,
        auto_reconnect_delay=0.05,
        ssl_context=device_tls,
    )
    browser_tls = pki.server_ctx() if pki is not None else None
    web = WebServer(hub, "127.0.0.1", 0, guard=guard, ssl_context=browser_tls)
    await web.start()
    await hub.until_synced(TIMEOUT)
    client_ctx = pki.client_ctx() if pki is not None else None
    return Site(device, web, client_ctx)


async def stop_site(site: Site) -> None:
    await site.web.stop()
    site.device.stop()
    await asyncio.wait_for(site.device.until_stopped(), TIMEOUT)


FIRE = "/api/devices/dev/requests/fire"


async def test_token_guard_over_https_wss_and_mutual_tls(pki: Pki) -> None:
    site = await start_site(pki, Guard(TOKEN), mutual=True)
    try:
        assert site.web.url.startswith("https://")
        # Reading stays open.
        status, devices = await site.http("/api/devices")
        assert status == 200 and devices[0]["synced"]
        status, sensor = await site.http("/api/devices/dev/sensors/an.int")
        assert status == 200 and sensor["value"] == 3
        # Changing needs the token.
        status, body = await site.http(FIRE, "POST", {})
        assert status == 401 and body["code"] == "unauthorized"
        status, _ = await site.http(FIRE, "POST", {}, {"Authorization": "Bearer nope"})
        assert status == 401
        status, body = await site.http(FIRE, "POST", {}, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body["ok"] and body["reply"] == ["fired"]
        # The device saw the bridge's certificate: its CN grant made it control.
        ws = await site.ws()
        try:
            assert ws.hello["control"] == "token"
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["type"] == "error" and answer["code"] == "unauthorized"
            answer = await ws.request({"action": "auth", "token": "wrong"})
            assert answer["type"] == "error" and answer["code"] == "unauthorized"
            answer = await ws.request({"action": "auth", "token": TOKEN})
            assert answer == {"type": "auth", "action": "auth", "ok": True, "id": ws.serial}
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["type"] == "set" and answer["ok"], answer
            # Subscriptions (reading) need no token.
            answer = await ws.request({"action": "subscribe", "device": "dev", "sensor": "an.int"})
            assert answer["subscribed"] == ["an.int"]
        finally:
            ws.close()
    finally:
        await stop_site(site)


async def test_without_token_over_https_and_wss(pki: Pki) -> None:
    site = await start_site(pki, None)
    try:
        status, body = await site.http(FIRE, "POST", {})
        assert status == 200 and body["ok"]
        ws = await site.ws()
        try:
            assert ws.hello["control"] == "open"
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["type"] == "set" and answer["ok"]
        finally:
            ws.close()
    finally:
        await stop_site(site)


def test_guard_rules_for_binding() -> None:
    assert Guard.for_site("127.0.0.1", None, False).mode == "open"
    assert Guard.for_site("localhost", None, False).mode == "open"
    assert Guard.for_site("::1", None, False).mode == "open"
    assert Guard.for_site("0.0.0.0", None, False).mode == "read-only"
    assert Guard.for_site("", None, False).mode == "read-only"
    assert Guard.for_site("192.0.2.4", None, True).mode == "open"
    assert Guard.for_site("192.0.2.4", TOKEN, False).mode == "token"
    assert "read-only" in Guard.for_site("0.0.0.0", None, False).describe()


async def test_read_only_bridge_refuses_changes() -> None:
    site = await start_site(None, Guard(None, control=False))
    try:
        status, body = await site.http(FIRE, "POST", {})
        assert status == 403 and body["code"] == "forbidden"
        assert (await site.http("/api/devices/dev/sensors"))[0] == 200
        ws = await site.ws()
        try:
            assert ws.hello["control"] == "read-only"
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["type"] == "error" and answer["code"] == "forbidden"
        finally:
            ws.close()
    finally:
        await stop_site(site)


async def test_cross_origin_and_non_json_changes_are_refused() -> None:
    site = await start_site(None, None)
    try:
        # What a form on another site can send: text/plain, with its own Origin.
        status, body = await site.http(
            "/api/devices/dev/requests/log-level",
            "POST",
            '{"args": ["fatal"]}',
            {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert status == 403 and "cross-origin" in body["error"]
        status, body = await site.http(
            "/api/devices/dev/requests/log-level",
            "POST",
            '{"args": ["fatal"]}',
            {"Content-Type": "text/plain"},
        )
        assert status == 415 and "application/json" in body["error"]
        status, body = await site.http(
            FIRE, "POST", {}, {"Origin": f"http://127.0.0.1:{site.web.port}"}
        )
        assert status == 200 and body["ok"]
        assert site.device.log.level_name() == "warn"
    finally:
        await stop_site(site)


async def test_bad_input_never_closes_the_socket_or_drops_the_device() -> None:
    site = await start_site(None, None)
    try:
        ws = await site.ws()
        try:
            for text in (
                '{"action": "refresh", "id": NaN}',
                '{"action": "refresh", "id": Infinity}',
                '{"action": "refresh", "id": 1e400}',
                "[" * 100_000 + "]" * 100_000,
                '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1),
            ):
                answer = await ws.send_raw(text)
                assert answer["type"] == "error" and answer["code"] == "invalid_json", answer
            huge = "x" * (3 * 1024 * 1024)
            answer = await ws.request(
                {"action": "set", "device": "dev", "request": "fire", "args": [huge]}
            )
            assert (
                answer["code"] == "request_too_long" and "maximum message size" in answer["error"]
            )
            # Still the same socket, and the device link is still up.
            answer = await ws.request({"action": "set", "device": "dev", "request": "fire"})
            assert answer["ok"], answer
        finally:
            ws.close()
        for body in ('{"args": [NaN]}', "[" * 100_000 + "]" * 100_000):
            status, answer = await site.http(FIRE, "POST", body)
            assert status == 400 and answer["code"] == "invalid_json"
        status, answer = await site.http(FIRE, "POST", {"args": ["y" * (3 * 1024 * 1024)]})
        assert status == 413 and answer["code"] == "request_too_long"
        started = time.monotonic()
        status, found = await site.http("/api/sensors?filter=%28.%2A%29%2A%28.%2A%29%2A%21")
        assert status == 200 and found == []
        assert time.monotonic() - started < 1.0
        status, answer = await site.http(FIRE, "POST", {})
        assert status == 200 and answer["ok"]
    finally:
        await stop_site(site)


@pytest.mark.parametrize("header", ["Bearer", "Basic czNjcmV0", f"bearer {TOKEN}x"])
async def test_malformed_authorization_is_401(header: str) -> None:
    site = await start_site(None, Guard(TOKEN))
    try:
        status, _ = await site.http(FIRE, "POST", {}, {"Authorization": header})
        assert status == 401
    finally:
        await stop_site(site)


def test_start_up_says_how_changes_are_guarded(caplog) -> None:
    caplog.set_level(logging.INFO, "katcp.web")
    Guard.for_site("0.0.0.0", None, False).announce("0.0.0.0")
    Guard.for_site("0.0.0.0", None, True).announce("0.0.0.0")
    Guard.for_site("127.0.0.1", None, False).announce("127.0.0.1")
    got = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "katcp.web"]
    assert got[0][0] == "WARNING" and "read-only" in got[0][1]
    assert "--allow-anonymous-control" in got[0][1]
    assert got[1][0] == "WARNING" and "anyone who reaches it" in got[1][1]
    assert got[2][0] == "INFO"
