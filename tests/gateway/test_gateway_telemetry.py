"""The gateway's delivery as spans and metrics: attempts, breaker changes, disabling, dead letters (GW-13)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes
from opentelemetry.semconv.attributes import http_attributes
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otpy.gateway._breaker import BreakerPolicy
from otpy.gateway._classify import Outcome
from otpy.gateway._http import DeliveryResult, OutboundRequest
from otpy.gateway._outbox_memory import MemoryOutboxStore
from otpy.telemetry import (
    ATTR_DEADLETTER_ID,
    ATTR_ERROR_TYPE,
    ATTR_GATEWAY_ATTEMPT,
    ATTR_GATEWAY_BREAKER_NEW_STATE,
    ATTR_GATEWAY_BREAKER_OLD_STATE,
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
    get_tracer,
)
from otpy.testing import capture_metrics, capture_spans, virtual_time

from ._delivery import Sink, clock, gateway, running

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData
    from opentelemetry.sdk.trace import ReadableSpan

    from otpy.gateway._outbox import OutboxStatistics

VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", [virtual_time()])
DEST = "orders"


OK = DeliveryResult(outcome=Outcome.SUCCESS, status=200, duration=0.25)
UNAVAILABLE = DeliveryResult(outcome=Outcome.RETRYABLE, status=503, duration=0.5)
REFUSED = DeliveryResult(outcome=Outcome.TERMINAL, status=400)
GONE = DeliveryResult(outcome=Outcome.GONE, status=410)


class Scripted:
    """A destination answering each body with its scripted results in turn, then success."""

    def __init__(self, name: str = DEST, **script: list[DeliveryResult | Exception]) -> None:
        self.name = name
        self.script = {body.encode(): list(results) for body, results in script.items()}

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        await anyio.lowlevel.checkpoint()
        results = self.script.get(request.body)
        result = results.pop(0) if results else OK
        if isinstance(result, Exception):
            raise result
        return result


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def points(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """The metric's data points by their sorted attributes: a value, or a histogram's count."""
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        value = getattr(point, "value", None)
                        found[key] = cast("Any", point).count if value is None else value
    return found


@VIRTUAL_TIME
async def test_a_delivered_attempt_is_a_producer_span_child_of_the_creation_context() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(), outbox, sink)
    with capture_spans() as exporter:
        with get_tracer().start_as_current_span("create order") as creator:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
        async with running(g):
            message_id = await g.enqueue(DEST, key="a", body=b"one", trace_context=carrier)
            await anyio.sleep(5)
    [span] = named(exporter.get_finished_spans(), "send orders")
    created = creator.get_span_context()
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is not None
    assert (span.parent.trace_id, span.parent.span_id) == (created.trace_id, created.span_id)
    assert span.parent.is_remote
    assert dict(span.attributes or {}) == {
        ATTR_MESSAGING_SYSTEM: "otpy",
        ATTR_MESSAGING_OPERATION_NAME: "send",
        ATTR_MESSAGING_OPERATION_TYPE: "send",
        ATTR_MESSAGING_DESTINATION_NAME: DEST,
        ATTR_MESSAGING_MESSAGE_ID: message_id,
        ATTR_GATEWAY_ATTEMPT: 1,
        ATTR_GATEWAY_OUTCOME: "success",
        ATTR_HTTP_RESPONSE_STATUS_CODE: 200,
    }
    assert span.status.status_code is StatusCode.UNSET


@VIRTUAL_TIME
async def test_a_message_without_a_creation_context_starts_a_new_trace() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(), outbox, sink)
    with capture_spans() as exporter, get_tracer().start_as_current_span("the caller of run"):
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await anyio.sleep(5)
    [span] = named(exporter.get_finished_spans(), "send orders")
    assert span.parent is None


@VIRTUAL_TIME
async def test_a_retried_attempt_has_error_status_and_the_status_code() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(one=[UNAVAILABLE]), outbox, sink)
    with capture_spans() as exporter:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await anyio.sleep(5)
    failed, delivered = named(exporter.get_finished_spans(), "send orders")
    assert failed.attributes is not None
    assert failed.attributes[ATTR_GATEWAY_ATTEMPT] == 1
    assert failed.attributes[ATTR_GATEWAY_OUTCOME] == "retryable"
    assert failed.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] == 503
    assert failed.attributes[ATTR_ERROR_TYPE] == "503"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "HTTP 503"
    assert delivered.attributes is not None
    assert delivered.attributes[ATTR_GATEWAY_ATTEMPT] == 2
    assert ATTR_ERROR_TYPE not in delivered.attributes
    assert delivered.status.status_code is StatusCode.UNSET


@VIRTUAL_TIME
async def test_a_destination_that_raises_gives_the_exception_class_as_error_type() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(one=[ConnectionResetError("peer reset")]), outbox, sink)
    with capture_spans() as exporter:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await anyio.sleep(5)
    failed = named(exporter.get_finished_spans(), "send orders")[0]
    assert failed.attributes is not None
    assert failed.attributes[ATTR_ERROR_TYPE] == "ConnectionResetError"
    assert ATTR_HTTP_RESPONSE_STATUS_CODE not in failed.attributes
    assert failed.status.description == "ConnectionResetError: peer reset"


@VIRTUAL_TIME
async def test_attempts_are_counted_by_outcome_and_timed() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(one=[UNAVAILABLE] * 3), outbox, sink, schedule=("1s", "2s"))
    with capture_metrics() as reader:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await g.enqueue(DEST, key="b", body=b"two")
            await anyio.sleep(10)
            data = reader.get_metrics_data()
    attempts = points(data, METRIC_GATEWAY_ATTEMPTS)
    durations = points(data, METRIC_GATEWAY_ATTEMPT_DURATION)
    by = ATTR_MESSAGING_DESTINATION_NAME
    assert attempts == {
        ((by, DEST), (ATTR_GATEWAY_OUTCOME, "retryable")): 3,
        ((by, DEST), (ATTR_GATEWAY_OUTCOME, "success")): 1,
    }
    assert durations == {((by, DEST),): 4}


@VIRTUAL_TIME
async def test_a_dead_lettered_message_is_counted_and_its_span_is_a_child_of_the_attempt() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(one=[REFUSED], two=[UNAVAILABLE] * 3), outbox, sink)
    with capture_spans() as exporter, capture_metrics() as reader:
        async with running(g):
            refused_id = await g.enqueue(DEST, key="a", body=b"one")
            await g.enqueue(DEST, key="b", body=b"two")
            await anyio.sleep(10)
            counted = points(reader.get_metrics_data(), METRIC_GATEWAY_DEAD_LETTERED)
    by = ATTR_MESSAGING_DESTINATION_NAME
    assert counted == {
        ((by, DEST), (ATTR_GATEWAY_DEAD_LETTER_REASON, "retries_exhausted")): 1,
        ((by, DEST), (ATTR_GATEWAY_DEAD_LETTER_REASON, "terminal")): 1,
    }
    spans = exporter.get_finished_spans()
    [refused] = [
        s
        for s in named(spans, SPAN_GATEWAY_DEAD_LETTER)
        if (s.attributes or {})[ATTR_MESSAGING_MESSAGE_ID] == refused_id
    ]
    [attempt] = [
        s
        for s in named(spans, "send orders")
        if (s.attributes or {})[ATTR_MESSAGING_MESSAGE_ID] == refused_id
    ]
    assert refused.parent is not None
    assert refused.parent.span_id == attempt.context.span_id
    [record] = [r for r in sink.records if r.correlation_id == refused_id]
    assert (refused.attributes or {})[ATTR_DEADLETTER_ID] == record.id


@VIRTUAL_TIME
async def test_breaker_transitions_are_spans_and_counted() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(a=[UNAVAILABLE], b=[UNAVAILABLE])
    breaker = BreakerPolicy(window_size=2, minimum_calls=2, wait_in_open=10, half_open_calls=1)
    g = gateway(dest, outbox, sink, schedule=("1s", "1s"), breaker=breaker)
    with capture_spans() as exporter, capture_metrics() as reader:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"a")
            await g.enqueue(DEST, key="b", body=b"b")
            await anyio.sleep(30)
            counted = points(reader.get_metrics_data(), METRIC_GATEWAY_BREAKER_TRANSITIONS)
    changes = [
        (
            (s.attributes or {})[ATTR_GATEWAY_BREAKER_OLD_STATE],
            (s.attributes or {})[ATTR_GATEWAY_BREAKER_NEW_STATE],
        )
        for s in named(exporter.get_finished_spans(), SPAN_GATEWAY_BREAKER_TRANSITION)
    ]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    by = ATTR_MESSAGING_DESTINATION_NAME
    assert counted == {
        ((by, DEST), (ATTR_GATEWAY_BREAKER_NEW_STATE, state)): 1
        for state in ("open", "half_open", "closed")
    }


@VIRTUAL_TIME
async def test_disabling_a_destination_is_a_span_once_per_change() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(one=[GONE]), outbox, sink)
    with capture_spans() as exporter:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await anyio.sleep(5)
            await g.disable(DEST)  # already disabled by the 410: no second span
            await g.enable(DEST)
            await g.disable(DEST)
    reasons = [
        (s.attributes or {})[ATTR_GATEWAY_DISABLE_REASON]
        for s in named(exporter.get_finished_spans(), SPAN_GATEWAY_DISABLE)
    ]
    assert reasons == ["gone", "manual"]


@VIRTUAL_TIME
async def test_the_outbox_depth_and_oldest_age_are_sampled_once_per_poll() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(), outbox, sink)
    await g.disable(DEST)
    with capture_metrics() as reader:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await g.enqueue(DEST, key="b", body=b"two")
            await anyio.sleep(3.5)  # polls at 0, 1, 2 and 3 seconds
            data = reader.get_metrics_data()
            depth = points(data, METRIC_GATEWAY_OUTBOX_DEPTH)
            age = points(data, METRIC_GATEWAY_OUTBOX_OLDEST_AGE)
            await g.enable(DEST)
            await anyio.sleep(1)
            drained = points(reader.get_metrics_data(), METRIC_GATEWAY_OUTBOX_DEPTH)
    key = ((ATTR_MESSAGING_DESTINATION_NAME, DEST),)
    assert depth == {key: 2}
    assert age == {key: 3.0}
    assert drained == {key: 0}


@VIRTUAL_TIME
async def test_the_breaker_state_and_disabling_are_sampled_as_gauges() -> None:
    """A state set (1 for the current state, 0 for the others) and a disabled flag per destination."""
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Scripted(), outbox, sink, breaker=BreakerPolicy())
    with capture_metrics() as reader:
        async with running(g):
            await anyio.sleep(1.5)
            states = points(reader.get_metrics_data(), METRIC_GATEWAY_BREAKER_STATE)
            await g.disable(DEST)
            await anyio.sleep(1)
            disabled = points(reader.get_metrics_data(), METRIC_GATEWAY_DISABLED)
    dest = (ATTR_MESSAGING_DESTINATION_NAME, DEST)
    assert {dict(k)[ATTR_GATEWAY_BREAKER_STATE]: v for k, v in states.items()} == {
        "closed": 1,
        "open": 0,
        "half_open": 0,
        "forced_open": 0,
        "disabled": 0,
    }
    assert all(dest in k for k in states)
    assert disabled == {(dest,): 1}


def test_the_semantic_convention_names_are_the_conventions_own() -> None:
    from otpy import telemetry

    assert telemetry.ATTR_MESSAGING_SYSTEM == messaging_attributes.MESSAGING_SYSTEM
    assert telemetry.ATTR_MESSAGING_OPERATION_NAME == messaging_attributes.MESSAGING_OPERATION_NAME
    assert telemetry.ATTR_MESSAGING_OPERATION_TYPE == messaging_attributes.MESSAGING_OPERATION_TYPE
    assert (
        telemetry.ATTR_MESSAGING_DESTINATION_NAME == messaging_attributes.MESSAGING_DESTINATION_NAME
    )
    assert telemetry.ATTR_MESSAGING_MESSAGE_ID == messaging_attributes.MESSAGING_MESSAGE_ID
    assert telemetry.ATTR_HTTP_RESPONSE_STATUS_CODE == http_attributes.HTTP_RESPONSE_STATUS_CODE
    send = messaging_attributes.MessagingOperationTypeValues.SEND.value
    assert send == telemetry.SPAN_GATEWAY_SEND


@VIRTUAL_TIME
async def test_the_outbox_is_read_for_the_gauges_at_most_once_per_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    reads: list[float] = []
    statistics = outbox.statistics
    start = anyio.current_time()

    async def counted(*, now: float | None = None) -> OutboxStatistics:
        reads.append(anyio.current_time() - start)
        return await statistics(now=now)

    monkeypatch.setattr(outbox, "statistics", counted)
    g = gateway(Scripted(), outbox, sink)
    with capture_metrics():
        async with running(g):
            for n in range(20):  # many messages, no more reads
                await g.enqueue(DEST, key=f"k{n}", body=b"x")
            await anyio.sleep(2.5)
    assert reads == [0.0, 1.0, 2.0]


@VIRTUAL_TIME
async def test_the_attempt_span_is_current_while_the_destination_sends() -> None:
    seen: list[int] = []

    class Watching(Scripted):
        async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
            seen.append(trace.get_current_span().get_span_context().span_id)
            return await super().send(request, now=now)

    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    g = gateway(Watching(), outbox, sink)
    with capture_spans() as exporter:
        async with running(g):
            await g.enqueue(DEST, key="a", body=b"one")
            await anyio.sleep(5)
    [span] = named(exporter.get_finished_spans(), "send orders")
    assert seen == [span.context.span_id]
