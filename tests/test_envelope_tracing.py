"""Trace context travels in the message envelope (TEL-4): a handler runs in its sender's trace.

Each test sends from inside a span and checks, from the spans the handlers start,
that the trace continues through cast, call, send, a registered name during a
restart, and a second hop, and that it never leaks into the next message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace

import otpy
import otpy.pressure
from otpy._core import _envelope
from otpy.deadletter import (
    DeadLetter,
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
)
from otpy.telemetry import get_tracer
from otpy.testing import capture_spans, virtual_time

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan


class Echo(otpy.Actor):
    """Starts a span named after each message, records the message type, forwards on request."""

    async def init(self, seen: list[Any], forward: str | None = None) -> None:
        self.seen = seen
        self.forward = forward

    async def _handle(self, message: Any) -> None:
        self.seen.append(message)
        with get_tracer().start_as_current_span(f"handle {message}"):
            if self.forward is not None:
                await otpy.named(self.forward).cast(f"{message}+")

    async def handle_cast(self, message: Any) -> None:
        await self._handle(message)

    async def handle_info(self, message: Any) -> None:
        await self._handle(message)

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        await self._handle(message)
        return trace.get_current_span().get_span_context().trace_id


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_cast_call_and_send_run_their_handlers_in_the_senders_trace() -> None:
    """The handler's span is a child of the sender's span, whatever the send."""
    seen: list[Any] = []
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(Echo, seen)
            with get_tracer().start_as_current_span("request") as request:
                await ref.cast("a")
                ref.cast_nowait("b")
                await ref.send("c")
                ref.send_nowait("d")
                trace_id = await ref.call("e")
            await ref.stop()
    spans = by_name(exporter.get_finished_spans())
    parent = request.get_span_context()
    assert trace_id == parent.trace_id
    for name in ("a", "b", "c", "d", "e"):
        span = spans[f"handle {name}"]
        assert span.parent is not None
        assert (span.context.trace_id, span.parent.span_id) == (parent.trace_id, parent.span_id)
    assert seen == ["a", "b", "c", "d", "e"]  # handlers see the bare message


async def test_the_trace_follows_a_pipeline_and_never_leaks_into_the_next_message() -> None:
    """A -> B keeps one trace; an untraced message after it runs with no current span."""
    seen_a: list[Any] = []
    seen_b: list[Any] = []
    with capture_spans() as exporter:
        async with otpy.open_supervisor(
            [
                otpy.ChildSpec(id="b", start=Echo, args=(seen_b,), name="b"),
                otpy.ChildSpec(id="a", start=Echo, args=(seen_a, "b"), name="a"),
            ]
        ):
            with get_tracer().start_as_current_span("request") as request:
                await otpy.named("a").cast("x")
            await otpy.named("a").cast("y")  # no span around this one
            await otpy.named("b").call("sync")
    spans = by_name(exporter.get_finished_spans())
    trace_id = request.get_span_context().trace_id
    assert spans["handle x"].context.trace_id == trace_id
    assert spans["handle x+"].context.trace_id == trace_id
    assert spans["handle x+"].parent is not None
    assert spans["handle x+"].parent.span_id == spans["handle x"].context.span_id
    assert spans["handle y"].parent is None  # a new trace: nothing leaked from x
    assert spans["handle y+"].context.trace_id == spans["handle y"].context.trace_id != trace_id


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_a_send_held_for_a_restarting_name_keeps_its_trace() -> None:
    """A send to a name whose actor is restarting waits in the stash with its context."""
    seen: list[Any] = []
    spec = otpy.ChildSpec(
        id="echo",
        start=Echo,
        args=(seen,),
        name="echo",
        backoff=otpy.Backoff(minimum=5.0, maximum=5.0),  # virtual seconds
    )
    with capture_spans() as exporter:
        async with otpy.open_supervisor([spec]) as sup:
            first = sup.child("echo")
            assert first is not None
            first.kill(RuntimeError("boom"))
            await first.wait_exited()
            assert otpy.whereis("echo") is None  # backing off: the name is free
            with get_tracer().start_as_current_span("request") as request:
                await otpy.named("echo").cast("held")
            await sup.wait_child("echo", other_than=first)
            await otpy.named("echo").call("sync")
    spans = by_name(exporter.get_finished_spans())
    assert spans["handle held"].context.trace_id == request.get_span_context().trace_id


class Fragile(otpy.Actor):
    """Crashes on every message; its poison messages are dead-lettered."""

    dead_letter_on_crash = True

    async def handle_cast(self, message: Any) -> None:
        raise ValueError("cannot handle it")


async def test_a_poison_dead_letter_carries_the_senders_trace_context() -> None:
    """TEL-4/DL-1: the record of a message that crashed its actor links to the sender's trace."""
    store = MemoryDeadLetterStore()
    with capture_spans():
        async with otpy.open_supervisor(
            [
                otpy.SupervisorSpec(
                    id="dead-letters", children=dead_letter_children(store, route=True)
                ),
                otpy.ChildSpec(id="fragile", start=Fragile, name="fragile"),
            ]
        ) as sup:
            fragile = sup.child("fragile")
            assert fragile is not None
            with get_tracer().start_as_current_span("request") as request:
                await otpy.named("fragile").cast("payload")
            await sup.wait_child("fragile", other_than=fragile)
            await DeadLetters().capture(DeadLetter.capture(key="marker", source=Source.INGEST))
            page = await store.list(limit=10)
    [record] = [r for r in page.records if r.source is Source.ACTOR_CRASH]
    traceparent = dict(record.trace_context)["traceparent"]
    assert traceparent.split("-")[1] == format(request.get_span_context().trace_id, "032x")


