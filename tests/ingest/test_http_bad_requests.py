"""Every bad request to the HTTP ingest: a clear status and JSON error, nothing journalled, a refusal counted (IN-10..IN-12).

Each test checks the status, the ``error`` of the body, the journal's statistics
(nothing stored, or exactly the good messages) and ``otpy.ingest.refused`` by route
and reason. The slow-client tests run a real ``IngestServer`` on loopback, on real
time (Hypercorn's timers are the event loop's), and talk to it over raw sockets.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import otpy
from otpy.gateway import SigningSecret, webhook_headers
from otpy.ingest import IngestApp, IngestRoute, ingest_server_spec
from otpy.telemetry import ATTR_INGEST_REASON, ATTR_INGEST_ROUTE, METRIC_INGEST_REFUSED
from otpy.testing import capture_metrics

from ._http import T0, Counting, Gate, client, make_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import SocketStream
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

URL = "/v1/routes/orders/messages"
BATCH = "/v1/routes/orders/batch"
PATHS = [URL, BATCH]
SECRET = SigningSecret("whsec_" + base64.b64encode(b"k" * 32).decode())
OTHER = SigningSecret("whsec_" + base64.b64encode(b"o" * 32).decode())
GOOD_LINE = b'{"body": "ok"}'

Refusals = dict[tuple[str | None, str], int]


def refusals(reader: InMemoryMetricReader) -> Refusals:
    """``otpy.ingest.refused`` since the last read, by ``(route, reason)``."""
    found: Refusals = {}
    data = reader.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != METRIC_INGEST_REFUSED:
                    continue
                for point in metric.data.data_points:
                    labels = dict(point.attributes or {})
                    route = labels.get(ATTR_INGEST_ROUTE)
                    key = (None if route is None else str(route), str(labels[ATTR_INGEST_REASON]))
                    found[key] = found.get(key, 0) + int(point.value)  # type: ignore[union-attr]
    return found


async def depth(app: IngestApp) -> int:
    """The journal's pending depth, from its statistics."""
    return (await app.journal.statistics()).depth


async def bodies(app: IngestApp) -> list[bytes]:
    """The bodies pending in the journal, oldest first."""
    return [e.body for e in await app.journal.pending(limit=100)]


def error(response: httpx.Response) -> tuple[int, str]:
    """A refusal's status and the ``error`` of its JSON body (which has exactly error and detail)."""
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return response.status_code, body["error"]


def content_for(path: str) -> bytes:
    """A valid request body for *path*: a raw body, or one batch line."""
    return GOOD_LINE if path == BATCH else b"ok"


class Chunks(httpx.AsyncByteStream):
    """A request body of *n* chunks of 10 bytes; counts the chunks the app pulled."""

    def __init__(self, n: int = 100) -> None:
        self.n = n
        self.pulled = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        await anyio.lowlevel.checkpoint()
        if self.pulled == self.n:
            raise StopAsyncIteration
        self.pulled += 1
        return b"0123456789"


def streamed(path: str, body: Chunks, headers: dict[str, str] | None = None) -> httpx.Request:
    """A POST to *path* whose body is *body*, pulled chunk by chunk."""
    return httpx.Request("POST", f"http://ingest{path}", headers=headers, stream=body)


# -- too large --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_declared_length_over_the_limit_is_413_before_any_of_the_body_is_read(
    path: str,
) -> None:
    """Content-Length past the limit (the route's, or the batch's): 413 with no chunk pulled."""
    app = make_app(IngestRoute(name="orders", max_body_size=25), max_batch_size=25)
    body = Chunks()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.send(streamed(path, body, {"Content-Length": "1000"}))
        assert error(r) == (413, "too_large")
        assert r.json()["detail"] == "the body is 1000 bytes, over the 25 allowed"
        assert body.pulled == 0
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "too_large"): 1}


