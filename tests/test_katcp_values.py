"""Values katcp-python 0.9.3 code sees, checked against the real katcp-python.

Each test runs the same snippet under katcp-python 0.9.3 (its venv) and under katcpx
imported as ``katcp``, and compares what the snippet prints.
"""

from __future__ import annotations

import sys

from compat_values import OLD_PYTHON_SHIM, assert_same, both, run_snippet


def test_message_type_constants(katcp_python):
    code = """
    M = katcp.Message
    print((M.REQUEST, M.REPLY, M.INFORM, M.TYPE_NAMES))
    print(katcp.Message.request("x").mtype, katcp.Message.inform("x").mtype)
    print(katcp.MessageParser().parse(b"!x ok").mtype)
    """
    assert_same(katcp_python, code)


def test_bad_message_name_raises_katcp_syntax_error(katcp_python):
    code = """
    try:
        katcp.Message.request("bad_name")
    except Exception as exc:
        print(type(exc).__name__, exc)
    """
    assert_same(katcp_python, code)


def test_sensor_types_and_timestamp_type(katcp_python):
    code = """
    S = katcp.Sensor
    print(sorted((k, v[0].__name__, v[1]) for k, v in S.SENSOR_TYPES.items()))
    print(type(S.TIMESTAMP_TYPE).__name__)
    print(S.TIMESTAMP_TYPE.encode(1.5, 5))
    """
    theirs, ours = both(katcp_python, code)
    assert ours[:2] == theirs[:2]
    # README difference: the exact decimal (katcpx.codec's one rule), not rounded to µs.
    assert (theirs[2], ours[2]) == ("b'1.500000'", "b'1.5'")


def test_float_sensor_keeps_the_int_it_was_set_to(katcp_python):
    code = """
    s = katcp.Sensor.float("f", "d", "", [0.0, 10.0])
    s.set_value(1)
    print(repr(s.value()), s.read_formatted()[1:])
    """
    assert_same(katcp_python, code)


def test_kattype_error_texts(katcp_python):
    # Users' suites compare these with assert_request_fails(error_equals=...).
    code = """
    from katcp.kattypes import Int, Float, Bool, Discrete, Lru, Address, Timestamp, Struct, Regex
    from katcp.kattypes import unpack_types
    cases = [
        ((Int(min=0, max=100),), [b"101"]),
        ((Int(min=0, max=100),), [b"-1"]),
        ((Int(),), [b"abc"]),
        ((Float(min=0.5, max=2.5),), [b"9"]),
        ((Float(min=0.5, max=2.5),), [b"0.25"]),
        ((Float(),), [b"x"]),
        ((Bool(),), [b"2"]),
        ((Discrete(("a", "b")),), [b"c"]),
        ((Discrete(("a", "b"), case_insensitive=True),), [b"c"]),
        ((Int(),), []),
        ((Int(),), [b"1", b"2"]),
        ((Lru(),), [b"maybe"]),
        ((Address(),), [b"[::1"]),
        ((Timestamp(),), [b"soon"]),
        ((Struct(">hh"),), [b"1,2"]),
        ((Regex("^a+$"),), [b"b"]),
    ]
    for types, args in cases:
        try:
            unpack_types(types, args, ["x"], 5)
        except Exception as exc:
            print(type(exc).__name__, exc)
    """
    assert_same(katcp_python, code)


def test_sensor_parse_and_discrete_error_texts(katcp_python):
    code = """
    S = katcp.Sensor
    cases = [
        (S.integer("i", "", "", [0, 10]), b"x"),
        (S.float("f", "", "", [0.0, 1.0]), b"x"),
        (S.boolean("b", "", ""), b"2"),
        (S.lru("l", "", ""), b"maybe"),
        (S.discrete("d", "", "", ["on", "off"]), b"maybe"),
    ]
    for sensor, raw in cases:
        try:
            sensor.parse_value(raw)
        except Exception as exc:
            print(type(exc).__name__, exc)
    try:
        S.discrete("d", "", "", ["on", "off"]).set_value("maybe")
    except Exception as exc:
        print(type(exc).__name__, exc)
    """
    assert_same(katcp_python, code)


