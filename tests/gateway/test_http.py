"""An HTTP destination makes one attempt and says what came of it, over real loopback HTTP (GW-4, GW-6, GW-10).

The loopback tests run on asyncio and on trio with real clocks (a mock clock would
jump past the deadline while the sockets work); the rate-limit tests use httpx's
mock transport on the virtual clock, where time is exact.
"""

from __future__ import annotations

import datetime
import email.utils
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from otpy import BulkheadFull, InvalidArgument, InvalidArgumentType
from otpy.gateway import Outcome, SigningSecret, verify
from otpy.gateway._http import DeliveryResult, HttpDestination, OutboundRequest
from otpy.testing import virtual_time

from ._sink import Reply, free_port, running_sink

REAL_CLOCK = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", [virtual_time()])
NOW = 1_700_000_000.0
SECRET = SigningSecret(b"k" * 32)


def request(**changes: Any) -> OutboundRequest:
    fields: dict[str, Any] = {
        "message_id": "msg_1",
        "idempotency_key": "idem-1",
        "body": b'{"order": 7}',
    }
    fields.update(changes)
    return OutboundRequest(**fields)


async def deliver(reply: Reply, **options: Any) -> DeliveryResult:
    async with running_sink(reply) as sink, HttpDestination("orders", sink.url, **options) as dest:
        return await dest.send(request(), now=NOW)


# --- statuses -------------------------------------------------------------------------


@REAL_CLOCK
@pytest.mark.parametrize("status", [200, 201, 204, 299])
async def test_a_2xx_is_delivered(status: int) -> None:
    result = await deliver(Reply(status=status, body=b"" if status == 204 else b"ok"))
    assert result.outcome is Outcome.SUCCESS
    assert result.status == status
    assert result.error_type is None
    assert result.error is None
    assert result.duration >= 0


@REAL_CLOCK
@pytest.mark.parametrize("status", [500, 502, 503, 599])
async def test_a_5xx_is_retryable(status: int) -> None:
    result = await deliver(Reply(status=status, body=b"down"))
    assert (result.outcome, result.status, result.retry_after) == (Outcome.RETRYABLE, status, None)
    assert result.response_excerpt == b"down"


@REAL_CLOCK
@pytest.mark.parametrize("status", [408, 429, 503])
async def test_retry_after_in_seconds_is_parsed(status: int) -> None:
    result = await deliver(Reply(status=status, headers=(("Retry-After", "120"),)))
    assert (result.outcome, result.retry_after) == (Outcome.RETRYABLE, 120.0)


@REAL_CLOCK
async def test_retry_after_as_an_http_date_is_measured_from_now() -> None:
    when = email.utils.format_datetime(
        datetime.datetime.fromtimestamp(NOW + 90, tz=datetime.UTC), usegmt=True
    )
    result = await deliver(Reply(status=429, headers=(("Retry-After", when),)))
    assert (result.outcome, result.retry_after) == (Outcome.RETRYABLE, 90.0)


@REAL_CLOCK
async def test_an_unusable_retry_after_is_none() -> None:
    result = await deliver(Reply(status=429, headers=(("Retry-After", "soon"),)))
    assert (result.outcome, result.retry_after) == (Outcome.RETRYABLE, None)


@REAL_CLOCK
async def test_410_means_gone() -> None:
    assert (await deliver(Reply(status=410))).outcome is Outcome.GONE


@REAL_CLOCK
@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_terminal(status: int) -> None:
    assert (await deliver(Reply(status=status))).outcome is Outcome.TERMINAL


@REAL_CLOCK
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_terminal_and_not_followed(status: int) -> None:
    async with running_sink(Reply(status=status, headers=(("Location", "/elsewhere"),))) as sink:
        async with HttpDestination("orders", sink.url) as dest:
            result = await dest.send(request(), now=NOW)
        assert (result.outcome, result.status) == (Outcome.TERMINAL, status)
        assert [r.path for r in sink.received] == ["/hook"]


# --- failures without an answer ------------------------------------------------------


