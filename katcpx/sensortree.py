"""Sensor trees (katcp-python's ``katcp.sensortree``): sensors whose values follow others.

A tree is a directed acyclic graph of sensors: an edge parent -> child says the parent's
value depends on the child's. The tree observes every sensor in it; an update of a child
recalculates its parents, which may in turn update their parents. Cycles are not checked
(they would recurse without end), as in katcp-python.

Pure logic: recalculation runs in the thread that updated the child.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .sensor import Sensor

__all__ = ["AggregateSensorTree", "BooleanSensorTree", "GenericSensorTree"]

Rule = Callable[[Sensor, Any], None]


class GenericSensorTree:
    """The graph and its bookkeeping; subclasses define :meth:`recalculate`."""

    def __init__(self) -> None:
        self._child_to_parents: dict[Sensor, set[Sensor]] = {}
        self._parent_to_children: dict[Sensor, set[Sensor]] = {}

    def update(self, sensor: Sensor, reading: Any) -> None:
        """Observer callback: recalculate every parent of ``sensor``."""
        for parent in list(self._child_to_parents.get(sensor, ())):
            self.recalculate(parent, (sensor,))

    def recalculate(self, parent: Sensor, updates: Iterable[Sensor]) -> None:
        """Set ``parent``'s value after its children ``updates`` changed.

        Raises
        ------
        NotImplementedError
            In this base class.
        """
        raise NotImplementedError

    def _track(self, sensor: Sensor) -> bool:
        if sensor in self:
            return False
        self._parent_to_children[sensor] = set()
        self._child_to_parents[sensor] = set()
        return True

    def _untrack_if_unlinked(self, sensor: Sensor) -> bool:
        if self._child_to_parents[sensor] or self._parent_to_children[sensor]:
            return False
        del self._parent_to_children[sensor]
        del self._child_to_parents[sensor]
        return True

    def add_links(self, parent: Sensor, children: Iterable[Sensor]) -> None:
        """Make ``parent`` depend on each of ``children``, then recalculate it."""
        children = list(children)
        new = [s for s in (parent, *children) if self._track(s)]
        for child in children:
            self._parent_to_children[parent].add(child)
            self._child_to_parents[child].add(parent)
        self.recalculate(parent, children)
        for sensor in new:
            sensor.attach(self)

    def remove_links(self, parent: Sensor, children: Iterable[Sensor]) -> None:
        """Drop the links from ``parent`` to ``children``, then recalculate ``parent``.

        Sensors left without links leave the tree (and are no longer observed).
        """
        children = list(children)
        gone = []
        if parent in self:
            for child in children:
                if child not in self:
                    continue
                self._parent_to_children[parent].discard(child)
                self._child_to_parents[child].discard(parent)
                if self._untrack_if_unlinked(child):
                    gone.append(child)
            if self._untrack_if_unlinked(parent):
                gone.append(parent)
        for sensor in gone:
            sensor.detach(self)
        self.recalculate(parent, children)

    def children(self, parent: Sensor) -> set[Sensor]:
        """The sensors ``parent`` depends on.

        Raises
        ------
        ValueError
            If ``parent`` is not in the tree.
        """
        if parent not in self._parent_to_children:
            raise ValueError(f"Parent sensor {parent!r} not in tree.")
        return set(self._parent_to_children[parent])

    def parents(self, child: Sensor) -> set[Sensor]:
        """The sensors that depend on ``child``.

        Raises
        ------
        ValueError
            If ``child`` is not in the tree.
        """
        if child not in self._child_to_parents:
            raise ValueError(f"Child sensor {child!r} not in tree.")
        return set(self._child_to_parents[child])

    def __contains__(self, sensor: object) -> bool:
        return sensor in self._parent_to_children


class BooleanSensorTree(GenericSensorTree):
    """A tree of boolean sensors: a parent is True exactly when all its children are."""

    def __init__(self) -> None:
        super().__init__()
        self._parent_to_not_ok: dict[Sensor, set[Sensor]] = {}

    def add(self, parent: Sensor, child: Sensor) -> None:
        """Make boolean ``parent`` depend on boolean ``child``.

        Raises
        ------
        ValueError
            If either sensor is not boolean.
        """
        for sensor, role in ((parent, "Parent"), (child, "Child")):
            if sensor not in self:
                if sensor.stype != "boolean":
                    raise ValueError(f"{role} sensor {sensor!r} is not boolean")
                self._parent_to_not_ok.setdefault(sensor, set())
        self.add_links(parent, (child,))

    def remove(self, parent: Sensor, child: Sensor) -> None:
        """Drop the link from ``parent`` to ``child``."""
        self.remove_links(parent, (child,))
        for sensor in (parent, child):
            if sensor not in self:
                self._parent_to_not_ok.pop(sensor, None)

    def recalculate(self, parent: Sensor, updates: Iterable[Sensor]) -> None:
        not_ok = self._parent_to_not_ok[parent]
        children = self.children(parent) if parent in self else set()
        for sensor in updates:
            if sensor in children and not sensor.value():
                not_ok.add(sensor)
            else:
                not_ok.discard(sensor)
        parent.set_value(not not_ok)


class AggregateSensorTree(GenericSensorTree):
    """A tree where each parent's value is computed by a rule from its children.

    ``rule_function(parent, children)`` sets ``parent``'s value. Rules can name children
    that do not exist yet (:meth:`add_delayed`); they apply once all are registered.
    """

    def __init__(self) -> None:
        super().__init__()
        self._aggregates: dict[Sensor, tuple[Rule, Any]] = {}
        self._incomplete_aggregates: dict[Sensor, tuple[Rule, set[str], set[Sensor]]] = {}
        self._registered_sensors: dict[str, Sensor] = {}

    def _check_free(self, parent: Sensor) -> None:
        if parent in self._aggregates or parent in self._incomplete_aggregates:
            raise ValueError(f"Sensor {parent!r} already has an aggregate rule associated")

    def add(self, parent: Sensor, rule_function: Rule, children: Iterable[Sensor]) -> None:
        """Compute ``parent`` with ``rule_function`` from ``children``.

        Raises
        ------
        ValueError
            If ``parent`` already has a rule.
        """
        self._check_free(parent)
        self._aggregates[parent] = (rule_function, children)
        self.add_links(parent, children)

    def add_delayed(self, parent: Sensor, rule_function: Rule, child_names: Iterable[str]) -> None:
        """Like :meth:`add` with children named; applied once all are registered.

        Raises
        ------
        ValueError
            If ``parent`` already has a rule.
        """
        self._check_free(parent)
        names = list(child_names)
        known = self._registered_sensors
        missing = {n for n in names if n not in known}
        present = {known[n] for n in names if n in known}
        if missing:
            self._incomplete_aggregates[parent] = (rule_function, missing, present)
        else:
            self.add(parent, rule_function, present)

    def register_sensor(self, child: Sensor) -> None:
        """Make ``child`` available to delayed rules (by its name).

        Raises
        ------
        ValueError
            If a sensor of that name is registered already.
        """
        name = self._get_sensor_reference(child)
        if name in self._registered_sensors:
            raise ValueError(f"Sensor {child!r} already registered with aggregate tree")
        self._registered_sensors[name] = child
        completed = []
        for parent, (_rule, names, sensors) in self._incomplete_aggregates.items():
            if name in names:
                names.discard(name)
                sensors.add(child)
                if not names:
                    completed.append(parent)
        for parent in completed:
            rule, _names, sensors = self._incomplete_aggregates.pop(parent)
            self.add(parent, rule, sensors)

    def deregister_sensor(self, child: Sensor) -> None:
        """Withdraw ``child``: rules using it become incomplete again until it returns.

        Raises
        ------
        ValueError
            If no sensor of that name is registered.
        """
        name = self._get_sensor_reference(child)
        if name not in self._registered_sensors:
            raise ValueError(f"Sensor {name!r} not registered with aggregate tree")
        child = self._registered_sensors.pop(name)
        if child not in self:
            return
        for parent in self.parents(child):
            if parent in self._incomplete_aggregates:
                rule, names, sensors = self._incomplete_aggregates[parent]
                names.add(name)
            else:
                rule, sensors = self._aggregates[parent]
                if not isinstance(sensors, set):
                    sensors = set(sensors)
                    self._aggregates[parent] = (rule, sensors)
                names = {name}
            # In place: the parent is recalculated once more from the children it keeps.
            sensors.discard(child)
            self._incomplete_aggregates[parent] = (rule, names, sensors)
            self.remove_links(parent, [child])
            if parent in self._aggregates:
                if parent in self:
                    self.remove(parent)
                else:
                    del self._aggregates[parent]

    def _child_from_reference(self, reference: str) -> Sensor | None:
        for child in self._child_to_parents:
            if self._get_sensor_reference(child) == reference:
                return child
        return None

    def remove(self, parent: Sensor) -> None:
        """Drop ``parent``'s rule and its links.

        Raises
        ------
        ValueError
            If ``parent`` has no rule.
        """
        if parent not in self._aggregates:
            raise ValueError(f"Sensor {parent!r} does not have an aggregate rule associated")
        if parent in self:
            self.remove_links(parent, self.children(parent))
        del self._aggregates[parent]

    def fetch(self, parent: Sensor) -> tuple[Rule, Any]:
        """Return ``(rule_function, children)`` of ``parent``."""
        return self._aggregates[parent]

    def recalculate(self, parent: Sensor, updates: Iterable[Sensor]) -> None:
        entry = self._aggregates.get(parent)
        if entry is not None:
            rule, children = entry
            rule(parent, children)

    def _get_sensor_reference(self, sensor: Sensor) -> str:
        return sensor.name