def test_server_log_lines_reach_the_katcp_logger_at_katcp_python_levels(katcp_python):
    # A handler on logging.getLogger("katcp") sees the server's request failures at ERROR.
    code = """
    import logging, threading
    from katcp import Message
    seen = []
    class Keep(logging.Handler):
        def emit(self, record):
            if "FAIL" in record.getMessage() or "INVALID" in record.getMessage():
                seen.append((record.name, record.levelname, record.getMessage()))
    logging.getLogger("katcp").addHandler(Keep())
    logging.getLogger("katcp").setLevel(logging.DEBUG)
    class S(katcp.DeviceServer):
        VERSION_INFO = ("x", 1, 0)
        BUILD_INFO = ("x", 1, 0, "")
        def setup_sensors(self):
            pass
        def request_bad(self, req, msg):
            "Fail."
            raise katcp.FailReply("no good")
    server = S("127.0.0.1", 0)
    server.set_concurrency_options(thread_safe=False, handler_thread=False)
    server.start(timeout=10)
    host, port = server.bind_address
    client = katcp.BlockingClient(host, port)
    client.start(timeout=10)
    client.wait_protocol(timeout=10)
    print(client.blocking_request(Message.request("bad"), timeout=10)[0])
    print(client.blocking_request(Message.request("nosuch"), timeout=10)[0])
    client.stop(); client.join(timeout=10)
    server.stop(); server.join(timeout=10)
    print(sorted(seen))
    print(server._logger.name, client._logger.name)
    """
    assert_same(katcp_python, code)


_MOCK = OLD_PYTHON_SHIM


def test_assert_request_fails_returns_bytes_status(katcp_python):
    code = (
        _MOCK
        + """\
import unittest
from katcp.testutils import BlockingTestClient
class S(katcp.DeviceServer):
    VERSION_INFO = ("x", 1, 0)
    BUILD_INFO = ("x", 1, 0, "")
    def setup_sensors(self):
        pass
    def request_bad(self, req, msg):
        "Fail."
        raise katcp.FailReply("no good")
server = S("127.0.0.1", 0)
server.start(timeout=10)
host, port = server.bind_address
case = unittest.TestCase()
client = BlockingTestClient(case, host, port)
client.start(timeout=10)
client.wait_protocol(timeout=10)
print(repr(client.assert_request_fails("bad")))
print(repr(client.assert_request_fails("bad", error_equals="no good")))
print(repr(client.assert_request_fails("bad", status_equals="fail")))
client.stop(); client.join(timeout=10)
server.stop(); server.join(timeout=10)
"""
    )
    assert_same(katcp_python, code)


def test_fake_resource_informs_and_handlers_without_docstring(katcp_python):
    code = """
    import tornado.gen, tornado.ioloop
    from katcp.fake_clients import fake_KATCP_client_resource_factory
    from katcp.resource_client import KATCPClientResource
    from katcp.kattypes import request, return_reply, Int
    class Handlers(object):
        @request(Int(), Int())
        @return_reply(Int())
        def request_add(self, req, a, b):
            "Add two ints."
            req.inform("adding", a, b)
            return "ok", a + b
    @tornado.gen.coroutine
    def main():
        res, manager = fake_KATCP_client_resource_factory(
            KATCPClientResource, {}, dict(name="dev", address=("localhost", 1), controlled=True)
        )
        res.start()
        manager.add_request_handlers_object(Handlers())
        yield res.until_synced(timeout=5)
        reply = yield res.req.add(2, 3)
        print(str(reply.reply), [str(m) for m in reply.informs])
        try:
            manager.add_request_handlers_dict({"ping": lambda req, msg: None})
        except Exception as exc:
            print(type(exc).__name__, exc)
        res.stop()
    tornado.ioloop.IOLoop.current().run_sync(main, timeout=30)
    """
    assert_same(katcp_python, code)


def test_coroutine_handlers_on_threaded_server_and_no_own_requests(katcp_python):
    # Tornado coroutine handlers (decorated, @concurrent_reply, raw) on the default
    # handler-thread DeviceServer; with the 5.1 T flag the client's message ids start at 1:
    # start() + wait_protocol() sends nothing by itself.
    code = """
    import tornado.gen
    from katcp import DeviceServer, Message, BlockingClient, ProtocolFlags
    from katcp.kattypes import request, return_reply, concurrent_reply, Float
    class Base(object):
        @request(Float())
        @return_reply(Float())
        @tornado.gen.coroutine
        def request_coro(self, req, x):
            "Coroutine."
            yield tornado.gen.sleep(0.01)
            raise tornado.gen.Return(("ok", x * 2))
        @request(Float())
        @return_reply(Float())
        @concurrent_reply
        @tornado.gen.coroutine
        def request_ccoro(self, req, x):
            "Concurrent coroutine."
            yield tornado.gen.sleep(0.01)
            raise tornado.gen.Return(("ok", x * 3))
        @tornado.gen.coroutine
        def request_rawcoro(self, req, msg):
            "Raw coroutine."
            yield tornado.gen.moment
            raise tornado.gen.Return(req.make_reply("ok", "raw"))
        def setup_sensors(self):
            pass
    class S1(Base, DeviceServer):
        VERSION_INFO = ("s", 1, 0)
        BUILD_INFO = ("s", 1, 0, "")
    class S3(S1):
        PROTOCOL_INFO = ProtocolFlags(5, 1, set([
            ProtocolFlags.MULTI_CLIENT, ProtocolFlags.MESSAGE_IDS,
            ProtocolFlags.REQUEST_TIMEOUT_HINTS]))
    for cls in (S1, S3):
        server = cls("127.0.0.1", 0)
        server.start(timeout=5)
        client = BlockingClient(*server.bind_address)
        client.start(timeout=5)
        client.wait_protocol(5)
        for args in (("coro", 1), ("ccoro", 1), ("rawcoro",)):
            reply, informs = client.blocking_request(Message.request(*args), timeout=5)
            print(cls.__name__, args, str(reply))
        client.stop(); client.join(timeout=5)
        server.stop(); server.join(timeout=5)
    """
    ours = assert_same(katcp_python, code)
    assert "S3 ('coro', 1) !coro[1] ok 2.0" in ours


