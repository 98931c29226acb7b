"""katcp-python's ``katcp.inspecting_client`` layout (a facade over :mod:`katcpx.inspecting`)."""

from __future__ import annotations

from .asyncutil import future_timeout_manager, steal_docstring_from, until_any
from .compat import ensure_native_str
from .inspecting import (
    ExponentialRandomBackoff,
    InformHookClient,
    InspectingClientAsync,
    InspectingClientStateType,
    RequestType,
    SyncError,
    ic_logger,
)
from .resource import AttrDict

#: katcp-python's private name for the inform-hook client, which its tests use.
_InformHookDeviceClient = InformHookClient

__all__ = [
    "AttrDict",
    "ExponentialRandomBackoff",
    "InformHookClient",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "RequestType",
    "SyncError",
    "ensure_native_str",
    "future_timeout_manager",
    "ic_logger",
    "steal_docstring_from",
    "until_any",
]
