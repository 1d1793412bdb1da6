"""The HTTP ingest app: 202 only once journalled, 200 for a repeat, and refusals that say what to do (IN-10..IN-12, IN-14)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import httpx
import pytest
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otpy.gateway import SigningSecret, webhook_headers
from otpy.ingest import IngestApp, IngestRoute, MemoryJournalStore
from otpy.pressure import PressurePolicy, Priority
from otpy.telemetry import (
    ATTR_INGEST_DUPLICATE,
    ATTR_INGEST_REASON,
    ATTR_INGEST_ROUTE,
    ATTR_MESSAGING_MESSAGE_ID,
    METRIC_INGEST_ACCEPTED,
    METRIC_INGEST_DUPLICATES,
    METRIC_INGEST_REFUSED,
    get_tracer,
)
from otpy.testing import capture_metrics, capture_spans

from ._http import T0, Counting, client, clock, make_app

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

URL = "/v1/routes/orders/messages"
BATCH = "/v1/routes/orders/batch"
SECRET = SigningSecret("whsec_" + base64.b64encode(b"k" * 32).decode())


async def stored(app: IngestApp) -> list[object]:
    """The entries pending in *app*'s journal."""
    return list(await app.journal.pending(limit=100))


# -- the single message ---------------------------------------------------------------


async def test_a_message_is_answered_202_once_it_is_in_the_journal() -> None:
    """The raw body, its content type, key and priority are journalled; the answer is its id."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(
            URL,
            content=b'{"paid": true}',
            headers={
                "Content-Type": "application/json",
                "X-Otpy-Key": "customer-7",
                "X-Otpy-Priority": "HIGH",
                "X-Request-Source": "shop",
            },
        )
    assert r.status_code == 202
    [entry] = await app.journal.pending(limit=10)
    assert r.json() == {"id": entry.id, "duplicate": False}
    assert (entry.route, entry.body, entry.content_type) == (
        "orders",
        b'{"paid": true}',
        "application/json",
    )
    assert (entry.key, entry.priority, entry.received_at) == ("customer-7", Priority.HIGH, T0)
    assert ("x-request-source", "shop") in entry.headers
    assert app.pending("orders") == 1


async def test_defaults_key_the_route_and_priority_normal_and_octet_stream() -> None:
    """Without the headers, the key is the route's name, the priority normal, the type octet-stream."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(URL, content=b"raw")
    assert r.status_code == 202
    [entry] = await app.journal.pending(limit=10)
    assert (entry.key, entry.priority, entry.idempotency_key) == ("orders", Priority.NORMAL, None)
    assert entry.content_type == "application/octet-stream"


async def test_credentials_and_transport_headers_are_not_kept() -> None:
    """Authorization, cookies, signatures and the transport's headers stay out of the entry."""
    app = make_app(token="s3cret")
    async with client(app) as c:
        r = await c.post(
            URL,
            content=b"x",
            headers={
                "Authorization": "Bearer s3cret",
                "Cookie": "session=1",
                "X-Api-Key": "k",
                "Idempotency-Key": "a-1",
                "X-Tenant": "acme",
            },
        )
    assert r.status_code == 202
    [entry] = await app.journal.pending(limit=10)
    names = {name for name, _ in entry.headers}
    assert "x-tenant" in names
    assert names.isdisjoint(
        {"authorization", "cookie", "x-api-key", "idempotency-key", "host", "content-length"}
    )


