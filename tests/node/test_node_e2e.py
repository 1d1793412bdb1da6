"""The messaging node end to end: real HTTP in through the ingest, real HTTP out to a sink.

Each test runs the node's tree (``supervisors/node.py``) built from a config naming
a local sink's URLs, posts to the ingest on loopback and watches what the sink
receives. asyncio only: the dead-letter store runs on aiosqlite.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

import otpy
from otpy.deadletter import DeadLetterFilter, Replayer
from otpy.gateway import (
    BreakerState,
    OutboxMessage,
    OutboxState,
    SigningSecret,
    open_outbox,
    verify,
)
from otpy.ingest import handover_message_id
from otpy.telemetry import (
    ATTR_GATEWAY_BREAKER_NEW_STATE,
    ATTR_GATEWAY_BREAKER_OLD_STATE,
    ATTR_INGEST_BACKFILL_BACKLOG,
    ATTR_INGEST_BACKFILL_HANDED_OVER,
    ATTR_INGEST_BACKFILL_RATE,
    ATTR_INGEST_REASON,
    ATTR_INGEST_ROUTE,
    METRIC_INGEST_REFUSED,
    SPAN_GATEWAY_BREAKER_TRANSITION,
    SPAN_INGEST_BACKFILL,
)
from otpy.testing import capture_metrics, capture_spans

from ._node import (
    SECRET,
    Received,
    Sink,
    connections_to,
    destination,
    message_body,
    node_config,
    post,
    running_node,
    running_sink,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from opentelemetry.sdk.metrics.export import MetricsData

    from otpy.node import NodeConfig

    from ._node import RunningNode

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def fan_out(sink: Sink, **settings: Any) -> dict[str, Any]:
    """One route ``orders`` to two destinations, ``a`` and ``b``, on *sink*."""
    return {
        "ingest": {"routes": {"orders": {"destinations": ["a", "b"]}}},
        "gateway": {
            "destinations": {
                "a": destination(sink, "/a", **settings),
                "b": destination(sink, "/b", **settings),
            }
        },
    }


def in_order(requests: list[Received]) -> dict[str, list[int]]:
    """Each key's message numbers, in the order *requests* holds them."""
    keys: dict[str, list[int]] = {}
    for r in requests:
        key, n = r.message
        keys.setdefault(key, []).append(n)
    return keys


async def test_posted_messages_fan_out_once_per_destination_signed_and_in_order(
    tmp_path: Path,
) -> None:
    """NODE-1: concurrent POSTs on 3 keys reach both destinations once each, in key order, signed, with their ids."""
    keys, per_key = ["k0", "k1", "k2"], 10
    async with running_sink() as sink, running_node(node_config(tmp_path, fan_out(sink))) as node:
        ids: dict[tuple[str, int], str] = {}
        async with httpx.AsyncClient(base_url=node.base) as client:

            async def sender(key: str) -> None:
                # One client per key posts in order; the keys run concurrently.
                for n in range(per_key):
                    r = await post(
                        client,
                        "orders",
                        message_body(key, n),
                        key=key,
                        idempotency_key=f"{key}-{n}",
                    )
                    assert r.status_code == 202
                    assert r.json()["duplicate"] is False
                    ids[key, n] = r.json()["id"]

            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(sender, key)
            again = await post(
                client, "orders", message_body("k0", 0), key="k0", idempotency_key="k0-0"
            )
        total = len(keys) * per_key
        await sink.wait_for(lambda: len(sink.delivered("/a")) == len(sink.delivered("/b")) == total)

    assert again.status_code == 200
    assert again.json() == {"id": ids["k0", 0], "duplicate": True}
    assert len(set(ids.values())) == total
    expected = {key: list(range(per_key)) for key in keys}
    for path in ("/a", "/b"):
        delivered = sink.delivered(path)
        assert in_order(delivered) == expected
        assert len(sink.received) == 2 * total  # nothing sent twice, the duplicate never
        secret = SigningSecret(SECRET)
        for r in delivered:
            key, n = r.message
            assert r.idempotency_key == f"{key}-{n}"
            assert r.headers["content-type"] == "application/json"
            webhook_id = verify([secret], headers=r.headers, body=r.body, now=time.time())
            assert webhook_id == r.headers["webhook-id"]
            assert webhook_id.startswith(ids[key, n] + "-")
    webhook_ids = Counter(r.headers["webhook-id"] for r in sink.received)
    assert set(webhook_ids.values()) == {1}


