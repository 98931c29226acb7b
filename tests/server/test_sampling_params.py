"""``?sensor-sampling`` period and rate parameters: non-finite values are refused however
written (``1e400`` overflows to infinity: refused like ``inf``); tiny positive periods are
accepted, as katcp-python 0.9.3 does and spec 5.1 section 7.1 allows (documented in
``katcpx._sampling_core.parse_seconds``). v4 periods are in milliseconds."""

from __future__ import annotations

import pytest

from katcpx.flags import ProtocolFlags

from .helpers import ExampleServer, connect, running


class V4(ExampleServer):
    PROTOCOL_INFO = ProtocolFlags(4, 0, set())


# (strategy, parameters before and after the one tested); v4 has no rate strategies.
STRATEGIES = {
    5: [
        ("period", [], []),
        ("event-rate", ["1"], []),
        ("event-rate", [], ["2"]),
        ("differential-rate", ["1", "1"], []),
        ("differential-rate", ["1"], ["2"]),
    ],
    4: [("period", [], [])],
}


def _cases():
    for major, strategies in STRATEGIES.items():
        for name, before, after in strategies:
            yield pytest.param(major, name, before, after, id=f"v{major}-{name}-{len(before)}")


@pytest.mark.parametrize("major, name, before, after", list(_cases()))
@pytest.mark.parametrize("value", ["1e400", "-1e400", "inf", "nan", "1e999999"])
def test_non_finite_period_is_refused_however_written(major, name, before, after, value):
    srv = (V4 if major == 4 else ExampleServer)("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        args = [*before, value, *after]
        if name == "event-rate" and not before:
            args = [value, "1e9"]
        reply, _ = c.request("sensor-sampling", "a.float", name, *args)
        assert reply.arguments[0] == b"fail", reply
        assert reply.arguments[1].startswith(b"period must") or b"must be" in reply.arguments[1]
        # The sensor keeps its strategy (none).
        assert c.request("sensor-sampling", "a.float")[0].arguments[2] == b"none"


@pytest.mark.parametrize("major", [5, 4])
def test_tiny_positive_period_is_accepted_as_katcp_python_does(major):
    srv = (V4 if major == 4 else ExampleServer)("127.0.0.1", 0)
    with running(srv), connect(srv) as c:
        reply, _ = c.request("sensor-sampling", "a.float", "event-rate", "1e-300", "1")
        if major == 4:  # no event-rate in v4: period only
            reply, _ = c.request("sensor-sampling", "a.float", "period", "1e-300")
        assert reply.arguments[0] == b"ok", reply
        assert c.request("sensor-sampling", "a.float", "none")[0].reply_ok()
