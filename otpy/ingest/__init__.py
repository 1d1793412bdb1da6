"""The ingest side: messages the node accepts, durably, before it answers ``202``.

In progress: docs/ingest.md says what exists and what comes next. So far, the
journal, the store behind "202 only after the message is durable":

- :class:`JournalEntry`: one accepted message (route, ordering key, idempotency
  key, priority, body, headers, trace context), built with :meth:`JournalEntry.new`.
- :class:`JournalStore` (:class:`SQLiteJournalStore` on otpy's one write path, and
  :class:`MemoryJournalStore`): :meth:`~JournalStore.accept` returns once the
  entries are committed, answers a repeat of ``(route, idempotency_key)`` within
  the dedup window with the original's id (:class:`Accepted`), and refuses with
  :exc:`~otpy.JournalFull` past the disk budget; :meth:`~JournalStore.pending` lists
  what waits for the hand-over to the gateway, oldest first, after a crash too;
  :meth:`~JournalStore.mark_handed_over` frees it.
- :class:`JournalStatistics`: depth, oldest age and bytes, per route and in total.
- :class:`Handover`: the loop from the journal to the gateway, one outbox message per
  destination of an entry's route, with ids derived from the entry's
  (:func:`handover_message_id`), so a crash hands a page over again and the outbox
  keeps it once; a backlog drains at a governed rate (:class:`BackfillPolicy`).
  :class:`HandoverWorker` runs it in a supervision tree (:meth:`Handover.child_spec`).

And the HTTP ingest in front of it:

- :class:`IngestApp`: the Starlette app; ``POST /v1/routes/{route}/messages`` and
  ``/batch`` answer ``202`` only after :meth:`~JournalStore.accept` returned, and
  refuse with a JSON ``{"error", "detail"}`` (401, 404, 413, 429, 503) otherwise;
  :meth:`IngestApp.handed_over` is the hand-over's hook for the routes' pressure.
- :class:`IngestRoute`: one route's token, signing secrets, body limit and pressure.
- :class:`IngestServer` (:func:`ingest_server_spec`): Hypercorn serving the app as a
  supervised actor's task, drained on stop; :func:`bind_listener` and
  :func:`serve_asgi` are the two steps it takes, shared with the node's admin API.

And the other sources, behind the same checks:

- :meth:`IngestApp.submit` journals :class:`IngestMessage` objects as the batch
  endpoint would, answering a :class:`SubmitResult` per message (a refusal is a
  result: ``404``, ``413``, ``429``...).
- :class:`MessageSource`: an async iterable of :class:`SourceBatch`;
  :class:`JsonLinesSource` reads the batch endpoint's JSON lines from a file or
  stdin (a line may name its ``route``), :class:`MemorySource` a list.
- :func:`load_source` submits a source batch by batch, waits out the ``429``s, and
  returns a :class:`LoadReport` (accepted, duplicates, each :class:`Refusal`, each
  :class:`Malformed` line); ``otpy ingest load`` runs it on a node's journal.
"""

from __future__ import annotations

from ._app import DEFAULT_MAX_BATCH_SIZE as DEFAULT_MAX_BATCH_SIZE
from ._app import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._app import IngestApp as IngestApp
from ._app import IngestRoute as IngestRoute
from ._app import RouteSettings as RouteSettings
from ._handover import DEFAULT_OUTBOX_LIMIT as DEFAULT_OUTBOX_LIMIT
from ._handover import BackfillPolicy as BackfillPolicy
from ._handover import Handover as Handover
from ._handover import HandoverStatistics as HandoverStatistics
from ._handover import HandoverWorker as HandoverWorker
from ._handover import RouteCountsHook as RouteCountsHook
from ._handover import handover_message_id as handover_message_id
from ._journal import DEFAULT_DEDUP_MAX as DEFAULT_DEDUP_MAX
from ._journal import DEFAULT_DEDUP_TTL as DEFAULT_DEDUP_TTL
from ._journal import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from ._journal import Accepted as Accepted
from ._journal import JournalEntry as JournalEntry
from ._journal import JournalStatistics as JournalStatistics
from ._journal import JournalStore as JournalStore
from ._journal import RouteStatistics as RouteStatistics
from ._journal_memory import MemoryJournalStore as MemoryJournalStore
from ._journal_owned import JournalHandle as JournalHandle
from ._journal_owned import sqlite_journal as sqlite_journal
from ._journal_sqlite import APPLICATION_ID as JOURNAL_APPLICATION_ID
from ._journal_sqlite import SQLiteJournalStore as SQLiteJournalStore
from ._journal_sqlite import open_journal as open_journal
from ._message import IngestMessage as IngestMessage
from ._message import SubmitResult as SubmitResult
from ._serve import bind_listener as bind_listener
from ._serve import serve_asgi as serve_asgi
from ._server import DEFAULT_HOST as DEFAULT_HOST
from ._server import DEFAULT_PORT as DEFAULT_PORT
from ._server import IngestServer as IngestServer
from ._server import ingest_server_spec as ingest_server_spec
from ._sources import DEFAULT_MAX_WAIT as DEFAULT_MAX_WAIT
from ._sources import JsonLinesSource as JsonLinesSource
from ._sources import LoadReport as LoadReport
from ._sources import Malformed as Malformed
from ._sources import MemorySource as MemorySource
from ._sources import MessageSource as MessageSource
from ._sources import Refusal as Refusal
from ._sources import SourceBatch as SourceBatch
from ._sources import load_source as load_source

__all__ = [
    "DEFAULT_OUTBOX_LIMIT",
    "DEFAULT_DEDUP_MAX",
    "DEFAULT_DEDUP_TTL",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_PORT",
    "JOURNAL_APPLICATION_ID",
    "Accepted",
    "BackfillPolicy",
    "Handover",
    "HandoverStatistics",
    "HandoverWorker",
    "IngestApp",
    "IngestMessage",
    "IngestRoute",
    "IngestServer",
    "JournalEntry",
    "JournalHandle",
    "JournalStatistics",
    "JournalStore",
    "JsonLinesSource",
    "LoadReport",
    "Malformed",
    "MemoryJournalStore",
    "MemorySource",
    "MessageSource",
    "Refusal",
    "RouteCountsHook",
    "RouteSettings",
    "RouteStatistics",
    "SQLiteJournalStore",
    "SourceBatch",
    "SubmitResult",
    "bind_listener",
    "handover_message_id",
    "ingest_server_spec",
    "load_source",
    "open_journal",
    "serve_asgi",
    "sqlite_journal",
]
