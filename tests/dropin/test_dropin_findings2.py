"""A second user's program-by-program comparison with katcp-python 0.9.3 (issue 12, part b).

As in ``test_dropin_findings.py``: each snippet runs under katcp-python 0.9.3 and under
katcpx imported as ``katcp``; where the two differ by design (listed in the README's
"Moving from katcp-python"), the test checks katcpx's value and that katcp-python's differs.
"""

from __future__ import annotations

import textwrap

import pytest
from compat_values import assert_same, both, device_class

pytestmark = pytest.mark.peers

#: A device, a raw-socket helper ``exchange(srv, data)`` returning the lines that start with
#: ``!`` or ``#log`` (until ``!watchdog[99]`` arrives), and ``close``.
_PRELUDE = (
    """\
import logging, socket, sys, threading, time
import tornado.concurrent
from katcp import BlockingClient, Message
from katcp.kattypes import request, return_reply, Int, Str, Float
"""
    + device_class("Device")
    + """\
def exchange(srv, data):
    k = socket.create_connection(srv.bind_address)
    k.settimeout(5)
    k.sendall(data + b"?watchdog[99]\\n")
    out = b""
    while b"!watchdog[99]" not in out:
        chunk = k.recv(65536)
        if not chunk:
            break
        out += chunk
    k.close()
    return [line.decode() for line in out.split(b"\\n")
            if line.startswith((b"!", b"#log"))]
"""
)


def snippet(code: str) -> str:
    return _PRELUDE + textwrap.dedent(code)


def test_handler_thread_handlers_may_create_tornado_futures(katcp_python):
    # tornado's Future is an asyncio.Future: the handler thread has the server's loop as
    # its current event loop, so creating one there works as under katcp-python.
    code = snippet("""
    class D(Device):
        def request_future(self, req, msg):
            \"\"\"Returns a future of a reply.\"\"\"
            f = tornado.concurrent.Future()
            self.ioloop.call_later(0.05, lambda: f.set_result(req.make_reply("ok", "fut")))
            return f
        @request()
        @return_reply(Str())
        def request_decfut(self, req):
            \"\"\"Decorated, returns a future.\"\"\"
            f = tornado.concurrent.Future()
            self.ioloop.add_callback(lambda: f.set_result(("ok", "decfut")))
            return f
    srv = D("127.0.0.1", 0); srv.start(timeout=5)
    print(exchange(srv, b"?future[5]\\n?decfut[6]\\n"))
    srv.stop(); srv.join(5)
    """)
    lines = assert_same(katcp_python, code)
    assert lines == ["['!future[5] ok fut', '!decfut[6] ok decfut', '!watchdog[99] ok']"]


def test_join_waits_for_the_handler_in_flight(katcp_python):
    code = snippet("""
    done = []
    started = threading.Event()
    class D(Device):
        @request(Float())
        @return_reply()
        def request_slow(self, req, t):
            \"\"\"Slow.\"\"\"
            started.set()
            time.sleep(t)
            done.append(time.time())
            return ("ok",)
    srv = D("127.0.0.1", 0); srv.start(timeout=5)
    k = socket.create_connection(srv.bind_address)
    k.sendall(b"?slow[1] 0.6\\n")
    assert started.wait(5)
    srv.stop(); srv.join(10)
    print("handler finished before join returned:", bool(done) and done[0] <= time.time())
    print("handler threads alive:", [t.name for t in threading.enumerate()
                                     if t.name.endswith("message_handler") and t.is_alive()])
    k.close()
    """)
    assert assert_same(katcp_python, code) == [
        "handler finished before join returned: True",
        "handler threads alive: []",
    ]


_RETURNS = """
class D(Device):
    def request_tuple(self, req, msg):
        \"\"\"Returns a tuple.\"\"\"
        return ("ok", "x")
    @request()
    @return_reply(Int())
    def request_retbad(self, req):
        \"\"\"Returns a bad value.\"\"\"
        return "ok", "notanint"
    @request()
    @return_reply(Str())
    def request_retnone(self, req):
        \"\"\"Returns None through the decorator.\"\"\"
        return None
    def request_twice(self, req, msg):
        \"\"\"Replies twice.\"\"\"
        req.reply("ok", "first")
        return req.make_reply("ok", "second")
class Seen(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.ERROR and "twice" in record.getMessage():
            print("log:", record.getMessage().split(" (")[0])
logging.getLogger().addHandler(Seen())
srv = D("127.0.0.1", 0); srv.start(timeout=5)
for line in exchange(srv, b"?tuple[1]\\n?retbad[2]\\n?retnone[3]\\n?twice[4]\\n"):
    print(line[:60])
srv.stop(); srv.join(5)
"""