async def test_a_stopped_node_leaves_no_connection_to_its_destinations_open(
    tmp_path: Path,
) -> None:
    """After the tree stops, the destinations' connection pools are closed: no socket to the sink is left."""
    async with running_sink() as sink:
        async with running_node(node_config(tmp_path, fan_out(sink))) as node:
            async with httpx.AsyncClient(base_url=node.base) as client:
                for n in range(3):
                    r = await post(client, "orders", message_body(f"k{n}", 0), key=f"k{n}")
                    assert r.status_code == 202
            await sink.wait_for(lambda: len(sink.delivered("/a")) == len(sink.delivered("/b")) == 3)
            assert connections_to(sink.port) >= 1
        assert connections_to(sink.port) == 0


async def test_an_outage_opens_the_breaker_and_recovery_delivers_everything_once_in_order(
    tmp_path: Path,
) -> None:
    """``a`` answers 503 until its breaker opens, then 200: closed, open, half_open, closed; no loss, no dead letter."""
    outage = True

    def answer(request: Received) -> int:
        return 503 if outage and request.path == "/a" else 200

    breaker = {
        "window_size": 4,
        "minimum_calls": 4,
        "failure_rate_threshold": 50,
        "wait_in_open": "300ms",
        "half_open_calls": 1,
    }
    keys, per_key = ["k0", "k1", "k2", "k3"], 5
    with capture_spans() as exporter:
        async with running_sink(answer) as sink:
            document = fan_out(sink, retry={"schedule": ["50ms"] * 30}, breaker=breaker)
            async with running_node(node_config(tmp_path, document)) as node:
                gateway = node.parts.gateway
                async with httpx.AsyncClient(base_url=node.base) as client:
                    for n in range(per_key):
                        for key in keys:
                            r = await post(client, "orders", message_body(key, n), key=key)
                            assert r.status_code == 202

                async def is_open() -> bool:
                    await anyio.lowlevel.checkpoint()
                    return gateway.statistics().destinations["a"].breaker is BreakerState.OPEN

                await wait_until(is_open)
                outage = False
                total = len(keys) * per_key
                await sink.wait_for(
                    lambda: len(sink.delivered("/a")) == len(sink.delivered("/b")) == total
                )

                async def settled() -> bool:
                    await anyio.lowlevel.checkpoint()
                    destinations = gateway.statistics().destinations
                    return destinations["a"].succeeded == destinations["b"].succeeded == total

                await wait_until(settled)  # the sink answered; the gateway settles after
                stats = gateway.statistics().destinations
                dead = await node.parts.dead_letters.store.count()
    changes = [
        (
            (s.attributes or {})[ATTR_GATEWAY_BREAKER_OLD_STATE],
            (s.attributes or {})[ATTR_GATEWAY_BREAKER_NEW_STATE],
        )
        for s in exporter.get_finished_spans()
        if s.name == SPAN_GATEWAY_BREAKER_TRANSITION
    ]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    expected = {key: list(range(per_key)) for key in keys}
    assert in_order(sink.delivered("/a")) == expected
    assert in_order(sink.delivered("/b")) == expected
    assert [status for r, status in sink.answered if r.path == "/b"] == [200] * total
    assert stats["a"].breaker is BreakerState.CLOSED
    assert (stats["a"].succeeded, stats["a"].dead_lettered) == (total, 0)
    assert stats["a"].retried == sum(1 for _, status in sink.answered if status == 503)
    assert stats["a"].retried >= 4
    assert (stats["b"].succeeded, stats["b"].dead_lettered) == (total, 0)
    assert dead == 0


