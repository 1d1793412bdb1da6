"""The dead-letter record: what failed, why, where it was going, and its replay state (DL-1).

A :class:`DeadLetter` is frozen and validated when built, so a bad record fails at
the capture point, not when an operator lists it at 3 a.m. Build one from a failure
with :meth:`DeadLetter.capture`; it stamps a time-sortable id, the exception's class
and (redacted) message, and the W3C trace context of the current span.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import reprlib
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, TypeVar

import attrs

from .._exceptions import InvalidDeadLetter
from .._redact import REDACTED, redact

__all__ = [
    "ATTRIBUTE_NAME",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_SIZE",
    "MAX_COUNT",
    "MAX_TIME",
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
    "redact_attributes",
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


# -- validation -----------------------------------------------------------------------
# Every field is checked when a record is built, so whatever the constructor accepts
# both stores can store and give back unchanged.

MAX_TIME: Final = 253_402_300_800.0
"""Times (``created_at``, ``now``...) must be at least 0 and below this: 10000-01-01 UTC.

``datetime``, and so every listing, ends there; ids have room up to the year 10889.
"""

MAX_COUNT: Final = 2**63 - 1
"""The largest count a record holds (attempts, sizes, queue figures): SQLite's INTEGER."""

_E = TypeVar("_E", Source, Category, Status, ReplayStatus, ReplayOutcome)
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 40


def _show(value: object) -> str:
    """A short, safe rendering of *value* for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return _SHOW.repr(value)  # reprlib survives a failing __repr__


def _check_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidDeadLetter(field, f"must be a string, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidDeadLetter(
                field,
                f"must be text that encodes as UTF-8, but it holds the lone surrogate "
                f"{value[exc.start]!r} at index {exc.start}",
            ) from None
    return value


def _check_count(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDeadLetter(field, f"must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_COUNT:
        raise InvalidDeadLetter(field, f"must be >= 0 and < 2**63, got {_show(value)}")


def check_time(value: object, field: str) -> None:
    """Refuse *value* unless it is a wall-clock time a record can hold (see :data:`MAX_TIME`).

    Raises:
        InvalidDeadLetter: not a number, not finite, or out of range; names *field*.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidDeadLetter(
            field, f"must be a number of seconds since the epoch, got {type(value).__name__}"
        )
    if not 0 <= value < MAX_TIME:  # `not` also refuses NaN
        raise InvalidDeadLetter(
            field,
            f"must be a finite time >= 0 and < {MAX_TIME:.0f} seconds since the epoch "
            f"(the years 1970 to 9999), got {_show(value)}",
        )


def _member(kind: type[_E], value: object, field: str) -> _E:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in kind)
    raise InvalidDeadLetter(field, f"must be one of {allowed}, got {_show(value)}")


def pairs_of(value: object, field: str) -> tuple[tuple[str, str], ...]:
    """Return *value* (a mapping, or an iterable of ``(name, value)`` pairs) as string pairs.

    Raises:
        InvalidDeadLetter: it is not such a mapping or iterable, or a name or value is
            not a string that encodes as UTF-8; names *field*.
    """
    if isinstance(value, Mapping):
        items: Iterable[object] = value.items()
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes, bytearray)):
        items = value
    else:
        raise InvalidDeadLetter(
            field,
            f"must be a mapping or an iterable of (name, value) string pairs, "
            f"got {type(value).__name__}",
        )
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidDeadLetter(
                f"{field}[{index}]", f"must be a (name, value) pair, got {_show(item)}"
            )
        name, text = item
        pairs.append(
            (
                _check_text(name, f"{field}[{index}] name"),
                _check_text(text, f"{field}[{index}] value"),
            )
        )
    return tuple(pairs)


# -- attributes -----------------------------------------------------------------------

ATTRIBUTE_NAME: Final = re.compile(r"[a-z][a-z0-9_]*+(?:\.[a-z0-9_][a-z0-9_-]*+)*+")
"""What an attribute's name must match (in full): OpenTelemetry's attribute naming.

Dot-separated lowercase segments of letters, digits and ``_``; after the first dot,
a segment may also hold ``-``, as OpenTelemetry's header attributes do
(``http.request.header.content-type``). Examples: ``otpy.ordering_key``,
``http.request.method``, ``url.full``, ``http.response.status_code``.
"""

MAX_ATTRIBUTES: Final = 100
"""The most attributes a record holds; Python's ``http.client`` allows as many headers."""

MAX_ATTRIBUTES_SIZE: Final = 16_384
"""The most bytes (UTF-8) of attribute names and values a record holds, in all.

The default limit of an HTTP/1.1 request head in the server otpy ingests with
(Hypercorn's ``h11_max_incomplete_size``): attributes carry context, not payloads.
"""

