"""KATCPClientResource against real aiokatcp servers on 127.0.0.1."""

import asyncio

import pytest

from katcpx.resource import (
    KATCPClientResource,
    KATCPReply,
    KATCPResourceInactive,
    KATCPSensorError,
    SensorResultTuple,
    SensorWaitTimeout,
)

T = 5.0  # generous timeout for every wait; tests finish far sooner


def spec(address, **extra):
    return {"name": "ant1", "address": address, "controlled": True, **extra}


@pytest.fixture
async def resource(antenna):
    res = KATCPClientResource(spec(antenna.address))
    res.start()
    await res.until_synced(timeout=T)
    yield res
    res.stop()
    await res.until_stopped(timeout=T)


async def test_sync_exposes_requests_and_sensors(resource):
    assert resource.state == "synced"
    assert resource.is_connected()
    assert {"pos_az", "pos_el", "on_target", "mode"} <= set(resource.sensor)
    assert {"target", "fail_me", "watchdog", "sensor_value"} <= set(resource.req)
    s = resource.sensor.pos_az
    assert (s.name, s.type, s.units, s.description) == ("pos.az", "float", "deg", "Azimuth")
    assert resource.sensor.mode.type == "discrete"
    assert "Point at" in resource.req.target.description


async def test_request_returns_katcp_reply(resource):
    reply = await resource.req.watchdog()
    assert isinstance(reply, KATCPReply)
    assert reply and reply.succeeded
    assert repr(reply) == "!watchdog ok"
    failed = await resource.req.fail_me()
    assert not failed
    assert repr(failed) == "!fail-me fail as requested"
    reply, informs = await resource.req.help("watchdog")
    assert reply.reply_ok() and len(informs) == 1


async def test_get_value_and_reading(resource):
    assert await resource.sensor.pos_el.get_value() == 90.0
    reading = await resource.sensor.mode.get_reading()
    assert reading.value == "idle" and reading.status == "nominal"
    assert reading.received_timestamp > 0


async def test_wait_without_strategy_raises(resource):
    with pytest.raises(KATCPSensorError):
        resource.sensor.on_target.wait(True, timeout=1)
    with pytest.raises(KATCPSensorError):
        resource.wait("no_such_sensor", True)


async def test_strategy_listener_and_wait(resource):
    seen = []
    await resource.set_sensor_listener("on-target", lambda s, r: seen.append(r.value))
    result = await resource.set_sampling_strategy("on_target", "event")
    assert result == {"on_target": "event"}  # as passed, as katcp-python
    assert resource.sensor.on_target.sampling_strategy == ("event",)
    await resource.sensor.on_target.wait(True, timeout=T)  # the event strategy's first update
    assert await resource.req.target(30, 45)
    assert await resource.wait("on_target", False, timeout=T) is True
    assert await resource.sensor.on_target.wait(True, timeout=T) is True
    assert False in seen and seen[-1] is True


async def test_wait_timeout(resource):
    await resource.set_sampling_strategy("pos_az", "event")
    assert await resource.wait("pos_az", 123.0, timeout=0.05) is False
    with pytest.raises(SensorWaitTimeout):
        await resource.sensor.pos_az.wait(123.0, timeout=0.05)
    with pytest.raises(TimeoutError):  # the builtin spelling, on every Python version
        await resource.sensor.pos_az.wait(lambda r: r.value > 1000, timeout=0.05)
    with pytest.raises(asyncio.TimeoutError):
        await resource.sensor.pos_az.wait(-1.0, timeout=0.05)


async def test_list_sensors(resource):
    found = await resource.list_sensors("pos")
    assert [r.python_identifier for r in found] == ["pos_az", "pos_el"]
    assert isinstance(found[0], SensorResultTuple) and found[0].name == "pos.az"
    assert await resource.list_sensors("pos", strategy=True) == []
    await resource.set_sampling_strategy("pos_el", "period 0.5")
    only = await resource.list_sensors(strategy=True)
    assert [r.name for r in only] == ["pos.el"]
    old = await resource.list_sensors("^mode$", tuple=True, refresh=True)
    assert old[0][0] == "mode" and old[0][1] == "idle"
    assert await resource.list_sensors("pos.el", use_python_identifiers=False)


async def test_set_sampling_strategies_applies_to_new_sensors(resource):
    result = await resource.set_sampling_strategies("^pos_", "event")
    assert set(result) == {"pos_az", "pos_el"}
    got = asyncio.get_running_loop().create_future()
    await resource.set_sensor_listener("pos.rot", lambda s, r: got.done() or got.set_result(r))
    assert await resource.req.add_sensor("pos.rot", 7)
    # The sensor appears through #interface-changed, gets the filter's strategy and the
    # listener registered before it existed sees the strategy's first update.
    reading = await asyncio.wait_for(got, T)
    assert reading.value == 7
    assert resource.sensor.pos_rot.sampling_strategy == ("event",)


