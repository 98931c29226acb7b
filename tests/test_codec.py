"""katcpx.codec: the one wire codec, and the one timestamp rule every producer follows."""

from __future__ import annotations

import random

import pytest

from katcpx import codec
from katcpx._peer_units import seconds_to_wire
from katcpx.errors import KatcpSyntaxError
from katcpx.flags import ProtocolFlags
from katcpx.kattypes import StrictTimestamp, Timestamp
from katcpx.message import Message
from katcpx.sensor import Sensor
from katcpx.server import DeviceServer

# Timestamps whose exact decimal differs from katcp-python's "%.6f" (or its truncated ms).
STAMPS = [1700000002.0, 1700000000.1235, 1700000000.0000001, 0.5, 1e-7]


class _Server(DeviceServer):
    VERSION_INFO = ("codec-test", 1, 0)
    BUILD_INFO = ("codec-test", 1, 0, "")

    def setup_sensors(self) -> None:
        pass


class _V4Server(_Server):
    PROTOCOL_INFO = ProtocolFlags(4, 0, "M")


def _producers(major: int):
    """Each katcpx producer of a timestamp on the wire, for a peer of `major`."""
    sensor = Sensor.timestamp("t")
    server = (_Server if major >= 5 else _V4Server)("127.0.0.1", 0)
    return {
        "codec": lambda ts: codec.format_timestamp(ts, major),
        "peer_units": lambda ts: seconds_to_wire(ts, major),
        "sensor reading": lambda ts: sensor.format_reading((ts, Sensor.NOMINAL, ts), major)[0],
        "timestamp sensor value": lambda ts: sensor.format_value(ts, major),
        "kattypes Timestamp": lambda ts: Timestamp().pack(ts, major=major),
        "kattypes StrictTimestamp": lambda ts: StrictTimestamp().pack(ts, major=major),
        "#log": lambda ts: server.create_log_inform("warn", "x", "root", timestamp=ts).arguments[1],
    }


@pytest.mark.parametrize("major", [4, 5])
def test_every_producer_sends_the_exact_decimal(major: int) -> None:
    for name, produce in _producers(major).items():
        for ts in STAMPS:
            wire = produce(ts)
            assert b"e" not in wire, (name, wire)
            assert codec.parse_timestamp(wire, major) == ts, (name, ts, wire)
            assert wire == codec.format_timestamp(ts, major), name


def test_timestamp_examples() -> None:
    assert codec.format_timestamp(1700000002.0, 5) == b"1700000002.0"
    assert codec.format_timestamp(1700000000.1235, 4) == b"1700000000123.5"
    assert codec.format_timestamp(1e-7, 5) == b"0.0000001"
    # Before v4, whole milliseconds.
    assert codec.format_timestamp(1700000000.1235, 3) == b"1700000000124"
    with pytest.raises(ValueError, match="finite"):
        codec.format_timestamp(float("nan"), 5)


def _escape_one_by_one(arg: bytes) -> bytes:
    table = {92: b"\\\\", 32: b"\\_", 0: b"\\0", 10: b"\\n", 13: b"\\r", 27: b"\\e", 9: b"\\t"}
    return b"".join(table.get(b, bytes((b,))) for b in arg) if arg else b"\\@"


def test_escape_arguments_matches_the_spec_escapes() -> None:
    rng = random.Random(13)
    alphabet = b"ab \\\n\r\t\0\x1b\x01"
    for _ in range(2000):
        args = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(5)]
        expected = b" ".join(_escape_one_by_one(a) for a in args)
        assert codec.escape_arguments(args) == expected, args
        assert bytes(Message.inform("x", *args)) == b"#x " + expected + b"\n"
        if not any(set(a) & {0, 10, 13, 27, 1} for a in args):  # the parser's fast path
            escaped = [_escape_one_by_one(a) for a in args]
            assert codec.unescape_arguments(escaped) == args, args
        for arg in args:
            assert codec.unescape_argument(codec.escape_argument(arg)) == arg


def test_unescape_arguments_and_bad_escapes() -> None:
    assert codec.unescape_arguments([b"a\\_b", b"\\@", b"\\\\n"]) == [b"a b", b"", b"\\n"]
    assert codec.unescape_arguments([b"a\\q"]) is None
    with pytest.raises(KatcpSyntaxError) as info:
        codec.unescape_argument(b"ab\\q")
    assert info.value.column == 2


def test_value_codecs_registry_covers_every_sensor_type() -> None:
    assert set(codec.VALUE_CODECS) == set(Sensor.SENSOR_TYPE_NAMES.values())
    for name, value in [
        ("integer", 3),
        ("float", 2.5),
        ("boolean", True),
        ("lru", 1),
        ("string", "a b"),
        ("timestamp", 1700000000.25),
        ("address", ("::1", 80)),
    ]:
        entry = codec.VALUE_CODECS[name]
        checked = entry.check(value)
        assert entry.parse(entry.format(checked, 5), 5) == checked
    assert codec.format_address(("::1", 80)) == b"[::1]:80"


def test_message_from_parts_is_trusted() -> None:
    msg = Message.from_parts(Message.INFORM, "x", [b"a b"], b"7")
    assert bytes(msg) == b"#x[7] a\\_b\n"
