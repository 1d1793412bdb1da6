"""The whole otpy error tree.

::

    OtpyError
    ├── InvalidArgument              a bad value for a public argument; also a ValueError
    │   └── InvalidArgumentType      a value of the wrong type; also a TypeError
    ├── NodeError                    no node running / node misuse; also a RuntimeError
    ├── SpawnError                   init failed, timed out, or a name was taken
    │   ├── AlreadyStarted           a name (or child id) is already in use
    │   └── FailedToStartChild       a supervisor did not start: one of its children failed
    ├── ActorError
    │   ├── ActorStopped             call/send to an actor that has exited (noproc)
    │   │   └── ActorExited          the actor died while a call was outstanding
    │   ├── MailboxFull              the mailbox is full and its overflow policy rejects
    │   ├── CallTimeout              also a TimeoutError
    │   ├── CallingSelf              an actor called itself: it would deadlock
    │   ├── UnhandledMessage         a call/cast reached an actor with no handler for it
    │   └── StashOverflow            an actor stashed beyond its stash capacity
    ├── InvalidPressurePolicy        a bad pressure policy field; also a ValueError
    ├── PressureError                a bounded queue refused a message
    │   ├── LoadShed                 shed at level shed: the message's priority is shed
    │   ├── QueueFull                the bounded queue is at capacity
    │   └── QueueClosed              the partitioned queue is closed (draining)
    ├── SupervisionError
    │   ├── InvalidChildSpec         also a ValueError
    │   │   └── InvalidReplayHandler a replay handler that is not an async callable; also a TypeError
    │   ├── ChildError               start/restart/terminate/delete_child refused (OTP error cases)
    │   ├── MaxChildren              a dynamic supervisor is at max_children
    │   └── RestartIntensityExceeded the supervisor gave up
    ├── DeadLetterError
    │   ├── InvalidDeadLetter        a bad record field; also a ValueError and a TypeError
    │   ├── DeadLetterNotFound       no record with that id; also a LookupError
    │   ├── ReplayRejected           a replay request was refused (archived, in progress, in doubt)
    │   ├── ReplayFailed             the replay handler raised; the record is marked failed
    │   ├── NoReplayHandler          no handler is registered for the record's source
    │   ├── ReplayOutcomeUnknown     raised by a handler that cannot tell if its side effect happened
    │   ├── ReplayUnavailable        a replay request got no outcome (its worker exited or timed out)
    │   └── DeadLetterStoreError     the store cannot be used as it is
    │       ├── StoreLocked          another process holds the write lock
    │       ├── StoreFull            the disk (or max_page_count) is full
    │       ├── NotAnOtpyStore       the file is not an otpy dead-letter store
    │       ├── StoreVersionTooNew   a newer otpy wrote this schema
    │       ├── StoreSchemaDamaged   a table or column otpy needs is missing
    │       └── CorruptRecord        one stored row cannot be decoded
    ├── GatewayError             the outbound gateway refused or could not use its outbox
    │   ├── UnknownDestination   no destination of that name; also a LookupError
    │   ├── BulkheadFull         a destination's bulkhead had no slot within max_wait
    │   └── OutboxError          the outbox store cannot be used as it is
    │       └── OutboxMessageNotFound  no message with that id; also a LookupError
    ├── IngestError              the ingest side refused a message or could not use its journal
    │   └── JournalError         the journal store cannot be used as it is
    │       └── JournalFull      the journal's disk budget is reached (the node answers 429)
    ├── SignatureError           a Standard Webhooks signature did not verify; also a ValueError
    └── ConfigError              a bad node configuration (otpy.node); also a ValueError

    TelemetryConfigError (otpy.telemetry) is an OtpyError and a ValueError: a bad
    OTEL_* setting, raised before anything starts.

Exceptions hold data and write their own message, naming the object and the value
involved and, where the fix is obvious, what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "SignatureError",
    "OutboxMessageNotFound",
    "OutboxError",
    "BulkheadFull",
    "UnknownDestination",
    "GatewayError",
    "IngestError",
    "JournalError",
    "JournalFull",
    "ActorError",
    "InvalidArgument",
    "InvalidArgumentType",
    "CorruptRecord",
    "DeadLetterError",
    "DeadLetterNotFound",
    "DeadLetterStoreError",
    "InvalidDeadLetter",
    "FailedToStartChild",
    "NoReplayHandler",
    "NotAnOtpyStore",
    "ReplayFailed",
    "ReplayOutcomeUnknown",
    "ReplayRejected",
    "ReplayUnavailable",
    "StoreFull",
    "StoreLocked",
    "StoreSchemaDamaged",
    "StoreVersionTooNew",
    "ActorExited",
    "ActorStopped",
    "AlreadyStarted",
    "CallTimeout",
    "CallingSelf",
    "ChildError",
    "InvalidChildSpec",
    "InvalidReplayHandler",
    "InvalidPressurePolicy",
    "LoadShed",
    "MailboxFull",
    "MaxChildren",
    "NodeError",
    "OtpyError",
    "PressureError",
    "QueueClosed",
    "QueueFull",
    "RestartIntensityExceeded",
    "SpawnError",
    "StashOverflow",
    "SupervisionError",
    "UnhandledMessage",
    "ConfigError",
]


class OtpyError(Exception):
    """Base class of every error otpy raises on purpose."""


class InvalidArgument(OtpyError, ValueError):
    """A public constructor or call was given a value it does not allow; nothing changed.

    Raised where the value is given, before any state is touched, so a bad value
    fails at the call that passed it rather than later, somewhere else.

    Attributes:
        argument: the argument (or field) name, like ``"capacity"`` or ``"priority"``.
        problem: what is allowed, and what was given.
        owner: the object it was given to, like ``"queue 'jobs'"``, or ``None``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, argument: str, problem: str, *, owner: str | None = None) -> None:
        text = f"{argument} {problem}"
        super().__init__(text if owner is None else f"{owner}: {text}")
        self.argument = argument
        self.problem = problem
        self.owner = owner


