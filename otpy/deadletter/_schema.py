"""The store file's schema: its tables and columns, its version and migrations, the checks at open.

The file is marked as ours with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; opening migrates an older schema (:func:`migrate`) and
refuses, without writing a byte, a file that is not an otpy store, was written by a
newer otpy (:func:`check_header`) or lacks a table or column the store needs
(:func:`check_schema`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

import anyio

from .._exceptions import (
    DeadLetterStoreError,
    NotAnOtpyStore,
    StoreSchemaDamaged,
    StoreVersionTooNew,
)
from .._redact import get_logger
from ._connection import rollback, scalar

if TYPE_CHECKING:
    import aiosqlite

__all__ = [
    "ADDED_BY",
    "APPLICATION_ID",
    "COLUMNS",
    "MIGRATIONS",
    "REQUIRED_SCHEMA",
    "check_header",
    "check_readable",
    "check_schema",
    "migrate",
]

logger = get_logger("otpy.deadletter")

APPLICATION_ID: Final = 0x6F747079
"""``PRAGMA application_id`` of an otpy store: ``"otpy"`` in ASCII."""

_V1: Final = (
    """
    CREATE TABLE dead_letters (
        id TEXT PRIMARY KEY NOT NULL,
        key TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        reason_class TEXT NOT NULL,
        reason TEXT NOT NULL,
        category TEXT NOT NULL,
        correlation_id TEXT,
        idempotency_key TEXT,
        attempt INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        payload BLOB,
        payload_size INTEGER NOT NULL,
        payload_external INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        headers TEXT NOT NULL,
        pressure_level TEXT,
        queue_depth INTEGER,
        queue_capacity INTEGER,
        trace_context TEXT NOT NULL,
        replay_status TEXT NOT NULL,
        replay_attempts INTEGER NOT NULL,
        replay_last_attempt_at REAL,
        replay_last_outcome TEXT,
        replay_last_error TEXT,
        lease_expires_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE INDEX dead_letters_status_id ON dead_letters (status, id)",
    "CREATE INDEX dead_letters_key_id ON dead_letters (key, id)",
    "CREATE INDEX dead_letters_idempotency_key ON dead_letters (idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    # Listing by replay status, newest first; and reclaiming: running records are few
    # (one per replay worker), so their range of this index is all reclaim reads.
    "CREATE INDEX dead_letters_replay_status_id ON dead_letters (replay_status, id)",
    "CREATE INDEX dead_letters_created_at ON dead_letters (created_at)",
    """
    CREATE TABLE payloads (
        id TEXT PRIMARY KEY NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
        data BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE ledger (
        key TEXT PRIMARY KEY NOT NULL,
        state TEXT NOT NULL,
        record_id TEXT NOT NULL,
        expires_at REAL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
)

_V2: Final = (
    # Ledger pruning (RetentionPolicy.ledger_max_age) reads only the entries older
    # than its cutoff, instead of the whole ledger at every sweep.
    "CREATE INDEX ledger_updated_at ON ledger (updated_at)",
)

_V3: Final = (
    # DeadLetter.attributes: (name, value) pairs as a JSON list, as headers are kept;
    # records captured before have none.
    "ALTER TABLE dead_letters ADD COLUMN attributes TEXT NOT NULL DEFAULT '[]'",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
"""``MIGRATIONS[n]`` takes a store from ``user_version`` n to n + 1, in one transaction."""

COLUMNS: Final = (
    "id",
    "key",
    "source",
    "status",
    "reason_class",
    "reason",
    "category",
    "correlation_id",
    "idempotency_key",
    "attempt",
    "max_attempts",
    "payload",
    "payload_size",
    "payload_external",
    "content_type",
    "headers",
    "pressure_level",
    "queue_depth",
    "queue_capacity",
    "trace_context",
    "attributes",
    "replay_status",
    "replay_attempts",
    "replay_last_attempt_at",
    "replay_last_outcome",
    "replay_last_error",
    "lease_expires_at",
    "created_at",
    "updated_at",
)
"""The columns of ``dead_letters``, in the order of a row the codec encodes and decodes."""
REQUIRED_SCHEMA: Final = {
    "dead_letters": COLUMNS,
    "payloads": ("id", "data"),
    "ledger": ("key", "state", "record_id", "expires_at", "updated_at"),
    "counters": ("name", "value"),
}
"""The tables and columns the store reads and writes; opening checks they are there."""
ADDED_BY: Final = {("dead_letters", "attributes"): 3}
"""The columns a migration added, with the schema version it took the store to: a
file of an older version lacks them until it is migrated, and is not damaged for that."""

# -- checks at open ---------------------------------------------------------------------


async def check_header(db: aiosqlite.Connection, path: str) -> int:
    """Return the file's schema version (0 when it is new), or refuse it without writing."""
    application_id = await scalar(db, "PRAGMA application_id")
    version = await scalar(db, "PRAGMA user_version")
    assert isinstance(application_id, int)
    assert isinstance(version, int)
    if application_id == 0:
        tables = await scalar(db, "SELECT count(*) FROM sqlite_master")
        if tables:
            raise NotAnOtpyStore(path, "it is an SQLite database of another application")
        return 0
    if application_id != APPLICATION_ID:
        raise NotAnOtpyStore(
            path, f"its SQLite application_id is {application_id:#010x}, not {APPLICATION_ID:#010x}"
        )
    if version > len(MIGRATIONS):
        raise StoreVersionTooNew(path, version, len(MIGRATIONS))
    return version


async def check_schema(db: aiosqlite.Connection, path: str, version: int) -> None:
    """Refuse, without writing, a store missing a table or column in ``REQUIRED_SCHEMA``.

    A column that a migration past *version* (the file's schema version) adds is not
    required: migrating adds it.
    """
    rows = await db.execute_fetchall(
        "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
        "WHERE m.type = 'table'"
    )
    columns = {(str(table), str(column)) for table, column in rows}
    tables = {table for table, _ in columns}
    missing: list[str] = []
    for table, needed in REQUIRED_SCHEMA.items():
        if table not in tables:
            missing.append(f"table {table}")
        else:
            missing += [
                f"column {table}.{c}"
                for c in needed
                if (table, c) not in columns and ADDED_BY.get((table, c), 0) <= version
            ]
    if missing:
        raise StoreSchemaDamaged(path, tuple(missing))


def check_readable(path: str, version: int) -> None:
    """Refuse, for a read-only open, a file with no otpy schema or an older one."""
    if version == 0:
        detail = "the file is empty" if os.path.getsize(path) == 0 else "it has no otpy schema"
        raise NotAnOtpyStore(path, detail)
    if version < len(MIGRATIONS):
        raise DeadLetterStoreError(
            path,
            f"schema version {version} is older than this otpy's ({len(MIGRATIONS)}) and a "
            "read-only open does not migrate it: start the node on it, or run a command that "
            "writes ('otpy dlq archive', 'otpy dlq purge'), to migrate it",
        )


async def migrate(db: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to ``len(MIGRATIONS)``, one transaction per step."""
    while True:
        try:
            await db.execute("BEGIN IMMEDIATE")
            version = await check_header(db, path)  # again, under the write lock
            if version == len(MIGRATIONS):
                await db.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                await db.execute(statement)
            await db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            await db.execute(f"PRAGMA user_version = {version + 1:d}")
            await db.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await rollback(db)
            raise
        logger.info("dead-letter store %s: schema migrated to version %d", path, version + 1)
