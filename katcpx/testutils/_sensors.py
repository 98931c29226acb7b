"""Sensor assertions and waiters of katcp-python's ``katcp.testutils``."""

from __future__ import annotations

import queue
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..message import Message
from ..sensor import Reading, Sensor
from ._helpers import add_mid_to_msg_str, suppress_queue_repeats

__all__ = [
    "SensorComparisonMixin",
    "SensorTransitionStatusWaiter",
    "SensorTransitionWaiter",
    "TestUtilMixin",
    "wait_sensor",
    "wait_sensor_async",
]


class SensorComparisonMixin:
    """Assertions comparing :class:`~katcpx.Sensor` objects; mix into a ``TestCase``.

    A description is a dict of some of the keys ``name``, ``status``, ``type`` (the type
    name, e.g. ``"integer"``), ``value``, ``timestamp``, ``description``, ``units`` and
    ``params``.
    """

    key_fns: dict[str, Callable[[Sensor], Any]] = dict(
        name=lambda s: s.name,
        status=lambda s: s.status(),
        type=lambda s: s.SENSOR_TYPE_LOOKUP[s.stype],
        value=lambda s: s.value(),
        timestamp=lambda s: s.read()[0],
        description=lambda s: s.description,
        units=lambda s: s.units,
        params=lambda s: s.params,
    )

    def _get_sensor_description(
        self,
        sensor: Sensor,
        desired_keys: Iterable[str] | None = None,
        ignore_keys: Iterable[str] = (),
    ) -> dict[str, Any]:
        keys = set(self.key_fns if desired_keys is None else desired_keys) - set(ignore_keys)
        unknown = keys - set(self.key_fns)
        if unknown:
            raise KeyError(f"Unknown sensor key: {sorted(unknown)[0]}")
        return {key: self.key_fns[key](sensor) for key in keys}

    def assert_sensor_equal(
        self, actual_sensor: Sensor, desired_sensor: Sensor, ignore_attributes: Iterable[str] = ()
    ) -> None:
        """Assert two sensors match in every key but ``ignore_attributes``."""
        ignore = tuple(ignore_attributes)
        self.assertEqual(  # type: ignore[attr-defined]
            self._get_sensor_description(actual_sensor, ignore_keys=ignore),
            self._get_sensor_description(desired_sensor, ignore_keys=ignore),
        )

    def assert_sensor_equal_description(
        self, actual_sensor: Sensor, desired_description: dict[str, Any]
    ) -> None:
        """Assert one sensor matches a description (its name is taken if not given)."""
        desired = dict(desired_description)
        desired.setdefault("name", actual_sensor.name)
        self.assert_sensors_equal_description([actual_sensor], [desired])

    def assert_sensors_equal_description(
        self, actual_sensors: Iterable[Sensor], desired_description: Iterable[dict[str, Any]]
    ) -> None:
        """Assert the sensors are exactly the named ones, each matching its description."""
        actual = {s.name: s for s in actual_sensors}
        desired = {d["name"]: d for d in desired_description}
        self.assertEqual(sorted(actual), sorted(desired))  # type: ignore[attr-defined]
        got = {
            name: self._get_sensor_description(actual[name], list(d)) for name, d in desired.items()
        }
        self.maxDiff = None
        self.assertEqual(got, desired)  # type: ignore[attr-defined]

    def assert_sensors_value_conditions(
        self, actual_sensors: Iterable[Sensor], value_tests: dict[str, Callable[[Any], Any]]
    ) -> None:
        """Call each ``value_tests[name](value)`` (the tests assert) on the named sensors."""
        actual = {s.name: s for s in actual_sensors}
        self.assertTrue(all(name in actual for name in value_tests))  # type: ignore[attr-defined]
        for name, test in value_tests.items():
            test(actual[name].value())


class TestUtilMixin:
    """Assertions on lists of messages, compared by their ``str()`` form; mix into a TestCase."""

    def _assert_msgs_length(self, actual_msgs: Sequence[Message], expected_number: int) -> None:
        count = len(actual_msgs)
        if count != expected_number:
            why = (
                "Too few messages received."
                if count < expected_number
                else ("Too many messages received.")
            )
            self.assertEqual(count, expected_number, why)  # type: ignore[attr-defined]

    def _assert_msgs_equal(
        self, actual_msgs: Sequence[Message], expected_msgs: Sequence[str], mid: Any = None
    ) -> None:
        for msg, text in zip(actual_msgs, expected_msgs, strict=False):
            self.assertEqual(str(msg), add_mid_to_msg_str(text, mid))  # type: ignore[attr-defined]
        self._assert_msgs_length(actual_msgs, len(expected_msgs))

    def _assert_msgs_match(self, actual_msgs: Sequence[Message], expected: Sequence[str]) -> None:
        for msg, pattern in zip(actual_msgs, expected, strict=False):
            self.assertTrue(  # type: ignore[attr-defined]
                re.match(pattern, str(msg)), f"Message did match pattern {pattern!r}: {msg}"
            )
        self._assert_msgs_length(actual_msgs, len(expected))

    def _assert_msgs_like(
        self, actual_msgs: Sequence[Message], expected: Sequence[tuple[str, str]], mid: Any = None
    ) -> None:
        for msg, (prefix, suffix) in zip(actual_msgs, expected, strict=False):
            text = str(msg)
            prefix = add_mid_to_msg_str(prefix, mid)
            if prefix and not text.startswith(prefix):
                self.assertEqual(  # type: ignore[attr-defined]
                    text, prefix, msg=f"Message '{text}' does not start with '{prefix}'."
                )
            if suffix and not text.endswith(suffix):
                self.assertEqual(  # type: ignore[attr-defined]
                    text, suffix, msg=f"Message '{text}' does not end with '{suffix}'."
                )
        self._assert_msgs_length(actual_msgs, len(expected))