async def test_inactive_resource_refuses_requests(resource):
    resource.set_active(False)
    assert not resource.is_active()
    with pytest.raises(KATCPResourceInactive):
        resource.req.watchdog()
    resource.set_active(True)
    assert await resource.req.watchdog()


async def test_uncontrolled_resource_exposes_allowed_requests_only(antenna):
    res = KATCPClientResource(
        {
            "name": "ro",
            "address": antenna.address,
            "always_allowed_requests": ["sensor-value", "target"],
            "always_excluded_requests": ["target"],
        }
    )
    res.start()
    try:
        await res.until_synced(timeout=T)
        assert set(res.req) == {"sensor_value"}
        assert "pos_az" in res.sensor
    finally:
        res.stop()
        await res.until_stopped(timeout=T)


async def test_states_follow_the_connection(antenna):
    res = KATCPClientResource(spec(antenna.address, auto_reconnect_delay=0.05))
    assert res.state == "disconnected" and not res.is_connected()
    res.start()
    await res.wait_connected(timeout=T)
    await res.until_synced(timeout=T)
    with pytest.raises(asyncio.TimeoutError):
        await res.until_not_synced(timeout=0.01)
    await antenna.stop()
    await res.until_state("disconnected", timeout=T)
    assert not res.is_connected()
    await antenna.start()
    await res.until_synced(timeout=T)
    res.stop()
    await res.until_stopped(timeout=T)


async def test_interface_changed_adds_and_removes_without_losing_listeners(resource, antenna):
    az = resource.sensor.pos_az
    direct = []
    az.register_listener(lambda rts, ts, status, value: direct.append((status, value)))
    await resource.set_sampling_strategy("pos_az", "event")
    await az.wait(0.0, timeout=T)
    assert await resource.req.add_sensor("rx.temp", 5)
    # The #interface-changed inform came before the reply, so the resource is re-syncing.
    assert resource.state == "syncing"
    await resource.until_synced(timeout=T)
    assert resource.sensor.rx_temp.type == "integer"
    assert resource.sensor.pos_az is az  # unchanged sensors keep their objects
    temp_values = []
    resource.sensor.rx_temp.register_listener(lambda s, r: temp_values.append(r.value), True)
    await resource.set_sampling_strategy("rx_temp", "event")
    await resource.sensor.rx_temp.wait(5, timeout=T)
    assert await resource.req.remove_sensor("rx.temp")
    await resource.until_synced(timeout=T)
    assert "rx_temp" not in resource.sensor
    # Re-added: listeners registered on the old object and the strategy come back.
    assert await resource.req.add_sensor("rx.temp", 9)
    await resource.until_synced(timeout=T)
    assert await resource.sensor.rx_temp.wait(9, timeout=T)
    assert temp_values[-1] == 9
    assert await resource.req.target(3, 4)
    assert await az.wait(3.0, timeout=T)
    assert direct[-1] == ("nominal", 3.0)


async def test_bare_interface_changed_triggers_full_resync(resource, antenna):
    import aiokatcp

    antenna.server.sensors.add(aiokatcp.Sensor(int, "quiet", "Added silently", default=1))
    antenna.server.mass_inform("interface-changed")
    await resource.until_state("syncing", timeout=T)
    await resource.until_synced(timeout=T)
    assert "quiet" in resource.sensor


async def test_restart_restores_strategies_and_listeners(antenna):
    res = KATCPClientResource(spec(antenna.address, auto_reconnect_delay=0.02))
    res.start()
    try:
        await res.until_synced(timeout=T)
        values = []
        await res.set_sensor_listener("on_target", lambda s, r: values.append(r.value))
        await res.set_sampling_strategy("on_target", "event")
        await res.sensor.on_target.wait(True, timeout=T)
        await antenna.stop()
        await res.until_state("disconnected", timeout=T)
        server = await antenna.start()
        await res.until_synced(timeout=T)
        server.sensors["on-target"].value = False
        assert await res.sensor.on_target.wait(False, timeout=T)
        assert values[-1] is False
    finally:
        res.stop()
        await res.until_stopped(timeout=T)


def test_attrdict_keys_win_over_dict_methods():
    from katcpx.resource import AttrDict

    d = AttrDict(update="u", pos_az=1)
    assert d.update == "u" and d.pos_az == 1
    assert list(d.items()) == [("update", "u"), ("pos_az", 1)]  # not a key: the method
    assert sorted(dict.keys(d)) == ["pos_az", "update"]
    with pytest.raises(AttributeError):
        d.missing  # noqa: B018
    assert "pos_az" in dir(d)


async def test_request_added_at_runtime(resource):
    assert "extra" not in resource.req
    assert await resource.req.enable_extra()
    await resource.until_synced(timeout=T)
    assert resource.req.extra.description == "Double a number."
    reply = await resource.req.extra(21)
    assert reply.reply.arguments == [b"ok", b"42"]
