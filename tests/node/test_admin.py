"""The node's admin API: status, destinations, dead letters and their replay, behind a bearer token."""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest

import otpy
import otpy.testing
from otpy.cli._dlq_render import record_json
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    MemoryDeadLetterStore,
    ReplayStatus,
    Source,
    open_replayer,
)
from otpy.gateway import DeliveryResult, Gateway, MemoryOutboxStore, OutboundRequest, Outcome
from otpy.ingest import IngestApp, IngestRoute, MemoryJournalStore
from otpy.node import AdminApp, AdminServer, Secret, admin_server_spec
from otpy.telemetry import ATTR_MESSAGING_DESTINATION_NAME, ATTR_ORDERING_KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

T0 = 1_700_000_000.0
TOKEN = "admin-s3cret-token"


class Recording:
    """A destination that answers every attempt with success and records what it got."""

    def __init__(self, name: str = "orders") -> None:
        self.name = name
        self.calls: list[OutboundRequest] = []

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        self.calls.append(request)
        await anyio.lowlevel.checkpoint()
        return DeliveryResult(outcome=Outcome.SUCCESS, status=200)


async def no_dead_letters(record: DeadLetter) -> None:
    """The gateway's dead-letter sink; these tests dead-letter nothing."""
    raise AssertionError(f"unexpected dead letter {record.id}")


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[None]:
    """Run *gateway* for the block, then stop it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(gateway.run)
        yield
        tg.cancel_scope.cancel()


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Node:
    """An admin app over memory stores, a gateway with one scripted destination, and an ingest."""

    app: AdminApp
    clock: Clock
    store: MemoryDeadLetterStore
    outbox: MemoryOutboxStore
    gateway: Gateway
    destination: Recording
    journal: MemoryJournalStore
    ingest: IngestApp


def make(token: object = TOKEN, **options: Any) -> Node:
    """A node's parts and its admin app; *options* go to AdminApp."""
    clock = Clock()
    store = MemoryDeadLetterStore(clock=clock)
    outbox = MemoryOutboxStore()
    destination = Recording("orders")
    gateway = Gateway(outbox, [destination], dead_letters=no_dead_letters, clock=clock)
    journal = MemoryJournalStore(clock=clock)
    ingest = IngestApp(journal, [IngestRoute(name="orders", capacity=10)], clock=clock)
    ingest.set_ready()
    parts: dict[str, Any] = {"gateway": gateway, "ingest": ingest, **options}
    app = AdminApp(token=token, dead_letters=store, node_name="edge-1", clock=clock, **parts)
    return Node(app, clock, store, outbox, gateway, destination, journal, ingest)


@contextlib.asynccontextmanager
async def client(app: Any, token: str | None = TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling *app* in process, presenting *token*."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://admin", headers=headers
    ) as c:
        yield c


async def capture(
    store: MemoryDeadLetterStore,
    *,
    body: bytes = b'{"order": 1}',
    key: str = "customer-42",
    destination: str = "orders",
    source: Source = Source.OUTBOUND,
    at: float = T0,
    idempotency_key: str | None = None,
) -> DeadLetter:
    """Store an outbound dead letter as the gateway captures one; return it."""
    record = DeadLetter.capture(
        key=destination,
        source=source,
        reason_class="http.400",
        reason="terminal; HTTP 400; response: token=abcdef0123456789",
        payload=body,
        content_type="application/json",
        headers=[("authorization", "Bearer abcdefghijkl"), ("x-tenant", "acme")],
        idempotency_key=idempotency_key,
        attempt=1,
        max_attempts=7,
        trace_context={},
        attributes={ATTR_MESSAGING_DESTINATION_NAME: destination, ATTR_ORDERING_KEY: key},
        now=at,
    )
    await store.add_many([record])
    return record


TOKEN_REQUIRED = (
    "this endpoint changes state or shows a payload, so it needs a bearer token, and the "
    "admin API has none: set [admin] token_env or token_file (OTPY_ADMIN_TOKEN_ENV, "
    "OTPY_ADMIN_TOKEN_FILE)"
)

# -- probes -----------------------------------------------------------------------------


