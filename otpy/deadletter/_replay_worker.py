"""What the replay supervisor runs: the workers' handler, the reclaimer, and replay telemetry (DL-8..DL-10, TEL-4).

The workers are the :class:`~otpy.pressure.PartitionWorker` actors of the config's
:class:`~otpy.pressure.PartitionedQueue`; :class:`ReplayRunner` is their handler. See
``_replay.py`` for the protocol a replay follows; that module builds the supervisor
from the actors here, and this one never imports it (:class:`WorkerConfig` names
what they read of its config). Telemetry uses opentelemetry-api only and never
raises: a failure is logged at debug level and the replay goes on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, final

import anyio
import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._core import Actor, is_normal_exit
from .._exceptions import (
    DeadLetterError,
    DeadLetterNotFound,
    DeadLetterStoreError,
    NoReplayHandler,
    PressureError,
    ReplayOutcomeUnknown,
)
from .._redact import get_logger
from ..pressure import Priority
from ..telemetry import (
    ATTR_DEADLETTER_ID,
    ATTR_DEADLETTER_KEY,
    ATTR_DEADLETTER_SOURCE,
    ATTR_ERROR_TYPE,
    ATTR_REPLAY_ATTEMPT,
    ATTR_REPLAY_FORCE,
    ATTR_REPLAY_OUTCOME,
    ATTR_REPLAY_PARTITION,
    ATTR_REPLAY_RESUBMIT,
    METRIC_REPLAY_OUTCOMES,
    SPAN_DEADLETTER_RECLAIM,
    SPAN_DEADLETTER_REPLAY,
    cached_counter,
    get_tracer,
)
from ._guard import Action, LedgerState
from ._record import DeadLetter, ReplayOutcome, ReplayStatus, redact
from ._replay_messages import RECLAIM_NOW, RECLAIM_TICK, ReplayJob, ReplayRequest, ReplayResult
from ._store import ReplayStarter
from ._telemetry import span_context_from

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.trace import Span

    from .._core import Caller
    from ..pressure import PartitionedQueue
    from ._guard import Reclaimed
    from ._store import DeadLetterStore

__all__ = [
    "Reclaimer",
    "ReplayHandler",
    "ReplayRunner",
    "WorkerConfig",
    "crash_worker",
]

logger = get_logger("otpy.deadletter.replay")

_propagator = TraceContextTextMapPropagator()


def _class_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc: BaseException) -> str:
    """Return ``"Class: message"`` for *exc*, redacted and cut to 500 characters."""
    name = _class_name(exc)
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable message>"
    return redact(f"{name}: {message}"[:500] if message else name)


@attrs.frozen
class _Ended:
    """How a handler call ended: the outcome, and for failures the error and its class."""

    outcome: ReplayOutcome
    error: str | None = None
    error_type: str | None = None


# -- the handler and the config ------------------------------------------------------

ReplayHandler: TypeAlias = Callable[[DeadLetter, str], Awaitable[object]]
"""Re-sends one record: ``await handler(record, idempotency_key)``.

The record has its payload loaded. Pass the key to the destination (an
``Idempotency-Key`` header, a unique column) so it can deduplicate too. Return to
report success; raise an ordinary exception when the side effect certainly did not
happen (the record becomes ``failed`` and replayable); raise
:class:`ReplayOutcomeUnknown` when you cannot tell (the record becomes ``in_doubt``).
"""


class WorkerConfig(Protocol):
    """What the workers and the reclaimer read of the config that starts them.

    :class:`~otpy.deadletter.ReplayConfig` is the one implementation. It lives in
    ``_replay.py``, which builds the replay supervisor from the actors here; naming
    what they need keeps the import one way.
    """

    @property
    def store(self) -> DeadLetterStore:
        """The dead-letter store."""
        ...

    @property
    def handlers(self) -> Mapping[str, ReplayHandler]:
        """A handler per source value."""
        ...

    @property
    def name(self) -> str:
        """The replay supervisor's name."""
        ...

    @property
    def handler_timeout(self) -> float:
        """Seconds a handler may run."""
        ...

    @property
    def reclaim_interval(self) -> float:
        """Seconds between the reclaimer's sweeps."""
        ...

    @property
    def lease(self) -> float:
        """Seconds a worker holds a record."""
        ...

    @property
    def queue(self) -> PartitionedQueue[ReplayJob]:
        """The replay requests, partitioned by key."""
        ...

    def partition_of(self, key: str) -> int:
        """Return the partition that replays records with dead-letter key *key*."""
        ...