class _Observer:
    def __init__(self, callback: Callable[[Sensor, Reading], None]) -> None:
        self.update = callback


class SensorTransitionWaiter:
    """Watch a sensor for a sequence of values, independent of timing.

    Parameters
    ----------
    sensor
        The sensor (any object with ``value()``, ``read()``, ``attach``, ``detach``).
    value_sequence
        Values or predicates; the first must hold for the current value (else
        ``ValueError``). Repeated readings of one value count once. None: only record, with
        :meth:`get_received_values`.
    """

    def __init__(self, sensor: Any, value_sequence: Sequence[Any] | None = None) -> None:
        self.sensor = sensor
        self.desired_value_sequence = value_sequence
        self._torn_down = False
        self._done = False
        self._value_queue: queue.Queue[Any] = queue.Queue()
        self.timed_out = False
        current = self._get_current_sensor_value()
        if value_sequence and not self._test_value(current, value_sequence[0]):
            raise ValueError("Sensor value does not satisfy initial condition")
        self.received_values = [current]
        self._observer = _Observer(self._sensor_callback)
        self.sensor.attach(self._observer)

    def _get_current_sensor_value(self) -> Any:
        return self.sensor.value()

    def _sensor_callback(self, sensor: Any, reading: Any) -> None:
        self._value_queue.put(reading[2])

    @staticmethod
    def _test_value(value: Any, value_test: Any) -> bool:
        return bool(value_test(value)) if callable(value_test) else value == value_test

    def wait(self, timeout: float | None = 5) -> bool:
        """Wait up to ``timeout`` seconds for the sequence; True if it happened.

        A value matching neither the current nor the next step fails at once. After a
        timeout, ``timed_out`` is True. The waiter is torn down either way.

        Raises
        ------
        RuntimeError
            If called twice, or after :meth:`teardown`.
        """
        if self._done:
            raise RuntimeError(
                "Transition already triggered. Instantiate a new SensorTransitionWaiter object"
            )
        if self._torn_down:
            raise RuntimeError(
                "This object has been torn down. Instantiate a new SensorTransitionWaiter object"
            )
        steps = list(self.desired_value_sequence or ())
        values = suppress_queue_repeats(self._value_queue, self.received_values[-1], timeout)
        try:
            for current_test, next_test in zip(steps, steps[1:], strict=False):
                if self._test_value(self.received_values[-1], next_test):
                    continue
                while True:
                    value = next(values)
                    self.received_values.append(value)
                    if self._test_value(value, next_test):
                        break
                    if not self._test_value(value, current_test):
                        return False
            return True
        except StopIteration:
            self.timed_out = True
            return False
        finally:
            self._done = True
            self.teardown()

    def get_received_values(self, stop: bool = True, reset: bool = True) -> list[Any]:
        """Return the values seen so far; ``stop`` tears down, ``reset`` forgets them."""
        while True:
            try:
                self.received_values.append(self._value_queue.get_nowait())
            except queue.Empty:
                break
        values = self.received_values
        if reset:
            self.received_values = []
        if stop:
            self.teardown()
        return values

    def teardown(self) -> None:
        """Stop watching the sensor."""
        if not self._torn_down:
            self.sensor.detach(self._observer)
            self._torn_down = True


class SensorTransitionStatusWaiter(SensorTransitionWaiter):
    """:class:`SensorTransitionWaiter` over ``(status, value)`` pairs."""

    def _get_current_sensor_value(self) -> Any:
        return tuple(self.sensor.read()[1:])

    def _sensor_callback(self, sensor: Any, reading: Any) -> None:
        self._value_queue.put(tuple(reading[1:]))


def wait_sensor(sensor: Any, value: Any, status: Any = None, timeout: float = 5) -> bool:
    """Block until ``sensor`` has ``value`` (and ``status``); False after ``timeout`` s."""
    target = value if status is None else (status, value)
    tests = (lambda _: True, target)
    waiter_class = SensorTransitionWaiter if status is None else SensorTransitionStatusWaiter
    return waiter_class(sensor, tests).wait(timeout=timeout)


def wait_sensor_async(sensor: Any, value: Any, status: Any = None, ioloop: Any = None) -> Any:
    """Return a future (on ``ioloop``) resolving True once ``sensor`` has ``value`` (and
    ``status``). Sensor updates may come from any thread."""
    from tornado.concurrent import Future
    from tornado.ioloop import IOLoop

    loop = ioloop or IOLoop.current()
    future: Any = Future()

    def check(sensor_: Any, reading: Any) -> None:
        if reading[2] == value and (status is None or reading[1] == status):
            sensor.detach(observer)
            loop.add_callback(lambda: future.done() or future.set_result(True))

    observer = _Observer(check)
    sensor.attach(observer)
    loop.add_callback(check, sensor, sensor.read())
    return future
