"""The store protocol, with its query, result and retention types.

:class:`DeadLetterStore` is what the SQLite and in-memory stores implement; the
state changes a replay makes are decided by the replay guard (``_guard.py``), which
both stores run atomically.
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
from ._record import DeadLetter, ReplayStatus, Source, Status

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from ._guard import Decision, LedgerEntry, Reclaimed
    from ._record import ReplayOutcome

__all__ = [
    "ALL",
    "CAPTURE_FIELDS",
    "LEDGER_EVICTED",
    "DeadLetterFilter",
    "DeadLetterStore",
    "Page",
    "ReplayStarter",
    "RetentionPolicy",
    "RetentionRule",
    "StoreStatistics",
    "SweepResult",
    "id_conflict",
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
    """What the periodic sweep evicts (DL-5).

    The defaults never evict an active record: an active dead letter is a message
    nobody has decided about yet, and dropping it silently would defeat the store.
    Archived records go after 30 days or beyond 100,000. Every eviction is counted in
    :attr:`StoreStatistics.evicted` and logged; active limits, when set, are logged
    at WARNING.

    The sweep also prunes the idempotency ledger (DL-8), after evicting records. An
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


LEDGER_EVICTED: Final = "ledger:max_age"
"""The key of :attr:`SweepResult.evicted` and :attr:`StoreStatistics.evicted` that
counts idempotency ledger entries pruned by :attr:`RetentionPolicy.ledger_max_age`."""

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
    "attributes",
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


@runtime_checkable
class DeadLetterStore(Protocol):
    """Where dead letters live. :class:`SQLiteDeadLetterStore` and
    :class:`MemoryDeadLetterStore` implement it; every method is atomic.

    Times are wall-clock seconds since the epoch, taken from the store's ``clock``.

    A store may also implement :class:`ReplayStarter`'s ``start_replay`` (both of
    otpy's do): replay then starts a record in one call instead of
    ``begin_replay``, ``get`` and ``mark_started``.
    """

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """Store *records* in one transaction; return how many were new.

        A record already stored (same id, same capture-time fields: see
        :func:`same_capture`) is skipped, so a capture retried after a crash between
        commit and acknowledgement is stored once. Every other record is stored, or
        the call raises and nothing is: a record is never silently left out.

        A store may commit concurrent calls together (the SQLite store does: see
        docs/performance.md); each returns only once its own records are committed.

        Args:
            records: the records, ids set.
            timeout: seconds to wait for the commit; ``None``, no limit.

        Raises:
            DeadLetterStoreError: a record's id is stored with different content, or
                the store refused the batch; nothing in it was stored.
            TimeoutError: not committed within *timeout*; the records may still be
                committed (storing them again is safe).

        .. versionchanged:: 0.1.0 *timeout*.
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
        """Return one page of matching records, newest first (DL-3).

        A row that cannot be decoded does not fail the listing: it is reported in
        :attr:`Page.corrupt` by id, and the other records are listed.
        """
        ...

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """Return how many records match."""
        ...

    async def archive(self, where: DeadLetterFilter) -> int:
        """Archive matching active records that are not running; return how many (DL-4)."""
        ...

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching records that are not running, with their payloads; return how many (DL-5)."""
        ...

    async def statistics(self) -> StoreStatistics:
        """Return counts by status, source, reason class, key, replay status; evictions."""
        ...

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """Evict what *policy* no longer keeps, counting every eviction (DL-5)."""
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


@runtime_checkable
class ReplayStarter(Protocol):
    """A :class:`DeadLetterStore` that starts a replay in one atomic step (optional).

    Replay workers use :meth:`start_replay` when the store has it, and otherwise
    ``begin_replay``, ``get`` and ``mark_started``, three steps (a third-party store
    written before it keeps working). One step is fewer commits, and leaves no
    moment where the record is leased but its key not yet pending: a worker that
    dies after it leaves the record in doubt once its lease expires (DL-8, DL-9),
    never resubmitted, as one that dies after ``mark_started`` does.

    .. versionadded:: 0.2.0
    """

    async def start_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Take the lease and write the ledger's pending entry, in one transaction.

        Runs :func:`decide_replay` atomically with the record and its replay key's
        ledger entry, and stores its result as :meth:`DeadLetterStore.begin_replay`
        does; when it proceeds, also writes the ledger entry ``pending`` for the
        record's replay key, under the record's id until its lease expires, as a
        successful :meth:`DeadLetterStore.mark_started` would. The guard has read
        the ledger in the same step, so it never refuses afterwards: a proceeding
        decision means the side effect may run now. The decision's record has its
        payload loaded.

        Raises:
            DeadLetterNotFound: no such id.
        """
        ...
