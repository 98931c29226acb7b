"""A server's malformed protocol version, and replies no request waits for.

Against the raw fake server: a malformed ``#version-connect katcp-protocol`` fails the
protocol waits at once, naming the version (also in katcp-cmd, run as its own process);
``5.1-`` is 5.1 without flags; an unexpected reply is logged at WARNING (spec rev 5.1
section 2).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakeserver import V5_BANNER, FakeConn, FakeServer, reply_for, request_parts

from katcpx.client import AsyncClient, BlockingClient
from katcpx.errors import KatcpClientError

ROOT = str(Path(__file__).resolve().parents[2])


def banner(version: bytes) -> bytes:
    return b"#version-connect katcp-protocol " + version + b"\n"


def test_blocking_wait_protocol_fails_at_once_naming_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.greeting.blocking")
    with FakeServer(banner(b"banana")) as server, caplog.at_level(logging.ERROR, logger.name):
        client = BlockingClient(*server.address, auto_reconnect=False, logger=logger)
        client.start()
        try:
            start = time.monotonic()
            assert client.wait_protocol(5) is False
            assert time.monotonic() - start < 2.5  # not the 5 s timeout
            assert client.protocol_error is not None and "'banana'" in client.protocol_error
            assert client.wait_ready(5) is False
            assert time.monotonic() - start < 2.5
        finally:
            client.stop()
            client.join(5)
    assert any("'banana'" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_version_connect_without_version_fails_at_once() -> None:
    with FakeServer(b"#version-connect katcp-protocol\n") as server:
        client = BlockingClient(*server.address, auto_reconnect=False)
        client.start()
        try:
            start = time.monotonic()
            assert client.wait_protocol(5) is False
            assert time.monotonic() - start < 2.5  # not the 5 s timeout
            assert client.protocol_error is not None and "no version" in client.protocol_error
        finally:
            client.stop()
            client.join(5)


async def test_until_protocol_raises_naming_version() -> None:
    with FakeServer(banner(b"5.x-IM")) as server:
        client = AsyncClient(*server.address, auto_reconnect=False)
        client.set_ioloop()
        client.start()
        try:
            with pytest.raises(KatcpClientError, match="'5.x-IM'"):
                await asyncio.wait_for(client.until_protocol(), 3)
        finally:
            await client.aclose()
        start = time.monotonic()
        with pytest.raises(KatcpClientError, match="'5.x-IM'"):
            await AsyncClient.connect(*server.address, timeout=5)
        assert time.monotonic() - start < 2.5


def test_empty_flag_list_is_no_flags() -> None:
    with FakeServer(banner(b"5.1-")) as server:
        client = BlockingClient(*server.address, auto_reconnect=False)
        client.start()
        try:
            assert client.wait_protocol(5)
            flags = client.protocol_flags
            assert flags is not None and (flags.major, flags.minor, flags.flags) == (5, 1, set())
            assert client.protocol_error is None
        finally:
            client.stop()
            client.join(5)


def test_katcp_cmd_names_bad_version_at_once() -> None:
    with FakeServer(banner(b"banana")) as server:
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "katcpx.cmd", "-t", "5", f"127.0.0.1:{server.port}", "watchdog"],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.monotonic() - start
    assert result.returncode == 2
    assert "'banana'" in result.stderr and "no KATCP #version-connect" not in result.stderr
    assert elapsed < 4.5  # failed on the greeting, not after the 5 s timeout


def unexpected_replies(conn: FakeConn, line: bytes) -> None:
    """Before each reply, send one with an unknown id and one no request asked for."""
    if line.startswith(b"?"):
        name, _mid, _args = request_parts(line)
        conn.send(b"!" + name + b"[999999] ok\n!nosuch ok\n" + reply_for(line))


async def test_unexpected_replies_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.greeting.unexpected")
    with (
        FakeServer(V5_BANNER, unexpected_replies) as server,
        caplog.at_level(logging.WARNING, logger.name),
    ):
        client = await AsyncClient.connect(*server.address, timeout=5, logger=logger)
        try:
            reply, _ = await client.call("watchdog")
            assert reply.arguments == [b"ok"]
        finally:
            await client.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    address = f"127.0.0.1:{server.port}"
    assert any("!watchdog[999999]" in w and address in w for w in warnings), warnings
    assert any("!nosuch" in w and address in w for w in warnings), warnings
