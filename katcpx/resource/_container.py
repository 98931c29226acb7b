"""``KATCPClientResourceContainer`` and client groups: many resources behind one object."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any

from tornado.ioloop import IOLoop

from .._anyloop import until_futures
from ._client_resource import KATCPClientResource
from ._listing import list_sensors
from ._objects import KATCPSensor, Listener
from ._sampling import echo_strategy
from ._types import (
    AttrDict,
    KATCPReply,
    KATCPSensorError,
    escape_name,
    normalize_strategy_parameters,
)

__all__ = [
    "ClientGroup",
    "GroupRequest",
    "GroupResults",
    "GroupWaitResults",
    "KATCPClientResourceContainer",
]

log = logging.getLogger("katcp.resource")


class GroupResults(dict[str, Any]):
    """Replies of a group request by client name (None where a client lacks the request).

    Truthy if the request succeeded on every client.
    """

    def __bool__(self) -> bool:
        return all(self.values())

    @property
    def succeeded(self) -> bool:
        """True if the request succeeded on every client."""
        return bool(self)


class GroupWaitResults(dict[str, bool]):
    """Per-client outcome of :meth:`ClientGroup.wait`; truthy if the quorum was reached."""

    def __init__(self, results: dict[str, bool], quorum: int) -> None:
        super().__init__(results)
        self.quorum = quorum

    def __bool__(self) -> bool:
        return sum(bool(v) for v in self.values()) >= self.quorum


class GroupRequest:
    """A request sent to every client of a group; awaiting it gives :class:`GroupResults`.

    Parameters
    ----------
    group
        The group whose clients receive the request.
    name
        Python identifier of the request.
    description
        Its ``?help`` text.
    """

    def __init__(self, group: ClientGroup, name: str, description: str) -> None:
        self.group = group
        self.name = name
        self.description = description
        self.__doc__ = "\n".join(("KATCP Documentation", "===================", description))

    def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Future[GroupResults]:
        """Send the request (same arguments as :class:`~katcpx.resource.KATCPRequest`)."""
        futures: dict[str, Awaitable[KATCPReply] | None] = {}
        for client in self.group.clients:
            request = dict.get(client.req, self.name)
            futures[client.name] = request(*args, **kwargs) if request is not None else None
        return asyncio.ensure_future(self._collect(futures))

    @staticmethod
    async def _collect(futures: dict[str, Awaitable[KATCPReply] | None]) -> GroupResults:
        names = list(futures)
        replies = await asyncio.gather(*(_or_none(futures[n]) for n in names))
        return GroupResults(zip(names, replies, strict=True))


async def _or_none(awaitable: Awaitable[Any] | None) -> Any:
    return None if awaitable is None else await awaitable


class ClientGroup:
    """A group of similar clients addressed together.

    Parameters
    ----------
    name
        Name of the group.
    clients
        The member resources.
    """

    def __init__(self, name: str, clients: Sequence[KATCPClientResource]) -> None:
        self.name = name
        self.clients = tuple(clients)
        self._req: AttrDict | None = None

    def __iter__(self) -> Iterator[KATCPClientResource]:
        return iter(self.clients)

    def __getitem__(self, index: int) -> KATCPClientResource:
        return self.clients[index]

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def req(self) -> AttrDict:
        """Union of the members' requests, as :class:`GroupRequest` objects."""
        if self._req is None:
            req = AttrDict()
            for client in self.clients:
                for name, request in dict.items(client.req):
                    if name not in req:
                        req[name] = GroupRequest(self, name, request.description)
            self._req = req
        return self._req

    def client_updated(self, client: KATCPClientResource) -> None:
        """Note that a member's requests changed."""
        self._req = None

    def is_connected(self) -> bool:
        """Whether every member is connected."""
        return all(c.is_connected() for c in self.clients)

    def set_sampling_strategies(
        self, filter: str, strategy_and_params: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy on the matching sensors of every member; results by member name."""
        return _gather_dict(
            {c.name: c.set_sampling_strategies(filter, strategy_and_params) for c in self.clients}
        )

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_params: Any
    ) -> asyncio.Future[dict[str, Any]]:
        """Set a strategy on a sensor of every member; results by member name."""
        return _gather_dict(
            {
                c.name: c.set_sampling_strategy(sensor_name, strategy_and_params)
                for c in self.clients
            }
        )

    def wait(
        self,
        sensor_name: str,
        condition_or_value: Any,
        timeout: float | None = 5.0,
        quorum: int | float | None = None,
        max_grace_period: float | None = 1.0,
    ) -> asyncio.Future[GroupWaitResults]:
        """Wait until a quorum of members' sensors satisfy a condition.

        Parameters
        ----------
        sensor_name, condition_or_value
            As for :meth:`KATCPClientResource.wait`.
        timeout
            Total seconds to wait (None: forever).
        quorum
            Members required: an int, a float in (0, 1] meaning that fraction of the members
            (rounded up), or None for all of them.
        max_grace_period
            Once the quorum is reached (or the main wait times out), wait up to this long
            for the other members too.

        Returns
        -------
        asyncio.Future
            Resolves with a :class:`GroupWaitResults`, truthy if the quorum was reached.

        Raises
        ------
        KATCPSensorError
            If a member lacks the sensor or has no strategy on it.
        """
        n = len(self.clients)
        if quorum is None:
            needed = n
        elif isinstance(quorum, float) and 0 < quorum <= 1:
            needed = int(math.ceil(quorum * n))
        elif isinstance(quorum, int):
            needed = quorum
        else:
            raise TypeError(f"quorum {quorum!r} must be an int or a float in (0, 1]")
        grace: float | None
        initial: float | None
        if timeout and max_grace_period:
            grace = min(max_grace_period, timeout / 2.0)
            initial = timeout - grace
        else:
            grace, initial = max_grace_period, timeout
        futures = {c.name: c.wait(sensor_name, condition_or_value, initial) for c in self.clients}
        return asyncio.ensure_future(
            self._quorum(futures, needed, sensor_name, condition_or_value, grace)
        )

    async def _quorum(
        self,
        futures: dict[str, asyncio.Future[bool]],
        needed: int,
        sensor_name: str,
        condition_or_value: Any,
        grace: float | None,
    ) -> GroupWaitResults:
        results: dict[str, bool] = {}
        pending = {fut: name for name, fut in futures.items()}
        while pending and sum(results.values()) < needed:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                results[pending.pop(fut)] = bool(fut.result())
        for fut in pending:
            fut.cancel()
        stragglers = [c for c in self.clients if not results.get(c.name, False)]
        if stragglers and grace:
            late = await asyncio.gather(
                *(c.wait(sensor_name, condition_or_value, grace) for c in stragglers)
            )
            results.update({c.name: bool(ok) for c, ok in zip(stragglers, late, strict=True)})
        for c in stragglers:
            results.setdefault(c.name, False)
        return GroupWaitResults(results, needed)


def _gather_dict(futures: dict[str, Awaitable[Any]]) -> asyncio.Future[dict[str, Any]]:
    async def gather() -> dict[str, Any]:
        names = list(futures)
        values = await asyncio.gather(*(futures[n] for n in names))
        return dict(zip(names, values, strict=True))

    return asyncio.ensure_future(gather())


class KATCPClientResourceContainer:
    """Class for containing multiple :class:`KATCPClientResource` instances.

    Its ``sensor`` and ``req`` attributes hold the union of the children's, named
    ``<resname>_<name>`` (aggregate sensors, ``agg_*``, keep their name).

    Parameters
    ----------
    resources_spec
        Dict with keys ``name``, optional ``description``, ``clients`` (``{name:
        resource_spec}``, the specs as for :class:`KATCPClientResource` without ``name``)
        and optional ``groups`` (``{group_name: [client names]}``).
    logger
        Logger to log to.
    """

    def __init__(self, resources_spec: dict[str, Any], logger: logging.Logger = log) -> None:
        self._resources_spec = dict(resources_spec)
        self._logger = logger
        self._name: str = resources_spec["name"]
        self._description: str = resources_spec.get("description", "")
        self._children = AttrDict()
        self._groups = AttrDict()
        self._req: AttrDict | None = None
        self._sensor: AttrDict | None = None
        self._active = True
        self._ioloop: IOLoop | None = None
        # (pattern on prefixed identifiers, strategy) also applied to sensors seen later.
        self._strategy_filters: list[tuple[re.Pattern[str], tuple[str, ...]]] = []
        for res_name, res_spec in resources_spec.get("clients", {}).items():
            child_spec = dict(res_spec, name=res_name)
            self._children[escape_name(res_name)] = self.client_resource_factory(
                child_spec, self, logger
            )
        self._init_groups()

    # -- structure -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the container."""
        return self._name

    @property
    def description(self) -> str:
        """Description of the container."""
        return self._description

    @property
    def address(self) -> None:
        """A container has no single address."""
        return None

    @property
    def parent(self) -> None:
        """Containers are not nested."""
        return None

    @property
    def children(self) -> AttrDict:
        """The child resources, by Python identifier of their name."""
        return self._children

    @property
    def groups(self) -> AttrDict:
        """The :class:`ClientGroup` objects, by name."""
        return self._groups

    @property
    def req(self) -> AttrDict:
        """All children's requests as ``<resname>_<request>``."""
        if self._req is None:
            self._req = self._merge("req")
        return self._req

    @property
    def sensor(self) -> AttrDict:
        """All children's sensors as ``<resname>_<sensor>``."""
        if self._sensor is None:
            self._sensor = self._merge("sensor")
        return self._sensor

    @property
    def sensors(self) -> AttrDict:
        """Alias of :attr:`sensor`."""
        return self.sensor

    def _merge(self, attr: str) -> AttrDict:
        merged = AttrDict()
        for child_name, child in dict.items(self._children):
            for name, item in dict.items(getattr(child, attr)):
                merged[name if name.startswith("agg_") else f"{child_name}_{name}"] = item
        return merged

    def client_resource_factory(
        self, res_spec: dict[str, Any], parent: Any, logger: logging.Logger
    ) -> KATCPClientResource:
        """Return the resource for `res_spec` (override to substitute one)."""
        return KATCPClientResource(res_spec, parent=parent, logger=logger)

    def _init_groups(self) -> None:
        groups = AttrDict()
        for group_name, members in self._resources_spec.get("groups", {}).items():
            clients = [self._children[escape_name(m)] for m in members]
            groups[group_name] = ClientGroup(group_name, clients)
        self._groups = groups

    def add_group(self, group_name: str, group_client_names: Sequence[str]) -> None:
        """Add a :class:`ClientGroup` of the named children to :attr:`groups`."""
        specs = dict(self._resources_spec.get("groups", {}))
        specs[group_name] = list(group_client_names)
        self._resources_spec["groups"] = specs
        self._init_groups()

    def add_child_resource_client(
        self, res_name: str, res_spec: dict[str, Any]
    ) -> KATCPClientResource:
        """Add a resource client to the container and start its connection."""
        child = self.client_resource_factory(dict(res_spec, name=res_name), self, self._logger)
        self._children[escape_name(res_name)] = child
        self._req = self._sensor = None
        child.set_ioloop(self._ioloop)
        child.start()
        return child

    # -- what children report (the ResourceParent interface) ------------------------------

    def child_requests_changed(self, child: KATCPClientResource) -> None:
        """A child's exposed requests changed: rebuild :attr:`req` and its groups' ``req``."""
        self._req = None
        for group in dict.values(self._groups):
            if child in group.clients:
                group.client_updated(child)

    def child_sensors_changed(
        self, child: KATCPClientResource, added: Sequence[str] = ()
    ) -> dict[str, tuple[str, ...]]:
        """A child's sensors changed: rebuild :attr:`sensor`.

        Returns
        -------
        dict
            The strategies this container's :meth:`set_sampling_strategies` filters give
            the `added` sensors (child identifiers) that have none yet.
        """
        self._sensor = None
        prefix = escape_name(child.name) + "_"
        wanted: dict[str, tuple[str, ...]] = {}
        for ident in added:
            if child.get_sampling_strategy(ident) != ("none",):
                continue
            for pattern, strategy in self._strategy_filters:
                if pattern.search(prefix + ident):
                    wanted[ident] = strategy
                    break
        return wanted

    # -- life cycle and state --------------------------------------------------------------

    def set_ioloop(self, ioloop: IOLoop | None = None) -> None:
        """Set the tornado IOLoop of every child (default ``IOLoop.current()``)."""
        self._ioloop = ioloop if ioloop is not None else IOLoop.current()
        for child in dict.values(self._children):
            child.set_ioloop(self._ioloop)

    @property
    def ioloop(self) -> IOLoop | None:
        """The IOLoop the children run on."""
        return self._ioloop

    def start(self) -> None:
        """Start and connect all the children."""
        if self._ioloop is None:
            self.set_ioloop()
        for child in dict.values(self._children):
            child.start()

    def stop(self) -> None:
        """Stop all the children."""
        for name, child in dict.items(self._children):
            try:
                child.stop()
            except Exception:
                self._logger.exception("Exception stopping child %r", name)

    def until_stopped(self, timeout: float | None = None) -> dict[str, asyncio.Future[bool]]:
        """Futures, by child name, that resolve when each child has stopped."""
        return {name: child.until_stopped(timeout) for name, child in dict.items(self._children)}

    def is_connected(self) -> bool:
        """Whether every child is connected."""
        return all(c.is_connected() for c in dict.values(self._children))

    def is_active(self) -> bool:
        """Whether the container is active."""
        return self._active

    def set_active(self, active: bool) -> None:
        """Set the active state of the container and every child."""
        self._active = bool(active)
        for child in dict.values(self._children):
            child.set_active(active)

    def next(self) -> Any:
        """Python 2 iterator protocol left over in katcp-python's API; containers aren't iterators."""
        raise TypeError(f"{type(self).__name__!r} object is not an iterator")

    def until_all_children_in_state(
        self, state: str, timeout: float | None = None
    ) -> asyncio.Future[None]:
        """Future that resolves when all children are in `state` (fails on timeout)."""
        children = list(dict.values(self._children))
        return until_futures([c.until_state(state) for c in children], True, timeout)

    def until_any_child_in_state(
        self, state: str, timeout: float | None = None
    ) -> asyncio.Future[bool]:
        """Future that resolves with True when any child is in `state` (fails on timeout).

        True is katcp-python's value (its ``until_any`` gave the child's ``until_state``).
        """
        children = list(dict.values(self._children))
        return until_futures([c.until_state(state) for c in children], False, timeout, True)

    def until_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Future that resolves when all children are synced (their ``until_synced()``)."""
        children = list(dict.values(self._children))
        return until_futures([c.until_synced() for c in children], True, timeout)

    def until_not_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Future that resolves when any child is not synced (``until_not_synced()``)."""
        children = list(dict.values(self._children))
        return until_futures([c.until_not_synced() for c in children], False, timeout)

    # -- sensors ---------------------------------------------------------------------------

    def list_sensors(
        self,
        filter: str = "",
        strategy: bool = False,
        status: str = "",
        use_python_identifiers: bool = True,
        tuple: bool = False,
        refresh: bool = False,
    ) -> asyncio.Future[list[Any]]:
        """List the children's sensors matching certain criteria.

        As :meth:`KATCPClientResource.list_sensors`; identifiers are ``<resname>_<sensor>``
        and names ``<resname>.<sensor>``.
        """
        return asyncio.ensure_future(
            list_sensors(
                self,
                dict(self.sensor),
                filter,
                strategy,
                status,
                use_python_identifiers,
                tuple,
                refresh,
                prefixed=True,
            )
        )

    def _matching(self, pattern: re.Pattern[str]) -> dict[str, list[str]]:
        """Child identifiers of the sensors whose prefixed identifier matches, by child."""
        by_child: dict[str, list[str]] = {}
        for child_name, child in dict.items(self._children):
            for ident in child.sensor:
                full = ident if ident.startswith("agg_") else f"{child_name}_{ident}"
                if pattern.search(full):
                    by_child.setdefault(child_name, []).append(ident)
        return by_child

    def set_sampling_strategies(
        self, filter: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, dict[str, Any]]]:
        """Set a strategy on every sensor whose ``<resname>_<sensor>`` matches `filter`.

        The strategy is memorised: it is re-applied after reconnecting, and applied to
        matching sensors that appear later.

        Returns
        -------
        asyncio.Future
            Resolves with ``{resname: {sensor: strategy_and_parms}}``, the strategy as
            passed, also where the server refused it (katcp-python's results; a
            ``KATCPSensor``'s ``set_strategy()`` reports a refusal).
        """
        pattern = re.compile(filter)
        strategy = normalize_strategy_parameters(strategy_and_parms)
        self._strategy_filters = [(p, s) for p, s in self._strategy_filters if p != pattern]
        self._strategy_filters.insert(0, (pattern, strategy))
        return self._set_on_children(self._matching(pattern), strategy_and_parms)

    def set_sampling_strategy(
        self, sensor_name: str, strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, dict[str, Any]]]:
        """Set a strategy on one (existing) sensor, named ``<resname>_<sensor>``.

        Resolves as :meth:`set_sampling_strategies`.
        """
        pattern = re.compile("^" + re.escape(escape_name(sensor_name)) + "$")
        return self._set_on_children(self._matching(pattern), strategy_and_parms)

    def _set_on_children(
        self, by_child: dict[str, list[str]], strategy_and_parms: Any
    ) -> asyncio.Future[dict[str, dict[str, Any]]]:
        strategy = normalize_strategy_parameters(strategy_and_parms)
        jobs: dict[str, Awaitable[dict[str, Any]]] = {
            child_name: echo_strategy(
                self._children[child_name].apply_sampling_strategy(idents, strategy),
                strategy_and_parms,
            )
            for child_name, idents in by_child.items()
        }
        return _gather_dict(jobs)

    def set_sensor_listener(
        self, sensor_name: str, listener: Listener
    ) -> asyncio.Future[dict[str, dict[str, Any]]]:
        """Register ``listener(sensor, reading)`` on an existing ``<resname>_<sensor>``."""
        pattern = re.compile("^" + re.escape(escape_name(sensor_name)) + "$")
        jobs = {
            child_name: self._children[child_name].set_sensor_listener(idents[0], listener)
            for child_name, idents in self._matching(pattern).items()
        }
        return _gather_dict(jobs)

    def wait(
        self, sensor_name: str, condition_or_value: Any, timeout: float | None = 5
    ) -> asyncio.Future[bool]:
        """Wait for ``<resname>_<sensor>`` to satisfy a condition (see the resource's wait)."""
        sensor: KATCPSensor | None = dict.get(self.sensor, escape_name(sensor_name))
        if sensor is None:
            raise KATCPSensorError(f"Sensor {sensor_name!r} not present in {self._name}")
        child = self._children[escape_name(sensor.parent_name)]
        return child.wait(sensor.name, condition_or_value, timeout)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__module__}.{type(self).__name__}(name={self._name}) at 0x{id(self):x}>"
        )