async def test_a_batch_without_a_length_stops_being_read_past_the_batch_limit() -> None:
    """A chunked batch is dropped at the chunk that passes max_batch_size; nothing is journalled."""
    journal = Counting()
    app = make_app(journal=journal, max_batch_size=25)
    body = Chunks()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.send(streamed(BATCH, body))
        assert error(r) == (413, "too_large")
        assert r.json()["detail"] == "the body is over the 25 bytes allowed"
        assert body.pulled == 3
        assert journal.calls == 0
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "too_large"): 1}


async def test_a_batch_of_exactly_the_batch_limit_is_accepted() -> None:
    """The twin: 25 bytes under max_batch_size=25 go in."""
    app = make_app(max_batch_size=25)
    line = b'{"body": "0123456789abc"}'
    assert len(line) == 25
    async with client(app) as c:
        r = await c.post(BATCH, content=line)
    assert [x["status"] for x in r.json()["results"]] == [202]
    assert await bodies(app) == [b"0123456789abc"]


async def test_the_batch_limit_is_the_batchs_not_the_routes_body_limit() -> None:
    """A batch larger than max_body_size is fine as long as each line's body is within it."""
    app = make_app(IngestRoute(name="orders", max_body_size=5))
    content = b"\n".join([b'{"body": "abcde"}'] * 4)
    async with client(app) as c:
        r = await c.post(BATCH, content=content)
    assert [x["status"] for x in r.json()["results"]] == [202] * 4
    assert await depth(app) == 4


# -- routes and methods -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/routes/nope/messages", "/v1/routes/nope/batch"])
async def test_an_unknown_route_is_404_before_its_body_is_read(path: str) -> None:
    """IN-15: No such route: 404 unknown_route, counted without a route label, the body never pulled."""
    app = make_app()
    body = Chunks()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.send(streamed(path, body))
        assert r.status_code == 404
        assert r.json() == {"error": "unknown_route", "detail": "no route 'nope'"}
        assert body.pulled == 0
        assert await depth(app) == 0
        assert refusals(reader) == {(None, "unknown_route"): 1}


@pytest.mark.parametrize("path", ["/", "/v1/routes/orders", "/v1/routes/orders/other", "/v2"])
async def test_an_unknown_path_is_404_not_found_and_counted(path: str) -> None:
    """IN-15: Any other path: 404 not_found as JSON, counted without a route label."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(path, content=b"x")
        assert r.status_code == 404
        assert r.json() == {"error": "not_found", "detail": "Not Found"}
        assert await depth(app) == 0
        assert refusals(reader) == {(None, "not_found"): 1}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_a_wrong_method_is_405_with_allow(path: str, method: str) -> None:
    """IN-15: Only POST: any other method is 405 method_not_allowed, Allow: POST, counted by route."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.request(method, path, content=b"x" if method != "GET" else None)
        assert r.status_code == 405
        assert r.headers["Allow"] == "POST"
        assert r.json() == {"error": "method_not_allowed", "detail": "Method Not Allowed"}
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "method_not_allowed"): 1}


async def test_a_wrong_method_on_an_unknown_route_is_counted_without_its_name() -> None:
    """IN-15: A 405 on a route that does not exist has no route label (no series per name tried)."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.get("/v1/routes/whatever/batch")
            health = await c.post("/healthz")
        assert (r.status_code, health.status_code) == (405, 405)
        assert refusals(reader) == {(None, "method_not_allowed"): 2}


# -- tokens -----------------------------------------------------------------------------

REQUIRED = "Authorization: Bearer <token> is required"
NOT_VALID = "the bearer token is not valid for this route"
# test_http_app covers a missing, Basic and wrong token on /messages.
AUTH_CASES = [
    (BATCH, None, REQUIRED),
    (BATCH, "Basic czNjcmV0", REQUIRED),
    (BATCH, "Bearer wrong", NOT_VALID),
    (BATCH, "Token s3cret", REQUIRED),
    *[(path, "Bearer", REQUIRED) for path in PATHS],
    *[(path, "Bearer ", REQUIRED) for path in PATHS],
    *[(path, "Bearer    ", NOT_VALID) for path in PATHS],
    *[(path, "bearer s3cret-not", NOT_VALID) for path in PATHS],
    *[(path, "s3cret", REQUIRED) for path in PATHS],
]


@pytest.mark.parametrize(("path", "authorization", "detail"), AUTH_CASES)
async def test_a_missing_wrong_or_empty_token_is_401_before_the_body_is_read(
    path: str, authorization: str | None, detail: str
) -> None:
    """With the node's token set, a request without it is 401 unauthorized; its body is never pulled."""
    app = make_app(token="s3cret")
    body = Chunks()
    headers = {} if authorization is None else {"Authorization": authorization}
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.send(streamed(path, body, headers))
        assert r.status_code == 401
        assert r.json() == {"error": "unauthorized", "detail": detail}
        assert body.pulled == 0
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "unauthorized"): 1}


