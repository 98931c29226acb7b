"""Blocking use from plain threads: no event-loop code in the test functions."""

import concurrent.futures
import threading

import pytest

from katcpx.resource import (
    GroupResults,
    IOLoopManager,
    IOLoopThreadWrapper,
    KATCPClientResource,
    KATCPReply,
    KATCPSensorError,
    ThreadSafeKATCPClientResourceWrapper,
    threadsafe_resource,
)

T = 5.0


def spec(address):
    return {"name": "dish", "address": address, "controlled": True, "auto_reconnect_delay": 0.05}


def test_plain_script(katcpx_dish):
    res = threadsafe_resource(spec(katcpx_dish.bind_address), sync_timeout=T)
    try:
        assert res.state == "synced" and res.is_connected()
        assert res.set_sampling_strategy("pos_az", "event") == {"pos_az": "event"}
        assert res.sensor.pos_az.sampling_strategy == ("event",)
        reply = res.req.target(30, 45)
        assert isinstance(reply, KATCPReply) and reply
        assert res.sensor.pos_az.wait(30.0, timeout=T) is True
        assert res.wait("pos_az", 30.0, timeout=T) is True
        assert res.sensor.temp.get_value() == 20.0
        # The sensor's own wait and the wrapper's wait share the one timeout, as in
        # katcp-python, so either may expire first; they are one class only from 3.11 on.
        with pytest.raises((TimeoutError, concurrent.futures.TimeoutError)):
            res.sensor.pos_az.wait(-1.0, timeout=0.05)
        with pytest.raises(KATCPSensorError):
            res.sensor.temp.wait(1.0, timeout=0.05)  # no strategy
        assert [r.name for r in res.list_sensors("pos")] == ["pos.az"]
        assert res.req.target.timeout_hint == 7.5
        # help() shows the device's help, under katcp-python's heading.
        doc = res.req.target.__doc__
        assert doc.startswith("KATCP Documentation\n===================\n")
        assert "Point at az el (arrives at once)." in doc
    finally:
        res.shutdown()
    assert res.state == "disconnected"


def test_katcp_python_style_wiring(katcpx_dish):
    manager = IOLoopManager()
    ioloop = manager.get_ioloop()
    manager.start(timeout=T)
    resource = KATCPClientResource(spec(katcpx_dish.bind_address))
    resource.set_ioloop(ioloop)
    ioloop.add_callback(resource.start)
    wrapper = ThreadSafeKATCPClientResourceWrapper(resource, IOLoopThreadWrapper(ioloop))
    try:
        wrapper.until_synced(timeout=T)
        assert wrapper.req.watchdog()
        # Calls from the loop's own thread would deadlock and are refused.
        errors = []

        def on_loop():
            try:
                wrapper.req.watchdog()
            except RuntimeError as exc:
                errors.append(exc)
            done.set()

        done = threading.Event()
        ioloop.add_callback(on_loop)
        assert done.wait(T) and errors
    finally:
        manager.stop(callback=resource.stop).result(T)
        manager.join(T)


def test_container_from_threads(katcpx_dish):
    addr = katcpx_dish.bind_address
    array = threadsafe_resource(
        {
            "name": "array",
            "clients": {
                "a": {"address": addr, "controlled": True},
                "b": {"address": addr, "controlled": True},
            },
            "groups": {"ab": ["a", "b"]},
        },
        sync_timeout=T,
    )
    with array:
        assert {"a_temp", "b_temp"} <= set(array.sensor)
        assert array.children.a.state == "synced"
        results = array.groups.ab.req.watchdog()
        assert isinstance(results, GroupResults) and results
        assert [c.name for c in array.groups.ab] == ["a", "b"]
        array.set_sampling_strategies("_temp$", "event")
        assert array.wait("b_temp", 20.0, timeout=T)
        # Requests from many threads at once all get their replies.
        replies = []
        threads = [
            threading.Thread(target=lambda: replies.append(array.req.a_watchdog()))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T)
        assert len(replies) == 8 and all(replies)


def test_server_restart_mid_script(katcpx_dish):
    host, port = katcpx_dish.bind_address
    res = threadsafe_resource(spec((host, port)), sync_timeout=T)
    seen = []
    server = None
    try:
        res.set_sampling_strategy("pos_az", "event")
        res.set_sensor_listener("pos_az", lambda s, r: seen.append(r.value))
        res.req.target(10, 0)
        assert res.sensor.pos_az.wait(10.0, timeout=T)
        katcpx_dish.stop()
        katcpx_dish.join(T)
        res.until_state("disconnected", timeout=T)
        server = type(katcpx_dish)(host, port)
        server.start(timeout=T)
        res.until_synced(timeout=T)
        # The strategy came back by itself: a fresh server value reaches the listener.
        server.get_sensor("pos.az").set_value(77.0)
        assert res.sensor.pos_az.wait(77.0, timeout=T)
        assert res.sensor.pos_az.sampling_strategy == ("event",)
        assert seen[-1] == 77.0 and 10.0 in seen
    finally:
        res.shutdown()
        res.shutdown()  # idempotent
        if server is not None:
            server.stop()
            server.join(T)
