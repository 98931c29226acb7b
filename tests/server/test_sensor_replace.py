"""A sensor replaced with ``add_sensor`` (same name) keeps every client's sampling strategy.

Spec 5.1 section 4.2: the device announces ``#interface-changed sensor <name> modified``.
Each client's strategy moves to the new sensor object with its kind and parameters, and is
started afresh, so the client gets the new sensor's reading at once. A raw socket on
127.0.0.1 checks the wire; tests/resource/test_replaced_sensor.py the resource's side.
"""

from __future__ import annotations

import logging

import pytest

from katcpx import Message, Sensor

from .helpers import ExampleServer, connect, running


def _count(value: int) -> Sensor:
    sensor = Sensor(Sensor.INTEGER, "an.int", "A count.", "counts", [0, 100])
    sensor.set_value(value)
    return sensor


def _statuses_until_changed(client, name: str) -> tuple[list[Message], Message]:
    """The ``#sensor-status`` informs read up to the ``#interface-changed`` naming `name`."""
    statuses = []
    while True:
        msg = client.read()
        if msg.name == "sensor-status":
            statuses.append(msg)
        elif msg.name == "interface-changed" and msg.arguments[1:2] == [name.encode()]:
            return statuses, msg
        else:
            client.backlog.append(msg)


def test_replacing_a_sensor_keeps_each_clients_strategy() -> None:
    with running(ExampleServer("127.0.0.1", 0)) as server:
        with connect(server) as sampler, connect(server) as idle:
            reply, _ = sampler.request("sensor-sampling", "an.int", "differential", "2")
            assert reply.arguments == [b"ok", b"an.int", b"differential", b"2"]
            sampler.wait_inform("sensor-status")  # the old sensor's reading, on being set
            old = server.int_sensor
            new = _count(40)
            server.add_sensor(new)  # off the loop, as device code in a handler thread does
            statuses, changed = _statuses_until_changed(sampler, "an.int")
            assert changed.arguments == [b"sensor", b"an.int", b"modified"]
            # The new sensor's reading, sent as the strategy does on being set.
            assert [m.arguments[2:] for m in statuses] == [[b"an.int", b"nominal", b"40"]]
            reply, _ = sampler.request("sensor-sampling", "an.int")
            assert reply.arguments == [b"ok", b"an.int", b"differential", b"2"]
            # The strategy follows the new object (with its parameter), not the old one.
            old.set_value(99)
            new.set_value(41)  # within the difference of 2: not sent
            new.set_value(45)
            assert sampler.wait_inform("sensor-status").arguments[2:] == [
                b"an.int",
                b"nominal",
                b"45",
            ]
            # A client without a strategy only hears of the change.
            changed = idle.wait_inform("interface-changed")
            assert changed.arguments == [b"sensor", b"an.int", b"modified"]
            assert not [m for m in idle.backlog if m.name == "sensor-status"]
            # Adding the same object again changes nothing, so nothing is announced: the
            # next interface change seen is the following one.
            server.add_sensor(new)
            server.add_sensor(Sensor(Sensor.INTEGER, "brand.new", "New.", "", [0, 1]))
            changed = idle.wait_inform("interface-changed")
            assert changed.arguments == [b"sensor", b"brand.new", b"added"]


def test_a_strategy_that_does_not_fit_the_new_sensor_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running(ExampleServer("127.0.0.1", 0)) as server:
        with connect(server) as client:
            client.request("sensor-sampling", "an.int", "differential", "2")
            client.request("sensor-sampling", "a.string", "event")
            with caplog.at_level(logging.WARNING, logger="katcp"):
                # differential does not exist for a string sensor
                server.add_sensor(Sensor(Sensor.STRING, "an.int", "Now text.", ""))
                _statuses_until_changed(client, "an.int")
                reply, _ = client.request("sensor-sampling", "an.int")
            assert reply.arguments == [b"ok", b"an.int", b"none"]
            log = client.wait_inform("log")
            assert log.arguments[0] == b"warn", log
            assert log.arguments[-1].startswith(
                b"Sensor an.int replaced: its strategy was dropped: differential"
            ), log
            assert any(
                "an.int replaced: its strategy was dropped" in r.getMessage()
                and "differential" in r.getMessage()
                for r in caplog.records
            ), [r.getMessage() for r in caplog.records]
            reply, _ = client.request("sensor-sampling", "a.string")
            assert reply.arguments == [b"ok", b"a.string", b"event"]


def test_replacing_a_request_handler_announces_modified() -> None:
    def request_extra(server, req, msg):
        """Say hi."""
        return req.make_reply("ok", "hi")

    with running(ExampleServer("127.0.0.1", 0)) as server:
        with connect(server) as client:
            server.add_request_handler("extra", request_extra)
            assert client.wait_inform("interface-changed").arguments == [
                b"request",
                b"extra",
                b"added",
            ]
            server.add_request_handler("extra", request_extra)
            assert client.wait_inform("interface-changed").arguments == [
                b"request",
                b"extra",
                b"modified",
            ]