def test_lenient_handler_returns_and_fail_texts(katcp_python):
    theirs_all, ours_all = both(katcp_python, snippet(_RETURNS))
    theirs = [line for line in theirs_all if line.startswith("!")]
    ours = [line for line in ours_all if line.startswith("!")]
    # katcp-python: a raw handler's tuple is a traceback; katcpx replies with it (README).
    assert theirs[0].startswith("!tuple[1] fail Traceback")
    assert ours[0] == "!tuple[1] ok x"
    # A fail reply names the exception's class, not its module path.
    assert ours[1].startswith("!retbad[2] fail KatcpValueTypeError:"), ours
    assert ours[2].startswith("!retnone[3] fail KatcpTypeError:"), ours
    assert not any("katcpx." in line for line in ours), ours
    # One reply per request (spec 5.1 section 2.2); katcp-python sends both.
    assert "!twice[4] ok second" in theirs
    assert "!twice[4] ok first" in ours and "!twice[4] ok second" not in ours
    assert "log: handler request_twice returned a reply" in ours_all, ours_all


def test_whitespace_only_line_is_ignored_as_the_spec_asks(katcp_python):
    # Spec rev 5.1 section 2.4 (message format): lines of only whitespace are ignored.
    # katcp-python answers ``#log error`` (README difference).
    code = snippet("""
    srv = Device("127.0.0.1", 0); srv.start(timeout=5)
    for line in exchange(srv, b"   \\n\\t \\n"):
        print(line[:40])
    srv.stop(); srv.join(5)
    """)
    theirs, ours = both(katcp_python, code)
    assert ours == ["!watchdog[99] ok"]
    assert any(line.startswith("#log error") for line in theirs), theirs


def test_reply_repr_shows_its_message_id(katcp_python):
    code = """
    from katcp import Message
    print(repr(Message.reply("x", "ok", mid=5)))
    """
    theirs, ours = both(katcp_python, code)
    assert ours == ["<Message reply x[5] ('ok')>"]
    assert theirs != ours and "[5]" not in theirs[0]


def test_blocking_request_without_mid_uses_no_message_id(katcp_python):
    code = snippet("""
    srv = Device("127.0.0.1", 0); srv.start(timeout=5)
    c = BlockingClient(*srv.bind_address, timeout=3); c.start(timeout=5); c.wait_protocol(5)
    c.blocking_request(Message.request("watchdog"), use_mid=False, timeout=5)
    print(int(c.blocking_request(Message.request("watchdog"), timeout=5)[0].mid))
    c.stop(); c.join(5); srv.stop(); srv.join(5)
    """)
    theirs, ours = both(katcp_python, code)
    assert theirs == ["2"]  # katcp-python uses up an id on the request sent without one
    assert ours == ["1"]


def test_read_only_requests_wait_on_their_own_connection_only(katcp_python):
    # README "Liveness": on the slow request's own connection a ?watchdog read with it is
    # answered after it (as in katcp-python); another connection is answered at once.
    code = snippet("""
    release = threading.Event()
    blocking = threading.Event()
    class D(Device):
        def request_block(self, req, msg):
            \"\"\"Blocks the handler thread.\"\"\"
            blocking.set()
            release.wait(10)
            return req.make_reply("ok")
    srv = D("127.0.0.1", 0); srv.start(timeout=5)
    k = socket.create_connection(srv.bind_address); k.settimeout(10)
    k.sendall(b"?block[1]\\n?watchdog[2]\\n")
    assert blocking.wait(5)
    other = []
    t = threading.Thread(target=lambda: other.append(exchange(srv, b"")), daemon=True)
    t.start(); t.join(2)
    print("other connection answered while blocked:", other)
    release.set(); t.join(5)
    out = b""
    while b"!watchdog[2]" not in out:
        out += k.recv(65536)
    print([line.decode() for line in out.split(b"\\n") if line.startswith(b"!")])
    k.close(); srv.stop(); srv.join(5)
    """)
    theirs, ours = both(katcp_python, code)
    assert ours == [
        "other connection answered while blocked: [['!watchdog[99] ok']]",
        "['!block[1] ok', '!watchdog[2] ok']",
    ]
    assert theirs[1] == ours[1]
    assert theirs[0] == "other connection answered while blocked: []"  # one handler thread
