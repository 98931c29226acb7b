"""katcp-python 0.9.3's ``katcp.testutils`` run side by side with katcpx's (a user's findings).

Each test runs one snippet under katcp-python 0.9.3 (its venv) and under katcpx imported as
``katcp`` and compares what it prints (see ``tests/compat_values.py``).
"""

from __future__ import annotations

import pytest
from compat_values import OLD_PYTHON_SHIM, assert_same

pytestmark = pytest.mark.peers


def test_handle_mock_req_replies_as_the_server_does(katcp_python):
    # FailReply (plain or from a kattypes argument error) is a plain fail reply, AsyncReply
    # after the handler replied itself leaves that reply, a made reply is sent.
    code = (
        OLD_PYTHON_SHIM
        + """
import logging
logging.basicConfig(level=logging.CRITICAL)
from katcp import DeviceServer, AsyncReply, FailReply
from katcp.kattypes import request, return_reply, Int
from katcp.testutils import mock_req, handle_mock_req
class D(DeviceServer):
    VERSION_INFO = ("d", 1, 0)
    BUILD_INFO = ("d", 1, 0, "")
    def setup_sensors(self):
        pass
    @request(Int(max=10))
    @return_reply()
    def request_a(self, req, v):
        "Do A."
        return ("ok",)
    @request()
    @return_reply()
    def request_b(self, req):
        "Do B."
        raise FailReply("nope")
    def request_c(self, req, msg):
        "Do C."
        req.reply("ok", "later")
        raise AsyncReply()
    def request_d(self, req, msg):
        "Do D."
        raise FailReply("plain fail")
    def request_f(self, req, msg):
        "Do F."
        return req.make_reply("ok", "made")
dev = D("127.0.0.1", 0)
for name, args in [("a", (50,)), ("b", ()), ("c", ()), ("d", ()), ("f", ()), ("nosuch", ())]:
    req = mock_req(name, *args)
    f = handle_mock_req(dev, req)
    print(name, req.reply_msg, f.done(), req.reply.call_count)
"""
    )
    lines = assert_same(katcp_python, code)
    assert lines[3] == "d !d fail plain\\_fail True 1", lines


def test_async_waiting_mock_waits_for_calls_up_to_the_timeout(katcp_python):
    # Called later on the loop, from another thread, or never (fails after the timeout,
    # not at once).
    code = (
        OLD_PYTHON_SHIM
        + """
import threading, time, unittest
import tornado.testing
from katcp.testutils import AsyncWaitingMock
class T(tornado.testing.AsyncTestCase):
    def wait_for(self, label, start, timeout=2):
        m = AsyncWaitingMock()
        start(m)
        t0 = time.time()
        try:
            yield m.assert_wait_call_count(1, timeout=timeout)
            print(label, "ok", time.time() - t0 < timeout)
        except AssertionError:
            print(label, "AssertionError", time.time() - t0 >= timeout * 0.9)
    @tornado.testing.gen_test(timeout=10)
    def test_loop(self):
        yield from self.wait_for("loop", lambda m: self.io_loop.call_later(0.1, m, 1))
    @tornado.testing.gen_test(timeout=10)
    def test_thread(self):
        yield from self.wait_for("thread", lambda m: threading.Timer(0.1, m).start())
    @tornado.testing.gen_test(timeout=10)
    def test_never(self):
        yield from self.wait_for("never", lambda m: None, timeout=0.3)
unittest.main(argv=["t"], exit=False, verbosity=0)
"""
    )
    lines = assert_same(katcp_python, code)
    assert lines == ["loop ok True", "never AssertionError True", "thread ok True"]


def test_timewarp_runs_timers_re_armed_for_the_warped_time(katcp_python):
    # An event-rate / differential-rate strategy re-arms its timer from its timer; one
    # set_ioloop_time runs both, so the update due at 12.6 is sent at 12.6. Time starts at 0.
    code = (
        OLD_PYTHON_SHIM
        + """
import unittest
import tornado.testing
from katcp import Sensor, sampling
from katcp.testutils import TimewarpAsyncTestCase
class TW(TimewarpAsyncTestCase):
    def go(self, strat, *params):
        sensor = Sensor.float("x", "X", "", [0, 100], default=0.0)
        calls = []
        update = lambda s, r: calls.append((self.ioloop_time, r[2]))
        st = sampling.SampleStrategy.get_strategy(strat, update, sensor, *params)
        st.start()
        yield self.wake_ioloop()
        sensor.set_value(1.0, timestamp=self.ioloop_time)
        yield self.wake_ioloop()
        for t in [2.1, 12.6, 23, 33]:
            yield self.set_ioloop_time(t)
        st.cancel()
        print(strat, calls, type(calls[0][0]).__name__)
    @tornado.testing.gen_test(timeout=60)
    def test_er(self):
        yield from self.go("event-rate", "2", "10")
    @tornado.testing.gen_test(timeout=60)
    def test_dr(self):
        yield from self.go("differential-rate", "0.5", "2", "10")
unittest.main(argv=["t"], exit=False, verbosity=0)
"""
    )
    lines = assert_same(katcp_python, code)
    assert "(12.6, 1.0)" in lines[0], lines