async def outbox_message(
    config: NodeConfig, entry_id: str, destination: str
) -> OutboxMessage | None:
    """The outbox's message for *entry_id* and *destination*, read from the file after a stop."""
    async with open_outbox(config.node.outbox_path) as outbox:
        return await outbox.get(handover_message_id(entry_id, destination))


async def test_a_drain_refuses_new_posts_settles_released_attempts_and_keeps_held_ones(
    tmp_path: Path,
) -> None:
    """NODE-3: stopping, a POST gets 503, the one in flight 202; a released attempt settles, a held one is pending again and resent with its key."""
    release_quick, never = anyio.Event(), anyio.Event()
    holding = True

    async def hold(request: Received) -> int:
        key, _ = request.message
        if holding:
            # The first node's attempts: "quick" until released, "slow" for good.
            await (release_quick if key == "quick" else never).wait()
        return 200

    async with running_sink(hold) as sink:
        document = {
            "ingest": {"routes": {"orders": {"destinations": ["a"]}}},
            "gateway": {"destinations": {"a": destination(sink, "/a")}},
            "drain": {"budget": "1s"},
        }
        config = node_config(tmp_path, document)
        async with running_node(config) as node:
            ingest = node.parts.ingest
            async with httpx.AsyncClient(base_url=node.base) as client:
                slow = await post(client, "orders", message_body("slow", 0), key="slow")
                quick = await post(client, "orders", message_body("quick", 0), key="quick")
                await sink.wait_for(lambda: len(sink.received) == 2)
                body_sent, answers = anyio.Event(), {}

                async def chunks() -> AsyncIterator[bytes]:
                    yield b'{"key": "late", '
                    await body_sent.wait()
                    yield b'"n": 0}'

                async def in_flight() -> None:
                    r = await client.post(
                        "/v1/routes/orders/messages",
                        content=chunks(),
                        headers={"X-Otpy-Key": "late", "Content-Type": "application/json"},
                    )
                    answers["in_flight"] = r

                async with anyio.create_task_group() as tg:
                    tg.start_soon(in_flight)

                    async def ingest_busy() -> bool:
                        await anyio.lowlevel.checkpoint()
                        return ingest.in_flight == 1

                    await wait_until(ingest_busy)
                    tg.start_soon(node.stop)

                    async def draining() -> bool:
                        await anyio.lowlevel.checkpoint()
                        return ingest.draining

                    await wait_until(draining)
                    async with httpx.AsyncClient(base_url=node.base) as other:
                        refused = await post(other, "orders", message_body("new", 0), key="new")
                    body_sent.set()

                    async def gateway_draining() -> bool:
                        await anyio.lowlevel.checkpoint()
                        return node.node.whereis("ingest.handover") is None

                    await wait_until(gateway_draining)
                    release_quick.set()
            assert node.stopped
        late = answers["in_flight"]
        assert (slow.status_code, quick.status_code, late.status_code) == (202, 202, 202)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {"error": "draining", "detail": "the node is stopping"}
        # The first node settled only the attempt released within its drain.
        assert [(r.message, s) for r, s in sink.answered] == [(("quick", 0), 200)]
        held = await outbox_message(config, slow.json()["id"], "a")
        assert held is not None
        slow_key = handover_message_id(slow.json()["id"], "a")
        assert (held.state, held.idempotency_key) == (OutboxState.PENDING, slow_key)
        assert await outbox_message(config, quick.json()["id"], "a") is None

        holding = False
        async with running_node(config) as node:
            await sink.wait_for(lambda: len(sink.answered) == 3)
            dead = await node.parts.dead_letters.store.count()
    after = [r for r, _ in sink.answered[1:]]
    assert sorted(r.message for r in after) == [("late", 0), ("slow", 0)]
    assert [s for _, s in sink.answered] == [200, 200, 200]
    # "late" may have had a first attempt held too (if it was handed over before the
    # gateway stopped claiming): every attempt of a message carries the same keys.
    attempts: dict[tuple[str, int], set[tuple[str, str]]] = {}
    for r in sink.received:
        attempts.setdefault(r.message, set()).add((r.idempotency_key, r.headers["webhook-id"]))
    assert attempts[("slow", 0)] == {(slow_key, slow_key)}
    assert len(attempts[("late", 0)]) == 1
    assert sink.received[0].message == ("slow", 0)
    assert dead == 0