@REAL_CLOCK
async def test_a_refused_connection_is_retryable() -> None:
    port = await free_port()
    async with HttpDestination("orders", f"http://127.0.0.1:{port}/hook") as dest:
        result = await dest.send(request(), now=NOW)
    assert result.outcome is Outcome.RETRYABLE
    assert (result.status, result.error_type) == (None, "ConnectError")
    assert result.error


@REAL_CLOCK
async def test_a_connection_reset_mid_response_is_retryable() -> None:
    result = await deliver(Reply(status=200, body=b"x" * 1000, reset_after=10))
    assert result.outcome is Outcome.RETRYABLE
    assert result.status is None
    assert result.error_type in {"ReadError", "RemoteProtocolError"}


@REAL_CLOCK
async def test_a_connection_closed_without_an_answer_is_retryable() -> None:
    result = await deliver(Reply(close=True))
    assert result.outcome is Outcome.RETRYABLE
    assert result.error_type in {"ReadError", "RemoteProtocolError"}


@REAL_CLOCK
async def test_the_deadline_cancels_a_hung_request() -> None:
    never = anyio.Event()
    async with running_sink(Reply(hang=never)) as sink:
        async with HttpDestination("orders", sink.url, timeout=0.2) as dest:
            result = await dest.send(request(), now=NOW)
        assert len(sink.received) == 1  # it was sent; the answer never came
    assert result.outcome is Outcome.RETRYABLE
    assert (result.status, result.error_type) == (None, "TimeoutError")
    assert result.error == "no complete response within 0.2s"


@REAL_CLOCK
async def test_cancellation_passes_through() -> None:
    never = anyio.Event()
    async with running_sink(Reply(hang=never)) as sink, HttpDestination("orders", sink.url) as dest:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def cancel_when_sent() -> None:
                    await sink.arrived.wait()
                    scope.cancel()

                group.start_soon(cancel_when_sent)
                await dest.send(request(), now=NOW)
                pytest.fail("send returned after being cancelled")
        assert scope.cancelled_caught
        assert dest.bulkhead.statistics().in_use == 0


# --- what a request carries --------------------------------------------------------


@REAL_CLOCK
async def test_a_request_carries_its_headers_and_a_signature_verify_accepts() -> None:
    old = SigningSecret(b"o" * 32)
    async with (
        running_sink(Reply()) as sink,
        HttpDestination(
            "orders",
            sink.url,
            headers={"Authorization": "Bearer abcdefgh", "X-Team": "billing"},
            signing_secrets=[SECRET, old],
        ) as dest,
    ):
        outbound = request(
            content_type="application/cloudevents+json", headers=(("X-Trace", "t1"),)
        )
        result = await dest.send(outbound, now=NOW + 0.9)
    assert result.outcome is Outcome.SUCCESS
    [seen] = sink.received
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook", b'{"order": 7}')
    assert seen.headers["idempotency-key"] == "idem-1"
    assert seen.headers["webhook-id"] == "msg_1"
    assert seen.headers["webhook-timestamp"] == str(int(NOW))
    assert seen.headers["content-type"] == "application/cloudevents+json"
    assert seen.headers["authorization"] == "Bearer abcdefgh"
    assert seen.headers["x-team"] == "billing"
    assert seen.headers["x-trace"] == "t1"
    assert len(seen.headers["webhook-signature"].split()) == 2
    for secret in (SECRET, old):
        assert verify([secret], headers=seen.headers, body=seen.body, now=NOW) == "msg_1"


@REAL_CLOCK
async def test_an_unsigned_destination_sends_no_signature() -> None:
    async with (
        running_sink(Reply()) as sink,
        HttpDestination("orders", sink.url, method="put") as dest,
    ):
        await dest.send(request(), now=NOW)
    [seen] = sink.received
    assert seen.method == "PUT"
    assert "webhook-signature" not in seen.headers
    assert seen.headers["content-type"] == "application/json"


@REAL_CLOCK
async def test_the_excerpt_of_a_large_body_is_capped() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    result = await deliver(Reply(status=500, body=big))
    assert result.outcome is Outcome.RETRYABLE
    assert result.response_excerpt == big[:1024]
    small = await deliver(Reply(status=200, body=big), excerpt_limit=10)
    assert small.response_excerpt == big[:10]
    none = await deliver(Reply(status=200, body=big), excerpt_limit=0)
    assert none.response_excerpt == b""