class InvalidArgumentType(InvalidArgument, TypeError):
    """The value has a type the argument does not allow; also a ``TypeError``.

    .. versionadded:: 0.1.0
    """


class NodeError(OtpyError, RuntimeError):
    """The node is missing or was used wrongly."""


class SpawnError(OtpyError):
    """An actor could not be started.

    Attributes:
        actor: the actor's name, or its class name when it has none.
        reason: the exit reason: the exception ``init`` raised, ``"timeout"``, or the
            reason given to ``self.stop()`` during ``init``.
    """

    def __init__(self, actor: str, reason: object, detail: str | None = None) -> None:
        text = detail or f"actor {actor!r} failed to start: {_describe(reason)}"
        super().__init__(text)
        self.actor = actor
        self.reason = reason


class AlreadyStarted(SpawnError):
    """A name is already registered to a live actor.

    Attributes:
        name: the name asked for.
        existing: the ``ActorRef`` holding it.
    """

    def __init__(self, name: str, existing: object) -> None:
        super().__init__(
            name,
            "already_started",
            f"name {name!r} is already registered to {existing!r}; "
            "pick another name or stop that actor first",
        )
        self.name = name
        self.existing = existing


class FailedToStartChild(SpawnError):
    """A supervisor did not start because one of its children failed to start.

    OTP's ``{shutdown, {failed_to_start_child, Id, Reason}}``: the supervisor stopped
    the children it had started and exited with ``ShutdownWith(this error)``, so its
    own supervisor's report says shutdown. The message names the child that failed
    first, wherever it is in the tree, and the path to it.

    Attributes:
        supervisor: the supervisor that did not start (also ``actor``).
        child: the id of its child that failed.
        reason: that child's reason: what its ``init`` raised, ``"timeout"``, or, for a
            child supervisor, its exit reason ``ShutdownWith(FailedToStartChild(...))``.
        path: the supervisor's label, then the labels down to the child that failed
            first, like ``("root", "middle", "db")``.
        cause: the reason of that child, the one at the end of ``path``.
    """

    path: tuple[str, ...]
    cause: object

    def __init__(self, supervisor: str, child: str, reason: object) -> None:
        inner = getattr(reason, "detail", None)  # ShutdownWith, from a child supervisor
        if isinstance(inner, FailedToStartChild):
            path = (supervisor, *inner.path)
            cause = inner.cause
        else:
            path = (supervisor, child)
            cause = reason
        super().__init__(
            supervisor,
            reason,
            f"supervisor {supervisor!r} failed to start child {path[-1]!r} "
            f"({'/'.join(path)}): {_describe(cause)}",
        )
        self.supervisor = supervisor
        self.child = child
        self.path = path
        self.cause = cause


