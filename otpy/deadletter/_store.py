"""The store protocol, its query and result types, and the replay guard both stores share.

Every state change a replay makes is decided by the pure functions here
(:func:`decide_replay`, :func:`finish_replay`, :func:`reclaim`), so the SQLite and
in-memory stores cannot disagree: each store only runs them atomically (one
``BEGIN IMMEDIATE`` transaction, or one synchronous step on the event loop).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, runtime_checkable

import attrs

from .._check import count, number, short
from .._exceptions import (
    CorruptRecord,
    DeadLetterStoreError,
    InvalidArgument,
    InvalidArgumentType,
)
from ._record import DeadLetter, ReplayOutcome, ReplayStatus, Source, Status

if TYPE_CHECKING:
    import builtins
    from collections.abc import Container, Sequence

__all__ = [
    "ALL",
    "LEDGER_EVICTED",
    "Action",
    "DeadLetterFilter",
    "DeadLetterStore",
    "Decision",
    "LedgerEntry",
    "LedgerState",
    "Page",
    "Reclaimed",
    "RetentionPolicy",
    "RetentionRule",
    "StoreStatistics",
    "SweepResult",
    "decide_replay",
    "finish_replay",
    "ledger_held_by_other",
    "ledger_prunable",
    "reclaim",
    "resolve",
    "CAPTURE_FIELDS",
    "id_conflict",
    "resolve_alongside",
    "same_capture",
]


def _optional_ids(ids: Iterable[str] | None) -> tuple[str, ...] | None:
    if ids is None:
        return None
    if isinstance(ids, str) or not isinstance(ids, Iterable):
        raise InvalidArgumentType(
            "ids", f"must be an iterable of record ids or None, got {short(ids)}", owner="filter"
        )
    ids = tuple(ids)
    for one in ids:
        if not isinstance(one, str):
            raise InvalidArgumentType("ids", f"must hold strings, got {short(one)}", owner="filter")
    return ids


_E = TypeVar("_E", bound=enum.Enum)


def _member(cls: type[_E], field: str, value: object) -> _E | None:
    if value is None or isinstance(value, cls):
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(repr(m.value) for m in cls)
        raise InvalidArgument(
            field, f"must be one of {allowed} or None, got {short(value)}", owner="filter"
        ) from None


def _status(value: object) -> Status | None:
    return _member(Status, "status", value)


def _source(value: object) -> Source | None:
    return _member(Source, "source", value)


def _replay_status(value: object) -> ReplayStatus | None:
    return _member(ReplayStatus, "replay_status", value)


def _optional_text(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentType(
            attribute.name, f"must be a string or None, got {short(value)}", owner="filter"
        )


def _optional_time(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentType(
                attribute.name,
                f"must be a time (a number) or None, got {short(value)}",
                owner="filter",
            )
        if isinstance(value, float) and math.isnan(value):
            raise InvalidArgument(attribute.name, "must be a time, got nan", owner="filter")


@attrs.frozen(kw_only=True)
class DeadLetterFilter:
    """Which records a list, archive, replay or purge applies to; fields combine with AND.

    Attributes:
        status: active, archived, or ``None`` for both.
        key: exact dead-letter key.
        source: where they failed.
        reason_class: exact exception class name.
        replay_status: replay state.
        since: created at or after (wall clock, seconds since the epoch).
        until: created before.
        ids: exactly these ids.
    """

    status: Status | None = attrs.field(default=None, converter=_status)
    key: str | None = attrs.field(default=None, validator=_optional_text)
    source: Source | None = attrs.field(default=None, converter=_source)
    reason_class: str | None = attrs.field(default=None, validator=_optional_text)
    replay_status: ReplayStatus | None = attrs.field(default=None, converter=_replay_status)
    since: float | None = attrs.field(default=None, validator=_optional_time)
    until: float | None = attrs.field(default=None, validator=_optional_time)
    ids: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_ids)

    def __attrs_post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidArgument(
                "until",
                f"({short(self.until)}) is before since ({short(self.since)})",
                owner="filter",
            )

    def matches(self, record: DeadLetter) -> bool:
        """Return whether *record* passes this filter."""
        return (
            (self.status is None or record.status == self.status)
            and (self.key is None or record.key == self.key)
            and (self.source is None or record.source == self.source)
            and (self.reason_class is None or record.reason_class == self.reason_class)
            and (self.replay_status is None or record.replay.status == self.replay_status)
            and (self.since is None or record.created_at >= self.since)
            and (self.until is None or record.created_at < self.until)
            and (self.ids is None or record.id in self.ids)
        )


ALL = DeadLetterFilter()


@attrs.frozen
class Page:
    """One page of a listing, newest first.

    A page covers at most ``limit`` stored rows: the records, and the rows that
    cannot be decoded, which are reported in :attr:`corrupt` instead of failing the
    listing (only the SQLite store can hold such rows).

    Attributes:
        records: the records; large payloads are not loaded (``payload is None``).
        next_cursor: pass as ``cursor`` for the next page; ``None`` on the last page.
            Records captured while paging never shift a page: cursors are ids.
        corrupt: one :exc:`~otpy.CorruptRecord` per row on the page that cannot be
            decoded, newest first; each names the row's id and what is wrong with it.
    """

    records: tuple[DeadLetter, ...]
    next_cursor: str | None
    corrupt: tuple[CorruptRecord, ...] = ()


@attrs.frozen(kw_only=True)
class StoreStatistics:
    """Counts of what the store holds, and of what retention evicted.

    Attributes:
        total: records stored.
        by_status: records per status.
        by_source: records per source.
        by_reason_class: records per reason class.
        by_key: records per dead-letter key (the 20 largest).
        by_replay_status: records per replay status.
        evicted: records evicted by retention since the store was created, per
            ``"<status>:<rule>"`` (``"archived:max_age"``...), and idempotency
            ledger entries pruned, as ``"ledger:max_age"``
            (:attr:`RetentionPolicy.ledger_max_age`); persisted, so it survives
            restarts.
        captured: records captured since the store was created.
    """

    total: int
    by_status: dict[str, int]
    by_source: dict[str, int]
    by_reason_class: dict[str, int]
    by_key: dict[str, int]
    by_replay_status: dict[str, int]
    evicted: dict[str, int]
    captured: int


@attrs.frozen(kw_only=True)
class RetentionRule:
    """Limits for the records of one status; ``None`` means no limit.

    Attributes:
        max_count: keep at most this many (the oldest go first).
        max_age: keep none older than this many seconds.
    """

    max_count: int | None = attrs.field(default=None)
    max_age: float | None = attrs.field(default=None)

    @max_count.validator
    def _check_max_count(self, _attribute: object, value: object) -> None:
        if value is not None:
            count(value, "max_count", owner="retention rule", minimum=0)

    @max_age.validator
    def _check_max_age(self, _attribute: object, value: object) -> None:
        if value is not None:
            number(value, "max_age", owner="retention rule", unit=" of seconds")


@attrs.frozen(kw_only=True)
class RetentionPolicy:
    """What the periodic sweep evicts (D5).

    The defaults never evict an active record: an active dead letter is a message
    nobody has decided about yet, and dropping it silently would defeat the store.
    Archived records go after 30 days or beyond 100,000. Every eviction is counted in
    :attr:`StoreStatistics.evicted` and logged; active limits, when set, are logged
    at WARNING.

    The sweep also prunes the idempotency ledger (D8), after evicting records. An
    entry is removed only when both hold:

    a. it was last updated more than ``ledger_max_age`` seconds ago, and
    b. no stored record can use it any more: no record has the entry's
       ``record_id`` as its id, no record has the entry's key as its
       ``idempotency_key``, and, for a key ``dead_letter:<id>``, no record has
       that id.

    Both, because each protects against a different second send. Without (b), a
    record that shares an idempotency key with the one whose replay committed it
    would no longer find the committed entry, and its replay would run the side
    effect a second time. Without (a), a duplicate of the original request that is
    captured later with the same idempotency key would find no entry and be sent
    again; the age keeps that protection for ``ledger_max_age`` seconds. After that
    such a duplicate *is* replayed: that is the trade-off that keeps the store file
    from growing without bound. Counted as ``"ledger:max_age"``.

    Attributes:
        active: limits for active records (none by default).
        archived: limits for archived records.
        interval: seconds between sweeps.
        ledger_max_age: seconds after its last update that a ledger entry no stored
            record can use is pruned (90 days by default); ``None`` never prunes.
    """

    active: RetentionRule = RetentionRule()
    archived: RetentionRule = RetentionRule(max_count=100_000, max_age=30 * 86400.0)
    interval: float = attrs.field(default=300.0)
    ledger_max_age: float | None = attrs.field(default=90 * 86400.0)

    def __attrs_post_init__(self) -> None:
        for field in ("active", "archived"):
            if not isinstance(getattr(self, field), RetentionRule):
                raise InvalidArgumentType(
                    field,
                    f"must be a RetentionRule, got {short(getattr(self, field))}",
                    owner="retention policy",
                )
        number(self.interval, "interval", owner="retention policy", unit=" of seconds")

    @ledger_max_age.validator
    def _check_ledger_max_age(self, _attribute: object, value: float | None) -> None:
        if value is None:
            return
        try:
            number(value, "ledger_max_age", owner="retention policy", unit=" of seconds")
        except InvalidArgument as exc:
            raise type(exc)(
                "ledger_max_age",
                f"{exc.problem}; use None to never prune the idempotency ledger",
                owner="retention policy",
            ) from None

    def rule_for(self, status: Status) -> RetentionRule:
        """Return the rule for *status*."""
        return self.active if status is Status.ACTIVE else self.archived


@attrs.frozen
class SweepResult:
    """What one retention sweep evicted, per ``"<status>:<rule>"``.

    Idempotency ledger entries it pruned are counted as ``"ledger:max_age"``.
    """

    evicted: dict[str, int]

    @property
    def total(self) -> int:
        """Records evicted and ledger entries pruned, in all."""
        return sum(self.evicted.values())


class LedgerState(enum.StrEnum):
    """The idempotency ledger's state for one key (D8)."""

    PENDING = "pending"
    """The side effect started; nobody knows yet whether it happened."""
    COMMITTED = "committed"
    """The side effect happened."""


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One idempotency key in the ledger.

    Attributes:
        key: the idempotency key.
        state: pending or committed.
        record_id: the record whose replay wrote it.
        expires_at: while pending, the writer's lease expiry.
        updated_at: last change (wall clock).
    """

    key: str
    state: LedgerState = attrs.field(converter=LedgerState)
    record_id: str
    expires_at: float | None
    updated_at: float


LEDGER_EVICTED: Final = "ledger:max_age"
"""The key of :attr:`SweepResult.evicted` and :attr:`StoreStatistics.evicted` that
counts idempotency ledger entries pruned by :attr:`RetentionPolicy.ledger_max_age`."""

_OWN_KEY_PREFIX: Final = "dead_letter:"
"""The prefix of :attr:`DeadLetter.replay_key` for a record without an idempotency key."""


def ledger_prunable(
    entry: LedgerEntry,
    *,
    cutoff: float,
    record_ids: Container[str],
    idempotency_keys: Container[str],
) -> bool:
    """Return whether the retention sweep may remove *entry* (D5, D8).

    Only when it was last updated before *cutoff* (``now - ledger_max_age``) and no
    stored record can use it: no record's id is its ``record_id``, no record's
    ``idempotency_key`` is its key, and no record's own key ``dead_letter:<id>`` is
    its key. See :class:`RetentionPolicy` for why both. A pending entry whose record
    still exists is therefore never removed.

    Args:
        entry: the ledger entry.
        cutoff: entries updated at or after this wall-clock time are kept.
        record_ids: the ids of the stored records.
        idempotency_keys: the idempotency keys of the stored records.
    """
    if entry.updated_at >= cutoff or entry.record_id in record_ids:
        return False
    if entry.key in idempotency_keys:
        return False
    if entry.key.startswith(_OWN_KEY_PREFIX):
        return entry.key[len(_OWN_KEY_PREFIX) :] not in record_ids
    return True


class Action(enum.Enum):
    """What :func:`decide_replay` tells the store to do."""

    PROCEED = "proceed"
    """Take the lease: the caller runs the replay."""
    REFUSE = "refuse"
    """Leave the record as it is; answer with the outcome."""
    SETTLE = "settle"
    """Write the new record (now succeeded or in doubt); answer with the outcome."""


@attrs.frozen
class Decision:
    """The guard's answer to a replay request.

    Attributes:
        action: proceed, refuse, or settle.
        outcome: the answer to the requester when not proceeding.
        record: the record after the decision (running with a lease when proceeding).
    """

    action: Action
    outcome: ReplayOutcome | None
    record: DeadLetter


def ledger_held_by_other(entry: LedgerEntry, record_id: str, *, now: float) -> bool:
    """Return whether *entry* is pending under the live lease of a record other than *record_id*.

    That record's side effect for the key may be running right now: nothing else may
    send with the key, or settle it, until it ends or its lease expires.
    """
    return (
        entry.state is LedgerState.PENDING
        and entry.record_id != record_id
        and entry.expires_at is not None
        and entry.expires_at > now
    )


def _key_in_doubt(entry: LedgerEntry) -> str:
    return (
        f"idempotency key {entry.key!r} is in doubt: the replay of dead letter "
        f"{entry.record_id} started its side effect and its outcome is unknown; "
        "check the destination and resolve it (runbooks/replay.md)"
    )


CAPTURE_FIELDS: Final = (
    "id",
    "key",
    "source",
    "reason_class",
    "reason",
    "category",
    "correlation_id",
    "idempotency_key",
    "attempt",
    "max_attempts",
    "payload_size",
    "content_type",
    "headers",
    "diagnostics",
    "trace_context",
    "created_at",
)
"""The fields a record has from its capture on; status, replay state, ``updated_at``
change later, and a listed record may lack its payload."""


def id_conflict(path: str, record_id: str) -> DeadLetterStoreError:
    """The error ``add_many`` raises for a record whose id is stored with other content."""
    return DeadLetterStoreError(
        path,
        f"dead letter {record_id} is already stored with different content, so the batch "
        "was refused and nothing in it was stored; give every record its own id "
        "(otpy.deadletter.new_id())",
    )


def same_capture(stored: DeadLetter, captured: DeadLetter) -> bool:
    """Return whether *captured* is *stored* captured again (its :data:`CAPTURE_FIELDS` agree).

    ``add_many`` skips a record captured again (a capture retried after a crash
    between commit and acknowledgement); a different record under a stored id is an
    error, never silently dropped.
    """
    return all(getattr(stored, name) == getattr(captured, name) for name in CAPTURE_FIELDS)


def _with_replay(record: DeadLetter, now: float, **changes: Any) -> DeadLetter:
    return attrs.evolve(
        record,
        replay=attrs.evolve(record.replay, **changes),
        updated_at=max(now, record.created_at),
    )


def decide_replay(
    record: DeadLetter,
    ledger: LedgerEntry | None,
    *,
    now: float,
    lease: float,
    force: bool = False,
) -> Decision:
    """Decide a replay request atomically with the record and its key's ledger entry (D4, D7-D9).

    - archived: refused (``rejected_archived``), even with *force*;
    - running under a live lease, or its key pending under another record's live
      lease: ``in_progress``, even with *force* (two concurrent sends are never right);
    - running with an expired lease: its worker died. If the side effect had started
      (the ledger is pending for it) the record becomes ``in_doubt``; otherwise it is
      replayable again;
    - in doubt, without *force*: refused (``in_doubt``);
    - succeeded, without *force*: ``already_replayed`` and no side effect;
    - its key pending with no live lease, without *force*: a side effect for the key
      started and nobody knows whether it happened, whichever record's replay started
      it. The record becomes ``in_doubt`` too, until an operator resolves the key
      (:meth:`DeadLetterStore.resolve`);
    - its key already committed by any record, without *force*: ``already_replayed``
      and no side effect (the record is marked succeeded);
    - otherwise the caller takes a lease until ``now + lease``.

    Args:
        record: the record as stored.
        ledger: the ledger entry of ``record.replay_key``, if any.
        now: wall-clock time.
        lease: seconds the caller may hold the record before it is presumed dead.
        force: send again even if succeeded or in doubt.
    """
    replay = record.replay
    if record.status is Status.ARCHIVED:
        return Decision(Action.REFUSE, ReplayOutcome.REJECTED_ARCHIVED, record)
    if replay.status is ReplayStatus.RUNNING:
        if replay.lease_expires_at is not None and replay.lease_expires_at > now:
            return Decision(Action.REFUSE, ReplayOutcome.IN_PROGRESS, record)
        started = (
            ledger is not None
            and ledger.state is LedgerState.PENDING
            and (ledger.record_id == record.id)
        )
        if started and not force:
            doubted = _with_replay(
                record,
                now,
                status=ReplayStatus.IN_DOUBT,
                last_outcome=ReplayOutcome.IN_DOUBT,
                last_error="lease expired after the side effect started: its worker died",
                lease_expires_at=None,
            )
            return Decision(Action.SETTLE, ReplayOutcome.IN_DOUBT, doubted)
    pending = ledger if ledger is not None and ledger.state is LedgerState.PENDING else None
    if pending is not None and ledger_held_by_other(pending, record.id, now=now):
        return Decision(Action.REFUSE, ReplayOutcome.IN_PROGRESS, record)
    if not force:
        if replay.status is ReplayStatus.IN_DOUBT:
            return Decision(Action.REFUSE, ReplayOutcome.IN_DOUBT, record)
        if replay.status is ReplayStatus.SUCCEEDED:
            return Decision(Action.REFUSE, ReplayOutcome.ALREADY_REPLAYED, record)
        if pending is not None:
            doubted = _with_replay(
                record,
                now,
                status=ReplayStatus.IN_DOUBT,
                last_outcome=ReplayOutcome.IN_DOUBT,
                last_error=_key_in_doubt(pending),
                lease_expires_at=None,
            )
            return Decision(Action.SETTLE, ReplayOutcome.IN_DOUBT, doubted)
        if ledger is not None and ledger.state is LedgerState.COMMITTED:
            done = _with_replay(
                record,
                now,
                status=ReplayStatus.SUCCEEDED,
                last_outcome=ReplayOutcome.ALREADY_REPLAYED,
                last_error=None,
                lease_expires_at=None,
            )
            return Decision(Action.SETTLE, ReplayOutcome.ALREADY_REPLAYED, done)
    running = _with_replay(
        record,
        now,
        status=ReplayStatus.RUNNING,
        attempts=replay.attempts + 1,
        last_attempt_at=now,
        lease_expires_at=now + lease,
    )
    return Decision(Action.PROCEED, None, running)


def finish_replay(
    record: DeadLetter, outcome: ReplayOutcome, *, error: str | None, now: float
) -> DeadLetter:
    """Return *record* after a replay it was leased for ended with *outcome*.

    ``replayed`` -> succeeded; ``failed`` -> failed (replayable again; no second dead
    letter is ever created); ``in_doubt`` -> in doubt. The store commits the ledger
    in the same transaction: committed for ``replayed``, removed for ``failed``,
    left pending for ``in_doubt``.
    """
    status = {
        ReplayOutcome.REPLAYED: ReplayStatus.SUCCEEDED,
        ReplayOutcome.FAILED: ReplayStatus.FAILED,
        ReplayOutcome.IN_DOUBT: ReplayStatus.IN_DOUBT,
    }.get(outcome)
    if status is None:
        raise ValueError(f"a replay cannot finish as {outcome.value!r}")
    return _with_replay(
        record,
        now,
        status=status,
        last_outcome=outcome,
        last_error=error,
        lease_expires_at=None,
    )


@attrs.frozen
class Reclaimed:
    """A running record whose lease expired, after :func:`reclaim`.

    Attributes:
        record: the record now (failed and replayable, or in doubt).
        resubmit: whether it should be replayed again (its side effect never started).
    """

    record: DeadLetter
    resubmit: bool


def reclaim(record: DeadLetter, ledger: LedgerEntry | None, *, now: float) -> Reclaimed | None:
    """Settle a running record whose worker died (D9); ``None`` if its lease is live.

    If the ledger shows its side effect started, it becomes in doubt and is never
    resent automatically; otherwise it becomes failed with the reason, and replayable.
    """
    replay = record.replay
    if replay.status is not ReplayStatus.RUNNING or (
        replay.lease_expires_at is not None and replay.lease_expires_at > now
    ):
        return None
    decision = decide_replay(record, ledger, now=now, lease=0.0)
    if decision.action is Action.SETTLE:
        return Reclaimed(decision.record, resubmit=False)
    failed = _with_replay(
        record,
        now,
        status=ReplayStatus.FAILED,
        last_outcome=ReplayOutcome.FAILED,
        last_error="lease expired before the side effect started: its worker died",
        lease_expires_at=None,
    )
    return Reclaimed(failed, resubmit=True)


def resolve(
    record: DeadLetter, *, succeeded: bool, now: float, ledger: LedgerEntry | None = None
) -> DeadLetter:
    """Return an in-doubt *record* settled by an operator who checked the destination.

    The store settles the other records carrying the same replay key with it
    (:func:`resolve_alongside`), in the transaction that commits (*succeeded*) or
    removes (not *succeeded*) the key's pending ledger entry: one side effect, one
    answer for all of them.

    Args:
        record: the record the operator names.
        succeeded: whether the side effect happened.
        now: wall-clock time.
        ledger: the ledger entry of ``record.replay_key``, if any.

    Raises:
        ValueError: the record is not in doubt, or another record's replay holds its
            key under a live lease (a forced replay is sending it now).
    """
    if record.replay.status is not ReplayStatus.IN_DOUBT:
        raise ValueError(
            f"dead letter {record.id} has replay status {record.replay.status.value!r}, not "
            "'in_doubt': "
            "only in-doubt records are resolved by hand"
        )
    if ledger is not None and ledger_held_by_other(ledger, record.id, now=now):
        raise ValueError(
            f"dead letter {record.id}: the replay of dead letter {ledger.record_id} is sending "
            f"idempotency key {ledger.key!r} now, under a live lease; wait for it to finish, "
            "then check the destination again"
        )
    return _resolved(record, succeeded=succeeded, now=now)


def resolve_alongside(record: DeadLetter, *, succeeded: bool, now: float) -> DeadLetter | None:
    """Return *record* settled with the key an operator resolved, or ``None`` to leave it.

    The store calls it for the other records carrying the resolved replay key. Those
    in doubt, and those still running under an expired lease (their worker died and
    the reclaimer has not seen them yet), get the operator's answer; the others are
    left alone: the ledger entry answers their next replay.
    """
    replay = record.replay
    expired = replay.lease_expires_at is None or replay.lease_expires_at <= now
    if replay.status is ReplayStatus.IN_DOUBT or (
        replay.status is ReplayStatus.RUNNING and expired
    ):
        return _resolved(record, succeeded=succeeded, now=now)
    return None


def _resolved(record: DeadLetter, *, succeeded: bool, now: float) -> DeadLetter:
    return _with_replay(
        record,
        now,
        status=ReplayStatus.SUCCEEDED if succeeded else ReplayStatus.FAILED,
        last_outcome=ReplayOutcome.REPLAYED if succeeded else ReplayOutcome.FAILED,
        last_error=None if succeeded else "resolved by an operator: the side effect did not happen",
        lease_expires_at=None,
    )


@runtime_checkable
class DeadLetterStore(Protocol):
    """Where dead letters live. :class:`SQLiteDeadLetterStore` and
    :class:`MemoryDeadLetterStore` implement it; every method is atomic.

    Times are wall-clock seconds since the epoch, taken from the store's ``clock``.
    """

    async def add_many(self, records: Sequence[DeadLetter]) -> int:
        """Store *records* in one transaction; return how many were new.

        A record already stored (same id, same capture-time fields: see
        :func:`same_capture`) is skipped, so a capture retried after a crash between
        commit and acknowledgement is stored once. Every other record is stored, or
        the call raises and nothing is: a record is never silently left out.

        Raises:
            DeadLetterStoreError: a record's id is stored with different content, or
                the store refused the batch; nothing in it was stored.
        """
        ...

    async def get(self, record_id: str) -> DeadLetter:
        """Return the record with its payload loaded.

        Raises:
            DeadLetterNotFound: no such id.
            CorruptRecord: the row cannot be decoded.
        """
        ...

    async def list(
        self,
        where: DeadLetterFilter = ALL,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Return one page of matching records, newest first (D3).

        A row that cannot be decoded does not fail the listing: it is reported in
        :attr:`Page.corrupt` by id, and the other records are listed.
        """
        ...

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """Return how many records match."""
        ...

    async def archive(self, where: DeadLetterFilter) -> int:
        """Archive matching active records that are not running; return how many (D4)."""
        ...

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching records that are not running, with their payloads; return how many (D5)."""
        ...

    async def statistics(self) -> StoreStatistics:
        """Return counts by status, source, reason class, key, replay status; evictions."""
        ...

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """Evict what *policy* no longer keeps, counting every eviction (D5)."""
        ...

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Run :func:`decide_replay` atomically and store its result.

        Raises:
            DeadLetterNotFound: no such id.
        """
        ...

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Write the ledger entry ``pending`` for the record's replay key just before its side effect.

        Returns ``False`` (and writes nothing), and the side effect must not run, if
        the key is pending under another record's live lease, or, unless *force* is
        set, committed or pending for another record at all: once that record's lease
        expired the key is in doubt (:func:`decide_replay`). Atomic, so of two records
        racing with one key only one passes.
        """
        ...

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """Apply :func:`finish_replay` and the ledger change in one transaction.

        ``replayed`` commits the key; ``failed`` removes the record's pending entry;
        ``in_doubt`` keeps it pending but ends its lease, so other records carrying
        the key are in doubt at once rather than in progress.
        """
        ...

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """Apply :func:`reclaim` to every running record whose lease expired."""
        ...

    async def resolve(self, record_id: str, *, succeeded: bool) -> DeadLetter:
        """Settle an in-doubt record by hand (runbooks/replay.md), and its whole key.

        In one transaction: commits the record's replay key (*succeeded*) or removes
        its pending entry, and settles every in-doubt record carrying that key the
        same way (see :func:`resolve`). Returns the named record.

        Raises:
            DeadLetterNotFound: no such id.
            ValueError: the record is not in doubt, or a forced replay of another
                record holds the key under a live lease.
        """
        ...

    async def ledger(self, key: str) -> LedgerEntry | None:
        """Return the ledger entry for an idempotency key."""
        ...

    async def aclose(self) -> None:
        """Close the store; further calls raise."""
        ...