@REAL_CLOCK
async def test_two_sends_on_one_destination_both_arrive() -> None:
    async with running_sink(Reply(body=b"ok")) as sink, HttpDestination("orders", sink.url) as dest:
        first = await dest.send(request(), now=NOW)
        second = await dest.send(request(attempt=2), now=NOW)
    assert first.outcome is second.outcome is Outcome.SUCCESS
    assert len(sink.received) == 2


# --- the classifier ------------------------------------------------------------------


@REAL_CLOCK
async def test_the_classifier_decides_first_and_none_falls_back() -> None:
    calls: list[tuple[int | None, str | None]] = []

    def classifier(status: int | None, error: BaseException | None) -> Outcome | None:
        calls.append((status, type(error).__name__ if error else None))
        if status == 404:
            return Outcome.RETRYABLE  # this receiver 404s until the tenant exists
        if error is not None:
            return Outcome.TERMINAL
        return None

    assert (await deliver(Reply(status=404), classifier=classifier)).outcome is Outcome.RETRYABLE
    assert (await deliver(Reply(status=503), classifier=classifier)).outcome is Outcome.RETRYABLE
    assert (await deliver(Reply(status=400), classifier=classifier)).outcome is Outcome.TERMINAL
    port = await free_port()
    async with HttpDestination(
        "orders", f"http://127.0.0.1:{port}/", classifier=classifier
    ) as dest:
        refused = await dest.send(request(), now=NOW)
    assert refused.outcome is Outcome.TERMINAL
    assert calls == [(404, None), (503, None), (400, None), (None, "ConnectError")]


# --- errors are classified through httpx's tree ------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (httpx.ConnectError("x"), Outcome.RETRYABLE),
        (httpx.ReadError("x"), Outcome.RETRYABLE),
        (httpx.WriteError("x"), Outcome.RETRYABLE),
        (httpx.ReadTimeout("x"), Outcome.RETRYABLE),
        (httpx.PoolTimeout("x"), Outcome.RETRYABLE),
        (httpx.RemoteProtocolError("x"), Outcome.RETRYABLE),
        (httpx.ProxyError("x"), Outcome.RETRYABLE),
        (httpx.LocalProtocolError("x"), Outcome.TERMINAL),
        (httpx.UnsupportedProtocol("x"), Outcome.TERMINAL),
        (TimeoutError(), Outcome.RETRYABLE),
        (ConnectionResetError(), Outcome.RETRYABLE),
        (ValueError("bug"), Outcome.TERMINAL),
        (ExceptionGroup("g", [httpx.ReadError("a"), OSError()]), Outcome.RETRYABLE),
        (ExceptionGroup("g", [httpx.ReadError("a"), KeyError()]), Outcome.TERMINAL),
    ],
)
def test_classify_http_error(error: BaseException, outcome: Outcome) -> None:
    from otpy.gateway._http import classify_http_error

    assert classify_http_error(error) is outcome


