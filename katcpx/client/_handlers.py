"""Collect ``request_*``, ``inform_*`` and ``reply_*`` handler methods of a client class.

This is the client's stand-in for katcp-python's ``DeviceMetaclass``: it works through
``__init_subclass__`` so that client classes need no metaclass, and unlike the server's it
neither requires docstrings nor prepares annotated request handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import MissingDocstringError

Handler = Callable[..., Any]

#: Method-name prefix -> attribute name of the per-class table.
_PREFIXES = (
    ("request_", "_request_handlers"),
    ("inform_", "_inform_handlers"),
    ("reply_", "_reply_handlers"),
)


def collect_handlers(cls: type) -> None:
    """Build ``cls._request_handlers``, ``_inform_handlers`` and ``_reply_handlers``.

    Each table maps a KATCP message name (underscores in the method name become dashes) to
    the plain function, looked up through the MRO so subclasses override their bases.

    Raises
    ------
    MissingDocstringError
        A handler has no docstring: refused as the server's metaclass does (a ``TypeError``,
        and an ``AssertionError`` as katcp-python's ``DeviceMetaclass`` raises).
    """
    for prefix, table_name in _PREFIXES:
        table: dict[str, Handler] = {}
        for attr in dir(cls):
            if not attr.startswith(prefix) or attr == "reply_inform":
                continue
            func = getattr(cls, attr, None)
            if callable(func) and not isinstance(func, type):
                if func.__doc__ is None:
                    raise MissingDocstringError(
                        prefix[:-1].capitalize(),
                        attr[len(prefix) :].replace("_", "-"),
                        f"{cls.__name__}.{attr}",
                    )
                table[attr[len(prefix) :].replace("_", "-")] = func
        setattr(cls, table_name, table)
