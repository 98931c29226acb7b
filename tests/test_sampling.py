"""Tests for katcpx.sampling: parameter rules and the timing of every strategy.

Time is simulated with ManualScheduler: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from katcpx.sampling import (
    ManualScheduler,
    SampleAuto,
    SampleDifferential,
    SampleDifferentialRate,
    SampleEvent,
    SampleEventRate,
    SampleNone,
    SamplePeriod,
    SampleStrategy,
    SamplingError,
)
from katcpx.sensor import Reading, Sensor


class Informs:
    """The inform callback: records (time, reading) for each #sensor-status wanted."""

    def __init__(self, sched: ManualScheduler) -> None:
        self.sched = sched
        self.sent: list[tuple[float, Reading]] = []

    def __call__(self, sensor: Sensor, reading: Reading) -> None:
        self.sent.append((self.sched.time(), reading))

    @property
    def values(self) -> list:
        return [r.value for _, r in self.sent]

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.sent]


@pytest.fixture
def sched() -> ManualScheduler:
    return ManualScheduler(start=100.0)


@pytest.fixture
def informs(sched) -> Informs:
    return Informs(sched)


def make(name, sensor, *params, sched, informs, major=5, **kwargs):
    return SampleStrategy.get_strategy(
        name, informs, sensor, *params, clock=sched.time, scheduler=sched, major=major, **kwargs
    )


def int_sensor(value=0):
    s = Sensor.integer("i")
    s.set_value(value, timestamp=1.0)
    return s


# --- ManualScheduler ---------------------------------------------------------------------


def test_manual_scheduler_runs_in_time_order_and_cancels():
    sched = ManualScheduler()
    ran: list[object] = []
    sched.call_at(2.0, lambda: ran.append(("b", sched.time())))
    sched.call_at(1.0, lambda: ran.append(("a", sched.time())))
    sched.call_at(1.0, lambda: ran.append(("a2", sched.time())))
    sched.call_at(3.0, lambda: ran.append("never")).cancel()
    assert sched.pending == 3
    assert sched.next_due() == 1.0
    assert sched.advance(2.5) == 3
    assert ran == [("a", 1.0), ("a2", 1.0), ("b", 2.0)]
    assert sched.time() == 2.5
    assert sched.advance(10) == 0 and sched.pending == 0 and sched.next_due() is None


def test_manual_scheduler_runs_timers_scheduled_by_callbacks():
    sched = ManualScheduler()
    ran = []

    def again():
        ran.append(sched.time())
        if len(ran) < 3:
            sched.call_at(sched.time() + 1, again)

    sched.call_at(1, again)
    sched.advance(10)
    assert ran == [1, 2, 3]


# --- factory and parameter rules ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "params"),
    [
        ("none", SampleNone, ()),
        (b"auto", SampleAuto, ()),
        ("period", SamplePeriod, (b"1.5",)),
        ("event", SampleEvent, ()),
        ("differential", SampleDifferential, (b"2",)),
        ("event-rate", SampleEventRate, (b"0.5", b"10")),
        ("differential-rate", SampleDifferentialRate, (b"2", b"0.5", b"10")),
    ],
)
def test_get_strategy_builds_each_strategy(name, cls, params, sched, informs):
    strategy = make(name, int_sensor(), *params, sched=sched, informs=informs)
    assert type(strategy) is cls
    raw = name.encode() if isinstance(name, str) else name
    assert strategy.get_sampling() == SampleStrategy.SAMPLING_LOOKUP_REV[raw]
    assert strategy.get_sampling_formatted() == (raw, list(params))


def test_strategy_constants_match_katcp_python():
    assert [SampleStrategy.SAMPLING_LOOKUP[i] for i in range(7)] == [
        b"none",
        b"auto",
        b"period",
        b"event",
        b"differential",
        b"event-rate",
        b"differential-rate",
    ]


def test_unknown_strategy(sched, informs):
    with pytest.raises(SamplingError, match="unknown sampling strategy 'sometimes'; known"):
        make("sometimes", int_sensor(), sched=sched, informs=informs)