async def test_a_repeat_is_answered_200_with_the_original_id() -> None:
    """The same Idempotency-Key on the route within the window: 200, the first id, nothing stored."""
    app = make_app()
    async with client(app) as c:
        first = await c.post(URL, content=b"one", headers={"Idempotency-Key": "k-1"})
        again = await c.post(URL, content=b"one", headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert len(await stored(app)) == 1
    assert app.pending("orders") == 1


async def test_webhook_id_is_the_idempotency_key_without_one() -> None:
    """An unsigned route still dedups on webhook-id when no Idempotency-Key is sent."""
    app = make_app()
    async with client(app) as c:
        first = await c.post(URL, content=b"one", headers={"webhook-id": "msg_1"})
        again = await c.post(URL, content=b"one", headers={"webhook-id": "msg_1"})
    assert (first.status_code, again.status_code) == (202, 200)
    [entry] = await app.journal.pending(limit=10)
    assert entry.idempotency_key == "msg_1"


async def test_on_accepted_is_called_with_the_entries_stored() -> None:
    """The callback gets each journal call's new entries, not the duplicates."""
    seen: list[list[str]] = []
    app = make_app(on_accepted=lambda entries: seen.append([e.id for e in entries]))
    async with client(app) as c:
        first = await c.post(URL, content=b"one", headers={"Idempotency-Key": "k"})
        await c.post(URL, content=b"one", headers={"Idempotency-Key": "k"})
    assert seen == [[first.json()["id"]]]


# -- refusals ---------------------------------------------------------------------------


async def test_an_unknown_route_is_404() -> None:
    """A route not configured: 404 with a JSON body naming it."""
    async with client(make_app()) as c:
        r = await c.post("/v1/routes/nope/messages", content=b"x")
    assert r.status_code == 404
    assert r.json() == {"error": "unknown_route", "detail": "no route 'nope'"}


async def test_unknown_paths_and_methods_answer_json() -> None:
    """Starlette's own 404 and 405 come as JSON bodies too."""
    async with client(make_app()) as c:
        missing = await c.get("/v2/anything")
        wrong = await c.get(URL)
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "Not Found"}
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "method_not_allowed", "detail": "Method Not Allowed"}


async def test_a_bad_priority_header_is_400() -> None:
    """X-Otpy-Priority must name a priority; nothing is stored otherwise."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "urgent"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "bad_priority",
        "detail": "X-Otpy-Priority must be low, normal, high or critical, got 'urgent'",
    }
    assert await stored(app) == []


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authorization: Bearer <token> is required"),
        ("Basic czNjcmV0", "Authorization: Bearer <token> is required"),
        ("Bearer wrong", "the bearer token is not valid for this route"),
    ],
)
async def test_a_missing_or_wrong_token_is_401(authorization: str | None, detail: str) -> None:
    """With a token configured, a request without the right bearer token is refused."""
    app = make_app(token="s3cret")
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "detail": detail}
    assert await stored(app) == []


async def test_a_route_token_replaces_the_apps() -> None:
    """A route with its own token takes that one, not the app's."""
    app = make_app(IngestRoute(name="orders", token="route-token"), token="app-token")
    async with client(app) as c:
        app_token = await c.post(URL, content=b"x", headers={"Authorization": "Bearer app-token"})
        route_token = await c.post(
            URL, content=b"x", headers={"Authorization": "Bearer route-token"}
        )
    assert (app_token.status_code, route_token.status_code) == (401, 202)


async def test_a_signed_request_is_verified_and_deduplicated_on_its_webhook_id() -> None:
    """A valid Standard Webhooks signature passes; its webhook-id becomes the idempotency key."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,)))
    body = b'{"event": "paid"}'
    headers = webhook_headers("msg_42", int(T0), body, [SECRET])
    async with client(app) as c:
        r = await c.post(URL, content=body, headers=headers)
        again = await c.post(URL, content=body, headers=headers)
    assert r.status_code == 202
    assert again.json() == {"id": r.json()["id"], "duplicate": True}
    [entry] = await app.journal.pending(limit=10)
    assert entry.idempotency_key == "msg_42"
    assert "webhook-signature" not in {name for name, _ in entry.headers}


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        ("body", "no webhook-signature v1 entry matches a configured secret"),
        ("unsigned", "webhook-id header is missing"),
        ("old", "webhook-timestamp is 301s in the past, more than the 300s allowed"),
    ],
)
async def test_a_bad_signature_is_401(tamper: str, detail: str) -> None:
    """A wrong, missing or stale signature on a signing route: 401, nothing stored."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,)))
    body = b'{"event": "paid"}'
    stamp = int(T0) - 301 if tamper == "old" else int(T0)
    headers = {} if tamper == "unsigned" else webhook_headers("msg_1", stamp, body, [SECRET])
    async with client(app) as c:
        r = await c.post(URL, content=b"tampered" if tamper == "body" else body, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "bad_signature", "detail": f"webhook signature rejected: {detail}"}
    assert await stored(app) == []


async def test_a_body_over_the_limit_is_413_from_its_content_length() -> None:
    """A declared Content-Length past the route's limit is refused before reading."""
    app = make_app(IngestRoute(name="orders", max_body_size=10))
    async with client(app) as c:
        at_limit = await c.post(URL, content=b"x" * 10)
        over = await c.post(URL, content=b"x" * 11)
    assert at_limit.status_code == 202
    assert over.status_code == 413
    assert over.json() == {
        "error": "too_large",
        "detail": "the body is 11 bytes, over the 10 allowed",
    }


