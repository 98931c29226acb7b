"""Timeouts, return values and sensor params, checked against the real katcp-python 0.9.3.

Each test runs one snippet under katcp-python (its venv) and under katcpx imported as
``katcp`` (compat_values), and compares what it prints: for every request API and wait of
the clients, resources, inspecting client and thread-safe wrappers, whether a timeout is a
``fail`` reply (and its text) or a ``TimeoutError`` (and its text); what ``start``/``stop``/
``join``/``wait_*`` return; and the form of sensor ``params``.
"""

from __future__ import annotations

from compat_values import OLD_PYTHON_SHIM, assert_same, device_class

# A server whose ?slow never answers within the tests' timeouts, and the helpers the
# snippets print through. Numbers in texts (elapsed seconds, ports) are masked as N.
_SERVER = """
import concurrent.futures, re, threading
import tornado.gen, tornado.ioloop
from katcp import Message

def norm(x):
    return re.sub(r"\\d+(\\.\\d+)?", "N", str(x))

def outcome(fn):
    try:
        r = fn()
    except BaseException as exc:
        is_timeout = isinstance(exc, (TimeoutError, tornado.gen.TimeoutError,
                                      concurrent.futures.TimeoutError))
        return "raises timeout=%s %r" % (is_timeout, norm(exc)) if is_timeout else (
            "raises %s %s" % (type(exc).__name__, norm(exc)))
    if isinstance(r, tuple) and r and hasattr(r[0], "arguments"):
        r = r[0]
    if type(r).__name__ == "KATCPReply":
        r = r.reply
    return "%s %s" % (type(r).__name__, norm(r))

class S(katcp.DeviceServer):
    VERSION_INFO = ("s", 1, 0)
    BUILD_INFO = ("s", 1, 0, "")
    def setup_sensors(self):
        self.add_sensor(katcp.Sensor.integer("i", "d", "", [0, 10], 1))
    @tornado.gen.coroutine
    def request_slow(self, req, msg):
        "Slow."
        yield tornado.gen.sleep(3)
        raise tornado.gen.Return(req.make_reply("ok"))

server = S("127.0.0.1", 0)
server.set_concurrency_options(thread_safe=False, handler_thread=False)
server.start(timeout=5)
host, port = server.bind_address
"""


def test_client_request_timeouts_are_fail_replies(katcp_python):
    code = (
        _SERVER
        + """
c = katcp.BlockingClient(host, port)
c.start(timeout=5)
c.wait_protocol(5)
print("blocking_request", outcome(lambda: c.blocking_request(Message.request("slow"), timeout=0.2)))
got = threading.Event(); box = []
c.callback_request(Message.request("slow"), reply_cb=lambda m: (box.append(m), got.set()),
                   timeout=0.2)
got.wait(5)
print("callback_request", norm(box[0]))
c.stop(); c.join(timeout=5)
server.stop(); server.join(timeout=5)
"""
    )
    ours = assert_same(katcp_python, code)
    assert ours[0] == (
        r"blocking_request Message !slow[N] fail Request\_slow\_timed\_out\_after\_N\_seconds."
    )


