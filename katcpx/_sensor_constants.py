"""katcp-python's ``Sensor`` constants: types, statuses, lru values and their codecs.

:class:`katcpx.sensor.Sensor` inherits them; they are kept here so that the sensor module
holds behaviour only.
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

from .codec import (
    LRU_CONSTANTS,
    LRU_ERROR,
    LRU_NOMINAL,
    LRU_VALUES,
    VALUE_CODECS,
    ValueCodec,
)
from .kattypes import (
    Address,
    Bool,
    Discrete,
    Float,
    Int,
    KatcpType,
    Lru,
    Str,
    Timestamp,
)

__all__ = ["SensorConstants"]


class SensorConstants:
    """The class constants of katcp-python's ``Sensor``, with its values."""

    # Type constants, with katcp-python's values.
    INTEGER: ClassVar[int] = 0
    FLOAT: ClassVar[int] = 1
    BOOLEAN: ClassVar[int] = 2
    LRU: ClassVar[int] = 3
    DISCRETE: ClassVar[int] = 4
    STRING: ClassVar[int] = 5
    TIMESTAMP: ClassVar[int] = 6
    ADDRESS: ClassVar[int] = 7

    #: Type constant to the type's KATCP name.
    SENSOR_TYPE_NAMES: ClassVar[dict[int, str]] = {
        INTEGER: "integer",
        FLOAT: "float",
        BOOLEAN: "boolean",
        LRU: "lru",
        DISCRETE: "discrete",
        STRING: "string",
        TIMESTAMP: "timestamp",
        ADDRESS: "address",
    }
    #: KATCP type name to type constant.
    SENSOR_TYPE_LOOKUP: ClassVar[dict[str, int]] = {v: k for k, v in SENSOR_TYPE_NAMES.items()}
    #: Type constant to (kattype class, default value), as in katcp-python 0.9.3.
    SENSOR_TYPES: ClassVar[dict[int, tuple[type[KatcpType], Any]]] = {
        INTEGER: (Int, 0),
        FLOAT: (Float, 0.0),
        BOOLEAN: (Bool, False),
        LRU: (Lru, Lru.LRU_NOMINAL),
        DISCRETE: (Discrete, "unknown"),
        STRING: (Str, ""),
        TIMESTAMP: (Timestamp, 0.0),
        ADDRESS: (Address, Address.NULL),
    }
    #: The kattype that formats and parses reading timestamps (katcp-python 0.9.3's name).
    TIMESTAMP_TYPE: ClassVar[Timestamp] = Timestamp()
    #: Python types accepted in place of a type constant.
    SENSOR_SHORTCUTS: ClassVar[dict[type, int]] = {
        int: INTEGER,
        builtins.float: FLOAT,
        str: STRING,
        bool: BOOLEAN,
    }

    # Status constants.
    UNKNOWN: ClassVar[int] = 0
    NOMINAL: ClassVar[int] = 1
    WARN: ClassVar[int] = 2
    ERROR: ClassVar[int] = 3
    FAILURE: ClassVar[int] = 4
    UNREACHABLE: ClassVar[int] = 5
    INACTIVE: ClassVar[int] = 6

    #: Status constant to status name as bytes (what goes on the wire).
    STATUSES_RAW: ClassVar[dict[int, bytes]] = {
        UNKNOWN: b"unknown",
        NOMINAL: b"nominal",
        WARN: b"warn",
        ERROR: b"error",
        FAILURE: b"failure",
        UNREACHABLE: b"unreachable",
        INACTIVE: b"inactive",
    }
    #: Status constant to status name.
    STATUSES: ClassVar[dict[int, str]] = {k: v.decode() for k, v in STATUSES_RAW.items()}
    #: Status name to status constant.
    STATUS_NAMES: ClassVar[dict[str, int]] = {v: k for k, v in STATUSES.items()}
    #: Status name as bytes to status constant.
    STATUS_NAMES_RAW: ClassVar[dict[bytes, int]] = {v: k for k, v in STATUSES_RAW.items()}
    #: What each status is sent as to a KATCP v4 peer (unreachable and inactive are v5).
    STATUSES_RAW_V4: ClassVar[dict[int, bytes]] = {
        **STATUSES_RAW,
        UNREACHABLE: b"failure",
        INACTIVE: b"unknown",
    }

    # LRU values (the lru type is deprecated since KATCP v5).
    LRU_NOMINAL: ClassVar[int] = LRU_NOMINAL
    LRU_ERROR: ClassVar[int] = LRU_ERROR
    LRU_VALUES: ClassVar[dict[int, bytes]] = LRU_VALUES
    LRU_CONSTANTS: ClassVar[dict[bytes, int]] = LRU_CONSTANTS

    #: Per type constant: its checker, formatter, parser and default (``katcpx.codec``).
    CODECS: ClassVar[dict[int, ValueCodec]] = {
        code: VALUE_CODECS[name] for code, name in SENSOR_TYPE_NAMES.items()
    }
