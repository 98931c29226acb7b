"""KATCPClientResourceContainer and client groups across katcpx, aiokatcp and katcp-python."""

import asyncio

import pytest

from katcpx.resource import GroupResults, KATCPClientResourceContainer, KATCPSensorError

T = 5.0


def container_spec(clients, groups=None):
    spec = {"name": "array", "clients": clients}
    if groups is not None:
        spec["groups"] = groups
    return spec


@pytest.fixture
async def array(antenna, katcpx_dish):
    c = KATCPClientResourceContainer(
        container_spec(
            {
                "m000": {"address": antenna.address, "controlled": True},
                "m001": {"address": katcpx_dish.bind_address, "controlled": True},
            },
            groups={"dishes": ["m000", "m001"]},
        )
    )
    c.start()
    await c.until_synced(timeout=T)
    yield c
    c.stop()
    await asyncio.gather(*c.until_stopped(timeout=T).values())


async def test_merged_sensors_and_requests(array):
    assert set(array.children) == {"m000", "m001"}
    assert array.is_connected()
    assert {"m000_pos_az", "m000_mode", "m001_pos_az", "m001_temp"} <= set(array.sensor)
    assert {"m000_target", "m001_target", "m000_fail_me"} <= set(array.req)
    assert array.sensor.m001_temp.parent_name == "m001"
    reply = await array.req.m001_target(12.5, 30)
    assert reply
    assert await array.sensor.m001_pos_az.get_value() == 12.5
    names = [r.name for r in await array.list_sensors("pos_az")]
    assert names == ["m000.pos.az", "m001.pos.az"]


async def test_regex_strategies_across_children(array):
    result = await array.set_sampling_strategies("_pos_az$|m001_temp", "event")
    # katcp-python's result: the strategy as passed.
    assert result == {"m000": {"pos_az": "event"}, "m001": {"pos_az": "event", "temp": "event"}}
    assert array.children.m000.sensor.pos_az.sampling_strategy == ("event",)
    assert array.children.m000.sensor.pos_el.sampling_strategy == ("none",)
    assert await array.wait("m001_temp", 20.0, timeout=T)
    with pytest.raises(KATCPSensorError):
        array.wait("m000_no_such", 1)
    listed = await array.list_sensors(strategy=True)
    assert len(listed) == 3


async def test_group_request_and_quorum_wait(array):
    group = array.groups.dishes
    assert len(group) == 2 and group.is_connected()
    results = await group.req.target(40, 10)
    assert isinstance(results, GroupResults)
    assert set(results) == {"m000", "m001"} and results
    # fail_me exists on one member only: the other's result is None, so the group fails.
    partial = await group.req.fail_me()
    assert partial["m001"] is None and not partial["m000"] and not partial
    await group.set_sampling_strategy("pos_az", "event")
    ok = await group.wait("pos_az", 40.0, timeout=T)
    assert ok and dict(ok) == {"m000": True, "m001": True}
    # Only m001 will ever be at 12; a quorum of one is reached, of two is not.
    await array.req.m001_target(12, 0)
    one = await group.wait("pos_az", 12.0, timeout=0.4, quorum=1, max_grace_period=0.1)
    assert one and one == {"m001": True, "m000": False}
    both = await group.wait("pos_az", 12.0, timeout=0.2, quorum=1.0, max_grace_period=0.05)
    assert not both


async def test_add_group_and_child(array, katcpx_dish):
    array.add_group("one", ["m001"])
    assert [c.name for c in array.groups.one] == ["m001"]
    child = array.add_child_resource_client(
        "m002", {"address": katcpx_dish.bind_address, "controlled": True}
    )
    await child.until_synced(timeout=T)
    assert "m002_temp" in array.sensor and "m002_target" in array.req


