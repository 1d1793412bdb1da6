"""otpy: OTP-style actors and supervision trees for Python, on anyio."""

from __future__ import annotations

from ._core import IGNORE as IGNORE
from ._core import KILLED as KILLED
from ._core import NO_REPLY as NO_REPLY
from ._core import NOPROC as NOPROC
from ._core import NORMAL as NORMAL
from ._core import SHUTDOWN as SHUTDOWN
from ._core import Actor as Actor
from ._core import ActorRef as ActorRef
from ._core import ActorStatistics as ActorStatistics
from ._core import ActorStatus as ActorStatus
from ._core import Caller as Caller
from ._core import DeadLetterEvent as DeadLetterEvent
from ._core import DeadLetterStream as DeadLetterStream
from ._core import DeadLetterStreamStatistics as DeadLetterStreamStatistics
from ._core import DeadLetterSuppression as DeadLetterSuppression
from ._core import Down as Down
from ._core import Exit as Exit
from ._core import IdleTimeout as IdleTimeout
from ._core import MailboxConfig as MailboxConfig
from ._core import Monitor as Monitor
from ._core import NamedRef as NamedRef
from ._core import Node as Node
from ._core import Overflow as Overflow
from ._core import Receptionist as Receptionist
from ._core import ShutdownWith as ShutdownWith
from ._core import Timer as Timer
from ._core import current_node as current_node
from ._core import is_normal_exit as is_normal_exit
from ._core import named as named
from ._core import open_node as open_node
from ._core import spawn as spawn
from ._core import whereis as whereis
from ._exceptions import *  # noqa: F403
from ._exceptions import __all__ as _exception_names

__version__ = "0.1.0"
from ._supervision import AutoShutdown as AutoShutdown
from ._supervision import Backoff as Backoff
from ._supervision import ChildCounts as ChildCounts
from ._supervision import ChildInfo as ChildInfo
from ._supervision import ChildSpec as ChildSpec
from ._supervision import ChildStatistics as ChildStatistics
from ._supervision import ChildType as ChildType
from ._supervision import DynamicSupervisor as DynamicSupervisor
from ._supervision import DynamicSupervisorSpec as DynamicSupervisorSpec
from ._supervision import Restart as Restart
from ._supervision import Shutdown as Shutdown
from ._supervision import Strategy as Strategy
from ._supervision import Supervisor as Supervisor
from ._supervision import SupervisorFlags as SupervisorFlags
from ._supervision import SupervisorRef as SupervisorRef
from ._supervision import SupervisorSpec as SupervisorSpec
from ._supervision import SupervisorStatistics as SupervisorStatistics
from ._supervision import backoff_delay as backoff_delay
from ._supervision import open_supervisor as open_supervisor
from ._supervision import start_supervisor as start_supervisor
from ._supervision import supervisor_ref as supervisor_ref

__all__ = [
    # actors
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "ActorStatus",
    "Caller",
    "IGNORE",
    "NO_REPLY",
    "Monitor",
    "Timer",
    "MailboxConfig",
    "Overflow",
    # reasons and system messages
    "NORMAL",
    "SHUTDOWN",
    "KILLED",
    "NOPROC",
    "ShutdownWith",
    "is_normal_exit",
    "Down",
    "Exit",
    "IdleTimeout",
    # node
    "Node",
    "NamedRef",
    "Receptionist",
    "open_node",
    "current_node",
    "spawn",
    "whereis",
    "named",
    "DeadLetterEvent",
    "DeadLetterStreamStatistics",
    "DeadLetterStream",
    "DeadLetterSuppression",
    # supervision
    "AutoShutdown",
    "Backoff",
    "ChildSpec",
    "ChildType",
    "DynamicSupervisorSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorFlags",
    "SupervisorSpec",
    "backoff_delay",
    "ChildCounts",
    "ChildInfo",
    "ChildStatistics",
    "DynamicSupervisor",
    "Supervisor",
    "SupervisorRef",
    "SupervisorStatistics",
    "open_supervisor",
    "start_supervisor",
    "supervisor_ref",
    # errors
    *_exception_names,
]

# Names that lived at the top level until 0.2 and that the docs or examples used.
# They stay importable for one release, with a DeprecationWarning naming the new home.
_MOVED: dict[str, tuple[str, str]] = {
    **{
        name: ("otpy.pressure", name)
        for name in (
            "BoundedQueue",
            "GET_PRESSURE",
            "PartitionedQueue",
            "PressureMonitor",
            "PressurePolicy",
            "Priority",
            "RateLimiter",
            "SamplePressure",
            "Threshold",
            "Watched",
            "admit",
            "notify_pressure",
            "pressure_statistics",
        )
    },
    "DeadLetterStatistics": ("otpy", "DeadLetterStreamStatistics"),
    "RestartWindow": ("otpy._supervision", "RestartWindow"),
    "record_restart": ("otpy._supervision", "record_restart"),
}


def __getattr__(name: str) -> object:
    """Resolve a moved name with a DeprecationWarning that says where it lives now."""
    try:
        module_name, new_name = _MOVED[name]
    except KeyError:
        raise AttributeError(f"module 'otpy' has no attribute {name!r}") from None
    import importlib
    import warnings

    where = "otpy" if module_name == "otpy" else module_name
    hint = (
        f"otpy.{name} is deprecated: use {where}.{new_name}"
        if not module_name.startswith("otpy._")
        else f"otpy.{name} is deprecated and will be removed: it is internal arithmetic"
    )
    warnings.warn(hint, DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module_name), new_name)
