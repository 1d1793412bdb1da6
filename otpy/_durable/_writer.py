"""The write path: one SQLite connection on its own thread, group commit, answers after commit.

Callers hand :meth:`SQLiteWriter.append` their rows and await the commit that holds
them. The writer's thread takes whatever is waiting, up to ``max_batch`` rows, and
commits it as one transaction: ``BEGIN IMMEDIATE``, the rows of each table in as
few multi-row ``INSERT`` s as the sizes allow, the tables' per-batch statements,
``COMMIT``. It then answers the whole batch with one call into the event loop and
takes the next batch, which filled while the disk synced: the loop never has to
hand the thread its next transaction, so the disk does not wait for the loop.

Exclusive transactions (:meth:`SQLiteWriter.transaction`) run one per commit; shared
ones (``transaction(fn, shared=True)``) queued one after another run in one
transaction, each under its own savepoint, so they share its fsync too.

Each transaction first tries the whole batch at once. If a write in it cannot go in
as it is (a constraint, a value SQLite cannot bind, a conflict a table's ``check``
refuses), the batch is tried again write by write, each under its own savepoint, so
only that write fails and the others commit. An error of the database itself (disk
full, I/O, locked) fails the whole batch: nothing in it is acknowledged.

Bounded: at most about ``max_pending`` rows wait; an append beyond that waits for
room (bound it with a cancel scope). A caller cancelled while its rows wait takes
them back; one cancelled once the thread has taken them is not answered, but its
rows are committed.

It runs on asyncio (answers through ``call_soon_threadsafe``, callers wait on plain
futures, the cheapest wake-up there) and on trio (through anyio's event-loop token).

The thread and the event loop share the GIL: SQLite's own work (the insert into
the table and its indexes, the fsync) runs with it released, but binding the
rows and every step between statements need it. Hence few statements per batch
(see ``_table.py``) and :data:`_YIELD_EVERY`.
"""

from __future__ import annotations

import collections
import functools
import operator
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Final, TypeVar, final

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._check import count
from .._core import TIMED_OUT, current_backend, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._core import OneShot
    from ._table import Row, Table

__all__ = ["SQLiteWriter", "Write", "WriterStatistics", "connect"]

_T = TypeVar("_T")

DEFAULT_MAX_BATCH: Final = 1000
DEFAULT_MAX_PENDING: Final = 20_000

_first: Final = operator.itemgetter(0)

_YIELD_EVERY: Final = 63
"""Every 64th append the event loop lets the GIL go (``time.sleep(0)``).

The writer's thread needs the GIL between its statements; while the loop runs
Python (waking a batch of callers, taking their next appends) it gets it only when
the interpreter forces a switch, every ``sys.getswitchinterval()`` (5 ms), and the
disk idles meanwhile. Handing it over every 64 appends (well under a millisecond of
loop time) took 1,000 producers from about 26k to 35k captures/s
(docs/performance.md); every 16th did worse, with smaller batches.
"""

_PER_WRITE_ERRORS: Final = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
)
"""What one write's rows can raise without anything being wrong with the database."""


@final
class Write:
    """What one caller appends: rows for tables, then statements, all or nothing.

    A plain class, not attrs: one is built per append, on the hot path.

    Args:
        inserts: ``(table, rows)`` pairs; the rows of every write in a batch that go
            to one table are inserted together.
        statements: ``(sql, rows)`` pairs run with ``executemany`` after the inserts
            (rarely needed: a row in a second table that selects from the first).

    Attributes:
        rows: how many rows the write holds, for the bound on pending rows.
        inserted: how many of them its inserts hold (its answer when none is skipped).
    """

    __slots__ = ("inserted", "inserts", "rows", "statements")

    def __init__(
        self,
        inserts: Sequence[tuple[Table, Sequence[Row]]],
        statements: Sequence[tuple[str, Sequence[Row]]] = (),
    ) -> None:
        self.inserts = inserts
        self.statements = statements
        inserted = 0
        for _, table_rows in inserts:
            inserted += len(table_rows)
        rows = inserted
        for _, statement_rows in statements:
            rows += len(statement_rows)
        self.inserted = inserted
        self.rows = rows

    def __repr__(self) -> str:
        return f"<Write {self.rows} rows>"