def test_sampling_error_is_a_value_error():
    assert issubclass(SamplingError, ValueError)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("none", (b"1",), "'none' strategy takes no parameters, got 1"),
        ("auto", (b"1",), "'auto' strategy takes no parameters, got 1"),
        ("event", (b"1", b"2"), "'event' strategy takes no parameters, got 2"),
        ("period", (), r"'period' strategy takes 1 parameter \(period\), got 0"),
        ("period", (b"1", b"2"), "got 2"),
        ("differential", (), r"takes 1 parameter \(difference\)"),
        ("event-rate", (b"1",), r"takes 2 parameters \(shortest-period longest-period\)"),
        ("differential-rate", (b"1", b"2"), "takes 3 parameters"),
    ],
)
def test_wrong_number_of_params(name, params, match, sched, informs):
    with pytest.raises(SamplingError, match=match):
        make(name, int_sensor(), *params, sched=sched, informs=informs)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("period", (b"0",), "period must be positive"),
        ("period", (b"-1",), "period must be positive"),
        ("period", (b"soon",), "period must be a number"),
        ("period", (b"nan",), "period must be a number"),
        ("period", (float("inf"),), "period must be finite"),
        ("period", (True,), "period must be a number"),
        ("differential", (b"0",), "difference must be positive"),
        ("differential", (b"-3",), "difference must be positive"),
        ("differential", (b"1.5",), "difference must be an integer for integer sensors"),
        ("differential", (1.5,), "difference must be an integer for integer sensors"),
        ("event-rate", (b"-1", b"2"), "shortest-period must not be negative"),
        ("event-rate", (b"0", b"0"), "longest-period must be positive"),
        ("event-rate", (b"3", b"2"), "shortest-period must not exceed longest-period"),
        ("event-rate", (b"x", b"2"), "shortest-period must be a number"),
        ("differential-rate", (b"0", b"1", b"2"), "difference must be positive"),
        ("differential-rate", (b"1", b"3", b"2"), "must not exceed"),
    ],
)
def test_bad_params(name, params, match, sched, informs):
    with pytest.raises(SamplingError, match=match):
        make(name, int_sensor(), *params, sched=sched, informs=informs)


@pytest.mark.parametrize("name", ["differential", "differential-rate"])
@pytest.mark.parametrize(
    "sensor",
    [
        Sensor.boolean("b"),
        Sensor.string("s"),
        Sensor.discrete("d", params=["a"]),
        Sensor.lru("l"),
        Sensor.address("a"),
    ],
)
def test_differential_needs_a_numeric_sensor(name, sensor, sched, informs):
    params = (b"1",) if name == "differential" else (b"1", b"0", b"1")
    with pytest.raises(SamplingError, match=f"{name} strategy needs a numeric sensor"):
        make(name, sensor, *params, sched=sched, informs=informs)


def test_differential_difference_types(sched, informs):
    f = make("differential", Sensor.float("f"), b"0.25", sched=sched, informs=informs)
    assert f._difference == 0.25
    with pytest.raises(SamplingError, match="difference must be a number for float sensors"):
        make("differential", Sensor.float("f"), b"lots", sched=sched, informs=informs)
    t = make("differential", Sensor.timestamp("t"), b"1500", sched=sched, informs=informs, major=4)
    assert t._difference == 1.5  # v4 milliseconds


@pytest.mark.parametrize(
    ("name", "params"), [("event-rate", (b"1", b"2")), ("differential-rate", (b"1", b"1", b"2"))]
)
def test_v5_strategies_refused_for_v4(name, params, sched, informs):
    with pytest.raises(SamplingError, match=f"'{name}' strategy needs KATCP version 5"):
        make(name, int_sensor(), *params, sched=sched, informs=informs, major=4)


def test_timer_strategies_without_a_scheduler_use_the_current_ioloop(informs):
    # katcp-python's binding: the current tornado IOLoop's clock and timers.
    from tornado.ioloop import IOLoop

    async def main():
        loop = IOLoop.current()
        strategy = SampleStrategy.get_strategy("period", informs, int_sensor(), b"0.01")
        strategy.start()
        assert informs.sent == []  # started on the loop's next turn, as katcp-python does
        deadline = loop.time() + 5
        while len(informs.sent) < 3 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        strategy.cancel()
        assert len(informs.sent) >= 3

    asyncio.run(main())
    # event needs no timer: outside a loop it stays pure and reports at once
    strategy = SampleStrategy.get_strategy("event", informs, int_sensor())
    before = len(informs.sent)
    strategy.start()
    assert len(informs.sent) == before + 1


def test_formatted_params_echo_what_was_sent(sched, informs):
    assert make(
        "period", int_sensor(), b"0.50", sched=sched, informs=informs
    ).get_sampling_formatted() == (
        b"period",
        [b"0.50"],
    )
    s = make("event-rate", int_sensor(), 0, 2.5, sched=sched, informs=informs)
    assert s.get_sampling_formatted() == (b"event-rate", [b"0", b"2.5"])
    s = make("period", int_sensor(), "3", sched=sched, informs=informs)
    assert s.get_sampling_formatted() == (b"period", [b"3"])