_NAME_RULE = (
    "must be a dotted lowercase name (letters, digits and '_'; '-' after the first dot), "
    "such as 'otpy.ordering_key', 'http.request.method' or 'url.full'"
)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def attributes_of(value: object) -> tuple[tuple[str, str], ...]:
    """Return *value* (a mapping, or ``(name, value)`` pairs) as checked attribute pairs.

    Raises:
        InvalidDeadLetter: not string pairs, a name that is empty, not a dotted
            lowercase name (:data:`ATTRIBUTE_NAME`) or given twice, more than
            :data:`MAX_ATTRIBUTES` of them, or more than :data:`MAX_ATTRIBUTES_SIZE`
            bytes of names and values; names the field (``attributes[2] name``).
    """
    pairs = pairs_of(value, "attributes")
    if len(pairs) > MAX_ATTRIBUTES:
        raise InvalidDeadLetter(
            "attributes",
            f"has {len(pairs)} entries, more than MAX_ATTRIBUTES ({MAX_ATTRIBUTES}) allows",
        )
    first: dict[str, int] = {}
    size = 0
    for index, (name, text) in enumerate(pairs):
        if not name:
            raise InvalidDeadLetter(
                f"attributes[{index}] name", f"must not be empty; it {_NAME_RULE}"
            )
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidDeadLetter(f"attributes[{index}] name", f"{_show(name)} {_NAME_RULE}")
        seen = first.setdefault(name, index)
        if seen != index:
            raise InvalidDeadLetter(
                f"attributes[{index}] name",
                f"{name!r} is given twice (also at attributes[{seen}]); give each name once",
            )
        size += _utf8_size(name) + _utf8_size(text)
    if size > MAX_ATTRIBUTES_SIZE:
        raise InvalidDeadLetter(
            "attributes",
            f"hold {size:,} bytes of names and values (UTF-8), more than "
            f"MAX_ATTRIBUTES_SIZE ({MAX_ATTRIBUTES_SIZE:,}) allows; keep context, not payloads",
        )
    return pairs


# -- ids ----------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # used with fullmatch
_id_lock = threading.Lock()
_last_id: list[int] = [0, 0]  # [milliseconds, 80-bit random part]


def new_id(now: float | None = None) -> str:
    """Return a new record id: 26 characters, sorting by creation time.

    The layout is ULID's (48 bits of milliseconds, then 80 random bits, Crockford
    base 32). Within one millisecond, or if the wall clock steps back, ids from this
    process keep increasing, so "newest first" and paging cursors stay exact.

    Args:
        now: the wall-clock time to stamp (seconds since the epoch); ``time.time()``
            by default.

    Raises:
        InvalidDeadLetter: *now* is not a finite time >= 0 and < :data:`MAX_TIME`; the
            generator is left as it was, so later ids are not pushed into the future.
    """
    if now is None:
        now = time.time()
    else:
        check_time(now, "now")
    millis = int(now * 1000)
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


def stable_id(seed: str, now: float) -> str:
    """Return the id of a record captured at *now* for *seed*: the same for the same pair.

    An id as :func:`new_id` makes them (48 bits of milliseconds, then 80 bits, here
    the first 80 bits of SHA-256 of *seed*), so it sorts by time with the others. A
    capture point that may capture one failure twice (once before a crash, once
    after) uses it with a seed naming the failure (an outbox message's id) and the
    time it first recorded, and the store keeps the record once.

    Raises:
        InvalidDeadLetter: *seed* is not a non-empty string, or *now* is not a
            finite time >= 0 and < :data:`MAX_TIME`.
    """
    if not isinstance(seed, str) or not seed:
        raise InvalidDeadLetter("seed", f"must be a non-empty string, got {_show(seed)}")
    check_time(now, "now")
    millis = int(now * 1000)
    random_part = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
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
        "webhook-signature",
    }
)

# A header whose name holds one of these carries a credential too (X-Amz-Security-Token,
# X-Goog-Api-Key, X-Client-Secret...), whatever the service calls it.
_SENSITIVE_PARTS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "signature",
    "password",
    "credential",
    "api-key",
    "apikey",
    "api_key",
)


