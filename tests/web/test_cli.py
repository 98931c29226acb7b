"""The katcpx-web command: addresses, config files, and a real run in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

import pytest
import tornado.websocket

from katcpx.web import DeviceSpec, parse_device_spec
from katcpx.web._cli import build_parser, load_config, main, strategy_from

from .conftest import TIMEOUT


@pytest.mark.parametrize(
    "text, spec",
    [
        ("ant=10.0.0.1:7147", DeviceSpec("ant", "10.0.0.1", 7147)),
        ("10.0.0.1:7147", DeviceSpec("10.0.0.1:7147", "10.0.0.1", 7147)),
        ("ant=:7147", DeviceSpec("ant", "127.0.0.1", 7147)),
        ("w=[::1]:7000", DeviceSpec("w", "::1", 7000)),
        (" psu = localhost:1 ", DeviceSpec("psu", "localhost", 1)),
    ],
)
def test_parse_device_spec(text, spec):
    assert parse_device_spec(text) == spec


@pytest.mark.parametrize("text", ["ant", "ant=host", "host:port", "h:0", "h:70000", "a/b=h:1"])
def test_parse_device_spec_rejects(text):
    with pytest.raises(ValueError):
        parse_device_spec(text)


def test_json_config(tmp_path):
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"devices": {"ant": "127.0.0.1:7147", "wx": ":7149"}, "port": 9000}))
    specs, options = load_config(path)
    assert specs == [DeviceSpec("ant", "127.0.0.1", 7147), DeviceSpec("wx", "127.0.0.1", 7149)]
    assert options == {"port": 9000}


def test_toml_config(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(
        'min_interval = 0.5\nhost = "0.0.0.0"\n\n'
        '[[devices]]\nname = "ant"\naddress = "127.0.0.1:7147"\ndescription = "Dish 1"\n\n'
        "[[devices]]\nport = 7148\n"
    )
    specs, options = load_config(path)
    assert specs == [
        DeviceSpec("ant", "127.0.0.1", 7147, "Dish 1"),
        DeviceSpec("127.0.0.1:7148", "127.0.0.1", 7148),
    ]
    assert options == {"min_interval": 0.5, "host": "0.0.0.0"}


@pytest.mark.parametrize(
    "name, text",
    [
        ("a.json", "{nope"),
        ("a.json", "[1]"),
        ("a.json", '{"devices": 3}'),
        ("a.json", '{"devices": [{"name": "x"}]}'),
        ("a.json", '{"colour": "red"}'),
        ("a.toml", "devices = = 1"),
    ],
)
def test_bad_configs(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError):
        load_config(path)


def test_strategy_from():
    assert strategy_from(0) == ("event",)
    assert strategy_from(0.1) == ("event-rate", "0.1", "60.0")
    assert strategy_from(2, 5) == ("event-rate", "2.0", "5.0")
    with pytest.raises(ValueError):
        strategy_from(5, 2)


def test_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "no devices" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nonsense"])
    with pytest.raises(SystemExit):
        main(["--config", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        main(["a=:1", "--min-interval", "5", "--max-interval", "1"])
    assert build_parser().parse_args(["a=:1", "--min-interval", "0.25"]).min_interval == 0.25


async def test_runs_as_a_program(device):
    host, port = device.bind_address
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "katcpx.web",
        f"thermo={host}:{port}",
        "--port",
        "0",
        "--min-interval",
        "0.05",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = re.search(r"on (http://\S+)/", line)
        assert url, line
        conn = await tornado.websocket.websocket_connect(
            url.group(1).replace("http", "ws") + "/api/ws"
        )
        hello = json.loads(await asyncio.wait_for(conn.read_message(), TIMEOUT))
        assert hello["type"] == "hello" and hello["strategy"][0] == "event-rate"
        if not hello["devices"][0]["synced"]:
            while True:
                msg = json.loads(await asyncio.wait_for(conn.read_message(), TIMEOUT))
                if msg["type"] == "device" and msg["synced"]:
                    break
        conn.write_message(
            json.dumps({"action": "subscribe", "device": "thermo", "sensor": "temp"})
        )
        while True:
            msg = json.loads(await asyncio.wait_for(conn.read_message(), TIMEOUT))
            if msg["type"] == "update":
                assert msg["value"] == 20.5
                break
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
