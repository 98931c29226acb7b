"""A user's program-by-program comparison of katcpx with katcp-python 0.9.3: what it found.

Each test runs the same snippet under katcp-python 0.9.3 (its venv) and under katcpx
imported as ``katcp``, and compares what the snippet prints (see ``tests/compat_values.py``).
Where the two differ by design (a README-listed difference), the test checks katcpx's value.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from compat_values import assert_same, both, run_snippet

pytestmark = pytest.mark.peers

#: Run before each snippet that needs a device: a minimal server class, start/stop helpers,
#: and ``attempt`` (prints which error a call raises and whether it raised at once).
_DEVICE = """\
import logging, sys, threading, time
from katcp import DeviceServer, BlockingClient, CallbackClient, Message, Sensor
class Device(DeviceServer):
    VERSION_INFO = ("s", 1, 0)
    BUILD_INFO = ("s", 1, 0, "")
    def setup_sensors(self):
        pass
def serve(cls=Device, client=BlockingClient, **options):
    srv = cls("127.0.0.1", 0)
    if options:
        srv.set_concurrency_options(**options)
    srv.start(timeout=5)
    return srv, connect(srv, client)
def connect(srv, client=BlockingClient):
    c = client(*srv.bind_address, timeout=3)
    c.start(timeout=5)
    c.wait_protocol(5)
    return c
def close(srv, *clients):
    for c in clients:
        c.stop(); c.join(5)
    srv.stop(); srv.join(5)
def attempt(label, call):
    started = time.time()
    try:
        call()
        print(label, "no error")
    except Exception as exc:
        print(label, "raises AssertionError" if isinstance(exc, AssertionError)
              else "raises " + type(exc).__name__)
    print(label, "at once:", time.time() - started < 1.0)