# -- the workers' handler -------------------------------------------------------------


def crash_worker(key: str, job: ReplayJob, exc: Exception) -> None:
    """The workers' ``on_error``: a store error (or a bug) crashes the worker.

    Handler errors never get here (they are outcomes); the supervisor restarts the
    worker, and a record it held is reclaimed after its lease.
    """
    raise exc


@final
class ReplayRunner:
    """Replays the records of one partition, one at a time, in the order requested.

    The handler of the replay queue's workers: requests come from :class:`Replayer`
    and from the reclaimer. A request whose requester gave up before it started is
    never run; one whose worker stopped mid-replay is answered ``outcome=None`` and
    not run again by the next worker.
    """

    __slots__ = ("_starter", "config")

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        store = config.store
        self._starter = store if isinstance(store, ReplayStarter) else None

    def __repr__(self) -> str:
        return f"<ReplayRunner {self.config.name!r}>"

    async def __call__(self, key: str, job: ReplayJob) -> None:
        """Replay *job*'s record and settle the job with the result."""
        if job.settled:
            return
        request = job.request
        try:
            result = await self._replay(request)
        except BaseException as exc:
            job.settle(_stopped(request, self.config.partition_of(key), exc))
            raise
        job.settle(result)
        if job.done is None and isinstance(result, DeadLetterError):
            logger.warning(
                "resubmitted replay of dead letter %s not run: %s", request.record_id, result
            )

    async def _replay(self, request: ReplayRequest) -> ReplayResult | DeadLetterError:
        span = _start_span(request, self.config.partition_of(request.key))
        token = _attach(span)
        try:
            return await self._attempt(request, span)
        except BaseException as exc:
            _interrupted(span, exc)
            raise
        finally:
            _detach(token)
            _end(span)

    async def _attempt(self, request: ReplayRequest, span: Span) -> ReplayResult | DeadLetterError:
        config = self.config
        store = config.store
        handler = config.handlers.get(request.source)
        if handler is None:  # pragma: no cover - the client and the reclaimer check first
            return NoReplayHandler(request.source, sorted(config.handlers))
        starter = self._starter
        try:
            if starter is not None:
                # The lease and the key's pending entry in one step: from here on,
                # dying leaves the record in doubt once the lease expires (DL-8).
                decision = await starter.start_replay(
                    request.record_id, lease=config.lease, force=request.force
                )
            else:
                decision = await store.begin_replay(
                    request.record_id, lease=config.lease, force=request.force
                )
        except DeadLetterNotFound as exc:  # purged or evicted since it was requested
            return exc
        if decision.action is not Action.PROCEED:
            assert decision.outcome is not None
            refused = ReplayResult(
                record_id=request.record_id, outcome=decision.outcome, record=decision.record
            )
            return _finished(span, request, refused, decision.record.replay.attempts)
        attempt = decision.record.replay.attempts
        if starter is not None:
            record = decision.record
        else:
            # Between the lease and the side effect: dying here leaves no ledger
            # entry, so the reclaimer resubmits the record once the lease expires
            # (DL-9).
            record = await store.get(request.record_id)
            if not await store.mark_started(record, force=request.force):
                # Another record with the same idempotency key got there first.
                raced = await self._lost_race(record)
                return _finished(span, request, raced, attempt)
        ended = await self._run_handler(handler, record)
        final = await store.finish(record.id, ended.outcome, error=ended.error)
        if ended.outcome is ReplayOutcome.IN_DOUBT:
            logger.warning(
                "replay of dead letter %s is in doubt (%s): it is not re-sent automatically; "
                "see runbooks/replay.md",
                record.id,
                ended.error,
            )
        elif ended.outcome is ReplayOutcome.FAILED:
            logger.info("replay of dead letter %s failed: %s", record.id, ended.error)
        result = ReplayResult(
            record_id=record.id, outcome=ended.outcome, record=final, error=ended.error
        )
        return _finished(span, request, result, attempt, ended.error_type)

    async def _lost_race(self, record: DeadLetter) -> ReplayResult:
        """Settle a leased record whose key another record's replay took first; nothing is sent."""
        store = self.config.store
        entry = await store.ledger(record.replay_key)
        if entry is not None and entry.state is LedgerState.COMMITTED:
            final = await store.finish(record.id, ReplayOutcome.REPLAYED)
            return ReplayResult(
                record_id=record.id, outcome=ReplayOutcome.ALREADY_REPLAYED, record=final
            )
        if (
            entry is None
            or await self._running(entry.record_id)
            # Read again: its attempt may have finished between the two reads (the
            # outcome and the ledger change in one transaction), so a pending entry
            # read before is no proof that it ended without one.
            or await store.ledger(record.replay_key) != entry
        ):
            # Still sending, or it finished meanwhile: try again later, when the
            # ledger says how it ended.
            error = "another record's replay of the same idempotency key is in progress"
            final = await store.finish(record.id, ReplayOutcome.FAILED, error=error)
            return ReplayResult(
                record_id=record.id, outcome=ReplayOutcome.IN_PROGRESS, record=final
            )
        # Its attempt ended without an outcome: the key is in doubt, for this record too.
        error = (
            f"idempotency key {entry.key!r} is in doubt: the replay of dead letter "
            f"{entry.record_id} started its side effect and its outcome is unknown; "
            "check the destination and resolve it (runbooks/replay.md)"
        )
        final = await store.finish(record.id, ReplayOutcome.IN_DOUBT, error=error)
        return ReplayResult(
            record_id=record.id, outcome=ReplayOutcome.IN_DOUBT, record=final, error=error
        )

    async def _running(self, record_id: str) -> bool:
        try:
            other = await self.config.store.get(record_id)
        except DeadLetterNotFound:  # purged since: nobody can finish its attempt
            return False
        return other.replay.status is ReplayStatus.RUNNING

    async def _run_handler(self, handler: ReplayHandler, record: DeadLetter) -> _Ended:
        timeout = self.config.handler_timeout
        try:
            with anyio.move_on_after(timeout) as scope:
                pending: object = handler(record, record.replay_key)
                if not inspect.isawaitable(pending):  # slipped past check_handler
                    return _Ended(
                        ReplayOutcome.IN_DOUBT,
                        f"the handler returned {type(pending).__name__}, not an awaitable: it "
                        "ran synchronously, so the side effect may have happened",
                        "TypeError",
                    )
                await pending
        except ReplayOutcomeUnknown as exc:
            return _Ended(ReplayOutcome.IN_DOUBT, _describe(exc), _class_name(exc))
        except Exception as exc:
            return _Ended(ReplayOutcome.FAILED, _describe(exc), _class_name(exc))
        if scope.cancelled_caught:
            return _Ended(
                ReplayOutcome.IN_DOUBT,
                f"the handler did not finish within {timeout:g}s and was cancelled: "
                "the side effect may have happened",
                "timeout",
            )
        return _Ended(ReplayOutcome.REPLAYED)


