"""State, backoff and request types of katcp-python's ``InspectingClientAsync``."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

from ..client import AsyncClient
from ..message import Message

__all__ = [
    "ExponentialRandomBackoff",
    "InformHookClient",
    "InspectingClientStateType",
    "RequestType",
    "SyncError",
]

ic_logger = logging.getLogger("katcp.inspect_client")


class Request(NamedTuple):
    """What :attr:`InspectingClientAsync.request_factory` makes by default.

    Named ``Request`` (its repr shows it), as katcp-python 0.9.3's ``RequestType``.
    """

    name: str
    description: str
    timeout_hint: float | None


RequestType = Request


class InspectingClientStateType(NamedTuple):
    """The state of an inspecting client: four flags.

    ``connected`` (TCP and protocol), ``synced`` (the model matches the device),
    ``model_changed`` (the last inspection changed the model), ``data_synced`` (the
    inspection data is in, though state callbacks may still be running).
    """

    connected: bool
    synced: bool
    model_changed: bool
    data_synced: bool

    def __str__(self) -> str:
        flags = [name if getattr(self, name) else "!" + name for name in self._fields]
        return "[" + " ".join(flags) + "]"


class SyncError(Exception):
    """A device answered an inspection request with something other than ``ok``."""


class ExponentialRandomBackoff:
    """Retry delays that grow by ``exp_fac`` per failure up to ``delay_max`` seconds.

    Each delay is scaled by a random factor in ``[1 - randomicity, 1]`` so that many
    clients do not retry in step. :meth:`success` resets to ``delay_initial``.
    """

    def __init__(
        self,
        delay_initial: float = 1.0,
        delay_max: float = 90.0,
        exp_fac: float = 3.0,
        randomicity: float = 0.95,
    ) -> None:
        self.delay_initial = delay_initial
        self.delay_max = delay_max
        self.exp_fac = exp_fac
        self.randomicity = randomicity
        self._base_delay = delay_initial
        self._update_delay()

    def _validate_parameters(self) -> None:
        if not 0 <= self.delay_initial <= self.delay_max:
            raise ValueError("need 0 <= delay_initial <= delay_max")
        if not 0 <= self.randomicity <= 1:
            raise ValueError("randomicity must be in [0, 1]")
        if not self.exp_fac > 1:
            raise ValueError("exp_fac must be above 1")

    def _update_delay(self) -> None:
        self._validate_parameters()
        r = self.randomicity
        self._delay = min((1 - r + r * random.random()) * self._base_delay, self.delay_max)

    def failed(self) -> None:
        """Lengthen the delay after a failure (errors in the parameters are logged)."""
        try:
            self._validate_parameters()
            self._base_delay = min(self._base_delay * self.exp_fac, self.delay_max)
            self._update_delay()
        except Exception:
            ic_logger.exception("Unhandled exception trying to calculate a retry timeout")

    def success(self) -> None:
        """Reset the delay after a success."""
        self._base_delay = self.delay_initial
        self._update_delay()

    @property
    def delay(self) -> float:
        """The current delay in seconds."""
        return self._delay


class InformHookClient(AsyncClient):
    """An :class:`~katcpx.client.AsyncClient` that also calls hooks for named informs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inform_hooks: defaultdict[str, list[Callable[[Message], Any]]] = defaultdict(list)

    def hook_inform(self, inform_name: str, callback: Callable[[Message], Any]) -> None:
        """Call ``callback(msg)`` for every ``#inform_name`` received (once per callback)."""
        if callback not in self._inform_hooks[inform_name]:
            self._inform_hooks[inform_name].append(callback)

    def handle_inform(self, msg: Message) -> Any:
        for func in list(self._inform_hooks.get(msg.name, ())):
            try:
                func(msg)
            except Exception:
                self._logger.warning(
                    'Call to function "%s" with message "%s".', func, msg, exc_info=True
                )
        return super().handle_inform(msg)