# --- none and auto -----------------------------------------------------------------------


def test_none_sends_nothing_and_does_not_observe(sched, informs):
    sensor = int_sensor()
    strategy = make("none", sensor, sched=sched, informs=informs)
    strategy.start()
    sensor.set_value(5)
    sched.advance(100)
    assert informs.sent == [] and sensor._observers == ()


def test_auto_reports_at_start_and_every_update(sched, informs):
    sensor = int_sensor(1)
    strategy = make("auto", sensor, sched=sched, informs=informs)
    strategy.start()
    assert informs.sent == [(100.0, sensor.read())]
    sensor.set_value(1)  # auto reports even an unchanged value
    sensor.set_value(2)
    assert informs.values == [1, 1, 2]
    strategy.cancel()
    sensor.set_value(3)
    assert informs.values == [1, 1, 2]
    assert sensor._observers == ()


def test_start_twice_and_start_after_cancel_refused(sched, informs):
    strategy = make("auto", int_sensor(), sched=sched, informs=informs)
    strategy.start()
    with pytest.raises(RuntimeError):
        strategy.start()
    strategy.cancel()
    strategy.cancel()  # harmless
    other = make("auto", int_sensor(), sched=sched, informs=informs)
    other.cancel()
    with pytest.raises(RuntimeError):
        other.start()


def test_inform_errors_are_logged_not_raised(sched, caplog):
    def broken(sensor, reading):
        raise RuntimeError("client gone")

    sensor = int_sensor()
    strategy = SampleStrategy.get_strategy(
        "auto", broken, sensor, clock=sched.time, scheduler=sched
    )
    with caplog.at_level(logging.ERROR, logger="katcp.sampling"):
        strategy.start()
        sensor.set_value(2)  # must not raise into the setter
    assert sum("inform callback failed" in r.getMessage() for r in caplog.records) == 2


def test_observe_false_leaves_forwarding_to_the_caller(sched, informs):
    sensor = int_sensor()
    strategy = make("event", sensor, sched=sched, informs=informs, observe=False)
    strategy.start()
    sensor.set_value(7)
    assert sensor._observers == () and informs.values == [0]
    strategy.update(sensor, sensor.read())
    assert informs.values == [0, 7]


# --- period ------------------------------------------------------------------------------


def test_period_reports_current_reading_on_a_fixed_grid(sched, informs):
    sensor = int_sensor(1)
    strategy = make("period", sensor, b"0.5", sched=sched, informs=informs)
    strategy.start()
    sensor.set_value(2)
    sensor.set_value(3)  # updates alone send nothing
    assert informs.values == [1]
    sched.advance(1.6)
    assert informs.times == [100.0, 100.5, 101.0, 101.5]
    assert informs.values == [1, 3, 3, 3]
    strategy.cancel()
    assert sched.pending == 0
    sched.advance(10)
    assert len(informs.sent) == 4


def test_period_in_milliseconds_for_v4(sched, informs):
    """Appendix A.1.3: ``?sensor-sampling acs.mode period 2000`` (v4) samples every 2 s."""
    strategy = make("period", int_sensor(), b"2000", sched=sched, informs=informs, major=4)
    assert strategy.period == 2.0
    assert strategy.get_sampling_formatted() == (b"period", [b"2000"])
    strategy.start()
    sched.advance(4)
    assert informs.times == [100.0, 102.0, 104.0]


def test_period_skips_missed_ticks_after_a_stall(informs):
    sched = ManualScheduler(start=0.0)
    lag = [0.0]
    strategy = SampleStrategy.get_strategy(
        "period", informs, int_sensor(), b"1", clock=lambda: sched.time() + lag[0], scheduler=sched
    )
    strategy.start()
    sched.advance(1)
    lag[0] = 5.5  # the loop stalled: the tick due at 2 runs when the clock says 7.5
    sched.advance(1)
    assert len(informs.sent) == 3
    assert sched.next_due() == 8.5  # one tick later, not a burst of missed ones
    assert sched.pending == 1


def test_period_reuses_one_callback_object(informs):
    seen = []

    class Spy(ManualScheduler):
        def call_at(self, when, callback):
            seen.append(callback)
            return super().call_at(when, callback)

    sched = Spy()
    strategy = SampleStrategy.get_strategy(
        "period", informs, int_sensor(), 1, clock=sched.time, scheduler=sched
    )
    strategy.start()
    sched.advance(5)
    assert len(seen) == 6 and all(cb is seen[0] for cb in seen)


