"""The dead-letter record: what failed, why, where it was going, and its replay state (D1).

A :class:`DeadLetter` is frozen and validated when built, so a bad record fails at
the capture point, not when an operator lists it at 3 a.m. Build one from a failure
with :meth:`DeadLetter.capture`; it stamps a time-sortable id, the exception's class
and (redacted) message, and the W3C trace context of the current span.
"""

from __future__ import annotations

import enum
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._redact import REDACTED, redact

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "Category",
    "DeadLetter",
    "Diagnostics",
    "ReplayOutcome",
    "ReplayState",
    "ReplayStatus",
    "Source",
    "Status",
    "new_id",
    "redact",
    "redact_headers",
]


class Source(enum.StrEnum):
    """Where the message failed."""

    INGEST = "ingest"
    OUTBOUND = "outbound"
    ACTOR_CRASH = "actor_crash"
    """An actor crashed while handling it (a poison message)."""
    UNDELIVERABLE = "undeliverable"
    """Its actor had exited, or its mailbox dropped it."""
    LOAD_SHED = "load_shed"
    QUEUE_FULL = "queue_full"


class Category(enum.StrEnum):
    """How the failure is classified; it tells an operator whether replay can help."""

    RETRYABLE = "retryable"
    """Transient (a timeout, a 503): a replay later will probably succeed."""
    TERMINAL = "terminal"
    """The request itself is wrong (a 400, a bad payload): fix it before replaying."""
    FATAL = "fatal"
    """A bug or a misconfiguration on our side: fix the code or the settings first."""


class Status(enum.StrEnum):
    """Whether the record is still waiting for a decision."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    """Kept for the record; never replayed."""


class ReplayStatus(enum.StrEnum):
    """Where the record's replay stands."""

    NEVER = "never"
    RUNNING = "running"
    """A worker holds it under a lease; replayable again once the lease expires."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    """The side effect started and never committed: an operator decides (runbooks/replay.md)."""


class ReplayOutcome(enum.StrEnum):
    """What one replay request came to (the ``otpy.replay.outcome`` span attribute)."""

    REPLAYED = "replayed"
    ALREADY_REPLAYED = "already_replayed"
    REJECTED_ARCHIVED = "rejected_archived"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"


# -- ids ----------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_id_lock = threading.Lock()
_last_id: list[int] = [0, 0]  # [milliseconds, 80-bit random part]


def new_id(now: float | None = None) -> str:
    """Return a new record id: 26 characters, sorting by creation time.

    The layout is ULID's (48 bits of milliseconds, then 80 random bits, Crockford
    base 32). Within one millisecond, or if the wall clock steps back, ids from this
    process keep increasing, so "newest first" and paging cursors stay exact.
    """
    millis = int((time.time() if now is None else now) * 1000)
    with _id_lock:
        last_millis, last_random = _last_id
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
            if random_part >> 80:  # 2**80 ids in one millisecond: move to the next one
                millis, random_part = millis + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            random_part = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
        _last_id[:] = [millis, random_part]
    value = (millis << 80) | random_part
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


# -- redaction ------------------------------------------------------------------------

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "stripe-signature",
    }
)


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Return *headers* with the values of credential-bearing headers redacted.

    A replay handler adds credentials when it re-sends; the store never keeps them.
    """
    return tuple(
        (name, REDACTED if name.lower() in SENSITIVE_HEADERS else value) for name, value in headers
    )


# -- the record -----------------------------------------------------------------------