class ActorError(OtpyError):
    """Something went wrong talking to an actor."""


class ActorStopped(ActorError):
    """The actor has exited (or never existed): OTP's ``noproc``.

    Attributes:
        actor: the actor's display name.
        reason: its exit reason, or ``"noproc"`` when it is unknown.
    """

    def __init__(self, actor: str, reason: object = "noproc") -> None:
        super().__init__(f"actor {actor!r} is not running ({_describe(reason)})")
        self.actor = actor
        self.reason = reason


class ActorExited(ActorStopped):
    """The actor exited while a call to it was outstanding; ``reason`` is its exit reason."""

    def __init__(self, actor: str, reason: object) -> None:
        ActorError.__init__(self, f"actor {actor!r} exited before replying: {_describe(reason)}")
        self.actor = actor
        self.reason = reason


class MailboxFull(ActorError):
    """The mailbox is at capacity and its overflow policy rejects the message.

    Attributes:
        actor: the actor's display name.
        capacity: the mailbox capacity.
    """

    def __init__(self, actor: str, capacity: int, waited: float | None = None) -> None:
        how = f" after waiting {waited:g}s" if waited else ""
        super().__init__(
            f"mailbox of {actor!r} is full ({capacity} messages){how}; "
            "slow the sender, raise mailbox capacity, or choose another overflow policy"
        )
        self.actor = actor
        self.capacity = capacity


class CallTimeout(ActorError, TimeoutError):
    """No reply arrived within the call's timeout; a late reply is discarded."""

    def __init__(self, actor: str, timeout: float) -> None:
        super().__init__(
            f"call to {actor!r} got no reply within {timeout:g}s; "
            "the actor keeps running and a late reply will be discarded"
        )
        self.actor = actor
        self.timeout = timeout


class CallingSelf(ActorError):
    """An actor called itself, which can never be answered."""

    def __init__(self, actor: str) -> None:
        super().__init__(
            f"actor {actor!r} called itself, which would deadlock; use cast, or a continue step"
        )
        self.actor = actor


class UnhandledMessage(ActorError):
    """A call or cast reached an actor that does not implement the handler for it."""

    def __init__(self, actor: str, kind: str, message: object) -> None:
        super().__init__(
            f"actor {actor!r} received a {kind} of type {type(message).__name__} "
            f"but defines no handle_{kind}; implement handle_{kind} or stop sending it"
        )
        self.actor = actor
        self.kind = kind
        self.message = message


class StashOverflow(ActorError):
    """``Actor.stash()`` was called with the stash already at capacity."""

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(
            f"actor {actor!r} stash is full ({capacity} messages); "
            "unstash before stashing more, or raise stash_capacity"
        )
        self.actor = actor
        self.capacity = capacity


class SupervisionError(OtpyError):
    """A supervisor refused a request or gave up."""


class InvalidChildSpec(SupervisionError, ValueError):
    """A child spec or supervisor flag is invalid; raised when the spec is built."""

    def __init__(self, child: str, problem: str) -> None:
        super().__init__(f"child {child!r}: {problem}")
        self.child = child
        self.problem = problem