@attrs.frozen(kw_only=True)
class WriterStatistics:
    """Counters of one :class:`SQLiteWriter`.

    Attributes:
        batches: group commits that committed.
        rows: rows appended by them.
        largest_batch: the most rows one group commit held.
        failed_batches: group commits the database refused (nothing in them stored).
        failed_writes: writes refused alone, their batch committing without them.
        transactions: transactions (:meth:`SQLiteWriter.transaction`) run, shared
            ones counted one by one.
        pending: rows waiting for the next commit.
    """

    batches: int
    rows: int
    largest_batch: int
    failed_batches: int
    failed_writes: int
    transactions: int
    pending: int


class _Entry:
    """One caller's write (or transaction) in the queue, and its answer.

    ``wake`` is the future its caller waits on (the core's cheapest for the running
    backend: a plain future on asyncio). ``taken`` is set (under the writer's mutex) when the
    thread takes it into a batch; ``done``, ``result`` and ``error`` by the thread.
    """

    __slots__ = ("done", "error", "fn", "result", "rows", "shared", "taken", "wake", "write")

    def __init__(
        self,
        write: Write | None,
        fn: Callable[[sqlite3.Connection], object] | None,
        wake: OneShot,
        shared: bool = False,
    ) -> None:
        self.write = write
        self.fn = fn
        self.shared = shared
        self.rows = write.rows if write is not None else 0
        self.wake = wake
        self.taken = False
        self.done = False
        self.result: object = None
        self.error: BaseException | None = None


def connect(
    path: str, *, synchronous: str, busy_timeout: float, pragmas: Sequence[str] = ()
) -> sqlite3.Connection:
    """Open the write path's connection to *path* (blocking: run it in a thread).

    *pragmas* are run after the usual ones (``"max_page_count = 100"``, say).
    """
    db = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout,
        cached_statements=256,
    )
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        for pragma in pragmas:
            db.execute(f"PRAGMA {pragma}").fetchall()
    except BaseException:
        db.close()
        raise
    return db


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:  # pragma: no cover - needs an I/O error during rollback
            pass  # the original error is what the callers get


def _is_per_write(exc: BaseException) -> bool:
    return isinstance(exc, _PER_WRITE_ERRORS) or (
        isinstance(exc, Exception) and not isinstance(exc, sqlite3.Error)
    )


