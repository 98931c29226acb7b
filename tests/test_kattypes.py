"""Tests for katcpx.kattypes: the KATCP types, the request decorators and annotated handlers."""

import asyncio
import concurrent.futures
import enum
import re
from typing import Annotated, Optional

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katcpx.errors import FailReply, KatcpTypeError, KatcpValueTypeError
from katcpx.kattypes import (
    Address,
    Bool,
    Discrete,
    DiscreteMulti,
    Float,
    Int,
    KatcpType,
    Lru,
    Parameter,
    Regex,
    Str,
    StrictTimestamp,
    Struct,
    Timestamp,
    TimestampOrNow,
    async_make_reply,
    concurrent_reply,
    has_katcp_protocol_flags,
    inform,
    make_reply,
    minimum_katcp_version,
    pack_types,
    prepare_request_handler,
    request,
    request_timeout_hint,
    return_reply,
    send_reply,
    unpack_message,
    unpack_types,
)
from katcpx.message import Message


class FakeReq:
    """The bits of a server's request connection that handlers use."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        self.sent: list[Message] = []

    def reply_with_message(self, msg: Message) -> None:
        self.sent.append(msg)

    def inform(self, *args) -> None:
        self.sent.append(Message.inform(self.msg.name, *args))

    def reply(self, *args) -> None:
        self.sent.append(Message.reply(self.msg.name, *args))


def req_msg(name, *args, mid=None):
    msg = Message.request(name, *args, mid=mid)
    return FakeReq(msg), msg


def args_of(reply: Message) -> list[bytes]:
    assert reply.mtype == Message.REPLY
    return reply.arguments


# ---------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------


class TestBase:
    def test_default_used_for_absent_values(self):
        t = Int(default=7)
        assert t.unpack(None) == 7
        assert t.pack(None) == b"7"

    def test_optional_without_default_unpacks_none(self):
        assert Int(optional=True).unpack(None) is None

    def test_required_without_default(self):
        with pytest.raises(KatcpTypeError, match="No value or default given"):
            Int().unpack(None)
        with pytest.raises(KatcpTypeError):
            Int(optional=True).pack(None)

    def test_default_is_checked(self):
        with pytest.raises(KatcpTypeError, match="higher than maximum"):
            Int(max=3, default=5).unpack(None)

    def test_nocheck_skips_check(self):
        assert Int(max=3).pack(5, nocheck=True) == b"5"

    def test_errors_are_value_errors(self):
        # katcp-python users catch ValueError.
        with pytest.raises(ValueError):
            Float().unpack(b"x")

    def test_base_is_abstract(self):
        with pytest.raises(NotImplementedError):
            KatcpType().pack(1)


class TestInt:
    def test_pack_unpack(self):
        assert Int().pack(-546) == b"-546"
        assert Int().unpack(b"123") == 123
        assert Int().unpack(b"+5") == 5

    @pytest.mark.parametrize("raw", [b"x", b"1.5", b" 5", b"5 ", b"1_000", b"", b"0x10"])
    def test_unpack_rejects(self, raw):
        with pytest.raises(KatcpTypeError, match="as integer"):
            Int().unpack(raw)

    def test_range(self):
        t = Int(min=0, max=10)
        assert t.unpack(b"0") == 0 and t.unpack(b"10") == 10
        with pytest.raises(KatcpTypeError, match=r"Integer -1 is lower than minimum 0\."):
            t.unpack(b"-1")
        with pytest.raises(KatcpTypeError, match="Integer 11 is higher than maximum 10"):
            t.pack(11)

    def test_pack_integral_values(self):
        assert Int().pack(3.0) == b"3"
        assert Int().pack(np.int64(-4)) == b"-4"
        assert Int().pack(True) == b"1"

    @pytest.mark.parametrize("value", [3.5, "3", float("nan"), float("inf"), object()])
    def test_pack_rejects(self, value):
        with pytest.raises(KatcpTypeError, match="as integer|a real number is required"):
            Int(min=0).pack(value)

    @given(st.integers())
    def test_roundtrip(self, value):
        assert Int().unpack(Int().pack(value)) == value


class TestFloat:
    def test_pack_unpack(self):
        assert Float().pack(1.7) == b"1.7"
        assert Float().pack(3) == b"3.0"
        assert Float().pack(np.float32(0.5)) == b"0.5"
        assert Float().unpack(b"-1.234e-05") == -1.234e-05
        assert Float().unpack(b".5") == 0.5
        assert Float().unpack(b"5.") == 5.0
        assert Float().unpack(b"inf") == float("inf")
        assert Float().unpack(b"nan") != Float().unpack(b"nan")

    @pytest.mark.parametrize("raw", [b"x", b" 1.0", b"1.0 ", b"1_0.5", b"0x1p3", b"", b"1e"])
    def test_unpack_rejects(self, raw):
        with pytest.raises(KatcpTypeError, match="Could not parse value 'b'.*'' as float\\."):
            Float().unpack(raw)

    def test_range(self):
        t = Float(min=-1.5, max=2.5)
        assert t.unpack(b"2.5") == 2.5
        with pytest.raises(KatcpTypeError, match=r"Float -2 is lower than minimum -1\.5\."):
            t.unpack(b"-2")
        with pytest.raises(KatcpTypeError, match="Float 3 is higher than maximum 2.5"):
            t.pack(3.0)

    def test_pack_rejects_non_numbers(self):
        with pytest.raises(KatcpTypeError, match="as float"):
            Float(min=0.0).pack("1.0")

    @given(st.floats(allow_nan=False))
    def test_roundtrip(self, value):
        assert Float().unpack(Float().pack(value)) == value


class TestBool:
    def test_pack_unpack(self):
        assert Bool().pack(True) == b"1"
        assert Bool().pack(0) == b"0"
        assert Bool().unpack(b"1") is True
        assert Bool().unpack(b"0") is False

    @pytest.mark.parametrize("raw", [b"true", b"2", b"", b"01"])
    def test_unpack_rejects(self, raw):
        with pytest.raises(KatcpTypeError, match="Boolean value must be b'0' or b'1' but is"):
            Bool().unpack(raw)

    @given(st.booleans())
    def test_roundtrip(self, value):
        assert Bool().unpack(Bool().pack(value)) is value


class TestStr:
    def test_pack_unpack(self):
        assert Str().pack("héllo") == "héllo".encode()
        assert Str().pack(b"\xff raw") == b"\xff raw"
        assert Str().pack(12) == b"12"
        assert Str().unpack("héllo".encode()) == "héllo"

    def test_unpack_invalid_utf8(self):
        with pytest.raises(KatcpTypeError, match="UTF-8"):
            Str().unpack(b"\xff")

    @given(st.text())
    def test_roundtrip(self, value):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates are not text a wire can carry
            return
        assert Str().unpack(Str().pack(value)) == value


class TestDiscrete:
    def test_pack_unpack(self):
        t = Discrete(["on", "off"])
        assert t.pack("on") == b"on"
        assert t.unpack(b"off") == "off"

    def test_rejects_unknown(self):
        t = Discrete(["on", "off"])
        with pytest.raises(
            KatcpTypeError, match=r"Discrete value 'ON' is not one of \['on', 'off'\]"
        ):
            t.unpack(b"ON")
        with pytest.raises(KatcpTypeError):
            t.pack("maybe")

    def test_case_insensitive(self):
        t = Discrete(["On", "off"], case_insensitive=True)
        assert t.unpack(b"ON") == "ON"  # case kept, as katcp-python does
        assert t.unpack(b"OFF") == "OFF"
        with pytest.raises(KatcpTypeError, match=r"\(case-insensitive\)"):
            t.unpack(b"of")

    @given(st.sampled_from(["initialise", "operate", "maintain"]))
    def test_roundtrip(self, value):
        t = Discrete(["initialise", "operate", "maintain"])
        assert t.unpack(t.pack(value)) == value


class TestDiscreteMulti:
    VALUES = ["a", "B", "c"]

    def test_unpack_sorts_and_strips(self):
        t = DiscreteMulti(self.VALUES)
        assert t.unpack(b"c, a") == ["a", "c"]
        assert t.unpack(b"all") == ["a", "B", "c"]

    def test_pack_sorts(self):
        assert DiscreteMulti(self.VALUES).pack(["c", "B", "a"]) == b"a,B,c"

    def test_separator_and_no_all_keyword(self):
        t = DiscreteMulti(self.VALUES, all_keyword=None, separator="|")
        assert t.unpack(b"a|B") == ["a", "B"]
        with pytest.raises(KatcpTypeError):
            t.unpack(b"all")

    def test_rejects(self):
        t = DiscreteMulti(self.VALUES)
        with pytest.raises(KatcpTypeError, match="'d' is not one of"):
            t.unpack(b"a,d")
        with pytest.raises(KatcpTypeError, match="list of values"):
            t.pack("a")

    def test_case_insensitive(self):
        assert DiscreteMulti(self.VALUES, case_insensitive=True).unpack(b"b,A") == ["A", "b"]

    @given(st.sets(st.sampled_from(VALUES), min_size=1))
    def test_roundtrip(self, value):
        t = DiscreteMulti(self.VALUES)
        assert t.unpack(t.pack(sorted(value))) == sorted(value, key=str.lower)


class TestLru:
    def test_pack_unpack(self):
        assert Lru().pack(Lru.LRU_NOMINAL) == b"nominal"
        assert Lru().pack(Lru.LRU_ERROR) == b"error"
        assert Lru().unpack(b"error") == Lru.LRU_ERROR

    def test_rejects(self):
        with pytest.raises(KatcpTypeError, match="LRU_NOMINAL or LRU_ERROR"):
            Lru().pack(2)
        with pytest.raises(KatcpTypeError, match="Lru value must be 'nominal' or 'error'"):
            Lru().unpack(b"ok")

    @given(st.sampled_from([Lru.LRU_NOMINAL, Lru.LRU_ERROR]))
    def test_roundtrip(self, value):
        assert Lru().unpack(Lru().pack(value)) == value


class TestAddress:
    @pytest.mark.parametrize(
        "raw, value",
        [
            (b"192.168.1.1:4000", ("192.168.1.1", 4000)),
            (b"127.0.0.1", ("127.0.0.1", None)),
            (b"[2001:db8::7334]:4000", ("2001:db8::7334", 4000)),
            (b"[::1]", ("::1", None)),
            (b"host.example:80", ("host.example", 80)),
        ],
    )
    def test_pack_unpack(self, raw, value):
        assert Address().unpack(raw) == value
        assert Address().pack(value) == raw

    @pytest.mark.parametrize("raw", [b"1.2.3.4:x", b"::1", b"[::1", b"[::1]:", b"a:1:2"])
    def test_unpack_rejects(self, raw):
        with pytest.raises(KatcpTypeError, match="as an address"):
            Address().unpack(raw)

    def test_pack_rejects(self):
        with pytest.raises(KatcpTypeError, match="host and port"):
            Address().pack("127.0.0.1")

    def test_null(self):
        assert Address().pack(Address.NULL) == b"0.0.0.0"

    @given(
        st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str),
        st.one_of(st.none(), st.integers(0, 65535)),
    )
    def test_roundtrip(self, host, port):
        assert Address().unpack(Address().pack((host, port))) == (host, port)


class TestTimestamp:
    def test_v5_seconds(self):
        assert Timestamp().pack(1222180721.660213) == b"1222180721.660213"
        assert Timestamp().unpack(b"1222180721.5") == 1222180721.5

    def test_v4_milliseconds(self):
        assert Timestamp().pack(1222180721.5, major=4) == b"1222180721500"
        assert Timestamp().unpack(b"1222180721500", major=4) == 1222180721.5
        assert Timestamp().unpack(b"1500.5", major=4) == 1.5005  # v4 allows a fraction

    def test_v4_rounds_rather_than_truncates(self):
        # 1.001 * 1000 == 1000.9999999999999; truncation would lose a millisecond.
        assert Timestamp().pack(1.001, major=4) == b"1001"

    def test_rejects(self):
        with pytest.raises(KatcpTypeError, match="Could not parse value 'soon' as timestamp"):
            Timestamp().unpack(b"soon")
        with pytest.raises(KatcpTypeError, match="could not convert string to float"):
            Timestamp().pack("soon")

    @given(st.integers(0, 4_000_000_000_000_000))
    def test_roundtrip_v5(self, micros):
        value = micros / 1e6
        assert Timestamp().unpack(Timestamp().pack(value)) == value

    @given(st.integers(0, 4_000_000_000_000))
    def test_roundtrip_v4(self, millis):
        value = millis / 1000
        assert Timestamp().unpack(Timestamp().pack(value, major=4), major=4) == value


class TestTimestampOrNow:
    def test_now(self):
        t = TimestampOrNow()
        assert t.pack(TimestampOrNow.NOW) == b"now"
        assert t.unpack(b"now") is TimestampOrNow.NOW
        assert t.unpack(b"now", major=4) is TimestampOrNow.NOW

    def test_timestamps(self):
        t = TimestampOrNow()
        assert t.unpack(b"12.5") == 12.5
        assert t.pack(12.5, major=4) == b"12500"

    @given(st.one_of(st.just(TimestampOrNow.NOW), st.integers(0, 10**15).map(lambda m: m / 1e6)))
    def test_roundtrip(self, value):
        t = TimestampOrNow()
        assert t.unpack(t.pack(value)) == value


class TestStrictTimestamp:
    def test_pack_unpack(self):
        t = StrictTimestamp()
        assert t.pack(1222195721.5) == b"1222195721.5"
        assert t.pack(1e-07) == b"0.0000001"  # never an exponent
        assert t.pack(1e20) == b"100000000000000000000"
        assert t.unpack(b"1222195721.25") == 1222195721.25
        assert t.unpack(b"12") == 12.0

    @pytest.mark.parametrize("raw", [b"1e5", b"1.", b".5", b"x", b"1.2.3", b""])
    def test_unpack_rejects_format(self, raw):
        with pytest.raises(KatcpTypeError, match="as strict timestamp"):
            StrictTimestamp().unpack(raw)

    def test_rejects_negative_and_non_finite(self):
        with pytest.raises(KatcpTypeError, match="may not be negative"):
            StrictTimestamp().unpack(b"-1.5")
        with pytest.raises(KatcpTypeError, match="finite"):
            StrictTimestamp().pack(float("inf"))
        with pytest.raises(KatcpTypeError):
            StrictTimestamp().pack("1.0")

    def test_milliseconds_before_v5(self):
        t = StrictTimestamp()
        assert t.pack(1.5005, major=4) == b"1500.5"
        assert t.pack(1.5005, major=3) == b"1500"
        assert t.unpack(b"1500.5", major=4) == 1.5005

    @given(st.floats(min_value=0, allow_infinity=False))
    def test_roundtrip(self, value):
        t = StrictTimestamp()
        assert t.unpack(t.pack(value)) == value


class TestStruct:
    def test_pack_unpack(self):
        t = Struct(">iH")
        assert t.pack((-1, 2)) == b"\xff\xff\xff\xff\x00\x02"
        assert t.unpack(b"\x00\x00\x00\x05\x00\x01") == (5, 1)

    def test_rejects(self):
        with pytest.raises(KatcpTypeError, match="Could not unpack"):
            Struct(">i").unpack(b"\x00")
        with pytest.raises(KatcpTypeError, match="Could not pack"):
            Struct(">B").pack((256,))

    @given(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(0, 65535)))
    def test_roundtrip(self, value):
        t = Struct("<iH")
        assert t.unpack(t.pack(value)) == value


class TestRegex:
    def test_match(self):
        t = Regex(r"\d+-[a-z]+")
        assert t.unpack(b"12-ab") == "12-ab"
        assert t.pack("3-x") == b"3-x"
        with pytest.raises(KatcpTypeError, match=r"does not match regex '\\d\+-\[a-z\]\+'"):
            t.unpack(b"ab")

    def test_compiled_pattern_flags(self):
        t = Regex(re.compile("^[a-z]+$", re.I))
        assert t.unpack(b"ABC") == "ABC"
        with pytest.raises(KatcpTypeError, match="with flags 'I"):
            t.unpack(b"12")

    @settings(max_examples=30)  # from_regex is slow to generate
    @given(st.from_regex(r"[a-z]{1,8}[0-9]{0,3}", fullmatch=True))
    def test_roundtrip(self, value):
        t = Regex(r"[a-z]+[0-9]*$")
        assert t.unpack(t.pack(value)) == value


# ---------------------------------------------------------------------------------------
# Packing argument lists
# ---------------------------------------------------------------------------------------


class TestPackUnpackTypes:
    def test_unpack_with_defaults_and_multiple(self):
        types = [Int(), Float(default=2.0), Str(multiple=True, optional=True)]
        assert unpack_types(types, [b"1"], ["a", "b", "c"], 5) == [1, 2.0, None]
        assert unpack_types(types, [b"1", b"3", b"x", b"y"], ["a", "b", "c"], 5) == [
            1,
            3.0,
            "x",
            "y",
        ]

    def test_unpack_errors_name_the_parameter(self):
        types = [Int(), Float(), Int(multiple=True)]
        with pytest.raises(FailReply) as info:
            unpack_types(types, [b"1", b"x"], ["num", "gain", "rest"], 5)
        assert (
            str(info.value) == "Error in parameter 2 (gain): Could not parse value 'b'x'' as float."
        )
        with pytest.raises(FailReply) as info:
            unpack_types(types, [b"1", b"2", b"3", b"4", b"y"], ["num", "gain", "rest"], 5)
        assert (
            str(info.value)
            == "Error in parameter 5 (rest): Could not parse value 'b'y'' as integer."
        )

    def test_unpack_too_many(self):
        with pytest.raises(FailReply, match=r"Too many parameters given\.\Z"):
            unpack_types([Int()], [b"1", b"2"], ["a"], 5)

    def test_unpack_missing(self):
        with pytest.raises(FailReply) as info:
            unpack_types([Int(), Int()], [b"1"], ["a", "b"], 5)
        assert str(info.value) == "Error in parameter 2 (b): No value or default given"

    def test_unpack_major(self):
        assert unpack_types([Timestamp()], [b"1500"], ["t"], 4) == [1.5]

    def test_pack(self):
        assert pack_types([Int(), Float(default=1.5)], [3], 5) == [b"3", b"1.5"]
        assert pack_types([Str(), Int(multiple=True)], ["a", 1, 2], 5) == [b"a", b"1", b"2"]
        assert pack_types([Timestamp()], [1.5], 4) == [b"1500"]

    def test_pack_errors(self):
        with pytest.raises(KatcpTypeError, match="Too many arguments to pack"):
            pack_types([Int()], [1, 2], 5)
        with pytest.raises(KatcpTypeError, match="a real number is required"):
            pack_types([Int()], ["x"], 5)

    def test_parameter(self):
        p = Parameter(3, "gain", Float(), 5)
        assert p.pack(1.0) == b"1.0"
        assert p.unpack(b"2") == 2.0
        with pytest.raises(FailReply, match=r"^Error in parameter 3 \(gain\): "):
            p.unpack(b"q")

    def test_user_type_value_errors_become_fail_replies(self):
        class Even(Int):
            def check(self, value, major):
                if value % 2:
                    raise ValueError("odd")

        with pytest.raises(FailReply, match=r"Error in parameter 1 \(n\): odd"):
            unpack_types([Even()], [b"3"], ["n"], 5)


# ---------------------------------------------------------------------------------------
# Decorators
# ---------------------------------------------------------------------------------------


class TestRequestDecorator:
    def test_unpacks_arguments(self):
        class Dev:
            @request(Int(), Float(), Bool())
            def request_myreq(self, req, num, gain, flag):
                return (req, num, gain, flag)

        req, msg = req_msg("myreq", 1, 2.5, True)
        assert Dev().request_myreq(req, msg) == (req, 1, 2.5, True)
        assert Dev.request_myreq._request_decorated is True
        assert Dev.request_myreq.__name__ == "request_myreq"

    def test_include_msg(self):
        class Dev:
            @request(Int(), include_msg=True)
            def request_x(self, req, msg, num):
                return (msg, num)

        req, msg = req_msg("x", 4)
        assert Dev().request_x(req, msg) == (msg, 4)

    def test_errors_name_parameters(self):
        class Dev:
            @request(Int(), Float())
            def request_x(self, req, num, gain):
                raise AssertionError("not reached")

        dev = Dev()
        with pytest.raises(FailReply) as info:
            dev.request_x(*req_msg("x", 1, "x"))
        assert (
            str(info.value) == "Error in parameter 2 (gain): Could not parse value 'b'x'' as float."
        )
        with pytest.raises(FailReply, match="Too many parameters given"):
            dev.request_x(*req_msg("x", 1, 2, 3))
        with pytest.raises(FailReply, match=r"parameter 2 \(gain\): No value or default given"):
            dev.request_x(*req_msg("x", 1))

    def test_names_come_through_return_reply(self):
        class Dev:
            @request(Int(), Float())
            @return_reply()
            def request_x(self, req, num, gain):
                return ("ok",)

        with pytest.raises(FailReply, match=r"parameter 2 \(gain\)"):
            Dev().request_x(*req_msg("x", 1, "y"))

    def test_multiple_must_be_last(self):
        with pytest.raises(TypeError, match="last parameter"):
            request(Int(multiple=True), Int())
        with pytest.raises(TypeError, match="last parameter"):
            return_reply(Int(multiple=True), Int())

    def test_async_handler(self):
        class Dev:
            @request(Int())
            async def request_x(self, req, num):
                await asyncio.sleep(0)
                return num * 2

        import inspect

        assert inspect.iscoroutinefunction(Dev.request_x)
        assert asyncio.run(Dev().request_x(*req_msg("x", 21))) == 42
        with pytest.raises(FailReply, match="parameter 1"):
            asyncio.run(Dev().request_x(*req_msg("x", "a")))

    def test_keeps_metadata_from_inner_decorators(self):
        class Dev:
            @request(Int())
            @concurrent_reply
            @request_timeout_hint(5)
            def request_x(self, req, num):
                return num

        assert Dev.request_x._concurrent_reply is True
        assert Dev.request_x._request_timeout_hint == 5.0

    def test_inform_and_unpack_message(self):
        class Client:
            @inform(Int(), Str())
            def inform_thing(self, num, text):
                return (num, text)

            @unpack_message(Str(), Int(), include_msg=True)
            def reply_thing(self, msg, status, num):
                return (msg.name, status, num)

        c = Client()
        assert c.inform_thing(Message.inform("thing", 3, "x")) == (3, "x")
        assert c.reply_thing(Message.reply("thing", "ok", 9)) == ("thing", "ok", 9)
        with pytest.raises(FailReply, match=r"parameter 1 \(num\)"):
            c.inform_thing(Message.inform("thing", "q", "x"))


class TestReturnReply:
    def make_dev(self):
        class Dev:
            @request(Int())
            @return_reply(Int(), Float())
            def request_calc(self, req, num):
                if num < 0:
                    return ("fail", "negative")
                return ("ok", num + 1, num * 2.0)

            @return_reply(Int())
            def request_status(self, req, msg):
                return ("invalid", "bad request")

            @return_reply(Int())
            def request_bad(self, req, msg):
                return ("ok", "not an int")

            @return_reply()
            def request_nostatus(self, req, msg):
                return ()

            @return_reply(Str(multiple=True))
            def request_many(self, req, msg):
                return ("ok", "a", "b", "c")

            @return_reply(Timestamp(), major=4)
            def request_old(self, req, msg):
                return ["ok", 1.5]

        return Dev()

    def test_ok_and_fail(self):
        dev = self.make_dev()
        reply = dev.request_calc(*req_msg("calc", 4))
        assert reply.name == "calc"
        assert args_of(reply) == [b"ok", b"5", b"8.0"]
        assert args_of(dev.request_calc(*req_msg("calc", -1))) == [b"fail", b"negative"]
        assert args_of(dev.request_many(*req_msg("many"))) == [b"ok", b"a", b"b", b"c"]
        assert args_of(dev.request_old(*req_msg("old"))) == [b"ok", b"1500"]

    def test_status_other_than_ok_or_fail_is_refused_like_katcp_python(self):
        # katcp-python 0.9.3's make_reply raises ValueError for any other status.
        with pytest.raises(ValueError, match="must be 'ok' or 'fail', not 'invalid'"):
            self.make_dev().request_status(*req_msg("status"))

    def test_bad_returns(self):
        dev = self.make_dev()
        with pytest.raises(KatcpTypeError, match="a real number is required, not str"):
            dev.request_bad(*req_msg("bad"))
        with pytest.raises(KatcpTypeError, match="status"):
            dev.request_nostatus(*req_msg("nostatus"))

    def test_name_must_start_with_request(self):
        with pytest.raises(ValueError, match="request_"):

            @return_reply()
            def handle_x(self, req, msg):
                pass

    def test_async_def(self):
        class Dev:
            @return_reply(Int())
            @request(Int())
            async def request_x(self, req, num):
                await asyncio.sleep(0)
                return ("ok", num + 1)

        import inspect

        assert inspect.iscoroutinefunction(Dev.request_x)
        reply = asyncio.run(Dev().request_x(*req_msg("x", 1)))
        assert args_of(reply) == [b"ok", b"2"]

    def test_async_def_returning_a_future(self):
        class Dev:
            @return_reply(Int())
            async def request_x(self, req, msg):
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(("ok", 11))
                return fut

        reply = asyncio.run(Dev().request_x(*req_msg("x")))
        assert args_of(reply) == [b"ok", b"11"]

    def test_returns_future(self):
        class Dev:
            @return_reply(Int())
            def request_x(self, req, msg):
                fut = asyncio.get_running_loop().create_future()
                fut.get_loop().call_soon(fut.set_result, ("ok", 7))
                return fut

        async def main():
            result = Dev().request_x(*req_msg("x"))
            assert isinstance(result, asyncio.Future)
            return await result

        assert args_of(asyncio.run(main())) == [b"ok", b"7"]

    def test_future_exception_propagates(self):
        class Dev:
            @return_reply(Int())
            def request_x(self, req, msg):
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(FailReply("broken"))
                return fut

            @return_reply(Int())
            def request_y(self, req, msg):
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(("ok", "x"))
                return fut

        async def main(name):
            return await getattr(Dev(), "request_" + name)(*req_msg(name))

        with pytest.raises(FailReply, match="broken"):
            asyncio.run(main("x"))
        with pytest.raises(KatcpTypeError):
            asyncio.run(main("y"))

    def test_cancelling_the_reply_future_cancels_the_handler_future(self):
        inner = []

        class Dev:
            @return_reply(Int())
            def request_x(self, req, msg):
                fut = asyncio.get_running_loop().create_future()
                inner.append(fut)
                return fut

        async def main():
            result = Dev().request_x(*req_msg("x"))
            result.cancel()
            await asyncio.sleep(0)
            return inner[0].cancelled()

        assert asyncio.run(main()) is True

    def test_returns_coroutine(self):
        class Dev:
            @return_reply(Str())
            def request_x(self, req, msg):
                async def later():
                    return ("ok", "done")

                return later()

        async def main():
            return await Dev().request_x(*req_msg("x"))

        assert args_of(asyncio.run(main())) == [b"ok", b"done"]

    def test_returns_concurrent_future(self):
        class Dev:
            @return_reply(Int())
            def request_x(self, req, msg):
                fut = concurrent.futures.Future()
                fut.set_result(("ok", 3))
                return fut

        result = Dev().request_x(*req_msg("x"))
        assert isinstance(result, concurrent.futures.Future)
        assert args_of(result.result(timeout=1)) == [b"ok", b"3"]


class TestSendReplyAndHelpers:
    def test_send_reply(self):
        class Dev:
            @send_reply(Int(), Float())
            def my_callback(self, req):
                return (req, "ok", 5, 2.0)

        req, _ = req_msg("thing")
        assert Dev().my_callback(req) is None
        assert len(req.sent) == 1
        assert req.sent[0].name == "thing"
        assert args_of(req.sent[0]) == [b"ok", b"5", b"2.0"]

    def test_make_reply(self):
        assert args_of(make_reply("x", [Int()], ("ok", 1), 5)) == [b"ok", b"1"]
        assert args_of(make_reply("x", [Int()], (b"ok", 1), 5)) == [b"ok", b"1"]
        assert args_of(make_reply("x", [Int()], ("fail", "no"), 5)) == [b"fail", b"no"]
        with pytest.raises(KatcpTypeError):
            make_reply("x", [], "ok", 5)
        with pytest.raises(KatcpTypeError):
            make_reply("x", [], (5, "no"), 5)

    def test_async_make_reply(self):
        async def main():
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(("ok", 2))
            return await async_make_reply("x", [Int()], fut, 5)

        assert args_of(asyncio.run(main())) == [b"ok", b"2"]

    def test_metadata_decorators(self):
        @concurrent_reply
        @minimum_katcp_version(5, 1)
        @has_katcp_protocol_flags(["M", "T"])
        @request_timeout_hint("2.5")
        def request_x(self, req, msg):
            pass

        assert request_x._concurrent_reply is True
        assert request_x._minimum_katcp_version == (5, 1)
        assert request_x._has_katcp_protocol_flags == ["M", "T"]
        assert request_x._request_timeout_hint == 2.5
        assert request_x.request_timeout_hint == 2.5  # katcp-python's attribute name
        assert minimum_katcp_version(4)(lambda: None)._minimum_katcp_version == (4, 0)
        assert request_timeout_hint(None)(lambda: None)._request_timeout_hint is None

    def test_outer_metadata_decorators_mark_the_wrapper(self):
        class Dev:
            @concurrent_reply
            @return_reply(Int())
            @request(Int())
            async def request_x(self, req, num):
                return ("ok", num)

        assert Dev.request_x._concurrent_reply is True
        assert prepare_request_handler(Dev.request_x) is Dev.request_x


# ---------------------------------------------------------------------------------------
# Annotated handlers
# ---------------------------------------------------------------------------------------


class Mode(enum.Enum):
    IDLE = 1
    FULL_POWER = 2


class Custom(enum.Enum):
    A = 1

    @property
    def katcp_value(self):
        return b"alpha"


def string_annotated(self, req, a: "int", b: "Mode") -> "tuple[int, Mode]":
    return a, b


def run(handler, *args):
    """Call a prepared handler with a fake request and return the reply message."""
    result = handler(*args)
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


class TestPrepareRequestHandler:
    def test_plain_handlers_untouched(self):
        def request_a(self, req, msg):
            pass

        def request_b(self, req, msg: Message):
            pass

        def request_c(self, req, msg: "Message"):
            pass

        @request(Int())
        def request_d(self, req, num: int):
            pass

        for func in (request_a, request_b, request_c, request_d):
            assert prepare_request_handler(func) is func

    def test_async_modern_form(self):
        class Dev:
            async def request_foo(self, req, a: int, b: float = 2.0, *rest: str) -> tuple[int, str]:
                await asyncio.sleep(0)
                return a + 1, f"{b}:{','.join(rest)}"

        handler = prepare_request_handler(Dev.request_foo)
        import inspect

        assert inspect.iscoroutinefunction(handler)
        dev = Dev()
        req, msg = req_msg("foo", 1, mid=7)
        reply = run(handler, dev, req, msg)
        assert reply.name == "foo" and reply.mid == b"7"
        assert args_of(reply) == [b"ok", b"2", b"2.0:"]
        reply = run(handler, dev, *req_msg("foo", 1, 3, "x", "y"))
        assert args_of(reply) == [b"ok", b"2", b"3.0:x,y"]

    def test_errors(self):
        async def request_foo(self, req, num: int, gain: float) -> None:
            raise AssertionError("not reached")

        handler = prepare_request_handler(request_foo)
        with pytest.raises(FailReply) as info:
            run(handler, None, *req_msg("foo", 1, "x"))
        assert (
            str(info.value) == "Error in parameter 2 (gain): Could not parse value 'b'x'' as float."
        )
        with pytest.raises(FailReply, match=r"parameter 2 \(gain\): No value or default given"):
            run(handler, None, *req_msg("foo", 1))
        with pytest.raises(FailReply, match=r"Too many parameters given\.\Z"):
            run(handler, None, *req_msg("foo", 1, 2, 3))

    def test_sync_form_and_returns(self):
        class Dev:
            def request_none(self, req) -> None:
                pass

            def request_single(self, req, x: int) -> float:
                return x

            def request_tuple(self, req, x: int):
                return x, "s", True, None

            def request_msg(self, req):
                return Message.reply("msg", "ok", "custom")

            def request_many(self, req, *xs: int) -> tuple[int, ...]:
                return tuple(reversed(xs))

            def request_optional(self, req, x: int | None, y: int = 9) -> int | None:
                return x

        dev = Dev()
        reply = run(prepare_request_handler(Dev.request_none), dev, *req_msg("none"))
        assert args_of(reply) == [b"ok"] and reply.name == "none"
        reply = run(prepare_request_handler(Dev.request_single), dev, *req_msg("single", 3))
        assert args_of(reply) == [b"ok", b"3.0"]  # packed by the return annotation
        reply = run(prepare_request_handler(Dev.request_tuple), dev, *req_msg("tuple", 3))
        assert args_of(reply) == [b"ok", b"3", b"s", b"1", b""]
        reply = run(prepare_request_handler(Dev.request_msg), dev, *req_msg("msg"))
        assert args_of(reply) == [b"ok", b"custom"]
        handler = prepare_request_handler(Dev.request_many)
        assert args_of(run(handler, dev, *req_msg("many"))) == [b"ok"]
        assert args_of(run(handler, dev, *req_msg("many", 1, 2, 3))) == [b"ok", b"3", b"2", b"1"]
        with pytest.raises(FailReply, match=r"Error in parameter 3 \(xs\)"):
            run(handler, dev, *req_msg("many", 1, 2, "z"))
        handler = prepare_request_handler(Dev.request_optional)
        assert args_of(run(handler, dev, *req_msg("optional"))) == [b"ok"]
        assert args_of(run(handler, dev, *req_msg("optional", 4))) == [b"ok", b"4"]

    def test_argument_types(self):
        seen = []

        def request_types(
            self,
            req,
            i: int,
            f: float,
            b: bool,
            s: str,
            raw: bytes,
            mode: Mode,
            custom: Custom,
            ts: Annotated[float, Timestamp()],
            level: Annotated[int, Int(min=0, max=3)],
        ):
            seen.append((i, f, b, s, raw, mode, custom, ts, level))

        handler = prepare_request_handler(request_types, major=4)
        run(handler, None, *req_msg("types", 1, 2, 1, "é", b"\xff", "FULL-POWER", "alpha", 1500, 3))
        assert seen == [(1, 2.0, True, "é", b"\xff", Mode.FULL_POWER, Custom.A, 1.5, 3)]
        with pytest.raises(FailReply, match=r"parameter 6 \(mode\): discrete value 'off'"):
            run(handler, None, *req_msg("types", 1, 2, 1, "", b"", "off", "alpha", 1, 1))
        with pytest.raises(FailReply, match=r"parameter 9 \(level\): Integer 4 is higher"):
            run(handler, None, *req_msg("types", 1, 2, 1, "", b"", "idle", "alpha", 1, 4))

    def test_kattype_instance_annotation(self):
        def request_x(self, req, addr: Address()) -> Address():  # type: ignore[valid-type]
            return addr

        reply = run(prepare_request_handler(request_x), None, *req_msg("x", "[::1]:80"))
        assert args_of(reply) == [b"ok", b"[::1]:80"]

    def test_annotated_kattypes_become_optional_and_multiple(self):
        bounded = Int(min=0)

        def request_x(
            self, req, a: Annotated[int, bounded] | None, *rest: Annotated[int, bounded]
        ) -> tuple[int | None, int]:
            return a, len(rest)

        handler = prepare_request_handler(request_x)
        assert args_of(run(handler, None, *req_msg("x"))) == [b"ok", b"", b"0"]
        assert args_of(run(handler, None, *req_msg("x", 1, 2, 3))) == [b"ok", b"1", b"2"]
        with pytest.raises(FailReply, match=r"parameter 3 \(rest\): Integer -3 is lower"):
            run(handler, None, *req_msg("x", 1, 2, -3))
        assert not bounded._optional and not bounded._multiple  # the user's instance is kept

    def test_enum_replies(self):
        def request_x(self, req, mode: Mode):
            return mode

        def request_y(self, req) -> tuple[Mode, Custom]:
            return Mode.FULL_POWER, Custom.A

        reply = run(prepare_request_handler(request_x), None, *req_msg("x", "idle"))
        assert args_of(reply) == [b"ok", b"idle"]
        reply = run(prepare_request_handler(request_y), None, *req_msg("y"))
        assert args_of(reply) == [b"ok", b"full-power", b"alpha"]

    def test_typing_optional(self):
        def request_x(self, req, x, y):
            return x, y

        # typing.Optional on purpose (the other tests use X | None).
        hints = {"x": int, "y": Optional[int], "return": Optional[tuple]}  # noqa: UP045
        request_x.__annotations__ = hints
        handler = prepare_request_handler(request_x)
        assert args_of(run(handler, None, *req_msg("x", 1))) == [b"ok", b"1", b""]
        assert args_of(run(handler, None, *req_msg("x", 1, 2))) == [b"ok", b"1", b"2"]

    def test_string_annotations(self):
        handler = prepare_request_handler(string_annotated)
        reply = run(handler, None, *req_msg("x", 5, "idle"))
        assert args_of(reply) == [b"ok", b"5", b"idle"]

    def test_three_parameters_with_an_annotated_third_are_modern(self):
        def request_echo(self, req, msg: str) -> str:
            return msg.upper()

        handler = prepare_request_handler(request_echo)
        assert handler is not request_echo
        assert args_of(run(handler, None, *req_msg("echo", "hi"))) == [b"ok", b"HI"]

    def test_message_parameter(self):
        def request_x(self, req, msg: Message, n: int):
            return msg.name, n

        reply = run(prepare_request_handler(request_x), None, *req_msg("x", 2))
        assert args_of(reply) == [b"ok", b"x", b"2"]

    def test_plain_def_returning_future(self):
        def request_x(self, req, n: int) -> int:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(n * 3)
            return fut  # type: ignore[return-value]

        handler = prepare_request_handler(request_x)

        async def main():
            result = handler(None, *req_msg("x", 2))
            assert isinstance(result, asyncio.Future)
            return await result

        assert args_of(asyncio.run(main())) == [b"ok", b"6"]

    def test_bad_return_value(self):
        def request_x(self, req) -> int:
            return "x"  # type: ignore[return-value]

        def request_y(self, req) -> tuple[int, int]:
            return (1, 2, 3)  # type: ignore[return-value]

        with pytest.raises(KatcpTypeError, match="a real number is required, not str"):
            run(prepare_request_handler(request_x), None, *req_msg("x"))
        with pytest.raises(KatcpTypeError, match="returned 3 values for its 2 annotated"):
            run(prepare_request_handler(request_y), None, *req_msg("y"))

    def test_unsupported_signatures(self):
        def no_annotation(self, req, a, b):
            pass

        def kw_only(self, req, *, a: int):
            pass

        def union(self, req, a: int | str):
            pass

        def unknown(self, req, a: list):
            pass

        with pytest.raises(TypeError, match="'a' of .*no_annotation has no annotation"):
            prepare_request_handler(no_annotation)
        with pytest.raises(TypeError, match="keyword-only"):
            prepare_request_handler(kw_only)
        with pytest.raises(TypeError, match="Optional"):
            prepare_request_handler(union)
        with pytest.raises(TypeError, match="unsupported annotation"):
            prepare_request_handler(unknown)

    def test_keeps_metadata_and_is_idempotent(self):
        @concurrent_reply
        @request_timeout_hint(3)
        async def request_x(self, req, a: int) -> None:
            """Help text."""

        handler = prepare_request_handler(request_x)
        assert handler is not request_x
        assert handler._concurrent_reply is True
        assert handler._request_timeout_hint == 3.0
        assert handler.__doc__ == "Help text."
        assert prepare_request_handler(handler) is handler

    def test_like_a_server_metaclass(self):
        class Meta(type):
            def __new__(mcs, name, bases, ns):
                for key, value in list(ns.items()):
                    if key.startswith("request_"):
                        ns[key] = prepare_request_handler(value)
                return super().__new__(mcs, name, bases, ns)

        class Dev(metaclass=Meta):
            def __init__(self):
                self.gain = 1.0

            async def request_gain(self, req, gain: float | None = None) -> float:
                if gain is not None:
                    self.gain = gain
                return self.gain

            @request(Int())
            @return_reply(Int())
            def request_old(self, req, n):
                return ("ok", n)

        dev = Dev()
        assert args_of(run(dev.request_gain, *req_msg("gain", 2.5))) == [b"ok", b"2.5"]
        assert args_of(run(dev.request_gain, *req_msg("gain"))) == [b"ok", b"2.5"]
        assert args_of(run(dev.request_old, *req_msg("old", 4))) == [b"ok", b"4"]


# What katcp-python 0.9.3 raises when packing a value of the wrong Python type ("T",
# TypeError) or a bad value of the right type ("V", ValueError), measured with the real one.
_WRONG_VALUES = [
    (Int(), "a", "T"),
    (Int(), object(), "T"),
    (Int(), [1], "T"),
    (Int(), b"x", "T"),
    (Int(), 1j, "T"),
    (Int(), None, "V"),
    (Int(min=0, max=3), "a", "T"),
    (Int(min=0, max=3), 7, "V"),
    (Float(), "a", "V"),
    (Float(), object(), "V"),
    (Float(min=0, max=3), "a", "T"),
    (Float(min=0, max=3), 7.0, "V"),
    (Discrete(("x", "y")), "a", "V"),
    (Discrete(("x", "y")), [1], "T"),
    (Discrete(("x", "y")), {}, "T"),
    (DiscreteMulti(("x", "y")), object(), "T"),
    (DiscreteMulti(("x", "y")), 7, "T"),
    (DiscreteMulti(("x", "y")), "a", "V"),
    (Lru(), "a", "V"),
    (Lru(), [1], "T"),
    (Address(), "a", "V"),
    (Address(), ("h", "p"), "T"),
    (Timestamp(), "a", "V"),
    (Timestamp(), object(), "T"),
    (TimestampOrNow(), [1], "T"),
    (StrictTimestamp(), "a", "V"),
    (StrictTimestamp(), object(), "T"),
    (StrictTimestamp(), -1, "V"),
    (Struct(">i"), "a", "V"),
    (Struct(">i"), 7, "T"),
    (Struct(">i"), {}, "V"),
    (Regex("a+"), "b", "V"),
    (Regex("a+"), 7, "T"),
]


@pytest.mark.parametrize(("ktype", "value", "kind"), _WRONG_VALUES)
def test_pack_error_class_matches_katcp_python(ktype, value, kind):
    expected = TypeError if kind == "T" else ValueError
    with pytest.raises(expected) as info:
        ktype.pack(value)
    # Every kattype error stays a KatcpTypeError (a ValueError) for katcpx's own callers.
    assert isinstance(info.value, KatcpTypeError)
    if kind == "T":
        assert isinstance(info.value, KatcpValueTypeError)


# Each (type, value) is evaluated by katcp-python 0.9.3 and by katcpx: katcpx's error must be
# an instance of the class katcp-python raised.
_PEER_CASES = [
    ("Int()", "'a'"),
    ("Int()", "object()"),
    ("Int()", "None"),
    ("Int(min=0, max=3)", "'a'"),
    ("Int(min=0, max=3)", "7"),
    ("Float()", "'a'"),
    ("Float(min=0, max=3)", "'a'"),
    ("Discrete(('x', 'y'))", "[1]"),
    ("Discrete(('x', 'y'))", "'a'"),
    ("DiscreteMulti(('x', 'y'))", "7"),
    ("Lru()", "[1]"),
    ("Lru()", "'a'"),
    ("Address()", "('h', 'p')"),
    ("Address()", "'a'"),
    ("Timestamp()", "object()"),
    ("Timestamp()", "'a'"),
    ("StrictTimestamp()", "object()"),
    ("Struct('>i')", "7"),
    ("Struct('>i')", "'a'"),
    ("Regex('a+')", "7"),
    ("Regex('a+')", "'b'"),
]


def test_pack_error_classes_match_the_real_katcp_python(katcp_python):
    import json
    import subprocess

    code = (
        "import json, sys\n"
        "from katcp.kattypes import *\n"
        "out = []\n"
        "for t, v in json.load(sys.stdin):\n"
        "    try:\n"
        "        eval(t).pack(eval(v)); out.append('ok')\n"
        "    except TypeError: out.append('TypeError')\n"
        "    except ValueError: out.append('ValueError')\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run(
        [str(katcp_python), "-c", code],
        input=json.dumps(_PEER_CASES),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = json.loads(run.stdout.splitlines()[-1])
    names = {
        "Int": Int,
        "Float": Float,
        "Discrete": Discrete,
        "DiscreteMulti": DiscreteMulti,
        "Lru": Lru,
        "Address": Address,
        "Timestamp": Timestamp,
        "StrictTimestamp": StrictTimestamp,
        "Struct": Struct,
        "Regex": Regex,
    }
    for (ktype, value), kind in zip(_PEER_CASES, expected, strict=True):
        assert kind != "ok", (ktype, value)
        with pytest.raises({"TypeError": TypeError, "ValueError": ValueError}[kind]):
            eval(ktype, names).pack(eval(value))  # a fixed table of test cases
