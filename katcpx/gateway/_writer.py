"""Batched, pipelined writes of readings and state to Redis, surviving Redis outages.

Readings queue up in memory as they arrive; one task sends everything queued in one
pipeline per loop turn (while a pipeline is in flight, the next batch grows). Each device's
readings go in as one server-side script call that appends them to the device's stream
(bounded by length and/or age) and to its hash of current values.

When Redis is unreachable the queue keeps filling up to a bound; past it the oldest readings
are dropped and counted. The writer retries, and once Redis answers again it logs how many
readings it dropped, calls its ``on_connect`` callback (the gateway rewrites its whole state,
since a restarted Redis may be empty) and sends what it kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..web._redis_keys import Keys

__all__ = ["APPEND_SCRIPT", "MAX_BATCH", "RedisWriter", "connect", "why_unreachable"]

log = logging.getLogger("katcpx.gateway")

#: Most readings of one device in one script call (the script blocks Redis while it runs).
MAX_BATCH = 2000
#: Most readings in one pipeline.
MAX_PIPELINE = 50_000

#: KEYS: stream, values hash. ARGV: max length (0: none), min id (0: none), the readings as
#: ``sensor\nupdate-json\n`` pairs in one string, and the latest of each sensor the same way.
#: One string instead of two arguments per reading: building a command's arguments costs
#: redis-py far more per item than one ``str.join`` (the ``\n`` cannot occur in either part:
#: KATCP names have no control characters and JSON escapes them).
APPEND_SCRIPT = """
local stream, values = KEYS[1], KEYS[2]
local maxlen, minid = ARGV[1], ARGV[2]
local n = 0
if maxlen ~= '0' then
  for s, j in string.gmatch(ARGV[3], '([^\\n]*)\\n([^\\n]*)\\n') do
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'j', j)
    n = n + 1
  end
else
  for s, j in string.gmatch(ARGV[3], '([^\\n]*)\\n([^\\n]*)\\n') do
    redis.call('XADD', stream, '*', 's', s, 'j', j)
    n = n + 1
  end
end
for s, j in string.gmatch(ARGV[4], '([^\\n]*)\\n([^\\n]*)\\n') do
  redis.call('HSET', values, s, j)
end
if minid ~= '0' then
  redis.call('XTRIM', stream, 'MINID', '~', minid)
