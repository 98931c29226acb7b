"""Sensor trees: parents follow their children (katcp-python's katcp.sensortree API)."""

from __future__ import annotations

import pytest

from katcpx import Sensor
from katcpx.sensortree import AggregateSensorTree, BooleanSensorTree


def boolean(name: str, value: bool = False) -> Sensor:
    sensor = Sensor.boolean(name, "", "")
    sensor.set_value(value)
    return sensor


def integer(name: str, value: int = 0) -> Sensor:
    sensor = Sensor.integer(name, "", "", [-100, 100])
    sensor.set_value(value)
    return sensor


def test_boolean_tree_parent_is_true_only_when_all_children_are():
    tree = BooleanSensorTree()
    parent, a, b = boolean("all-ok"), boolean("a", True), boolean("b", True)
    tree.add(parent, a)
    tree.add(parent, b)
    assert parent.value() is True
    b.set_value(False)
    assert parent.value() is False
    b.set_value(True)
    assert parent.value() is True
    tree.remove(parent, b)
    b.set_value(False)  # no longer a child
    assert parent.value() is True
    assert tree.children(parent) == {a} and tree.parents(a) == {parent}
    tree.remove(parent, a)
    assert parent not in tree and a not in tree
    with pytest.raises(ValueError, match="not in tree"):
        tree.children(parent)


def test_boolean_tree_refuses_other_types():
    with pytest.raises(ValueError, match="not boolean"):
        BooleanSensorTree().add(boolean("p"), integer("i"))


def add_rule(parent, children):
    parent.set_value(sum(child.value() for child in children))


def test_aggregate_tree_with_delayed_children():
    tree = AggregateSensorTree()
    total, a, b = integer("total"), integer("a", 2), integer("b", 3)
    tree.add_delayed(total, add_rule, ["a", "b"])
    tree.register_sensor(a)
    assert total.value() == 0  # still waiting for b
    tree.register_sensor(b)
    assert total.value() == 5
    a.set_value(10)
    assert total.value() == 13
    tree.deregister_sensor(a)  # recalculated once from the children left
    assert total.value() == 3
    a.set_value(50)
    assert total.value() == 3
    tree.register_sensor(a)
    assert total.value() == 53
    with pytest.raises(ValueError, match="already has an aggregate rule"):
        tree.add(total, add_rule, [a])
    with pytest.raises(ValueError, match="already registered"):
        tree.register_sensor(a)
