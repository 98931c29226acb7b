"""katcpx-gateway: one KATCP subscription per sensor, fanned out to any number of readers
through Redis (see ``docs/scale-out.md``).

Needs the ``redis`` extra (``pip install 'katcpx[redis]'``). The key layout it writes is in
:mod:`katcpx.web._redis_keys`; ``katcpx-web --redis URL`` reads it.
"""

try:
    import redis.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - the 'redis' extra is part of 'test'
    raise ImportError("katcpx.gateway needs redis-py: pip install 'katcpx[redis]'") from exc

from ._control import ControlPolicy, ControlRequest, ControlServer
from ._policy import UserPolicy
from ._service import Gateway
from ._writer import RedisWriter

__all__ = [
    "ControlPolicy",
    "ControlRequest",
    "ControlServer",
    "Gateway",
    "RedisWriter",
    "UserPolicy",
]
