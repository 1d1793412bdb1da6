"""The gateway's delivery as spans and metrics: attempts, breaker changes, disabling, dead letters.

Each delivery attempt is a PRODUCER span ``send {destination}``, a child of the trace
context stored with the message when it was enqueued, so a message's attempts show
up in the trace that created it. The span stays current while the attempt is
settled, so the breaker change or dead letter it causes is its child.

Like the rest of otpy's telemetry this uses opentelemetry-api only, does next to
nothing until a tracer or meter provider is installed
(:func:`otpy.telemetry.providers_set`), and never raises: telemetry failing must not
change what the gateway does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._redact import get_logger, redact
from ..telemetry import (
    ATTR_DEADLETTER_ID,
    ATTR_ERROR_TYPE,
    ATTR_GATEWAY_ATTEMPT,
    ATTR_GATEWAY_BREAKER_NEW_STATE,
    ATTR_GATEWAY_BREAKER_OLD_STATE,
    ATTR_GATEWAY_BREAKER_REASON,
    ATTR_GATEWAY_BREAKER_STATE,
    ATTR_GATEWAY_DEAD_LETTER_REASON,
    ATTR_GATEWAY_DISABLE_REASON,
    ATTR_GATEWAY_OUTCOME,
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_MESSAGING_DESTINATION_NAME,
    ATTR_MESSAGING_MESSAGE_ID,
    ATTR_MESSAGING_OPERATION_NAME,
    ATTR_MESSAGING_OPERATION_TYPE,
    ATTR_MESSAGING_SYSTEM,
    METRIC_GATEWAY_ATTEMPT_DURATION,
    METRIC_GATEWAY_ATTEMPTS,
    METRIC_GATEWAY_BREAKER_STATE,
    METRIC_GATEWAY_BREAKER_TRANSITIONS,
    METRIC_GATEWAY_DEAD_LETTERED,
    METRIC_GATEWAY_DISABLED,
    METRIC_GATEWAY_OUTBOX_DEPTH,
    METRIC_GATEWAY_OUTBOX_OLDEST_AGE,
    SPAN_GATEWAY_BREAKER_TRANSITION,
    SPAN_GATEWAY_DEAD_LETTER,
    SPAN_GATEWAY_DISABLE,
    SPAN_GATEWAY_SEND,
    cached_counter,
    cached_gauge,
    cached_histogram,
    get_tracer,
    providers_set,
)
from ._breaker import BreakerState
from ._classify import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from ._http import DeliveryResult
    from ._outbox import OutboxMessage, OutboxStatistics, OutboxStore

__all__ = [
    "MESSAGING_SYSTEM",
    "Attempt",
    "creation_context",
    "dead_letter_reason",
    "record_breaker_transition",
    "record_dead_lettered",
    "record_disabled",
    "record_outbox",
    "sample_outbox",
    "start_attempt",
]

_PROPAGATOR: Final = TraceContextTextMapPropagator()

logger = get_logger("otpy.telemetry")

MESSAGING_SYSTEM: Final = "otpy"
"""The ``messaging.system`` of the gateway's spans: otpy's own outbox."""

DESCRIPTION_CHARS: Final = 200
"""The most characters of a failure's message a span's status description holds."""

BULKHEAD_FULL: Final = "bulkhead_full"
"""The outcome on the span of an attempt the destination's bulkhead refused (nothing sent)."""

CANCELLED: Final = "cancelled"
"""``error.type`` of an attempt cancelled before its outcome (a stop past its budget, say)."""

_propagator = TraceContextTextMapPropagator()

_attempts = cached_counter(
    METRIC_GATEWAY_ATTEMPTS, unit="{attempt}", description="Delivery attempts, by outcome."
)
_durations = cached_histogram(
    METRIC_GATEWAY_ATTEMPT_DURATION, unit="s", description="How long each delivery attempt took."
)
_transitions = cached_counter(
    METRIC_GATEWAY_BREAKER_TRANSITIONS,
    unit="{transition}",
    description="Circuit breaker state changes, by new state.",
)
_dead_lettered = cached_counter(
    METRIC_GATEWAY_DEAD_LETTERED,
    unit="{message}",
    description="Messages the gateway gave up and stored as dead letters.",
)
_depth = cached_gauge(
    METRIC_GATEWAY_OUTBOX_DEPTH,
    unit="{message}",
    description="Messages in the outbox for a destination, pending or in flight.",
)
_oldest_age = cached_gauge(
    METRIC_GATEWAY_OUTBOX_OLDEST_AGE,
    unit="s",
    description="Age of the oldest message in the outbox for a destination.",
)
_breaker_state = cached_gauge(
    METRIC_GATEWAY_BREAKER_STATE,
    unit="1",
    description="1 for the state a destination's circuit breaker is in, 0 for the others.",
)
_disabled = cached_gauge(
    METRIC_GATEWAY_DISABLED,
    unit="1",
    description="1 while delivery to a destination is disabled, else 0.",
)


