"""A resource's sampling strategies: memorised by sensor, sent to the server in bulk.

The strategies are kept by Python identifier, so they outlive reconnections, re-syncs and
sensors the server has not announced yet; the resource sends them again on every new
connection (a server starts each connection with no strategies set).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol

from .._peer_units import strategy_params_to_wire
from ..errors import FailReplyError, InvalidReply, RequestFailed
from ..flags import ProtocolFlags
from ..message import Message
from ._objects import KATCPSensor
from ._types import StrategyParams, escape_name

__all__ = ["NO_STRATEGY", "StrategyBook", "StrategyClient", "StrategyRefused"]

#: The strategy of a sensor nobody asked to sample.
NO_STRATEGY: StrategyParams = ("none",)
#: Longest comma-separated sensor list put in one bulk ``?sensor-sampling`` request.
_BULK_CHUNK_CHARS = 60_000
#: Extra reply timeout per sensor of a bulk ``?sensor-sampling``.
_BULK_SECONDS_PER_SENSOR = 0.005


class StrategyRefused(str):
    """The error text of a strategy the server refused (a ``str``), with its ``reply``.

    ``reply`` is the server's reply message (None when none came, e.g. a timeout):
    ``KATCPSensor.set_strategy`` shows it, as katcp-python 0.9.3's text does.
    """

    reply: Message | None

    def __new__(cls, text: str, reply: Message | None = None) -> StrategyRefused:
        refused = super().__new__(cls, text)
        refused.reply = reply
        return refused


class StrategyClient(Protocol):
    """What the strategies are sent through (the resource's inspecting client)."""

    @property
    def protocol_flags(self) -> ProtocolFlags | None: ...

    def is_connected(self) -> bool: ...

    async def call(
        self, name: str, *args: Any, timeout: float | None = None
    ) -> tuple[Any, list[Any]]: ...


class StrategyBook:
    """The memorised strategies of one resource and the filters that pick strategies for
    sensors not seen yet.

    Parameters
    ----------
    owner_name
        Name of the resource, for log lines.
    logger
        Where refusals and failures are logged (as errors: katcp-python 0.9.3 resolves a
        refused strategy as if it had been set, so the log is the only trace).
    timeout
        Seconds allowed for each ``?sensor-sampling`` reply (None: no limit).
    """

    def __init__(self, owner_name: str, logger: logging.Logger, timeout: float | None) -> None:
        self._owner_name = owner_name
        self._logger = logger
        self._timeout = timeout
        self._cache: dict[str, StrategyParams] = {}
        self._filters: list[tuple[re.Pattern[str], StrategyParams]] = []

    def get(self, ident: str) -> StrategyParams:
        """The memorised strategy of sensor `ident` (``("none",)`` when none)."""
        return self._cache.get(ident, NO_STRATEGY)

    def memorise(self, ident: str, strategy: StrategyParams) -> None:
        """Remember `strategy` for sensor `ident` (sent by the next :meth:`apply`)."""
        self._cache[ident] = strategy

    def forget(self, ident: str) -> None:
        """Forget the strategy of sensor `ident`; the server's current one is unchanged."""
        self._cache.pop(ident, None)

    def add_filter(self, pattern: re.Pattern[str], strategy: StrategyParams) -> None:
        """Use `strategy` for new sensors whose identifier `pattern` finds (newest first)."""
        self._filters = [(p, s) for p, s in self._filters if p != pattern]
        self._filters.insert(0, (pattern, strategy))

    def adopt(self, ident: str) -> None:
        """A sensor appeared: give it the first matching filter's strategy, unless it has one."""
        if ident in self._cache:
            return
        for pattern, strategy in self._filters:
            if pattern.search(ident):
                self._cache[ident] = strategy
                return

    def sampled(self, idents: Iterable[str]) -> list[str]:
        """Those of `idents` with a strategy other than ``none`` memorised."""
        return [i for i in idents if self._cache.get(i, NO_STRATEGY) != NO_STRATEGY]

    async def apply(
        self,
        client: StrategyClient | None,
        sensors: Mapping[str, KATCPSensor],
        idents: list[str],
    ) -> dict[str, Any]:
        """Send the memorised strategies of `idents`, in bulk when the server allows.

        Returns
        -------
        dict
            Python identifier -> the strategy as set, or the error text; empty when not
            connected (the strategies are sent on connection).
        """
        results: dict[str, Any] = {}
        if client is None or not idents or not client.is_connected():
            return results
        flags = client.protocol_flags
        major = 5 if flags is None else flags.major
        # Keyed by (memorised strategy, its wire form): times are seconds in the cache and
        # milliseconds on the wire to a v4 server (see katcpx._peer_units).
        groups: dict[tuple[StrategyParams, tuple[str, ...]], list[str]] = {}
        for ident in idents:
            sensor = sensors.get(ident)
            if sensor is None:
                continue
            strategy = self.get(ident)
            try:
                params = strategy_params_to_wire(strategy[0], strategy[1:], major, sensor.type)
            except ValueError as exc:
                self._logger.error(
                    "%s: strategy %s of %s not sent: %s", self._owner_name, strategy, ident, exc
                )
                results[ident] = str(exc)
                continue
            groups.setdefault((strategy, (str(strategy[0]), *params)), []).append(sensor.name)
        bulk = flags is not None and flags.supports(ProtocolFlags.BULK_SET_SENSOR_SAMPLING)
        jobs: list[Awaitable[None]] = []
        for (strategy, wire), names in groups.items():
            if bulk and len(names) > 1:
                for chunk in _chunks(names):
                    jobs.append(self._bulk(client, chunk, strategy, wire, results))
            else:
                for name in names:
                    jobs.append(self._one(client, name, strategy, wire, results))
        await asyncio.gather(*jobs)
        return results

    async def _one(
        self,
        client: StrategyClient,
        name: str,
        strategy: StrategyParams,
        wire: tuple[str, ...],
        results: dict[str, Any],
    ) -> None:
        try:
            await client.call("sensor-sampling", name, *wire, timeout=self._timeout)
        except RequestFailed as exc:
            self._logger.error(
                "%s: setting strategy %s of %s failed: %s", self._owner_name, strategy, name, exc
            )
            results[escape_name(name)] = StrategyRefused(str(exc), exc.reply)
        else:
            results[escape_name(name)] = strategy

    async def _bulk(
        self,
        client: StrategyClient,
        names: list[str],
        strategy: StrategyParams,
        wire: tuple[str, ...],
        results: dict[str, Any],
    ) -> None:
        # The server sets up (and reports) every sensor before it replies: allow for that.
        timeout = None
        if self._timeout is not None:
            timeout = self._timeout + _BULK_SECONDS_PER_SENSOR * len(names)
        try:
            await client.call("sensor-sampling", ",".join(names), *wire, timeout=timeout)
        except (FailReplyError, InvalidReply) as exc:
            # One bad name fails the whole bulk request: find out which, one by one.
            self._logger.debug(
                "%s: bulk sensor-sampling failed (%s); retrying singly", self._owner_name, exc
            )
            await asyncio.gather(*(self._one(client, n, strategy, wire, results) for n in names))
        except RequestFailed as exc:
            # Timed out or disconnected: retrying would only pile up; a reconnection
            # re-applies every memorised strategy anyway.
            self._logger.error(
                "%s: bulk setting strategy %s failed: %s", self._owner_name, strategy, exc
            )
            for name in names:
                results[escape_name(name)] = str(exc)
        else:
            for name in names:
                results[escape_name(name)] = strategy


def _chunks(names: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for name in names:
        if size + len(name) + 1 > _BULK_CHUNK_CHARS and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(name)
        size += len(name) + 1
    return chunks