class InvalidReplayHandler(InvalidChildSpec, TypeError):
    """A replay handler is not an async callable; raised when the handlers are registered.

    A synchronous handler would run its side effect when called and then fail to be
    awaited, so the record would be marked failed and its next replay would repeat
    the side effect: it is refused before anything runs.

    Attributes:
        source: the source the handler was registered for.
        handler: the handler.

    .. versionadded:: 0.1.0
    """

    def __init__(self, supervisor: str, source: str, handler: object) -> None:
        super().__init__(
            supervisor,
            f"the handler for {source!r} is "
            f"{'not an async callable' if callable(handler) else 'not callable'}: {handler!r}; "
            "a replay handler is `async def handler(record: DeadLetter, idempotency_key: str)`, "
            "or an object whose `__call__` is such an `async def`",
        )
        self.source = source
        self.handler = handler


class ChildError(SupervisionError):
    """A child-management request was refused, with OTP's reason.

    Attributes:
        child: the child id.
        reason: one of ``"not_found"``, ``"running"``, ``"restarting"``,
            ``"already_present"``, ``"already_started"``, ``"simple_one_for_one"``.
    """

    _HINTS: ClassVar[dict[str, str]] = {
        "not_found": "no child has that id",
        "running": "the child is running; terminate_child it first",
        "restarting": "the child is being restarted; try again once it is up",
        "already_present": "a stopped child with that id exists; restart_child or delete_child it",
        "already_started": "a running child with that id exists",
        "simple_one_for_one": "dynamic supervisors address children by ref, not by id",
    }

    def __init__(self, child: object, reason: str) -> None:
        super().__init__(f"child {child!r}: {reason}: {self._HINTS.get(reason, reason)}")
        self.child = child
        self.reason = reason


class MaxChildren(SupervisionError):
    """A dynamic supervisor already runs ``max_children`` children."""

    def __init__(self, supervisor: str, max_children: int) -> None:
        super().__init__(
            f"supervisor {supervisor!r} already runs max_children={max_children}; "
            "stop a child or raise max_children"
        )
        self.supervisor = supervisor
        self.max_children = max_children


class RestartIntensityExceeded(SupervisionError):
    """The supervisor gave up: more restarts in its period than its intensity allows."""

    def __init__(
        self, supervisor: str, restarts: int, period: float, offender: object, intensity: int
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} shut down: {restarts} restarts in {period:g}s "
            f"exceed its intensity of {intensity} (last offender {offender!r}); "
            "fix the crashing child or raise intensity"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period
        self.offender = offender
        self.intensity = intensity


class InvalidPressurePolicy(OtpyError, ValueError):
    """A pressure policy field is invalid; raised when the policy is built.

    Attributes:
        field: the field, like ``"degraded.exit"``.
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"pressure policy: {field} {problem}")
        self.field = field
        self.problem = problem


class PressureError(OtpyError):
    """A bounded queue refused a message; the message was not queued.

    Attributes:
        queue: the queue's name.
        priority: the message's priority (an ``otpy.pressure.Priority``).
        level: the queue's pressure level then (an ``otpy.pressure.Level``).
        depth: messages queued then.
        capacity: the queue's capacity.
    """

    def __init__(
        self, text: str, queue: str, priority: object, level: object, depth: int, capacity: int
    ) -> None:
        super().__init__(text)
        self.queue = queue
        self.priority = priority
        self.level = level
        self.depth = depth
        self.capacity = capacity


class LoadShed(PressureError):
    """The queue is at level ``shed`` and sheds this priority (``reason="load_shed"``)."""

    reason: ClassVar[str] = "load_shed"

    def __init__(
        self, queue: str, priority: object, level: object, depth: int, capacity: int
    ) -> None:
        super().__init__(
            f"queue {queue!r} shed a {_label(priority)} priority message at level "
            f"{_label(level)} ({depth}/{capacity} queued); retry it later, send it at a "
            "priority the policy does not shed, or add consumers",
            queue,
            priority,
            level,
            depth,
            capacity,
        )


class QueueFull(PressureError):
    """The queue is at capacity: every priority is refused (``reason="queue_full"``)."""

    reason: ClassVar[str] = "queue_full"

    def __init__(
        self, queue: str, priority: object, level: object, depth: int, capacity: int
    ) -> None:
        super().__init__(
            f"queue {queue!r} is full ({depth}/{capacity} queued) and refused a "
            f"{_label(priority)} priority message; slow the producer, add consumers, "
            "or raise capacity",
            queue,
            priority,
            level,
            depth,
            capacity,
        )


class QueueClosed(PressureError):
    """The partitioned queue is closed (draining or drained): nothing more is accepted.

    ``reason = "closed"``; the other attributes are those of :class:`PressureError`
    for the partition the item would have gone to.
    """

    reason: ClassVar[str] = "closed"

    def __init__(
        self, queue: str, priority: object, level: object, depth: int, capacity: int
    ) -> None:
        super().__init__(
            f"queue {queue!r} is closed and refused a {_label(priority)} priority message; "
            "it is shutting down, so dead-letter the message or send it elsewhere",
            queue,
            priority,
            level,
            depth,
            capacity,
        )


class DeadLetterError(OtpyError):
    """A dead-letter operation was refused or failed."""


class InvalidDeadLetter(DeadLetterError, ValueError, TypeError):
    """A dead-letter record field is invalid; raised when the record is built.

    Also a :class:`ValueError` and a :class:`TypeError`, so generic handlers of
    either catch it: a value out of range and a value of the wrong type are both
    refused with this error. Nothing is stored and no state changes.

    Attributes:
        field: the field, like ``"created_at"`` or ``"replay.attempts"``.
        problem: what is wrong with it and what is allowed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"dead letter: {field} {problem}")
        self.field = field
        self.problem = problem