@pytest.mark.parametrize("path", PATHS)
async def test_the_scheme_is_case_insensitive_and_the_right_token_passes(path: str) -> None:
    """The twin: ``bearer s3cret`` (any case of the scheme) is let in."""
    app = make_app(token="s3cret")
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(
                path, content=content_for(path), headers={"Authorization": "bEaReR s3cret"}
            )
        assert r.status_code == (200 if path == BATCH else 202)
        assert await depth(app) == 1
        assert refusals(reader) == {}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("authorization", "detail"),
    [(None, REQUIRED), ("Bearer node-token", NOT_VALID), ("Bearer other-route", NOT_VALID)],
)
async def test_a_routes_own_token_is_the_only_one_it_takes(
    path: str, authorization: str | None, detail: str
) -> None:
    """A route with its own token refuses the node's token, and another route's: 401."""
    app = make_app(
        IngestRoute(name="orders", token="orders-token"),
        IngestRoute(name="other", token="other-route"),
        token="node-token",
    )
    headers = {} if authorization is None else {"Authorization": authorization}
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(path, content=content_for(path), headers=headers)
            good = await c.post(
                path, content=content_for(path), headers={"Authorization": "Bearer orders-token"}
            )
        assert r.status_code == 401
        assert r.json() == {"error": "unauthorized", "detail": detail}
        assert good.status_code == (200 if path == BATCH else 202)
        assert await depth(app) == 1
        assert refusals(reader) == {("orders", "unauthorized"): 1}


@pytest.mark.parametrize("path", PATHS)
async def test_a_route_token_without_a_node_token_is_still_required(path: str) -> None:
    """Only the route has a token: a request without it is 401, on that route only."""
    app = make_app(IngestRoute(name="orders", token="t"), IngestRoute(name="open"))
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(path, content=content_for(path))
            other = await c.post(path.replace("orders", "open"), content=content_for(path))
        assert error(r) == (401, "unauthorized")
        assert other.status_code == (200 if path == BATCH else 202)
        assert (await app.journal.statistics()).routes.keys() == {"open"}
        assert refusals(reader) == {("orders", "unauthorized"): 1}


# -- signatures -------------------------------------------------------------------------


def signed(body: bytes, **change: str | None) -> dict[str, str]:
    """Standard Webhooks headers for *body* signed with SECRET at T0, with *change* applied.

    A keyword is a header (``webhook_id`` for ``webhook-id``...): a value replaces
    it, ``None`` leaves it out.
    """
    headers = webhook_headers("msg_1", int(T0), body, [SECRET])
    for name, value in change.items():
        header = name.replace("_", "-")
        if value is None:
            del headers[header]
        else:
            headers[header] = value
    return headers


def other_secret(body: bytes) -> dict[str, str]:
    """Headers signed with a secret the route does not have."""
    return webhook_headers("msg_1", int(T0), body, [OTHER])


def at(stamp: int) -> Callable[[bytes], dict[str, str]]:
    """Headers correctly signed, with timestamp *stamp*."""
    return lambda body: webhook_headers("msg_1", stamp, body, [SECRET])