def test_many_period_strategies(informs):
    sched = ManualScheduler()
    sensors = [Sensor.integer(f"s{k}") for k in range(2000)]
    strategies = [
        SampleStrategy.get_strategy("period", informs, s, 1, clock=sched.time, scheduler=sched)
        for s in sensors
    ]
    for strategy in strategies:
        strategy.start()
    sched.advance(3)
    assert len(informs.sent) == 2000 * 4
    for strategy in strategies:
        strategy.cancel()
    assert sched.pending == 0


# --- event and differential --------------------------------------------------------------


def test_event_reports_value_and_status_changes_only(sched, informs):
    sensor = int_sensor(1)
    make("event", sensor, sched=sched, informs=informs).start()
    sensor.set_value(1)
    sensor.set_value(2)
    sensor.set_value(2)
    sensor.set_value(2, Sensor.WARN)
    sensor.set_value(1, Sensor.WARN)
    assert [(r.value, r.status) for _, r in informs.sent] == [
        (1, Sensor.NOMINAL),
        (2, Sensor.NOMINAL),
        (2, Sensor.WARN),
        (1, Sensor.WARN),
    ]


def test_differential_compares_with_last_reported_value(sched, informs):
    sensor = Sensor.float("f")
    sensor.set_value(10.0)
    make("differential", sensor, b"1.0", sched=sched, informs=informs).start()
    for v in (10.5, 11.0, 11.5, 9.5, 8.4):
        sensor.set_value(v)
    # 11.5 is 1.5 from 10.0: reported; 9.5 is 2.0 from 11.5: reported; 8.4 is 1.1 from 9.5
    assert informs.values == [10.0, 11.5, 9.5, 8.4]
    sensor.set_value(8.4, Sensor.ERROR)
    assert informs.values[-1] == 8.4 and informs.sent[-1][1].status == Sensor.ERROR


def test_differential_exactly_difference_is_not_more(sched, informs):
    sensor = int_sensor(0)
    make("differential", sensor, b"2", sched=sched, informs=informs).start()
    sensor.set_value(2)
    sensor.set_value(3)
    assert informs.values == [0, 3]


def test_differential_survives_unchecked_values(sched, informs):
    sensor = int_sensor(0)
    make("differential", sensor, b"2", sched=sched, informs=informs).start()
    sensor.set(2.0, Sensor.FAILURE, None)
    sensor.set(3.0, Sensor.FAILURE, None)
    sensor.set(4.0, Sensor.NOMINAL, 5)
    assert informs.values == [0, None, 5]


def test_differential_timestamp_sensor(sched, informs):
    sensor = Sensor.timestamp("t")
    sensor.set_value(1000.0)
    make("differential", sensor, b"60", sched=sched, informs=informs).start()
    sensor.set_value(1030.0)
    sensor.set_value(1061.0)
    assert informs.values == [1000.0, 1061.0]


# --- event-rate and differential-rate ----------------------------------------------------


def test_event_rate_holds_back_changes_within_shortest_period(sched, informs):
    sensor = int_sensor(0)
    make("event-rate", sensor, b"1", b"10", sched=sched, informs=informs).start()
    sched.advance(0.25)
    sensor.set_value(1)
    sched.advance(0.25)
    sensor.set_value(2)
    assert informs.values == [0]
    sched.advance(1)  # t = 101.5
    # one report, at last report + shortest-period, carrying the newest value
    assert informs.sent[1:] == [(101.0, sensor.read())]
    sensor.set_value(3)  # 0.5 s after the last report: held back again
    assert len(informs.sent) == 2
    sched.advance(0.5)
    assert informs.sent[2:] == [(102.0, sensor.read())]
    sched.advance(1.25)  # t = 103.25
    sensor.set_value(4)  # 1.25 s after the last report: sent at once
    assert informs.sent[3:] == [(103.25, sensor.read())]


def test_event_rate_drops_a_change_that_went_back(sched, informs):
    sensor = int_sensor(0)
    make("event-rate", sensor, b"1", b"10", sched=sched, informs=informs).start()
    sensor.set_value(1)
    sensor.set_value(0)
    sched.advance(2)
    assert informs.values == [0]


def test_event_rate_reports_at_least_every_longest_period(sched, informs):
    sensor = int_sensor(0)
    make("event-rate", sensor, b"0", b"5", sched=sched, informs=informs).start()
    sched.advance(12)
    assert informs.times == [100.0, 105.0, 110.0]
    sched.advance(1)  # t = 113
    sensor.set_value(1)  # shortest-period 0: at once, and the periodic timer moves on
    sched.advance(6)
    assert informs.times == [100.0, 105.0, 110.0, 113.0, 118.0]
    assert sched.pending == 1