async def test_without_a_span_messages_travel_bare() -> None:
    """Tracing on but no span: no envelope, the mailbox holds the message itself."""
    with capture_spans():  # installs the hooks, as configure_from_env does
        assert _envelope.hooks is not None
        async with otpy.open_node() as node:
            ref = await node.spawn(Echo, [])
            await ref.suspend()
            await ref.cast("bare")
            assert [item[1] for item in ref._mailbox.q] == ["bare"]
            await ref.resume()
            await ref.stop()


async def test_a_crash_report_names_the_message_type_not_the_envelope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ACT-8/SUP-15: the crash report's last_message is the message's own type when it came traced."""
    with capture_spans(), caplog.at_level(logging.ERROR, logger="otpy.actor"):
        async with otpy.open_node() as node:
            ref = await node.spawn(Fragile)
            with get_tracer().start_as_current_span("request"):
                await ref.cast("payload")
            await ref.wait_exited()
    [report] = [r.otpy_report for r in caplog.records if hasattr(r, "otpy_report")]
    assert report["last_message"] == "cast:str"


async def test_each_partitioned_item_is_handled_in_its_own_producers_trace() -> None:
    """A worker handling items from three producers in one batch gives each its producer's trace.

    The nudge that wakes the worker belongs to nobody's trace, and an item put with no
    span is handled with none.
    """
    queue: otpy.pressure.PartitionedQueue[str] = otpy.pressure.PartitionedQueue(1, 16, name="jobs")

    async def handler(key: str, item: str) -> None:
        with get_tracer().start_as_current_span(f"handle {item}"):
            pass

    with capture_spans() as exporter:
        async with otpy.open_node():
            producers = {}
            for name in ("p1", "p2", "p3"):
                with get_tracer().start_as_current_span(name) as span:
                    queue.put_nowait("k", name)  # no checkpoint: all three wait for one batch
                producers[name] = span.get_span_context().trace_id
            queue.put_nowait("k", "untraced")
            async with otpy.open_supervisor(queue.supervisor_spec(handler, max_demand=8)):
                assert await queue.aclose() == []
    spans = by_name(exporter.get_finished_spans())
    for name, trace_id in producers.items():
        assert spans[f"handle {name}"].context.trace_id == trace_id
    assert spans["handle untraced"].parent is None
    assert len(set(producers.values())) == 3


async def test_housekeeping_messages_travel_bare_even_inside_a_span() -> None:
    """A DeadLetterSuppression message (a nudge, a hint) belongs to no request: no envelope."""

    class Nudge(otpy.DeadLetterSuppression):
        pass

    nudge = Nudge()
    with capture_spans():
        async with otpy.open_node() as node:
            ref = await node.spawn(Echo, [])
            await ref.suspend()
            with get_tracer().start_as_current_span("request"):
                await ref.send(nudge)
                await ref.send("work")
            held = [item[1] for item in ref._mailbox.q]
            await ref.resume()
            await ref.stop()
    assert held[0] is nudge
    assert type(held[1]).__name__ == "Traced"  # ordinary messages still carry the trace
