"""Tests for katcpx.sensor: types, checks, wire formats, observers and atomic readings."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import subprocess
import threading
import time

import aiokatcp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katcpx.errors import KatcpSyntaxError, KatcpTypeError
from katcpx.sensor import Reading, Sensor, format_timestamp, parse_timestamp

# Spec section 3: XXXX.YYYY, an integer and an optional fraction.
SPEC_TIMESTAMP_RE = re.compile(rb"-?[0-9]+(\.[0-9]+)?\Z")


class Recorder:
    """An observer that records what it receives."""

    def __init__(self) -> None:
        self.updates: list[tuple[Sensor, Reading]] = []

    def update(self, sensor: Sensor, reading: Reading) -> None:
        self.updates.append((sensor, reading))


# --- constants ---------------------------------------------------------------------------


def test_type_constants_match_katcp_python():
    assert (
        Sensor.INTEGER,
        Sensor.FLOAT,
        Sensor.BOOLEAN,
        Sensor.LRU,
        Sensor.DISCRETE,
        Sensor.STRING,
        Sensor.TIMESTAMP,
        Sensor.ADDRESS,
    ) == tuple(range(8))
    assert Sensor.SENSOR_TYPE_LOOKUP["float"] == Sensor.FLOAT
    assert Sensor.SENSOR_TYPE_NAMES[Sensor.ADDRESS] == "address"


def test_status_constants_and_tables():
    assert (
        Sensor.UNKNOWN,
        Sensor.NOMINAL,
        Sensor.WARN,
        Sensor.ERROR,
        Sensor.FAILURE,
        Sensor.UNREACHABLE,
        Sensor.INACTIVE,
    ) == tuple(range(7))
    assert Sensor.STATUSES == {
        0: "unknown",
        1: "nominal",
        2: "warn",
        3: "error",
        4: "failure",
        5: "unreachable",
        6: "inactive",
    }
    assert Sensor.STATUS_NAMES["warn"] == Sensor.WARN
    assert Sensor.STATUSES_RAW[Sensor.INACTIVE] == b"inactive"
    assert Sensor.STATUS_NAMES_RAW[b"failure"] == Sensor.FAILURE


def test_reading_is_a_named_tuple():
    r = Reading(1.5, Sensor.NOMINAL, 3)
    assert (r.timestamp, r.status, r.value) == (1.5, 1, 3)
    assert r == (1.5, 1, 3)


# --- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "stype", "default"),
    [
        (lambda: Sensor.integer("i"), "integer", 0),
        (lambda: Sensor.float("f"), "float", 0.0),
        (lambda: Sensor.boolean("b"), "boolean", False),
        (lambda: Sensor.lru("l"), "lru", Sensor.LRU_NOMINAL),
        (lambda: Sensor.discrete("d", params=["x", "y"]), "discrete", "x"),
        (lambda: Sensor.string("s"), "string", ""),
        (lambda: Sensor.timestamp("t"), "timestamp", 0.0),
        (lambda: Sensor.address("a"), "address", ("0.0.0.0", None)),
    ],
)
def test_constructors_and_defaults(make, stype, default):
    before = time.time()
    s = make()
    assert s.stype == s.type == stype
    assert s.value() == default
    assert s.status() == Sensor.UNKNOWN
    assert before <= s.read().timestamp <= time.time()


def test_shortcut_types():
    assert Sensor(int, "a").stype == "integer"
    assert Sensor(float, "a").stype == "float"
    assert Sensor(str, "a").stype == "string"
    assert Sensor(bool, "a").stype == "boolean"
    with pytest.raises(ValueError, match="no sensor type"):
        Sensor(list, "a")
    with pytest.raises(ValueError, match="unknown sensor type"):
        Sensor(42, "a")


def test_description_units_and_initial_status():
    s = Sensor.float("x.y", "A thing", "m/s", initial_status=Sensor.WARN)
    assert (s.name, s.description, s.units, s.status()) == ("x.y", "A thing", "m/s", Sensor.WARN)
    assert Sensor.integer("n").description == "Integer sensor 'n' with no unit"
    assert Sensor.integer("n", unit="V").description == "Integer sensor 'n' in unit V"
    with pytest.raises(ValueError, match="unknown sensor status"):
        Sensor.integer("n", initial_status=7)


@pytest.mark.parametrize("name", ["pump.pressure", "cold-chamber", "a_b", "X9", "1.2-3_4"])
def test_valid_names(name):
    assert Sensor.integer(name).name == name


@pytest.mark.parametrize("name", ["", "has space", "colon:name", "ümlaut", "a,b", "tab\t"])
def test_invalid_names_refused(name):
    with pytest.raises(ValueError, match="invalid sensor name"):
        Sensor.integer(name)


def test_timestamp_sensor_cannot_have_units():
    with pytest.raises(ValueError, match="cannot have units"):
        Sensor.timestamp("t", unit="s")


def test_numeric_params():
    s = Sensor.integer("i", params=[-5, 5])
    assert s.params == [-5, 5] and s.formatted_params == [b"-5", b"5"]
    assert Sensor.integer("i", params=[3, 5]).value() == 3  # zero not in range: the minimum
    assert Sensor.float("f", params=[1, 2]).formatted_params == [b"1.0", b"2.0"]
    with pytest.raises(ValueError, match="minimum exceeds maximum"):
        Sensor.integer("i", params=[5, 3])
    with pytest.raises(ValueError, match="must be"):
        Sensor.integer("i", params=[1, 2, 3])
    with pytest.raises(TypeError, match="must be an int"):
        Sensor.integer("i", params=[1.5, 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="warn range must contain"):
        Sensor.float("f", params=[0.0, 10.0, 1.0, 20.0])


def test_discrete_params():
    s = Sensor.discrete("d", params=[b"on", "off"])
    assert s.params == ["on", "off"] and s.formatted_params == [b"on", b"off"]
    with pytest.raises(ValueError, match="at least one"):
        Sensor.discrete("d", params=[])
    with pytest.raises(ValueError, match="repeated"):
        Sensor.discrete("d", params=["a", "a"])
    assert Sensor.discrete("d", params=["a", "b"], default="b").value() == "b"
    with pytest.raises(ValueError, match="is not one of"):
        Sensor.discrete("d", params=["a", "b"], default="c")


def test_params_refused_for_other_types():
    with pytest.raises(ValueError, match="take no params"):
        Sensor(Sensor.BOOLEAN, "b", params=[0, 1])


def test_bad_default_refused():
    with pytest.raises(TypeError):
        Sensor.integer("i", default="3")  # type: ignore[arg-type]
    # A default outside the expected range is accepted, as any value is (spec 5.1 7.2).
    assert Sensor.integer("i", params=[0, 10], default=11).value() == 11


# --- set_value checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor", "value"),
    [
        (Sensor.integer("i"), 1.0),
        (Sensor.integer("i"), True),
        (Sensor.integer("i"), "1"),
        (Sensor.float("f"), "1.0"),
        (Sensor.float("f"), True),
        (Sensor.float("f"), None),
        (Sensor.boolean("b"), "yes"),
        (Sensor.boolean("b"), 2),
        (Sensor.string("s"), 12),
        (Sensor.timestamp("t"), "now"),
        (Sensor.address("a"), "127.0.0.1:80"),
        (Sensor.address("a"), (b"127.0.0.1", 80)),
        (Sensor.address("a"), ("127.0.0.1", "80")),
    ],
)
def test_set_value_refuses_wrong_type(sensor, value):
    with pytest.raises(TypeError, match="must be"):
        sensor.set_value(value)


@pytest.mark.parametrize(
    ("sensor", "value", "match"),
    [
        (Sensor.discrete("d", params=["a", "b"]), "c", "is not one of"),
        (Sensor.lru("l"), 2, "LRU_NOMINAL"),
        (Sensor.timestamp("t"), math.inf, "finite"),
        (Sensor.string("s"), "\ud800", "UTF-8"),
        (Sensor.address("a"), ("not an address!", 1), "not a valid IPv4"),
        (Sensor.address("a"), ("::zz", 1), "not a valid IPv6"),
        (Sensor.address("a"), ("1.2.3.4", 70000), "0..65535"),
    ],
)
def test_set_value_refuses_bad_value(sensor, value, match):
    before = sensor.read()
    with pytest.raises(ValueError, match=match):
        sensor.set_value(value)
    assert sensor.read() is before


def test_set_value_accepts_range_bounds_and_normalises():
    i = Sensor.integer("i", params=[0, 10])
    i.set_value(10)
    assert i.value() == 10
    f = Sensor.float("f")
    f.set_value(3)
    # The value set is kept (katcp-python 0.9.3 too); it formats as a float.
    assert f.value() == 3 and type(f.value()) is int
    assert f.read_formatted()[2] == b"3.0"
    d = Sensor.discrete("d", params=["a", "b"])
    d.set_value(b"b")
    assert d.value() == "b"
    a = Sensor.address("a")
    a.set_value(["::1", 80])
    assert a.value() == ("::1", 80)
    # The four-value spec 5 form describes status bands; it does not bound the value.
    Sensor.float("g", params=[0.0, 1.0, -1.0, 2.0]).set_value(100.0, Sensor.ERROR)


def test_set_value_status_and_timestamp():
    s = Sensor.integer("i")
    s.set_value(4, Sensor.WARN, timestamp=12.5)
    assert s.read() == (12.5, Sensor.WARN, 4)
    before = time.time()
    s.set_value(5)
    assert s.status() == Sensor.NOMINAL
    assert before <= s.read().timestamp <= time.time()
    with pytest.raises(ValueError, match="unknown sensor status"):
        s.set_value(5, status=9)


def test_set_does_not_check():
    s = Sensor.integer("i", params=[0, 1])
    s.set(1.0, Sensor.FAILURE, None)
    assert s.read() == (1.0, Sensor.FAILURE, None)


# --- observers ---------------------------------------------------------------------------


def test_observers_receive_sensor_and_reading():
    s = Sensor.integer("i")
    a, b = Recorder(), Recorder()
    s.attach(a)
    s.attach(b)
    s.attach(a)  # a second attach does not double the updates
    s.set_value(3, timestamp=1.0)
    assert a.updates == [(s, Reading(1.0, Sensor.NOMINAL, 3))]
    assert a.updates[0][1] is s.read()
    assert b.updates == a.updates
    s.detach(a)
    s.detach(a)  # detaching twice is harmless
    s.set_value(4, timestamp=2.0)
    assert len(a.updates) == 1 and len(b.updates) == 2


def test_notify_calls_observers_with_given_reading():
    s = Sensor.integer("i")
    r = Recorder()
    s.attach(r)
    s.notify(Reading(9.0, Sensor.WARN, 9))
    assert r.updates == [(s, Reading(9.0, Sensor.WARN, 9))]


def test_detach_during_notify_does_not_skip_others():
    s = Sensor.integer("i")
    late = Recorder()

    class Leaver:
        def update(self, sensor, reading):
            sensor.detach(self)

    s.attach(Leaver())
    s.attach(late)
    s.set_value(1)
    s.set_value(2)
    assert [r.value for _, r in late.updates] == [1, 2]


def test_attach_detach_from_many_threads():
    s = Sensor.integer("i")
    keep = [Recorder() for _ in range(8)]
    churn = [Recorder() for _ in range(8)]
    start = threading.Barrier(8)

    def work(k):
        start.wait(timeout=10)
        for _ in range(200):
            s.attach(churn[k])
            s.detach(churn[k])
        s.attach(keep[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    s.set_value(1)
    assert all(len(r.updates) == 1 for r in keep)
    assert all(not r.updates for r in churn)


def test_readers_never_see_half_a_reading():
    s = Sensor.integer("i")
    stop = threading.Event()
    torn: list[Reading] = []

    def reader():
        while not stop.is_set():
            r = s.read()
            if r.timestamp != r.value or r.status != r.value % 7:
                torn.append(r)

    s.set(0, 0, 0)
    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(20000):
            s.set(i, i % 7, i)
    finally:
        stop.set()
        t.join(timeout=10)
    assert torn == []


# --- formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor", "value", "wire"),
    [
        (Sensor.integer("i"), 123, b"123"),
        (Sensor.integer("i"), -546, b"-546"),
        (Sensor.float("f"), -1.234e-05, b"-1.234e-05"),
        (Sensor.float("f"), 1.7, b"1.7"),
        (Sensor.float("f"), 0.1, b"0.1"),
        (Sensor.boolean("b"), True, b"1"),
        (Sensor.boolean("b"), False, b"0"),
        (Sensor.lru("l"), Sensor.LRU_ERROR, b"error"),
        (Sensor.lru("l"), Sensor.LRU_NOMINAL, b"nominal"),
        (Sensor.discrete("d", params=["initialise", "operate"]), "operate", b"operate"),
        (Sensor.string("s"), "abc", b"abc"),
        (Sensor.string("s"), "caf\u00e9", b"caf\xc3\xa9"),
        (Sensor.address("a"), ("192.168.1.1", 4000), b"192.168.1.1:4000"),
        (Sensor.address("a"), ("127.0.0.1", None), b"127.0.0.1"),
        (
            Sensor.address("a"),
            ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", 4000),
            b"[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:4000",
        ),
        (Sensor.address("a"), ("::1", None), b"[::1]"),
        (Sensor.address("a"), ("::1", 80), b"[::1]:80"),
        (Sensor.timestamp("t"), 1222195721.5, b"1222195721.5"),
    ],
)
def test_spec_table_6_formats_both_ways(sensor, value, wire):
    """Spec table 6 examples: format gives the wire text, parse gives the value back."""
    sensor.set_value(value)
    assert sensor.read_formatted()[2] == wire
    assert sensor.parse_value(wire) == value


def test_spec_timestamp_examples_parse():
    # Table 6 (values as printed there); v5 reads them as seconds.
    assert parse_timestamp(b"1222180721660213") == 1222180721660213.0
    assert parse_timestamp(b"1222195721660237.723") == 1222195721660237.723
    assert parse_timestamp(b"1222195721660237.85") == 1222195721660237.85


def test_timestamps_are_seconds_in_v5_and_milliseconds_in_v4():
    assert format_timestamp(1244631611.415231) == b"1244631611.415231"
    assert format_timestamp(1244631611.415231, 4) == b"1244631611415.231"
    assert format_timestamp(2.0, 4) == b"2000"
    assert format_timestamp(1e-7) == b"0.0000001"  # never exponent notation
    assert format_timestamp(1e16) == b"10000000000000000"
    assert parse_timestamp(b"2000", 4) == 2.0
    assert parse_timestamp(b"1244631611415.231", 4) == 1244631611.415231
    with pytest.raises(ValueError, match="finite"):
        format_timestamp(math.nan)
    for bad in (b"", b"abc", b" 1", b"1_000", b"nan", b"inf"):
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(bad)


def test_timestamp_sensor_value_follows_major():
    s = Sensor.timestamp("t", default=1.5)
    assert s.format_value(1.5) == b"1.5"
    assert s.format_value(1.5, 4) == b"1500"
    assert s.parse_value(b"1500", 4) == 1.5


def test_format_reading_v5_and_v4():
    s = Sensor.float("f")
    r = Reading(1.25, Sensor.WARN, 2.5)
    assert s.format_reading(r) == (b"1.25", b"warn", b"2.5")
    assert s.format_reading(r, 4) == (b"1250", b"warn", b"2.5")
    assert s.format_reading(r, major=5) == s.format_reading(tuple(r))


def test_v5_only_statuses_map_to_v4_statuses():
    s = Sensor.integer("i")
    assert s.format_reading(Reading(0.0, Sensor.UNREACHABLE, 1), 5)[1] == b"unreachable"
    assert s.format_reading(Reading(0.0, Sensor.INACTIVE, 1), 5)[1] == b"inactive"
    assert s.format_reading(Reading(0.0, Sensor.UNREACHABLE, 1), 4)[1] == b"failure"
    assert s.format_reading(Reading(0.0, Sensor.INACTIVE, 1), 4)[1] == b"unknown"
    assert s.format_reading(Reading(0.0, Sensor.ERROR, 1), 4)[1] == b"error"


def test_numpy_values_format_as_python_values():
    np = pytest.importorskip("numpy")
    i = Sensor.integer("i")
    i.set_value(np.int64(7))
    assert type(i.value()) is int and i.read_formatted()[2] == b"7"
    f = Sensor.float("f")
    f.set_value(np.float32(0.5))
    assert f.read_formatted()[2] == b"0.5"
    b = Sensor.boolean("b")
    b.set_value(np.bool_(True))
    assert b.value() is True


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor", "raw"),
    [
        (Sensor.integer("i"), b"1.5"),
        (Sensor.integer("i"), b" 1"),
        (Sensor.integer("i"), b"1_000"),
        (Sensor.integer("i"), b""),
        (Sensor.float("f"), b"abc"),
        (Sensor.float("f"), b"1_0.0"),
        (Sensor.float("f"), b"0x1p3"),
        (Sensor.boolean("b"), b"true"),
        (Sensor.boolean("b"), b"2"),
        (Sensor.lru("l"), b"ok"),
        (Sensor.discrete("d", params=["a"]), b"b"),
        (Sensor.timestamp("t"), b"yesterday"),
        (Sensor.address("a"), b"[::1"),
        (Sensor.address("a"), b"1.2.3.4:http"),
        (Sensor.address("a"), b"1.2.3.4:99999"),
        (Sensor.address("a"), b""),
    ],
)
def test_parse_value_refuses_bad_bytes(sensor, raw):
    with pytest.raises(ValueError):
        sensor.parse_value(raw)


def test_parse_value_needs_bytes():
    with pytest.raises(KatcpTypeError, match="must be bytes"):
        Sensor.integer("i").parse_value("1")  # type: ignore[arg-type]


def test_parse_float_accepts_what_strtod_reads():
    f = Sensor.float("f")
    assert f.parse_value(b"1e3") == 1000.0
    assert f.parse_value(b"-.5") == -0.5
    assert f.parse_value(b"inf") == math.inf
    assert math.isnan(f.parse_value(b"nan"))


def test_string_sensor_keeps_non_utf8_bytes():
    s = Sensor.string("s")
    raw = b"\xff\xfe binary"
    value = s.parse_value(raw)
    assert isinstance(value, str)
    assert s.format_value(value) == raw
    s.set_value(raw)
    assert s.read_formatted()[2] == raw


def test_set_formatted_and_read_formatted():
    s = Sensor.float("f")
    s.set_formatted(b"1500", b"error", b"2.5", major=4)
    assert s.read() == (1.5, Sensor.ERROR, 2.5)
    s.set_formatted(b"1.5", b"nominal", b"2.5")
    assert s.read() == (1.5, Sensor.NOMINAL, 2.5)
    assert s.read_formatted() == (b"1.5", b"nominal", b"2.5")
    with pytest.raises(ValueError, match="unknown sensor status"):
        s.set_formatted(b"1.5", b"fine", b"2.5")
    with pytest.raises(ValueError):
        s.set_formatted(b"1.5", b"nominal", b"two")


def test_parse_type():
    for name, const in Sensor.SENSOR_TYPE_LOOKUP.items():
        assert Sensor.parse_type(name) == const
        assert Sensor.parse_type(name.encode()) == const
    with pytest.raises(KatcpSyntaxError, match="invalid sensor type"):
        Sensor.parse_type("complex")


def test_parse_params():
    assert Sensor.parse_params(Sensor.INTEGER, [b"-5", b"5"]) == [-5, 5]
    assert Sensor.parse_params(Sensor.FLOAT, [b"0.0", b"900.0"]) == [0.0, 900.0]
    assert Sensor.parse_params(Sensor.DISCRETE, [b"on", b"off"]) == ["on", "off"]
    assert Sensor.parse_params(Sensor.BOOLEAN, []) == []
    with pytest.raises(ValueError):
        Sensor.parse_params(Sensor.INTEGER, [b"x"])


# --- spec examples -----------------------------------------------------------------------


def test_spec_sensor_list_examples():
    """Section 2 and appendix A.1.3 ``#sensor-list`` informs: name, type and params."""
    volts = Sensor.float("drive.dc-voltage-elev", "Drive bus voltage", "V", [0.0, 900.0])
    assert (volts.stype, volts.units, volts.formatted_params) == ("float", "V", [b"0.0", b"900.0"])
    azim = Sensor.float("acs.desired-azim", "Desired azimuth position", "Deg", [-230.0, 230.0])
    assert azim.formatted_params == [b"-230.0", b"230.0"]
    enable = Sensor.boolean("drive.enable-azim", "Azimuth drive enable signal status")
    assert (enable.stype, enable.formatted_params) == ("boolean", [])
    modes = "idle remote-point stow timeout-stow local-drive access-feed error".split()
    mode = Sensor.discrete("acs.mode", "ACS operating mode", "", modes)
    assert mode.stype == "discrete"
    assert mode.formatted_params == [m.encode() for m in modes]
    # and the client side reads them back
    assert Sensor.parse_type(b"float") == Sensor.FLOAT
    assert Sensor.parse_params(Sensor.FLOAT, volts.formatted_params) == [0.0, 900.0]