def test_stop_and_join_return_when_the_servers_loop_never_runs():
    # An AsyncDeviceServer made outside a running loop starts on IOLoop.current(), which
    # this script never runs: katcp-python's stop() and join() return; so must katcpx's.
    code = """
    import time
    class S(katcp.AsyncDeviceServer):
        VERSION_INFO = ("s", 1, 0)
        BUILD_INFO = ("s", 1, 0, "")
        def setup_sensors(self):
            pass
    server = S("127.0.0.1", 0)
    server.start(timeout=0.2)
    began = time.monotonic()
    server.stop(timeout=0.2)
    server.join()
    print(time.monotonic() - began < 5)
    """
    assert run_snippet(sys.executable, "katcpx", code, timeout=30) == ["True"]


def test_protocol_flags_are_bytes(katcp_python):
    code = """
    PF = katcp.ProtocolFlags
    print(PF.MULTI_CLIENT, PF.MESSAGE_IDS, PF.REQUEST_TIMEOUT_HINTS, PF.BULK_SET_SENSOR_SAMPLING)
    flags = PF.parse_version(b"5.1-IMT")
    print(sorted(flags.flags), flags.supports(b"T"), flags.supports(PF.MESSAGE_IDS))
    print(sorted(PF(5, 0, [PF.MULTI_CLIENT, PF.MESSAGE_IDS]).flags))
    """
    assert_same(katcp_python, code)


def test_sensor_set_strategy_results(katcp_python):
    code = """
    import tornado.gen, tornado.ioloop
    from katcp.fake_clients import fake_KATCP_client_resource_factory
    from katcp.resource_client import KATCPClientResource
    @tornado.gen.coroutine
    def main():
        res, manager = fake_KATCP_client_resource_factory(
            KATCPClientResource, {}, dict(name="dev", address=("localhost", 1), controlled=True)
        )
        res.start()
        manager.add_sensors({"temp": ("Temperature", "degC", "float", -10, 50)})
        yield res.until_synced(timeout=5)
        print((yield res.sensor.temp.set_strategy("event")))
        print((yield res.sensor.temp.set_strategy("period", "0.5")))
        print((yield res.sensor.temp.set_sampling_strategy("period 0.5")))
        print((yield res.set_sampling_strategy("temp", "period 0.5")))
        print((yield res.set_sampling_strategy("temp", ("event",))))
        res.stop()
    tornado.ioloop.IOLoop.current().run_sync(main, timeout=30)
    """
    assert_same(katcp_python, code)


def test_object_proxies_module(katcp_python):
    code = """
    from katcp import object_proxies as op
    calls = []
    def make():
        calls.append(1)
        return [3, 1, 2]
    p = op.ObjectProxy([1, 2, 3])
    print(len(p), list(p), p[0], 2 in p, p == [1, 2, 3], bool(p), str(p), repr(p), p + [4])
    p.append(4)
    print(p.__subject__, p.count(4))
    c = op.CallbackProxy(lambda: 5)
    print(c + 1, 1 + c, c * 2, -c, int(c), c > 4, hash(c) == hash(5), abs(c))
    lz = op.LazyProxy(make)
    print(sorted(lz), len(lz), len(calls))
    class W(op.ObjectWrapper):
        def count(self, x):
            return "own"
    w = W([1, 1])
    print(w.count(1), len(w), w.index(1))
    class LW(op.LazyWrapper):
        extra = 7
    lw = LW(lambda: {"a": 1})
    print(lw.extra, lw["a"], list(lw.keys()))
    print(sorted(n for n in dir(op) if n.endswith(("Proxy", "Wrapper"))))
    """
    assert_same(katcp_python, code)