def creation_context(trace_context: Iterable[tuple[str, str]]) -> otel_context.Context:
    """Return the context to parent an attempt's span on: the message's creation context.

    Args:
        trace_context: the message's W3C ``traceparent`` / ``tracestate`` pairs.

    Returns:
        A context holding the remote span they name, or an empty context (a new
        trace) when they hold no valid one: never the delivery loop's own context,
        which would gather unrelated messages in one trace.
    """
    carrier = dict(trace_context)
    if carrier:
        context = _propagator.extract(carrier=carrier)
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
    return otel_context.Context()


def _failure(result: DeliveryResult) -> tuple[str, str]:
    """``(error.type, description)`` of a failed attempt; an HTTP answer's type is its status."""
    if result.status is not None:
        description = f"HTTP {result.status}"
        if result.error:
            description = f"{description}: {result.error}"
        return str(result.status), redact(description)[:DESCRIPTION_CHARS]
    error_type = result.error_type or "DeliveryFailed"
    description = f"{error_type}: {result.error}" if result.error else error_type
    return error_type, redact(description)[:DESCRIPTION_CHARS]


@final
class Attempt:
    """One delivery attempt's span, current from :func:`start_attempt` until :meth:`end`.

    Without a tracer or meter provider it holds no span and every method returns at once.
    """

    __slots__ = ("destination", "span", "token")

    def __init__(self, destination: str, span: Span | None, token: object | None) -> None:
        self.destination = destination
        self.span = span
        self.token = token

    def finished(self, result: DeliveryResult) -> None:
        """Record the attempt's *result*: the span's outcome, status code and status; the metrics.

        A failed attempt's span gets status Error, ``error.type`` (the HTTP status
        code, or the failure's class) and a redacted description; a successful one
        gets neither.
        """
        if not providers_set():
            return
        try:
            outcome = result.outcome.value
            span = self.span
            if span is not None and span.is_recording():
                span.set_attribute(ATTR_GATEWAY_OUTCOME, outcome)
                if result.status is not None:
                    span.set_attribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.status)
                if result.outcome is not Outcome.SUCCESS:
                    error_type, description = _failure(result)
                    span.set_attribute(ATTR_ERROR_TYPE, error_type)
                    span.set_status(Status(StatusCode.ERROR, description))
            labels = {ATTR_MESSAGING_DESTINATION_NAME: self.destination}
            _attempts().add(1, {**labels, ATTR_GATEWAY_OUTCOME: outcome})
            _durations().record(max(result.duration, 0.0), labels)
        except Exception:
            logger.debug("could not record a delivery attempt", exc_info=True)

    def refused(self) -> None:
        """Mark the span of an attempt the bulkhead refused: nothing was sent, nothing is counted."""
        try:
            if self.span is not None and self.span.is_recording():
                self.span.set_attribute(ATTR_GATEWAY_OUTCOME, BULKHEAD_FULL)
        except Exception:
            logger.debug("could not mark a refused delivery attempt", exc_info=True)

    def cancelled(self) -> None:
        """Mark the span of an attempt cancelled before its outcome (``error.type`` ``cancelled``)."""
        span = self.span
        if span is None:
            return
        try:
            if span.is_recording():
                span.set_attribute(ATTR_ERROR_TYPE, CANCELLED)
                span.set_status(Status(StatusCode.ERROR, "cancelled before its outcome"))
        except Exception:
            logger.debug("could not mark a delivery attempt span cancelled", exc_info=True)

    def failed(self, exc: Exception) -> None:
        """Mark the span failed by *exc*, raised while sending or settling (status Error, ``error.type``)."""
        span = self.span
        if span is None:
            return
        try:
            if span.is_recording():
                name = type(exc).__name__
                span.set_attribute(ATTR_ERROR_TYPE, name)
                description = f"{name}: {redact(str(exc))}"[:DESCRIPTION_CHARS]
                span.set_status(Status(StatusCode.ERROR, description))
        except Exception:
            logger.debug("could not mark a delivery attempt span failed", exc_info=True)

    def end(self) -> None:
        """End the span and make the previous context current again (call it once, in ``finally``)."""
        try:
            if self.token is not None:
                otel_context.detach(self.token)  # type: ignore[arg-type]  # what attach returned
            if self.span is not None:
                self.span.end()
        except Exception:
            logger.debug("could not end a delivery attempt span", exc_info=True)


