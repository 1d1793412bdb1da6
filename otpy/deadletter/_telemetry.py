"""Dead-letter writes, evictions and dropped captures as spans and metrics (T1, T4).

Like the supervisor's telemetry (``otpy.telemetry._events``) these use
opentelemetry-api only, cost little when no SDK is installed, and never raise:
telemetry failing must not change what the writer does.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Final

from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._redact import get_logger, redact
from ..telemetry._events import get_meter, get_tracer
from ._store import LEDGER_EVICTED

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.metrics import Counter
    from opentelemetry.trace import Span, SpanContext

    from ._record import DeadLetter

__all__ = [
    "ATTR_COUNT",
    "ATTR_DROP_REASON",
    "ATTR_RECORD_ID",
    "ATTR_RULE",
    "ATTR_SOURCE",
    "ATTR_STATUS",
    "ATTR_STORE",
    "MAX_LINKS",
    "METRIC_CAPTURED",
    "METRIC_DROPPED",
    "METRIC_EVICTIONS",
    "SPAN_WRITE",
    "record_dropped",
    "record_evictions",
    "span_context_from",
    "span_context_of",
    "store_kind",
    "write_span",
]

logger = get_logger("otpy.telemetry")

SPAN_WRITE: Final = "otpy.deadletter.write"
"""One committed batch of dead letters (INTERNAL); links to each record's failure span."""

ATTR_COUNT: Final = "otpy.deadletter.count"
"""Records in the batch."""
ATTR_STORE: Final = "otpy.deadletter.store"
"""The store kind: ``sqlite``, ``memory``, or the store's class name."""
ATTR_SOURCE: Final = "otpy.deadletter.source"
"""Where the record's message failed (``actor_crash``, ``undeliverable``...)."""
ATTR_STATUS: Final = "otpy.deadletter.status"
"""A record status (``active``, ``archived``)."""
ATTR_RULE: Final = "otpy.deadletter.rule"
"""The retention rule that evicted records (``max_age``, ``max_count``)."""
ATTR_RECORD_ID: Final = "otpy.deadletter.id"
"""A record id, on the link to that record's failure span."""
ATTR_DROP_REASON: Final = "otpy.deadletter.drop_reason"
"""Why a fire-and-forget capture was dropped (``mailbox_full``...)."""
_ATTR_ERROR_TYPE: Final = "error.type"

METRIC_CAPTURED: Final = "otpy.deadletter.captured"
"""Records committed to the store, by `ATTR_SOURCE`."""
METRIC_EVICTIONS: Final = "otpy.deadletter.evictions"
"""Records evicted by retention, by `ATTR_STATUS` and `ATTR_RULE`."""
METRIC_DROPPED: Final = "otpy.deadletter.capture_dropped"
"""Fire-and-forget captures dropped, by `ATTR_DROP_REASON`: ``mailbox_full``,
``stash_full``, ``noproc`` (they never reached the writer), ``writer_crashed`` (the
writer crashed while committing them; they may or may not have been stored),
``invalid``."""

MAX_LINKS: Final = 128
"""Links per write span (the SDK's default limit); the rest are counted, not linked."""

_propagator = TraceContextTextMapPropagator()


@functools.cache
def _captured_counter() -> Counter:
    return get_meter().create_counter(
        METRIC_CAPTURED, unit="{record}", description="Dead letters committed to the store."
    )


@functools.cache
def _evictions_counter() -> Counter:
    return get_meter().create_counter(
        METRIC_EVICTIONS,
        unit="{record}",
        description="Dead letters evicted by the retention policy.",
    )


@functools.cache
def _dropped_counter() -> Counter:
    return get_meter().create_counter(
        METRIC_DROPPED,
        unit="{record}",
        description="Fire-and-forget dead-letter captures dropped or lost in a writer crash.",
    )


