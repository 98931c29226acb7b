"""katcp-python's inspecting client, katcpx's implementation (``katcpx.inspecting_client``),
and the parts of ``katcp.resource_client`` built on it (``katcpx.resource_client``)."""

from ._client import InspectingClientAsync
from ._resource_compat import (
    KATCPClientResourceRequest,
    KATCPClientResourceSensorsManager,
    ReplyWrappedInspectingClientAsync,
    list_sensors,
    monitor_resource_sync_state,
)
from ._types import (
    ExponentialRandomBackoff,
    InformHookClient,
    InspectingClientStateType,
    RequestType,
    SyncError,
    ic_logger,
)

__all__ = [
    "ExponentialRandomBackoff",
    "InformHookClient",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "KATCPClientResourceRequest",
    "KATCPClientResourceSensorsManager",
    "ReplyWrappedInspectingClientAsync",
    "RequestType",
    "SyncError",
    "ic_logger",
    "list_sensors",
    "monitor_resource_sync_state",
]
