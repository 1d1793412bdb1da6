"""The journal a tree owns: :func:`sqlite_journal` names it, its keeper opens and tends it.

Besides opening and closing the file, the keeper purges the dedup records older
than the window (so the inbox stays bounded by time, not only by ``dedup_max``) and
samples the journal's gauges: depth and oldest age per route, and the bytes of the
disk budget in use.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, final

import anyio
import attrs

from .._check import count, number
from .._durable import Owned, StoreKeeper, synchronous_mode
from .._exceptions import JournalError
from .._redact import get_logger
from .._supervision import ChildSpec
from ..telemetry import (
    ATTR_INGEST_ROUTE,
    METRIC_INGEST_JOURNAL_BYTES,
    METRIC_INGEST_JOURNAL_DEPTH,
    METRIC_INGEST_JOURNAL_OLDEST_AGE,
    METRIC_INGEST_JOURNAL_PURGED,
    cached_counter,
    cached_gauge,
    providers_set,
)
from ._journal import DEFAULT_DEDUP_MAX, DEFAULT_DEDUP_TTL, DEFAULT_MAX_BYTES
from ._journal_sqlite import SQLiteJournalStore

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from ._journal import Accepted, JournalEntry, JournalStatistics

__all__ = ["JournalHandle", "sqlite_journal"]

logger = get_logger("otpy.ingest")

_depth = cached_gauge(
    METRIC_INGEST_JOURNAL_DEPTH,
    unit="{entry}",
    description="Entries in the ingest journal not yet handed over to the gateway.",
)
_oldest_age = cached_gauge(
    METRIC_INGEST_JOURNAL_OLDEST_AGE,
    unit="s",
    description="Age of the oldest entry in the ingest journal not yet handed over.",
)
_bytes = cached_gauge(
    METRIC_INGEST_JOURNAL_BYTES,
    unit="By",
    description="Bytes of the journal's disk budget the pending entries take.",
)
_purged = cached_counter(
    METRIC_INGEST_JOURNAL_PURGED,
    unit="{record}",
    description="Dedup records the journal's housekeeping removed, older than the window.",
)


@attrs.frozen(kw_only=True)
class _Options:
    synchronous: str
    max_bytes: int
    dedup_ttl: float
    dedup_max: int
    busy_timeout: float
    clock: Callable[[], float]
    purge_interval: float
    sample_interval: float


def record_journal(statistics: JournalStatistics, routes: Sequence[str]) -> None:
    """Set the journal's gauges from *statistics*: each of *routes* (0 when empty) and the bytes."""
    try:
        depth, oldest_age = _depth(), _oldest_age()
        for route in sorted({*routes, *statistics.routes}):
            stats = statistics.routes.get(route)
            labels = {ATTR_INGEST_ROUTE: route}
            depth.set(0 if stats is None else stats.depth, labels)
            oldest_age.set(0.0 if stats is None else stats.oldest_age, labels)
        _bytes().set(statistics.bytes_used)
    except Exception:
        logger.debug("could not record the journal's statistics", exc_info=True)