def _sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or any(part in lowered for part in _SENSITIVE_PARTS)


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Return *headers* with the values of credential-bearing headers redacted.

    A header is credential-bearing when its name (in any case) is in
    ``SENSITIVE_HEADERS`` (``Authorization``, cookies, API keys, webhook signatures...)
    or holds ``token``, ``secret``, ``signature``, ``password``, ``credential`` or
    ``api-key``. A replay handler adds credentials when it re-sends; the store never
    keeps them.
    """
    return tuple((name, REDACTED if _sensitive_header(name) else value) for name, value in headers)


_HEADER_ATTRIBUTES = ("http.request.header.", "http.response.header.")


def redact_attributes(attributes: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Return *attributes* with credentials out of their values.

    Every value goes through :func:`redact` (tokens, ``password=``, a URL's
    user-info and its secret-named query parameters); the value of a header
    attribute (``http.request.header.<name>``, ``http.response.header.<name>``)
    whose header carries a credential, as :func:`redact_headers` decides, is
    replaced whole by ``[redacted]``.

    .. versionadded:: 0.1.0
    """
    redacted: list[tuple[str, str]] = []
    for name, value in attributes:
        header = next((name[len(p) :] for p in _HEADER_ATTRIBUTES if name.startswith(p)), None)
        if header is not None and _sensitive_header(header):
            redacted.append((name, REDACTED))
        else:
            redacted.append((name, redact(value)))
    return tuple(redacted)


# -- the record -----------------------------------------------------------------------


