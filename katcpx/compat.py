"""katcp-python's ``katcp.compat``: small text/bytes helpers kept for code that imports them.

katcpx runs only on Python 3, so these are the Python 3 meanings of katcp-python 0.9.3's
helpers (``str`` is text, ``bytes`` is binary).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "byte_chars",
    "convert_method_name",
    "encode_utf8_with_error_log",
    "ensure_native_str",
    "is_bytes",
    "is_text",
]


def ensure_native_str(value: str | bytes) -> str:
    """Return ``value`` as ``str``, decoding bytes as UTF-8.

    Raises
    ------
    TypeError
        If ``value`` is neither ``str`` nor ``bytes``.
    UnicodeDecodeError
        If bytes are not valid UTF-8.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"Invalid type for string conversion: {type(value)}")


def byte_chars(byte_string: bytes) -> list[bytes]:
    """Split ``byte_string`` into one-byte ``bytes`` objects (not ints)."""
    return [byte_string[i : i + 1] for i in range(len(byte_string))]


def is_bytes(value: Any) -> bool:
    """Return whether ``value`` is ``bytes``."""
    return isinstance(value, bytes)


def is_text(value: Any) -> bool:
    """Return whether ``value`` is ``str``."""
    return isinstance(value, str)


def encode_utf8_with_error_log(arg: str) -> bytes:
    """Encode ``arg`` as UTF-8; unencodable characters (lone surrogates) become ``?``.

    The substitution is logged as an error on the ``katcp`` logger, as katcp-python does.
    """
    try:
        return arg.encode("utf-8")
    except UnicodeEncodeError:
        logging.getLogger("katcp").error(
            "Error encoding message argument to byte str! Replacing bad characters with '?'."
        )
        return arg.encode("utf-8", "replace")


def convert_method_name(prefix: str, name: str) -> str:
    """Turn a method name into a KATCP message name: ``request_foo_bar`` -> ``foo-bar``."""
    return name[len(prefix) :].replace("_", "-")