class Chunks(httpx.AsyncByteStream):
    """A request body of 100 chunks of 10 bytes, without a length; counts the chunks pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        await anyio.lowlevel.checkpoint()
        if self.pulled == 100:
            raise StopAsyncIteration
        self.pulled += 1
        return b"0123456789"


async def test_a_chunked_body_stops_being_read_past_the_limit() -> None:
    """A body without a length is read chunk by chunk and dropped as soon as it passes the limit."""
    app = make_app(max_body_size=25)
    body = Chunks()
    async with client(app) as c:
        r = await c.send(httpx.Request("POST", f"http://ingest{URL}", stream=body))
    assert r.status_code == 413
    assert r.json() == {"error": "too_large", "detail": "the body is over the 25 bytes allowed"}
    assert body.pulled == 3  # the third chunk passed 25 bytes: nothing more was pulled
    assert await stored(app) == []


async def test_a_full_journal_is_429_with_retry_after() -> None:
    """JournalFull: 429, Retry-After, the budget in the detail; nothing stored."""
    journal = MemoryJournalStore(max_bytes=4, clock=clock)
    app = make_app(journal=journal, retry_after=7)
    async with client(app) as c:
        r = await c.post(URL, content=b"12345")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.json()["error"] == "journal_full"
    assert "4" in r.json()["detail"]
    assert app.pending("orders") == 0


async def test_not_ready_and_draining_are_503_with_retry_after() -> None:
    """Before set_ready and once draining, messages and /readyz get 503; /healthz stays 200."""
    app = make_app(ready=False)
    async with client(app) as c:
        starting = await c.post(URL, content=b"x")
        not_ready = await c.get("/readyz")
        health = await c.get("/healthz")
        app.set_ready()
        ready = await c.get("/readyz")
        await app.drain()
        draining = await c.post(URL, content=b"x")
        still_alive = await c.get("/healthz")
    assert starting.status_code == not_ready.status_code == 503
    assert starting.headers["Retry-After"] == "1"
    assert starting.json() == {"error": "not_ready", "detail": "the node is starting"}
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert draining.status_code == 503
    assert draining.json() == {"error": "draining", "detail": "the node is stopping"}
    assert still_alive.status_code == 200


async def test_drain_waits_for_the_requests_in_flight() -> None:
    """drain() returns only once the request being journalled has had its answer."""
    from ._http import Gate

    gate = Gate()
    app = make_app(journal=gate)
    answers: list[int] = []
    async with client(app) as c, anyio.create_task_group() as tg:

        async def post() -> None:
            answers.append((await c.post(URL, content=b"x")).status_code)

        tg.start_soon(post)
        await gate.entered.wait()
        drained = anyio.Event()

        async def drain() -> None:
            await app.drain()
            drained.set()

        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set()
        assert app.in_flight == 1
        gate.release.set()
        await drained.wait()
        assert answers == [202]


# -- pressure ---------------------------------------------------------------------------


def pressured(capacity: int = 20) -> IngestApp:
    """An app whose route has *capacity* and the default thresholds, with no throttle."""
    policy = PressurePolicy(throttle=0.0)
    return make_app(IngestRoute(name="orders", capacity=capacity, policy=policy))


async def post_low(app: IngestApp) -> int:
    """Post one low-priority message; return the status."""
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "low"})
    return r.status_code


async def test_shed_refuses_low_priority_from_exactly_the_enter_ratio() -> None:
    """Capacity 20, shed enters at 0.95: 18 pending lets low in, 19 sheds it with 429."""
    app = pressured()
    app.set_pending({"orders": 17})
    assert await post_low(app) == 202  # 17/20 = 0.85 (degraded), then 18 pending
    assert await post_low(app) == 202  # 18/20 = 0.90, then 19
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "low"})
        normal = await c.post(URL, content=b"x")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {
        "error": "shed",
        "detail": "route 'orders' is at level shed: low priority is refused",
    }
    assert normal.status_code == 202  # only the shed priorities are refused


async def test_a_batchs_own_lines_raise_the_level_so_low_lines_stop_at_shed() -> None:
    """IN-12: each admitted line counts at once: 25 low lines on capacity 20 pass 19, then shed."""
    app = pressured()
    lines = b"".join(b'{"body": "x", "priority": "low"}\n' for _ in range(25))
    async with client(app) as c:
        r = await c.post("/v1/routes/orders/batch", content=lines)
    results = r.json()["results"]
    assert [x["status"] for x in results] == [202] * 19 + [429] * 6
    assert {x["error"] for x in results[19:]} == {"shed"}
    assert app.pending("orders") == 19


async def test_concurrent_requests_waiting_for_the_journal_count_towards_the_level() -> None:
    """IN-12: requests admitted but not yet journalled count: 25 concurrent low POSTs pass 19."""
    from ._http import Gate

    gate = Gate()
    app = make_app(
        IngestRoute(name="orders", capacity=20, policy=PressurePolicy(throttle=0.0)), journal=gate
    )
    statuses: list[int] = []
    async with client(app) as c, anyio.create_task_group() as tg:

        async def post() -> None:
            r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "low"})
            statuses.append(r.status_code)

        for _ in range(25):
            tg.start_soon(post)
        await gate.entered.wait()
        await anyio.wait_all_tasks_blocked()
        assert sorted(statuses) == [429] * 6  # shed while the 19 wait for the journal
        assert app.pending("orders") == 19
        gate.release.set()
    assert sorted(statuses) == [202] * 19 + [429] * 6
    assert app.pending("orders") == 19
    assert (await gate.store.statistics()).depth == 19


async def test_a_message_refused_after_admission_gives_its_place_back() -> None:
    """IN-12: a 400 (an over-long key) or a full journal after admission leaves the depth as it was."""
    app = make_app(IngestRoute(name="orders", capacity=20), journal=Counting(max_bytes=1))
    async with client(app) as c:
        too_long = await c.post(URL, content=b"", headers={"X-Otpy-Key": "k" * 257})
        full = await c.post(URL, content=b"xx")
    assert (too_long.status_code, full.status_code) == (400, 429)
    assert app.pending("orders") == 0


async def test_shed_is_left_only_below_its_exit_ratio() -> None:
    """Hysteresis: shed holds at 17/20 (0.85, the exit ratio) and ends at 16/20."""
    app = pressured()
    app.set_pending({"orders": 19})
    assert await post_low(app) == 429
    app.handed_over("orders", 2)
    assert app.pending("orders") == 17
    assert await post_low(app) == 429  # 0.85 is not below the exit ratio
    app.handed_over("orders", 1)
    assert await post_low(app) == 202  # 0.80: degraded, low is let in


async def test_at_capacity_every_priority_is_refused() -> None:
    """A route with capacity pending refuses critical work too: 429 route_full."""
    app = pressured(capacity=2)
    app.set_pending({"orders": 2})
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "critical"})
    assert r.status_code == 429
    assert r.json() == {
        "error": "route_full",
        "detail": "route 'orders' has 2 messages pending, its capacity",
    }


async def test_deferred_priorities_are_refused_at_degraded() -> None:
    """A priority the policy defers gets 429 deferred at degraded (an HTTP caller cannot wait)."""
    policy = PressurePolicy(throttle=0.0, defer={Priority.LOW})
    app = make_app(IngestRoute(name="orders", capacity=20, policy=policy))
    app.set_pending({"orders": 16})
    assert await post_low(app) == 202  # 0.80: warn
    assert await post_low(app) == 429  # 0.85: degraded


async def test_handed_over_lowers_the_pending_depth_never_below_zero() -> None:
    """The hook subtracts per route; an unknown route or a count past the depth is harmless."""
    app = make_app()
    app.set_pending({"orders": 3})
    app.handed_over("orders", 2)
    app.handed_over("gone", 5)
    assert app.pending("orders") == 1
    app.handed_over("orders", 4)
    assert app.pending("orders") == 0


async def test_load_pending_reads_the_journal_once() -> None:
    """At start the depths come from the journal's statistics: entries left from before count."""
    journal = MemoryJournalStore(clock=clock)
    first = make_app(journal=journal)
    async with client(first) as c:
        await c.post(URL, content=b"a")
        await c.post(URL, content=b"b")
    second = make_app(journal=journal)
    await second.load_pending()
    assert second.pending("orders") == 2