async def test_healthz_answers_without_a_token() -> None:
    """ADM-1: /healthz is 200 {"status": "ok"} even when a token is configured and none is given."""
    async with client(make().app, token=None) as c:
        r = await c.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_follows_the_ingest() -> None:
    """ADM-4: /readyz is 503 with Retry-After while the ingest starts or drains, 200 once it is ready."""
    node = make()
    node.ingest.ready = False
    async with client(node.app, token=None) as c:
        starting = await c.get("/readyz")
        node.ingest.set_ready()
        ready = await c.get("/readyz")
        node.ingest.draining = True
        draining = await c.get("/readyz")
    assert (starting.status_code, starting.headers["retry-after"]) == (503, "1")
    assert starting.json() == {"error": "not_ready", "detail": "the node is starting"}
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert (draining.status_code, draining.json()["error"]) == (503, "draining")


async def test_readyz_without_an_ingest_is_ready() -> None:
    """A node without an ingest is ready as soon as the admin API answers."""
    app = AdminApp(token=None, dead_letters=MemoryDeadLetterStore())
    async with client(app, token=None) as c:
        r = await c.get("/readyz")
    assert r.status_code == 200


# -- status -----------------------------------------------------------------------------


async def test_status_shows_routes_journal_destinations_and_dead_letters() -> None:
    """/v1/status: name, version, each route's pending depth and level, the journal, each destination, dead letters by status."""
    node = make()
    async with client(node.ingest, token=None) as ingest:
        posted = await ingest.post("/v1/routes/orders/messages", content=b"hello")
    assert posted.status_code == 202
    await capture(node.store)
    journal = await node.journal.statistics()
    async with client(node.app) as c:
        r = await c.get("/v1/status")
    assert r.status_code == 200
    assert r.json() == {
        "node": "edge-1",
        "version": otpy.__version__,
        "ingest": {
            "ready": True,
            "draining": False,
            "in_flight": 0,
            "routes": {"orders": {"pending": 1, "level": "normal"}},
        },
        "journal": {
            "depth": 1,
            "oldest_age": 0.0,
            "bytes": journal.bytes_used,
            "max_bytes": journal.max_bytes,
            "routes": {"orders": {"depth": 1, "oldest_age": 0.0, "bytes": journal.bytes_used}},
        },
        "gateway": {
            "destinations": [
                {
                    "name": "orders",
                    "disabled": False,
                    "disabled_reason": None,
                    "breaker": "closed",
                    "in_flight": 0,
                    "sent": 0,
                    "succeeded": 0,
                    "retried": 0,
                    "dead_lettered": 0,
                    "failing_since": None,
                    "failing_since_epoch": None,
                }
            ]
        },
        "dead_letters": {
            "total": 1,
            "by_status": {"active": 1},
            "by_replay_status": {"never": 1},
            "by_source": {"outbound": 1},
        },
    }
    assert "hello" not in r.text


async def test_status_of_a_node_with_only_dead_letters() -> None:
    """Without a gateway, an ingest or a journal, their sections are null."""
    app = AdminApp(token=None, dead_letters=MemoryDeadLetterStore(), node_name="solo")
    async with client(app, token=None) as c:
        body = (await c.get("/v1/status")).json()
    assert (body["node"], body["ingest"], body["journal"], body["gateway"]) == (
        "solo",
        None,
        None,
        None,
    )


async def test_a_failing_store_answers_503_not_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """ADM-2, ADM-4: A store error is a 503 with Retry-After and a redacted detail."""
    node = make()

    async def broken() -> None:
        raise otpy.DeadLetterStoreError("dlq.db", "disk I/O error, password=hunter2")

    monkeypatch.setattr(node.store, "statistics", broken)
    async with client(node.app) as c:
        r = await c.get("/v1/status")
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    assert r.json() == {
        "error": "unavailable",
        "detail": "/v1/status failed: dead-letter store dlq.db: disk I/O error, "
        "password=[redacted]",
    }


# -- auth -------------------------------------------------------------------------------