async def test_children_states(antenna, katcpx_dish):
    c = KATCPClientResourceContainer(
        container_spec(
            {
                "a": {"address": antenna.address, "auto_reconnect_delay": 0.05},
                "b": {"address": katcpx_dish.bind_address},
            }
        )
    )
    c.start()
    try:
        await c.until_all_children_in_state("synced", timeout=T)
        with pytest.raises(asyncio.TimeoutError):
            await c.until_not_synced(timeout=0.01)
        await antenna.stop()
        await c.until_any_child_in_state("disconnected", timeout=T)
        await c.until_not_synced(timeout=T)
        assert not c.is_connected()
        await antenna.start()
        await c.until_synced(timeout=T)
    finally:
        c.stop()
        await asyncio.gather(*c.until_stopped(timeout=T).values())


@pytest.mark.peers
async def test_container_with_katcp_python_peer(katcp_python_server, antenna):
    c = KATCPClientResourceContainer(
        container_spec(
            {
                "kp": {"address": katcp_python_server.address, "controlled": True},
                "aio": {"address": antenna.address, "controlled": True},
            },
            groups={"all": ["kp", "aio"]},
        )
    )
    c.start()
    try:
        await c.until_synced(timeout=T)
        assert {"kp_int_sensor", "kp_float_0", "aio_on_target"} <= set(c.sensor)
        assert (await c.req.kp_echo("a b", 3)).reply.arguments == [b"ok", b"a b", b"3"]
        result = await c.set_sampling_strategies("^kp_int_sensor$", "event")
        assert result == {"kp": {"int_sensor": "event"}}
        assert await c.wait("kp_int_sensor", 7, timeout=T)
        katcp_python_server.set_sensor("int-sensor", 42)
        assert await c.wait("kp_int_sensor", 42, timeout=T)
        watchdogs = await c.groups.all.req.watchdog()
        assert watchdogs and set(watchdogs) == {"kp", "aio"}
    finally:
        c.stop()
        await asyncio.gather(*c.until_stopped(timeout=T).values())


async def test_children_reconnect_jittered_after_restart(antenna):
    n = 8
    c = KATCPClientResourceContainer(
        container_spec(
            {f"c{i}": {"address": antenna.address, "auto_reconnect_delay": 0.2} for i in range(n)}
        )
    )
    c.start()
    try:
        await c.until_synced(timeout=T)
        await c.set_sampling_strategies("on_target$", "event")
        await antenna.stop()
        await c.until_all_children_in_state("disconnected", timeout=T)
        server = await antenna.start()
        await c.until_synced(timeout=T)
        times = sorted(child._client.last_connect_time for child in c.children.values())
        # Each child waited 0.1-0.2 s at random: they did not all come back at once.
        assert times[-1] - times[0] > 0.01
        # Their strategies came back: a new value reaches every child.
        server.sensors["on-target"].value = False
        await asyncio.gather(*(ch.sensor.on_target.wait(False, T) for ch in c.children.values()))
    finally:
        c.stop()
        await asyncio.gather(*c.until_stopped(timeout=T).values())


async def test_container_filter_samples_a_sensor_that_appears_later(array):
    # The container's filter is on <child>_<sensor>; the child asks its parent
    # (child_sensors_changed) for the strategies of sensors it has just learnt of.
    await array.set_sampling_strategies("^m000_late_", "event")
    reply = await array.req.m000_add_sensor("late.one", 7)
    assert reply
    await array.until_synced(timeout=T)
    child = array.children.m000
    assert child.get_sampling_strategy("late_one") == ("event",)
    assert child.sensor.late_one.sampling_strategy == ("event",)
    # The strategy was sent: the reading arrives without being polled.
    assert await child.sensor.late_one.wait(7, timeout=T)
    assert array.children.m001.get_sampling_strategy("late_one") == ("none",)


async def test_resource_apply_sampling_strategy_reports_each_sensor(array):
    child = array.children.m001  # katcpx server with flag B: one bulk request
    results = await child.apply_sampling_strategy(["pos.az", "temp", "no.such"], "event")
    assert results == {"pos_az": ("event",), "temp": ("event",)}  # unknown: not sent
    assert child.sensor.temp.sampling_strategy == ("event",)
    assert child.get_sampling_strategy("no_such") == ("event",)  # memorised for later
    results = await child.apply_sampling_strategy(["temp"], ("period", -1))
    assert isinstance(results["temp"], str)  # the server's refusal text
