"""Dead letters: durable records of what failed, and replay that never repeats a side effect.

See ``docs/dead-letters.md``. The pieces:

- :class:`DeadLetter`, the frozen record, built with :meth:`DeadLetter.capture`;
- :class:`DeadLetterStore`, the store protocol, with :class:`SQLiteDeadLetterStore`
  (the default, durable) and :class:`MemoryDeadLetterStore`;
- the writer that group-commits captures, and the replay supervisor whose workers
  are partitioned by dead-letter key.
"""

from __future__ import annotations

from ._capture import dead_letter_from_event as dead_letter_from_event
from ._capture import encode_payload as encode_payload
from ._capture import route_dead_letters as route_dead_letters
from ._document import iso_time as iso_time
from ._document import record_document as record_document
from ._guard import Action as Action
from ._guard import Decision as Decision
from ._guard import LedgerEntry as LedgerEntry
from ._guard import LedgerState as LedgerState
from ._guard import Reclaimed as Reclaimed
from ._memory import MemoryDeadLetterStore as MemoryDeadLetterStore
from ._owner import DeadLetterRouter as DeadLetterRouter
from ._owner import StoreHandle as StoreHandle
from ._owner import StoreOwner as StoreOwner
from ._owner import dead_letter_children as dead_letter_children
from ._owner import sqlite_store as sqlite_store
from ._record import MAX_ATTRIBUTES as MAX_ATTRIBUTES
from ._record import MAX_ATTRIBUTES_SIZE as MAX_ATTRIBUTES_SIZE
from ._record import Category as Category
from ._record import DeadLetter as DeadLetter
from ._record import Diagnostics as Diagnostics
from ._record import ReplayOutcome as ReplayOutcome
from ._record import ReplayState as ReplayState
from ._record import ReplayStatus as ReplayStatus
from ._record import Source as Source
from ._record import Status as Status
from ._record import new_id as new_id
from ._record import redact as redact
from ._record import redact_attributes as redact_attributes
from ._record import redact_headers as redact_headers
from ._record import stable_id as stable_id
from ._rejections import PartitionedRejectionDeadLetters as PartitionedRejectionDeadLetters
from ._rejections import RejectionDeadLetters as RejectionDeadLetters
from ._rejections import dead_letter_leftovers as dead_letter_leftovers
from ._rejections import (
    dead_letter_partitioned_rejections as dead_letter_partitioned_rejections,
)
from ._rejections import dead_letter_rejections as dead_letter_rejections
from ._rejections import dead_lettering_queue as dead_lettering_queue
from ._replay import MAX_PARTITIONS as MAX_PARTITIONS
from ._replay import ReplayConfig as ReplayConfig
from ._replay import Replayer as Replayer
from ._replay import ReplayHandlers as ReplayHandlers
from ._replay import is_async_callable as is_async_callable
from ._replay import open_replayer as open_replayer
from ._replay import replay_supervisor as replay_supervisor
from ._replay_messages import ReplayResult as ReplayResult
from ._replay_worker import ReplayHandler as ReplayHandler
from ._sqlite import SQLiteDeadLetterStore as SQLiteDeadLetterStore
from ._sqlite import open_store as open_store
from ._store import LEDGER_EVICTED as LEDGER_EVICTED
from ._store import DeadLetterFilter as DeadLetterFilter
from ._store import DeadLetterStore as DeadLetterStore
from ._store import Page as Page
from ._store import ReplayStarter as ReplayStarter
from ._store import RetentionPolicy as RetentionPolicy
from ._store import RetentionRule as RetentionRule
from ._store import StoreStatistics as StoreStatistics
from ._store import SweepResult as SweepResult
from ._writer import DeadLetters as DeadLetters
from ._writer import DeadLettersStatistics as DeadLettersStatistics
from ._writer import DeadLetterWriter as DeadLetterWriter
from ._writer import RetentionSweeper as RetentionSweeper
from ._writer import WriterStatistics as WriterStatistics
from ._writer import running_stores as running_stores

__all__ = [
    "iso_time",
    "record_document",
    "Action",
    "Category",
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterStore",
    "DeadLetterRouter",
    "Decision",
    "Diagnostics",
    "LedgerEntry",
    "LedgerState",
    "MemoryDeadLetterStore",
    "Page",
    "Reclaimed",
    "ReplayOutcome",
    "ReplayStarter",
    "ReplayState",
    "ReplayStatus",
    "RetentionPolicy",
    "RetentionRule",
    "SQLiteDeadLetterStore",
    "Source",
    "Status",
    "StoreStatistics",
    "LEDGER_EVICTED",
    "StoreHandle",
    "StoreOwner",
    "SweepResult",
    "new_id",
    "stable_id",
    "open_store",
    "redact",
    "redact_attributes",
    "redact_headers",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_SIZE",
    # capture: the writer, its client, retention, capture points
    "DeadLetters",
    "DeadLettersStatistics",
    "DeadLetterWriter",
    "RetentionSweeper",
    "WriterStatistics",
    "dead_letter_children",
    "dead_letter_leftovers",
    "dead_letter_partitioned_rejections",
    "dead_letter_rejections",
    "dead_lettering_queue",
    "dead_letter_from_event",
    "encode_payload",
    "route_dead_letters",
    "running_stores",
    # replay: the partitioned replay supervisor and its client
    "PartitionedRejectionDeadLetters",
    "RejectionDeadLetters",
    "MAX_PARTITIONS",
    "ReplayConfig",
    "Replayer",
    "ReplayHandler",
    "ReplayHandlers",
    "ReplayResult",
    "is_async_callable",
    "open_replayer",
    "replay_supervisor",
    "sqlite_store",
]
