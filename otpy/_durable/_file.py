"""What every SQLite store says about its file: sqlite's errors in words, and the header check.

A store's file is marked as its own with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; opening refuses, without writing, a file of another
application or of a newer otpy. The stores raise their own error types (an outbox's
``OutboxError``, a journal's ``JournalError``) with the texts made here.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["check_header", "describe_error", "open_reader", "prepare", "scalar"]


def describe_error(exc: sqlite3.Error, busy_timeout: float, *, full: str) -> str:
    """Say what a sqlite3 error means for a store's file and what to do about it.

    Args:
        exc: the error.
        busy_timeout: the store's wait for another writer's lock, in seconds.
        full: what to say when the disk (or a budget) is full.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = str(exc)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"another process held the write lock for more than {busy_timeout:g}s "
            "(busy_timeout); is another node using this file?"
        )
    if primary == sqlite3.SQLITE_FULL:
        return full
    if primary == sqlite3.SQLITE_NOTADB:
        return "sqlite says the file is not a database"
    if primary == sqlite3.SQLITE_CORRUPT:
        return (
            f"the file is damaged ({message}); stop the node and recover it with "
            "'sqlite3 FILE .recover'"
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return f"cannot open the file ({message}); check that its directory exists and is writable"
    if primary == sqlite3.SQLITE_READONLY:
        return f"the file or its directory is not writable ({message})"
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    return f"sqlite failed with {name}: {message}"


def scalar(db: sqlite3.Connection, sql: str) -> int:
    """The one integer *sql* selects."""
    (value,) = db.execute(sql).fetchone()
    assert isinstance(value, int)
    return value


def check_header(
    db: sqlite3.Connection,
    *,
    what: str,
    application_id: int,
    schema_version: int,
    refuse: Callable[[str], Exception],
) -> int:
    """Return the file's schema version (0 when it is new), or refuse it without writing.

    Args:
        db: a connection to the file.
        what: the store, as its messages name it (``"the outbox"``).
        application_id: the store's ``PRAGMA application_id``.
        schema_version: the newest ``user_version`` this otpy knows.
        refuse: makes the store's error from a reason (``"refused: ..."``).
    """
    found = scalar(db, "PRAGMA application_id")
    version = scalar(db, "PRAGMA user_version")
    if found == 0:
        if scalar(db, "SELECT count(*) FROM sqlite_master"):
            raise refuse(
                "refused: it is an SQLite database of another application "
                f"(give {what} a file of its own)"
            )
        return 0
    if found != application_id:
        raise refuse(
            f"refused: its SQLite application_id is {found:#010x}, not "
            f"{what}'s {application_id:#010x} (is it another otpy store's file?)"
        )
    if version > schema_version:
        raise refuse(
            f"refused: schema version {version} was written by a newer otpy "
            f"(this one knows up to {schema_version}); upgrade otpy"
        )
    return version


def prepare(
    path: str,
    busy_timeout: float,
    *,
    migrations: Sequence[Sequence[str]],
    application_id: int,
    header: Callable[[sqlite3.Connection], int],
    schema: Callable[[sqlite3.Connection, int], None],
) -> None:
    """Check a store's file, switch it to WAL and migrate it; blocking: run it in a thread.

    Refuses a file before writing anything (*header*, then *schema* for an existing
    file), then takes it from its ``user_version`` to ``len(migrations)``, each step
    one transaction that checks the header again under the write lock (another
    process may have migrated it meanwhile).

    Args:
        path: the file.
        busy_timeout: seconds to wait for another writer's lock.
        migrations: ``migrations[n]`` takes the file from version n to n + 1.
        application_id: the store's ``PRAGMA application_id``, set with each step.
        header: :func:`check_header` for this store: the version, or its refusal.
        schema: refuses a file of that version whose tables are damaged.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        version = header(db)  # refuse before writing anything
        if version:
            schema(db, version)
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        while version < len(migrations):
            db.execute("BEGIN IMMEDIATE")
            try:
                version = header(db)  # again, under the write lock
                if version < len(migrations):
                    for statement in migrations[version]:
                        db.execute(statement)
                    db.execute(f"PRAGMA application_id = {application_id:d}")
                    db.execute(f"PRAGMA user_version = {version + 1:d}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            version = header(db)
    finally:
        db.close()


def open_reader(path: str, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to a store's file, for reads beside the writer's thread."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    try:
        db.execute("PRAGMA query_only = ON")
    except BaseException:
        db.close()
        raise
    return db