SIGNATURE_CASES: list[tuple[str, Callable[[bytes], dict[str, str]], str]] = [
    ("wrong secret", other_secret, "no webhook-signature v1 entry matches a configured secret"),
    (
        "too old for the route",
        at(int(T0) - 11),
        "webhook-timestamp is 11s in the past, more than the 10s allowed",
    ),
    (
        "too new for the route",
        at(int(T0) + 11),
        "webhook-timestamp is 11s in the future, more than the 10s allowed",
    ),
    ("no webhook-id", lambda b: signed(b, webhook_id=None), "webhook-id header is missing"),
    (
        "no timestamp",
        lambda b: signed(b, webhook_timestamp=None),
        "webhook-timestamp header is missing",
    ),
    (
        "no signature",
        lambda b: signed(b, webhook_signature=None),
        "webhook-signature header is missing",
    ),
    (
        "a signature without v1",
        lambda b: signed(b, webhook_signature="garbage"),
        "webhook-signature header has no v1 entry",
    ),
    (
        "a v1 entry that is not base64",
        lambda b: signed(b, webhook_signature="v1,!!!"),
        "no webhook-signature v1 entry matches a configured secret",
    ),
    (
        "a timestamp that is not a number",
        lambda b: signed(b, webhook_timestamp="soon"),
        "webhook-timestamp header is not integer Unix seconds",
    ),
    (
        "an id with a dot",
        lambda b: signed(b, webhook_id="msg.1"),
        "webhook-id header must not contain '.'",
    ),
    ("an empty id", lambda b: signed(b, webhook_id=""), "webhook-id header must not be empty"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("headers_for", "detail"),
    [pytest.param(h, d, id=name) for name, h, d in SIGNATURE_CASES],
)
async def test_a_bad_signature_is_401_and_stores_nothing(
    path: str, headers_for: Callable[[bytes], dict[str, str]], detail: str
) -> None:
    """A signature that does not verify (secret, tolerance, headers): 401 bad_signature."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,), tolerance=10.0))
    body = content_for(path)
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(path, content=body, headers=headers_for(body))
        assert r.status_code == 401
        assert r.json() == {
            "error": "bad_signature",
            "detail": f"webhook signature rejected: {detail}",
        }
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "bad_signature"): 1}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("skew", [-10, 10])
async def test_a_timestamp_exactly_the_tolerance_away_passes(path: str, skew: int) -> None:
    """The twin: exactly the route's tolerance either way verifies."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,), tolerance=10.0))
    body = content_for(path)
    async with client(app) as c:
        r = await c.post(path, content=body, headers=at(int(T0) + skew)(body))
    assert r.status_code == (200 if path == BATCH else 202)
    assert await depth(app) == 1


async def test_a_signature_is_over_the_whole_batch_not_a_line() -> None:
    """A batch signed over its first line only: 401 for the whole request, no line stored."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,)))
    first = b'{"body": "a"}'
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(BATCH, content=first + b'\n{"body": "b"}', headers=signed(first))
        assert error(r) == (401, "bad_signature")
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "bad_signature"): 1}


# -- batch lines ------------------------------------------------------------------------


async def test_a_mixed_batch_stores_its_good_lines_exactly_once() -> None:
    """Good lines are journalled in one call, bad ones refused in place; a retry stores nothing more."""
    journal = Counting()
    app = make_app(IngestRoute(name="orders", max_body_size=5), journal=journal)
    lines = [
        b'{"body": "a", "idempotency_key": "i-a"}',  # 1
        b"{not json",  # 2
        b"",  # 3: blank, skipped
        b'{"body_base64": "YmI=", "idempotency_key": "i-b"}',  # 4
        b"   \t",  # 5: blank, skipped
        b'{"body": "toolong"}',  # 6: over max_body_size
        b"[1, 2]",  # 7
        b'{"body": "c", "priority": "urgent", "idempotency_key": "i-c"}',  # 8
        b'{"body": "d", "idempotency_key": "i-d"}',  # 9
    ]
    content = b"\r\n".join(lines) + b"\r\n"
    with capture_metrics() as reader:
        async with client(app) as c:
            first = await c.post(BATCH, content=content)
            again = await c.post(BATCH, content=content)
        assert first.status_code == again.status_code == 200
        results = first.json()["results"]
        assert [(x["line"], x["status"], x.get("error")) for x in results] == [
            (1, 202, None),
            (2, 400, "bad_json"),
            (4, 202, None),
            (6, 413, "too_large"),
            (7, 400, "bad_line"),
            (8, 400, "bad_priority"),
            (9, 202, None),
        ]
        assert journal.calls == 2
        assert await bodies(app) == [b"a", b"bb", b"d"]
        stats = await app.journal.statistics()
        assert (stats.depth, stats.dedup_records) == (3, 3)
        assert app.pending("orders") == 3
        ids = [x["id"] for x in results if x["status"] == 202]
        assert [
            (x["status"], x.get("id"), x.get("duplicate")) for x in again.json()["results"]
        ] == [
            (200, ids[0], True),
            (400, None, None),
            (200, ids[1], True),
            (413, None, None),
            (400, None, None),
            (400, None, None),
            (200, ids[2], True),
        ]
        assert refusals(reader) == {
            ("orders", "bad_json"): 2,
            ("orders", "too_large"): 2,
            ("orders", "bad_line"): 2,
            ("orders", "bad_priority"): 2,
        }


@pytest.mark.parametrize(
    ("line", "error_", "detail"),
    [
        pytest.param(b"[1]", "bad_line", "a line must be a JSON object, got list", id="list"),
        pytest.param(b"null", "bad_line", "a line must be a JSON object, got NoneType", id="null"),
        pytest.param(b"42", "bad_line", "a line must be a JSON object, got int", id="number"),
        pytest.param(
            b'{"key": "k"}',
            "bad_line",
            "a line has exactly one of 'body' and 'body_base64'",
            id="no body",
        ),
        pytest.param(
            b'{"body": "a", "body_base64": "YQ=="}',
            "bad_line",
            "a line has exactly one of 'body' and 'body_base64'",
            id="both bodies",
        ),
        pytest.param(
            b'{"body": null}', "bad_line", "'body' must be a string, got NoneType", id="null body"
        ),
        pytest.param(
            b'{"body_base64": 7}',
            "bad_line",
            "'body_base64' must be a string, got int",
            id="b64 int",
        ),
        pytest.param(
            b'{"body_base64": "AAE"}', "bad_line", "'body_base64' is not valid base64", id="padding"
        ),
        pytest.param(
            b'{"body": "x", "key": 1}', "bad_line", "'key' must be a string, got int", id="key int"
        ),
        pytest.param(
            b'{"body": "x", "idempotency_key": ["a"]}',
            "bad_line",
            "'idempotency_key' must be a string, got list",
            id="idempotency key list",
        ),
        pytest.param(
            b'{"body": "x", "priority": 3}',
            "bad_line",
            "'priority' must be a string, got int",
            id="priority int",
        ),
        pytest.param(
            b'{"body": "x", "content_type": false}',
            "bad_line",
            "'content_type' must be a string, got bool",
            id="content type bool",
        ),
        pytest.param(
            b'{"body": "x", "priority": ""}',
            "bad_priority",
            "X-Otpy-Priority must be low, normal, high or critical, got ''",
            id="empty priority",
        ),
        pytest.param(
            b'{"body": "\\ud800"}', "bad_line", "'body' has a lone surrogate", id="surrogate body"
        ),
        pytest.param(
            b'{"body": "x", "key": "\\ud800"}',
            "bad_request",
            "JournalEntry: key must be valid text, got '\\ud800', which has a lone surrogate "
            "UTF-8 cannot encode",
            id="surrogate key",
        ),
        pytest.param(
            b'{"body": "x", "content_type": ""}',
            "bad_request",
            "JournalEntry: content_type must not be empty",
            id="empty content type",
        ),
        pytest.param(b'{"body": "\xff"}', "bad_json", None, id="not utf-8"),
        pytest.param(b"[" * 100_000, "bad_json", None, id="nested too deep"),
        pytest.param(b'{"body": "x"} {"body": "y"}', "bad_json", None, id="two objects"),
    ],
)
async def test_a_malformed_line_is_a_400_result_and_nothing_is_journalled(
    line: bytes, error_: str, detail: str | None
) -> None:
    """Each kind of bad line is refused alone (never a 500), counted, and no journal call is made."""
    journal = Counting()
    app = make_app(journal=journal)
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(BATCH, content=line)
        assert r.status_code == 200
        [result] = r.json()["results"]
        assert set(result) == {"line", "status", "error", "detail"}
        assert (result["line"], result["status"], result["error"]) == (1, 400, error_)
        if detail is None:
            assert result["detail"].startswith("the line is not JSON: ")
        else:
            assert result["detail"] == detail
        assert journal.calls == 0
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", error_): 1}


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n \n\t\n", b"   "])
async def test_an_empty_batch_is_200_with_no_results(content: bytes) -> None:
    """No non-blank line: 200 with an empty list (one result per non-empty line), no journal call."""
    journal = Counting()
    app = make_app(journal=journal)
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(BATCH, content=content)
        assert r.status_code == 200
        assert r.json() == {"results": []}
        assert journal.calls == 0
        assert await depth(app) == 0
        assert refusals(reader) == {}


async def test_line_numbers_count_the_blank_lines() -> None:
    """A result's line is its place in the body, blank lines included."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(BATCH, content=b'\n\n{"body": "a"}\n\n{bad')
    assert [(x["line"], x["status"]) for x in r.json()["results"]] == [(3, 202), (5, 400)]
    assert await bodies(app) == [b"a"]


# -- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "normal,high", "0", "norm al"])
async def test_a_bad_priority_header_value_is_400(value: str) -> None:
    """X-Otpy-Priority empty, listed twice or not a name: 400 bad_priority, nothing stored."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": value})
        assert r.status_code == 400
        assert r.json() == {
            "error": "bad_priority",
            "detail": f"X-Otpy-Priority must be low, normal, high or critical, got {value!r}",
        }
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "bad_priority"): 1}


async def test_a_long_bad_priority_is_cut_short_in_the_detail() -> None:
    """The detail quotes at most 40 characters of the value sent."""
    app = make_app()
    async with client(app) as c:
        r = await c.post(URL, content=b"x", headers={"X-Otpy-Priority": "h" * 5000})
    assert error(r) == (400, "bad_priority")
    assert r.json()["detail"].endswith(f"got {'h' * 40!r}")
    assert await depth(app) == 0


async def test_an_empty_ordering_key_header_is_400() -> None:
    """``X-Otpy-Key:`` with no value: 400 bad_request (the key must not be empty)."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(URL, content=b"x", headers={"X-Otpy-Key": ""})
        assert r.status_code == 400
        assert r.json() == {
            "error": "bad_request",
            "detail": "JournalEntry: key must not be empty",
        }
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "bad_request"): 1}


