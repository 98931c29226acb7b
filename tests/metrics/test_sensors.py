"""Device sensors as metrics: katcpx-web's /metrics, each sensor type's mapping, statuses,
#interface-changed and the filters."""

from __future__ import annotations

import re

import pytest
import tornado.httpclient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from katcpx.metrics import SensorExporter
from katcpx.sensor import Sensor

from .conftest import TIMEOUT, Web, fetch, parse, until_sensor

DEV = {"device": "gadget"}


async def test_each_type_maps_as_documented(web: Web) -> None:
    scrape = await fetch(web.metrics_url)
    # Numbers, booleans (0/1) and timestamps (seconds): one value gauge each.
    assert scrape.families["katcp_sensor_value"][0] == "gauge"
    assert scrape.value("katcp_sensor_value", sensor="count", **DEV) == 7
    assert scrape.value("katcp_sensor_value", sensor="temp", **DEV) == 20.5
    assert scrape.value("katcp_sensor_value", sensor="ready", **DEV) == 1
    assert scrape.value("katcp_sensor_value", sensor="started", **DEV) == 1.7e9
    valued = {lab["sensor"] for lab, _ in scrape.samples("katcp_sensor_value", **DEV)}
    assert valued == {"count", "temp", "ready", "started"}
    # Discrete and lru: a state set, one series per allowed value (the classic text format
    # has no state set or info type: both go out as gauges; OpenMetrics below).
    assert scrape.families["katcp_sensor_state"][0] == "gauge"
    mode = {
        lab["katcp_sensor_state"]: v
        for lab, v in scrape.samples("katcp_sensor_state", sensor="mode")
    }
    assert mode == {"idle": 0, "heat": 1, "cool": 0}
    lru = {
        lab["katcp_sensor_state"]: v
        for lab, v in scrape.samples("katcp_sensor_state", sensor="lru")
    }
    assert lru == {"nominal": 0, "error": 1}
    # Strings and addresses: an info metric whose label carries the value.
    assert scrape.families["katcp_sensor_string_info"][0] == "gauge"
    text = {lab["sensor"]: lab["value"] for lab, _ in scrape.samples("katcp_sensor_string_info")}
    assert text == {"label": "lab one", "peer": "10.0.0.1:7147"}
    # Status, timestamp and metadata for every sensor.
    assert scrape.sensors("gadget") == set(web.device.sensors)
    for name, sensor in web.device.sensors.items():
        assert scrape.samples("katcp_sensor_status", sensor=name, **DEV) == [
            ({"device": "gadget", "sensor": name, "status": "nominal"}, 1.0)
        ]
        stamp = scrape.value("katcp_sensor_timestamp_seconds", sensor=name, **DEV)
        assert stamp == pytest.approx(sensor.read().timestamp, abs=1e-6)
    info = {lab["sensor"]: lab for lab, _ in scrape.samples("katcp_sensor_info", **DEV)}
    assert info["temp"]["units"] == "degC" and info["temp"]["type"] == "float"
    assert info["mode"]["type"] == "discrete" and info["peer"]["type"] == "address"
    # The device itself.
    assert scrape.value("katcp_device_up", **DEV) == 1
    assert scrape.value("katcp_device_reconnects_total", **DEV) == 0
    assert 0 < scrape.value("katcp_device_sync_seconds", **DEV) < TIMEOUT
    # And katcpx's own health as the hub's client of the device.
    assert (
        scrape.value("katcpx_resource_state", resource="gadget", katcpx_resource_state="synced")
        == 1
    )


async def test_string_value_label_follows_changes(web: Web) -> None:
    web.device.sensors["label"].set_value("second label")
    web.device.sensors["mode"].set_value("cool")
    web.device.sensors["temp"].set_value(-3.25)
    scrape = await fetch(web.metrics_url)
    assert [
        lab["value"] for lab, _ in scrape.samples("katcp_sensor_string_info", sensor="label")
    ] == ["second label"]
    assert scrape.value("katcp_sensor_state", sensor="mode", katcp_sensor_state="cool") == 1
    assert scrape.value("katcp_sensor_state", sensor="mode", katcp_sensor_state="heat") == 0
    assert scrape.value("katcp_sensor_value", sensor="temp", **DEV) == -3.25


