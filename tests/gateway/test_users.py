"""Per-user access through Redis: katcpx-web --users passes each web user on with their
control requests, and katcpx-gateway --users decides by the user's role in its own file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import tornado.httpclient
from web.conftest import Thermostat, stop_device

from katcpx.gateway import ControlRequest, UserPolicy
from katcpx.kattypes import Float, request, return_reply
from katcpx.web._users import load_users

from .conftest import TIMEOUT, WS, start_gateway, start_web_redis, until_synced, wait_until

pytestmark = pytest.mark.slow

OPERATOR = "operator-token-0123456789abcdef"
OBSERVER = "observer-token-0123456789abcdef"


class Recording(Thermostat):
    """The test device, keeping every ?set-temp it receives."""

    def __init__(self, *args, **kwargs) -> None:
        self.set_temps: list[float] = []
        super().__init__(*args, **kwargs)

    @request(Float())
    @return_reply(Float())
    def request_set_temp(self, req, t):
        """Set the temperature set point (recorded)."""
        self.set_temps.append(t)
        self.temp.set_value(t)
        return ("ok", t)


def write_users(folder: Path) -> Path:
    (folder / "operator.token").write_text(OPERATOR + "\n")
    (folder / "observer.token").write_text(OBSERVER + "\n")
    path = folder / "users.toml"
    path.write_text(
        "[[user]]\nname = 'operator'\nrole = 'control'\ntoken_file = 'operator.token'\n"
        "[[user]]\nname = 'observer'\nrole = 'read'\ntoken_file = 'observer.token'\n"
    )
    return path


async def post(port: int, path: str, body: object, token: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    resp = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}{path}",
        method="POST",
        body=json.dumps(body),
        headers=headers,
        raise_error=False,
        request_timeout=TIMEOUT,
    )
    return resp.code, json.loads(resp.body)


async def start_recording() -> Recording:
    """The recording test device, started on a free port."""
    device = Recording("127.0.0.1", 0)
    device.set_concurrency_options(handler_thread=False)
    device.set_ioloop()
    device.start()
    await device.until_running()
    return device


async def start_users_site(
    url: str, programs: list, device: Recording, users: Path, gateway_users: bool = True
) -> tuple[Any, WS]:
    """A gateway (with --users unless not `gateway_users`) carrying `device` as ``thermo``
    and a katcpx-web --redis --users; the web instance and a websocket synced to it."""
    host, port = device.bind_address
    extra = ("--users", str(users)) if gateway_users else ()
    programs.append(await start_gateway(url, f"thermo={host}:{port}", extra=extra))
    prog, web = await start_web_redis(url, "--users", str(users))
    programs.append(prog)
    ws = await WS.connect(web)
    await until_synced(ws, "thermo")
    return web, ws


def forge(client: redis.Redis, request: str, args: list, principal: object) -> dict:
    """Push a control request straight into Redis, as a web instance does; the answer."""
    reply = f"katcpx:reply:{uuid.uuid4().hex}"
    msg = {
        "id": "forged",
        "action": "call",
        "device": "thermo",
        "request": request,
        "args": args,
        "timeout": None,
        "principal": principal,
        "reply": reply,
    }
    client.lpush("katcpx:control", json.dumps(msg))
    popped = client.brpop([reply], timeout=int(TIMEOUT))
    assert popped is not None
    return json.loads(popped[1])


async def test_gateway_decides_per_web_user(redis_server, programs, tmp_path):
    users = write_users(tmp_path)
    device = await start_recording()
    try:
        web, ws = await start_users_site(redis_server.url, programs, device, users)
        path = "/api/devices/thermo/requests/set-temp"

        # The observer (role read) is refused by the gateway, naming the role needed.
        code, body = await post(web.port, path, {"args": [5]}, OBSERVER)
        assert code == 403, body
        assert body["code"] == "forbidden"
        assert body["error"] == (
            "Permission denied: ?set-temp needs role control; user observer has role read."
        )
        # The same over the websocket.
        assert (await ws.request({"action": "auth", "token": OBSERVER}))["ok"] is True
        answer = await ws.request(
            {"action": "set", "device": "thermo", "request": "set-temp", "args": [6]}
        )
        assert answer["type"] == "error" and answer["code"] == "forbidden", answer
        assert "user observer has role read" in answer["error"]
        # Reading stays open to the observer (a ?sensor-value through the gateway).
        answer = await ws.request({"action": "subscribe", "device": "thermo", "sensor": "temp"})
        refreshed = await ws.request({"action": "refresh"})
        assert refreshed["refreshed"] == [{"device": "thermo", "sensor": "temp"}], refreshed

        # The operator (role control) succeeds, over REST and the websocket.
        code, body = await post(web.port, path, {"args": [7.5]}, OPERATOR)
        assert code == 200 and body["ok"] is True, body
        assert (await ws.request({"action": "auth", "token": OPERATOR}))["ok"] is True
        answer = await ws.request(
            {"action": "set", "device": "thermo", "request": "set-temp", "args": [8.5]}
        )
        assert answer["type"] == "set" and answer["ok"] is True, answer

        # No token at all: the web instance asks for one before anything reaches Redis.
        code, body = await post(web.port, path, {"args": [9]}, None)
        assert code == 401, body

        # A rogue Redis client (or web instance) cannot escalate: a user's name without
        # that user's token, or no user at all, is refused by the gateway.
        client = redis.Redis(port=redis_server.port)
        try:
            for principal, error in [
                (
                    {"user": "operator", "token": OBSERVER},
                    "Permission denied: the token presented for user 'operator' is not valid",
                ),
                (
                    {"user": "root", "token": OPERATOR},
                    "Permission denied: the token presented for user 'root' is not valid",
                ),
                (
                    None,
                    "Permission denied: ?set-temp needs role control; a request with no user "
                    "has no role. (log in with a user's token)",
                ),
            ]:
                answer = forge(client, "set-temp", [99], principal)
                assert answer == {
                    "ok": False,
                    "code": "forbidden",
                    "error": error,
                    "http_status": 403,
                }, answer
        finally:
            client.close()

        # The device saw only the operator's two requests.
        await wait_until(lambda: len(device.set_temps) >= 2, what="the allowed requests")
        assert device.set_temps == [7.5, 8.5]
        ws.close()
    finally:
        await stop_device(device)


def test_user_policy_roles(tmp_path):
    """The policy alone: roles by the device servers' rules, reads open."""
    table = load_users(write_users(tmp_path))
    policy = UserPolicy(table)

    def req(name, principal, action="call", args=()):
        return ControlRequest("1", action, "thermo", name, tuple(args), None, principal)

    observer = {"user": "observer", "token": OBSERVER}
    operator = {"user": "operator", "token": OPERATOR}
    policy(req("sensor-value", observer))  # a read request
    policy(req("temp", None, action="read"))  # reading a sensor: open to anyone
    policy(req("log-level", observer))  # a query
    with pytest.raises(PermissionError, match="needs role admin; user operator has role control"):
        policy(req("log-level", operator, args=("debug",)))
    with pytest.raises(PermissionError, match="needs role admin"):
        policy(req("halt", operator))
    policy(req("set-temp", operator))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[user]\nname='a'\n", "write each user as a [[user]] table"),
        ("[[user]]\nname='a'\nrole='boss'\ntoken_file='t'\n", "unknown role 'boss'"),
        ("[[user]]\nname='a'\nrole='read'\n", "user 1: token_file is missing"),
        ("[[user]]\nname='a'\nrole='read'\ntoken_file='t'\npassword='x'\n", "unknown keys"),
        ("anonymous_role='root'\n", "anonymous_role: unknown role 'root'"),
        ("[[user]]\nname='a'\nrole='read'\ntoken_file='empty'\n", "is empty"),
        (
            "[[user]]\nname='a'\nrole='read'\ntoken_file='t'\n"
            "[[user]]\nname='a'\nrole='admin'\ntoken_file='u'\n",
            "the name 'a' is used twice",
        ),
        (
            "[[user]]\nname='a'\nrole='read'\ntoken_file='t'\n"
            "[[user]]\nname='b'\nrole='admin'\ntoken_file='t'\n",
            "'b' has the token of 'a'",
        ),
    ],
)
def test_bad_users_files_are_named(tmp_path, text, error):
    (tmp_path / "t").write_text("token-t\n")
    (tmp_path / "u").write_text("token-u\n")
    (tmp_path / "empty").write_text("\n")
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("(", r"\(")) as info:
        load_users(path)
    assert str(path) in str(info.value)


