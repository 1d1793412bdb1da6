"""What the replay client and the replay supervisor's children pass each other.

A :class:`~otpy.deadletter.Replayer` puts a :class:`ReplayJob` (a :class:`ReplayRequest`
and where its answer goes) on the config's partitioned queue; the partition's worker
settles the job with a :class:`ReplayResult`. The reclaimer takes :data:`RECLAIM_NOW`
as a call and :data:`RECLAIM_TICK` from its own timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from .._exceptions import DeadLetterError, ReplayFailed, ReplayRejected, ReplayUnavailable
from ._record import DeadLetter, ReplayOutcome

if TYPE_CHECKING:
    import anyio

__all__ = ["RECLAIM_NOW", "RECLAIM_TICK", "ReplayJob", "ReplayRequest", "ReplayResult"]

_REFUSALS = frozenset(
    {
        ReplayOutcome.ALREADY_REPLAYED,
        ReplayOutcome.REJECTED_ARCHIVED,
        ReplayOutcome.IN_PROGRESS,
        ReplayOutcome.IN_DOUBT,
    }
)


@attrs.frozen(kw_only=True)
class ReplayResult:
    """What one replay request came to.

    Attributes:
        record_id: the record.
        outcome: the outcome, or ``None`` when the request got none: its worker
            exited or did not answer within the timeout (``error`` says which). The
            record's state in the store is then the truth: if the replay had taken its
            lease, the reclaimer settles it once the lease expires (replayable again if
            the side effect never started, ``in_doubt`` if it had); if it had not, the
            record is unchanged and can simply be replayed again.
        record: the record after the request, when there is an outcome.
        error: the handler's error (class and redacted message) for ``failed`` and
            ``in_doubt``; why there is no outcome when ``outcome`` is ``None``.

    .. versionadded:: 0.1.0
    """

    record_id: str
    outcome: ReplayOutcome | None
    record: DeadLetter | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the record's side effect is known to have happened (now or before)."""
        return self.outcome in (ReplayOutcome.REPLAYED, ReplayOutcome.ALREADY_REPLAYED)

    def raise_for_outcome(self) -> ReplayResult:
        """Return this result if the record was replayed; raise otherwise.

        Like httpx's ``raise_for_status``: anything but ``replayed`` raises.

        Raises:
            ReplayRejected: ``already_replayed``, ``rejected_archived``,
                ``in_progress`` or ``in_doubt``; nothing was sent by this request
                (for ``in_doubt``, maybe something was: see ``error``).
            ReplayFailed: the handler raised; the record is ``failed`` and replayable.
            ReplayUnavailable: there is no outcome (``outcome is None``).
        """
        if self.outcome is ReplayOutcome.REPLAYED:
            return self
        if self.outcome is None:
            raise ReplayUnavailable(self.record_id, self.error or "no answer")
        if self.outcome is ReplayOutcome.FAILED:
            raise ReplayFailed(self.record_id, self.error or "unknown error")
        assert self.outcome in _REFUSALS
        raise ReplayRejected(self.record_id, self.outcome.value)


@attrs.frozen
class ReplayRequest:
    """A request to replay one record; carries what the span needs before the store answers."""

    record_id: str
    key: str
    source: str
    trace_context: tuple[tuple[str, str], ...]
    force: bool
    carrier: tuple[tuple[str, str], ...]
    """The requester's trace context: the replay span's parent."""

    @classmethod
    def of(
        cls, record: DeadLetter, *, force: bool, carrier: tuple[tuple[str, str], ...]
    ) -> ReplayRequest:
        return cls(record.id, record.key, str(record.source), record.trace_context, force, carrier)


@attrs.define(eq=False)
class ReplayJob:
    """A replay request in the queue, and where its answer goes."""

    request: ReplayRequest
    done: anyio.Event | None = None
    """Set once answered; ``None`` for a resubmission nobody waits for."""
    result: ReplayResult | DeadLetterError | None = None
    settled: bool = False
    """Answered, or given up by its requester: never run (again)."""

    def settle(self, result: ReplayResult | DeadLetterError) -> None:
        if self.settled:
            return
        self.settled = True
        self.result = result
        if self.done is not None:
            self.done.set()


class _Reclaim:
    """Sweep for expired leases now (a call) or on the timer (an info)."""


RECLAIM_NOW: Final = _Reclaim()
RECLAIM_TICK: Final = _Reclaim()
