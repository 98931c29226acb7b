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
