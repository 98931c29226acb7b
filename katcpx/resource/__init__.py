"""High level clients: resources that expose a KATCP server's sensors and requests.

:class:`KATCPClientResource` wraps one server, :class:`KATCPClientResourceContainer` several;
:class:`ThreadSafeKATCPClientResourceWrapper` makes either usable from plain (non-async)
code.
"""

from ..asyncutil import hashable_identity
from ..compat import ensure_native_str
from ..message import Message
from ..sensor import Sensor
from ._abstract import KATCPDummyRequest, KATCPResource, KATCPSensorsManager
from ._client_resource import KATCPClientResource, ResourceParent
from ._container import (
    ClientGroup,
    GroupRequest,
    GroupResults,
    GroupWaitResults,
    KATCPClientResourceContainer,
)
from ._inspecting import InspectingClient, InspectingOwner, ModelChanges, apply_model_diff
from ._objects import KATCPRequest, KATCPSensor
from ._threadsafe import (
    AttrMappingProxy,
    IOLoopManager,
    IOLoopThreadWrapper,
    MappingProxy,
    ThreadSafeKATCPClientGroupWrapper,
    ThreadSafeKATCPClientResourceRequestWrapper,
    ThreadSafeKATCPClientResourceWrapper,
    ThreadSafeKATCPSensorWrapper,
    ThreadSafeMethodAttrWrapper,
    threadsafe_resource,
)
from ._types import (
    AttrDict,
    DefaultAttrDict,
    KATCPReply,
    KATCPResourceError,
    KATCPResourceInactive,
    KATCPSensorError,
    KATCPSensorReading,
    SensorResultTuple,
    SensorWaitTimeout,
    escape_name,
    normalize_strategy_parameters,
)

#: katcp-python ran on Python 2 as well; katcpx does not.
PY2 = False

KATCPResource.register(KATCPClientResource)
KATCPResource.register(KATCPClientResourceContainer)

__all__ = [
    "Message",
    "PY2",
    "Sensor",
    "ensure_native_str",
    "hashable_identity",
    "KATCPDummyRequest",
    "KATCPResource",
    "KATCPSensorsManager",
    "AttrMappingProxy",
    "IOLoopManager",
    "IOLoopThreadWrapper",
    "MappingProxy",
    "ThreadSafeKATCPClientGroupWrapper",
    "ThreadSafeKATCPClientResourceRequestWrapper",
    "ThreadSafeKATCPClientResourceWrapper",
    "ThreadSafeKATCPSensorWrapper",
    "ThreadSafeMethodAttrWrapper",
    "threadsafe_resource",
    "ClientGroup",
    "GroupRequest",
    "GroupResults",
    "GroupWaitResults",
    "KATCPClientResourceContainer",
    "AttrDict",
    "DefaultAttrDict",
    "InspectingOwner",
    "apply_model_diff",
    "InspectingClient",
    "KATCPClientResource",
    "ResourceParent",
    "KATCPReply",
    "KATCPRequest",
    "KATCPResourceError",
    "KATCPResourceInactive",
    "KATCPSensor",
    "KATCPSensorError",
    "KATCPSensorReading",
    "ModelChanges",
    "SensorResultTuple",
    "SensorWaitTimeout",
    "escape_name",
    "normalize_strategy_parameters",
]