@final
class SQLiteWriter:
    """Every write of one SQLite store, group-committed by one thread on one connection.

    Build it with :meth:`open` (or from a connection made by :func:`connect`, inside
    the event loop that will use it); close it with :meth:`aclose`.

    Args:
        db: a connection made by :func:`connect` (``check_same_thread=False``); the
            writer's thread uses and closes it.
        translate: turns a ``sqlite3.Error`` into the error the store's callers get.
        max_batch: the most rows one group commit takes (a larger write goes alone).
        max_pending: about the most rows waiting; beyond it, appends wait for room.
        name: the thread's name, for debuggers and ``py-spy``.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        translate: Callable[[sqlite3.Error], Exception],
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        name: str = "otpy-sqlite-writer",
    ) -> None:
        self._translate = translate
        self._max_batch = count(max_batch, "max_batch", owner="SQLiteWriter", minimum=1)
        self._max_pending = count(max_pending, "max_pending", owner="SQLiteWriter", minimum=1)
        self._db = db
        self._variables = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._backend = backend = current_backend()
        self._new_future = backend.new_future
        self._deadlines = backend.deadlines
        self._post: Callable[[Callable[[], object]], object]
        if backend.loop is not None:
            self._post = backend.loop.call_soon_threadsafe
        else:  # trio, the other anyio backend
            self._post = functools.partial(
                anyio.from_thread.run_sync, token=anyio.lowlevel.current_token()
            )
        self._mutex = threading.Lock()
        self._work = threading.Condition(self._mutex)
        self._queue: collections.deque[_Entry] = collections.deque()
        self._pending_rows = 0  # changed under the mutex; read without it for the bound
        self._room: anyio.Event | None = None
        self._appends = 0
        self._closing = False
        self._idle = False  # the thread waits for work (under the mutex)
        self._stopped = anyio.Event()
        self._batches = 0
        self._rows = 0
        self._largest = 0
        self._failed_batches = 0
        self._failed_writes = 0
        self._transactions = 0
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        pragmas: Sequence[str] = (),
        translate: Callable[[sqlite3.Error], Exception],
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> SQLiteWriter:
        """Connect to *path* (an existing, migrated store file) and start its writer.

        Raises:
            Exception: what *translate* makes of the ``sqlite3.Error`` opening raised.
        """
        try:
            db = await anyio.to_thread.run_sync(
                functools.partial(
                    connect,
                    path,
                    synchronous=synchronous,
                    busy_timeout=busy_timeout,
                    pragmas=pragmas,
                )
            )
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return cls(
            db,
            translate=translate,
            max_batch=max_batch,
            max_pending=max_pending,
            name=f"otpy-sqlite-writer {path}",
        )

    def __repr__(self) -> str:
        state = " closed" if self._closing else ""
        return f"<SQLiteWriter{state} pending={self._pending_rows}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has begun: appends and transactions raise."""
        return self._closing

    # -- the public calls -------------------------------------------------------------

    async def append(self, write: Write, *, timeout: float | None = None) -> int:
        """Commit *write* with whatever else is waiting; return how many of its rows went in.

        Rows a table's ``ON CONFLICT`` skipped (and its ``check`` accepted) are not
        counted. Returns only after the transaction holding the rows has committed.

        Args:
            write: the rows.
            timeout: seconds to wait for room and then for the commit; ``None``: no
                limit.

        Raises:
            TimeoutError: not committed within *timeout*. Rows still waiting were
                taken back; rows already in the thread's transaction commit anyway.
            Exception: the translated error of a batch the database refused (nothing
                in it was stored), or the error that refused this write alone.
        """
        if self._pending_rows >= self._max_pending:
            if timeout is None:
                await self._wait_for_room()
            else:
                deadline = anyio.current_time() + timeout
                with anyio.move_on_after(timeout):
                    await self._wait_for_room()
                if self._pending_rows >= self._max_pending and not self._closing:
                    raise TimeoutError(f"no room to queue the write within {timeout:g}s")
                timeout = max(deadline - anyio.current_time(), 0.0)
        result = await self._submit(write, None, timeout)
        assert isinstance(result, int)
        return result

    async def transaction(
        self, fn: Callable[[sqlite3.Connection], _T], *, shared: bool = False
    ) -> _T:
        """Run ``fn(connection)`` in a ``BEGIN IMMEDIATE`` transaction, in line with appends.

        Its own transaction, unless *shared*. *fn* runs in the writer's thread: it
        must not block on anything but the database, nor touch the event loop. Whatever it raises rolls the
        transaction back and is raised here (a ``sqlite3.Error`` translated). A
        caller cancelled before the call runs nothing; one cancelled once the
        thread has taken *fn* gets no answer, but *fn* runs to its commit.

        With *shared*, *fn* runs under a savepoint in a transaction shared with the
        shared transactions queued right behind it (up to ``max_batch`` of them),
        one after another, and is answered after that transaction commits: many
        short read-modify-write steps share one fsync. It is still all or nothing,
        and sees the changes of those before it as if they had committed: what it
        raises rolls back its savepoint only, and reaches its caller alone (as
        :meth:`append` does for a write that cannot be stored), while an error of
        the database itself (full, I/O, locked) fails every one of them with
        nothing stored. *fn* must not commit, roll back or release savepoints it
        did not open.
        """
        # A caller already cancelled never queues: the thread could take it at once.
        await anyio.lowlevel.checkpoint_if_cancelled()
        result: _T = await self._submit(None, fn, None, shared)  # type: ignore[assignment]
        return result

    def statistics(self) -> WriterStatistics:
        """Return the writer's counters."""
        return WriterStatistics(
            batches=self._batches,
            rows=self._rows,
            largest_batch=self._largest,
            failed_batches=self._failed_batches,
            failed_writes=self._failed_writes,
            transactions=self._transactions,
            pending=self._pending_rows,
        )

    async def aclose(self) -> None:
        """Refuse new work, let what is queued commit, then close the connection. Idempotent."""
        with self._mutex:
            self._closing = True
            self._work.notify()
        with anyio.CancelScope(shield=True):
            await self._stopped.wait()

    # -- the event loop's side ----------------------------------------------------------

    def _closed_error(self) -> Exception:
        return self._translate(sqlite3.ProgrammingError("Cannot operate on a closed database."))

    async def _wait_for_room(self) -> None:
        while self._pending_rows >= self._max_pending and not self._closing:
            self._room = self._room or anyio.Event()
            await self._room.wait()

    async def _submit(
        self,
        write: Write | None,
        fn: Callable[[sqlite3.Connection], object] | None,
        timeout: float | None,
        shared: bool = False,
    ) -> object:
        if self._closing:
            await anyio.lowlevel.checkpoint()
            raise self._closed_error()
        wake = self._new_future()
        entry = _Entry(write, fn, wake, shared)
        with self._mutex:
            self._queue.append(entry)
            self._pending_rows += entry.rows
            if self._idle:
                self._work.notify()
        self._appends += 1
        if not self._appends & _YIELD_EVERY:
            time.sleep(0)  # noqa: ASYNC251 - returns at once; hands the GIL over
        try:
            if timeout is None:
                outcome = await wake
            elif self._deadlines is not None:  # asyncio: one timer for all, not one each
                self._deadlines.add(timeout, wake)
                outcome = await wake
            else:
                outcome = await wait_for(self._backend, wake, timeout)
        except BaseException:
            self._take_back(entry)
            raise
        if outcome is TIMED_OUT:
            self._take_back(entry)
            raise TimeoutError(f"the write was not committed within {timeout:g}s")
        error = entry.error
        if error is None:
            return entry.result
        if isinstance(error, sqlite3.Error):
            raise self._translate(error) from error
        raise error

    def _take_back(self, entry: _Entry) -> None:
        """Take a caller's entry out of the queue unless the thread has it (then it commits unanswered)."""
        with self._mutex:
            if not entry.taken:
                self._queue.remove(entry)
                self._pending_rows -= entry.rows

    def _answer(self, batch: list[_Entry]) -> None:
        """Wake the callers of a finished batch (called in the event loop by the thread)."""
        for entry in batch:
            wake = entry.wake
            if not wake.done():  # a cancelled or timed-out caller's is done
                wake.set_result(None)
        if self._room is not None and self._pending_rows < self._max_pending:
            self._room.set()
            self._room = None

    def _finish(self) -> None:
        """The thread has stopped (called in the event loop by the thread)."""
        self._stopped.set()
        if self._room is not None:
            self._room.set()
            self._room = None

    # -- the thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        """The writer's thread: take a batch, commit it, answer it; until closed and drained."""
        try:
            while True:
                with self._mutex:
                    while not self._queue and not self._closing:
                        self._idle = True
                        self._work.wait()
                        self._idle = False
                    if not self._queue:
                        break
                    batch = self._take()
                self._run(batch)
                try:
                    self._post(functools.partial(self._answer, batch))
                except RuntimeError:  # pragma: no cover - the loop closed without aclose()
                    return  # nobody is left to answer; what was committed stays committed
        finally:
            self._db.close()
            try:
                self._post(self._finish)
            except RuntimeError:  # pragma: no cover - the event loop is gone already
                pass

    def _take(self) -> list[_Entry]:
        """Take the batch at the head of the queue (under the mutex): one exclusive
        transaction, shared ones up to ``max_batch`` of them, or appends up to
        ``max_batch`` rows."""
        queue = self._queue
        head = queue.popleft()
        head.taken = True
        batch = [head]
        rows = head.rows
        if head.shared:
            while queue and queue[0].shared and len(batch) < self._max_batch:
                entry = queue.popleft()
                entry.taken = True
                batch.append(entry)
        elif head.fn is None:
            while queue:
                entry = queue[0]
                if entry.fn is not None or rows + entry.rows > self._max_batch:
                    break
                queue.popleft()
                entry.taken = True
                batch.append(entry)
                rows += entry.rows
        self._pending_rows -= rows
        return batch

    def _run(self, batch: list[_Entry]) -> None:
        """Run *batch* in the writer's thread; set each entry's answer.

        The counters are written here, by the one thread that runs batches; the
        loop only reads them.
        """
        try:
            if batch[0].shared:
                self._transact(functools.partial(self._run_shared, batch=batch))
                self._transactions += len(batch)
            elif batch[0].fn is not None:
                batch[0].result = self._transact(batch[0].fn)
                self._transactions += 1
            else:
                try:
                    rows = self._transact(functools.partial(self._insert_together, batch=batch))
                except (_Skipped, *_PER_WRITE_ERRORS):
                    self._transact(functools.partial(self._insert_each, batch=batch))
                    rows = sum(entry.rows for entry in batch if entry.error is None)
                    self._failed_writes += sum(1 for entry in batch if entry.error is not None)
                self._batches += 1
                self._rows += rows
                self._largest = max(self._largest, rows)
        except Exception as exc:
            for entry in batch:
                entry.error = exc
            if batch[0].fn is None:
                self._failed_batches += 1
        for entry in batch:
            entry.done = True

    def _transact(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *body* between ``BEGIN IMMEDIATE`` and ``COMMIT``; roll back if anything raises."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = body(db)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return result

    def _run_shared(self, db: sqlite3.Connection, *, batch: list[_Entry]) -> None:
        """Run the shared transactions of *batch* in order, each under a savepoint: one that raises fails alone."""
        for entry in batch:
            fn = entry.fn
            assert fn is not None
            db.execute("SAVEPOINT shared")
            try:
                entry.result = fn(db)
            except Exception as exc:
                if not _is_per_write(exc):
                    raise
                db.execute("ROLLBACK TO shared")
                db.execute("RELEASE shared")
                entry.error = exc
                continue
            db.execute("RELEASE shared")

    def _insert_together(self, db: sqlite3.Connection, *, batch: list[_Entry]) -> int:
        """Insert every write of *batch* at once; return the rows written.

        Raises ``_Skipped`` if a conflict skipped a row.
        """
        tables: dict[Table, list[Row]] = {}
        statements: dict[str, list[Row]] = {}
        written = 0
        for entry in batch:
            write = entry.write
            assert write is not None
            for table, rows in write.inserts:
                tables.setdefault(table, []).extend(rows)
            for sql, rows in write.statements:
                statements.setdefault(sql, []).extend(rows)
            entry.result = write.inserted
            written += write.rows
        for table, rows in tables.items():
            if table.sort:
                rows.sort(key=_first)
            if table.insert(db, rows, self._variables) != len(rows):
                raise _Skipped
        for sql, rows in statements.items():
            db.executemany(sql, rows)
        for table, rows in tables.items():
            if table.after is not None and rows:
                table.after(db, len(rows))
        return written

    def _insert_each(self, db: sqlite3.Connection, *, batch: list[_Entry]) -> None:
        """Insert the writes of *batch* one by one, each under a savepoint: a bad one fails alone."""
        inserted: dict[Table, int] = {}
        for entry in batch:
            assert entry.write is not None
            db.execute("SAVEPOINT one")
            counts: dict[Table, int] = {}
            try:
                for table, rows in entry.write.inserts:
                    ordered = sorted(rows, key=_first) if table.sort else rows
                    went_in = table.insert(db, ordered, self._variables)
                    if went_in != len(rows) and table.check is not None:
                        table.check(db, rows, went_in)
                    counts[table] = counts.get(table, 0) + went_in
                for sql, rows in entry.write.statements:
                    db.executemany(sql, rows)
            except Exception as exc:
                if not _is_per_write(exc):
                    raise
                db.execute("ROLLBACK TO one")
                db.execute("RELEASE one")
                entry.error = exc
                continue
            db.execute("RELEASE one")
            entry.result = sum(counts.values())
            for table, went_in in counts.items():
                inserted[table] = inserted.get(table, 0) + went_in
        for table, went_in in inserted.items():
            if table.after is not None and went_in:
                table.after(db, went_in)


class _Skipped(Exception):
    """A conflict skipped a row of the batch: retry write by write to find whose."""