GUARDED = [
    ("GET", "/v1/status"),
    ("GET", "/v1/destinations"),
    ("POST", "/v1/destinations/orders/disable"),
    ("POST", "/v1/destinations/orders/enable"),
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/01HZZZZZZZZZZZZZZZZZZZZZZZ"),
    ("POST", "/v1/dead-letters/01HZZZZZZZZZZZZZZZZZZZZZZZ/replay"),
]


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authorization: Bearer <token> is required"),
        ("Basic YWRtaW46cw==", "Authorization: Bearer <token> is required"),
        ("Bearer ", "Authorization: Bearer <token> is required"),
        ("Bearer wrong-token", "the bearer token is not valid"),
    ],
)
async def test_with_a_token_every_endpoint_wants_it(
    method: str, path: str, authorization: str | None, detail: str
) -> None:
    """ADM-1: Without the right bearer token: 401 with WWW-Authenticate: Bearer, and nothing changes."""
    node = make()
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client(node.app, token=None) as c:
        r = await c.request(method, path, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": "unauthorized", "detail": detail}
    assert node.gateway.disabled() == ()


async def test_a_secret_token_is_revealed_and_compared() -> None:
    """ADM-1: A token given as a Secret works like its text."""
    node = make(token=Secret("env OTPY_ADMIN", TOKEN))
    async with client(node.app) as c:
        r = await c.get("/v1/status")
    assert r.status_code == 200
    assert TOKEN not in repr(node.app)


@pytest.mark.parametrize("path", ["/v1/status", "/v1/destinations", "/v1/dead-letters"])
async def test_without_a_token_read_only_endpoints_answer(path: str) -> None:
    """ADM-1: With no token configured, the status, destinations and the dead-letter list are served."""
    async with client(make(token=None).app, token=None) as c:
        r = await c.get(path)
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/destinations/orders/disable"),
        ("POST", "/v1/destinations/orders/enable"),
        ("GET", "/v1/dead-letters/{id}"),
        ("POST", "/v1/dead-letters/{id}/replay"),
    ],
)
async def test_without_a_token_state_changes_and_payloads_are_refused(
    method: str, path: str
) -> None:
    """ADM-1: With no token configured, anything that changes state or shows a payload is 403 token_required."""
    node = make(token=None)
    record = await capture(node.store)
    async with client(node.app, token="anything") as c:
        r = await c.request(method, path.format(id=record.id))
    assert r.status_code == 403
    assert r.json() == {"error": "token_required", "detail": TOKEN_REQUIRED}
    assert node.gateway.disabled() == ()
    assert (await node.store.get(record.id)).replay.status is ReplayStatus.NEVER


# -- destinations -----------------------------------------------------------------------


async def test_disable_and_enable_a_destination() -> None:
    """POST disable stops delivery durably (reason manual); enable resumes it; each answers the destination."""
    node = make()
    async with client(node.app) as c:
        disabled = await c.post("/v1/destinations/orders/disable")
        listed = await c.get("/v1/destinations")
        state = (await node.outbox.destination_states())["orders"]
        enabled = await c.post("/v1/destinations/orders/enable")
    assert disabled.status_code == 200
    assert (disabled.json()["disabled"], disabled.json()["disabled_reason"]) == (True, "manual")
    assert [d["disabled"] for d in listed.json()["destinations"]] == [True]
    assert state.disabled
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)
    assert node.gateway.disabled() == ()


@pytest.mark.parametrize("action", ["disable", "enable"])
async def test_an_unknown_destination_is_404(action: str) -> None:
    """ADM-4: A destination the gateway does not have is 404 unknown_destination."""
    async with client(make().app) as c:
        r = await c.post(f"/v1/destinations/billing/{action}")
    assert r.status_code == 404
    assert r.json() == {"error": "unknown_destination", "detail": "no destination 'billing'"}


async def test_without_a_gateway_there_are_no_destinations() -> None:
    """A node without a gateway lists none, and has none to disable."""
    app = AdminApp(token=TOKEN, dead_letters=MemoryDeadLetterStore())
    async with client(app) as c:
        listed = await c.get("/v1/destinations")
        disabled = await c.post("/v1/destinations/orders/disable")
    assert listed.json() == {"destinations": []}
    assert disabled.status_code == 404


async def test_unknown_paths_and_methods_answer_json() -> None:
    """ADM-4: An unknown path is a JSON 404, a wrong method a JSON 405."""
    async with client(make().app) as c:
        missing = await c.get("/v1/nothing")
        wrong = await c.get("/v1/destinations/orders/disable")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


# -- dead letters -----------------------------------------------------------------------