def start_attempt(destination: str, message: OutboxMessage, attempt: int) -> Attempt:
    """Start the span of one delivery attempt of *message* to *destination*, and make it current.

    The span ``send {destination}`` (PRODUCER) is a child of the message's creation
    context (:func:`creation_context`). It stays current while the attempt is sent
    and settled, so what settling causes (a breaker change, a dead letter) is its
    child. End it with :meth:`Attempt.end`.

    Args:
        destination: the destination's name.
        message: the outbox message being sent.
        attempt: the attempt's number, the first being 1.

    Returns:
        The :class:`Attempt`, to record the result with :meth:`Attempt.finished`.
    """
    if not providers_set():
        return Attempt(destination, None, None)
    span: Span | None = None
    token: object | None = None
    try:
        attributes: dict[str, AttributeValue] = {
            ATTR_MESSAGING_SYSTEM: MESSAGING_SYSTEM,
            ATTR_MESSAGING_OPERATION_NAME: SPAN_GATEWAY_SEND,
            ATTR_MESSAGING_OPERATION_TYPE: SPAN_GATEWAY_SEND,
            ATTR_MESSAGING_DESTINATION_NAME: destination,
            ATTR_MESSAGING_MESSAGE_ID: message.id,
            ATTR_GATEWAY_ATTEMPT: attempt,
        }
        span = get_tracer().start_span(
            f"{SPAN_GATEWAY_SEND} {destination}",
            context=creation_context(message.trace_context),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
    except Exception:
        logger.debug("could not start a delivery attempt span", exc_info=True)
    return Attempt(destination, span, token)


def _event_span(name: str, attributes: dict[str, AttributeValue]) -> None:
    """Record a short INTERNAL span *name* for an event, a child of the current span."""
    span = get_tracer().start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
    span.end()


def record_breaker_transition(
    destination: str, old: BreakerState, new: BreakerState, now: float, reason: str
) -> None:
    """Record a breaker's change of state: a span and `METRIC_GATEWAY_BREAKER_TRANSITIONS`.

    Its signature after *destination* is the breaker's ``on_transition`` callback's, so
    ``functools.partial(record_breaker_transition, name)`` is one.

    Args:
        destination: the breaker's destination.
        old: the state before.
        new: the state after.
        now: the breaker's clock at the change (not recorded: spans carry wall time).
        reason: why, in words.
    """
    if not providers_set():
        return
    try:
        _event_span(
            SPAN_GATEWAY_BREAKER_TRANSITION,
            {
                ATTR_MESSAGING_DESTINATION_NAME: destination,
                ATTR_GATEWAY_BREAKER_OLD_STATE: old.value,
                ATTR_GATEWAY_BREAKER_NEW_STATE: new.value,
                ATTR_GATEWAY_BREAKER_REASON: redact(reason)[:DESCRIPTION_CHARS],
            },
        )
        _transitions().add(
            1,
            {
                ATTR_MESSAGING_DESTINATION_NAME: destination,
                ATTR_GATEWAY_BREAKER_NEW_STATE: new.value,
            },
        )
    except Exception:
        logger.debug("could not record a breaker transition", exc_info=True)


def record_disabled(destination: str, reason: str) -> None:
    """Record that delivery to *destination* was disabled, for *reason* (``gone`` or ``manual``)."""
    if not providers_set():
        return
    try:
        _event_span(
            SPAN_GATEWAY_DISABLE,
            {ATTR_MESSAGING_DESTINATION_NAME: destination, ATTR_GATEWAY_DISABLE_REASON: reason},
        )
    except Exception:
        logger.debug("could not record a disabled destination", exc_info=True)


def dead_letter_reason(outcome: Outcome) -> str:
    """The `ATTR_GATEWAY_DEAD_LETTER_REASON` of a message given up after an attempt of *outcome*."""
    if outcome is Outcome.RETRYABLE:
        return "retries_exhausted"
    if outcome is Outcome.GONE:
        return "gone"
    return "terminal"


def record_dead_lettered(
    destination: str, message_id: str, dead_letter_id: str, reason: str
) -> None:
    """Record that a message was given up and its dead letter stored: a span and a count.

    Args:
        destination: the message's destination.
        message_id: the outbox message's id.
        dead_letter_id: the stored dead letter's id (for ``otpy dlq get``).
        reason: see :func:`dead_letter_reason`.
    """
    if not providers_set():
        return
    try:
        _event_span(
            SPAN_GATEWAY_DEAD_LETTER,
            {
                ATTR_MESSAGING_DESTINATION_NAME: destination,
                ATTR_MESSAGING_MESSAGE_ID: message_id,
                ATTR_DEADLETTER_ID: dead_letter_id,
                ATTR_GATEWAY_DEAD_LETTER_REASON: reason,
            },
        )
        _dead_lettered().add(
            1,
            {ATTR_MESSAGING_DESTINATION_NAME: destination, ATTR_GATEWAY_DEAD_LETTER_REASON: reason},
        )
    except Exception:
        logger.debug("could not record a dead-lettered message", exc_info=True)


def record_outbox(destinations: Iterable[str], statistics: OutboxStatistics) -> None:
    """Set the outbox depth and oldest-age gauges of each of *destinations* (0 when empty)."""
    try:
        depth, oldest_age = _depth(), _oldest_age()
        for name in destinations:
            stats = statistics.destinations.get(name)
            labels = {ATTR_MESSAGING_DESTINATION_NAME: name}
            depth.set(0 if stats is None else stats.depth, labels)
            oldest_age.set(0.0 if stats is None else stats.oldest_age, labels)
    except Exception:
        logger.debug("could not record the outbox's statistics", exc_info=True)


def record_states(states: Mapping[str, tuple[BreakerState | None, bool]]) -> None:
    """Set each destination's breaker-state set (without a breaker, none) and disabled gauges."""
    try:
        breaker_state, disabled = _breaker_state(), _disabled()
        for name, (current, off) in states.items():
            labels = {ATTR_MESSAGING_DESTINATION_NAME: name}
            disabled.set(1 if off else 0, labels)
            if current is None:
                continue
            for state in BreakerState:
                breaker_state.set(
                    1 if state is current else 0,
                    {**labels, ATTR_GATEWAY_BREAKER_STATE: state.value},
                )
    except Exception:
        logger.debug("could not record the destinations' states", exc_info=True)


async def sample_outbox(
    outbox: OutboxStore,
    destinations: tuple[str, ...],
    interval: float,
    clock: Callable[[], float],
    states: Callable[[], Mapping[str, tuple[BreakerState | None, bool]]] | None = None,
) -> None:
    """Every *interval* seconds, while someone listens, record the gateway's gauges; until cancelled.

    The outbox's depth and oldest age, and, from *states*, each destination's breaker
    state and whether it is disabled. A failure to read the statistics is logged at
    DEBUG and tried again next time.
    """
    while True:
        if providers_set():
            try:
                statistics = await outbox.statistics(now=clock())
            except Exception:
                logger.debug("could not read the outbox's statistics", exc_info=True)
            else:
                record_outbox(destinations, statistics)
            if states is not None:
                record_states(states())
        await anyio.sleep(interval)


def trace_headers() -> list[tuple[str, str]]:
    """The W3C ``traceparent`` (and ``tracestate``) of the current span, for an outgoing request.

    Empty unless a provider is set and a valid span is current (the attempt's, while
    :class:`~otpy.gateway.HttpDestination` sends), so the receiver can join the
    message's trace. Never raises.
    """
    if not providers_set():
        return []
    try:
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return []
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return list(carrier.items())
    except Exception:
        logger.debug("could not inject trace context into a request", exc_info=True)
        return []
