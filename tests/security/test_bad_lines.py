"""A request line that does not parse still gets a reply when its name can be recovered."""

from __future__ import annotations

import pytest
from server.helpers import connect, running

from .helpers import DeviceWithRequests


def next_reply(client):
    while True:
        msg = client.read()
        if msg.mtype == msg.REPLY:
            return msg


def test_bad_request_line_gets_an_invalid_reply() -> None:
    srv = DeviceWithRequests("127.0.0.1", 0)
    with running(srv), connect(srv) as bad, connect(srv) as other:
        bad.send_raw(b"?sensor-list /(\\w)\\1/\n")
        reply = next_reply(bad)
        assert reply.name == "sensor-list" and reply.mid is None
        assert reply.arguments[0] == b"invalid"
        assert b"unknown escape" in reply.arguments[1] and b"column 16" in reply.arguments[1]
        bad.send_raw(b"?watchdog[5] a\\qb\n")
        reply = next_reply(bad)
        assert (reply.name, reply.mid, reply.arguments[0]) == ("watchdog", b"5", b"invalid")
        # A line that is not a request gets only the #log; the link goes on.
        bad.send_raw(b"!bogus a\\qb\n")
        assert bad.request("watchdog")[0].arguments == [b"ok"]
        assert other.request("watchdog")[0].arguments == [b"ok"]


# Lines that show they are a request (and which), but do not parse: each gets a reply naming
# what is wrong. A bad message id is not echoed (spec 5.1 section 2.2: ids are 1..2**31-1;
# katcp-python answers ``?watchdog[0]`` with ``!watchdog[0] ok``, listed in the README).
BAD_REQUEST_LINES = [
    (b"?watchdog[0]", None, b"Bad message: bad message id '0': must be 1..2147483647"),
    (b"?watchdog[abc]", None, b"Bad message: bad message id 'abc': must be 1..2147483647"),
    (b"?watchdog[-1]", None, b"Bad message: bad message id '-1': must be 1..2147483647"),
    (b"?watchdog[01]", None, b"Bad message: bad message id '01': must be 1..2147483647"),
    (b"?watchdog[]", None, b"Bad message: bad message id '': must be 1..2147483647"),
    (b"?watchdog[1", None, b"Bad message: message id not closed with ]"),
    (b"?watchdog[5]x", None, b"Bad message: no white space after the message id's ], found 'x'"),
    (
        b"?watchdog[2147483648] a",
        None,
        b"Bad message: message id 2147483648 out of range 1..2147483647",
    ),
    (b" ?watchdog[7]", b"7", b"Bad message: line starts with white space instead of ?, ! or #"),
    (b"?echo[5] a\\qb", b"5", b"Bad message: unknown escape '\\q'"),
    (b"?echo a\\0b\\", None, b"Bad message: trailing backslash"),
    (b"?echo a\x00b", None, b"Bad message: raw NUL in argument (must be escaped)"),
]


@pytest.mark.parametrize(("line", "mid", "text"), BAD_REQUEST_LINES)
def test_every_bad_request_line_that_shows_its_name_gets_an_invalid_reply(line, mid, text):
    srv = DeviceWithRequests("127.0.0.1", 0)
    with running(srv), connect(srv) as client:
        client.send_raw(line + b"\n")
        reply = next_reply(client)
        name = line.split()[0].lstrip(b"?").split(b"[")[0].decode()
        assert (reply.name, reply.mid, reply.arguments[0]) == (name, mid, b"invalid")
        assert reply.arguments[1].startswith(text), reply.arguments[1]
        assert b" at column " in reply.arguments[1]
        assert client.request("watchdog")[0].arguments == [b"ok"]


def test_sim_exits_after_halt() -> None:
    import re
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "katcpx_devices.sim", "psu", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            found = re.match(r"psu +\S+:(\d+)", line)
            if found:
                port = int(found.group(1))
            if "Ctrl-C" in line:
                break
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"?halt\n")
            data = b""
            while b"!halt" not in data:
                chunk = sock.recv(4096)
                assert chunk
                data += chunk
        assert proc.wait(timeout=20) == 0
        rest = proc.stdout.read()
        assert "psu was halted (?halt); 0 device(s) left." in rest
        assert "every device was halted (?halt); exiting." in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