async def test_the_list_pages_summaries_without_payloads() -> None:
    """ADM-2: A page of summaries, newest first, with a cursor to the next page; no payload, reasons redacted."""
    node = make()
    records = [await capture(node.store, at=T0 + i, body=b"secret-body") for i in range(3)]
    async with client(node.app) as c:
        first = await c.get("/v1/dead-letters", params={"limit": 2})
        cursor = first.json()["next_cursor"]
        second = await c.get("/v1/dead-letters", params={"limit": 2, "cursor": cursor})
    assert [r["id"] for r in first.json()["records"]] == [records[2].id, records[1].id]
    assert cursor == records[1].id
    assert [r["id"] for r in second.json()["records"]] == [records[0].id]
    assert second.json()["next_cursor"] is None
    assert first.json()["records"][0] == {
        "id": records[2].id,
        "key": "orders",
        "status": "active",
        "source": "outbound",
        "category": "terminal",
        "reason_class": "http.400",
        "reason": "terminal; HTTP 400; response: token=[redacted]",
        "attempt": 1,
        "max_attempts": 7,
        "payload_size": 11,
        "replay": {"status": "never", "attempts": 0, "last_outcome": None},
        "created_at": "2023-11-14T22:13:22.000Z",
        "created_at_epoch": T0 + 2,
    }
    assert "secret-body" not in first.text
    assert "abcdef0123456789" not in first.text


async def test_the_list_filters_by_source_and_key() -> None:
    """source= and key= narrow the page."""
    node = make()
    outbound = await capture(node.store, destination="orders")
    await capture(node.store, destination="audit")
    crashed = await capture(node.store, source=Source.ACTOR_CRASH)
    async with client(node.app) as c:
        by_source = await c.get("/v1/dead-letters", params={"source": "actor_crash"})
        by_key = await c.get("/v1/dead-letters", params={"key": "orders", "source": "outbound"})
    assert [r["id"] for r in by_source.json()["records"]] == [crashed.id]
    assert [r["id"] for r in by_key.json()["records"]] == [outbound.id]


@pytest.mark.parametrize(
    ("query", "error", "detail"),
    [
        ({"limit": "0"}, "bad_limit", "limit must be an integer from 1 to 1000, got '0'"),
        ({"limit": "1001"}, "bad_limit", "limit must be an integer from 1 to 1000, got '1001'"),
        ({"limit": "ten"}, "bad_limit", "limit must be an integer from 1 to 1000, got 'ten'"),
        ({"limit": "-1"}, "bad_limit", "limit must be an integer from 1 to 1000, got '-1'"),
        ({"cursor": "nope"}, "bad_cursor", "cursor must be a next_cursor from a page, got 'nope'"),
        (
            {"source": "mail"},
            "bad_source",
            "source must be one of ingest, outbound, actor_crash, undeliverable, load_shed, "
            "queue_full, got 'mail'",
        ),
    ],
)
async def test_bad_list_parameters_are_400(query: dict[str, str], error: str, detail: str) -> None:
    """ADM-4: A bad limit, cursor or source is a 400 naming the parameter."""
    async with client(make().app) as c:
        r = await c.get("/v1/dead-letters", params=query)
    assert r.status_code == 400
    assert r.json() == {"error": error, "detail": detail}


async def test_one_dead_letter_is_shown_as_dlq_get_json_shows_it() -> None:
    """ADM-2: GET /v1/dead-letters/{id} is `otpy dlq get --json --payload`'s document: payload in base64 and text."""
    node = make()
    record = await capture(node.store)
    async with client(node.app) as c:
        r = await c.get(f"/v1/dead-letters/{record.id}")
    assert r.status_code == 200
    stored = await node.store.get(record.id)
    assert r.json() == record_json(stored, payload=True)
    assert r.json()["payload"] == base64.b64encode(b'{"order": 1}').decode()
    assert r.json()["payload_text"] == '{"order": 1}'
    assert r.json()["headers"] == [["authorization", "[redacted]"], ["x-tenant", "acme"]]
    assert "abcdefghijkl" not in r.text


@pytest.mark.parametrize("record_id", ["01HZZZZZZZZZZZZZZZZZZZZZZZ", "not-an-id"])
async def test_an_unknown_dead_letter_is_404(record_id: str) -> None:
    """ADM-4: An id the store does not hold, or no id at all, is 404 not_found."""
    async with client(make().app) as c:
        shown = await c.get(f"/v1/dead-letters/{record_id}")
        replayed = await c.post(f"/v1/dead-letters/{record_id}/replay")
    for r in (shown, replayed):
        assert r.status_code == 404
        assert r.json() == {"error": "not_found", "detail": f"no dead letter {record_id!r}"}


# -- replay -----------------------------------------------------------------------------