def test_spec_sensor_status_v4_example():
    """Appendix A.1.3: ``#sensor-status 514229978 1 acs.mode nominal idle`` (KATCP v4, ms)."""
    modes = "idle remote-point stow timeout-stow local-drive access-feed error".split()
    mode = Sensor.discrete("acs.mode", params=modes)
    mode.set_formatted(b"514229978", b"nominal", b"idle", major=4)
    assert mode.read() == (514229.978, Sensor.NOMINAL, "idle")
    assert mode.read_formatted(4) == (b"514229978", b"nominal", b"idle")


def test_seed_sensor_status_v5_example():
    """katcp-python docs: ``#sensor-status 1244631611.415231 1 cpu.power.on nominal 1``."""
    power = Sensor.boolean("cpu.power.on")
    power.set_value(True, timestamp=1244631611.415231)
    assert power.read_formatted() == (b"1244631611.415231", b"nominal", b"1")
    fan = Sensor.float("fan.speed")
    fan.set_value(10.0, timestamp=1244631611.4152)
    assert fan.read_formatted() == (b"1244631611.4152", b"nominal", b"10.0")


# --- round trips -------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
hosts_v4 = st.ip_addresses(v=4).map(str)
hosts_v6 = st.ip_addresses(v=6).map(str)
hostnames = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,20}[A-Za-z0-9])?", fullmatch=True)
ports = st.none() | st.integers(0, 65535)
texts = st.text(st.characters(exclude_categories=["Cs"]))

