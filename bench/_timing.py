"""Timing and checking helpers shared by every benchmark process.

Stdlib only: the katcp-python half of a benchmark imports this module inside the katcp-python
venv (``bench/`` is on its ``PYTHONPATH``), so all implementations are measured the same way.
"""

from __future__ import annotations

import gc
import hashlib
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "best_rate",
    "best_rates",
    "digest_messages",
    "interleaved_timings",
    "paired_speedup",
]


def best_rate(run: Callable[[], Any], items: int, repeats: int = 5, min_time: float = 0.2) -> float:
    """Return the best rate (items per second) of ``run()`` over ``repeats`` timings.

    Each timing calls ``run()`` as many times as needed to last at least ``min_time`` seconds
    (calibrated on a first call), so short runs are not swamped by timer resolution. The best
    timing is the one least disturbed by the rest of the machine. The garbage collector is
    paused while timing, as :mod:`timeit` does.

    Parameters
    ----------
    run : callable
        Does one unit of work over ``items`` items.
    items : int
        Items (messages) handled by one call.
    repeats : int
        Number of timings.
    min_time : float
        Shortest duration of one timing, in seconds.

    Returns
    -------
    float
        Items per second of the fastest timing.
    """
    start = time.perf_counter()
    run()  # warm-up and calibration
    once = max(time.perf_counter() - start, 1e-9)
    loops = max(1, int(min_time / once) + 1)
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(loops):
                run()
            best = min(best, (time.perf_counter() - start) / loops)
    finally:
        if gc_was_enabled:
            gc.enable()
    return items / best


def interleaved_timings(
    runs: dict[str, tuple[Callable[[], Any], int]], repeats: int = 5, min_time: float = 0.2
) -> dict[str, list[float]]:
    """Time several contenders in turn within each round; return seconds per call, per round.

    Interleaving means a burst of load from elsewhere on the machine slows every contender
    in that round rather than only one, so per-round ratios stay honest on a busy host.

    Parameters
    ----------
    runs : dict
        ``{name: (run, items)}``; ``items`` is unused here but keeps the shape of
        :func:`best_rates`.
    repeats : int
        Number of rounds.
    min_time : float
        Shortest duration of one timing, in seconds.

    Returns
    -------
    dict
        ``{name: [seconds per call in round 0, round 1, ...]}``.
    """
    loops = {}
    for name, (run, _items) in runs.items():
        start = time.perf_counter()
        run()  # warm-up and calibration
        loops[name] = max(1, int(min_time / max(time.perf_counter() - start, 1e-9)) + 1)
    timings: dict[str, list[float]] = {name: [] for name in runs}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, (run, _items) in runs.items():
                start = time.perf_counter()
                for _ in range(loops[name]):
                    run()
                timings[name].append((time.perf_counter() - start) / loops[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def best_rates(
    runs: dict[str, tuple[Callable[[], Any], int]], repeats: int = 5, min_time: float = 0.2
) -> dict[str, float]:
    """Like :func:`best_rate` for several contenders, timed by :func:`interleaved_timings`.

    Returns
    -------
    dict
        ``{name: items per second of the fastest timing}``.
    """
    timings = interleaved_timings(runs, repeats, min_time)
    return {name: runs[name][1] / min(timings[name]) for name in runs}


def paired_speedup(timings: dict[str, list[float]], name: str, baseline: str) -> float:
    """Median over rounds of ``baseline``'s time over ``name``'s time in the same round.

    With :func:`interleaved_timings` this compares contenders under the same load in every
    round, which is steadier than best-against-best on a busy machine.
    """
    return statistics.median(b / a for a, b in zip(timings[name], timings[baseline], strict=True))


def digest_messages(messages: Iterable[tuple[str, str, list[bytes], str | None]]) -> str:
    """Return a SHA-256 over ``(type char, name, arguments, mid)`` tuples.

    Benchmarks use it to prove that every implementation parsed a corpus to the same
    messages before comparing their speed.
    """
    digest = hashlib.sha256()
    for type_char, name, arguments, mid in messages:
        digest.update(f"{type_char}|{name}|{mid or ''}|{len(arguments)}|".encode())
        for arg in arguments:
            digest.update(len(arg).to_bytes(4, "big") + arg)
    return digest.hexdigest()