async def test_a_replay_is_sent_once_and_a_second_one_does_not_send_again() -> None:
    """ADM-3: The first replay hands the message to the gateway (replayed); the second answers already_replayed and sends nothing."""
    node = make()
    record = await capture(node.store)
    async with client(node.app) as c, running(node.gateway):
        first = await c.post(f"/v1/dead-letters/{record.id}/replay")
        second = await c.post(f"/v1/dead-letters/{record.id}/replay")
        await anyio.wait_all_tasks_blocked()
    assert first.status_code == 200
    assert (first.json()["outcome"], first.json()["error"]) == ("replayed", None)
    assert first.json()["record"]["replay"] == {
        "status": "succeeded",
        "attempts": 1,
        "last_outcome": "replayed",
    }
    assert (second.status_code, second.json()["outcome"]) == (200, "already_replayed")
    assert [(c.body, c.idempotency_key) for c in node.destination.calls] == [
        (b'{"order": 1}', record.replay_key)
    ]
    assert (await node.outbox.statistics()).depth == 0


async def test_a_record_sharing_a_replayed_key_is_not_sent_again() -> None:
    """ADM-3: A second record with the idempotency key of one already replayed answers already_replayed."""
    node = make()
    first = await capture(node.store, idempotency_key="order-1")
    twin = await capture(node.store, idempotency_key="order-1", at=T0 + 1)
    async with client(node.app) as c:
        await c.post(f"/v1/dead-letters/{first.id}/replay")
        r = await c.post(f"/v1/dead-letters/{twin.id}/replay")
    assert r.json()["outcome"] == "already_replayed"
    assert (await node.outbox.statistics()).depth == 1


async def test_a_replay_the_gateway_refuses_is_failed_and_stays_replayable() -> None:
    """A record for a destination the gateway lacks: outcome failed with the error, the record replayable."""
    node = make()
    record = await capture(node.store, destination="billing")
    async with client(node.app) as c:
        r = await c.post(f"/v1/dead-letters/{record.id}/replay")
    assert r.status_code == 200
    assert r.json()["outcome"] == "failed"
    assert r.json()["error"].startswith("UnknownDestination: ")
    assert (await node.store.get(record.id)).replay.status is ReplayStatus.FAILED
    assert (await node.outbox.statistics()).depth == 0


async def test_a_replay_running_elsewhere_is_409_then_in_doubt_once_its_lease_expired() -> None:
    """ADM-3: While another replay holds the record: 409 in_progress; after its lease, it is in doubt and not sent."""
    node = make()
    record = await capture(node.store)
    await node.store.start_replay(record.id, lease=60.0)  # a replay worker, mid-send
    async with client(node.app) as c:
        running_now = await c.post(f"/v1/dead-letters/{record.id}/replay")
        node.clock.now += 61.0  # its worker died
        after = await c.post(f"/v1/dead-letters/{record.id}/replay")
    assert running_now.status_code == 409
    assert running_now.json()["error"] == "in_progress"
    assert (after.status_code, after.json()["outcome"]) == (200, "in_doubt")
    assert (await node.outbox.statistics()).depth == 0


async def test_an_archived_record_is_not_replayed() -> None:
    """An archived record answers 409 archived."""
    node = make()
    record = await capture(node.store)
    await node.store.archive(DeadLetterFilter(ids=(record.id,)))
    async with client(node.app) as c:
        r = await c.post(f"/v1/dead-letters/{record.id}/replay")
    assert (r.status_code, r.json()["error"]) == (409, "archived")


async def test_only_outbound_records_replay_through_the_gateway() -> None:
    """A record from another source, or a node without a gateway, answers 409 no_replay_handler."""
    node = make()
    crashed = await capture(node.store, source=Source.ACTOR_CRASH)
    bare = AdminApp(token=TOKEN, dead_letters=node.store)
    outbound = await capture(node.store)
    async with client(node.app) as c, client(bare) as b:
        other = await c.post(f"/v1/dead-letters/{crashed.id}/replay")
        no_gateway = await b.post(f"/v1/dead-letters/{outbound.id}/replay")
    assert (other.status_code, other.json()["error"]) == (409, "no_replay_handler")
    assert (no_gateway.status_code, no_gateway.json()["error"]) == (409, "no_replay_handler")
    assert "this node has no gateway" in no_gateway.json()["detail"]


async def test_a_replay_goes_through_the_replay_workers_when_given_them() -> None:
    """ADM-3: With a replayer, the replay runs in the node's replay workers, with the same outcomes."""
    node = make()
    record = await capture(node.store)
    async with open_replayer(node.store, {Source.OUTBOUND: node.gateway.replay}) as replayer:
        app = AdminApp(
            token=TOKEN, dead_letters=node.store, gateway=node.gateway, replayer=replayer
        )
        async with client(app) as c:
            first = await c.post(f"/v1/dead-letters/{record.id}/replay")
            second = await c.post(f"/v1/dead-letters/{record.id}/replay")
    assert [first.json()["outcome"], second.json()["outcome"]] == ["replayed", "already_replayed"]
    assert (await node.outbox.statistics()).depth == 1