@REAL_CLOCK
async def test_an_error_message_is_redacted() -> None:
    def transport_error(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused: token=abcdef123456 at https://u:pw@host/")

    transport = httpx.MockTransport(transport_error)
    async with HttpDestination("orders", "https://example.test/", transport=transport) as dest:
        result = await dest.send(request(), now=NOW)
    assert result.outcome is Outcome.RETRYABLE
    assert result.error is not None
    assert "abcdef123456" not in result.error
    assert "pw" not in result.error


# --- bulkhead and rate limit, on the virtual clock -----------------------------------------


def _slow_transport(seconds: float, log: list[float]) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        log.append(anyio.current_time())
        await anyio.sleep(seconds)
        return httpx.Response(200)

    return httpx.MockTransport(handler)


@VIRTUAL_TIME
async def test_the_bulkhead_refuses_a_third_caller_at_once() -> None:
    started: list[float] = []
    dest = HttpDestination(
        "orders", "https://example.test/", max_concurrent=2, transport=_slow_transport(10, started)
    )
    async with dest, anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(partial(dest.send, request(), now=NOW))
        await anyio.sleep(1)
        with pytest.raises(BulkheadFull, match="'orders' is full: 2 already in flight"):
            await dest.send(request(), now=NOW)
        assert dest.bulkhead.statistics().rejected == 1
    assert len(started) == 2


@VIRTUAL_TIME
async def test_with_max_wait_a_caller_gets_the_first_slot_that_frees() -> None:
    started: list[float] = []
    dest = HttpDestination(
        "orders",
        "https://example.test/",
        max_concurrent=2,
        max_wait=5,
        transport=_slow_transport(3, started),
    )
    async with dest, anyio.create_task_group() as group:
        t0 = anyio.current_time()
        for _ in range(2):
            group.start_soon(partial(dest.send, request(), now=NOW))
        await anyio.sleep(0.5)  # let the holders start
        result = await dest.send(request(), now=NOW)
        assert result.outcome is Outcome.SUCCESS
    assert [t - t0 for t in started] == [0, 0, 3]


@VIRTUAL_TIME
async def test_a_zero_rate_limit_is_refused_and_the_third_request_waits_for_its_token() -> None:
    sent: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(anyio.current_time())
        return httpx.Response(200)

    dest = HttpDestination(
        "orders",
        "https://example.test/",
        rate_limit=2,
        burst=1,
        transport=httpx.MockTransport(handler),
    )
    async with dest:
        t0 = anyio.current_time()
        for _ in range(3):
            assert (await dest.send(request(), now=NOW)).outcome is Outcome.SUCCESS
    assert [t - t0 for t in sent] == [0, 0.5, 1.0]
    with pytest.raises(InvalidArgument, match="rate_limit"):
        HttpDestination("orders", "https://example.test/", rate_limit=0)


@VIRTUAL_TIME
async def test_the_duration_is_measured_on_anyios_clock() -> None:
    dest = HttpDestination("orders", "https://example.test/", transport=_slow_transport(2.5, []))
    async with dest:
        result = await dest.send(request(), now=NOW)
    assert result.duration == 2.5


@VIRTUAL_TIME
async def test_the_deadline_covers_the_whole_attempt_on_the_virtual_clock() -> None:
    dest = HttpDestination(
        "orders", "https://example.test/", timeout=4, transport=_slow_transport(60, [])
    )
    async with dest:
        result = await dest.send(request(), now=NOW)
    assert (result.outcome, result.error_type, result.duration) == (
        Outcome.RETRYABLE,
        "TimeoutError",
        4,
    )


# --- repr and configuration ------------------------------------------------------


def test_repr_hides_secret_headers_and_signing_secrets() -> None:
    dest = HttpDestination(
        "orders",
        "https://user:hunter2@example.test/hook",
        headers={
            "Authorization": "Bearer s3cr3t-value",
            "X-Api-Key": "k-123456",
            "Cookie": "session=abc",
            "X-Team": "billing",
        },
        signing_secrets=[SECRET],
    )
    text = repr(dest)
    for secret in ("s3cr3t-value", "k-123456", "session=abc", "hunter2", SECRET.text):
        assert secret not in text
    assert "'X-Team': 'billing'" in text
    assert "signing_secrets=<1 redacted>" in text
    outbound = request(headers=(("X-Auth-Token", "tok-999"),))
    assert "tok-999" not in repr(outbound)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "ftp://example.test/"}, "url"),
        ({"url": "example.test/hook"}, "url"),
        ({"url": 7}, "url"),
        ({"name": ""}, "name"),
        ({"method": "PO ST"}, "method"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"X-A": "line\r\nbreak"}}, "headers"),
        ({"headers": {"Idempotency-Key": "mine"}}, "headers"),
        ({"headers": {"webhook-signature": "v1,x"}}, "headers"),
        ({"headers": ["X-A"]}, "headers"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_wait": -1}, "max_wait"),
        ({"rate_limit": -1.0}, "rate_limit"),
        ({"burst": 0}, "burst"),
        ({"signing_secrets": SECRET}, "signing_secrets"),
        ({"signing_secrets": ["whsec_x"]}, "signing_secrets"),
        ({"classifier": "yes"}, "classifier"),
        ({"max_connections": 0}, "max_connections"),
        ({"excerpt_limit": -1}, "excerpt_limit"),
        ({"transport": object()}, "transport"),
    ],
)
def test_bad_configuration_names_the_field(options: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"name": "orders", "url": "https://example.test/"}
    arguments.update(options)
    with pytest.raises(InvalidArgument, match=field):
        HttpDestination(**arguments)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"message_id": "a.b"}, "message_id"),
        ({"message_id": ""}, "message_id"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "a\nb"}, "idempotency_key"),
        ({"body": "text"}, "body"),
        ({"content_type": "json"}, "content_type"),
        ({"headers": (("Content-Type", "x/y"),)}, "headers"),
        ({"attempt": 0}, "attempt"),
    ],
)
def test_a_bad_request_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        request(**changes)