def test_resource_inspecting_and_wrapper_timeouts(katcp_python):
    # Made in this thread, used on a loop running in another (katcp-python's usual
    # IOLoopManager + IOLoopThreadWrapper set-up): waits must still wake.
    code = (
        OLD_PYTHON_SHIM
        + _SERVER
        + """
from katcp.resource_client import KATCPClientResource, ThreadSafeKATCPClientResourceWrapper
from katcp.ioloop_manager import IOLoopManager, IOLoopThreadWrapper
from katcp.inspecting_client import InspectingClientAsync
io = IOLoopManager(); loop = io.get_ioloop(); io.start(timeout=5)
w = IOLoopThreadWrapper(loop)

def in_loop(make):
    f = concurrent.futures.Future()
    @tornado.gen.coroutine
    def run():
        try:
            f.set_result((yield make()))
        except BaseException as e:
            f.set_exception(e)
    loop.add_callback(run)
    return f.result(10)

res = KATCPClientResource(dict(name="dev", address=(host, port), controlled=True))
res.set_ioloop(loop)
tw = ThreadSafeKATCPClientResourceWrapper(res, w)
w.call_in_ioloop(res.start, (), {})
print("wrapper until_synced", outcome(lambda: tw.until_synced(timeout=5)))
print("res.req", outcome(lambda: in_loop(lambda: res.req.slow(timeout=0.2))))
print("res.until_state", outcome(lambda: in_loop(lambda: res.until_state("disconnected", timeout=0.2))))
print("res.until_not_synced", outcome(lambda: in_loop(lambda: res.until_not_synced(timeout=0.2))))
print("res.wait no strategy", outcome(lambda: in_loop(lambda: res.wait("i", 5, timeout=0.2))))
in_loop(lambda: res.set_sampling_strategy("i", "event"))
print("res.wait", outcome(lambda: in_loop(lambda: res.wait("i", 5, timeout=0.2))))
print("res.sensor.wait", outcome(lambda: in_loop(lambda: res.sensor.i.wait(5, timeout=0.2))))
# The wrapper waits exactly default_timeout / the call's timeout, as katcp-python's.
w.default_timeout = 0.2
print("wrapper req default_timeout", outcome(lambda: tw.req.slow()))
w.default_timeout = None
print("wrapper until_state", outcome(lambda: tw.until_state("disconnected", timeout=0.2)).split(" ")[:2])
print("wrapper sensor.wait", outcome(lambda: tw.sensor.i.wait(5, timeout=0.2)).split(" ")[:2])
w.call_in_ioloop(res.stop, (), {})

ic = InspectingClientAsync(host, port, ioloop=loop)
w.call_in_ioloop(ic.connect, (), {})
print("ic.until_synced", outcome(lambda: w.call_in_ioloop(ic.until_synced, (5,), {})))
print("ic.simple_request", outcome(lambda: in_loop(lambda: ic.simple_request("slow", timeout=0.2))))
print("ic.until_not_synced", outcome(lambda: in_loop(lambda: ic.until_not_synced(timeout=0.2))))
print("ic.until_connected", outcome(lambda: in_loop(lambda: ic.until_connected(timeout=5))))
print("ic.katcp_client.future_request", outcome(lambda: in_loop(
    lambda: ic.katcp_client.future_request(Message.request("slow"), timeout=0.2))))
w.call_in_ioloop(ic.close, (), {})

dc = katcp.AsyncClient("127.0.0.1", 1)  # nothing listens there
dc.set_ioloop(loop)
w.call_in_ioloop(dc.start, (), {})
print("wait_connected", outcome(lambda: dc.wait_connected(0.2)))
print("wait_protocol", outcome(lambda: dc.wait_protocol(0.2)))
print("until_connected", outcome(lambda: in_loop(lambda: dc.until_connected(timeout=0.2))))
print("until_protocol", outcome(lambda: in_loop(lambda: dc.until_protocol(timeout=0.2))))
w.call_in_ioloop(dc.stop, (), {})
io.stop(); io.join(timeout=5)
server.stop(); server.join(timeout=5)
"""
    )
    ours = assert_same(katcp_python, code)
    assert "wrapper req default_timeout raises timeout=True ''" in ours
    assert "res.until_state raises timeout=True 'Timeout'" in ours
    assert "ic.until_synced bool True" in ours


def test_start_stop_join_wait_return_values(katcp_python):
    code = (
        device_class("D")
        + """
import concurrent.futures
def show(label, fn):
    r = fn()
    print(label, type(r).__name__, r if isinstance(r, (bool, type(None))) else "")
s = D("127.0.0.1", 0)
show("running before", s.running)
show("start(timeout)", lambda: s.start(timeout=5))
show("wait_running", lambda: s.wait_running(1))
host, port = s.bind_address
for cls in (katcp.DeviceClient, katcp.AsyncClient, katcp.CallbackClient, katcp.BlockingClient):
    c = cls(host, port)
    n = cls.__name__
    show(n + " start(timeout)", lambda: c.start(timeout=5))
    show(n + " wait_running", lambda: c.wait_running(1))
    show(n + " wait_connected", lambda: c.wait_connected(5))
    show(n + " wait_protocol", lambda: c.wait_protocol(5))
    show(n + " stop", lambda: c.stop(timeout=5))
    show(n + " join", lambda: c.join(timeout=5))
    show(n + " running after", c.running)
stopped = s.stop(timeout=5)
print("stop", isinstance(stopped, concurrent.futures.Future), stopped.result(5))
show("join", lambda: s.join(timeout=5))
show("running after", s.running)
s2 = D("127.0.0.1", 0)
show("start()", lambda: s2.start())
s2.wait_running(5)
s2.stop().result(5)
show("join()", lambda: s2.join(timeout=5))
from katcp.ioloop_manager import IOLoopManager
m = IOLoopManager()
m.get_ioloop()
show("manager start(timeout)", lambda: m.start(5))
show("manager stop(timeout).result", lambda: m.stop(5).result(5))
show("manager join", lambda: m.join(5))
"""
    )
    ours = assert_same(katcp_python, code)
    assert "start(timeout) NoneType None" in ours