@pytest.mark.parametrize(
    ("header", "what"),
    [
        ("Idempotency-Key", "idempotency key"),
        ("webhook-id", "idempotency key"),  # the idempotency key when there is none
        ("X-Otpy-Key", "ordering key"),
    ],
)
async def test_a_key_header_over_256_characters_is_400(header: str, what: str) -> None:
    """IN-15: An ordering or idempotency key is at most 256 characters: 257 is 400, 256 is accepted."""
    app = make_app()
    with capture_metrics() as reader:
        async with client(app) as c:
            over = await c.post(URL, content=b"x", headers={header: "k" * 257})
            at_limit = await c.post(URL, content=b"y", headers={header: "k" * 256})
        assert over.status_code == 400
        assert over.json() == {
            "error": "bad_request",
            "detail": f"the {what} is 257 characters, over the 256 allowed",
        }
        assert at_limit.status_code == 202
        assert await bodies(app) == [b"y"]
        assert refusals(reader) == {("orders", "bad_request"): 1}


async def test_a_signed_webhook_id_over_256_characters_is_400() -> None:
    """IN-15: A valid signature does not let an over-long webhook-id into the dedup table."""
    app = make_app(IngestRoute(name="orders", signing_secrets=(SECRET,)))
    body = b"x"
    headers = webhook_headers("m" * 257, int(T0), body, [SECRET])
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(URL, content=body, headers=headers)
        assert r.status_code == 400
        assert r.json() == {
            "error": "bad_request",
            "detail": "the idempotency key is 257 characters, over the 256 allowed",
        }
        stats = await app.journal.statistics()
        assert (stats.depth, stats.dedup_records) == (0, 0)
        assert refusals(reader) == {("orders", "bad_request"): 1}