VALUE_STRATEGIES = [
    (lambda: Sensor.integer("i"), st.integers()),
    (lambda: Sensor.float("f"), st.floats(allow_nan=False)),
    (lambda: Sensor.boolean("b"), st.booleans()),
    (lambda: Sensor.lru("l"), st.sampled_from([Sensor.LRU_NOMINAL, Sensor.LRU_ERROR])),
    (lambda: Sensor.string("s"), texts),
    (lambda: Sensor.timestamp("t"), finite_floats),
    (lambda: Sensor.address("a"), st.tuples(hosts_v4 | hosts_v6 | hostnames, ports)),
]


@pytest.mark.parametrize("major", [4, 5])
@pytest.mark.parametrize(
    ("make", "values"), VALUE_STRATEGIES, ids=[make().stype for make, _ in VALUE_STRATEGIES]
)
def test_format_then_parse_is_identity(make, values, major):
    sensor = make()

    @settings(max_examples=60, deadline=None)
    @given(values)
    def check(value):
        sensor.set_value(value)
        wire = sensor.read_formatted(major)[2]
        assert isinstance(wire, bytes)
        back = sensor.parse_value(wire, major)
        assert back == value and type(back) is type(value)
        assert sensor.format_value(back, major) == wire

    check()


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5, unique=True), st.data())
def test_discrete_round_trip(options, data):
    sensor = Sensor.discrete("d", params=options)
    value = data.draw(st.sampled_from(options))
    sensor.set_value(value)
    assert sensor.parse_value(sensor.read_formatted()[2]) == value


