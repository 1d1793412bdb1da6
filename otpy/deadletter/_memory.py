"""An in-memory dead-letter store: for tests and ephemeral nodes (nothing survives the process)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, final

import anyio.lowlevel
import attrs

from .._exceptions import DeadLetterNotFound, DeadLetterStoreError
from ._guard import (
    Action,
    Decision,
    LedgerEntry,
    LedgerState,
    Reclaimed,
    decide_replay,
    finish_replay,
    ledger_held_by_other,
    ledger_prunable,
    reclaim,
    resolve,
    resolve_alongside,
)
from ._record import ReplayOutcome, ReplayStatus, Status
from ._store import (
    ALL,
    LEDGER_EVICTED,
    DeadLetterFilter,
    Page,
    RetentionPolicy,
    StoreStatistics,
    SweepResult,
    id_conflict,
    same_capture,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Sequence

    from ._record import DeadLetter

__all__ = ["MemoryDeadLetterStore"]

DEFAULT_INLINE_LIMIT = 64 * 1024


@final
class MemoryDeadLetterStore:
    """A :class:`DeadLetterStore` in a dict. Same semantics as the SQLite store, no durability.

    Args:
        clock: wall-clock time source (``time.time``); tests pass a fake one to move
            leases and retention ages.
        inline_limit: payloads larger than this are left out of listings, as the
            SQLite store does.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> None:
        self.clock = clock
        self.inline_limit = inline_limit
        self._records: dict[str, DeadLetter] = {}
        self._ledger: dict[str, LedgerEntry] = {}
        self._evicted: Counter[str] = Counter()
        self._captured = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<MemoryDeadLetterStore records={len(self._records)}>"

    async def _enter(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise DeadLetterStoreError("<memory>", "the store is closed")

    def _record(self, record_id: str) -> DeadLetter:
        try:
            return self._records[record_id]
        except KeyError:
            raise DeadLetterNotFound(record_id) from None

    def _listed(self, record: DeadLetter) -> DeadLetter:
        if record.payload is not None and record.payload_size > self.inline_limit:
            return attrs.evolve(record, payload=None)
        return record

    def _matching(self, where: DeadLetterFilter) -> list[DeadLetter]:
        return [r for r in self._records.values() if where.matches(r)]

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """Store *records* all at once; skip those already stored; return how many were new.

        When it raises, nothing is stored. It never waits, so *timeout* is not used.

        Raises:
            ValueError: a record has no payload but a non-zero ``payload_size``.
            DeadLetterStoreError: a record's id is stored with different content.
        """
        await self._enter()
        new: dict[str, DeadLetter] = {}
        for record in records:
            if record.payload is None and record.payload_size:
                raise ValueError(
                    f"dead letter {record.id}: cannot store a record without its payload"
                )
            stored = self._records.get(record.id) or new.get(record.id)
            if stored is None:
                new[record.id] = record
            elif not same_capture(stored, record):
                raise id_conflict("<memory>", record.id)
        self._records.update(new)
        self._captured += len(new)
        return len(new)

    async def get(self, record_id: str) -> DeadLetter:
        """Return the record (payload loaded)."""
        await self._enter()
        return self._record(record_id)

    async def list(
        self, where: DeadLetterFilter = ALL, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Return a page of matching records, newest first."""
        await self._enter()
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        ids = sorted(
            (r.id for r in self._matching(where) if cursor is None or r.id < cursor), reverse=True
        )
        chosen = ids[:limit]
        more = len(ids) > limit
        return Page(
            tuple(self._listed(self._records[i]) for i in chosen), chosen[-1] if more else None
        )

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """Return how many records match."""
        await self._enter()
        return len(self._matching(where))

    async def archive(self, where: DeadLetterFilter) -> int:
        """Archive matching active records that are not running."""
        await self._enter()
        now = self.clock()
        changed = 0
        for record in self._matching(where):
            if record.status is Status.ACTIVE and record.replay.status is not ReplayStatus.RUNNING:
                self._records[record.id] = attrs.evolve(
                    record, status=Status.ARCHIVED, updated_at=max(now, record.created_at)
                )
                changed += 1
        return changed

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching records that are not running."""
        await self._enter()
        victims = [
            r.id for r in self._matching(where) if r.replay.status is not ReplayStatus.RUNNING
        ]
        for record_id in victims:
            del self._records[record_id]
        return len(victims)

    async def statistics(self) -> StoreStatistics:
        """Return counts of what the store holds and evicted."""
        await self._enter()
        records = self._records.values()
        return StoreStatistics(
            total=len(self._records),
            by_status=dict(Counter(r.status.value for r in records)),
            by_source=dict(Counter(r.source.value for r in records)),
            by_reason_class=dict(Counter(r.reason_class for r in records)),
            by_key=dict(Counter(r.key for r in records).most_common(20)),
            by_replay_status=dict(Counter(r.replay.status.value for r in records)),
            evicted=dict(self._evicted),
            captured=self._captured,
        )

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """Evict by age, then by count, per status; running records are never evicted.

        Then prune the ledger entries that :func:`ledger_prunable` allows.
        """
        await self._enter()
        now = self.clock()
        evicted: Counter[str] = Counter()
        for status in Status:
            rule = policy.rule_for(status)
            candidates = sorted(
                (
                    r
                    for r in self._records.values()
                    if r.status is status and r.replay.status is not ReplayStatus.RUNNING
                ),
                key=lambda r: r.id,
            )
            if rule.max_age is not None:
                cutoff = now - rule.max_age
                old = [r for r in candidates if r.created_at < cutoff]
                for r in old:
                    del self._records[r.id]
                evicted[f"{status.value}:max_age"] += len(old)
                candidates = [r for r in candidates if r.created_at >= cutoff]
            if rule.max_count is not None and len(candidates) > rule.max_count:
                excess = candidates[: len(candidates) - rule.max_count]
                for r in excess:
                    del self._records[r.id]
                evicted[f"{status.value}:max_count"] += len(excess)
        if policy.ledger_max_age is not None:
            evicted[LEDGER_EVICTED] += self._prune_ledger(now - policy.ledger_max_age)
        result = {k: v for k, v in evicted.items() if v}
        self._evicted.update(result)
        return SweepResult(result)

    def _prune_ledger(self, cutoff: float) -> int:
        """Remove the ledger entries older than *cutoff* that no record can use; return how many."""
        idempotency_keys = {r.idempotency_key for r in self._records.values() if r.idempotency_key}
        victims = [
            key
            for key, entry in self._ledger.items()
            if ledger_prunable(
                entry, cutoff=cutoff, record_ids=self._records, idempotency_keys=idempotency_keys
            )
        ]
        for key in victims:
            del self._ledger[key]
        return len(victims)

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Decide and store a replay request atomically."""
        await self._enter()
        record = self._record(record_id)
        decision = decide_replay(
            record, self._ledger.get(record.replay_key), now=self.clock(), lease=lease, force=force
        )
        if decision.action is not Action.REFUSE:
            self._records[record_id] = decision.record
        return decision

    async def start_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Decide and store a replay request and, when it proceeds, mark its key pending, atomically."""
        await self._enter()
        now = self.clock()
        record = self._record(record_id)
        decision = decide_replay(
            record, self._ledger.get(record.replay_key), now=now, lease=lease, force=force
        )
        if decision.action is not Action.REFUSE:
            running = decision.record
            self._records[record_id] = running
            if decision.action is Action.PROCEED:
                self._ledger[running.replay_key] = LedgerEntry(
                    key=running.replay_key,
                    state=LedgerState.PENDING,
                    record_id=running.id,
                    expires_at=running.replay.lease_expires_at,
                    updated_at=now,
                )
        return decision

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Write the ledger's pending entry, unless the key is taken or in doubt."""
        await self._enter()
        now = self.clock()
        entry = self._ledger.get(record.replay_key)
        if entry is not None:
            if ledger_held_by_other(entry, record.id, now=now):
                return False
            if not force and (entry.state is LedgerState.COMMITTED or entry.record_id != record.id):
                return False
        self._ledger[record.replay_key] = LedgerEntry(
            key=record.replay_key,
            state=LedgerState.PENDING,
            record_id=record.id,
            expires_at=record.replay.lease_expires_at,
            updated_at=now,
        )
        return True

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """Settle a leased replay and its ledger key together."""
        await self._enter()
        now = self.clock()
        record = finish_replay(self._record(record_id), outcome, error=error, now=now)
        key = record.replay_key
        entry = self._ledger.get(key)
        if outcome is ReplayOutcome.REPLAYED:
            self._ledger[key] = LedgerEntry(
                key=key,
                state=LedgerState.COMMITTED,
                record_id=record_id,
                expires_at=None,
                updated_at=now,
            )
        elif (
            entry is not None
            and entry.state is LedgerState.PENDING
            and entry.record_id == record_id
        ):
            if outcome is ReplayOutcome.FAILED:
                del self._ledger[key]
            else:  # in doubt: the attempt is over, so the key is in doubt now
                self._ledger[key] = attrs.evolve(entry, expires_at=now, updated_at=now)
        self._records[record_id] = record
        return record

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """Settle every running record whose lease expired."""
        await self._enter()
        now = self.clock()
        reclaimed = []
        for record in list(self._records.values()):
            result = reclaim(record, self._ledger.get(record.replay_key), now=now)
            if result is not None:
                self._records[record.id] = result.record
                reclaimed.append(result)
        return reclaimed

    async def resolve(self, record_id: str, *, succeeded: bool) -> DeadLetter:
        """Settle an in-doubt record by hand, with the other records its key left in doubt."""
        await self._enter()
        now = self.clock()
        named = self._record(record_id)
        key = named.replay_key
        entry = self._ledger.get(key)
        record = resolve(named, succeeded=succeeded, now=now, ledger=entry)
        if succeeded:
            self._ledger[key] = LedgerEntry(
                key=key,
                state=LedgerState.COMMITTED,
                record_id=record_id,
                expires_at=None,
                updated_at=now,
            )
        elif entry is not None and entry.state is LedgerState.PENDING:
            del self._ledger[key]
        for other in list(self._records.values()):
            if other.id != record_id and other.replay_key == key:
                settled = resolve_alongside(other, succeeded=succeeded, now=now)
                if settled is not None:
                    self._records[other.id] = settled
        self._records[record_id] = record
        return record

    async def ledger(self, key: str) -> LedgerEntry | None:
        """Return the ledger entry for *key*."""
        await self._enter()
        return self._ledger.get(key)

    async def aclose(self) -> None:
        """Close the store."""
        self._closed = True
        await anyio.lowlevel.checkpoint()