@pytest.mark.parametrize(
    ("field", "what"), [("key", "ordering"), ("idempotency_key", "idempotency")]
)
async def test_a_batch_lines_key_over_256_characters_is_refused_alone(
    field: str, what: str
) -> None:
    """IN-15: The same bound holds for a batch line's keys; the other lines go in."""
    app = make_app()
    lines = [
        json.dumps({"body": "a", field: "k" * 257}),
        json.dumps({"body": "b", field: "k" * 256}),
    ]
    with capture_metrics() as reader:
        async with client(app) as c:
            r = await c.post(BATCH, content="\n".join(lines).encode())
        bad, good = r.json()["results"]
        assert bad == {
            "line": 1,
            "status": 400,
            "error": "bad_request",
            "detail": f"the {what} key is 257 characters, over the 256 allowed",
        }
        assert good["status"] == 202
        stats = await app.journal.statistics()
        assert (stats.depth, stats.dedup_records) == (1, 1 if field == "idempotency_key" else 0)
        assert refusals(reader) == {("orders", "bad_request"): 1}


# -- slow clients, against a real server ------------------------------------------------

READ_TIMEOUT = 1.0


@pytest.fixture
async def served(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[IngestApp, tuple[str, int]]]:
    """An app served by IngestServer on 127.0.0.1, a free port; ``read_timeout`` from the param."""
    read_timeout: float = getattr(request, "param", 30.0)
    app = make_app(IngestRoute(name="orders", max_body_size=25), max_batch_size=25, ready=False)
    spec = ingest_server_spec(app, port=0, read_timeout=read_timeout)
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(otpy.SupervisorSpec(children=[spec])),
    ):
        ref = node.whereis("ingest")
        assert ref is not None
        host, port = await ref.call("address")
        yield app, (host, port)


