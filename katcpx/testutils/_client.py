"""katcp-python's ``BlockingTestClient``: a blocking client with unittest assertions."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..client import BlockingClient
from ..message import Message
from ..sensor import Sensor
from ._helpers import list_to_native_strings, request_names

__all__ = ["BlockingTestClient", "MessageRecorder"]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _shown_error(reply: Message) -> str:
    """The error argument as katcp-python 0.9.3's assertion texts show it (``b'...'``).

    Users' suites match these texts, so katcpx keeps the bytes form.
    """
    return repr(reply.arguments[1]) if len(reply.arguments) >= 2 else ""


class MessageRecorder:
    """Keeps received messages of the given types that pass the name and regex filters.

    Parameters
    ----------
    msg_types
        Message types to keep (``Message.INFORM``, ``Message.REPLY``).
    whitelist
        Names to keep; empty keeps every name not in ``blacklist``.
    regex_filter
        Keep only messages whose ``str()`` matches this regex (after the whitelist).
    blacklist
        Names to drop.
    """

    def __init__(
        self,
        msg_types: Iterable[int],
        whitelist: Iterable[str],
        regex_filter: str | None,
        blacklist: Iterable[str],
    ) -> None:
        self.msgs: list[Message] = []
        self.msg_types = set(msg_types)
        self.whitelist = set(whitelist)
        self.blacklist = set(blacklist)
        self.regex_filter = re.compile(regex_filter) if regex_filter else None
        self._cond = threading.Condition()

    def get_msgs(self, min_number: int = 0, timeout: float | None = 1) -> list[Message]:
        """Return (and forget) the messages kept so far, waiting for at least ``min_number``."""
        self.wait_number(min_number, timeout)
        with self._cond:
            msgs, self.msgs = self.msgs, []
        return msgs

    __call__ = get_msgs

    def wait_number(self, number: int, timeout: float | None = 1) -> bool | None:
        """Wait up to ``timeout`` seconds until ``number`` messages are kept; True or None."""
        with self._cond:
            return True if self._cond.wait_for(lambda: len(self.msgs) >= number, timeout) else None

    def _wanted(self, msg: Message) -> bool:
        if self.whitelist and msg.name not in self.whitelist:
            return False
        if self.regex_filter:
            return bool(self.regex_filter.match(str(msg)))
        return msg.name not in self.blacklist

    def append_msg(self, msg: Message) -> None:
        """Keep ``msg`` if it passes the filters."""
        if msg.mtype in self.msg_types and self._wanted(msg):
            with self._cond:
                self.msgs.append(msg)
                self._cond.notify_all()


class BlockingTestClient(BlockingClient):
    """A :class:`~katcpx.client.BlockingClient` that asserts through a ``unittest.TestCase``.

    Parameters
    ----------
    test
        The test case; its ``assert*`` methods report failures. ``test.sensor_lag`` (seconds,
        default 0) is how long setter tests wait before reading the sensor back.
    *args, **kwargs
        As for :class:`~katcpx.client.BlockingClient` (host, port, ...).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, test: Any, *args: Any, **kwargs: Any) -> None:
        self.test = test
        self._message_recorders: dict[int, Callable[[Message], None]] = {}
        super().__init__(*args, **kwargs)

    def raw_send(self, chunk: bytes) -> None:
        """Send raw bytes to the server."""
        self.send_raw(chunk)

    def _sensor_lag(self) -> float:
        return float(getattr(self.test, "sensor_lag", 0))

    def handle_inform(self, msg: Message) -> Any:
        """Show the inform to the message recorders, then handle it as usual."""
        for append in list(self._message_recorders.values()):
            append(msg)
        return super().handle_inform(msg)

    def handle_reply(self, msg: Message) -> Any:
        """Show the reply to the message recorders, then handle it as usual."""
        for append in list(self._message_recorders.values()):
            append(msg)
        return super().handle_reply(msg)

    def message_recorder(
        self,
        whitelist: Iterable[str] = (),
        blacklist: Iterable[str] = (),
        regex_filter: str | None = None,
        informs: bool = True,
        replies: bool = False,
    ) -> MessageRecorder:
        """Record received informs (and replies) that pass the filters; see :class:`MessageRecorder`."""
        types = {Message.INFORM} if informs else set()
        if replies:
            types.add(Message.REPLY)
        recorder = MessageRecorder(types, whitelist, regex_filter, blacklist)
        self._message_recorders[id(recorder)] = recorder.append_msg
        return recorder

    @staticmethod
    def expected_sensor_value_tuple(
        sensorname: str, value: Any, sensortype: type = str, places: int = 7
    ) -> tuple[str, Any, type, int]:
        """Fill in the optional fields of an expected-sensor tuple."""
        return (sensorname, value, sensortype, places)

    # -- sensor values ---------------------------------------------------------------------

    def get_sensor(self, sensorname: str, sensortype: type = str) -> tuple[Any, str, float]:
        """Return ``(value, status, timestamp)`` of a sensor from ``?sensor-value``.

        The value is converted with ``sensortype`` (bool via int; str by decoding).
        """
        t = self.test
        reply, informs = self.blocking_request(Message.request("sensor-value", sensorname))
        t.assertTrue(
            reply.reply_ok(), f"Could not retrieve sensor '{sensorname}': {_shown_error(reply)}"
        )
        t.assertEqual(
            len(informs),
            1,
            f"Expected one sensor value inform for sensor '{sensorname}', "
            f"but received {len(informs)}.",
        )
        args = informs[0].arguments
        t.assertEqual(
            len(args),
            5,
            f"Expected sensor value inform for sensor '{sensorname}' to have five "
            f"arguments, but received {len(args)}.",
        )
        raw_timestamp, _count, _name, raw_status, raw_value = args
        try:
            if sensortype is bool:
                value: Any = bool(int(raw_value))
            elif sensortype is str:
                value = _text(raw_value)
            else:
                value = sensortype(raw_value)
        except ValueError as exc:
            t.fail(
                f"Could not convert value {raw_value!r} of sensor '{sensorname}' to type "
                f"{sensortype!r}: {exc}"
            )
        status = _text(raw_status)
        t.assertTrue(
            status in Sensor.STATUSES.values(),
            f"Got invalid status value {status!r} for sensor '{sensorname}'.",
        )
        try:
            timestamp = float(raw_timestamp)
        except ValueError as exc:
            t.fail(f"Could not convert timestamp {raw_timestamp!r} of '{sensorname}': {exc}")
        return value, status, timestamp

    def get_sensor_value(self, sensorname: str, sensortype: type = str) -> Any:
        """Return a sensor's value (see :meth:`get_sensor`)."""
        return self.get_sensor(sensorname, sensortype)[0]

    def get_sensor_status(self, sensorname: str) -> str:
        """Return a sensor's status name."""
        return self.get_sensor(sensorname)[1]

    def get_sensor_timestamp(self, sensorname: str) -> float:
        """Return a sensor's timestamp (seconds)."""
        return self.get_sensor(sensorname)[2]

    @staticmethod
    def _places_note(sensortype: type, places: int) -> str:
        return f" (within {places} decimal places)" if sensortype is float else ""

    def assert_sensor_equals(
        self,
        sensorname: str,
        expected: Any,
        sensortype: type = str,
        msg: str | None = None,
        places: int = 7,
        status: str | None = None,
    ) -> None:
        """Assert a sensor's value (and ``status``, when given); ``%r`` in ``msg`` gets the value."""
        if msg is None:
            note = self._places_note(sensortype, places)
            msg = f"Value of sensor '{sensorname}' is %r. Expected {expected!r}{note}."
        got, got_status, _ = self.get_sensor(sensorname, sensortype)
        if "%r" in msg:
            msg = msg % (got,)
        if sensortype is float:
            self.test.assertAlmostEqual(got, expected, places, msg)
        else:
            self.test.assertEqual(got, expected, msg)
        if status is not None:
            self.test.assertEqual(
                got_status,
                status,
                f"Status of sensor '{sensorname}' is {got_status!r}. Expected {status!r}.",
            )

    def assert_sensor_status_equals(
        self, sensorname: str, expected_status: str, msg: str | None = None
    ) -> None:
        """Assert a sensor's status."""
        if msg is None:
            msg = f"Status of sensor '{sensorname}' is %r. Expected {expected_status!r}."
        got = self.get_sensor_status(sensorname)
        if "%r" in msg:
            msg = msg % (got,)
        self.test.assertEqual(got, expected_status, msg)

    def assert_sensor_not_equal(
        self,
        sensorname: str,
        expected: Any,
        sensortype: type = str,
        msg: str | None = None,
        places: int = 7,
    ) -> None:
        """Assert a sensor's value differs from ``expected``."""
        if msg is None:
            note = self._places_note(sensortype, places)
            msg = f"Value of sensor '{sensorname}' is %r. Expected a different value{note}."
        got = self.get_sensor_value(sensorname, sensortype)
        if "%r" in msg:
            msg = msg % (got,)
        if sensortype is float:
            self.test.assertNotAlmostEqual(got, expected, places, msg)
        else:
            self.test.assertNotEqual(got, expected, msg)

    def assert_sensors_equal(self, sensor_tuples: Iterable[tuple], msg: str | None = None) -> None:
        """Assert several sensors (tuples as :meth:`expected_sensor_value_tuple` takes)."""
        for name, value, sensortype, places in (
            self.expected_sensor_value_tuple(*t) for t in sensor_tuples
        ):
            self.assert_sensor_equals(name, value, sensortype, msg=msg, places=places)

    def assert_sensors_not_equal(
        self, sensor_tuples: Iterable[tuple], msg: str | None = None
    ) -> None:
        """Assert several sensors differ from the given values."""
        for name, value, sensortype, places in (
            self.expected_sensor_value_tuple(*t) for t in sensor_tuples
        ):
            self.assert_sensor_not_equal(name, value, sensortype, msg=msg, places=places)

    def wait_until_sensors_equal(
        self, timeout: float, sensor_tuples: Iterable[tuple], msg: str | None = None
    ) -> None:
        """Poll until all the sensors have the given values; assert after ``timeout`` seconds."""
        tuples = list(sensor_tuples)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.assert_sensors_equal(tuples, msg)
                return
            except AssertionError:
                time.sleep(0.01)
        self.assert_sensors_equal(tuples, (msg or "") + f": timed out after {timeout}s")

    def wait_condition(
        self, timeout: float, predicate: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[Any, str]:
        """Poll ``predicate(*args, **kwargs)`` (every ``poll_period`` s, default 0.02).

        Returns
        -------
        (result, message)
            The last result, and ``''`` or a timeout message.
        """
        poll_period = kwargs.pop("poll_period", 0.02)
        deadline = time.monotonic() + timeout
        result = predicate(*args, **kwargs)
        while not result and time.monotonic() <= deadline:
            time.sleep(poll_period)
            result = predicate(*args, **kwargs)
        return result, "" if result else f"Timed out after {timeout} seconds"

    def wait_until_sensor_equals(
        self,
        timeout: float,
        sensorname: str,
        value: Any,
        sensortype: type = str,
        places: int = 7,
        pollperiod: float = 0.02,
    ) -> None:
        """Poll a sensor until it has ``value``; fail the test after ``timeout`` seconds."""

        def matches(got: Any) -> bool:
            return abs(got - value) < 10**-places if sensortype is float else got == value

        deadline = time.monotonic() + timeout
        last = self.get_sensor_value(sensorname, sensortype)
        while not matches(last):
            if time.monotonic() >= deadline:
                self.test.fail(
                    f"Timed out while waiting {timeout}s for {sensorname} sensor to become "
                    f"{value}. Last value was {last}."
                )
            time.sleep(pollperiod)
            last = self.get_sensor_value(sensorname, sensortype)

    # -- sensor and request lists ----------------------------------------------------------

    def test_sensor_list(
        self, expected_sensors: Iterable[tuple], ignore_descriptions: bool = False
    ) -> None:
        """Assert the device's ``?sensor-list`` equals ``expected_sensors`` (as a set).

        Each tuple is ``(name, description, units, type, *params)``; float params compare as
        floats.
        """

        def normal(name: Any, description: Any, units: Any, stype: Any, *params: Any) -> tuple:
            kind = _text(stype)
            values = [repr(float(p)) for p in params] if kind == "float" else params
            head = (_text(name), _text(description), _text(units), kind)
            return head + tuple(_text(p) for p in values)

        reply, informs = self.blocking_request(Message.request("sensor-list"))
        self.test.assertTrue(
            reply.reply_ok(), f"Could not retrieve sensor list: {_shown_error(reply)}"
        )
        expected = [normal(*t) for t in expected_sensors]
        got = [normal(*m.arguments) for m in informs]
        if ignore_descriptions:
            expected = [s[:1] + s[2:] for s in expected]
            got = [s[:1] + s[2:] for s in got]
        want, have = set(expected), set(got)
        self.test.assertEqual(
            have,
            want,
            "Sensor list differs from expected list.\nThese sensors are missing:\n"
            + "\n".join(sorted(str(t) for t in want - have))
            + "\nFound these unexpected sensors:\n"
            + "\n".join(sorted(str(t) for t in have - want)),
        )

    def test_help(
        self,
        expected_requests: Iterable[Any],
        full_descriptions: bool = False,
        exclude_defaults: bool = True,
    ) -> None:
        """Assert the device's ``?help`` lists ``expected_requests``.

        Items are names, or ``(name, description)`` tuples (first lines only unless
        ``full_descriptions``). ``exclude_defaults`` ignores ``DeviceServer``'s own requests.
        """
        from ..server import DeviceServer

        expected_list = list(expected_requests)
        if any(isinstance(e, bytes) for e in expected_list):
            raise ValueError("test_help() takes request names as str, not bytes")
        with_desc = bool(expected_list) and not isinstance(expected_list[0], str)
        reply, informs = self.blocking_request(Message.request("help"))
        self.test.assertTrue(
            reply.reply_ok(), f"Could not retrieve help list: {_shown_error(reply)}"
        )

        def entry(name: Any, desc: Any = "") -> Any:
            if not with_desc:
                return _text(name)
            text = _text(desc)
            return (_text(name), text if full_descriptions else text.split("\n")[0])

        got = {entry(*m.arguments[:2]) for m in informs}
        want = {entry(*e) if with_desc else entry(e) for e in expected_list}
        if exclude_defaults:
            defaults = request_names(DeviceServer)
            got = {g for g in got if (g[0] if with_desc else g) not in defaults}
        self.test.assertEqual(
            got,
            want,
            "Help list differs from expected list.\nThese requests are missing:\n"
            + "\n".join(sorted(str(t) for t in want - got))
            + "\nFound these unexpected requests:\n"
            + "\n".join(sorted(str(t) for t in got - want)),
        )

    # -- requests --------------------------------------------------------------------------

    def assert_request_succeeds(self, requestname: str, *params: Any, **kwargs: Any) -> Any:
        """Assert a request replies ``ok``; optionally check its arguments and informs.

        Keywords: ``args_echo`` (reply arguments equal ``params``), ``args_equal`` (a list),
        ``args_in`` (one of several lists), ``args_length``, ``informs_count``,
        ``informs_args_equal`` (list of argument lists), in that order of precedence.

        Returns
        -------
        list of str
            The reply's arguments after ``ok``.
        """
        t = self.test
        reply, informs = self.blocking_request(Message.request(requestname, *params))
        t.assertEqual(
            reply.name, requestname, f"Reply to request '{requestname}' has name '{reply.name}'."
        )
        why = (
            f"with error '{_shown_error(reply)}'"
            if len(reply.arguments) >= 2
            else ("(with no error message)")
        )
        t.assertTrue(
            reply.reply_ok(),
            f"Expected request '{requestname}' called with parameters {params!r} to succeed, "
            f"but it failed {why}.",
        )
        args = [_text(a) for a in reply.arguments[1:]]
        args_equal = kwargs.get("args_equal")
        if kwargs.get("args_echo", False):
            args_equal = params
        said = f"reply to request '{requestname}' called with parameters {params!r}"
        if args_equal is not None:
            want = list_to_native_strings(args_equal)
            t.assertEqual(
                args, want, f"Expected {said} to have arguments {want}, but received {args}."
            )
        elif kwargs.get("args_in") is not None:
            options = [list_to_native_strings(a) for a in kwargs["args_in"]]
            t.assertTrue(
                args in options,
                f"Expected {said} to have arguments in {options}, but received {args}.",
            )
        elif kwargs.get("args_length") is not None:
            t.assertEqual(
                len(args),
                kwargs["args_length"],
                f"Expected {said} to have {kwargs['args_length']} arguments, "
                f"but received {len(args)}: {args}.",
            )
        informs_count = kwargs.get("informs_count")
        if informs_count is not None:
            t.assertEqual(
                len(informs),
                informs_count,
                f"Expected {informs_count} informs in {said}, but received {len(informs)}.",
            )
        if kwargs.get("informs_args_equal") is not None:
            want_informs = [list_to_native_strings(i) for i in kwargs["informs_args_equal"]]
            have_informs = [list_to_native_strings(i.arguments) for i in informs]
            t.assertEqual(
                have_informs,
                want_informs,
                f"Expected inform arguments {want_informs} in {said}, "
                f"but received {have_informs!r}.",
            )
        return args

    def assert_request_fails(self, requestname: str, *params: Any, **kwargs: Any) -> Any:
        """Assert a request does not reply ``ok``.

        Keywords: ``status_equals`` (e.g. ``"invalid"``), ``error_equals`` (the message).

        Returns
        -------
        (bytes or str, str or None)
            The reply's status (``bytes``; ``str`` when `status_equals` is given, as in
            katcp-python 0.9.3) and error message.
        """
        t = self.test
        reply, _informs = self.blocking_request(Message.request(requestname, *params))
        t.assertEqual(
            reply.name, requestname, f"Reply to request '{requestname}' has name '{reply.name}'."
        )
        t.assertFalse(
            reply.reply_ok(),
            f"Expected request '{requestname}' called with parameters {params!r} to fail, "
            "but it was successful.",
        )
        # The status is returned as bytes (b"fail"), or as str when status_equals was
        # given: what katcp-python 0.9.3's assert_request_fails returns.
        status: bytes | str = reply.arguments[0] if reply.arguments else b""
        error = _text(reply.arguments[1]) if len(reply.arguments) > 1 else None
        said = f"request '{requestname}' called with parameters {params!r}"
        if kwargs.get("status_equals") is not None:
            status = _text(status)
            want = _text(kwargs["status_equals"])
            t.assertTrue(
                status == want,
                f"Expected {said} to return status {want}, but the status was {status!r}.",
            )
        if kwargs.get("error_equals") is not None:
            want = _text(kwargs["error_equals"])
            t.assertTrue(
                error == want,
                f"Expected {said} to fail with error {want}, but the error was {error!r}.",
            )
        return status, error

    def test_setter_request(
        self,
        requestname: str,
        sensorname: str,
        sensortype: type = str,
        good: Iterable[Any] = (),
        bad: Iterable[Any] = (),
        places: int = 7,
        args_echo: bool = False,
    ) -> None:
        """Assert a request that sets one sensor: ``good`` values succeed and read back,
        ``bad`` values fail."""
        for value in good:
            self.assert_request_succeeds(requestname, value, args_echo=args_echo)
            time.sleep(self._sensor_lag())
            note = self._places_note(sensortype, places)
            msg = (
                f"After request '{requestname}' was called with parameter {value!r}, value of "
                f"sensor '{sensorname}' is %r. Expected {value!r}{note}."
            )
            self.assert_sensor_equals(sensorname, value, sensortype, msg, places)
        for value in bad:
            self.assert_request_fails(requestname, value)

    def test_multi_setter_request(
        self, requestname: str, good: Iterable[tuple] = (), bad: Iterable[tuple] = ()
    ) -> None:
        """Assert a request that sets several sensors.

        ``good`` items are ``(params, expected_values[, options])``: ``expected_values`` are
        expected-sensor tuples, ``options`` may give ``statuses`` (name, status) pairs and a
        ``delay`` in seconds. ``bad`` items are parameter tuples that must fail.
        """
        for item in good:
            params, expected_values, *rest = item
            options = rest[0] if rest else {}
            self.assert_request_succeeds(requestname, *params)
            time.sleep(self._sensor_lag() + options.get("delay", 0))
            for name, value, sensortype, places in (
                self.expected_sensor_value_tuple(*t) for t in expected_values
            ):
                note = self._places_note(sensortype, places)
                msg = (
                    f"After request '{requestname}' was called with parameters {params!r}, "
                    f"value of sensor '{name}' is %r. Expected {value!r}{note}."
                )
                self.assert_sensor_equals(name, value, sensortype, msg, places)
            for name, status in options.get("statuses", ()):
                msg = (
                    f"After request '{requestname}' was called with parameters {params!r}, "
                    f"status of sensor '{name}' is %r. Expected {status!r}."
                )
                self.assert_sensor_status_equals(name, status, msg)
        for params in bad:
            self.assert_request_fails(requestname, *params)