def _stopped(request: ReplayRequest, partition: int, exc: BaseException) -> ReplayResult:
    """The answer for a request whose worker stopped (or crashed) mid-replay."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        how = f"replay worker for partition {partition} stopped mid-replay"
    else:
        how = f"replay worker for partition {partition} crashed: {_describe(exc)}"
    detail = (
        f"{how}; if the replay had taken its lease the reclaimer settles the record once "
        "the lease expires, otherwise the record is unchanged: check it and replay again"
    )
    return ReplayResult(record_id=request.record_id, outcome=None, error=detail)


@final
class Reclaimer(Actor):
    """Every ``reclaim_interval``, settles the records of workers that died holding a lease (DL-9).

    A record whose side effect never started becomes ``failed`` and is resubmitted
    to its partition; one whose side effect started becomes ``in_doubt`` and waits
    for an operator. Store errors are logged and retried at the next sweep.
    """

    config: WorkerConfig

    async def init(self, config: WorkerConfig) -> None:
        """Schedule the first sweep."""
        self.config = config
        self.send_after(config.reclaim_interval, RECLAIM_TICK)

    async def terminate(self, reason: object) -> None:
        """The replay supervisor is stopping (the reclaimer stops first): answer what waits.

        Requests still queued would otherwise wait for their timeout; they are
        answered at once with no outcome (nothing was replayed). Replays in progress
        finish, or are answered by their worker.
        """
        if not is_normal_exit(reason):
            return  # the reclaimer itself crashed: the workers carry on
        for _key, job in self.config.queue.clear():
            job.settle(
                ReplayResult(
                    record_id=job.request.record_id,
                    outcome=None,
                    error=(
                        f"replay supervisor {self.config.name!r} stopped before this request "
                        "ran; nothing was replayed: replay it again"
                    ),
                )
            )

    async def handle_info(self, message: Any) -> None:
        """Sweep on the timer, then schedule the next sweep."""
        if message is RECLAIM_TICK:
            try:
                await self._reclaim()
            except DeadLetterStoreError as exc:
                logger.warning("replay reclaimer %s: sweep failed: %s", self.config.name, exc)
            self.send_after(self.config.reclaim_interval, RECLAIM_TICK)
            return
        await super().handle_info(message)

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Sweep now (``Replayer.reclaim``); answer what was reclaimed."""
        if message is RECLAIM_NOW:
            return await self._reclaim()
        return await super().handle_call(message, caller)

    async def _reclaim(self) -> list[Reclaimed]:
        config = self.config
        reclaimed = sorted(await config.store.reclaim_expired(), key=lambda r: r.record.id)
        for item in reclaimed:
            record = item.record
            partition = config.partition_of(record.key)
            _record_reclaim(item, partition)
            if not item.resubmit:
                logger.warning(
                    "dead letter %s is in doubt: its replay worker died after the side effect "
                    "started; it is not re-sent automatically (runbooks/replay.md)",
                    record.id,
                )
            elif str(record.source) not in config.handlers:
                # Leased by another replay supervisor (the CLI's, say) that died.
                logger.warning(
                    "dead letter %s: its replay worker died; not resubmitted, as %r has no "
                    "handler for source %r: it stays failed",
                    record.id,
                    config.name,
                    record.source.value,
                )
            else:
                self._resubmit(record)
        return reclaimed

    def _resubmit(self, record: DeadLetter) -> None:
        job = ReplayJob(ReplayRequest.of(record, force=False, carrier=()))
        try:
            self.config.queue.put_nowait(record.key, job, priority=Priority.HIGH)
        except (PressureError, anyio.WouldBlock) as exc:
            reason = str(exc) or "its partition is deferring requests"
            logger.warning(
                "dead letter %s: its replay worker died; not resubmitted (%s): it stays "
                "failed, replay it by hand",
                record.id,
                reason,
            )
        else:
            logger.info("dead letter %s: its replay worker died; resubmitting it", record.id)

    def format_status(self) -> Mapping[str, object]:
        """Show the supervisor's name, never the store."""
        return {"replay": self.config.name}