class DeadLetterNotFound(DeadLetterError, LookupError):
    """No record has this id (it was never captured, or was purged or evicted)."""

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"dead letter {record_id!r} not found: it was never captured, or was purged "
            "or evicted by retention; 'otpy dlq list' shows what the store holds"
        )
        self.record_id = record_id


class ReplayRejected(DeadLetterError):
    """A replay was refused by the store's guard; nothing was re-sent.

    Attributes:
        record_id: the record.
        outcome: ``"rejected_archived"``, ``"in_progress"``, ``"in_doubt"`` or
            ``"already_replayed"``.
    """

    _HINTS: ClassVar[dict[str, str]] = {
        "rejected_archived": "it is archived, and archived records are never replayed",
        "in_progress": "a replay of it (or of its idempotency key) is running under a live lease; "
        "wait for it, or for the lease to expire if its worker died",
        "in_doubt": "an earlier replay started its side effect and never committed, so it may "
        "have happened; check the destination, then 'otpy dlq resolve' it or replay with --force "
        "(runbooks/replay.md)",
        "already_replayed": "it was already replayed successfully; use force to send it again",
    }

    def __init__(self, record_id: str, outcome: str) -> None:
        super().__init__(
            f"replay of dead letter {record_id!r} refused: {self._HINTS.get(outcome, outcome)}"
        )
        self.record_id = record_id
        self.outcome = outcome


class ReplayFailed(DeadLetterError):
    """The replay handler raised; the record is marked ``failed`` and can be replayed again."""

    def __init__(self, record_id: str, error: str) -> None:
        super().__init__(f"replay of dead letter {record_id!r} failed: {error}")
        self.record_id = record_id
        self.error = error


class NoReplayHandler(DeadLetterError):
    """Nothing can replay records from this source."""

    def __init__(self, source: str, known: object) -> None:
        super().__init__(
            f"no replay handler is registered for source {source!r} (registered: {known}); "
            f"pass handlers={{{source!r}: handler}} to the replay supervisor"
        )
        self.source = source


class ReplayOutcomeUnknown(DeadLetterError):
    """Raise it from a replay handler that cannot tell whether its side effect happened.

    A read timeout after the request was sent is the usual case. The record becomes
    ``in_doubt``, its idempotency key stays pending, and it is never re-sent
    automatically: an operator checks the destination (``runbooks/replay.md``).

    .. versionadded:: 0.1.0
    """