@REAL_CLOCK
async def test_send_refuses_what_is_not_a_request() -> None:
    dest = HttpDestination("orders", "https://example.test/")
    with pytest.raises(InvalidArgumentType, match="request"):
        await dest.send(b"body", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="now"):
        await dest.send(request(), now=-1)


@VIRTUAL_TIME
async def test_a_request_sent_inside_a_span_carries_its_traceparent() -> None:
    """The receiver can join the trace: the attempt's span goes out as ``traceparent``."""
    from opentelemetry import trace

    from otpy.testing import capture_spans

    seen: list[httpx.Request] = []

    async def handler(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return httpx.Response(200)

    dest = HttpDestination(
        "orders", "https://example.test/", transport=httpx.MockTransport(handler)
    )
    with capture_spans():
        async with dest:
            await dest.send(request(), now=NOW)  # no span current: no header
            with trace.get_tracer("test").start_as_current_span("attempt") as span:
                await dest.send(request(), now=NOW)
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert "traceparent" not in seen[0].headers
    assert seen[1].headers["traceparent"].split("-")[1] == trace_id


# --- the request, for a dead letter -----------------------------------------------------


@REAL_CLOCK
async def test_a_failed_attempt_describes_its_request_without_secrets() -> None:
    """A dead letter can show what was sent: method, URL, headers; secrets are hidden."""
    async with running_sink(Reply(status=422)) as sink:
        url = sink.url + "?token=abc123"
        async with HttpDestination(
            "orders",
            url,
            headers={"Authorization": "Bearer s3cret", "X-Tenant": "acme"},
            signing_secrets=[SECRET],
        ) as dest:
            result = await dest.send(request(), now=NOW)
    described = dict(result.request)
    assert described["http.request.method"] == "POST"
    assert "abc123" not in described["url.full"]
    assert described["url.full"].startswith(sink.url)
    assert described["http.request.header.authorization"] == "[redacted]"
    assert described["http.request.header.webhook-signature"] == "[redacted]"
    assert described["http.request.header.x-tenant"] == "acme"
    assert described["http.request.header.idempotency-key"] == "idem-1"
    assert described["http.request.header.webhook-id"] == "msg_1"
    assert "s3cret" not in repr(result.request)


@REAL_CLOCK
async def test_a_delivered_attempt_carries_no_request_description() -> None:
    """Describing the request costs nothing on the path that succeeds."""
    result = await deliver(Reply(status=200))
    assert result.request == ()


@REAL_CLOCK
async def test_max_connections_bounds_the_connections_across_its_pools() -> None:
    """20 connections (three pools of at most 8): 21 held attempts open 20; the 21st waits, then goes."""
    hold = anyio.Event()
    results: list[DeliveryResult] = []
    async with (
        running_sink(Reply(hang=hold)) as sink,
        HttpDestination("orders", sink.url, max_concurrent=21, max_connections=20) as dest,
        anyio.create_task_group() as tg,
    ):

        async def send() -> None:
            results.append(await dest.send(request(), now=NOW))

        for _ in range(21):
            tg.start_soon(send)
        with anyio.fail_after(10):
            await sink.wait_for(lambda: len(sink.received) == 20)
        await anyio.wait_all_tasks_blocked()
        assert len(sink.received) == 20  # every pool is full; none was left idle
        hold.set()
    assert len(results) == 21
    assert {r.outcome for r in results} == {Outcome.SUCCESS}