# -- telemetry ----------------------------------------------------------------------


_outcomes_counter = cached_counter(
    METRIC_REPLAY_OUTCOMES, unit="{attempt}", description="Dead-letter replay attempts by outcome."
)


def _links(trace_context: tuple[tuple[str, str], ...]) -> list[Link]:
    span_context = span_context_from(trace_context)
    return [Link(span_context)] if span_context is not None else []


def _start_span(request: ReplayRequest, partition: int) -> Span:
    """Start the replay span: a child of the requester's span, linked to the failure's."""
    try:
        parent = _propagator.extract(dict(request.carrier)) if request.carrier else None
        return get_tracer().start_span(
            SPAN_DEADLETTER_REPLAY,
            context=parent,
            kind=SpanKind.INTERNAL,
            links=_links(request.trace_context),
            attributes={
                ATTR_DEADLETTER_ID: request.record_id,
                ATTR_DEADLETTER_KEY: request.key,
                ATTR_DEADLETTER_SOURCE: request.source,
                ATTR_REPLAY_PARTITION: partition,
                ATTR_REPLAY_FORCE: request.force,
            },
        )
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not start a replay span", exc_info=True)
        return trace.INVALID_SPAN


def _attach(span: Span) -> object:
    """Make *span* current, so the handler's own spans are its children."""
    try:
        return otel_context.attach(trace.set_span_in_context(span))
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not make the replay span current", exc_info=True)
        return None