# -- batch ------------------------------------------------------------------------------


async def test_a_batch_is_one_journal_call_with_a_result_per_line() -> None:
    """Good lines are accepted together; a malformed line is refused alone, in its place."""
    journal = Counting()
    app = make_app(journal=journal)
    lines = [
        json.dumps({"body": "one", "key": "k1", "idempotency_key": "i1"}),
        "{not json",
        "",
        json.dumps({"body_base64": base64.b64encode(b"\x00\x01").decode(), "priority": "high"}),
        json.dumps({"body": "x", "colour": "red"}),
        json.dumps({"body": "one again", "idempotency_key": "i1"}),
    ]
    async with client(app) as c:
        r = await c.post(BATCH, content="\n".join(lines).encode())
    assert r.status_code == 200
    results = r.json()["results"]
    assert journal.calls == 1
    entries = await app.journal.pending(limit=10)
    assert [(e.body, e.key, e.priority) for e in entries] == [
        (b"one", "k1", Priority.NORMAL),
        (b"\x00\x01", "orders", Priority.HIGH),
    ]
    assert results[0] == {"line": 1, "status": 202, "id": entries[0].id, "duplicate": False}
    assert results[1]["line"] == 2
    assert (results[1]["status"], results[1]["error"]) == (400, "bad_json")
    assert results[2] == {"line": 4, "status": 202, "id": entries[1].id, "duplicate": False}
    assert results[3] == {
        "line": 5,
        "status": 400,
        "error": "bad_line",
        "detail": "unknown fields ['colour']; allowed: ['body', 'body_base64', 'content_type', "
        "'idempotency_key', 'key', 'priority']",
    }
    assert results[4] == {"line": 6, "status": 200, "id": entries[0].id, "duplicate": True}
    assert app.pending("orders") == 2