@final
class JournalHandle(Owned[SQLiteJournalStore]):
    """A :class:`~otpy.ingest.JournalStore` whose SQLite file a keeper in the tree opens.

    Make one with :func:`sqlite_journal`, give it to the
    :class:`~otpy.ingest.IngestApp` and the :class:`~otpy.ingest.Handover` when the
    tree is built, and put :meth:`child_spec` before them in a ``rest_for_one`` tree.
    Every method raises :exc:`~otpy.JournalError` while the keeper is not running.

    The keeper also purges the dedup records older than the window every
    ``purge_interval`` seconds, and samples the journal's gauges every
    ``sample_interval`` seconds while telemetry is set up.

    .. versionadded:: 0.2.0
    """

    kind = "journal"

    def __init__(self, path: str, options: _Options, routes: Sequence[str] = ()) -> None:
        super().__init__(path)
        self.options = options
        self.routes = tuple(routes)

    @property
    def max_bytes(self) -> int:
        """The disk budget of the pending entries."""
        return self.options.max_bytes

    def closed_error(self, problem: str) -> Exception:
        """A :exc:`~otpy.JournalError` naming the file."""
        return JournalError(f"journal {self.path}: {problem}")

    async def open_store(self) -> SQLiteJournalStore:
        """Open the SQLite journal with the handle's options."""
        options = self.options
        return await SQLiteJournalStore.open(
            self.path,
            synchronous=options.synchronous,
            max_bytes=options.max_bytes,
            dedup_ttl=options.dedup_ttl,
            dedup_max=options.dedup_max,
            busy_timeout=options.busy_timeout,
            clock=options.clock,
        )

    async def housekeeping(self) -> None:
        """Purge expired dedup records and sample the gauges, until cancelled.

        A failure is logged and tried again next time: the journal keeps accepting
        meanwhile (its ``dedup_max`` still bounds the inbox).
        """
        options = self.options
        next_purge = anyio.current_time()
        while True:
            now = anyio.current_time()
            if now >= next_purge:
                next_purge = now + options.purge_interval
                try:
                    purged = await self.store.purge()
                except JournalError:
                    logger.warning("the journal's purge failed; trying again later", exc_info=True)
                else:
                    if purged and providers_set():
                        _purged().add(purged)
            if providers_set():
                try:
                    statistics = await self.store.statistics()
                except JournalError:
                    logger.debug("could not read the journal's statistics", exc_info=True)
                else:
                    record_journal(statistics, self.routes)
            # A sample that ran past the next purge's time purges at once, never a
            # negative wait (which anyio refuses, and which would crash the keeper).
            until_purge = max(next_purge - anyio.current_time(), 0.0)
            await anyio.sleep(min(options.sample_interval, until_purge))

    def child_spec(self, *, id: str = "journal", name: str | None = "journal") -> ChildSpec:
        """The keeper that opens the file at start, tends it, and closes it at stop.

        Args:
            id: the child's id.
            name: the name it is registered under, or ``None``.
        """
        return ChildSpec(id=id, start=StoreKeeper, args=(self,), name=name)

    # -- JournalStore, on the open store ---------------------------------------------

    async def accept(
        self,
        entries: Sequence[JournalEntry],
        *,
        now: float | None = None,
        timeout: float | None = None,
    ) -> list[Accepted]:
        """See :meth:`JournalStore.accept`."""
        return await self.store.accept(entries, now=now, timeout=timeout)

    async def pending(
        self, *, limit: int, after: str | None = None, exclude: Collection[str] = ()
    ) -> list[JournalEntry]:
        """See :meth:`JournalStore.pending`."""
        return await self.store.pending(limit=limit, after=after, exclude=exclude)

    async def mark_handed_over(self, ids: Sequence[str]) -> int:
        """See :meth:`JournalStore.mark_handed_over`."""
        return await self.store.mark_handed_over(ids)

    async def purge(self, *, now: float | None = None) -> int:
        """See :meth:`JournalStore.purge`."""
        return await self.store.purge(now=now)

    async def get(self, entry_id: str) -> JournalEntry | None:
        """See :meth:`JournalStore.get`."""
        return await self.store.get(entry_id)

    async def steady_rate(self) -> float | None:
        """See :meth:`JournalStore.steady_rate`."""
        return await self.store.steady_rate()

    async def save_steady_rate(self, rate: float) -> None:
        """See :meth:`JournalStore.save_steady_rate`."""
        await self.store.save_steady_rate(rate)

    async def statistics(self, *, now: float | None = None) -> JournalStatistics:
        """See :meth:`JournalStore.statistics`."""
        return await self.store.statistics(now=now)

    def keeper_status(self) -> Mapping[str, object]:
        """The file, whether it is open, and its budget; never an entry."""
        return {**super().keeper_status(), "max_bytes": self.options.max_bytes}


def sqlite_journal(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    max_bytes: int = DEFAULT_MAX_BYTES,
    dedup_ttl: float = DEFAULT_DEDUP_TTL,
    dedup_max: int = DEFAULT_DEDUP_MAX,
    busy_timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
    purge_interval: float = 60.0,
    sample_interval: float = 5.0,
    routes: Sequence[str] = (),
) -> JournalHandle:
    """Name a SQLite journal for a tree to own.

    The file is opened when the handle's keeper (:meth:`JournalHandle.child_spec`)
    starts, its directory created if missing, and closed when it stops. The options
    are :meth:`SQLiteJournalStore.open`'s, checked now so a bad one fails when the
    tree is built, plus the keeper's:

    Args:
        path: the journal's file.
        synchronous: see :meth:`SQLiteJournalStore.open`.
        max_bytes: see :meth:`SQLiteJournalStore.open`.
        dedup_ttl: see :meth:`SQLiteJournalStore.open`.
        dedup_max: see :meth:`SQLiteJournalStore.open`.
        busy_timeout: see :meth:`SQLiteJournalStore.open`.
        clock: see :meth:`SQLiteJournalStore.open`.
        purge_interval: seconds between purges of the expired dedup records (> 0).
        sample_interval: seconds between samples of the gauges (> 0).
        routes: routes whose gauges read 0 when they have nothing pending.

    Raises:
        InvalidArgument: an option is out of range; the message names it.

    .. versionadded:: 0.2.0
    """
    function = "sqlite_journal"
    options = _Options(
        synchronous=synchronous_mode(synchronous, owner=function),
        max_bytes=count(max_bytes, "max_bytes", owner=function),
        dedup_ttl=number(dedup_ttl, "dedup_ttl", owner=function),
        dedup_max=count(dedup_max, "dedup_max", owner=function),
        busy_timeout=number(busy_timeout, "busy_timeout", owner=function, positive=False),
        clock=clock,
        purge_interval=number(purge_interval, "purge_interval", owner=function),
        sample_interval=number(sample_interval, "sample_interval", owner=function),
    )
    return JournalHandle(os.fspath(path), options, routes)
