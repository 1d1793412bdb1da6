"""``make demo``: the messaging node with a misbehaving sink and traffic (supervisors/demo.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import pytest

import otpy
import supervisors.demo as demo
from otpy.cli import RunningNode, run_node
from otpy.cli._dlq import load_handlers
from otpy.deadletter import DeadLetterFilter, Source, open_store
from otpy.gateway import SigningSecret, open_outbox, webhook_headers
from otpy.testing import virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SECRET = SigningSecret(demo.DEMO_SECRET)


@pytest.fixture
def built() -> Iterator[demo.Demo]:
    """A demo built on the default environment; its sink socket closed afterwards."""
    built = demo.build(announce=False)
    yield built
    built.listener.close()


def test_root_builds_the_tree_one_for_one_over_sink_node_traffic_narrator() -> None:
    """``root()`` is the tree ``otpy run supervisors.demo:root`` runs, children in start order."""
    spec = demo.root()
    sink = spec.children[0]
    assert isinstance(sink, otpy.ChildSpec)
    sink.args[0].close()  # the socket the factory bound
    assert spec.id == "demo"
    assert spec.flags.strategy is otpy.Strategy.ONE_FOR_ONE
    assert [child.id for child in spec.children] == ["sink", "node", "traffic", "narrator"]


def test_destinations_point_at_the_sink_bound_when_built(built: demo.Demo) -> None:
    """Each destination's URL is the sink's endpoint of its name, on the port already bound."""
    host, port = built.listener.getsockname()[:2]
    assert built.sink == f"http://{host}:{port}"
    destinations = built.parts.config.gateway.destinations
    assert {name: d.url for name, d in destinations.items()} == {
        "orders": f"{built.sink}/orders",
        "crm": f"{built.sink}/crm",
        "audit": f"{built.sink}/audit",
    }
    routes = built.parts.config.ingest.routes
    assert {name: r.destinations for name, r in routes.items()} == {
        "orders": ("orders", "crm"),
        "audit": ("audit",),
    }
    assert built.behaviour.secrets == (SECRET,)


def test_config_takes_otpy_overrides_and_the_secret_from_the_environment() -> None:
    """``OTPY_*`` variables override the demo's settings; ``DEMO_WEBHOOK_SECRET`` replaces its secret."""
    mine = SigningSecret.generate()
    config = demo.demo_config(
        "http://127.0.0.1:1",
        environ={"OTPY_INGEST_PORT": "8099", demo.SECRET_ENV: mine.text},
    )
    assert config.ingest.port == 8099
    assert config.gateway.destinations["crm"].signing_secrets == (mine,)
    assert demo.demo_config("http://127.0.0.1:1", environ={}).ingest.port == 0


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_orders_answers_503_then_429_in_every_ten() -> None:
    """``orders``: the fourth of ten requests gets 503, the eighth 429 with Retry-After: 1."""
    sink = demo.SinkBehaviour()
    answers = [await sink.answer("orders", b"{}", {}) for _ in range(10)]
    assert [status for status, _, _ in answers] == [
        200,
        200,
        200,
        503,
        200,
        200,
        200,
        429,
        200,
        200,
    ]
    assert answers[7][2] == {"Retry-After": "1"}


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_crm_answers_500_through_its_outages() -> None:
    """``crm``: 500 from 6 s after the start for 16 s, again a minute later; 200 otherwise."""
    sink = demo.SinkBehaviour(started_at=anyio.current_time() - 10.0)
    assert (await sink.answer("crm", b"{}", {}))[0] == 500
    sink = demo.SinkBehaviour(started_at=0.0)
    moments = [5.9, 6.0, 21.9, 22.0, 65.9, 66.0, 81.9, 82.0]
    assert [sink.in_outage(t) for t in moments] == [
        False,
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_audit_refuses_poison_with_400() -> None:
    """``audit``: a body with ``"poison": true`` gets 400 (not retried); anything else 200."""
    sink = demo.SinkBehaviour()
    assert (await sink.answer("audit", b'{"poison": true}', {}))[0] == 400
    assert (await sink.answer("audit", b'{"poison": false}', {}))[0] == 200
    assert (await sink.answer("audit", b"not json", {}))[0] == 200


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_a_sink_with_secrets_refuses_an_unsigned_request_with_401() -> None:
    """With secrets, a request whose Standard Webhooks signature fails gets 401; a signed one passes."""
    import time

    sink = demo.SinkBehaviour(secrets=(SECRET,))
    status, content, _ = await sink.answer("audit", b"{}", {})
    assert status == 401
    assert content["error"] == "bad_signature"
    headers = webhook_headers("msg_1", int(time.time()), b"{}", [SECRET])
    assert (await sink.answer("audit", b"{}", headers))[0] == 200
    assert sink.statistics().received == {"audit": 2}


def test_replay_handlers_load_as_the_cli_loads_them() -> None:
    """``--handlers supervisors.demo:replay_handlers`` gives one async handler, for outbound."""
    handlers = load_handlers("supervisors.demo:replay_handlers")
    assert list(handlers) == [Source.OUTBOUND]
    assert isinstance(handlers[Source.OUTBOUND], demo.OutboxReplay)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_demo_delivers_refuses_dead_letters_and_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo delivers to each endpoint, refuses a burst's excess with 429, dead-letters poison.

    Then it stops cleanly, and the replay handler puts a dead letter back in the outbox.
    """
    monkeypatch.chdir(tmp_path)
    plan = demo.TrafficPlan(
        order_every=0.05, audit_every=0.05, poison_every=3, burst=300, first_burst=1.0
    )
    built = demo.build(plan=plan, announce=False)
    seen: dict[str, object] = {}

    async def observe(running: RunningNode) -> None:
        with anyio.fail_after(25):
            while True:
                sink = built.behaviour.statistics()
                traffic = await running.node.named("demo.traffic").call("statistics")
                dead = await built.parts.dead_letters.count()
                if set(sink.received) == {"orders", "crm", "audit"} and traffic.refused and dead:
                    break
                await anyio.sleep(0.05)
        seen["sink"], seen["traffic"] = sink, traffic
        running.stop()

    try:
        async with anyio.create_task_group() as tg:
            code = await run_node(
                built.spec,
                ready=lambda running: tg.start_soon(observe, running),
                handle_signals=False,
            )
    finally:
        built.listener.close()
        for destination in built.destinations:
            await destination.aclose()
    assert code == 0
    traffic = seen["traffic"]
    assert isinstance(traffic, demo.TrafficStatistics)
    assert traffic.bursts == 1
    assert traffic.refused >= 100  # 300 at once on a route of capacity 200
    assert traffic.failed == 0

    async with open_store("var/dead-letters.sqlite3") as store:
        [poison, *_] = (await store.list(DeadLetterFilter(key="audit"), limit=1000)).records
    assert poison.source is Source.OUTBOUND
    assert poison.reason_class == "http.400"
    assert json.loads(poison.payload or b"")["poison"] is True

    [handler] = demo.replay_handlers().values()
    assert isinstance(handler, demo.OutboxReplay)
    await handler(poison, "replayed-poison")
    assert not handler.parts.outbox.is_open
    async with open_outbox("var/outbox.sqlite3") as outbox:
        claimed = await outbox.claim("audit", limit=10_000, lease=60.0)
    [again] = [m for m in claimed if m.idempotency_key == "replayed-poison"]
    assert again.body == poison.payload
