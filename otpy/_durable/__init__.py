"""otpy's one durable write path: every SQLite store's writes, group-committed.

The dead-letter store and its replay ledger, the gateway's outbox and the ingest
journal write through it. A caller hands :meth:`SQLiteWriter.append` a
:class:`Write` (rows for :class:`Table` s) and awaits the commit that holds them;
:meth:`SQLiteWriter.transaction` runs a read-modify-write in one trip to the
database thread, in line with the appends. It is an implementation detail of the
SQLite stores, below their store protocols: a PostgreSQL store would group its
commits its own way behind the same protocol.
"""

from ._file import SYNCHRONOUS_MODES as SYNCHRONOUS_MODES
from ._file import StoreFile as StoreFile
from ._file import check_header as check_header
from ._file import describe_error as describe_error
from ._file import missing_columns as missing_columns
from ._file import open_reader as open_reader
from ._file import prepare as prepare
from ._file import scalar as scalar
from ._file import synchronous_mode as synchronous_mode
from ._owned import Closable as Closable
from ._owned import Owned as Owned
from ._owned import StoreKeeper as StoreKeeper
from ._table import MAX_ROWS_PER_STATEMENT as MAX_ROWS_PER_STATEMENT
from ._table import Row as Row
from ._table import Table as Table
from ._writer import DEFAULT_MAX_BATCH as DEFAULT_MAX_BATCH
from ._writer import DEFAULT_MAX_PENDING as DEFAULT_MAX_PENDING
from ._writer import SQLiteWriter as SQLiteWriter
from ._writer import Write as Write
from ._writer import WriterStatistics as WriterStatistics
from ._writer import connect as connect

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_PENDING",
    "MAX_ROWS_PER_STATEMENT",
    "SYNCHRONOUS_MODES",
    "Row",
    "StoreFile",
    "Closable",
    "Owned",
    "StoreKeeper",
    "synchronous_mode",
    "SQLiteWriter",
    "Table",
    "Write",
    "WriterStatistics",
    "check_header",
    "connect",
    "describe_error",
    "missing_columns",
    "open_reader",
    "prepare",
    "scalar",
]
