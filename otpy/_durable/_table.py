"""A table the write path appends to, and the multi-row ``INSERT`` statements it runs.

One ``executemany`` of 1,000 rows takes the GIL once per row, and while the event
loop runs Python each of those waits for it (docs/performance.md measured 12 µs per
row alone and 190-270 µs per row beside a busy loop). A multi-row ``INSERT`` binds
every row at once and then steps with the GIL released, so the loop and SQLite run
side by side. Statements are cut into sizes (:func:`chunks`) so that few statements,
all in sqlite3's statement cache, serve any batch.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Final

import attrs

from .._check import name as check_name

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["MAX_ROWS_PER_STATEMENT", "Row", "Table", "chunks"]

Row = tuple[object, ...]

MAX_ROWS_PER_STATEMENT: Final = 1024
"""The most rows one ``INSERT`` binds (fewer if the table is wide: see :meth:`Table.insert`)."""

_STEP: Final = 16


def _columns(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(eq=False)
class Table:
    """A table the write path inserts into, with what to run after each batch's rows.

    Attributes:
        name: the table.
        columns: the columns every row gives, in order.
        on_conflict: what follows ``VALUES``, such as ``"ON CONFLICT (id) DO NOTHING"``;
            empty for a plain insert.
        sort: sort a batch's rows by their first column before inserting: when that
            column rises with time, every insert appends to the indexes' last pages.
        check: called for one write whose rows were not all inserted (a conflict
            skipped some), with the connection, the write's rows and how many went
            in; raise to refuse that write alone (its savepoint is rolled back).
        after: called once per committed batch that inserted rows into the table,
            with the connection and how many, inside the same transaction (a
            counter, say).
    """

    name: str = attrs.field(validator=lambda _i, _a, v: check_name(v, owner="Table"))
    columns: tuple[str, ...] = attrs.field(converter=_columns)
    on_conflict: str = ""
    sort: bool = False
    check: Callable[[sqlite3.Connection, Sequence[Row], int], None] | None = None
    after: Callable[[sqlite3.Connection, int], None] | None = None
    _statements: dict[int, str] = attrs.field(factory=dict, init=False, repr=False)

    def statement(self, rows: int) -> str:
        """Return the ``INSERT`` of *rows* rows (cached)."""
        sql = self._statements.get(rows)
        if sql is None:
            one = "(" + ", ".join("?" * len(self.columns)) + ")"
            sql = (
                f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES "
                + ", ".join(itertools.repeat(one, rows))
                + (f" {self.on_conflict}" if self.on_conflict else "")
            )
            self._statements[rows] = sql
        return sql

    def insert(self, db: sqlite3.Connection, rows: Sequence[Row], variables: int) -> int:
        """Insert *rows* in as few statements as the sizes allow; return how many went in.

        *variables* is the connection's limit on bound parameters per statement.
        """
        largest = MAX_ROWS_PER_STATEMENT
        while largest > 1 and largest * len(self.columns) > variables:
            largest //= 2
        inserted = 0
        for start, size in chunks(len(rows), largest):
            params = list(itertools.chain.from_iterable(rows[start : start + size]))
            inserted += db.execute(self.statement(size), params).rowcount
        return inserted


def chunks(total: int, largest: int = MAX_ROWS_PER_STATEMENT) -> Iterator[tuple[int, int]]:
    """Cut *total* rows into ``(start, size)`` pieces: *largest* ones, a multiple of 16, the rest.

    At most two statements for any batch up to *largest* rows, and at most
    ``largest / 16 + 16`` distinct sizes, so every statement stays in sqlite3's
    statement cache: each statement is one more wait for the GIL in the database
    thread, and each new size is one more statement to prepare.

    >>> list(chunks(1100, 512))
    [(0, 512), (512, 512), (1024, 64), (1088, 12)]
    """
    start = 0
    while total - start >= largest:
        yield start, largest
        start += largest
    rest = total - start
    if rest >= _STEP:
        yield start, rest - rest % _STEP
        start += rest - rest % _STEP
    if start < total:
        yield start, total - start
