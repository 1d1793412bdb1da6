"""Sources other than HTTP: JSON lines and memory, submitted with the HTTP ingest's checks, loaded through a busy node."""

from __future__ import annotations

import base64
import io
import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from otpy.ingest import (
    IngestApp,
    IngestMessage,
    IngestRoute,
    JsonLinesSource,
    LoadReport,
    Malformed,
    MemoryJournalStore,
    MemorySource,
    MessageSource,
    Refusal,
    SourceBatch,
    SubmitResult,
    load_source,
)
from otpy.pressure import PressurePolicy, Priority
from otpy.telemetry import (
    ATTR_INGEST_REASON,
    ATTR_INGEST_ROUTE,
    METRIC_INGEST_ACCEPTED,
    METRIC_INGEST_DUPLICATES,
    METRIC_INGEST_REFUSED,
)
from otpy.testing import capture_metrics, capture_spans, virtual_time

from ._http import Counting, client, clock, make_app

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from opentelemetry.sdk.metrics.export import MetricsData

VIRTUAL = pytest.mark.parametrize("anyio_backend", [virtual_time()], ids=["virtual"])


def message(body: bytes = b"x", route: str = "orders", **fields: Any) -> IngestMessage:
    """A message for *route* with *body*."""
    return IngestMessage(route=route, body=body, **fields)


async def batches(source: MessageSource) -> list[SourceBatch]:
    """Every batch *source* yields."""
    return [batch async for batch in source]


def jsonl(*lines: object) -> bytes:
    """JSON lines: a dict is dumped, a str kept as it is."""
    return b"\n".join(
        (json.dumps(line) if isinstance(line, dict) else str(line)).encode() for line in lines
    )


# -- IngestMessage ----------------------------------------------------------------------