def head(path: str, **headers: str) -> bytes:
    """An HTTP/1.1 POST's request line and headers (names given with ``_`` for ``-``)."""
    lines = [f"POST {path} HTTP/1.1", "Host: ingest"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(stream: SocketStream) -> tuple[int, Any]:
    """Read one response with a Content-Length: its status and its JSON body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    top, _, rest = data.partition(b"\r\n\r\n")
    status = int(top.split(b" ")[1])
    [length] = [
        int(line.partition(b":")[2])
        for line in top.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    ]
    while len(rest) < length:
        rest += await stream.receive()
    return status, json.loads(rest[:length])


async def closed(stream: SocketStream) -> bool:
    """Whether the server has closed the connection (end of stream, or reset)."""
    try:
        await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return True
    return False


async def wait_in_flight(app: IngestApp, n: int) -> None:
    """Wait until the app handles exactly *n* message requests."""
    while app.in_flight != n:
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_declared_length_over_the_limit_is_answered_before_the_body_is_sent(
    served: tuple[IngestApp, tuple[str, int]], path: str
) -> None:
    """Over a socket: 413 comes back to the headers alone, then the server closes the connection."""
    app, address = served
    with capture_metrics() as reader, anyio.fail_after(10):
        async with await anyio.connect_tcp(*address) as s:
            await s.send(head(path, Content_Length="1000000"))
            assert await read_response(s) == (
                413,
                {"error": "too_large", "detail": "the body is 1000000 bytes, over the 25 allowed"},
            )
            assert await closed(s)
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "too_large"): 1}


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_chunked_body_is_refused_at_the_chunk_past_the_limit(
    served: tuple[IngestApp, tuple[str, int]], path: str
) -> None:
    """Over a socket: 30 chunked bytes of a body that never ends get 413, and the connection closes."""
    app, address = served
    with capture_metrics() as reader, anyio.fail_after(10):
        async with await anyio.connect_tcp(*address) as s:
            await s.send(head(path, Transfer_Encoding="chunked"))
            for _ in range(3):
                await s.send(b"a\r\n0123456789\r\n")
            assert await read_response(s) == (
                413,
                {"error": "too_large", "detail": "the body is over the 25 bytes allowed"},
            )
            assert await closed(s)
        assert await depth(app) == 0
        assert refusals(reader) == {("orders", "too_large"): 1}


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_trickled_body_holds_neither_the_journal_nor_other_clients(
    served: tuple[IngestApp, tuple[str, int]], path: str
) -> None:
    """While one client sends its body a byte at a time, another's POST gets its 202; then both are in."""
    app, (host, port) = served
    body = b'{"body": "slow"}' if path == BATCH else b"slow"
    with capture_metrics() as reader, anyio.fail_after(10):
        async with await anyio.connect_tcp(host, port) as slow:
            await slow.send(head(path, Content_Length=str(len(body))) + body[:1])
            await wait_in_flight(app, 1)  # its request is in the app, reading the body
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as other:
                r = await other.post(URL, content=b"fast")
            assert r.status_code == 202
            assert await bodies(app) == [b"fast"]
            assert app.in_flight == 1
            for byte in body[1:]:
                await slow.send(bytes([byte]))
            status, answer = await read_response(slow)
        assert await bodies(app) == [b"fast", b"slow"]
        slow_id = (await app.journal.pending(limit=10))[1].id
        if path == BATCH:
            assert (status, answer) == (
                200,
                {"results": [{"line": 1, "status": 202, "id": slow_id, "duplicate": False}]},
            )
        else:
            assert (status, answer) == (202, {"id": slow_id, "duplicate": False})
        assert refusals(reader) == {}


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("served", [READ_TIMEOUT], indirect=True)
@pytest.mark.parametrize("path", PATHS)
async def test_a_client_that_stops_sending_is_cut_off_after_the_read_timeout(
    served: tuple[IngestApp, tuple[str, int]], path: str
) -> None:
    """IN-15: A body stalled mid-way: others still get 202; after read_timeout the request is refused and closed."""
    app, (host, port) = served
    with capture_metrics() as reader, anyio.fail_after(10):
        async with await anyio.connect_tcp(host, port) as stalled:
            await stalled.send(head(path, Content_Length="20") + b'{"body"')
            sent = anyio.current_time()
            await wait_in_flight(app, 1)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as other:
                r = await other.post(URL, content=b"fast")
            assert r.status_code == 202
            assert await read_response(stalled) == (
                400,
                {"error": "disconnected", "detail": "the client went away mid-body"},
            )
            assert anyio.current_time() - sent >= READ_TIMEOUT - 0.05
            assert await closed(stalled)
        assert app.in_flight == 0
        assert await bodies(app) == [b"fast"]
        assert refusals(reader) == {("orders", "disconnected"): 1}


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_commit_slower_than_the_read_timeout_still_gets_its_answer() -> None:
    """IN-15: The read timeout cuts off a silent client, not one waiting for its 202."""
    gate = Gate()
    app = make_app(journal=gate, ready=False)
    spec = ingest_server_spec(app, port=0, read_timeout=0.25)
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(otpy.SupervisorSpec(children=[spec])),
        anyio.create_task_group() as tg,
    ):
        ref = node.whereis("ingest")
        assert ref is not None
        host, port = await ref.call("address")

        async def slow_commit() -> None:
            await gate.entered.wait()
            await anyio.sleep(0.75)  # the subject: three read timeouts pass mid-commit
            gate.release.set()

        tg.start_soon(slow_commit)
        with anyio.fail_after(10):
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as c:
                r = await c.post(URL, content=b"x")
        [entry] = await gate.pending(limit=10)
        assert (r.status_code, r.json()) == (202, {"id": entry.id, "duplicate": False})


def test_the_spec_checks_its_read_timeout() -> None:
    """read_timeout must be a number of seconds > 0; the message names it."""
    with pytest.raises(
        ValueError, match=r"^ingest_server_spec: read_timeout must be a finite number > 0"
    ):
        ingest_server_spec(make_app(), read_timeout=0)
    spec = ingest_server_spec(make_app(), read_timeout=2.5)
    assert spec.args[-1] == 2.5
