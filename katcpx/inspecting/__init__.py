"""katcp-python's inspecting client, katcpx's implementation (``katcpx.inspecting_client``)."""

from .client import InspectingClientAsync
from .types import (
    ExponentialRandomBackoff,
    InformHookClient,
    InspectingClientStateType,
    RequestType,
    SyncError,
)

__all__ = [
    "ExponentialRandomBackoff",
    "InformHookClient",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "RequestType",
    "SyncError",
]