def counted(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, object], ...], int]:
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


async def stop_handover(node: RunningNode) -> otpy.SupervisorRef:
    """Stop the hand-over child (a stalled hand-over): the journal keeps what is accepted."""
    ref = node.supervisor.child("ingest")
    assert ref is not None
    ingest = otpy.SupervisorRef(ref)
    await ingest.terminate_child("handover")
    return ingest


async def test_overload_is_refused_429_by_reason_within_the_journal_budget_and_counted(
    tmp_path: Path,
) -> None:
    """With the hand-over stalled: shed, route_full and journal_full 429s with Retry-After, counted; every 202 delivered, no 429."""
    max_bytes = 3000
    async with running_sink() as sink:
        document = {
            "ingest": {
                "max_bytes": max_bytes,
                "routes": {
                    "orders": {"destinations": ["a"], "pressure": {"capacity": 20}},
                    "bulk": {"destinations": ["a"]},
                },
            },
            "gateway": {"destinations": {"a": destination(sink, "/a")}},
        }
        with capture_metrics() as reader:
            async with running_node(node_config(tmp_path, document)) as node:
                ingest = await stop_handover(node)
                answers: list[tuple[bytes, httpx.Response]] = []
                async with httpx.AsyncClient(base_url=node.base) as client:

                    async def send(route: str, key: str, n: int, priority: str) -> None:
                        body = message_body(key, n) + (b" " * 500 if route == "bulk" else b"")
                        r = await post(
                            client, route, body, key=key, **{"X-Otpy-Priority": priority}
                        )
                        answers.append((body, r))

                    for n in range(19):  # 19 of 20: the shed level
                        await send("orders", "steady", n, "normal")
                    async with anyio.create_task_group() as tg:
                        for n in range(5):
                            tg.start_soon(send, "orders", "low", n, "low")
                    async with anyio.create_task_group() as tg:
                        for n in range(5):
                            tg.start_soon(send, "orders", "normal", n, "normal")
                    async with anyio.create_task_group() as tg:
                        for n in range(10):
                            tg.start_soon(send, "bulk", f"bulk{n}", 0, "normal")
                used = (await node.parts.journal.statistics()).bytes_used
                data = reader.get_metrics_data()
                await ingest.restart_child("handover")
                accepted = [body for body, r in answers if r.status_code == 202]
                await sink.wait_for(lambda: len(sink.delivered("/a")) == len(accepted))
    refused = [(body, r) for body, r in answers if r.status_code == 429]
    reasons = Counter(r.json()["error"] for _, r in refused)
    bulk_accepted = sum(1 for body, r in answers if r.status_code == 202 and b"bulk" in body)
    assert {r.status_code for _, r in answers} == {202, 429}
    assert reasons == {"shed": 5, "route_full": 4, "journal_full": 10 - bulk_accepted}
    assert 1 <= bulk_accepted < 10
    assert {r.headers["Retry-After"] for _, r in refused} == {"1"}
    assert len(accepted) == 19 + 1 + bulk_accepted
    assert used <= max_bytes
    by = (ATTR_INGEST_REASON, ATTR_INGEST_ROUTE)
    assert counted(data, METRIC_INGEST_REFUSED) == {
        tuple(zip(by, ("journal_full", "bulk"), strict=True)): reasons["journal_full"],
        tuple(zip(by, ("route_full", "orders"), strict=True)): 4,
        tuple(zip(by, ("shed", "orders"), strict=True)): 5,
    }
    assert sorted(r.body for r in sink.delivered("/a")) == sorted(accepted)
    assert len(sink.received) == len(accepted)