def span_context_from(trace_context: tuple[tuple[str, str], ...]) -> SpanContext | None:
    """Return the span context in W3C *trace_context* pairs, if they hold a valid one."""
    if not trace_context:
        return None
    context = _propagator.extract(carrier=dict(trace_context))
    span_context = get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def span_context_of(record: DeadLetter) -> SpanContext | None:
    """Return the span context stored in *record*'s ``traceparent``, if it holds a valid one."""
    return span_context_from(record.trace_context)


@contextlib.contextmanager
def write_span(records: Sequence[DeadLetter], store: str) -> Iterator[None]:
    """Wrap one ``add_many`` commit of *records* in a `SPAN_WRITE` span.

    The span links to each record's stored trace context (up to `MAX_LINKS`). If the
    block raises, the span gets status Error and ``error.type`` and the exception goes
    on; if it returns, `METRIC_CAPTURED` counts the records by source.
    """
    span: Span | None = None
    try:
        span = get_tracer().start_span(SPAN_WRITE, kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({ATTR_COUNT: len(records), ATTR_STORE: store})
            linked = 0
            for record in records:
                if linked >= MAX_LINKS:
                    break
                span_context = span_context_of(record)
                if span_context is not None:
                    span.add_link(span_context, {ATTR_RECORD_ID: record.id})
                    linked += 1
    except Exception:
        logger.debug("could not start a dead-letter write span", exc_info=True)
    try:
        yield
    except Exception as exc:
        if span is not None:
            _end_failed(span, exc)
        raise
    except BaseException:  # cancelled: the writer was killed; not an error of the write
        if span is not None:
            _end(span)
        raise
    if span is not None:
        _end(span)
    try:
        counter = _captured_counter()
        by_source: dict[str, int] = {}
        for record in records:
            by_source[record.source.value] = by_source.get(record.source.value, 0) + 1
        for source, count in by_source.items():
            counter.add(count, {ATTR_SOURCE: source})
    except Exception:
        logger.debug("could not count captured dead letters", exc_info=True)


def _end(span: Span) -> None:
    try:
        span.end()
    except Exception:
        logger.debug("could not end a dead-letter write span", exc_info=True)


def _end_failed(span: Span, exc: Exception) -> None:
    try:
        if span.is_recording():
            name = type(exc).__name__
            span.set_attribute(_ATTR_ERROR_TYPE, name)
            span.set_status(Status(StatusCode.ERROR, f"{name}: {redact(str(exc))[:200]}"))
        span.end()
    except Exception:
        logger.debug("could not end a failed dead-letter write span", exc_info=True)


def record_evictions(evicted: dict[str, int]) -> None:
    """Count a sweep's evictions (keys ``"<status>:<rule>"``) in `METRIC_EVICTIONS`.

    Pruned ledger entries (``"ledger:max_age"``) are not records and are left out.
    """
    try:
        counter = _evictions_counter()
        for key, count in evicted.items():
            status, _, rule = key.partition(":")
            if count and key != LEDGER_EVICTED:
                counter.add(count, {ATTR_STATUS: status, ATTR_RULE: rule})
    except Exception:
        logger.debug("could not count dead-letter evictions", exc_info=True)


def record_dropped(reason: str, count: int = 1) -> None:
    """Count fire-and-forget captures dropped for *reason* in `METRIC_DROPPED`."""
    try:
        _dropped_counter().add(count, {ATTR_DROP_REASON: reason})
    except Exception:
        logger.debug("could not count a dropped dead-letter capture", exc_info=True)


def store_kind(store: object) -> str:
    """Return the `ATTR_STORE` value for *store*: ``sqlite``, ``memory`` or its class name.

    A store that wraps another (a :class:`~otpy.deadletter.StoreHandle`) says what
    it wraps with a ``store_kind`` string attribute.
    """
    kind = getattr(store, "store_kind", None)
    if isinstance(kind, str):
        return kind
    name = type(store).__name__
    return {"SQLiteDeadLetterStore": "sqlite", "MemoryDeadLetterStore": "memory"}.get(name, name)
