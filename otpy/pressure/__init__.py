"""Pressure control: bounded queues, levels with hysteresis, admission by priority, rate limits.

The pieces, lowest first:

- :class:`PressurePolicy` and :class:`Threshold` say when a queue is ``LOW``,
  ``HIGH`` or ``CRITICAL`` (with hysteresis and a minimum dwell); :func:`level_for`,
  :func:`advance` and :func:`admit` are the pure arithmetic behind them, taking
  ``now`` so a test clock drives them.
- :class:`BoundedQueue` and :class:`PartitionedQueue` admit, throttle, defer or shed
  by :class:`Priority` and count every refusal; :func:`open_partitioned_workers` runs
  one supervised worker per partition, and :func:`partition_of` / :func:`stable_hash`
  say which partition a key lands in.
- :class:`RateLimiter` is a token bucket on anyio's clock.
- :class:`PressureMonitor` samples every watched source, publishes transitions as
  spans and metrics (names in :mod:`otpy.telemetry`), and answers
  :func:`pressure_statistics`.
"""

from __future__ import annotations

from .._partition import partition_of as partition_of
from .._partition import stable_hash as stable_hash
from ._monitor import GET_PRESSURE as GET_PRESSURE
from ._monitor import PressureMonitor as PressureMonitor
from ._monitor import PressureStatistics as PressureStatistics
from ._monitor import SamplePressure as SamplePressure
from ._monitor import SourcePressure as SourcePressure
from ._monitor import Watched as Watched
from ._monitor import notify_pressure as notify_pressure
from ._monitor import pressure_statistics as pressure_statistics
from ._partitioned import PartitionedQueue as PartitionedQueue
from ._partitioned import PartitionedQueueStatistics as PartitionedQueueStatistics
from ._partitioned import PartitionStatistics as PartitionStatistics
from ._partitioned import PartitionWorker as PartitionWorker
from ._partitioned import QueueDrainer as QueueDrainer
from ._partitioned import open_partitioned_workers as open_partitioned_workers
from ._policy import Admission as Admission
from ._policy import Level as Level
from ._policy import LevelState as LevelState
from ._policy import PressurePolicy as PressurePolicy
from ._policy import Priority as Priority
from ._policy import Threshold as Threshold
from ._policy import Verdict as Verdict
from ._policy import admit as admit
from ._policy import advance as advance
from ._policy import level_for as level_for
from ._queue import BoundedQueue as BoundedQueue
from ._queue import QueueStatistics as QueueStatistics
from ._ratelimit import RateLimiter as RateLimiter
from ._ratelimit import RateLimiterStatistics as RateLimiterStatistics

__all__ = [
    # levels and admission
    "Level",
    "LevelState",
    "Priority",
    "Threshold",
    "PressurePolicy",
    "Admission",
    "Verdict",
    "level_for",
    "advance",
    "admit",
    # queues
    "BoundedQueue",
    "QueueStatistics",
    "PartitionedQueue",
    "PartitionedQueueStatistics",
    "PartitionStatistics",
    "PartitionWorker",
    "QueueDrainer",
    "open_partitioned_workers",
    "partition_of",
    "stable_hash",
    # rate limiting
    "RateLimiter",
    "RateLimiterStatistics",
    # the monitor
    "PressureMonitor",
    "PressureStatistics",
    "SamplePressure",
    "SourcePressure",
    "Watched",
    "GET_PRESSURE",
    "notify_pressure",
    "pressure_statistics",
]