def test_a_message_has_the_http_defaults() -> None:
    """No key, idempotency key or priority (the route's), octet-stream, no headers."""
    built = IngestMessage(route="orders", body=bytearray(b"x"))
    assert (built.body, built.key, built.idempotency_key, built.priority) == (
        b"x",
        None,
        None,
        None,
    )
    assert (built.content_type, built.headers) == ("application/octet-stream", ())
    assert IngestMessage(route="o", body=b"", priority="HIGH").priority is Priority.HIGH
    assert IngestMessage(route="o", body=b"", headers={"a": "b"}).headers == (("a", "b"),)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"route": ""}, ValueError, r"^IngestMessage: route must not be empty"),
        ({"route": 3}, TypeError, r"^IngestMessage: route must be a string, got 3"),
        ({"body": "text"}, TypeError, r"^IngestMessage: body must be bytes, got 'text'"),
        ({"key": ""}, ValueError, r"^IngestMessage: key must not be empty"),
        ({"idempotency_key": 7}, TypeError, r"^IngestMessage: idempotency_key must be a string"),
        ({"priority": "urgent"}, ValueError, r"^IngestMessage: priority must be a Priority or one"),
        ({"content_type": ""}, ValueError, r"^IngestMessage: content_type must not be empty"),
        ({"headers": "x"}, TypeError, r"^IngestMessage: headers must be a mapping or an iterable"),
    ],
)
def test_a_bad_message_field_is_named(
    fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each field is checked when the message is built; the error names it."""
    with pytest.raises(error, match=match):
        IngestMessage(**{"route": "orders", "body": b"x", **fields})


# -- JsonLinesSource --------------------------------------------------------------------


async def test_json_lines_are_read_in_the_batch_endpoints_format(tmp_path: Path) -> None:
    """Body or base64, key, idempotency key, priority and content type; numbers count every line."""
    path = tmp_path / "load.jsonl"
    path.write_bytes(
        jsonl(
            {"body": "one", "key": "k1", "idempotency_key": "i1", "content_type": "text/plain"},
            "",
            {"body_base64": base64.b64encode(b"\x00\x01").decode(), "priority": "High"},
        )
        + b"\r\n   \n"
    )
    [batch] = await batches(JsonLinesSource(path, route="orders"))
    assert batch.lines == (1, 3)
    assert batch.malformed == ()
    first, second = batch.messages
    assert (first.route, first.body, first.key, first.idempotency_key) == (
        "orders",
        b"one",
        "k1",
        "i1",
    )
    assert (first.priority, first.content_type) == (None, "text/plain")
    assert (second.body, second.priority, second.key) == (b"\x00\x01", Priority.HIGH, None)


async def test_a_line_may_name_its_route_which_wins_over_the_default() -> None:
    """``route`` in a line picks its route; without a default, a line without one is malformed."""
    data = jsonl({"body": "a", "route": "audit"}, {"body": "b"})
    [with_default] = await batches(JsonLinesSource(io.BytesIO(data), route="orders"))
    assert [m.route for m in with_default.messages] == ["audit", "orders"]
    [without] = await batches(JsonLinesSource(io.BytesIO(data)))
    assert [m.route for m in without.messages] == ["audit"]
    assert without.malformed == (
        Malformed(2, "no_route", "the line names no 'route' and the source has no default"),
    )


@pytest.mark.parametrize(
    ("line", "error", "detail"),
    [
        ("{not json", "bad_json", None),
        ('"just a string"', "bad_line", "a line must be a JSON object, got str"),
        ("{}", "bad_line", "a line has exactly one of 'body' and 'body_base64'"),
        ('{"body": 1}', "bad_line", "'body' must be a string, got int"),
        ('{"body": "x", "route": 2}', "bad_line", "'route' must be a string, got int"),
        ('{"body_base64": "!!"}', "bad_line", "'body_base64' is not valid base64"),
        (
            '{"body": "x", "colour": "red"}',
            "bad_line",
            "unknown fields ['colour']; allowed: ['body', 'body_base64', 'content_type', "
            "'idempotency_key', 'key', 'priority', 'route']",
        ),
        (
            '{"body": "x", "priority": "meh"}',
            "bad_priority",
            "'priority' must be low, normal, high or critical, got 'meh'",
        ),
        ('{"body": "x", "key": ""}', "bad_request", None),
    ],
)
async def test_a_malformed_line_is_reported_with_its_number_and_the_load_goes_on(
    line: str, error: str, detail: str | None
) -> None:
    """IN-17: the line after a bad one is read; the bad one is reported as the batch endpoint says it."""
    data = f'{{"body": "before"}}\n{line}\n{{"body": "after"}}\n'.encode()
    [batch] = await batches(JsonLinesSource(io.BytesIO(data), route="orders"))
    assert [m.body for m in batch.messages] == [b"before", b"after"]
    assert batch.lines == (1, 3)
    [bad] = batch.malformed
    assert (bad.line, bad.error) == (2, error)
    if detail is not None:
        assert bad.detail == detail


async def test_lines_are_read_batch_at_a_time() -> None:
    """Five lines, batch=2: three batches; a chunk of blank lines yields nothing."""
    data = jsonl(*({"body": str(n)} for n in range(5)), "", "", "")
    found = await batches(JsonLinesSource(io.BytesIO(data), route="orders", batch=2))
    assert [b.lines for b in found] == [(1, 2), (3, 4), (5,)]


async def test_a_line_over_the_limit_is_skipped_to_its_end() -> None:
    """A 40-byte line with max_line_size=30 is malformed too_large; the next line is read."""
    long = json.dumps({"body": "x" * 28}).encode()
    data = long + b"\n" + b'{"body": "ok"}\n' + long
    [batch] = await batches(JsonLinesSource(io.BytesIO(data), route="orders", max_line_size=30))
    assert [m.body for m in batch.messages] == [b"ok"]
    assert batch.lines == (2,)
    assert batch.malformed == (
        Malformed(1, "too_large", "the line is over the 30 bytes allowed"),
        Malformed(3, "too_large", "the line is over the 30 bytes allowed"),
    )


async def test_a_path_is_read_again_at_each_iteration(tmp_path: Path) -> None:
    """A file source opens its path each time it is iterated, from its start."""
    path = tmp_path / "one.jsonl"
    path.write_bytes(jsonl({"body": "a"}))
    source = JsonLinesSource(path, route="orders")
    assert len((await batches(source))[0].messages) == 1
    assert len((await batches(source))[0].messages) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"source": io.StringIO("")}, TypeError, r"for stdin pass sys.stdin.buffer"),
        ({"source": 3}, TypeError, r"^JsonLinesSource: source must be a path or a binary stream"),
        ({"route": ""}, ValueError, r"^JsonLinesSource: route must not be empty"),
        ({"batch": 0}, ValueError, r"^JsonLinesSource: batch must be an integer >= 1, got 0"),
        ({"max_line_size": 0}, ValueError, r"^JsonLinesSource: max_line_size must be an integer"),
    ],
)
def test_a_bad_json_lines_option_is_named(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """The source's options are checked when it is built."""
    with pytest.raises(error, match=match):
        JsonLinesSource(**{"source": io.BytesIO(b""), **kwargs})


# -- MemorySource -----------------------------------------------------------------------


async def test_a_memory_source_yields_its_messages_batch_at_a_time() -> None:
    """Three messages, batch=2: their positions from 1 are their lines."""
    messages = [message(str(n).encode()) for n in range(3)]
    found = await batches(MemorySource(messages, batch=2))
    assert [(b.messages, b.lines) for b in found] == [
        (tuple(messages[:2]), (1, 2)),
        ((messages[2],), (3,)),
    ]
    assert isinstance(MemorySource([]), MessageSource)


def test_a_memory_source_holds_only_messages() -> None:
    """Anything else than an IngestMessage is refused, named."""
    with pytest.raises(TypeError, match=r"^SourceBatch: messages must hold IngestMessage objects"):
        MemorySource([b"x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"^SourceBatch: lines must give one line per message"):
        SourceBatch(messages=[message()], lines=[1, 2])


# -- submit: the HTTP ingest's checks and answers ---------------------------------------


def pressured(capacity: int = 20, **policy: Any) -> IngestApp:
    """An app whose ``orders`` route has *capacity*, no throttle."""
    return make_app(
        IngestRoute(name="orders", capacity=capacity, policy=PressurePolicy(throttle=0.0, **policy))
    )


def with_pending(app: IngestApp, depth: int) -> IngestApp:
    """*app* with *depth* pending on ``orders``."""
    app.set_pending({"orders": depth})
    return app


Case = tuple["Callable[[], IngestApp]", dict[str, Any], tuple[int, str | None, str | None]]

CASES: dict[str, Case] = {
    "accepted": (make_app, {"body": "x"}, (202, None, None)),
    "unknown_route": (make_app, {"body": "x", "route": "nope"}, (404, "unknown_route", None)),
    "too_large": (
        lambda: make_app(IngestRoute(name="orders", max_body_size=3)),
        {"body": "four"},
        (413, "too_large", "the body is 4 bytes, over the 3 allowed"),
    ),
    "long_key": (
        make_app,
        {"body": "x", "key": "k" * 257},
        (400, "bad_request", "the ordering key is 257 characters, over the 256 allowed"),
    ),
    "long_idempotency_key": (
        make_app,
        {"body": "x", "idempotency_key": "i" * 257},
        (400, "bad_request", "the idempotency key is 257 characters, over the 256 allowed"),
    ),
    "shed": (
        lambda: with_pending(pressured(), 19),
        {"body": "x", "priority": "low"},
        (429, "shed", "route 'orders' is at level shed: low priority is refused"),
    ),
    "deferred": (
        lambda: with_pending(pressured(defer={Priority.LOW}), 17),
        {"body": "x", "priority": "low"},
        (429, "deferred", "route 'orders' is at level degraded: low priority waits"),
    ),
    "route_full": (
        lambda: with_pending(pressured(capacity=2), 2),
        {"body": "x", "priority": "critical"},
        (429, "route_full", "route 'orders' has 2 messages pending, its capacity"),
    ),
    "journal_full": (
        lambda: make_app(journal=MemoryJournalStore(max_bytes=4, clock=clock), retry_after=7),
        {"body": "12345"},
        (429, "journal_full", None),
    ),
}


async def over_http(app: IngestApp, line: dict[str, Any]) -> tuple[int, str | None, str | None]:
    """What the batch endpoint answers for *line* (a whole-request refusal as the line's)."""
    route = line.pop("route", "orders")
    async with client(app) as c:
        r = await c.post(f"/v1/routes/{route}/batch", content=json.dumps(line).encode())
    if r.status_code != 200:
        return (r.status_code, r.json()["error"], r.json()["detail"])
    [result] = r.json()["results"]
    return (result["status"], result.get("error"), result.get("detail"))


@pytest.mark.parametrize("case", list(CASES))
async def test_submit_answers_as_the_batch_endpoint_does(case: str) -> None:
    """IN-16: each refusal kind: the same status, reason and detail as over HTTP; a 429 says when to retry."""
    make, line, (status, error, detail) = CASES[case]
    http_app, submit_app = make(), make()
    answer = await over_http(http_app, dict(line))
    fields = {"route": line.get("route", "orders"), "body": line["body"].encode()}
    fields.update({k: v for k, v in line.items() if k not in ("body", "route")})
    [result] = await submit_app.submit([IngestMessage(**fields)])
    assert (result.status, result.error) == answer[:2] == (status, error)
    if case != "journal_full":  # over HTTP the entry keeps the request's headers: more bytes
        assert result.detail == answer[2]
    if detail is not None:
        assert result.detail == detail
    assert result.journalled is (status == 202)
    assert result.retryable is (status == 429)
    assert result.retry_after == (submit_app.retry_after if status == 429 else None)
    assert submit_app.pending("orders") == http_app.pending("orders")


async def test_submit_journals_in_one_call_and_answers_duplicates() -> None:
    """IN-16: two routes, one journal call; a repeat is 200 with the original's id; depths and on_accepted follow."""
    journal = Counting()
    seen: list[list[str]] = []
    app = make_app(
        IngestRoute(name="orders", priority=Priority.HIGH),
        IngestRoute(name="audit"),
        journal=journal,
        on_accepted=lambda entries: seen.append([e.id for e in entries]),
    )
    results = await app.submit(
        [
            message(b"a", idempotency_key="i1", headers={"authorization": "x", "x-tenant": "t"}),
            message(b"b", route="audit", key="k"),
            message(b"a again", idempotency_key="i1"),
            message(b"c", route="nope"),
        ]
    )
    assert journal.calls == 1
    first, second, again, unknown = results
    assert (first.status, second.status, again.status, unknown.status) == (202, 202, 200, 404)
    assert again == SubmitResult(status=200, id=first.id, duplicate=True)
    assert (app.pending("orders"), app.pending("audit")) == (1, 1)
    assert seen == [[first.id, second.id]]
    entries = {e.id: e for e in await app.journal.pending(limit=10)}
    orders, audit = entries[str(first.id)], entries[str(second.id)]
    assert (orders.key, orders.priority, orders.headers) == (
        "orders",
        Priority.HIGH,
        (("x-tenant", "t"),),
    )
    assert (audit.key, audit.priority) == ("k", Priority.NORMAL)


async def test_a_batch_counts_its_own_messages_against_the_capacity() -> None:
    """Capacity 2: the third message of one call is route_full, as in an HTTP batch."""
    app = pressured(capacity=2)
    results = await app.submit([message(), message(), message()])
    assert [(r.status, r.error) for r in results] == [(202, None), (202, None), (429, "route_full")]


async def test_a_full_journal_refuses_every_message_of_the_call() -> None:
    """JournalFull: all the admitted messages are 429 journal_full; nothing stored or counted pending."""
    app = make_app(journal=MemoryJournalStore(max_bytes=4, clock=clock))
    results = await app.submit([message(b"12"), message(b"345"), message(route="nope")])
    assert [(r.status, r.error) for r in results] == [
        (429, "journal_full"),
        (429, "journal_full"),
        (404, "unknown_route"),
    ]
    assert app.pending("orders") == 0


def points(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, object], ...], int]:
    """A counter's values by sorted attributes."""
    found: dict[tuple[tuple[str, object], ...], int] = {}
    for resource in [] if data is None else data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = found.get(key, 0) + int(point.value)  # type: ignore[union-attr]
    return found


async def test_submit_counts_and_traces_as_http_does() -> None:
    """Accepted, duplicates and refusals are counted by route and reason; each entry has its receive span."""
    app = make_app()
    with capture_metrics() as reader, capture_spans() as exporter:
        await app.submit(
            [
                message(idempotency_key="a"),
                message(idempotency_key="a"),
                message(route="nope"),
                message(key="k" * 300),
            ]
        )
        data = reader.get_metrics_data()
    route = (ATTR_INGEST_ROUTE, "orders")
    assert points(data, METRIC_INGEST_ACCEPTED) == {(route,): 1}
    assert points(data, METRIC_INGEST_DUPLICATES) == {(route,): 1}
    assert points(data, METRIC_INGEST_REFUSED) == {
        ((ATTR_INGEST_REASON, "unknown_route"),): 1,
        ((ATTR_INGEST_REASON, "bad_request"), route): 1,
    }
    spans = [s for s in exporter.get_finished_spans() if s.name == "receive orders"]
    assert len(spans) == 2  # the accepted one and its duplicate; a refusal starts none
    [entry] = await app.journal.pending(limit=10)
    assert "traceparent" in dict(entry.trace_context)


async def test_submit_refuses_what_is_not_a_message() -> None:
    """A bytes object among the messages: TypeError naming messages, nothing journalled."""
    app = make_app()
    with pytest.raises(TypeError, match=r"^IngestApp.submit: messages must hold IngestMessage"):
        await app.submit([message(), b"x"])  # type: ignore[list-item]
    assert app.pending("orders") == 0


# -- load_source ------------------------------------------------------------------------


async def test_a_load_reports_every_line() -> None:
    """Accepted, duplicates, refusals with their lines and reasons, malformed lines with theirs."""
    app = make_app(IngestRoute(name="orders", max_body_size=3))
    data = jsonl(
        {"body": "a", "idempotency_key": "1"},
        "{oops",
        {"body": "b", "idempotency_key": "1"},
        {"body": "c", "route": "nope"},
        {"body": "toolong"},
        {"body": "d"},
    )
    report = await load_source(JsonLinesSource(io.BytesIO(data), route="orders", batch=2), app)
    assert (report.accepted, report.duplicates, report.waited) == (2, 1, 0.0)
    assert report.refusals == (
        Refusal(4, "nope", 404, "unknown_route", "no route 'nope'"),
        Refusal(5, "orders", 413, "too_large", "the body is 7 bytes, over the 3 allowed"),
    )
    assert report.refused == {"too_large": 1, "unknown_route": 1}
    assert [(m.line, m.error) for m in report.malformed] == [(2, "bad_json")]
    assert not report.complete
    assert app.pending("orders") == 2


@VIRTUAL
async def test_a_load_waits_out_the_routes_pressure() -> None:
    """IN-17: at capacity, the refused messages are resubmitted every retry_after until a hand-over makes room."""
    app = with_pending(pressured(capacity=2), 2)
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:

        async def hand_over() -> None:
            await anyio.sleep(4.5)
            app.handed_over("orders", 2)

        tg.start_soon(hand_over)
        report = await load_source(MemorySource([message(b"1"), message(b"2")]), app)
    assert report == LoadReport(accepted=2, duplicates=0, refusals=(), malformed=(), waited=5.0)
    assert report.complete
    assert anyio.current_time() - start == 5.0
    assert [e.body for e in await app.journal.pending(limit=10)] == [b"1", b"2"]


@VIRTUAL
async def test_a_load_waits_out_a_full_journal() -> None:
    """JournalFull is retried too: once the hand-over frees the budget, the message is accepted."""
    journal = MemoryJournalStore(max_bytes=3, clock=clock)
    app = make_app(journal=journal, retry_after=2)
    [old] = await journal.accept([message_entry(b"abc")])

    async with anyio.create_task_group() as tg:

        async def hand_over() -> None:
            await anyio.sleep(3.0)
            await journal.mark_handed_over([old.id])

        tg.start_soon(hand_over)
        report = await load_source(MemorySource([message(b"new")]), app)
    assert (report.accepted, report.refusals, report.waited) == (1, (), 4.0)


def message_entry(body: bytes) -> Any:
    """A journal entry on ``orders`` with *body*."""
    from otpy.ingest import JournalEntry

    return JournalEntry.new(route="orders", body=body, now=clock())


@VIRTUAL
async def test_a_load_gives_up_after_max_wait_without_progress() -> None:
    """IN-17: nothing moves: after max_wait the refused are reported; later batches are not waited for again."""
    app = with_pending(pressured(capacity=2), 2)
    start = anyio.current_time()
    report = await load_source(
        MemorySource([message(b"1"), message(b"2")], batch=1), app, max_wait=3.0
    )
    assert report.waited == 3.0
    assert anyio.current_time() - start == 3.0
    detail = "route 'orders' has 2 messages pending, its capacity"
    assert report.refusals == (
        Refusal(1, "orders", 429, "route_full", detail),
        Refusal(2, "orders", 429, "route_full", detail),
    )
    assert report.refused == {"route_full": 2}


@VIRTUAL
async def test_max_wait_zero_retries_nothing() -> None:
    """The twin: max_wait=0 reports a pressure refusal at once."""
    app = with_pending(pressured(capacity=2), 2)
    report = await load_source(MemorySource([message()]), app, max_wait=0)
    assert (report.waited, report.refused) == (0.0, {"route_full": 1})


@VIRTUAL
async def test_progress_resets_the_wait() -> None:
    """A hand-over every 2 s lets one message in: 3 messages pass with max_wait=3, waiting 6 s in all."""
    app = with_pending(pressured(capacity=2), 2)
    async with anyio.create_task_group() as tg:

        async def hand_over() -> None:
            for _ in range(3):
                await anyio.sleep(1.5)
                app.handed_over("orders", 1)
                await anyio.sleep(0.5)

        tg.start_soon(hand_over)
        report = await load_source(
            MemorySource([message(b"1"), message(b"2"), message(b"3")]), app, max_wait=3.0
        )
    assert (report.accepted, report.refusals, report.waited) == (3, (), 6.0)


@VIRTUAL
async def test_reload_pending_reads_the_depth_the_journal_has() -> None:
    """An app not the node's: its depth falls only when read again from the journal."""
    stale = with_pending(pressured(capacity=2), 2)  # the journal itself is empty
    refused = await load_source(MemorySource([message()]), stale, max_wait=2.0)
    assert refused.refused == {"route_full": 1}
    report = await load_source(MemorySource([message()]), stale, max_wait=2.0, reload_pending=True)
    assert (report.accepted, report.waited) == (1, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"source": [1]}, TypeError, r"^load_source: source must be a MessageSource"),
        ({"app": object()}, TypeError, r"^load_source: app must be an IngestApp"),
        (
            {"max_wait": -1},
            ValueError,
            r"^load_source: max_wait must be a finite number of seconds",
        ),
    ],
)
async def test_a_bad_load_argument_is_named(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """The source, the app and max_wait are checked before anything is read."""
    arguments: dict[str, Any] = {"source": MemorySource([]), "app": make_app(), **kwargs}
    with pytest.raises(error, match=match):
        await load_source(arguments.pop("source"), arguments.pop("app"), **arguments)


async def test_a_stream_giving_text_is_refused_when_read() -> None:
    """A stream-like object whose readline gives str: TypeError naming the source."""

    class Lines:
        def readline(self, limit: int = -1) -> str:
            return '{"body": "x"}\n'

    source = JsonLinesSource(Lines(), route="orders")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^JsonLinesSource: source must be a binary stream"):
        await batches(source)


def test_sources_say_what_they_read() -> None:
    """Their reprs name the file (or a stream), the route and the batch."""
    assert repr(JsonLinesSource("in.jsonl", route="orders")) == (
        "<JsonLinesSource 'in.jsonl' route='orders' batch=100>"
    )
    assert repr(JsonLinesSource(io.BytesIO(b""), batch=5)) == (
        "<JsonLinesSource 'stream' route=None batch=5>"
    )
    assert repr(MemorySource([message()], batch=2)) == "<MemorySource messages=1 batch=2>"