class ReplayUnavailable(DeadLetterError):
    """A replay request got no outcome: its worker exited, or did not answer in time.

    Raised by :meth:`ReplayResult.raise_for_outcome` when ``outcome`` is ``None``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, record_id: str, detail: str) -> None:
        super().__init__(f"replay of dead letter {record_id!r} has no outcome: {detail}")
        self.record_id = record_id
        self.detail = detail


class DeadLetterStoreError(DeadLetterError):
    """The dead-letter store cannot be used as it is; nothing committed is lost."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"dead-letter store {path}: {problem}")
        self.path = path
        self.problem = problem


class StoreLocked(DeadLetterStoreError):
    """Another connection held the write lock longer than the busy timeout."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        super().__init__(
            path,
            f"database is locked: another process held the write lock for more than "
            f"{busy_timeout:g}s; stop the other writer (one node per store file) or raise "
            "busy_timeout",
        )
        self.busy_timeout = busy_timeout


class StoreFull(DeadLetterStoreError):
    """The disk, or the store's size limit, is full; the write was rolled back."""

    def __init__(self, path: str) -> None:
        super().__init__(
            path,
            "the disk or the store's size limit is full and the write was rolled back; "
            "free space, or purge archived records with 'otpy dlq purge'",
        )


class NotAnOtpyStore(DeadLetterStoreError):
    """The file exists but is not an otpy dead-letter store."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            path,
            f"not an otpy dead-letter store ({detail}); check --db, or move the file away "
            "and let otpy create a new one",
        )


class StoreVersionTooNew(DeadLetterStoreError):
    """The store's schema was written by a newer otpy."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            path,
            f"schema version {found} was written by a newer otpy; this one understands up "
            f"to {supported}: upgrade otpy to open it",
        )
        self.found = found
        self.supported = supported


class StoreSchemaDamaged(DeadLetterStoreError):
    """The file is marked as an otpy store but lacks a table or column otpy needs.

    Raised when the store is opened, before anything is written.

    Attributes:
        missing: what is missing, like ``"table ledger"`` or ``"column payloads.data"``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            path,
            f"its schema is damaged, missing {', '.join(missing)}; restore the file from a "
            "backup, or move it away and let otpy create a new one",
        )
        self.missing = missing


class CorruptRecord(DeadLetterStoreError):
    """One stored row cannot be decoded; the others are intact."""

    def __init__(self, path: str, record_id: str, detail: str) -> None:
        super().__init__(
            path,
            f"record {record_id!r} is corrupt ({detail}); the other records are intact: "
            f"'otpy dlq purge --id {record_id}' removes it",
        )
        self.record_id = record_id


class GatewayError(OtpyError):
    """The outbound gateway refused a request or could not use its outbox."""


class UnknownDestination(GatewayError, LookupError):
    """The gateway has no destination of this name.

    Attributes:
        destination: the name asked for.
        known: the names the gateway has.
    """

    def __init__(self, destination: str, known: Iterable[str]) -> None:
        self.destination = destination
        self.known = tuple(sorted(known))
        shown = ", ".join(repr(n) for n in self.known) or "none"
        super().__init__(f"no destination named {destination!r} (the gateway has: {shown})")


class BulkheadFull(GatewayError):
    """A ``otpy.gateway.Bulkhead`` had no free slot within its ``max_wait``; nothing was sent.

    Attributes:
        name: the bulkhead's name (its destination's), or ``None``.
        max_concurrent: how many it admits at once.
        max_wait: how long the refused caller waited, in seconds.
    """

    def __init__(self, name: str | None, max_concurrent: int, max_wait: float) -> None:
        where = f"bulkhead {name!r}" if name is not None else "bulkhead"
        waited = f"within {max_wait:g}s" if max_wait else "at once (max_wait=0)"
        super().__init__(
            f"{where} is full: {max_concurrent} already in flight, no slot came free {waited}"
        )
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait


class OutboxError(GatewayError):
    """An outbox store failed, or refused its file; the message says what to do.

    .. versionadded:: 0.1.0
    """


class OutboxMessageNotFound(OutboxError, LookupError):
    """No message with this id is in the outbox (delivered, removed, or never enqueued).

    Attributes:
        message_id: the id asked for.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message_id: str) -> None:
        super().__init__(f"no outbox message with id {message_id!r}")
        self.message_id = message_id


