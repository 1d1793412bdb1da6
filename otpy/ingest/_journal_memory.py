"""The journal in memory: the :class:`JournalStore` semantics, for tests and ephemeral nodes.

Nothing survives the process. Each call runs without awaiting in between, so it is
atomic on the event loop; it works on asyncio and trio.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from typing import TYPE_CHECKING, final

import anyio.lowlevel

from .._check import check_type
from .._check import number as check_number
from .._exceptions import JournalError, JournalFull
from ._journal import (
    DEFAULT_DEDUP_MAX,
    DEFAULT_DEDUP_TTL,
    DEFAULT_MAX_BYTES,
    Accepted,
    JournalEntry,
    JournalStatistics,
    check_entries,
    check_ids,
    check_options,
    check_pending,
    check_time,
    check_timeout,
    dedup_cutoff,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

__all__ = ["MemoryJournalStore"]


@final
class MemoryJournalStore:
    """A :class:`JournalStore` in memory, with the SQLite store's semantics.

    Args:
        max_bytes: the budget of the pending entries' bodies and headers.
        dedup_ttl: seconds a dedup record counts after its acceptance.
        dedup_max: the most dedup records kept; the oldest go first.
        clock: the wall clock read for a call's ``now`` when it is ``None``.

    Raises:
        InvalidArgument: an option is out of range.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_max: int = DEFAULT_DEDUP_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_bytes, self.dedup_ttl, self.dedup_max = check_options(
            max_bytes, dedup_ttl, dedup_max, "MemoryJournalStore"
        )
        self.clock = clock
        self._entries: dict[str, JournalEntry] = {}
        self._ids: list[str] = []  # the pending ids, ascending
        self._used = 0
        # (route, idempotency_key) -> (id, accepted_at): the inbox.
        self._inbox: dict[tuple[str, str], tuple[str, float]] = {}
        # (accepted_at, id, route, idempotency_key), oldest first; an item whose
        # record was replaced or evicted is skipped when it comes up.
        self._ages: list[tuple[float, str, str, str]] = []
        self._steady_rate: float | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<MemoryJournalStore{state} {len(self._entries)} pending>"

    def _open(self) -> None:
        if self._closed:
            raise JournalError("the journal store is closed")

    def _now(self, now: float | None, function: str) -> float:
        return check_time(self.clock() if now is None else now, "now", owner=function)

    def _evict(self, *, most: int | None = None, before: float | None = None) -> int:
        """Evict dedup records oldest first: *most* of them, or those accepted *before*."""
        evicted = 0
        ages = self._ages
        while ages and (most is None or evicted < most):
            accepted_at, entry_id, route, key = ages[0]
            if self._inbox.get((route, key)) != (entry_id, accepted_at):
                heapq.heappop(ages)  # replaced or evicted already
                continue
            if before is not None and accepted_at >= before:
                break
            heapq.heappop(ages)
            del self._inbox[route, key]
            evicted += 1
        return evicted

    async def accept(
        self,
        entries: Sequence[JournalEntry],
        *,
        now: float | None = None,
        timeout: float | None = None,
    ) -> list[Accepted]:
        """Store *entries* but for duplicates (see :meth:`JournalStore.accept`).

        Raises:
            JournalFull: the new entries would pass ``max_bytes``; none was stored.
        """
        function = "MemoryJournalStore.accept"
        check_entries(entries, function)
        check_timeout(timeout, function)
        now = self._now(now, function)
        self._open()
        cutoff = dedup_cutoff(now, self.dedup_ttl)
        answers: list[Accepted] = []
        new: list[JournalEntry] = []
        seen_ids: set[str] = set()
        seen_keys: dict[tuple[str, str], str] = {}
        for entry in entries:
            original = None
            if entry.idempotency_key is not None:
                where = (entry.route, entry.idempotency_key)
                original = seen_keys.get(where)
                record = self._inbox.get(where)
                if original is None and record is not None and record[1] >= cutoff:
                    original = record[0]
            if original is None and (entry.id in self._entries or entry.id in seen_ids):
                original = entry.id
            if original is not None:
                answers.append(Accepted(original, duplicate=True))
                continue
            answers.append(Accepted(entry.id))
            new.append(entry)
            seen_ids.add(entry.id)
            if entry.idempotency_key is not None:
                seen_keys[entry.route, entry.idempotency_key] = entry.id
        requested = sum(entry.size for entry in new)
        if new and self._used + requested > self.max_bytes:
            await anyio.lowlevel.checkpoint()
            raise JournalFull(self.max_bytes, self._used, requested)
        for entry in new:
            self._entries[entry.id] = entry
            bisect.insort(self._ids, entry.id)
            self._used += entry.size
            if entry.idempotency_key is not None:
                self._inbox[entry.route, entry.idempotency_key] = (entry.id, now)
                heapq.heappush(self._ages, (now, entry.id, entry.route, entry.idempotency_key))
        if len(self._inbox) > self.dedup_max:
            self._evict(most=len(self._inbox) - self.dedup_max)
        await anyio.lowlevel.checkpoint()
        return answers

    async def pending(
        self, *, limit: int, after: str | None = None, exclude: Collection[str] = ()
    ) -> list[JournalEntry]:
        """Return pending entries oldest first, ids above *after* (see :meth:`JournalStore.pending`)."""
        limit, after, routes = check_pending(limit, after, "MemoryJournalStore.pending", exclude)
        self._open()
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        if routes:
            kept = (self._entries[i] for i in self._ids[start:])
            page = list(itertools.islice((e for e in kept if e.route not in routes), limit))
        else:
            page = [self._entries[i] for i in self._ids[start : start + limit]]
        await anyio.lowlevel.checkpoint()
        return page

    async def mark_handed_over(self, ids: Sequence[str]) -> int:
        """Delete these pending entries; return how many were pending (their dedup records stay)."""
        handed = check_ids(ids, "MemoryJournalStore.mark_handed_over")
        self._open()
        deleted = 0
        for entry_id in handed:
            entry = self._entries.pop(entry_id, None)
            if entry is None:
                continue
            del self._ids[bisect.bisect_left(self._ids, entry_id)]
            self._used -= entry.size
            deleted += 1
        await anyio.lowlevel.checkpoint()
        return deleted

    async def purge(self, *, now: float | None = None) -> int:
        """Evict the dedup records older than ``dedup_ttl`` at *now*; return how many."""
        now = self._now(now, "MemoryJournalStore.purge")
        self._open()
        purged = self._evict(before=dedup_cutoff(now, self.dedup_ttl))
        await anyio.lowlevel.checkpoint()
        return purged

    async def get(self, entry_id: str) -> JournalEntry | None:
        """Return the pending entry with this id, or ``None``."""
        check_type("MemoryJournalStore.get", "entry_id", entry_id, str, "an entry id")
        self._open()
        await anyio.lowlevel.checkpoint()
        return self._entries.get(entry_id)

    async def steady_rate(self) -> float | None:
        """The hand-over's steady rate as last saved, or ``None`` if never saved."""
        await anyio.lowlevel.checkpoint()
        self._open()
        return self._steady_rate

    async def save_steady_rate(self, rate: float) -> None:
        """Save the hand-over's steady rate, entries per second (a finite number >= 0)."""
        await anyio.lowlevel.checkpoint()
        rate = check_number(
            rate, "rate", owner="MemoryJournalStore.save_steady_rate", positive=False
        )
        self._open()
        self._steady_rate = rate

    async def statistics(self, *, now: float | None = None) -> JournalStatistics:
        """Return the pending depth, oldest age and bytes per route, and the dedup records."""
        now = self._now(now, "MemoryJournalStore.statistics")
        self._open()
        rows: dict[str, tuple[str, int, float, int]] = {}
        for e in self._entries.values():
            _, depth, oldest, size = rows.get(e.route, (e.route, 0, e.received_at, 0))
            rows[e.route] = (e.route, depth + 1, min(oldest, e.received_at), size + e.size)
        await anyio.lowlevel.checkpoint()
        return JournalStatistics.of(
            rows.values(), now=now, max_bytes=self.max_bytes, dedup_records=len(self._inbox)
        )

    async def aclose(self) -> None:
        """Close the store; further calls raise :exc:`~otpy.JournalError`. Idempotent."""
        self._closed = True
        await anyio.lowlevel.checkpoint()