end
return n
"""


def connect(url: str, timeout: float = 5.0) -> aioredis.Redis:
    """A Redis client for `url` that fails fast (no hidden retries) so outages show at once.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (see redis-py's ``from_url``).
    timeout
        Seconds for connecting and for each reply.

    Raises
    ------
    ValueError
        If `url` is not a Redis URL.
    """
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    return client


def why_unreachable(exc: BaseException) -> str:
    """`exc` (from a Redis call) said plainly: authentication failed, connection refused..."""
    text = str(exc)
    upper = text.upper()
    if isinstance(exc, AuthenticationError) or any(
        w in upper for w in ("WRONGPASS", "NOAUTH", "AUTH ")
    ):
        return f"authentication failed: {text}"
    if isinstance(exc.__cause__ or exc.__context__, ConnectionRefusedError) or "111" in text:
        return f"connection refused: {text}"
    return f"{type(exc).__name__}: {text}"


class RedisWriter:
    """Queue readings and commands; write them to Redis in pipelined batches.

    Parameters
    ----------
    redis
        The client (see :func:`connect`).
    keys
        Key names.
    maxlen
        Approximate length bound of each device's stream (0: unbounded by length).
    max_age
        Seconds of readings each stream keeps, by entry id (None: unbounded by age).
    buffer_limit
        Most readings queued while Redis is unreachable; older ones are dropped past it.
    on_connect
        Called when Redis answers after being unreachable (and on the first connection),
        before queued readings are sent.
    retry_interval
        Seconds between attempts to reach Redis.
    report_interval
        Seconds between the error logs saying Redis is still unreachable.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        maxlen: int = 100_000,
        max_age: float | None = None,
        buffer_limit: int = 1_000_000,
        on_connect: Callable[[], None] | None = None,
        retry_interval: float = 0.5,
        report_interval: float = 10.0,
    ) -> None:
        if maxlen < 0 or buffer_limit < 1 or (max_age is not None and max_age <= 0):
            raise ValueError("maxlen must be >= 0, buffer_limit >= 1 and max_age > 0")
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.max_age = max_age
        self.buffer_limit = buffer_limit
        self.on_connect = on_connect
        self.retry_interval = retry_interval
        self.report_interval = report_interval
        #: Readings written to Redis.
        self.written = 0
        #: Readings dropped because the buffer was full while Redis was unreachable.
        self.dropped = 0
        #: Times Redis became unreachable.
        self.outages = 0
        self.connected = False
        self._queue: deque[tuple[str, str, str]] = deque()
        self._commands: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Future[None] | None = None
        self._stopping = False
        self._in_flight = 0
        self._dropped_reported = 0
        self._script = redis.register_script(APPEND_SCRIPT)

    @property
    def buffered(self) -> int:
        """Readings not yet written: queued, or in a pipeline Redis has not answered."""
        return len(self._queue) + self._in_flight

    def add_reading(self, device: str, sensor: str, text: str) -> None:
        """Queue one reading: `text` is its ``update`` message (JSON)."""
        queue = self._queue
        if len(queue) >= self.buffer_limit:
            queue.popleft()
            self.dropped += 1
        queue.append((device, sensor, text))
        self._wake.set()

    def add_command(self, *args: Any) -> None:
        """Queue one Redis command (e.g. ``"HSET", key, field, value``) for the next batch.

        Commands queued while Redis is unreachable are discarded: ``on_connect`` rewrites
        the state they carried.
        """
        self._commands.append(args)
        self._wake.set()

    def start(self) -> None:
        """Start the writing task on the running loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Write what is queued (if Redis answers within `flush_timeout` s) and stop."""
        if self._task is None:
            return
        if self.connected and (self._queue or self._commands):
            try:
                await asyncio.wait_for(self._flush(), flush_timeout)
            except (RedisError, OSError, asyncio.TimeoutError):
                pass
        self._stopping = True
        self._wake.set()
        self._task.cancel()
        # Bounded: redis-py may swallow a cancellation that lands inside one of its calls;
        # the flag above ends the loop then.
        await asyncio.wait([self._task], timeout=flush_timeout)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            if not self.connected:
                await self._reconnect()
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._flush()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected = False
                self.outages += 1
                log.error(
                    "Redis unreachable (%s); keeping device subscriptions, buffering up to %d "
                    "readings",
                    exc,
                    self.buffer_limit,
                )
            except RedisError as exc:
                # A refused command (e.g. out of memory): its batch is lost; say so.
                log.error("Redis refused a batch of writes: %s", exc)

    @property
    def where(self) -> str:
        """``host:port/db`` of the Redis written to (no credentials: it goes in logs)."""
        kw = self.redis.connection_pool.connection_kwargs
        if "path" in kw:
            return f"{kw['path']}/{kw.get('db', 0)}"
        return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"

    async def _reconnect(self) -> None:
        reported = -float("inf")
        while not self._stopping:
            try:
                await self.redis.ping()
            except (RedisError, OSError) as exc:
                # Said at once and then every report_interval s while it lasts: a gateway
                # that cannot write must not look like one that does.
                now = time.monotonic()
                if now - reported >= self.report_interval:
                    reported = now
                    log.error(
                        "Redis at %s is unreachable (%s); readings are buffered "
                        "(up to %d), retrying",
                        self.where,
                        why_unreachable(exc),
                        self.buffer_limit,
                    )
                await asyncio.sleep(self.retry_interval)
                continue
            break
        if self._stopping:
            return
        self.connected = True
        self._commands.clear()  # stale: on_connect rewrites the state
        lost = self.dropped - self._dropped_reported
        if lost:
            log.warning("Redis reachable again; %d readings were dropped while it was not", lost)
            self._dropped_reported = self.dropped
        elif self.outages or reported > -float("inf"):
            log.warning("Redis at %s reachable again; no readings dropped", self.where)
        else:
            log.info("connected to Redis at %s", self.where)
        if self.on_connect is not None:
            self.on_connect()
        self._wake.set()

    async def _flush(self) -> None:
        """Send queued commands and readings in one pipeline; requeue readings on failure."""
        while self._queue or self._commands:
            commands, self._commands = self._commands, []
            batch: list[tuple[str, str, str]] = []
            queue = self._queue
            for _ in range(min(len(queue), MAX_PIPELINE)):
                batch.append(queue.popleft())
            # As a context: the pipeline gives its connection back even when Redis drops
            # (else asyncio logs 'Unclosed Pipeline client' with the whole batch in it).
            async with self.redis.pipeline(transaction=False) as pipe:
                for cmd in commands:
                    pipe.execute_command(*cmd)
                by_device: dict[str, list[str]] = {}
                for device, sensor, text in batch:
                    flat = by_device.get(device)
                    if flat is None:
                        flat = by_device[device] = []
                    flat.append(sensor)
                    flat.append(text)
                minid = "0"
                if self.max_age is not None:
                    minid = str(int((time.time() - self.max_age) * 1000))
                maxlen = str(self.maxlen)
                for device, flat in by_device.items():
                    keys = [self.keys.readings(device), self.keys.values(device)]
                    for i in range(0, len(flat), 2 * MAX_BATCH):
                        part = flat[i : i + 2 * MAX_BATCH]
                        latest = dict(zip(part[::2], part[1::2], strict=True))
                        args = [
                            maxlen,
                            minid,
                            "\n".join(part) + "\n",
                            "\n".join(x for kv in latest.items() for x in kv) + "\n",
                        ]
                        await self._script(keys=keys, args=args, client=pipe)
                self._in_flight = len(batch)
                try:
                    await pipe.execute()
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    # Back to the front, oldest first, within the bound.
                    room = self.buffer_limit - len(queue)
                    if len(batch) > room:
                        self.dropped += len(batch) - max(room, 0)
                        batch = batch[len(batch) - max(room, 0) :]
                    queue.extendleft(reversed(batch))
                    raise
                finally:
                    self._in_flight = 0
            self.written += len(batch)

    def stats(self) -> dict[str, int]:
        """``written``, ``dropped``, ``buffered`` readings and Redis ``outages``."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "buffered": self.buffered,
            "outages": self.outages,
        }
