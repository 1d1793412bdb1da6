"""otpy: OTP-style actors and supervision trees for Python, on anyio."""

from __future__ import annotations

from ._core._actor import IGNORE as IGNORE
from ._core._actor import NO_REPLY as NO_REPLY
from ._core._actor import Actor as Actor
from ._core._actor import Caller as Caller
from ._core._deadletters import DeadLetterEvent as DeadLetterEvent
from ._core._deadletters import DeadLetterStatistics as DeadLetterStatistics
from ._core._deadletters import DeadLetterStream as DeadLetterStream
from ._core._deadletters import DeadLetterSuppression as DeadLetterSuppression
from ._core._mailbox import MailboxConfig as MailboxConfig
from ._core._mailbox import Overflow as Overflow
from ._core._node import NamedRef as NamedRef
from ._core._node import Node as Node
from ._core._node import current_node as current_node
from ._core._node import named as named
from ._core._node import open_node as open_node
from ._core._node import spawn as spawn
from ._core._node import whereis as whereis
from ._core._reasons import KILLED as KILLED
from ._core._reasons import NOPROC as NOPROC
from ._core._reasons import NORMAL as NORMAL
from ._core._reasons import SHUTDOWN as SHUTDOWN
from ._core._reasons import Down as Down
from ._core._reasons import Exit as Exit
from ._core._reasons import IdleTimeout as IdleTimeout
from ._core._reasons import ShutdownWith as ShutdownWith
from ._core._reasons import is_normal_exit as is_normal_exit
from ._core._receptionist import Receptionist as Receptionist
from ._core._ref import ActorRef as ActorRef
from ._core._ref import ActorStatistics as ActorStatistics
from ._core._ref import ActorStatus as ActorStatus
from ._core._ref import Monitor as Monitor
from ._core._ref import Timer as Timer
from ._exceptions import *  # noqa: F403
from ._exceptions import __all__ as _exception_names
from ._partition import partition_of as partition_of
from ._partition import stable_hash as stable_hash
from ._pressure._monitor import GET_PRESSURE as GET_PRESSURE
from ._pressure._monitor import PressureMonitor as PressureMonitor
from ._pressure._monitor import PressureStatistics as PressureStatistics
from ._pressure._monitor import SamplePressure as SamplePressure
from ._pressure._monitor import SourcePressure as SourcePressure
from ._pressure._monitor import Watched as Watched
from ._pressure._monitor import notify_pressure as notify_pressure
from ._pressure._monitor import pressure_statistics as pressure_statistics
from ._pressure._partitioned import PartitionedQueue as PartitionedQueue
from ._pressure._partitioned import PartitionedQueueStatistics as PartitionedQueueStatistics
from ._pressure._partitioned import PartitionStatistics as PartitionStatistics
from ._pressure._partitioned import PartitionWorker as PartitionWorker
from ._pressure._partitioned import QueueDrainer as QueueDrainer
from ._pressure._partitioned import open_partitioned_workers as open_partitioned_workers
from ._pressure._policy import Admission as Admission
from ._pressure._policy import Level as Level
from ._pressure._policy import LevelState as LevelState
from ._pressure._policy import PressurePolicy as PressurePolicy
from ._pressure._policy import Priority as Priority
from ._pressure._policy import Threshold as Threshold
from ._pressure._policy import Verdict as Verdict
from ._pressure._policy import admit as admit
from ._pressure._policy import advance as advance
from ._pressure._policy import level_for as level_for
from ._pressure._queue import BoundedQueue as BoundedQueue
from ._pressure._queue import QueueStatistics as QueueStatistics
from ._pressure._ratelimit import RateLimiter as RateLimiter
from ._pressure._ratelimit import RateLimiterStatistics as RateLimiterStatistics

__version__ = "0.1.0"
from ._supervision._spec import AutoShutdown as AutoShutdown
from ._supervision._spec import Backoff as Backoff
from ._supervision._spec import ChildSpec as ChildSpec
from ._supervision._spec import ChildType as ChildType
from ._supervision._spec import DynamicSupervisorSpec as DynamicSupervisorSpec
from ._supervision._spec import Restart as Restart
from ._supervision._spec import Shutdown as Shutdown
from ._supervision._spec import Strategy as Strategy
from ._supervision._spec import SupervisorFlags as SupervisorFlags
from ._supervision._spec import SupervisorSpec as SupervisorSpec
from ._supervision._spec import backoff_delay as backoff_delay
from ._supervision._supervisor import ChildCounts as ChildCounts
from ._supervision._supervisor import ChildInfo as ChildInfo
from ._supervision._supervisor import ChildStatistics as ChildStatistics
from ._supervision._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervision._supervisor import Supervisor as Supervisor
from ._supervision._supervisor import SupervisorRef as SupervisorRef
from ._supervision._supervisor import SupervisorStatistics as SupervisorStatistics
from ._supervision._supervisor import open_supervisor as open_supervisor
from ._supervision._supervisor import start_supervisor as start_supervisor
from ._supervision._supervisor import supervisor_ref as supervisor_ref
from ._supervision._window import RestartWindow as RestartWindow
from ._supervision._window import record_restart as record_restart

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
    "DeadLetterStatistics",
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
    "RestartWindow",
    "record_restart",
    # pressure
    "Admission",
    "BoundedQueue",
    "Level",
    "LevelState",
    "PressurePolicy",
    "Priority",
    "QueueStatistics",
    "PartitionedQueue",
    "PartitionedQueueStatistics",
    "PartitionStatistics",
    "PartitionWorker",
    "QueueDrainer",
    "open_partitioned_workers",
    "partition_of",
    "stable_hash",
    "RateLimiter",
    "RateLimiterStatistics",
    "Threshold",
    "Verdict",
    "admit",
    "advance",
    "level_for",
    "GET_PRESSURE",
    "PressureMonitor",
    "PressureStatistics",
    "SamplePressure",
    "SourcePressure",
    "Watched",
    "notify_pressure",
    "pressure_statistics",
    # errors
    *_exception_names,
]
