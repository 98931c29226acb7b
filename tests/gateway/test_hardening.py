"""What a fresh user found with katcpx-gateway + katcpx-web --redis and users files: web users
cannot change the shared connection's sampling, client regexes run on RE2 everywhere, Redis
passwords and users' tokens stay out of messages and logs, and a katcpx-web with --users
refuses control through a gateway that checks no users."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
import redis
import tornado.httpclient
from web.conftest import stop_device

from katcpx.web import DeviceSpec

from .conftest import TIMEOUT, WS, start_gateway, start_web_redis, until_synced, wait_until
from .redis_server import RedisServer
from .test_users import (
    OBSERVER,
    OPERATOR,
    forge,
    post,
    start_recording,
    start_users_site,
    write_users,
)

pytestmark = pytest.mark.slow

SAMPLING = [
    ("sensor-sampling", ["temp", "none"]),
    ("sensor-sampling", ["temp", "period", "10"]),
    ("sensor-sampling-clear", []),
]


async def get(port: int, path: str) -> tuple[int, dict]:
    resp = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}{path}", raise_error=False, request_timeout=TIMEOUT
    )
    return resp.code, json.loads(resp.body)


async def test_nobody_changes_the_gateways_sampling(redis_server, programs, tmp_path):
    users = write_users(tmp_path)
    device = await start_recording()
    try:
        web, ws = await start_users_site(redis_server.url, programs, device, users)
        assert (await ws.request({"action": "auth", "token": OPERATOR}))["ok"] is True
        client = redis.Redis(port=redis_server.port)
        try:
            for name, args in SAMPLING:
                # Refused by the web instance, over REST and the websocket, for any role ...
                for token in (OPERATOR, OBSERVER):
                    path = f"/api/devices/thermo/requests/{name}"
                    code, body = await post(web.port, path, {"args": args}, token)
                    assert (code, body["code"]) == (403, "shared_connection"), body
                    assert f"?{name} refused" in body["error"], body
                answer = await ws.request(
                    {"action": "set", "device": "thermo", "request": name, "args": args}
                )
                assert answer["type"] == "error", answer
                assert answer["code"] == "shared_connection", answer
                # ... and by the gateway, whoever pushes it into Redis.
                answer = forge(client, name, args, {"user": "operator", "token": OPERATOR})
                assert answer["ok"] is False and answer["code"] == "shared_connection", answer
                assert answer["http_status"] == 403
            # Asking for the strategy changes nothing, so it is allowed.
            code, body = await post(
                web.port,
                "/api/devices/thermo/requests/sensor-sampling",
                {"args": ["temp"]},
                OPERATOR,
            )
            assert code == 200 and body["ok"] is True, body
        finally:
            client.close()
        ws.close()
    finally:
        await stop_device(device)


async def test_direct_web_refuses_sampling_changes():
    """Without Redis the hub also shares one connection per device among its browsers."""
    from web.conftest import http, start_web

    device = await start_recording()
    host, port = device.bind_address
    server = await start_web([DeviceSpec("thermo", host, port)])
    try:
        for name, args in SAMPLING:
            code, body = await http(
                server, f"/api/devices/thermo/requests/{name}", "POST", {"args": args}
            )
            assert (code, body["code"]) == (403, "shared_connection"), body
    finally:
        await server.stop()
        await stop_device(device)


async def test_redis_filters_are_re2(redis_server, programs):
    device = await start_recording()
    host, port = device.bind_address
    try:
        programs.append(await start_gateway(redis_server.url, f"thermo={host}:{port}"))
        prog, web = await start_web_redis(redis_server.url)
        programs.append(prog)
        ws = await WS.connect(web)
        await until_synced(ws, "thermo")
        ws.close()
        # Look-ahead is Python re only; RE2 refuses it with the same code as without Redis.
        for pattern in ("((", "(?=t)temp"):
            code, body = await get(web.port, f"/api/devices/thermo/sensors?filter={quote(pattern)}")
            assert (code, body["code"]) == (400, "bad_filter"), body
        started = time.monotonic()
        code, body = await get(web.port, "/api/devices/thermo/sensors?filter=(.*)*(.*)*!")
        assert code == 200 and body == [], body
        assert time.monotonic() - started < TIMEOUT / 2
    finally:
        await stop_device(device)


def test_redact_url():
    from katcpx.web._redis_keys import redact_url

    assert redact_url("redis://:s3cret@127.0.0.1:6380/0") == "redis://:***@127.0.0.1:6380/0"
    assert redact_url("rediss://bob:s3cret@[::1]:6380/1") == "rediss://bob:***@[::1]:6380/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_passwords_and_tokens_stay_out_of_messages_and_logs(programs, tmp_path):
    secret = "s3cret-pw"
    server = RedisServer(tmp_path, password=secret)
    server.start()
    users = write_users(tmp_path)
    device = await start_recording()
    host, port = device.bind_address
    try:
        # No gateway yet: the error every client is sent names Redis without the password.
        prog, web = await start_web_redis(server.url, "--log-level", "INFO")
        programs.append(prog)
        code, body = await post(
            web.port, "/api/devices/thermo/requests/set-temp", {"args": [1]}, None
        )
        ws = await WS.connect(web)
        answer = await ws.request({"action": "read", "device": "thermo", "sensor": "temp"})
        assert answer["type"] == "error", answer
        for text in (json.dumps(body), json.dumps(answer), json.dumps(ws.hello)):
            assert secret not in text
        gateway = await start_gateway(
            server.url,
            f"thermo={host}:{port}",
            extra=("--users", str(users), "--log-level", "INFO"),
        )
        programs.append(gateway)
        assert "redis://:***@127.0.0.1" in gateway.first_line
        await until_synced(ws, "thermo")
        ws.close()
        # A bad control request with a user's token in it: logged without the token.
        client = redis.Redis(port=server.port, password=secret)
        try:
            bad = {"action": "call", "principal": {"user": "operator", "token": OPERATOR}}
            client.lpush("katcpx:control", json.dumps(bad))
            await wait_until(
                lambda: any("Bad control request" in line for line in gateway.lines),
                what="the gateway's warning",
            )
        finally:
            client.close()
        await wait_until(
            lambda: any("katcpx-gateway at" in line for line in prog.lines),
            what="the web instance's log of the gateway",
        )
        logs = "".join(gateway.lines + prog.lines)
        assert "redis://:***@127.0.0.1" in logs
        assert secret not in logs
        assert OPERATOR not in logs
    finally:
        await stop_device(device)
        server.kill()


async def test_users_web_refuses_control_through_a_gateway_without_users(
    redis_server, programs, tmp_path
):
    users = write_users(tmp_path)
    device = await start_recording()
    try:
        web, ws = await start_users_site(redis_server.url, programs, device, users, False)
        ws.close()
        await wait_until(
            lambda: any("checks no users" in line for line in programs[-1].lines),
            what="the web instance's warning",
        )
        for token in (OBSERVER, OPERATOR):
            code, body = await post(
                web.port, "/api/devices/thermo/requests/set-temp", {"args": [3]}, token
            )
            assert (code, body["code"]) == (503, "gateway_checks_no_users"), body
            assert "checks no users" in body["error"]
        assert device.set_temps == []
    finally:
        await stop_device(device)


def test_users_file_errors_name_the_user_and_files(tmp_path, caplog):
    from katcpx.web._users import load_users

    path = tmp_path / "users.toml"
    path.write_text("[[user]]\nname = 'ops'\nrole = 'read'\ntoken_file = 'gone.token'\n")
    with pytest.raises(ValueError) as info:
        load_users(path)
    text = str(info.value)
    assert str(path) in text and "user 'ops'" in text and "gone.token" in text, text
    # A short token is accepted but warned about, naming the user.
    (tmp_path / "gone.token").write_text("short\n")
    with caplog.at_level("WARNING", logger="katcpx.web"):
        load_users(path)
    assert any(
        "user 'ops'" in r.getMessage() and "5 characters" in r.getMessage() for r in caplog.records
    )


def run_command(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    from .conftest import env

    try:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env(),
        )
    except subprocess.TimeoutExpired as exc:  # it started instead of refusing
        raise AssertionError(f"{module} did not exit: {exc.stdout!r}") from None


def test_site_token_equal_to_a_users_token_is_refused(tmp_path):
    users = write_users(tmp_path)
    result = run_command(
        "katcpx.web",
        "--port",
        "0",
        "--users",
        str(users),
        "--token-file",
        str(tmp_path / "operator.token"),
        "127.0.0.1:1",
    )
    assert result.returncode != 0
    assert "holds the token of user 'operator'" in result.stderr, result.stderr


def test_gateway_users_file_error_is_one_line(tmp_path):
    result = run_command("katcpx.gateway", "127.0.0.1:1", "--users", str(tmp_path / "missing.toml"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("katcpx-gateway: --users: "), lines
    assert "missing.toml" in lines[0]


async def test_auth_is_an_action_and_says_who_you_are(tmp_path):
    from katcpx.web import DeviceHub, WebServer
    from katcpx.web._auth import Guard
    from katcpx.web._users import load_users

    table = load_users(write_users(tmp_path))
    device = await start_recording()
    hub = DeviceHub([DeviceSpec("thermo", *device.bind_address)], ("event",))
    web = WebServer(
        hub, "127.0.0.1", 0, guard=Guard.for_site("127.0.0.1", None, False, users=table)
    )
    await web.start()
    try:
        ws = await WS.connect(web)
        assert "auth" in ws.hello["actions"], ws.hello
        answer = await ws.request({"action": "nonsense"})
        assert answer["code"] == "unknown_action" and "auth" in answer["error"], answer
        answer = await ws.request({"action": "auth", "token": OBSERVER})
        assert (answer["ok"], answer["user"], answer["role"]) == (True, "observer", "read")
        ws.close()
    finally:
        await web.stop()
        await stop_device(device)
