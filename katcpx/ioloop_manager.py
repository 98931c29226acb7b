"""katcp-python's ``katcp.ioloop_manager`` layout (a facade).

:class:`IOLoopManager`, :class:`IOLoopThreadWrapper` and :class:`ThreadSafeMethodAttrWrapper`
live in :mod:`katcpx.resource`; :class:`ObjectWrapper` in
:mod:`katcpx._object_proxy`.
"""

from __future__ import annotations

import datetime
import logging
from concurrent.futures import (
    Future,
    TimeoutError,
)
from typing import Any

from tornado import gen
from tornado.concurrent import Future as tornado_Future
from tornado.platform.asyncio import AsyncIOLoop

from ._object_proxy import ObjectWrapper
from .resource import IOLoopManager, IOLoopThreadWrapper, ThreadSafeMethodAttrWrapper

log = logging.getLogger("katcp.ioloop_manager")

__all__ = [
    "AsyncIOLoop",
    "Future",
    "IOLoopManager",
    "IOLoopThreadWrapper",
    "ObjectWrapper",
    "ThreadSafeMethodAttrWrapper",
    "TimeoutError",
    "log",
    "tornado_Future",
    "with_relative_timeout",
]


def with_relative_timeout(timeout: float, future: Any, io_loop: Any = None) -> Any:
    """Wrap ``future`` so it raises ``tornado.util.TimeoutError`` after ``timeout`` seconds.

    ``io_loop`` is accepted for katcp-python's signature and not needed on tornado 6.
    """
    return gen.with_timeout(datetime.timedelta(seconds=timeout), future)