def _field(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{getattr(instance, '_prefix', '')}{attribute.name}"


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_text(value, _field(instance, attribute))


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_text(value, _field(instance, attribute))


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    field = _field(instance, attribute)
    if not _check_text(value, field):
        raise InvalidDeadLetter(field, "must not be empty")


def _count(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_count(value, _field(instance, attribute))


def _optional_count(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_count(value, _field(instance, attribute))


def _time(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_time(value, _field(instance, attribute))


def _optional_time(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_time(value, _field(instance, attribute))


def _check_id(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise InvalidDeadLetter(
            "id",
            f"{_show(value)} is not a 26-character otpy id; make ids with otpy.deadletter.new_id()",
        )


def _payload(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bytes):
        raise InvalidDeadLetter("payload", f"must be bytes or None, got {type(value).__name__}")


def _of_type(kind: type[Any]) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise InvalidDeadLetter(
                attribute.name, f"must be a {kind.__name__}, got {type(value).__name__}"
            )

    return check


def _source(value: object) -> Source:
    return _member(Source, value, "source")


def _category(value: object) -> Category:
    return _member(Category, value, "category")


def _status(value: object) -> Status:
    return _member(Status, value, "status")


def _replay_status(value: object) -> ReplayStatus:
    return _member(ReplayStatus, value, "replay.status")


def _last_outcome(value: object) -> ReplayOutcome | None:
    return None if value is None else _member(ReplayOutcome, value, "replay.last_outcome")


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    return pairs_of(value, "headers")


def _trace_context(value: object) -> tuple[tuple[str, str], ...]:
    return pairs_of(value, "trace_context")


def _attributes(value: object) -> tuple[tuple[str, str], ...]:
    return attributes_of(value)


@attrs.frozen(kw_only=True)
class Diagnostics:
    """The pipeline's state when the message failed.

    Attributes:
        pressure_level: the pressure level of the queue involved (``normal``, ``warn``...).
        queue_depth: messages queued there.
        queue_capacity: that queue's capacity.

    Raises:
        InvalidDeadLetter: a field is invalid (see :class:`DeadLetter`).
    """

    _prefix: ClassVar[str] = "diagnostics."

    pressure_level: str | None = attrs.field(default=None, validator=_optional_text)
    queue_depth: int | None = attrs.field(default=None, validator=_optional_count)
    queue_capacity: int | None = attrs.field(default=None, validator=_optional_count)


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
            dead worker's replay is reclaimed (DL-9).

    Raises:
        InvalidDeadLetter: a field is invalid (see :class:`DeadLetter`).
    """

    _prefix: ClassVar[str] = "replay."

    status: ReplayStatus = attrs.field(default=ReplayStatus.NEVER, converter=_replay_status)
    attempts: int = attrs.field(default=0, validator=_count)
    last_attempt_at: float | None = attrs.field(default=None, validator=_optional_time)
    last_outcome: ReplayOutcome | None = attrs.field(default=None, converter=_last_outcome)
    last_error: str | None = attrs.field(default=None, validator=_optional_text)
    lease_expires_at: float | None = attrs.field(default=None, validator=_optional_time)


@attrs.frozen(kw_only=True)
class DeadLetter:
    """One message that could not be processed or delivered, with what it takes to replay it.

    Every field is checked when the record is built, so whatever is built can be
    stored and read back unchanged by either store: strings must encode as UTF-8
    (no lone surrogates), counts are integers (not bools) from 0 to
    :data:`MAX_COUNT`, times are finite numbers from 0 to :data:`MAX_TIME`, enums
    take their members or their values, ``headers``/``trace_context`` are
    string pairs, and ``attributes`` are string pairs with distinct dotted names
    (:data:`ATTRIBUTE_NAME`), at most :data:`MAX_ATTRIBUTES` of them and
    :data:`MAX_ATTRIBUTES_SIZE` bytes in all.

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
        attributes: what the capture point knew of the message's context, as
            ``(name, value)`` string pairs with OpenTelemetry-style names: the
            gateway's ordering key (``otpy.ordering_key``), the request it sent
            (``http.request.method``, ``url.full``, ``http.request.header.<name>``),
            the last status (``http.response.status_code``). Credentials redacted
            when captured (:func:`redact_attributes`).

            .. versionadded:: 0.1.0
        status: active or archived.
        replay: the replay state.
        created_at: wall-clock capture time (seconds since the epoch).
        updated_at: last change.

    Raises:
        InvalidDeadLetter: a field is invalid; the message names it and what is allowed.
    """

    id: str = attrs.field(validator=_check_id)
    key: str = attrs.field(validator=_non_empty)
    source: Source = attrs.field(converter=_source)
    reason_class: str = attrs.field(validator=_non_empty)
    reason: str = attrs.field(default="", validator=_text)
    category: Category = attrs.field(default=Category.TERMINAL, converter=_category)
    correlation_id: str | None = attrs.field(default=None, validator=_optional_text)
    idempotency_key: str | None = attrs.field(default=None, validator=_optional_text)
    attempt: int = attrs.field(default=1, validator=_count)
    max_attempts: int = attrs.field(default=1, validator=_count)
    payload: bytes | None = attrs.field(default=None, validator=_payload)
    payload_size: int = attrs.field(validator=_count)
    content_type: str = attrs.field(default="application/octet-stream", validator=_text)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)
    diagnostics: Diagnostics = attrs.field(default=Diagnostics(), validator=_of_type(Diagnostics))
    trace_context: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_trace_context)
    attributes: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_attributes)
    status: Status = attrs.field(default=Status.ACTIVE, converter=_status)
    replay: ReplayState = attrs.field(default=ReplayState(), validator=_of_type(ReplayState))
    created_at: float = attrs.field(validator=_time)
    updated_at: float = attrs.field(validator=_time)

    @payload_size.default
    def _size_of_payload(self) -> int:
        return len(self.payload) if isinstance(self.payload, bytes) else 0

    def __attrs_post_init__(self) -> None:
        if self.payload is not None and len(self.payload) != self.payload_size:
            raise InvalidDeadLetter(
                "payload_size",
                f"is {self.payload_size} but the payload has {len(self.payload)} bytes",
            )
        if self.updated_at < self.created_at:
            raise InvalidDeadLetter(
                "updated_at",
                f"is before created_at ({self.updated_at!r} < {self.created_at!r})",
            )

    @property
    def replay_key(self) -> str:
        """The idempotency key replays are deduplicated by (DL-8).

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
        attributes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        now: float | None = None,
        id: str | None = None,  # the record's field is called id
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
            attributes: the message's context (see :attr:`DeadLetter.attributes`);
                redacted with :func:`redact_attributes`.
            now: wall-clock time to stamp; ``time.time()`` by default.
            id: the record's id; a new one (:func:`new_id`) by default. A capture
                point that may capture the same failure again after a crash gives a
                :func:`stable_id`, so the store keeps it once.

        Raises:
            InvalidDeadLetter: an argument is invalid (an empty key, a negative
                attempt, a ``now`` out of range, text that does not encode as
                UTF-8...); the message names it. An invalid ``now`` leaves the id
                generator untouched.
        """
        record_id = new_id(now) if id is None else id  # checks *now* before the generator moves
        if now is None:
            now = time.time()
        if reason_class is None:
            reason_class = _qualified_name(type(error)) if error is not None else "Unknown"
        if reason is None:
            reason = str(error) if error is not None else ""
        if isinstance(payload, str):
            body = _check_text(payload, "payload").encode()
            content_type = content_type or "text/plain; charset=utf-8"
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            body = bytes(payload)
        else:
            raise InvalidDeadLetter(
                "payload", f"must be bytes or str, got {type(payload).__name__}"
            )
        return cls(
            id=record_id,
            key=key,
            source=source,
            reason_class=reason_class,
            reason=redact(_check_text(reason, "reason")),
            category=category,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            attempt=attempt,
            max_attempts=max_attempts,
            payload=body,
            content_type=content_type or "application/octet-stream",
            headers=redact_headers(pairs_of(headers, "headers")),
            diagnostics=diagnostics or Diagnostics(),
            trace_context=current_trace_context() if trace_context is None else trace_context,
            attributes=redact_attributes(pairs_of(attributes, "attributes")),
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
