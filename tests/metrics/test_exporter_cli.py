"""katcpx-exporter's command line: bad arguments get a clear error and exit status."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from katcpx.metrics._exporter import build_parser, parse_listen

from .conftest import Gadget, eventually, fetch
from .procs import start_exporter


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "katcpx.metrics._exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev=127.0.0.1:7147", "--listen", "nowhere"], "expected HOST:PORT"),
        (["dev=127.0.0.1:7147", "--listen", ":99999"], "out of range (0 to 65535"),
        (["dev=127.0.0.1:7147", "--timeout", "0"], "must be a number of seconds > 0"),
        (["dev=127.0.0.1:7147", "--timeout", "-1"], "must be a number of seconds > 0"),
        (["dev=127.0.0.1:7147", "--timeout", "soon"], "'soon' is not a number of seconds"),
        (["dev=127.0.0.1:7147", "--log-level", "LOUD"], "choose one of DEBUG, INFO, WARNING"),
        (["dev=127.0.0.1:7147", "--max-string-length", "-1"], "-1 out of range (>= 0)"),
        (["=127.0.0.1:7148"], "empty name before '='"),
        (["psu=:7148"], "empty host"),
        (["dev=nowhere"], "expected [name=]host:port"),
        (["dev=127.0.0.1:7147", "--sensor-filter", "("], "bad regular expression '('"),
        ([], "the following arguments are required: DEVICE"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("katcpx.web", ["--log-level", "LOUD", "a=127.0.0.1:7147"], "choose one of DEBUG"),
        ("katcpx.web", ["--device-filter", "(", "a=127.0.0.1:7147"], "bad regular expression"),
        ("katcpx.web", ["--timeout", "0", "a=127.0.0.1:7147"], "seconds > 0"),
        ("katcpx_devices.sim", ["psu", "--metrics-port", "99999"], "out of range (0 to 65535"),
    ],
)
def test_bad_arguments_of_web_and_sim(module: str, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert message in result.stderr


def test_log_level_any_case() -> None:
    args = build_parser().parse_args(["dev=127.0.0.1:7147", "--log-level", "debug"])
    assert args.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("command", "flag", "said"),
    [
        (["katcpx.metrics._exporter", "dev=127.0.0.1:1", "--listen"], "127.0.0.1:{}",
         ["cannot listen on 127.0.0.1:{}", "another --listen HOST:PORT (port 0 picks a free one)"]),
        (["katcpx.web", "a=127.0.0.1:1", "--port"], "{}",
         ["cannot listen on 127.0.0.1:{}", "--port 0 for any free port"]),
        (["katcpx_devices.sim", "psu", "--port", "0", "--metrics-port"], "{}",
         ["cannot serve metrics on 127.0.0.1:{}", "--metrics-port PORT (0 picks a free one)"]),
    ],
)  # fmt: skip
def test_busy_port_names_address_and_fix(command: list[str], flag: str, said: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", *command, flag.format(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1, result
    for text in said:
        assert text.format(port) in result.stderr


async def test_excluded_devices_are_not_connected(gadget: Gadget) -> None:
    """--device-filter: excluded devices get no connection and are not announced."""

    connections: list[asyncio.StreamWriter] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    other = await asyncio.start_server(counted, "127.0.0.1", 0)
    ports = {"gadget": gadget.bind_address[1], "other": other.sockets[0].getsockname()[1]}
    exporter, url = await start_exporter(ports, "--device-filter", "^gad")
    try:
        assert "gadget at http" in exporter.lines[-1] and "other" not in exporter.lines[-1]

        async def up() -> object:
            return (await fetch(url)).value("katcp_device_up", device="gadget") == 1

        await eventually(up, what="gadget up")
        assert connections == []
    finally:
        assert await exporter.stop() == 0
        other.close()


async def test_filter_excluding_every_device_warns() -> None:
    exporter, url = await start_exporter({"psu": 1}, "--device-filter", "^nothing$")
    try:
        log = "".join(exporter.lines)
        assert "WARNING katcpx.exporter: --device-filter '^nothing$' excludes every device" in log
        assert "katcpx-exporter: no devices at http" in log
    finally:
        assert await exporter.stop() == 0


def test_parse_listen() -> None:
    assert parse_listen(":9147") == ("127.0.0.1", 9147)
    assert parse_listen("[::1]:0") == ("::1", 0)


async def test_unreachable_device_is_down_not_an_error() -> None:
    """A device that is not there: /metrics answers, with katcp_device_up 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    exporter, url = await start_exporter({"ghost": port}, "--timeout", "0.5")
    try:
        scrape = await fetch(url)
        assert scrape.value("katcp_device_up", device="ghost") == 0
        assert scrape.sensors("ghost") == set()
        # Said at WARNING, from the exporter's own loggers, with name and address: at start
        # (without a scrape) and once by the scrape.
        wanted = {
            f"WARNING katcpx.exporter: device ghost at 127.0.0.1:{port}: not connected after",
            f"WARNING katcp.metrics: device ghost at 127.0.0.1:{port} is not connected",
        }
        while wanted:
            line = await exporter.readline()
            wanted = {w for w in wanted if w not in line}
    finally:
        assert await exporter.stop() == 0


def test_documented_sensor_filter_leaves_out_ops_sessions() -> None:
    """docs/monitoring.md's ``--sensor-filter '^(?!op\\.)'`` example."""
    import re

    pattern = build_parser().parse_args(["a=127.0.0.1:1", "--sensor-filter", r"^(?!op\.)"])
    keep = [
        n
        for n in ("op.slew.session", "op.track.session", "pos.az")
        if re.search(pattern.sensor_filter, n)
    ]
    assert keep == ["pos.az"]