"""


def device(code: str) -> str:
    """`code` (indented as in a test) after the :data:`_DEVICE` prelude."""
    return _DEVICE + textwrap.dedent(code)


def test_subclass_on_message_override_is_not_on_the_dispatch_path(katcp_python):
    # katcp-python's set_concurrency_options installs the dispatch on the instance: an
    # on_message override that does not call super never runs, and requests are answered.
    code = device("""
    class S(Device):
        def on_message(self, client_conn, msg):
            print("override called", msg)
    for options in ({}, {"handler_thread": False}, {"thread_safe": False, "handler_thread": False}):
        srv, c = serve(S, **options)
        print(options, c.blocking_request(Message.request("watchdog"), timeout=5)[0])
        close(srv, c)
    """)
    lines = assert_same(katcp_python, code)
    assert all(line.endswith("!watchdog[1] ok") for line in lines), lines


def test_handle_message_override_sees_every_request(katcp_python):
    code = device("""
    class S(Device):
        def handle_message(self, client_conn, msg):
            print("seen", msg)
            return super(S, self).handle_message(client_conn, msg)
    srv, c = serve(S)
    print(c.blocking_request(Message.request("watchdog"), timeout=5)[0])
    close(srv, c)
    """)
    assert assert_same(katcp_python, code) == ["seen ?watchdog[1]", "!watchdog[1] ok"]


def test_core_exception_classes(katcp_python):
    code = """
    from katcp import core
    for name in ("KatcpSyntaxError", "KatcpTypeError", "KatcpClientError", "KatcpVersionError",
                 "KatcpClientDisconnected", "KatcpDeviceError", "FailReply", "AsyncReply"):
        cls = getattr(core, name)
        bases = (ValueError, TypeError, AssertionError, RuntimeError, core.KatcpClientError)
        print(name, [b.__name__ for b in bases if issubclass(cls, b)])
    """
    theirs, ours = both(katcp_python, code)
    # katcpx's KatcpTypeError is also a ValueError (what katcp-python's kattypes raise).
    assert theirs[1] == "KatcpTypeError ['TypeError']"
    assert ours == [*theirs[:1], "KatcpTypeError ['ValueError', 'TypeError']", *theirs[2:]]


def test_bad_message_type_and_id_raise_katcp_syntax_error(katcp_python):
    code = """
    from katcp import Message
    from katcp.core import KatcpSyntaxError
    for make in (lambda: Message(None, "foo"), lambda: Message(7, "foo"),
                 lambda: Message.request("foo", mid="abc"),
                 lambda: Message.request("foo", mid=b"1x")):
        try:
            make()
        except KatcpSyntaxError as exc:
            print("KatcpSyntaxError", exc)
    """
    assert_same(katcp_python, code)


def test_message_id_outside_the_spec_range_raises_katcp_syntax_error():
    # katcp-python takes 0 (spec 5.1 section 2.2: ids are 1..2**31-1; listed in the README).
    code = """
    from katcp import Message
    from katcp.core import KatcpSyntaxError
    for mid in (0, 2**31, "0", True):
        try:
            Message.request("foo", mid=mid)
        except KatcpSyntaxError as exc:
            print(exc)
    """
    assert run_snippet(sys.executable, "katcpx", code) == [
        "Invalid message id 0: outside the range 1 to 2147483647.",
        "Invalid message id 2147483648: outside the range 1 to 2147483647.",
        "Invalid message id '0'.",
        "Invalid message id True: must be an integer, not bool.",
    ]


def test_kattype_value_errors_are_type_errors_too(katcp_python):
    code = """
    from katcp.kattypes import Int
    from katcp.core import KatcpTypeError
    print(issubclass(KatcpTypeError, TypeError))
    try:
        Int(min=0, max=5).unpack(b"9")
    except ValueError as exc:
        print("ValueError", exc)
    """
    theirs, ours = both(katcp_python, code)
    assert ours == theirs


def test_request_apis_refuse_a_message_that_is_not_a_request_at_once(katcp_python):
    # katcp-python's send_request asserts the type: AssertionError at once, never a wait for
    # the timeout. katcpx raises NotARequestError, an AssertionError.
    code = device("""
    srv, first = serve()
    for cls in (BlockingClient, CallbackClient):
        c = connect(srv, cls)
        for msg in (Message.inform("foo"), Message.reply("foo", "ok")):
            attempt("blocking_request", lambda: c.blocking_request(msg, timeout=3))
        attempt("send_request", lambda: c.send_request(Message.inform("foo")))
        if not hasattr(c, "until_ready"):  # katcp-python's future_request from a thread breaks
            print("future_request raises AssertionError")
            print("future_request at once: True")
        else:  # a future that has already failed, as katcp-python's on its loop
            attempt("future_request", lambda: c.future_request(Message.inform("foo")).result(0))
        print(c.blocking_request(Message.request("watchdog"), timeout=3)[0].arguments)
        c.stop(); c.join(5)
    close(srv, first)
    """)
    theirs, ours = both(katcp_python, code)
    # katcp-python also logs a traceback per refused request when its client stops.
    theirs = [line for line in theirs if line.startswith(("blocking", "send", "future", "["))]
    assert ours == theirs
    assert ours.count("blocking_request raises AssertionError") == 4
    assert "blocking_request at once: False" not in ours


def test_callback_request_refuses_a_non_request_at_once():
    # katcp-python raises the AssertionError on its loop (the thread-safe wrapper waits for
    # it); katcpx raises it in the caller, with nothing sent.
    code = device("""
    srv, c = serve(client=CallbackClient)
    attempt("callback_request", lambda: c.callback_request(Message.inform("foo")))
    attempt("bad reply_cb", lambda: c.callback_request(Message.request("watchdog"), reply_cb=1))
    attempt("bad user_data", lambda: c.callback_request(Message.request("watchdog"), user_data=1))
    close(srv, c)
    """)
    assert run_snippet(sys.executable, "katcpx", code) == [
        "callback_request raises AssertionError",
        "callback_request at once: True",
        "bad reply_cb raises TypeError",
        "bad reply_cb at once: True",
        "bad user_data raises TypeError",
        "bad user_data at once: True",
    ]


def test_bad_timeout_raises_type_error_in_the_caller_without_a_loop_traceback(katcp_python):
    # katcp-python raises TypeError; katcpx raises it before handing anything to the loop, so
    # no "Exception in callback" traceback is logged (ERRORs are logged to stdout).
    code = device("""
    logging.basicConfig(stream=sys.stdout, level=logging.ERROR, format="LOG %(name)s %(message)s")
    srv, c = serve()
    attempt("blocking_request", lambda: c.blocking_request(Message.request("watchdog"), timeout="1"))
    attempt("future_request", lambda: c.future_request(Message.request("watchdog"), timeout="1").result(3))
    # The next request passes through the client's loop after any callback handed to it
    # above, so a traceback logged there would be printed before its reply.
    print(c.blocking_request(Message.request("watchdog"), timeout=3)[0].arguments)
    close(srv, c)
    """)
    theirs, ours = both(katcp_python, code)
    assert theirs[:2] == ["blocking_request raises TypeError", "blocking_request at once: True"]
    # katcp-python's future_request, called from a thread, returns a future that cannot be
    # waited on, and logs the TypeError on its loop: katcpx raises it in the caller.
    assert ours == [
        *theirs[:2],
        "future_request raises TypeError",
        "future_request at once: True",
        "[b'ok']",
    ]


def test_call_with_a_bad_timeout_raises_type_error_at_once():
    code = device("""
    import asyncio
    from katcp import AsyncClient
    async def main():
        srv = Device("127.0.0.1", 0)
        srv.start(timeout=5)
        client = await AsyncClient.connect(*srv.bind_address)
        try:
            await asyncio.wait_for(client.call("watchdog", timeout="1"), 2)
        except TypeError as exc:
            print("TypeError", exc)
        await client.aclose()
        close(srv)
    asyncio.run(main())
    """)
    assert run_snippet(sys.executable, "katcpx", code) == [
        "TypeError call() timeout must be a number of seconds or None, not '1'"
    ]


def test_kattype_error_texts_match_katcp_python(katcp_python):
    # Users' suites compare these texts (assert_request_fails(error_equals=...)); the classes
    # differ only in that katcpx's are KatcpTypeError (a ValueError and a TypeError).
    code = """
    from katcp.kattypes import (Int, Float, Str, Discrete, DiscreteMulti, Lru, Address,
        Timestamp, TimestampOrNow, StrictTimestamp, Struct, Regex, unpack_types, pack_types)
    V = 5
    cases = [
        lambda: unpack_types((Int(multiple=True),), [], [], V),
        lambda: unpack_types((Int(), Int(multiple=True)), [b"1", b"2", b"x"], ["a"], V),
        lambda: Int().pack(None, V),
        lambda: Int().pack("a", V),
        lambda: Float().pack("a", V),
        lambda: Str().pack(None, V),
        lambda: DiscreteMulti(("a", "b")).unpack(b"a,c", V),
        lambda: Lru().pack("x", V),
        lambda: Address().pack("x", V),
        lambda: Address().unpack(b"x:y", V),
        lambda: Timestamp().pack("x", V),
        lambda: Timestamp().pack("x", 4),
        lambda: TimestampOrNow().unpack(b"x", V),
        lambda: StrictTimestamp().unpack(b"-1", V),
        lambda: StrictTimestamp().unpack(b"x", V),
        lambda: StrictTimestamp().pack("x", V),
        lambda: Struct(">hh").unpack(b"\\x01", V),
        lambda: Struct(">hh").pack((1,), V),
        lambda: Regex("^a$").unpack(b"b", V),
        lambda: pack_types((Int(),), [1, 2], V),
    ]
    for case in cases:
        try:
            case()
        except Exception as exc:
            print(isinstance(exc, ValueError) or isinstance(exc, TypeError), exc)
    """
    assert_same(katcp_python, code)


def test_missing_multiple_argument_error_names_no_parameter(katcp_python):
    # katcp-python leaves *args parameters unnamed: "Error in parameter 1 (): ...".
    code = device("""
    from katcp.kattypes import request, return_reply, Int
    class S(Device):
        @request(Int(multiple=True))
        @return_reply(Int())
        def request_sum(self, req, *vals):
            \"\"\"Sum ints.\"\"\"
            return ("ok", sum(vals))
        @request(Int(), Int(multiple=True))
        @return_reply(Int())
        def request_sum2(self, req, first, *rest):
            \"\"\"Sum ints.\"\"\"
            return ("ok", first + sum(rest))
    srv, c = serve(S)
    for req in (("sum",), ("sum", 1, "x"), ("sum2",), ("sum2", 1, 2, "x"), ("sum", 1, 2)):
        print(c.blocking_request(Message.request(*req), timeout=5)[0])
    close(srv, c)
    """)
    lines = assert_same(katcp_python, code)
    assert lines[0] == r"!sum[1] fail Error\_in\_parameter\_1\_():\_No\_value\_or\_default\_given"


def test_client_handler_without_docstring_is_refused(katcp_python):
    # katcp-python's DeviceMetaclass asserts every handler has a docstring, for clients too;
    # katcpx raises MissingDocstringError, both an AssertionError and (as for servers) a
    # TypeError.
    code = """
    from katcp import CallbackClient, BlockingClient, AsyncClient
    for base in (CallbackClient, BlockingClient, AsyncClient):
        for prefix in ("inform_", "reply_", "request_"):
            try:
                type("C", (base,), {prefix + "foo": lambda self, msg: None})
                print(base.__name__, prefix, "accepted")
            except AssertionError as exc:
                print(base.__name__, prefix, "refused:", str(exc).split(": ")[-1])
    def documented(self, msg):
        \"\"\"Has a docstring.\"\"\"
    type("C", (BlockingClient,), {"inform_foo": documented})
    print("documented accepted")
    """
    lines = assert_same(katcp_python, code)
    assert "BlockingClient inform_ refused: Inform 'foo' has no docstring." in lines
    ours = run_snippet(
        sys.executable, "katcpx", code.replace("except AssertionError", "except TypeError")
    )
    assert ours == lines


def test_timeout_reply_reports_the_elapsed_time(katcp_python):
    # katcp-python: "Request slow timed out after 0.200992 seconds." (time since sending).
    code = device("""
    import re
    release = threading.Event()
    class S(Device):
        def request_slow(self, req, msg):
            \"\"\"Never replies in time.\"\"\"
            release.wait(5)
            return Message.reply("slow", "ok")
    srv, c = serve(S)
    # Hold the client's loop past the deadline, so the time elapsed differs from the timeout.
    threading.Timer(0.05, lambda: c.ioloop.add_callback(time.sleep, 0.6)).start()
    reply = c.blocking_request(Message.request("slow"), timeout=0.2)[0]
    release.set()
    text = reply.arguments[1].decode()
    seconds = float(re.match(r"Request slow timed out after ([0-9.]+) seconds\\.$", text).group(1))
    print(reply.arguments[0], 0.6 <= seconds < 1.2)
    close(srv, c)
    """)
    assert assert_same(katcp_python, code) == ["b'fail' True"]


def test_server_log_lines_and_disconnect_reason(katcp_python):
    # katcp-python logs "Request x FAIL: ..." for a FailReply, "Request x FUTURE FAIL: ..."
    # for one raised by a handler that finished later, and nothing for the fail reply of
    # ?sensor-list/?sensor-value of an unknown name; a client closing gives "Socket EOF".
    code = device("""
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                records.append(record.getMessage().split("\\n")[0])
    logging.getLogger("katcp").addHandler(Keep())
    logging.getLogger("katcp").setLevel(logging.ERROR)
    gone = threading.Event()
    reasons = []
    class S(Device):
        def setup_sensors(self):
            self.add_sensor(Sensor.integer("n", "n", "", [0, 10], default=1))
        def on_client_disconnect(self, conn, msg, connection_valid):
            reasons.append((msg, connection_valid))
            gone.set()
            return super(S, self).on_client_disconnect(conn, msg, connection_valid)
    srv, c = serve(S)
    for req in (("sensor-list", "nosuch"), ("sensor-value", "nosuch"),
                ("sensor-sampling", "n", "bogus")):
        print(c.blocking_request(Message.request(*req), timeout=5)[0])
    c.stop(); c.join(5)
    gone.wait(5)
    close(srv)
    print(records)
    print(reasons)
    """)
    lines = assert_same(katcp_python, code)
    assert lines[-2:] == [
        "['Request sensor-sampling FUTURE FAIL: Unknown strategy name: bogus.']",
        "[('Socket EOF', False)]",
    ]


def test_none_argument_is_an_empty_argument(katcp_python):
    # katcp-python formats None as str(None); the spec has no null value (README-listed).
    code = """
    from katcp import Message
    print(str(Message.request("foo", None, 1)))
    """
    theirs, ours = both(katcp_python, code)
    assert theirs == ["?foo None 1"]
    assert ours == [r"?foo \@ 1"]


def test_request_while_disconnected_fails_without_a_message_id(katcp_python):
    # katcp-python takes an id and hands back a request-type message (README-listed).
    code = """
    import socket
    from katcp import BlockingClient, Message
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    c = BlockingClient("127.0.0.1", port)
    c.start(timeout=5)
    reply = c.blocking_request(Message.request("watchdog"), timeout=0.5)[0]
    print(reply.mtype, str(reply).replace(str(port), "PORT"))
    c.stop(); c.join(5)
    """
    theirs, ours = both(katcp_python, code)
    assert theirs == [r"0 ?watchdog[1] fail Not\_connected\_to\_device\_127.0.0.1:PORT"]
    assert ours == [r"1 !watchdog fail Not\_connected\_to\_device\_127.0.0.1:PORT"]


def test_future_request_on_the_loop_returns_a_failed_future(katcp_python):
    # katcp-python's future_request, on its loop, hands argument errors back in its future.
    code = device("""
    from tornado import gen
    srv, c = serve(client=CallbackClient)
    finished = threading.Event()
    @gen.coroutine
    def on_loop():
      try:
        for args in ((Message.inform("foo"),), (Message.request("watchdog"), "1")):
            f = c.future_request(*args)
            print("returned", f.done())
            try:
                yield f
            except AssertionError:
                print("AssertionError")
            except TypeError:
                print("TypeError")
      finally:
        finished.set()
    c.ioloop.add_callback(on_loop)
    assert finished.wait(5)
    close(srv, c)
    """)
    assert assert_same(katcp_python, code) == [
        "returned True",
        "AssertionError",
        "returned True",
        "TypeError",
    ]