# -- construction -----------------------------------------------------------------------


def test_the_app_checks_its_arguments() -> None:
    """A blank token, a store that is not one, or a bad timeout is refused, naming the argument."""
    store = MemoryDeadLetterStore()
    with pytest.raises(ValueError, match=r"^AdminApp: token must not be empty or blank"):
        AdminApp(token=" ", dead_letters=store)
    with pytest.raises(TypeError, match=r"^AdminApp: token must be a str, a Secret or None"):
        AdminApp(token=42, dead_letters=store)
    with pytest.raises(TypeError, match=r"^AdminApp: dead_letters must be a DeadLetterStore"):
        AdminApp(token=None, dead_letters="dlq.db")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^AdminApp: replay_timeout must be"):
        AdminApp(token=None, dead_letters=store, replay_timeout=0)


def test_the_spec_checks_its_port() -> None:
    """A port outside 0..65535 is refused, naming the argument."""
    app = AdminApp(token=None, dead_letters=MemoryDeadLetterStore())
    with pytest.raises(ValueError, match=r"^admin_server_spec: port must be an int in"):
        admin_server_spec(app, port=70000)


def test_the_spec_runs_an_admin_server() -> None:
    """The child spec starts AdminServer with the app, host and port, as "admin"."""
    app = AdminApp(token=None, dead_letters=MemoryDeadLetterStore())
    spec = admin_server_spec(app, port=9001, shutdown=7.0)
    assert (spec.id, spec.name, spec.start, spec.shutdown) == ("admin", "admin", AdminServer, 7.0)
    assert spec.args == (app, "127.0.0.1", 9001, 3.0)


# -- the server -------------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_server_serves_the_api_on_loopback() -> None:
    """ADM-1: AdminServer binds a free loopback port, answers "address", serves the API, and closes on stop."""
    node = make()
    async with otpy.open_node() as n:
        async with otpy.open_supervisor(
            otpy.SupervisorSpec(children=[admin_server_spec(node.app, port=0)])
        ):
            ref = n.whereis("admin")
            assert ref is not None
            host, port = await ref.call("address")
            base = f"http://{host}:{port}"
            async with httpx.AsyncClient(base_url=base) as c:
                health = await c.get("/healthz")
                refused = await c.get("/v1/status")
                status = await c.get("/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert host == "127.0.0.1"
        assert health.status_code == 200
        assert refused.status_code == 401
        assert status.json()["node"] == "edge-1"
        async with httpx.AsyncClient(base_url=base) as after:
            with pytest.raises(httpx.ConnectError):
                await after.get("/healthz")


async def test_a_binary_payload_is_shown_in_base64_only() -> None:
    """A payload that is not UTF-8 has `payload` and no `payload_text`."""
    node = make()
    record = await capture(node.store, body=b"\xff\x00\xfe")
    async with client(node.app) as c:
        body = (await c.get(f"/v1/dead-letters/{record.id}")).json()
    assert body["payload"] == "/wD+"
    assert "payload_text" not in body


@pytest.mark.parametrize("anyio_backend", [otpy.testing.virtual_time()])
async def test_a_replay_the_gateway_does_not_finish_in_time_is_in_doubt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past replay_timeout the side effect may have happened: in_doubt, and a second replay sends nothing."""
    node = make(replay_timeout=5.0)
    record = await capture(node.store)
    calls: list[int] = []

    async def stuck(*args: object, **kwargs: object) -> None:
        calls.append(1)
        await anyio.sleep_forever()

    monkeypatch.setattr(node.outbox, "enqueue", stuck)
    async with client(node.app) as c:
        first = await c.post(f"/v1/dead-letters/{record.id}/replay")
        second = await c.post(f"/v1/dead-letters/{record.id}/replay")
    assert (first.status_code, first.json()["outcome"]) == (200, "in_doubt")
    assert first.json()["error"] == (
        "the gateway did not answer within 5s: the message may be in its outbox"
    )
    assert (second.status_code, second.json()["outcome"]) == (200, "in_doubt")
    assert calls == [1]
    assert (await node.store.get(record.id)).replay.status is ReplayStatus.IN_DOUBT