async def test_a_dead_lettered_400_is_replayed_once_with_its_original_idempotency_key(
    tmp_path: Path,
) -> None:
    """A 400 is dead-lettered with its destination, key and status; replayed after the fix, it arrives once, same key."""
    broken = True

    def answer(request: Received) -> int:
        return 400 if broken else 200

    async with running_sink(answer) as sink:
        document = {
            "ingest": {"routes": {"orders": {"destinations": ["a"]}}},
            "gateway": {"destinations": {"a": destination(sink, "/a")}},
        }
        async with running_node(node_config(tmp_path, document)) as node:
            store = node.parts.dead_letters
            async with httpx.AsyncClient(base_url=node.base) as client:
                r = await post(
                    client, "orders", message_body("bad", 0), key="bad", idempotency_key="order-7"
                )
            assert r.status_code == 202

            async def dead_lettered() -> bool:
                return await store.store.count() == 1

            await wait_until(dead_lettered)
            [record] = (await store.store.list(DeadLetterFilter(), limit=10)).records
            broken = False
            result = await Replayer.from_spec(node.child("replay")).replay(record.id)
            await sink.wait_for(lambda: len(sink.delivered("/a")) == 1)
            again = await Replayer.from_spec(node.child("replay")).replay(record.id)
    assert str(record.source) == "outbound"
    assert record.reason_class == "http.400"
    attributes = dict(record.attributes)
    assert attributes["messaging.destination.name"] == "a"
    assert attributes["otpy.ordering_key"] == "bad"
    assert attributes["http.response.status_code"] == "400"
    assert record.idempotency_key == "order-7"
    assert result.outcome == "replayed"
    assert again.outcome != "replayed"
    assert [(r.message, s) for r, s in sink.answered] == [(("bad", 0), 400), (("bad", 0), 200)]
    first, replayed = (r for r, _ in sink.answered)
    assert first.idempotency_key == replayed.idempotency_key == "order-7"


async def test_a_restart_delivers_everything_accepted_and_backfills_the_journal_at_its_rate(
    tmp_path: Path,
) -> None:
    """Accepted while disabled or stalled, stopped, restarted and enabled: all delivered once, in order; the backfill runs at rate 200."""
    async with running_sink() as sink:
        document = {
            "ingest": {
                "routes": {"orders": {"destinations": ["a"]}},
                "backfill": {"rate": 200},
            },
            "gateway": {"destinations": {"a": destination(sink, "/a")}},
        }
        config = node_config(tmp_path, document)
        keys = ["k0", "k1", "k2"]
        async with running_node(config) as node:
            await node.parts.gateway.disable("a")
            async with httpx.AsyncClient(base_url=node.base) as client:
                for key in keys:  # handed over to a disabled destination: the outbox keeps them
                    r = await post(client, "orders", message_body(key, 0), key=key)
                    assert r.status_code == 202

                async def in_outbox() -> bool:
                    return node.parts.handover.statistics().handed_over == 3

                await wait_until(in_outbox)
                await stop_handover(node)
                for n in range(1, 51):  # the hand-over stalled: the journal keeps them
                    for key in keys:
                        r = await post(client, "orders", message_body(key, n), key=key)
                        assert r.status_code == 202
            depth = (await node.parts.journal.statistics()).depth
        assert depth == 150
        assert sink.received == []
        with capture_spans() as exporter:
            async with running_node(config) as node:
                disabled = node.parts.gateway.disabled()
                await node.parts.gateway.enable("a")
                await sink.wait_for(lambda: len(sink.delivered("/a")) == 153)
                handover = node.parts.handover.statistics()
                dead = await node.parts.dead_letters.store.count()
    assert list(disabled) == ["a"]
    [backfill] = [s for s in exporter.get_finished_spans() if s.name == SPAN_INGEST_BACKFILL]
    attributes = dict(backfill.attributes or {})
    assert attributes[ATTR_INGEST_BACKFILL_RATE] == 200.0
    assert attributes[ATTR_INGEST_BACKFILL_BACKLOG] == 150
    assert attributes[ATTR_INGEST_BACKFILL_HANDED_OVER] == 150
    assert (handover.handed_over, handover.backfills, handover.backfilling) == (150, 1, False)
    assert in_order(sink.delivered("/a")) == {key: list(range(51)) for key in keys}
    assert [s for _, s in sink.answered] == [200] * 153
    assert dead == 0