class IngestError(OtpyError):
    """The ingest side refused a message or could not use its journal.

    .. versionadded:: 0.1.0
    """


class JournalError(IngestError):
    """An ingest journal store failed, or refused its file; the message says what to do.

    .. versionadded:: 0.1.0
    """


class JournalFull(JournalError):
    """Accepting would take the journal's pending entries past its disk budget; nothing was stored.

    The budget counts the body and header bytes of the entries not yet handed over
    to the gateway; it frees as they are. The node answers such a request ``429``
    with ``Retry-After``.

    Attributes:
        max_bytes: the budget, in bytes.
        used: the bytes pending when the accept was refused.
        requested: the bytes the refused accept would have added.

    .. versionadded:: 0.1.0
    """

    def __init__(self, max_bytes: int, used: int, requested: int) -> None:
        super().__init__(
            f"the ingest journal is full: {used} of its {max_bytes} bytes are pending and this "
            f"accept needs {requested} more; nothing was stored and the node answers 429 until "
            "the hand-over to the gateway frees room: check that the gateway keeps up, or raise "
            "max_bytes"
        )
        self.max_bytes = max_bytes
        self.used = used
        self.requested = requested


class SignatureError(OtpyError, ValueError):
    """A request's Standard Webhooks headers did not pass ``otpy.gateway.verify``.

    The message says which check failed; it never shows a secret or a signature.

    Attributes:
        reason: which check failed, one of ``"missing_header"`` (a header is absent),
            ``"bad_header"`` (a header is there but malformed, or given twice with
            different values), ``"too_old"`` / ``"too_new"`` (the timestamp is further
            from now than the tolerance), ``"no_signature"`` (no ``v1`` entry at all)
            and ``"no_match"`` (no ``v1`` entry matches any configured secret).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"webhook signature rejected: {detail}")
        self.reason = reason


class ConfigError(OtpyError, ValueError):
    """The node's configuration is invalid; raised before anything starts.

    ``otpy.node.load_config`` raises it for the first bad key: a value of the wrong
    type or out of range, an unknown key, a secret written in the file, a missing
    secret, a reference to something that does not exist.

    Attributes:
        key: the key's full path in the TOML file, like
            ``"gateway.destinations.orders.retry.schedule[2]"``.
        value: the value given, ``"[redacted]"`` for a secret (``None`` for a
            missing key).
        allowed: what the key allows, in the words of the check that refused it
            (naming the value given, unless it is a secret).
        source: where the value came from: the file's path or the environment
            variable that overrode it (``None`` for a mapping given in code).

    .. versionadded:: 0.2.0
    """

    def __init__(self, key: str, value: object, allowed: str, *, source: str | None = None) -> None:
        text = f"{key} {allowed}"
        super().__init__(text if source is None else f"{source}: {text}")
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source


def single_error(group: BaseExceptionGroup[BaseException]) -> OtpyError | None:
    """Return the one otpy error *group* holds (nested groups included), or ``None``.

    A task group wraps what its tasks raise; where that group reaches a caller of
    the public API, a lone typed error is raised as it is, so ``except
    otpy.DeadLetterError`` works. A group holding anything else (several errors,
    a cancellation) is re-raised untouched.
    """
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        if len(leaf.exceptions) != 1:
            return None
        leaf = leaf.exceptions[0]
    return leaf if isinstance(leaf, OtpyError) else None


def _label(value: object) -> str:
    name = getattr(value, "name", None)
    return name.lower() if isinstance(name, str) else str(value)


def _describe(reason: object) -> str:
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {text}" if text else type(reason).__name__
    if isinstance(reason, str):
        return reason
    return repr(reason)


# Tracebacks, reports and dead-letter reason classes name the public path
# (otpy.MailboxFull), not this private module.
for _name in __all__:
    globals()[_name].__module__ = "otpy"
del _name
