"""Tests for katcpx.flags.ProtocolFlags."""

from __future__ import annotations

import pytest

from katcpx import ProtocolFlags


@pytest.mark.parametrize("text", ["5.1-BIMT", "5.0-IM", "5.0", "4.0", "4.1-M", "5.1"])
def test_parse_and_format(text):
    flags = ProtocolFlags.parse_version(text)
    assert str(flags) == "-".join(
        [text.split("-")[0]] + (["".join(sorted(text.split("-")[1]))] if "-" in text else [])
    )
    assert ProtocolFlags.parse_version(str(flags)) == flags


def test_parse_bytes_and_properties():
    flags = ProtocolFlags.parse_version(b"5.1-BIMT")
    assert (flags.major, flags.minor) == (5, 1)
    assert flags.multi_client and flags.message_ids and flags.supports_message_ids
    assert flags.request_timeout_hints and flags.bulk_set_sensor_sampling
    assert flags.supports("I") and flags.supports(b"B") and not flags.supports("X")
    plain = ProtocolFlags(5, 0, "M")
    assert plain.multi_client and not plain.message_ids


@pytest.mark.parametrize(
    ("major", "minor", "flags", "problem"),
    [
        (4, 0, "I", "needs KATCP v5"),
        (5, 0, "T", "needs KATCP v5.1"),
        (5, 0, "B", "needs KATCP v5.1"),
        (5, 1, "MM", "repeated"),
    ],
)
def test_invalid_combinations(major, minor, flags, problem):
    with pytest.raises(ValueError, match=problem):
        ProtocolFlags(major, minor, flags)


def test_unknown_flags_are_kept():
    # Spec 5.1 section 4: later versions may define more flags; a client must not choke.
    flags = ProtocolFlags.parse_version(b"5.1-MIUX")
    assert flags.supports("U") and flags.supports(b"X") and flags.message_ids
    assert str(flags) == "5.1-IMUX"


@pytest.mark.parametrize("text", ["", "5", "5.", "five", "5.1-m1", "5.1 BIMT", "5.1--", "banana"])
def test_parse_rejects_malformed(text):
    with pytest.raises(ValueError):
        ProtocolFlags.parse_version(text)


def test_parse_empty_flag_list_is_no_flags():
    # Spec 5.1 section 4.2: the "-" "should be omitted" without flags; katcp-python reads
    # "5.1-" as 5.1 without flags, and so does katcpx.
    flags = ProtocolFlags.parse_version(b"5.1-")
    assert (flags.major, flags.minor, flags.flags) == (5, 1, set())
    assert str(flags) == "5.1"


def test_strategies_by_version():
    assert ProtocolFlags(5, 0, "").strategy_allowed("event-rate")
    assert not ProtocolFlags(4, 0, "").strategy_allowed(b"event-rate")
    assert ProtocolFlags(4, 0, "").strategy_allowed("differential")


def test_equality_and_hash():
    assert ProtocolFlags(5, 1, "IM") == ProtocolFlags(5, 1, {"M", "I"})
    assert len({ProtocolFlags(5, 1, "IM"), ProtocolFlags(5, 1, "MI")}) == 1
    assert ProtocolFlags(5, 1, "IM") != ProtocolFlags(5, 0, "IM")