def _detach(token: object) -> None:
    try:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not restore the trace context", exc_info=True)


def _end(span: Span) -> None:
    try:
        span.end()
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not end a replay span", exc_info=True)


def _count(outcome: ReplayOutcome, source: str) -> None:
    try:
        _outcomes_counter().add(
            1, {ATTR_REPLAY_OUTCOME: outcome.value, ATTR_DEADLETTER_SOURCE: source}
        )
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not count a replay outcome", exc_info=True)


def _finished(
    span: Span,
    request: ReplayRequest,
    result: ReplayResult,
    attempt: int,
    error_type: str | None = None,
) -> ReplayResult:
    """Put *result* on the span and the counter; return it."""
    outcome = result.outcome
    assert outcome is not None
    _count(outcome, request.source)
    try:
        if span.is_recording():
            span.set_attributes({ATTR_REPLAY_OUTCOME: outcome.value, ATTR_REPLAY_ATTEMPT: attempt})
            if error_type is not None:
                span.set_attribute(ATTR_ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR, result.error))
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not record a replay outcome on its span", exc_info=True)
    return result


def _interrupted(span: Span, exc: BaseException) -> None:
    """The worker stopped mid-replay: killed, cancelled, or crashed by a store error."""
    try:
        if span.is_recording():
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                error_type = "interrupted"
                description = (
                    "the replay worker stopped mid-replay; the reclaimer settles the record "
                    "after its lease"
                )
            else:
                error_type, description = _class_name(exc), _describe(exc)
            span.set_attribute(ATTR_ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, description))
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not record an interrupted replay", exc_info=True)


def _record_reclaim(item: Reclaimed, partition: int) -> None:
    """Count the dead worker's attempt with its settled outcome; emit a reclaim span."""
    record = item.record
    outcome = ReplayOutcome.FAILED if item.resubmit else ReplayOutcome.IN_DOUBT
    _count(outcome, str(record.source))
    try:
        span = get_tracer().start_span(
            SPAN_DEADLETTER_RECLAIM,
            kind=SpanKind.INTERNAL,
            links=_links(record.trace_context),
            attributes={
                ATTR_DEADLETTER_ID: record.id,
                ATTR_DEADLETTER_KEY: record.key,
                ATTR_DEADLETTER_SOURCE: str(record.source),
                ATTR_REPLAY_PARTITION: partition,
                ATTR_REPLAY_OUTCOME: outcome.value,
                ATTR_REPLAY_ATTEMPT: record.replay.attempts,
                ATTR_REPLAY_RESUBMIT: item.resubmit,
            },
        )
        span.end()
    except Exception:  # pragma: no cover - telemetry never breaks a replay
        logger.debug("could not record a reclaim span", exc_info=True)
