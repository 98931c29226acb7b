"""Command-line options shared by ``katcpx-exporter`` and ``katcpx-web``'s ``/metrics``.

Each type function raises :class:`argparse.ArgumentTypeError`, so a bad value is an
argparse error naming the option and what is allowed, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import re

__all__ = [
    "DEFAULT_MAX_STRING_LENGTH",
    "LOG_LEVELS",
    "add_metrics_options",
    "configure_logging",
    "log_level",
    "port_number",
    "positive_seconds",
    "regex",
    "whole_number",
]

#: Levels ``--log-level`` accepts (any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: String sensor values longer than this are not exported as a label (see docs/monitoring.md).
DEFAULT_MAX_STRING_LENGTH = 64


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text!r}")
    return value


def log_level(text: str) -> str:
    """A logging level name, in any case; returned upper-case."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r}; choose one of {', '.join(LOG_LEVELS)} (any case)"
        )
    return level


def regex(text: str) -> str:
    """A valid regular expression (checked now, so a bad one is an argparse error)."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {exc}") from None
    return text


def whole_number(text: str, low: int = 0, high: int | None = None) -> int:
    """A whole number from `low` to `high` (inclusive; None: no upper bound)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"{low} to {high}"
        raise argparse.ArgumentTypeError(f"{value} out of range ({span})")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: a free one)."""
    return whole_number(text, 0, 65535)


def add_metrics_options(parser: argparse.ArgumentParser, default: object = "") -> None:
    """Add ``--device-filter``, ``--sensor-filter`` and ``--max-string-length``.

    Parameters
    ----------
    parser
        The parser to extend.
    default
        Default of the filters (``""`` matches everything; katcpx-web passes None so that a
        config file's value can apply).
    """
    parser.add_argument(
        "--device-filter",
        type=regex,
        default=default,
        metavar="REGEX",
        help="/metrics: only devices whose name matches (re.search; default: all)",
    )
    parser.add_argument(
        "--sensor-filter",
        type=regex,
        default=default,
        metavar="REGEX",
        help="/metrics: only sensors whose name matches (re.search; default: all)",
    )
    parser.add_argument(
        "--max-string-length",
        type=whole_number,
        default=DEFAULT_MAX_STRING_LENGTH if default == "" else None,
        metavar="N",
        help="/metrics: string sensor values longer than N characters get no "
        f"katcp_sensor_string_info series (default {DEFAULT_MAX_STRING_LENGTH}; 0: only empty values)",
    )


def configure_logging(level: str, quiet_access: bool = True) -> None:
    """Log at `level` to stderr; tornado's per-request access lines only at DEBUG.

    Prometheus scrapes every few seconds; an INFO line per scrape would drown the log.
    """
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if quiet_access and logging.getLogger().level > logging.DEBUG:
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