@pytest.mark.parametrize("status", [Sensor.UNKNOWN, Sensor.UNREACHABLE])
async def test_unknown_and_unreachable_drop_the_value(web: Web, status: int) -> None:
    sensors = web.device.sensors
    for name in ("temp", "mode", "label"):
        sensors[name].set(1.8e9, status, sensors[name].value())
    sensors["count"].set_value(8, Sensor.WARN)
    scrape = await fetch(web.metrics_url)
    name = Sensor.STATUSES[status]
    for sensor in ("temp", "mode", "label"):
        assert scrape.samples("katcp_sensor_status", sensor=sensor) == [
            ({"device": "gadget", "sensor": sensor, "status": name}, 1.0)
        ]
        assert scrape.value("katcp_sensor_timestamp_seconds", sensor=sensor) == 1.8e9
    assert scrape.value("katcp_sensor_value", sensor="temp") is None
    assert scrape.samples("katcp_sensor_state", sensor="mode") == []
    assert scrape.samples("katcp_sensor_string_info", sensor="label") == []
    # Other statuses keep their value.
    assert scrape.value("katcp_sensor_value", sensor="count") == 8
    assert scrape.value("katcp_sensor_status", sensor="count", status="warn") == 1


async def test_interface_changed_adds_and_removes_series(web: Web) -> None:
    web.device.remove_sensor("temp")  # sends #interface-changed sensor temp removed
    scrape = await fetch(web.metrics_url)
    # Gone from the very next scrape: the device's reply no longer holds it.
    assert "temp" not in scrape.sensors("gadget")
    assert scrape.value("katcp_sensor_value", sensor="temp") is None
    assert scrape.samples("katcp_sensor_info", sensor="temp") == []
    web.device.add_sensor(
        Sensor.float("pressure", "Pressure", "Pa", default=101325.0, initial_status=Sensor.NOMINAL)
    )

    scrape = await until_sensor(web.metrics_url, "gadget", "pressure")
    assert scrape.value("katcp_sensor_value", sensor="pressure") == 101325.0
    units = [lab["units"] for lab, _ in scrape.samples("katcp_sensor_info", sensor="pressure")]
    assert units == ["Pa"]


async def test_device_down_and_reconnects(web: Web) -> None:
    res = web.web.hub.resource("gadget")
    port = web.device.bind_address[1]
    web.device.stop()
    await web.device.until_stopped(TIMEOUT)
    await res.until_state("disconnected", TIMEOUT)
    scrape = await fetch(web.metrics_url)
    assert scrape.value("katcp_device_up", device="gadget") == 0
    assert scrape.sensors("gadget") == set()
    assert scrape.value("katcpx_resource_connected", resource="gadget") == 0
    # Same port again: the resource reconnects and the exporter counts it.
    again = type(web.device)("127.0.0.1", port)
    again.set_ioloop()
    again.start()
    try:
        await res.until_synced(TIMEOUT)
        scrape = await fetch(web.metrics_url)
        assert scrape.value("katcp_device_up", device="gadget") == 1
        assert scrape.value("katcp_device_reconnects_total", device="gadget") == 1
        assert scrape.value("katcpx_resource_reconnects_total", resource="gadget") == 1
        assert scrape.sensors("gadget") == set(web.device.sensors)
    finally:
        again.stop()
        await again.until_stopped(TIMEOUT)


async def test_device_and_sensor_filters(web: Web) -> None:
    res = web.web.hub.resource("gadget")
    registry = CollectorRegistry(auto_describe=False)
    exporter = SensorExporter(
        {"gadget": res, "other": res},
        device_filter="^gad",
        sensor_filter="^(temp|mode)$",
        registry=registry,
    )
    registry.register(exporter)
    await exporter.refresh()
    scrape = parse(generate_latest(registry).decode())
    assert scrape.sensors("gadget") == {"temp", "mode"}
    assert scrape.sensors("other") == set()
    assert scrape.samples("katcp_device_up", device="other") == []
    with pytest.raises(ValueError, match="bad sensor filter"):
        SensorExporter({}, sensor_filter="(")


async def test_every_metrics_name_is_documented(web: Web) -> None:
    """docs/monitoring.md names every family katcpx-web serves."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()
    scrape = await fetch(web.metrics_url)
    for family in scrape.families:
        if family.startswith("katcp"):
            assert re.search(rf"`{family}(_total|_info)?[`{{]", doc), family


async def test_openmetrics_types(web: Web) -> None:
    """Asked for OpenMetrics (as Prometheus asks), state sets and infos keep their types."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        web.metrics_url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    types = {
        f.name: f.type
        for f in openmetrics_families(response.body.decode())
        if f.name.startswith("katcp")
    }
    assert types["katcp_sensor_state"] == "stateset"
    assert types["katcp_sensor_string"] == "info"
    assert types["katcp_sensor"] == "info"
    assert types["katcp_sensor_value"] == "gauge"
    assert types["katcp_device_reconnects"] == "counter"
    assert types["katcpx_resource_request_duration_seconds"] == "histogram"
