"""The replay guard: the pure decisions behind every replay, and the idempotency ledger (DL-7..DL-9).

Every state change a replay makes is decided by the functions here
(:func:`decide_replay`, :func:`finish_replay`, :func:`reclaim`, :func:`resolve`), so
the SQLite and in-memory stores cannot disagree: each store only runs them
atomically (one ``BEGIN IMMEDIATE`` transaction, or one synchronous step on the
event loop), with the record and the ledger entry of its replay key.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._record import DeadLetter, ReplayOutcome, ReplayStatus, Status

if TYPE_CHECKING:
    from collections.abc import Container

__all__ = [
    "Action",
    "Decision",
    "LedgerEntry",
    "LedgerState",
    "Reclaimed",
    "decide_replay",
    "finish_replay",
    "ledger_held_by_other",
    "ledger_prunable",
    "reclaim",
    "resolve",
    "resolve_alongside",
]


class LedgerState(enum.StrEnum):
    """The idempotency ledger's state for one key (DL-8)."""

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


_OWN_KEY_PREFIX: Final = "dead_letter:"
"""The prefix of :attr:`DeadLetter.replay_key` for a record without an idempotency key."""


def ledger_prunable(
    entry: LedgerEntry,
    *,
    cutoff: float,
    record_ids: Container[str],
    idempotency_keys: Container[str],
) -> bool:
    """Return whether the retention sweep may remove *entry* (DL-5, DL-8).

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
    """Decide a replay request atomically with the record and its key's ledger entry (DL-4, DL-7..DL-9).

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
    """Settle a running record whose worker died (DL-9); ``None`` if its lease is live.

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