@pytest.mark.parametrize(
    ("line", "error", "detail"),
    [
        ('"just a string"', "bad_line", "a line must be a JSON object, got str"),
        ("{}", "bad_line", "a line has exactly one of 'body' and 'body_base64'"),
        ('{"body": 1}', "bad_line", "'body' must be a string, got int"),
        ('{"body_base64": "!!"}', "bad_line", "'body_base64' is not valid base64"),
        (
            '{"body": "x", "priority": "meh"}',
            "bad_priority",
            "X-Otpy-Priority must be low, normal, high or critical, got 'meh'",
        ),
        ('{"body": "x", "key": ""}', "bad_request", None),
    ],
)
async def test_each_malformed_line_says_why(line: str, error: str, detail: str | None) -> None:
    """Every kind of bad line is a 400 result of its own, never a 500."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(BATCH, content=line.encode())
    assert r.status_code == 200
    [result] = r.json()["results"]
    assert (result["line"], result["status"], result["error"]) == (1, 400, error)
    if detail is not None:
        assert result["detail"] == detail
    assert await stored(app) == []


async def test_a_batch_line_over_the_body_limit_is_refused_alone() -> None:
    """Each line's body is held to the route's limit; the others go in."""
    app = make_app(IngestRoute(name="orders", max_body_size=3))
    content = b'{"body": "abc"}\n{"body": "abcd"}'
    async with client(app) as c:
        r = await c.post(BATCH, content=content)
    first, second = r.json()["results"]
    assert first["status"] == 202
    assert second == {
        "line": 2,
        "status": 413,
        "error": "too_large",
        "detail": "the body is 4 bytes, over the 3 allowed",
    }


async def test_a_batch_the_journal_cannot_hold_is_429() -> None:
    """JournalFull refuses the whole batch (one journal call): 429 with Retry-After."""
    app = make_app(journal=MemoryJournalStore(max_bytes=3, clock=clock))
    async with client(app) as c:
        r = await c.post(BATCH, content=b'{"body": "ab"}\n{"body": "cd"}')
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"] == "journal_full"


async def test_a_batch_is_refused_at_capacity_line_by_line() -> None:
    """Lines fill a route up to its capacity within one batch; the rest get route_full."""
    app = make_app(IngestRoute(name="orders", capacity=2))
    async with client(app) as c:
        r = await c.post(BATCH, content=b'{"body": "a"}\n{"body": "b"}\n{"body": "c"}')
    statuses = [(x["status"], x.get("error")) for x in r.json()["results"]]
    assert statuses == [(202, None), (202, None), (429, "route_full")]


async def test_a_batch_needs_the_token_and_the_signature_too() -> None:
    """The batch endpoint checks the token and the signature over the whole body."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,)), token="t")
    body = b'{"body": "a"}'
    headers = {"Authorization": "Bearer t", **webhook_headers("msg_b", int(T0), body, [SECRET])}
    async with client(app) as c:
        no_token = await c.post(BATCH, content=body)
        unsigned = await c.post(BATCH, content=body, headers={"Authorization": "Bearer t"})
        signed = await c.post(BATCH, content=body, headers=headers)
    assert no_token.status_code == 401
    assert unsigned.json()["error"] == "bad_signature"
    assert signed.json()["results"][0]["status"] == 202