#: Two servers with integer sensors ``count``, ``count-b``, a managed loop ``iom`` and
#: ``wrapped(resource)``: the resource started on it, synced, in a thread-safe wrapper.
_RESOURCES = (
    OLD_PYTHON_SHIM
    + """
import logging, os, sys
logging.basicConfig(level=logging.CRITICAL)
from katcp import Sensor, DeviceServer, resource_client, ioloop_manager
class Dev(DeviceServer):
    VERSION_INFO = ("dev", 1, 0)
    BUILD_INFO = ("dev", 1, 0, "")
    def setup_sensors(self):
        self.add_sensor(Sensor.integer("count", "Count", "", [0, 1000], default=0))
        self.add_sensor(Sensor.integer("count-b", "Count", "", [0, 1000], default=0))
servers = [Dev("127.0.0.1", 0) for _ in range(2)]
for s in servers:
    s.start()
    s.wait_running(5)
iom = ioloop_manager.IOLoopManager()
iom.get_ioloop()
iom.start()
def wrapped(resource):
    resource.set_ioloop(iom.get_ioloop())
    iom.get_ioloop().add_callback(resource.start)
    w = resource_client.ThreadSafeKATCPClientResourceWrapper(
        resource, ioloop_manager.IOLoopThreadWrapper(iom.get_ioloop()))
    w.until_synced(timeout=5)
    return w
"""
)


def test_container_strategies_and_state_wait_through_the_thread_safe_wrapper(katcp_python):
    # The strategy as passed, also where the server refused it; any child's state: True.
    code = (
        _RESOURCES
        + """
spec = {"name": "c", "clients": {
    "a": {"address": servers[0].bind_address, "controlled": True},
    "b": {"address": servers[1].bind_address, "controlled": True}}}
c = wrapped(resource_client.KATCPClientResourceContainer(spec))
print(c.set_sampling_strategies("count$", "event"))
print(c.set_sampling_strategies("count$", ("period", "0.5")))
print(c.set_sampling_strategies("count", "bogus"))
print(c.set_sampling_strategies("zzz", "event"))
print(c.set_sampling_strategy("a_count", "event"))
print(c.set_sampling_strategy("a_count", "bogus"))
print(c.set_sampling_strategy("nosuch", "event"))
print(c.until_any_child_in_state("synced", timeout=2))
sys.stdout.flush()
os._exit(0)
"""
    )
    lines = assert_same(katcp_python, code)
    assert lines[0] == "{'a': {'count': 'event'}, 'b': {'count': 'event'}}", lines


def test_blocking_test_client_assertion_texts(katcp_python):
    # Users' suites match these texts: "but received", "but the error was", b'...' errors.
    code = (
        OLD_PYTHON_SHIM
        + """
import logging, unittest
logging.basicConfig(level=logging.CRITICAL)
from katcp import DeviceServer, Sensor
from katcp.kattypes import request, return_reply, Float, Bool, Str
from katcp.testutils import BlockingTestClient, start_thread_with_cleanup
class D(DeviceServer):
    VERSION_INFO = ("d", 1, 0)
    BUILD_INFO = ("d", 1, 0, "")
    def setup_sensors(self):
        self.add_sensor(Sensor.float("f", "F", "", [0, 100], default=1.5))
    @request(Float(), Bool(), Str())
    @return_reply(Float(), Bool(), Str())
    def request_echo(self, req, f, b, s):
        "Echo."
        req.inform("a", 1)
        return "ok", f, b, s
class T(unittest.TestCase):
    def check(self, call, *args, **kwargs):
        try:
            print("passed", call(*args, **kwargs))
        except AssertionError as exc:
            print(str(exc).split(" : ")[-1])
    def test_texts(self):
        server = D("127.0.0.1", 0)
        start_thread_with_cleanup(self, server, start_timeout=5)
        c = BlockingTestClient(self, *server.bind_address)
        start_thread_with_cleanup(self, c, start_timeout=5)
        c.wait_protocol(5)
        ok = c.assert_request_succeeds
        self.check(ok, "echo", 1.5, True, "x", args_echo=True)
        self.check(ok, "echo", 2, 1, "z", args_in=[["2", "1", "z"]])
        self.check(ok, "echo", 2, 1, "z", args_length=2)
        self.check(ok, "echo", 2, 1, "z", informs_count=3)
        self.check(ok, "echo", 2, 1, "z", informs_args_equal=[["b"]])
        self.check(ok, "echo", "x", 1, "s")
        self.check(c.assert_request_fails, "echo", "x", 1, "s", status_equals="invalid")
        self.check(c.assert_request_fails, "echo", "x", 1, "s", error_equals="nope")
        self.check(c.get_sensor, "nosuch")
unittest.main(argv=["t"], exit=False, verbosity=0)
"""
    )
    lines = assert_same(katcp_python, code)
    assert lines[0].endswith("but received ['1.5', '1', 'x']."), lines


def test_sensor_set_strategy_refusal_shows_the_reply_and_request_type_repr(katcp_python):
    code = (
        _RESOURCES
        + """
from katcp.inspecting_client import RequestType
print(RequestType("a", "b", None))
r = wrapped(resource_client.KATCPClientResource(
    dict(name="r1", address=servers[0].bind_address, controlled=True)))
ok, text = r.sensor.count.set_strategy("bogus")
print(ok, text.replace(text.split("[")[1].split("]")[0], "N"))
sys.stdout.flush()
os._exit(0)
"""
    )
    lines = assert_same(katcp_python, code)
    assert lines[0] == "Request(name='a', description='b', timeout_hint=None)", lines
    assert lines[2].startswith("!sensor-sampling[N] fail Unknown"), lines
