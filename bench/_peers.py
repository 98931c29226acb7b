"""Shared harness for the benchmarks: run code in the katcp-python venv, print result tables.

A benchmark measures katcpx and aiokatcp in its own process and katcp-python 0.9.3 (which
needs tornado < 5) in a subprocess of the venv built by ``tests/peers/venv.py``. Usage::

    from _peers import Row, print_table, run_katcp_python

    result = run_katcp_python(SNIPPET, payload={"lines": [...]})
    print_table("parse", [Row("katcpx", 1e6), Row("aiokatcp", 5e5), ...], baseline="aiokatcp")

Run benchmarks from the repository root: ``python bench/bench_codec.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# The venv builder lives with the test peers; benchmarks import it the way the tests do.
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))

from peers.venv import ensure_katcp_python_venv  # noqa: E402

__all__ = [
    "BENCH_DIR",
    "REPO_ROOT",
    "Row",
    "check_target",
    "ensure_katcp_python_venv",
    "print_table",
    "run_katcp_python",
]


def run_katcp_python(code: str, payload: Any = None, timeout: float = 600.0) -> Any:
    """Run ``code`` with the katcp-python 0.9.3 venv's python and return its JSON result.

    The code reads ``payload`` as JSON from stdin (``json.load(sys.stdin)``) and must print
    its result as one JSON document on the **last** line of stdout. ``bench/`` is on its
    ``PYTHONPATH``, so it can ``from _timing import best_rate``.

    Parameters
    ----------
    code : str
        Python source to run (``python -c``).
    payload
        JSON-able input, written to the subprocess's stdin.
    timeout : float
        Seconds before the subprocess is killed.

    Returns
    -------
    Any
        The decoded last line of stdout.

    Raises
    ------
    RuntimeError
        If the subprocess fails or prints no JSON; the message includes its stderr.
    """
    python = ensure_katcp_python_venv()
    # Replace, not extend, PYTHONPATH: the caller's may point at tornado 6.
    env = dict(os.environ, PYTHONPATH=str(BENCH_DIR), PYTHONHASHSEED="0")
    proc = subprocess.run(
        [str(python), "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"katcp-python snippet failed (exit status {proc.returncode})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    try:
        return json.loads(lines[-1])
    except ValueError as exc:
        raise RuntimeError(f"katcp-python snippet printed no JSON: {lines[-1]!r}") from exc


@dataclass
class Row:
    """One implementation's result in a table: ``value`` is a rate (higher is better)."""

    name: str
    value: float | None
    note: str = ""


def print_table(
    title: str, rows: Sequence[Row], baseline: str = "aiokatcp", unit: str = "msg/s"
) -> dict[str, float | None]:
    """Print ``rows`` with their ratio to the ``baseline`` row and return those ratios.

    Parameters
    ----------
    title : str
        Heading of the table.
    rows : sequence of Row
        Results; a ``None`` value prints as ``n/a``.
    baseline : str
        Name of the row that ratios are relative to.
    unit : str
        Unit of the values.

    Returns
    -------
    dict
        ``{row name: value / baseline value}`` (``None`` where either is missing).
    """
    base = next((r.value for r in rows if r.name == baseline), None)
    ratios: dict[str, float | None] = {}
    width = max(len(r.name) for r in rows)
    print(f"\n{title}")
    print(f"  {'implementation':<{width}}  {unit:>14}  {'vs ' + baseline:>12}")
    for row in rows:
        ratio = row.value / base if row.value is not None and base else None
        ratios[row.name] = ratio
        value = f"{row.value:14,.0f}" if row.value is not None else f"{'n/a':>14}"
        rel = f"{ratio:11.2f}x" if ratio is not None else f"{'n/a':>12}"
        note = f"  {row.note}" if row.note else ""
        print(f"  {row.name:<{width}}  {value}  {rel}{note}")
    return ratios


def check_target(label: str, ratio: float | None, target: float) -> bool:
    """Print ``PASS``/``MISS`` for ``ratio >= target`` and return whether it passed."""
    passed = ratio is not None and ratio >= target
    shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
    print(f"  {'PASS' if passed else 'MISS'}  {label}: {shown} (target >= {target:.2f}x)")
    return passed