def test_event_rate_timer_is_not_rescheduled_per_report(informs):
    calls = []

    class Spy(ManualScheduler):
        def call_at(self, when, callback):
            calls.append(when)
            return super().call_at(when, callback)

    sched = Spy()
    sensor = int_sensor(0)
    SampleStrategy.get_strategy(
        "event-rate", informs, sensor, 0, 100, clock=sched.time, scheduler=sched
    ).start()
    for v in range(1, 1000):
        sensor.set_value(v)
    assert len(informs.sent) == 1000
    assert calls == [100.0]


def test_event_rate_cancel_stops_everything(sched, informs):
    sensor = int_sensor(0)
    strategy = make("event-rate", sensor, b"1", b"2", sched=sched, informs=informs)
    strategy.start()
    sensor.set_value(1)  # held back: a short timer is pending
    strategy.cancel()
    assert sched.pending == 0
    sensor.set_value(2)
    sched.advance(10)
    assert informs.values == [0]


def test_event_rate_in_seconds_per_spec(sched, informs):
    strategy = make("event-rate", int_sensor(), b"0.5", b"1.5", sched=sched, informs=informs)
    strategy.start()
    sched.advance(3)
    assert informs.times == [100.0, 101.5, 103.0]


def test_differential_rate(sched, informs):
    sensor = int_sensor(0)
    make("differential-rate", sensor, b"5", b"1", b"10", sched=sched, informs=informs).start()
    sensor.set_value(3)  # within difference: ignored
    sensor.set_value(6)  # beyond difference but too soon: held back
    sched.advance(0.5)
    sensor.set_value(7)
    assert informs.values == [0]
    sched.advance(0.5)
    assert informs.sent[-1] == (101.0, sensor.read())
    sensor.set_value(4, Sensor.WARN)  # status change counts even within difference
    sched.advance(1)
    assert informs.values == [0, 7, 4]
    sched.advance(10)
    assert informs.times[-1] == 112.0  # longest-period after the last report at 102


class CountingScheduler(ManualScheduler):
    """Refuses to schedule more than `limit` timers, to catch a strategy re-arming in a loop."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.calls = 0
        self.limit = limit

    def call_at(self, when, callback):
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError("strategy keeps re-arming its timer")
        return super().call_at(when, callback)


@pytest.mark.parametrize("name", ["period", "event-rate"])
def test_timers_fired_slightly_early_still_report(name, informs):
    """Batching schedulers (the server's) run timers up to a millisecond before they are due."""
    sched = CountingScheduler(limit=20)
    params = (b"5",) if name == "period" else (b"0", b"5")
    strategy = SampleStrategy.get_strategy(
        name, informs, int_sensor(), *params, clock=lambda: sched.time() - 0.001, scheduler=sched
    )
    strategy.start()
    sched.advance(12)
    assert len(informs.sent) == 3


# --- versions and loop binding ---------------------------------------------------------------


def test_strategy_exists_is_the_one_version_table():
    from katcpx.flags import ProtocolFlags
    from katcpx.sampling import strategy_exists

    for major, allowed in ((4, ProtocolFlags.STRATEGIES_V4), (5, ProtocolFlags.STRATEGIES_V5)):
        for raw in SampleStrategy.SAMPLING_LOOKUP.values():
            name = raw.decode()
            assert strategy_exists(raw, major) == strategy_exists(name, major) == (name in allowed)
    assert not strategy_exists("event-rate", 4) and strategy_exists("event-rate", 5)


def test_loop_bound_strategy_takes_updates_from_other_threads_onto_its_loop():
    """katcp-python's binding: the strategy's LoopBinding moves updates onto the loop."""
    import threading

    from tornado.ioloop import IOLoop

    threads: list[int] = []
    sensor = int_sensor()

    async def main():
        loop_thread = threading.get_ident()
        got = asyncio.Event()

        def inform(sensor, reading):
            threads.append(threading.get_ident())
            if reading.value == 7:
                got.set()

        strategy = SampleStrategy.get_strategy("auto", inform, sensor, ioloop=IOLoop.current())
        strategy.start()
        while strategy.loop_binding is None or not strategy.loop_binding.bound:
            await asyncio.sleep(0.001)
        setter = threading.Thread(target=sensor.set_value, args=(7,))
        setter.start()
        await asyncio.wait_for(got.wait(), 5)
        setter.join(5)
        strategy.cancel()
        assert strategy.loop_binding.on_loop()
        assert set(threads) == {loop_thread}

    asyncio.run(main())
