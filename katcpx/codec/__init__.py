"""The KATCP wire codec: the text of every value on the wire, for KATCP v4 and v5 (no I/O).

One package decides how each kind of value is written and read, so that messages, the
parser, sensors, kattypes, ``#log``, operations and the clients agree:

- message names and ids (spec 5.1 section 2.1) and argument escapes (section 3.1);
- Python values as message arguments (:func:`format_argument`);
- timestamps and every other time quantity: seconds from KATCP v5, milliseconds before
  (spec 5.1 section 1.1, section 7.1 table 9); the exact decimal that parses back to the
  same float, for every producer (:func:`format_timestamp`);
- floats, addresses and the sensor values of each KATCP type (:data:`VALUE_CODECS`, a
  registry of checker, formatter and parser per type name, in the spirit of aiokatcp's
  single type registry).

The two loops that look at every byte, escaping a line's arguments and splitting and
unescaping a received line, have optional C speedups (:data:`SPEEDUPS`); the pure-Python
codec gives the same results and errors without them.
"""

from ._lines import (
    CACHED_NAME_MAX,
    MAX_MID,
    UNESCAPES,
    check_mid,
    check_name,
    encode_text,
    escape_arguments,
    format_argument,
    unescape_argument,
    unescape_arguments,
)
from ._native import SPEEDUPS, fast_format_line, fast_split_line
from ._values import (
    FLOAT_TS_KATCP_MAJOR,
    LRU_CONSTANTS,
    LRU_ERROR,
    LRU_NOMINAL,
    LRU_VALUES,
    SPECIAL_BYTES,
    VALUE_CODECS,
    ValueCodec,
    as_text,
    check_address,
    check_sensor_name,
    check_string,
    escape_argument,
    escape_specials,
    format_address,
    format_float,
    format_timestamp,
    parse_address,
    parse_float,
    parse_timestamp,
    show_argument,
    show_wire,
    type_name,
    wire_argument,
)

__all__ = [
    "CACHED_NAME_MAX",
    "MAX_MID",
    "SPECIAL_BYTES",
    "UNESCAPES",
    "check_mid",
    "check_name",
    "encode_text",
    "escape_argument",
    "escape_arguments",
    "format_argument",
    "unescape_argument",
    "unescape_arguments",
    "wire_argument",
    "FLOAT_TS_KATCP_MAJOR",
    "LRU_CONSTANTS",
    "LRU_ERROR",
    "LRU_NOMINAL",
    "LRU_VALUES",
    "VALUE_CODECS",
    "ValueCodec",
    "as_text",
    "check_address",
    "check_sensor_name",
    "check_string",
    "format_address",
    "format_float",
    "format_timestamp",
    "parse_address",
    "parse_float",
    "parse_timestamp",
    "type_name",
    "show_argument",
    "show_wire",
    "escape_specials",
    "SPEEDUPS",
    "fast_format_line",
    "fast_split_line",
]