async def test_without_redis_katcpx_web_checks_roles_itself(tmp_path):
    """No gateway: katcpx-web --users refuses by role before the device sees anything."""
    from katcpx.web import DeviceHub, DeviceSpec, WebServer
    from katcpx.web._auth import Guard

    table = load_users(write_users(tmp_path))
    device = Recording("127.0.0.1", 0)
    device.set_concurrency_options(handler_thread=False)
    device.set_ioloop()
    device.start()
    await device.until_running()
    hub = DeviceHub([DeviceSpec("thermo", *device.bind_address)], ("event",))
    guard = Guard.for_site("127.0.0.1", None, False, users=table)
    assert guard.mode == "token"
    web = WebServer(hub, "127.0.0.1", 0, guard=guard)
    await web.start()
    try:
        await hub.until_synced(TIMEOUT)
        path = "/api/devices/thermo/requests/set-temp"
        code, body = await post(web.port, path, {"args": [5]}, OBSERVER)
        assert (code, body["code"]) == (403, "forbidden"), body
        assert body["error"] == (
            "Permission denied: ?set-temp needs role control; user observer has role read."
        )
        code, body = await post(web.port, path, {"args": [6]}, "not-a-user's-token")
        assert code == 401, body
        code, body = await post(web.port, path, {"args": [7]}, OPERATOR)
        assert code == 200 and body["ok"] is True, body
        assert device.set_temps == [7.0]
    finally:
        await web.stop()
        await stop_device(device)
