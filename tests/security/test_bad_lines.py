"""A request line that does not parse still gets a reply when its name can be recovered."""

from __future__ import annotations

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