def _pairs(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    pairs = tuple((str(k), str(v)) for k, v in items)
    return pairs


def _check_id(_instance: object, _attribute: object, value: str) -> None:
    if not _ID_PATTERN.match(value):
        raise ValueError(
            f"dead-letter id {value!r} is not a 26-character otpy id; "
            "make ids with otpy.deadletter.new_id()"
        )


def _non_empty(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"dead letter: {attribute.name} must not be empty")


def _optional_non_negative(
    _instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 0:
        raise ValueError(f"dead letter: {attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class Diagnostics:
    """The pipeline's state when the message failed.

    Attributes:
        pressure_level: the pressure level of the queue involved (``normal``, ``warn``...).
        queue_depth: messages queued there.
        queue_capacity: that queue's capacity.
    """

    pressure_level: str | None = None
    queue_depth: int | None = attrs.field(default=None, validator=_optional_non_negative)
    queue_capacity: int | None = attrs.field(default=None, validator=_optional_non_negative)


@attrs.frozen(kw_only=True)
class ReplayState:
    """A record's replay bookkeeping.

    Attributes:
        status: never / running / succeeded / failed / in doubt.
        attempts: replays started so far.
        last_attempt_at: wall-clock time of the last start (seconds since the epoch).
        last_outcome: how the last request ended.
        last_error: the last failure's class and (redacted) message.
        lease_expires_at: while running, when the worker's lease runs out; after that a
            dead worker's replay is reclaimed (D9).
    """

    status: ReplayStatus = ReplayStatus.NEVER
    attempts: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    last_attempt_at: float | None = None
    last_outcome: ReplayOutcome | None = None
    last_error: str | None = None
    lease_expires_at: float | None = None


@attrs.frozen(kw_only=True)
class DeadLetter:
    """One message that could not be processed or delivered, with what it takes to replay it.

    Attributes:
        id: time-sortable id (:func:`new_id`).
        key: the dead-letter key: the destination or routing key. Replays are
            partitioned by it, so replays for one key run in order.
        source: where it failed.
        reason_class: the exception's qualified class name (``httpx.ConnectTimeout``).
        reason: the exception's message, redacted.
        category: retryable / terminal / fatal.
        correlation_id: ties the record to the request that caused it.
        idempotency_key: the key the side effect is deduplicated by; replays use
            :attr:`replay_key`.
        attempt: attempts made before giving up.
        max_attempts: attempts allowed.
        payload: the message body; ``None`` in listings when it is larger than the
            store's inline limit (``payload_size`` still says how big; ``get`` loads it).
        payload_size: the body's length in bytes.
        content_type: the body's media type.
        headers: the message's headers, credentials redacted.
        diagnostics: pressure and queue figures at capture time.
        trace_context: the W3C trace context (``traceparent``, ``tracestate``) of the
            failed attempt; replay spans link to it.
        status: active or archived.
        replay: the replay state.
        created_at: wall-clock capture time (seconds since the epoch).
        updated_at: last change.
    """

    id: str = attrs.field(validator=_check_id)
    key: str = attrs.field(validator=_non_empty)
    source: Source = attrs.field(converter=Source)
    reason_class: str = attrs.field(validator=_non_empty)
    reason: str = ""
    category: Category = attrs.field(default=Category.TERMINAL, converter=Category)
    correlation_id: str | None = None
    idempotency_key: str | None = None
    attempt: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    max_attempts: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    payload: bytes | None = None
    payload_size: int = attrs.field(validator=attrs.validators.ge(0))
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    diagnostics: Diagnostics = Diagnostics()
    trace_context: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    status: Status = attrs.field(default=Status.ACTIVE, converter=Status)
    replay: ReplayState = ReplayState()
    created_at: float
    updated_at: float

    @payload_size.default
    def _size_of_payload(self) -> int:
        return len(self.payload) if self.payload is not None else 0

    def __attrs_post_init__(self) -> None:
        if self.payload is not None and len(self.payload) != self.payload_size:
            raise ValueError(
                f"dead letter {self.id}: payload_size is {self.payload_size} "
                f"but the payload has {len(self.payload)} bytes"
            )
        if self.updated_at < self.created_at:
            raise ValueError(f"dead letter {self.id}: updated_at is before created_at")

    @property
    def replay_key(self) -> str:
        """The idempotency key replays are deduplicated by (D8).

        The record's own ``idempotency_key`` when it has one, so a replay and the
        original operation share a key; otherwise ``dead_letter:<id>``.
        """
        return self.idempotency_key or f"dead_letter:{self.id}"

    @property
    def payload_loaded(self) -> bool:
        """Whether :attr:`payload` holds the body (``False`` for large ones in listings)."""
        return self.payload is not None or self.payload_size == 0

    @classmethod
    def capture(
        cls,
        *,
        key: str,
        source: Source | str,
        error: BaseException | None = None,
        reason_class: str | None = None,
        reason: str | None = None,
        payload: bytes | str = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        category: Category | str = Category.TERMINAL,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        attempt: int = 1,
        max_attempts: int = 1,
        diagnostics: Diagnostics | None = None,
        trace_context: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> DeadLetter:
        """Build a new active record for a failure happening now.

        Args:
            key: the dead-letter key (destination or routing key).
            source: where it failed.
            error: the exception; gives ``reason_class`` and ``reason`` unless they
                are passed.
            reason_class: the failure's class name, when there is no exception.
            reason: the failure's message; redacted before it is kept.
            payload: the body; ``str`` is encoded as UTF-8.
            content_type: defaults to ``text/plain; charset=utf-8`` for ``str``,
                ``application/octet-stream`` for ``bytes``.
            headers: redacted with :func:`redact_headers`.
            category: retryable / terminal / fatal.
            correlation_id: the request's correlation id.
            idempotency_key: the side effect's idempotency key.
            attempt: attempts made.
            max_attempts: attempts allowed.
            diagnostics: pressure and queue figures.
            trace_context: W3C headers of the failed attempt; by default taken from
                the current OpenTelemetry context (empty without an active span).
            now: wall-clock time to stamp; ``time.time()`` by default.

        Raises:
            ValueError: a field is invalid (an empty key, a negative attempt...).
        """
        if now is None:
            now = time.time()
        if reason_class is None:
            reason_class = _qualified_name(type(error)) if error is not None else "Unknown"
        if reason is None:
            reason = str(error) if error is not None else ""
        if isinstance(payload, str):
            body = payload.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            body = bytes(payload)
        return cls(
            id=new_id(now),
            key=key,
            source=Source(source),
            reason_class=reason_class,
            reason=redact(reason),
            category=Category(category),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            attempt=attempt,
            max_attempts=max_attempts,
            payload=body,
            content_type=content_type or "application/octet-stream",
            headers=redact_headers(_pairs(headers)),
            diagnostics=diagnostics or Diagnostics(),
            trace_context=_pairs(trace_context)
            if trace_context is not None
            else current_trace_context(),
            created_at=now,
            updated_at=now,
        )


def _qualified_name(cls: type[Any]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def current_trace_context() -> tuple[tuple[str, str], ...]:
    """Return the W3C ``traceparent``/``tracestate`` of the current span, if any."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return tuple(sorted(carrier.items()))
