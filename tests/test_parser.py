"""Tests for katcpx.parser: the spec grammar, errors with positions, the stream parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from katcpx import KatcpSyntaxError, Message, MessageParser, MessageTooLong, StreamParser
from katcpx.message import MAX_MID

parse = MessageParser().parse


# The spec's own examples (rev 5.1 sections 2 and 7).
@pytest.mark.parametrize(
    ("line", "mtype", "name", "args", "mid"),
    [
        (b"?set-rate 5.1", Message.REQUEST, "set-rate", [b"5.1"], None),
        (b"!set-rate ok", Message.REPLY, "set-rate", [b"ok"], None),
        (
            b"!set-unknown-parameter invalid Unknown\\_request.",
            Message.REPLY,
            "set-unknown-parameter",
            [b"invalid", b"Unknown request."],
            None,
        ),
        (
            b"!set-rate fail Hardware\\_did\\_not\\_respond.",
            Message.REPLY,
            "set-rate",
            [b"fail", b"Hardware did not respond."],
            None,
        ),
        (b"?set-rate[123] 4.1", Message.REQUEST, "set-rate", [b"4.1"], b"123"),
        (b"!set-rate[123] ok", Message.REPLY, "set-rate", [b"ok"], b"123"),
        (b"#foo \\@", Message.INFORM, "foo", [b""], None),
        (
            b"#sensor-list drive.enable-azim Azimuth\\_drive\\_enable\\_signal\\_status \\@ boolean",
            Message.INFORM,
            "sensor-list",
            [b"drive.enable-azim", b"Azimuth drive enable signal status", b"", b"boolean"],
            None,
        ),
        (
            b"#sensor-list acs.mode ACS\\_operating\\_mode \\@ discrete idle remote-point stow",
            Message.INFORM,
            "sensor-list",
            [
                b"acs.mode",
                b"ACS operating mode",
                b"",
                b"discrete",
                b"idle",
                b"remote-point",
                b"stow",
            ],
            None,
        ),
    ],
)
def test_spec_examples(line, mtype, name, args, mid):
    msg = parse(line)
    assert (msg.mtype, msg.name, msg.arguments, msg.mid) == (mtype, name, args, mid)


def test_every_escape_is_decoded():
    msg = parse(b"?x a\\\\b c\\_d \\0 \\n \\r \\e \\t \\@ mid\\@dle")
    assert msg.arguments == [b"a\\b", b"c d", b"\0", b"\n", b"\r", b"\x1b", b"\t", b"", b"middle"]


def test_escaped_backslash_before_escape_code():
    assert parse(b"?x \\\\_ \\\\\\_").arguments == [b"\\_", b"\\ "]


def test_tabs_and_runs_of_whitespace_separate_arguments():
    assert parse(b"?x \t a  \t\tb   c \t").arguments == [b"a", b"b", b"c"]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n", b""])
def test_parse_accepts_one_trailing_end_of_line(eol):
    assert parse(b"?watchdog" + eol) == Message.request("watchdog")


def test_vertical_tab_and_form_feed_are_plain_characters():
    # Only space and tab are white space in the grammar.
    assert parse(b"?x a\x0bb \x0c").arguments == [b"a\x0bb", b"\x0c"]


def test_str_input_is_encoded():
    assert parse("?x héllo").arguments == ["héllo".encode()]


@pytest.mark.parametrize(
    ("line", "problem", "column"),
    [
        (b"?x a\\q", "unknown escape", 5),
        (b"?x abc\\", "trailing backslash", 7),
        (b"?x a\x00b", "raw NUL", 5),
        (b"?x a\x1bb", "raw ESC", 5),
        (b"?x a\nb", "raw newline", 5),
        (b"?x a\rb", "raw carriage return", 5),
        (b"?1x", "bad message name", 2),
        (b"?x_y", "bad message name", 2),
        (b"?x\\_y", "bad byte", 3),
        (b"?", "bad message name", 2),
        (b"?x[0]", "bad message id", 3),
        (b"?x[01]", "bad message id", 3),
        (b"?x[a]", "bad message id", 3),
        (b"?x[]", "bad message id", 3),
        (b"?x[2147483648]", "out of range", 3),
        (b"?x[5", "not closed", 4),
        (b"x 1", "missing message type", 1),
        (b"*x 1", "missing message type", 1),
        (b" ?x", "starts with white space", 1),
        (b"", "empty line", 1),
        (b"  ", "empty line", 1),
    ],
)
def test_syntax_errors_name_problem_and_column(line, problem, column):
    with pytest.raises(KatcpSyntaxError) as info:
        parse(line)
    assert problem in str(info.value)
    assert f"column {column}" in str(info.value)
    assert info.value.line == line


def test_max_mid_is_accepted():
    assert parse(b"?x[%d]" % MAX_MID).mid == b"2147483647"


@given(st.binary(max_size=60))
def test_parse_never_fails_with_anything_but_syntax_error(line):
    try:
        msg = parse(line)
    except KatcpSyntaxError:
        return
    # Anything accepted re-formats to something that parses back the same.
    assert parse(bytes(msg)) == msg


# -- StreamParser ------------------------------------------------------------------------


def test_stream_splits_on_newline_and_carriage_return_and_skips_blank_lines():
    sp = StreamParser()
    out = sp.feed(b"?a\n\n \t \r#b 1\r\n!c ok\r")
    assert out == [Message.request("a"), Message.inform("b", 1), Message.reply("c", "ok")]


def test_stream_keeps_partial_lines_across_feeds():
    sp = StreamParser()
    assert sp.feed(b"?sensor-val") == []
    assert sp.buffered == len(b"?sensor-val")
    assert sp.feed(b"ue[3] cpu") == []
    assert sp.feed(b".temp\n?watch") == [Message.request("sensor-value", "cpu.temp", mid=3)]
    assert sp.feed(b"dog\n") == [Message.request("watchdog")]
    assert sp.buffered == 0


def test_stream_byte_at_a_time():
    data = b"?x[1] a\\_b \\@\r\n#y\n"
    sp = StreamParser()
    out = []
    for i in range(len(data)):
        out.extend(sp.feed(data[i : i + 1]))
    assert out == [Message.request("x", "a b", "", mid=1), Message.inform("y")]


def test_stream_ids_on_known_heads_take_the_fast_path_with_the_same_checks():
    # The first line teaches the parser the head "!fast-id"; later ids reuse it.
    lines = [
        b"!fast-id[7] ok",
        b"!fast-id[%d] ok a" % MAX_MID,
        b"!fast-id[%d] ok" % (MAX_MID + 1),
        b"!fast-id[07] ok",
        b"!fast-id[] ok",
        b"!fast-id[1x] ok",
        b"!fast-id[3]] ok",
        b"!fast-id[[3] ok",
    ]
    out = StreamParser().feed(b"\n".join(lines) + b"\n")
    assert out[:2] == [
        Message.reply("fast-id", "ok", mid=7),
        Message.reply("fast-id", "ok", "a", mid=MAX_MID),
    ]
    for line, item in zip(lines[2:], out[2:], strict=True):
        assert isinstance(item, KatcpSyntaxError), line
        with pytest.raises(KatcpSyntaxError) as caught:
            parse(line)
        assert str(item) == str(caught.value)


def test_stream_reports_malformed_lines_in_order_without_raising():
    out = StreamParser().feed(b"?ok1\n?bad x\\q\n?ok2\n")
    assert out[0] == Message.request("ok1")
    assert isinstance(out[1], KatcpSyntaxError) and "unknown escape" in str(out[1])
    assert out[2] == Message.request("ok2")


def test_stream_over_long_complete_line():
    out = StreamParser(max_msg_size=10).feed(b"?x " + b"a" * 20 + b"\n?y\n")
    assert isinstance(out[0], MessageTooLong)
    assert out[1] == Message.request("y")


def test_stream_over_long_partial_line_is_reported_once_and_discarded():
    sp = StreamParser(max_msg_size=10)
    out = sp.feed(b"?x " + b"a" * 20)
    assert len(out) == 1 and isinstance(out[0], MessageTooLong)
    assert sp.buffered == 0
    assert sp.feed(b"a" * 100) == []
    assert sp.feed(b"aaa\n?y\n") == [Message.request("y")]


def test_stream_line_exactly_at_limit_is_accepted():
    line = b"?x " + b"a" * 7
    assert StreamParser(max_msg_size=len(line)).feed(line + b"\n") == [
        Message.request("x", "a" * 7)
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([Message.REQUEST, Message.REPLY, Message.INFORM]),
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,8}", fullmatch=True),
            st.lists(st.binary(max_size=12), max_size=4),
            st.one_of(st.none(), st.integers(1, MAX_MID)),
        ),
        max_size=8,
    ),
    st.lists(st.integers(1, 30), max_size=10),
)
def test_stream_chunking_never_changes_the_messages(specs, cuts):
    msgs = [Message(*spec) for spec in specs]
    data = b"".join(bytes(m) for m in msgs)
    sp = StreamParser()
    out = []
    pos = 0
    for cut in cuts:
        out.extend(sp.feed(data[pos : pos + cut]))
        pos += cut
    out.extend(sp.feed(data[pos:]))
    assert out == msgs