def test_async_device_server_start_returns_none():
    # katcp-python's AsyncDeviceServer.start() returns None (DeviceServer.start's); katcpx
    # returned False when its loop was not running yet. Started on a running loop here.
    import asyncio

    import katcpx

    class A(katcpx.AsyncDeviceServer):
        VERSION_INFO = ("s", 1, 0)
        BUILD_INFO = ("s", 1, 0, "")

        def setup_sensors(self):
            pass

    async def main():
        server = A("127.0.0.1", 0)
        assert server.start(timeout=0.5) is None
        await server.until_running(5)
        assert server.running()
        server.stop()
        await server.until_stopped(5)

    asyncio.run(main())


def test_sensor_params_forms(katcp_python):
    code = """
S = katcp.Sensor
made = [
    S.integer("i", "d", "u", [-5, 5], 1),
    S.integer("i", "d", "u", (0, 10), 1),
    S.integer("i", "d", "u", None),
    S.float("f", "d", "u", [0, 10], 1.0),
    S.float("f", "d", "u", (0.5, 10), 1.0),
    S.float("f", "d", "u"),
    S.discrete("e", "d", "", ("a", "b"), "a"),
    S.discrete("e", "d", "", [b"a", b"b"], "a"),
    S(S.DISCRETE, "e", "d", "", [b"x", b"y"]),
    S.boolean("b", "d", "", True),
    S.lru("l", "d", "", 0),
    S.address("a", "d", "", ("1.2.3.4", 80)),
    S.timestamp("t", "d", "", 1.5),
    S.string("s", "d", "", "x"),
]
for s in made:
    print(s.stype, repr(s.params), [type(p).__name__ for p in s.params], s.formatted_params)
for stype, raw in [(S.INTEGER, [b"-5", b"5"]), (S.FLOAT, [b"-1.5", b"2"]),
                   (S.FLOAT, [b"1e3", b"2e3"]), (S.DISCRETE, [b"a", b"b"]),
                   (S.INTEGER, ["1", "2"]), (S.FLOAT, ["0.5", "1"]), (S.STRING, [b"x"]),
                   (S.TIMESTAMP, [b"1"]), (S.ADDRESS, [b"1.2.3.4:5"])]:
    p = S.parse_params(stype, raw)
    print("parse_params", stype, repr(p), [type(x).__name__ for x in p])
"""
    assert_same(katcp_python, code)


def test_sensor_list_params_through_the_inspecting_client(katcp_python):
    code = """
import tornado.gen, tornado.ioloop
from katcp.inspecting_client import InspectingClientAsync
S = katcp.Sensor
class D(katcp.DeviceServer):
    VERSION_INFO = ("s", 1, 0)
    BUILD_INFO = ("s", 1, 0, "")
    def setup_sensors(self):
        for s in [S.integer("i", "d", "u", [-5, 5], 1), S.integer("i2", "d", "u", None, 1),
                  S.float("f", "d", "u", [-1.5, 2.5], 0.0), S.float("f2", "d", "u", None, 0.0),
                  S.discrete("e", "d", "", ["a", "b"], "a"), S.boolean("b", "d", "", True),
                  S.lru("l", "d", "", 0), S.address("a", "d", "", ("1.2.3.4", 80)),
                  S.timestamp("t", "d", "", 1.5), S.string("s", "d", "", "x")]:
            self.add_sensor(s)
server = D("127.0.0.1", 0)
server.start(timeout=5)
host, port = server.bind_address
# katcp-python's managed server loop becomes this thread's asyncio loop, so run_sync here
# would clash with it: run the inspecting client on a loop thread of its own.
from katcp.ioloop_manager import IOLoopManager, IOLoopThreadWrapper
io = IOLoopManager(); loop = io.get_ioloop(); io.start(timeout=5)
w = IOLoopThreadWrapper(loop)
ic = InspectingClientAsync(host, port, ioloop=loop)
w.call_in_ioloop(ic.connect, (), {})
w.call_in_ioloop(ic.until_synced, (5,), {})
for name in sorted(ic.sensors):
    s = w.call_in_ioloop(ic.future_get_sensor, (name,), {})
    print(name, s.stype, repr(s.params), [type(p).__name__ for p in s.params])
w.call_in_ioloop(ic.close, (), {})
io.stop(); io.join(timeout=5)
server.stop(); server.join(timeout=5)
"""
    ours = assert_same(katcp_python, code)
    assert "i integer [-5, 5] ['int', 'int']" in ours