@settings(max_examples=60, deadline=None)
@given(st.floats())
def test_float_nan_and_infinities_round_trip(value):
    s = Sensor.float("f")
    back = s.parse_value(s.format_value(value))
    assert back == value or (math.isnan(back) and math.isnan(value))


@settings(max_examples=60, deadline=None)
@given(finite_floats, st.sampled_from([4, 5]))
def test_timestamp_round_trip_and_spec_format(t, major):
    wire = format_timestamp(t, major)
    assert SPEC_TIMESTAMP_RE.match(wire), wire
    assert parse_timestamp(wire, major) == t


@settings(max_examples=60, deadline=None)
@given(st.binary())
def test_string_bytes_parse_then_format_is_identity(raw):
    s = Sensor.string("s")
    assert s.format_value(s.parse_value(raw)) == raw


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(Sensor.STATUSES)), finite_floats, st.integers())
def test_set_formatted_inverts_read_formatted(status, t, value):
    s = Sensor.integer("i")
    s.set_value(value, status, timestamp=t)
    before = s.read()
    s.set_formatted(*s.read_formatted())
    assert s.read() == before


# --- interoperability with peers --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(-(2**63), 2**63), finite_floats, st.booleans(), finite_floats)
def test_aiokatcp_decodes_our_formats(i, f, b, t):
    assert aiokatcp.decode(int, Sensor.integer("i").format_value(i)) == i
    assert aiokatcp.decode(float, Sensor.float("f").format_value(f)) == f
    assert aiokatcp.decode(bool, Sensor.boolean("b").format_value(b)) is b
    assert aiokatcp.decode(aiokatcp.Timestamp, format_timestamp(t)) == t


