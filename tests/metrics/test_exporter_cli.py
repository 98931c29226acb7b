"""katcpx-exporter's command line: bad arguments get a clear error and exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from katcpx.metrics.exporter import parse_listen

from .procs import start_exporter


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "katcpx.metrics.exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev=127.0.0.1:7147", "--listen", "nowhere"], "expected HOST:PORT"),
        (["dev=127.0.0.1:7147", "--listen", ":99999"], "out of range"),
        (["dev=nowhere"], "expected [name=]host:port"),
        (["dev=127.0.0.1:7147", "--sensor-filter", "("], "bad sensor filter"),
        ([], "the following arguments are required: DEVICE"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_parse_listen() -> None:
    assert parse_listen(":9147") == ("127.0.0.1", 9147)
    assert parse_listen("[::1]:0") == ("::1", 0)


async def test_unreachable_device_is_down_not_an_error() -> None:
    """A device that is not there: /metrics answers, with katcp_device_up 0."""
    import socket

    from .conftest import fetch

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    exporter, url = await start_exporter({"ghost": port})
    try:
        scrape = await fetch(url)
        assert scrape.value("katcp_device_up", device="ghost") == 0
        assert scrape.sensors("ghost") == set()
    finally:
        assert await exporter.stop() == 0
