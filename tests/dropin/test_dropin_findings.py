"""A user's program-by-program comparison of katcpx with katcp-python 0.9.3: what it found.

Each test runs the same snippet under katcp-python 0.9.3 (its venv) and under katcpx
imported as ``katcp``, and compares what the snippet prints (see ``tests/compat_values.py``).
Where the two differ by design (a README-listed difference), the test checks katcpx's value.
"""

from __future__ import annotations

import sys

import pytest
from compat_values import assert_same, both, run_snippet

pytestmark = pytest.mark.peers


def test_subclass_on_message_override_is_not_on_the_dispatch_path(katcp_python):
    # katcp-python's set_concurrency_options installs the dispatch on the instance: an
    # on_message override that does not call super never runs, and requests are answered.
    code = """
    from katcp import DeviceServer, BlockingClient, Message
    for options in ({}, {"handler_thread": False}, {"thread_safe": False, "handler_thread": False}):
        class S(DeviceServer):
            VERSION_INFO = ("s", 1, 0)
            BUILD_INFO = ("s", 1, 0, "")
            def setup_sensors(self):
                pass
            def on_message(self, client_conn, msg):
                print("override called", msg)
        srv = S("127.0.0.1", 0)
        srv.set_concurrency_options(**options)
        srv.start(timeout=5)
        c = BlockingClient(*srv.bind_address)
        c.start(timeout=5)
        c.wait_protocol(5)
        print(options, c.blocking_request(Message.request("watchdog"), timeout=5)[0])
        c.stop(); c.join(5); srv.stop(); srv.join(5)
    """
    lines = assert_same(katcp_python, code)
    assert all(line.endswith("!watchdog[1] ok") for line in lines), lines


def test_handle_message_override_sees_every_request(katcp_python):
    code = """
    from katcp import DeviceServer, BlockingClient, Message
    class S(DeviceServer):
        VERSION_INFO = ("s", 1, 0)
        BUILD_INFO = ("s", 1, 0, "")
        def setup_sensors(self):
            pass
        def handle_message(self, client_conn, msg):
            print("seen", msg)
            return super(S, self).handle_message(client_conn, msg)
    srv = S("127.0.0.1", 0)
    srv.start(timeout=5)
    c = BlockingClient(*srv.bind_address)
    c.start(timeout=5)
    c.wait_protocol(5)
    print(c.blocking_request(Message.request("watchdog"), timeout=5)[0])
    c.stop(); c.join(5); srv.stop(); srv.join(5)
    """
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
