"""REST API and its OpenAPI document."""

from __future__ import annotations

import re

from katcpx.sensor import Sensor
from katcpx.web import DeviceSpec
from katcpx.web import _rest as rest

from .conftest import http, start_web


async def test_list_devices(web, device):
    status, body = await http(web, "/api/devices")
    assert status == 200
    (dev,) = body
    assert dev["device"] == "thermo" and dev["state"] == "synced" and dev["connected"]
    assert dev["sensors"] == 4 and dev["requests"] >= 10
    status, one = await http(web, "/api/devices/thermo")
    assert status == 200 and one == dev


async def test_sensors_with_filter(web):
    status, body = await http(web, "/api/devices/thermo/sensors")
    assert status == 200
    assert [s["name"] for s in body] == ["count", "label", "mode", "temp"]
    status, body = await http(web, "/api/devices/thermo/sensors?filter=^(temp|mode)$")
    assert [s["name"] for s in body] == ["mode", "temp"]
    mode = body[0]
    assert mode["type"] == "discrete" and mode["params"] == ["idle", "heat", "cool"]
    status, body = await http(web, "/api/sensors?filter=temp")
    assert status == 200 and [(s["device"], s["name"]) for s in body] == [("thermo", "temp")]
    status, body = await http(web, "/api/devices/thermo/sensors?filter=(")
    assert status == 400 and body["code"] == "bad_filter" and "bad filter" in body["error"]


async def test_read_sensor_fresh_and_cached(web, device):
    device.temp.set_value(42.25, Sensor.ERROR)
    status, body = await http(web, "/api/devices/thermo/sensors/temp")
    assert status == 200
    assert body["value"] == 42.25 and body["status"] == "error" and body["units"] == "degC"
    assert body["received"] > 0
    device.temp.set_value(1.0)
    # Not subscribed: the cached reading is the last one read.
    status, cached = await http(web, "/api/devices/thermo/sensors/temp?cached=1")
    assert status == 200 and cached["value"] == 42.25


async def test_unknown_names_are_404(web):
    for path in (
        "/api/devices/nowhere",
        "/api/devices/nowhere/sensors",
        "/api/devices/thermo/sensors/nope",
        "/api/devices/thermo/requests/nope",
    ):
        status, body = await http(web, path)
        assert status == 404, path
        assert body["code"] in ("unknown_device", "unknown_sensor", "unknown_request")
    status, body = await http(web, "/api/devices/thermo/requests/nope", "POST", {"args": []})
    assert status == 404 and body["code"] == "unknown_request"
    status, body = await http(web, "/api/elsewhere")
    assert status == 404 and body["code"] == "http_404"


async def test_requests_listed_with_parameters(web):
    status, body = await http(web, "/api/devices/thermo/requests")
    assert status == 200
    by_name = {r["name"]: r for r in body}
    assert {"set-temp", "greet", "stall", "help", "sensor-value"} <= set(by_name)
    st = by_name["set-temp"]
    assert st["summary"] == "Set the temperature set point."
    # Summaries are plain text: no reStructuredText markup (the description keeps it).
    log_level = by_name["log-level"]
    assert "``#log``" in log_level["description"]
    assert log_level["summary"] == "Query or set the logging level of this client's #log informs."
    assert rest.plain_text("see :func:`foo`, `x` and ``?stop``") == "see foo, x and ?stop"
    assert st["parameters"] == [
        {
            "name": "t",
            "type": "float",
            "description": "New temperature in degrees Celsius.",
            "optional": False,
        }
    ]
    greet = by_name["greet"]["parameters"]
    assert [(p["name"], p["optional"]) for p in greet] == [("name", False), ("times", True)]
    status, one = await http(web, "/api/devices/thermo/requests/set-temp")
    assert status == 200 and one == st


async def test_call_request(web, device):
    status, body = await http(web, "/api/devices/thermo/requests/set-temp", "POST", {"args": [7.5]})
    assert status == 200 and body["ok"] is True and body["reply"] == ["7.5"]
    assert device.temp.value() == 7.5
    status, body = await http(web, "/api/devices/thermo/requests/set-temp", "POST", ["-99"])
    assert status == 200 and body["ok"] is False and body["status"] == "fail"
    assert body["error"] == "too cold"
    status, body = await http(
        web, "/api/devices/thermo/requests/greet", "POST", {"args": ["bo", 3], "timeout": 2}
    )
    assert body["informs"] == [["hello bo"]] * 3
    status, body = await http(web, "/api/devices/thermo/requests/stall", "POST", {"timeout": 0.2})
    assert status == 504 and body["status"] == "timeout"
    status, body = await http(web, "/api/devices/thermo/requests/help", "POST")
    assert status == 200 and body["ok"] and len(body["informs"]) >= 10


async def test_call_bad_bodies(web):
    for body, code in (
        ("{oops", "invalid_json"),
        ('"text"', "bad_message"),
        ({"timeout": "soon"}, "bad_message"),
        ({"args": [[1]]}, "error"),
    ):
        status, answer = await http(web, "/api/devices/thermo/requests/set-temp", "POST", body)
        assert status == 400, (body, answer)
        assert answer["code"] == code


async def test_device_down_is_503(device):
    host, port = device.bind_address
    server = await start_web([DeviceSpec("thermo", host, port)])
    try:
        device.stop()
        await device.until_stopped()
        await server.hub.resource("thermo").until_state("disconnected", 5)
        status, body = await http(server, "/api/devices/thermo/requests/set-temp", "POST", [1])
        assert status == 503 and body["code"] == "device_unavailable"
        status, body = await http(server, "/api/devices/thermo/sensors/temp")
        assert status == 503 and body["code"] == "device_unavailable"
        status, body = await http(server, "/api/devices/thermo")
        assert status == 200 and body["state"] == "disconnected"
    finally:
        await server.stop()


async def test_openapi_document_describes_every_route(web):
    status, doc = await http(web, "/api/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "katcpx-web"
    assert doc["servers"] == [{"url": f"http://127.0.0.1:{web.port}"}]
    # Every REST route of the application is documented, with its path parameters.
    routes = [r.matcher.regex.pattern for r in web.app.wildcard_router.rules]
    documented = {
        re.sub(r"\{[^}]+\}", "([^/]+)", p).replace(".", r"\.") + "$" for p in doc["paths"]
    }
    rest_routes = {r for r in routes if r.startswith("/api/") and "ws" not in r}
    assert rest_routes == documented
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{([^}]+)\}", path)), path
            for resp in op["responses"].values():
                ref = resp.get("content", {}).get("application/json", {}).get("schema", {})
                target = ref.get("$ref") or ref.get("items", {}).get("$ref")
                if target:
                    assert target.split("/")[-1] in doc["components"]["schemas"]


async def test_dashboard_is_served(web):
    import tornado.httpclient

    client = tornado.httpclient.AsyncHTTPClient()
    page = await client.fetch(f"http://127.0.0.1:{web.port}/")
    text = page.body.decode()
    assert '<canvas id="plot"' in text and "/static/app.js" in text
    # No external resources: the machine running it may have no internet.
    assert "http://" not in text and "https://" not in text
    for name in ("app.js", "style.css"):
        asset = await client.fetch(f"http://127.0.0.1:{web.port}/static/{name}")
        assert asset.code == 200 and b"https://" not in asset.body