@settings(max_examples=60, deadline=None)
@given(st.tuples(hosts_v4 | hosts_v6, st.integers(0, 65535)))
def test_aiokatcp_decodes_our_addresses(value):
    wire = Sensor.address("a").format_value(value)
    decoded = aiokatcp.decode(aiokatcp.Address, wire)
    assert (decoded.host, decoded.port) == (ipaddress.ip_address(value[0]), value[1])


# katcp-python parses each (type, params, major, wire) value and prints repr() of the result.
KATCP_PYTHON_READER = """
import json, sys
from katcp import Sensor
out = []
for stype, params, major, wire in json.load(sys.stdin):
    s = Sensor(Sensor.parse_type(stype), "x", params=params)
    out.append(repr(s.parse_value(wire.encode("latin-1"), major)))
json.dump(out, sys.stdout)
"""


@pytest.mark.peers
def test_katcp_python_reads_our_formats(katcp_python):
    cases = [
        (Sensor.integer("i"), -546),
        (Sensor.float("f"), -1.234e-05),
        (Sensor.float("f"), 0.1),
        (Sensor.boolean("b"), True),
        (Sensor.lru("l"), Sensor.LRU_ERROR),
        (Sensor.discrete("d", params=["idle", "stow"]), "stow"),
        (Sensor.string("s"), "abc def"),
        (Sensor.timestamp("t"), 1244631611.415231),
        (Sensor.address("a"), ("::1", 80)),
        (Sensor.address("a"), ("192.168.1.1", None)),
    ]
    jobs, expected = [], []
    for major in (4, 5):
        for sensor, value in cases:
            wire = sensor.format_value(value, major)
            jobs.append((sensor.stype, sensor.params, major, wire.decode("latin-1")))
            expected.append(value)
    proc = subprocess.run(
        [str(katcp_python), "-c", KATCP_PYTHON_READER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(proc.stdout)
    for (stype, _, major, wire), value, got in zip(jobs, expected, results, strict=True):
        if stype == "timestamp" and major == 4:
            # katcp-python multiplies by 0.001, which may round in the last bit.
            assert float(got) == pytest.approx(value, rel=1e-15, abs=0), wire
        else:
            assert got == repr(value), (stype, major, wire)


# --- values outside the nominal range (spec 5.1 section 7.2) --------------------------------


@pytest.mark.parametrize(
    ("sensor", "value", "status"),
    [
        (Sensor.integer("i", params=[0, 10]), 5, Sensor.NOMINAL),
        (Sensor.integer("i", params=[0, 10]), 10, Sensor.NOMINAL),
        (Sensor.integer("i", params=[0, 10]), 11, Sensor.WARN),
        (Sensor.integer("i", params=[0, 10]), -1, Sensor.WARN),
        (Sensor.float("f", params=[0.0, 1.0]), 1.5, Sensor.WARN),
        (Sensor.float("f", params=[0.0, 1.0]), math.nan, Sensor.WARN),
        (Sensor.float("f", params=[0.0, 1.0, -1.0, 2.0]), 0.5, Sensor.NOMINAL),
        (Sensor.float("f", params=[0.0, 1.0, -1.0, 2.0]), 1.5, Sensor.WARN),
        (Sensor.float("f", params=[0.0, 1.0, -1.0, 2.0]), -1.0, Sensor.WARN),
        (Sensor.float("f", params=[0.0, 1.0, -1.0, 2.0]), 2.5, Sensor.ERROR),
        (Sensor.integer("i", params=[0, 10, -5, 15]), -6, Sensor.ERROR),
        (Sensor.integer("i"), 10**6, Sensor.NOMINAL),
    ],
)
def test_set_value_accepts_values_outside_the_range_and_status_says_so(sensor, value, status):
    sensor.set_value(value)
    reading = sensor.read()
    assert reading.status == status
    assert reading.value == value or (math.isnan(value) and math.isnan(reading.value))
    # The reading goes out as set, with its status (what a client sees).
    assert sensor.format_reading(reading)[1] == Sensor.STATUSES[status].encode()


def test_set_value_keeps_a_status_other_than_nominal():
    sensor = Sensor.integer("i", params=[0, 10])
    sensor.set_value(20, Sensor.FAILURE)
    assert sensor.status() == Sensor.FAILURE
    sensor.set_value(5, Sensor.ERROR)
    assert sensor.status() == Sensor.ERROR


def test_set_value_out_of_range_but_wrong_type_still_fails_at_once():
    sensor = Sensor.integer("i", params=[0, 10])
    before = sensor.read()
    with pytest.raises(TypeError):
        sensor.set_value("20")
    assert sensor.read() is before
