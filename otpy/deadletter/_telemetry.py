"""Dead-letter writes, evictions and dropped captures as spans and metrics (TEL-1, TEL-4).

Like the supervisor's telemetry (`otpy.telemetry.record_restart`) these use
opentelemetry-api only, cost little when no SDK is installed, and never raise:
telemetry failing must not change what the writer does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._redact import get_logger, redact
from ..telemetry import (
    ATTR_DEADLETTER_COUNT,
    ATTR_DEADLETTER_DROP_REASON,
    ATTR_DEADLETTER_ID,
    ATTR_DEADLETTER_RULE,
    ATTR_DEADLETTER_SOURCE,
    ATTR_DEADLETTER_STATUS,
    ATTR_DEADLETTER_STORE,
    ATTR_ERROR_TYPE,
    METRIC_DEADLETTER_CAPTURE_DROPPED,
    METRIC_DEADLETTER_CAPTURED,
    METRIC_DEADLETTER_EVICTIONS,
    SPAN_DEADLETTER_WRITE,
    cached_counter,
    get_tracer,
)
from ._store import LEDGER_EVICTED

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.trace import Span, SpanContext

    from ._record import DeadLetter

__all__ = [
    "MAX_LINKS",
    "record_dropped",
    "record_evictions",
    "span_context_from",
    "span_context_of",
    "store_kind",
    "write_span",
]

logger = get_logger("otpy.telemetry")

MAX_LINKS: Final = 128
"""Links per write span (the SDK's default limit); the rest are counted, not linked."""

_propagator = TraceContextTextMapPropagator()


_captured_counter = cached_counter(
    METRIC_DEADLETTER_CAPTURED, unit="{record}", description="Dead letters committed to the store."
)
_evictions_counter = cached_counter(
    METRIC_DEADLETTER_EVICTIONS,
    unit="{record}",
    description="Dead letters evicted by the retention policy.",
)
_dropped_counter = cached_counter(
    METRIC_DEADLETTER_CAPTURE_DROPPED,
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
    """Wrap one ``add_many`` commit of *records* in a `SPAN_DEADLETTER_WRITE` span.

    The span links to each record's stored trace context (up to `MAX_LINKS`). If the
    block raises, the span gets status Error and ``error.type`` and the exception goes
    on; if it returns, `METRIC_DEADLETTER_CAPTURED` counts the records by source.
    """
    span: Span | None = None
    try:
        span = get_tracer().start_span(SPAN_DEADLETTER_WRITE, kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({ATTR_DEADLETTER_COUNT: len(records), ATTR_DEADLETTER_STORE: store})
            linked = 0
            for record in records:
                if linked >= MAX_LINKS:
                    break
                span_context = span_context_of(record)
                if span_context is not None:
                    span.add_link(span_context, {ATTR_DEADLETTER_ID: record.id})
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
            counter.add(count, {ATTR_DEADLETTER_SOURCE: source})
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
            span.set_attribute(ATTR_ERROR_TYPE, name)
            span.set_status(Status(StatusCode.ERROR, f"{name}: {redact(str(exc))[:200]}"))
        span.end()
    except Exception:
        logger.debug("could not end a failed dead-letter write span", exc_info=True)


def record_evictions(evicted: dict[str, int]) -> None:
    """Count a sweep's evictions (keys ``"<status>:<rule>"``) in `METRIC_DEADLETTER_EVICTIONS`.

    Pruned ledger entries (``"ledger:max_age"``) are not records and are left out.
    """
    try:
        counter = _evictions_counter()
        for key, count in evicted.items():
            status, _, rule = key.partition(":")
            if count and key != LEDGER_EVICTED:
                counter.add(count, {ATTR_DEADLETTER_STATUS: status, ATTR_DEADLETTER_RULE: rule})
    except Exception:
        logger.debug("could not count dead-letter evictions", exc_info=True)


def record_dropped(reason: str, count: int = 1) -> None:
    """Count fire-and-forget captures dropped for *reason* in `METRIC_DEADLETTER_CAPTURE_DROPPED`."""
    try:
        _dropped_counter().add(count, {ATTR_DEADLETTER_DROP_REASON: reason})
    except Exception:
        logger.debug("could not count a dropped dead-letter capture", exc_info=True)


def store_kind(store: object) -> str:
    """Return the `ATTR_DEADLETTER_STORE` value for *store*: ``sqlite``, ``memory`` or its class name.

    A store that wraps another (a :class:`~otpy.deadletter.StoreHandle`) says what
    it wraps with a ``store_kind`` string attribute.
    """
    kind = getattr(store, "store_kind", None)
    if isinstance(kind, str):
        return kind
    name = type(store).__name__
    return {"SQLiteDeadLetterStore": "sqlite", "MemoryDeadLetterStore": "memory"}.get(name, name)