def test_resource_sensor_params_are_the_inspecting_clients_values():
    # katcp-python's KATCPSensor has no params; katcpx's (an extension) gives the values in
    # katcp.Sensor.params's form, and the server's text in formatted_params.
    import asyncio

    import katcpx
    from katcpx.resource_client import KATCPClientResource

    S = katcpx.Sensor

    class D(katcpx.AsyncDeviceServer):
        VERSION_INFO = ("s", 1, 0)
        BUILD_INFO = ("s", 1, 0, "")

        def setup_sensors(self):
            self.add_sensor(S.integer("i", "d", "u", [-5, 5], 1))
            self.add_sensor(S.float("f", "d", "u", [-1.5, 2.5], 0.0))
            self.add_sensor(S.discrete("e", "d", "", ["a", "b"], "a"))
            self.add_sensor(S.boolean("b", "d", "", True))

    async def main():
        server = D("127.0.0.1", 0)
        server.start()
        await server.until_running(5)
        host, port = server.bind_address
        res = KATCPClientResource(dict(name="dev", address=(host, port), controlled=True))
        res.start()
        await res.until_synced(timeout=5)
        got = {n: (res.sensor[n].params, res.sensor[n].formatted_params) for n in res.sensor}
        res.stop()
        server.stop()
        await server.until_stopped(5)
        return got

    got = asyncio.run(main())
    assert got["i"] == ([-5, 5], [b"-5", b"5"])
    assert [type(p) for p in got["i"][0]] == [int, int]
    assert got["f"] == ([-1.5, 2.5], [b"-1.5", b"2.5"])
    assert got["e"] == (["a", "b"], [b"a", b"b"])
    assert got["b"] == ([], [])


def test_testutils_return_values_and_timeouts(katcp_python):
    code = (
        OLD_PYTHON_SHIM
        + """
import re, unittest
from katcp import Message
from katcp.testutils import BlockingTestClient, DeviceTestServer, wait_sensor
def show(label, fn):
    try:
        r = fn()
        if hasattr(r, "arguments"):
            r = str(r)
        print(label, "->", type(r).__name__, re.sub(r"\\d+(\\.\\d+)?", "N", str(r)))
    except AssertionError as exc:
        print(label, "fails the test")
case = unittest.TestCase()
server = DeviceTestServer("127.0.0.1", 0)
show("server.start", lambda: server.start(timeout=5))
c = BlockingTestClient(case, *server.bind_address)
show("client.start", lambda: c.start(timeout=5))
show("wait_protocol", lambda: c.wait_protocol(5))
show("assert_request_succeeds", lambda: c.assert_request_succeeds("watchdog"))
show("assert_request_fails", lambda: c.assert_request_fails("raise-fail"))
show("get_sensor", lambda: c.get_sensor("an.int"))
show("get_sensor_value", lambda: c.get_sensor_value("an.int", int))
show("wait_condition false", lambda: c.wait_condition(0.2, lambda: False))
show("wait_condition true", lambda: c.wait_condition(0.2, lambda: True))
show("wait_until_sensor_equals timeout", lambda: c.wait_until_sensor_equals(0.3, "an.int", 4))
show("wait_until_sensor_equals", lambda: c.wait_until_sensor_equals(0.3, "an.int", 3))
show("slow-command timeout",
     lambda: c.blocking_request(Message.request("slow-command", "5"), timeout=0.2)[0])
show("wait_sensor timeout", lambda: wait_sensor(server.get_sensor("an.int"), 4, timeout=0.2))
show("client.stop", lambda: c.stop())
show("client.join", lambda: c.join(timeout=5))
show("server.stop", lambda: server.stop())
show("server.join", lambda: server.join(timeout=5))
"""
    )
    ours = assert_same(katcp_python, code)
    assert "server.stop -> NoneType None" in ours


def test_resource_sensor_from_katcp_python_description(katcp_python):
    # katcp-python's own tests (and its inspecting client) make a KATCPSensor from
    # katcp.Sensor's arguments: the type as a constant, params as values.
    code = (
        OLD_PYTHON_SHIM
        + """
from unittest import mock
from katcp import resource, Sensor
for d in [dict(sensor_type=Sensor.INTEGER, name="test.int", params=[-1000, 1000], default=0,
               initial_status=Sensor.NOMINAL),
          dict(sensor_type=Sensor.FLOAT, name="f", params=[0.5, 2.5], units="V"),
          dict(sensor_type=Sensor.DISCRETE, name="d", params=["a", "b"], description="D."),
          dict(sensor_type=Sensor.BOOLEAN, name="b")]:
    s = resource.KATCPSensor(d, mock.Mock())
    raw = b"a" if d["sensor_type"] == Sensor.DISCRETE else b"1"
    print(s.name, s.type, repr(s.parse_value(raw)), repr(s.description), repr(s.units))
"""
    )
    assert_same(katcp_python, code)
