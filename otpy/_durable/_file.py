"""What every SQLite store says about its file: sqlite's errors in words, and the header check.

A store's file is marked as its own with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; opening refuses, without writing, a file of another
application or of a newer otpy. The stores raise their own error types (an outbox's
``OutboxError``, a journal's ``JournalError``) with the texts made here.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final, TypeVar, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._exceptions import InvalidArgument
from ._writer import DEFAULT_MAX_BATCH, DEFAULT_MAX_PENDING, SQLiteWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "SYNCHRONOUS_MODES",
    "StoreFile",
    "synchronous_mode",
    "check_header",
    "describe_error",
    "missing_columns",
    "open_reader",
    "prepare",
    "scalar",
]


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


def missing_columns(
    db: sqlite3.Connection,
    tables: Sequence[tuple[str, Sequence[str]]],
    version: int,
    added_in: Mapping[str, int],
) -> list[str]:
    """The ``table.column`` names a file of schema *version* should have and lacks.

    Args:
        db: a connection to the file.
        tables: each table and its columns, as the newest schema has them.
        version: the file's ``user_version``.
        added_in: the version that added each ``table.column`` not in version 1; a
            column added after *version* is not missed.
    """
    missing = []
    for table, columns in tables:
        have = {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
        missing += [
            f"{table}.{c}"
            for c in columns
            if c not in have and added_in.get(f"{table}.{c}", 1) <= version
        ]
    return missing


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


SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL", "OFF")
"""The ``synchronous`` settings a store takes: FULL survives a power cut, NORMAL a
crash of the process, OFF nothing (tests only)."""


def synchronous_mode(value: object, *, owner: str | None = None) -> str:
    """Return *value* as one of :data:`SYNCHRONOUS_MODES` (any case accepted).

    Raises:
        InvalidArgument: it is not one of them; the message names ``synchronous``.
    """
    mode = str(value).upper()
    if mode not in SYNCHRONOUS_MODES:
        raise InvalidArgument(
            "synchronous",
            f"must be one of {', '.join(map(repr, SYNCHRONOUS_MODES))}, got {value!r}",
            owner=owner,
        )
    return mode


_T = TypeVar("_T")


@final
class StoreFile:
    """A store's file as it uses it: the write path's thread, and one connection for reads.

    The outbox and the journal hold one each; :meth:`open` checks and migrates the
    file first (:func:`prepare`). Writes go through :attr:`writer` (appends) or
    :meth:`write` (a shared transaction), reads through :meth:`read`, one at a time
    in a worker thread. Once closed, every call raises the store's own error.
    """

    def __init__(
        self,
        path: str,
        writer: SQLiteWriter,
        reader: sqlite3.Connection,
        *,
        translate: Callable[[sqlite3.Error], Exception],
        closed: Callable[[], Exception],
    ) -> None:
        """Wrap an open writer and reader; use :meth:`open` instead."""
        self.path = path
        self.writer = writer
        self._reader: sqlite3.Connection | None = reader
        self._reads = anyio.CapacityLimiter(1)
        self._translate = translate
        self._closed = closed

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        synchronous: str,
        busy_timeout: float,
        prepare: Callable[[str, float], None],
        translate: Callable[[sqlite3.Error], Exception],
        closed: Callable[[], Exception],
        owner: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> StoreFile:
        """Check, migrate and open the file at *path* (its directory must exist).

        Args:
            path: the file.
            synchronous: one of :data:`SYNCHRONOUS_MODES`, in any case.
            busy_timeout: seconds to wait for another process's write lock.
            prepare: checks and migrates the file, blocking (run in a thread).
            translate: the store's error for a sqlite3 error.
            closed: the store's error for a call after :meth:`aclose`.
            owner: the function the options were given to, for their errors.
            max_batch: the most rows one group commit takes.
            max_pending: the most rows waiting for a commit.

        Raises:
            InvalidArgument: *synchronous* is not one of the modes.
        """
        mode = synchronous_mode(synchronous, owner=owner)
        try:
            await anyio.to_thread.run_sync(prepare, path, busy_timeout)
            reader = await anyio.to_thread.run_sync(open_reader, path, busy_timeout)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        try:
            writer = await SQLiteWriter.open(
                path,
                synchronous=mode,
                busy_timeout=busy_timeout,
                translate=translate,
                max_batch=max_batch,
                max_pending=max_pending,
            )
        except BaseException:
            reader.close()
            raise
        return cls(path, writer, reader, translate=translate, closed=closed)

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` has begun."""
        return self.writer.closed or self._reader is None

    def check_open(self) -> None:
        """Raise the store's closed error once :meth:`aclose` has begun."""
        if self.is_closed:
            raise self._closed()

    async def write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *fn* atomically on the writer's thread; return once it is committed.

        It shares its transaction (and fsync) with the bodies queued right behind
        it, under a savepoint of its own: one that raises rolls back alone. *fn*
        runs in the database thread: callers read the clock before, on the event
        loop, and pass the time in.
        """
        self.check_open()
        return await self.writer.transaction(fn, shared=True)

    async def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *fn* on the read connection in a worker thread, one read at a time."""
        async with self._reads:
            reader = self._reader
            if reader is None:
                raise self._closed()
            try:
                return await anyio.to_thread.run_sync(fn, reader)
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    async def aclose(self) -> None:
        """Close, after the operations in progress; further calls raise. Idempotent."""
        with anyio.CancelScope(shield=True):
            await self.writer.aclose()
            async with self._reads:
                reader, self._reader = self._reader, None
                if reader is not None:
                    await anyio.to_thread.run_sync(reader.close)
        await anyio.lowlevel.checkpoint()