# -- telemetry --------------------------------------------------------------------------


async def test_each_accepted_message_has_a_receive_span_stored_in_its_entry() -> None:
    """``receive orders`` is a CONSUMER child of the caller's traceparent, and the entry carries it."""
    app = make_app()
    with capture_spans() as exporter:
        with get_tracer().start_as_current_span("caller") as caller:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
        async with client(app) as c:
            r = await c.post(URL, content=b"x", headers=carrier)
    [span] = [s for s in exporter.get_finished_spans() if s.name == "receive orders"]
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == caller.get_span_context().span_id
    assert span.attributes is not None
    assert span.attributes[ATTR_MESSAGING_MESSAGE_ID] == r.json()["id"]
    assert span.attributes[ATTR_INGEST_DUPLICATE] is False
    [entry] = await app.journal.pending(limit=10)
    context = span.context
    assert context is not None
    _, trace_id, span_id, _ = dict(entry.trace_context)["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")


def points(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, object], ...], int]:
    """A counter's values by sorted attributes."""
    found: dict[tuple[tuple[str, object], ...], int] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = found.get(key, 0) + int(point.value)  # type: ignore[union-attr]
    return found


async def test_accepted_duplicates_and_refusals_are_counted_by_route_and_reason() -> None:
    """The counters: accepted and duplicates by route; refusals by route and reason."""
    app = make_app(token="t")
    auth = {"Authorization": "Bearer t"}
    with capture_metrics() as reader:
        async with client(app) as c:
            await c.post(URL, content=b"x", headers={**auth, "Idempotency-Key": "a"})
            await c.post(URL, content=b"x", headers={**auth, "Idempotency-Key": "a"})
            await c.post(URL, content=b"x")
            await c.post(URL, content=b"x")
            await c.post("/v1/routes/nope/messages", content=b"x", headers=auth)
            await c.post(BATCH, content=b"{bad\n{bad", headers=auth)
        data = reader.get_metrics_data()
    route = (ATTR_INGEST_ROUTE, "orders")
    assert points(data, METRIC_INGEST_ACCEPTED) == {(route,): 1}
    assert points(data, METRIC_INGEST_DUPLICATES) == {(route,): 1}
    assert points(data, METRIC_INGEST_REFUSED) == {
        ((ATTR_INGEST_REASON, "unauthorized"), route): 2,
        ((ATTR_INGEST_REASON, "unknown_route"),): 1,
        ((ATTR_INGEST_REASON, "bad_json"), route): 2,
    }


# -- construction -----------------------------------------------------------------------


def test_a_route_given_twice_is_refused() -> None:
    """Two routes of one name: the app says which."""
    with pytest.raises(
        ValueError, match=r"^IngestApp: routes must name each route once; 'orders' is given twice"
    ):
        IngestApp(MemoryJournalStore(), [IngestRoute(name="orders"), IngestRoute(name="orders")])


def test_a_route_is_built_from_a_node_route_config() -> None:
    """IngestRoute.of reads otpy.node.RouteConfig's fields."""
    from otpy.node import PressureConfig, RouteConfig

    config = RouteConfig(
        name="orders",
        destinations=("crm",),
        priority=Priority.HIGH,
        max_body_size=99,
        tolerance=30.0,
        pressure=PressureConfig(capacity=50),
    )
    route = IngestRoute.of(config)
    assert (route.name, route.priority, route.max_body_size) == ("orders", Priority.HIGH, 99)
    assert (route.tolerance, route.capacity, route.token) == (30.0, 50, None)
    assert route.policy == config.pressure.policy()


def test_the_journal_must_be_a_journal_store() -> None:
    """A wrong journal names the argument."""
    with pytest.raises(TypeError, match="journal"):
        IngestApp(object(), [])  # type: ignore[arg-type]
