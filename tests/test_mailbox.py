"""Bounded mailboxes and the dead-letter stream (ACT-12, ACT-13, SUP-14 stash by name)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import otpy
from otpy.testing import virtual_time


class Sink(otpy.Actor):
    """Collects casts; a 'get' call returns them."""

    async def init(self) -> None:
        self.got: list[Any] = []

    async def handle_cast(self, message: Any) -> None:
        self.got.append(message)

    async def handle_info(self, message: Any) -> None:
        self.got.append(("info", message))

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return self.got


def box(overflow: otpy.Overflow, capacity: int = 2, wait: float | None = 5.0) -> otpy.MailboxConfig:
    return otpy.MailboxConfig(capacity=capacity, overflow=overflow, wait_timeout=wait)


async def test_act_12_reject_policy_raises_mailbox_full_and_counts() -> None:
    """ACT-12: REJECT refuses the message with MailboxFull and counts the overflow; nothing is lost silently."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.REJECT))
        await ref.suspend()
        await ref.cast(1)
        await ref.cast(2)
        with pytest.raises(otpy.MailboxFull, match=r"^mailbox of 'Sink#1' is full \(2 messages\)"):
            await ref.cast(3)
        with pytest.raises(otpy.MailboxFull):
            ref.send_nowait(4)
        assert ref.statistics().overflows == 2
        await ref.resume()
        assert await ref.call("get") == [1, 2]


async def test_act_12_drop_newest_drops_incoming_to_dead_letters() -> None:
    """ACT-12: DROP_NEWEST keeps the queue, drops the new message to the dead-letter stream, counts it."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.DROP_NEWEST))
        await ref.suspend()
        with node.dead_letters.subscribe() as events:
            for i in range(4):
                await ref.cast(i)
            dropped = [(await events.receive()).message for _ in range(2)]
        assert dropped == [2, 3]
        assert ref.statistics().overflows == 2
        await ref.resume()
        assert await ref.call("get") == [0, 1]


async def test_act_12_drop_oldest_evicts_head_to_dead_letters() -> None:
    """ACT-12: DROP_OLDEST evicts the oldest queued message to make room; the eviction is a dead letter."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.DROP_OLDEST))
        await ref.suspend()
        with node.dead_letters.subscribe() as events:
            for i in range(4):
                ref.cast_nowait(i)
            evicted = [await events.receive() for _ in range(2)]
        assert [e.message for e in evicted] == [0, 1]
        assert {e.reason for e in evicted} == {"mailbox_full_dropped_oldest"}
        await ref.resume()
        assert await ref.call("get") == [2, 3]


async def test_act_12_wait_policy_blocks_sender_until_room() -> None:
    """ACT-12: WAIT makes the sender wait for room instead of dropping; order is kept."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=2, wait=None))
        await ref.suspend()
        sent: list[int] = []

        async def producer() -> None:
            for i in range(5):
                await ref.cast(i)
                sent.append(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert sent == [0, 1]  # the third cast is waiting for room
            assert ref.statistics().queued == 2
            await ref.resume()
        assert await ref.call("get") == [0, 1, 2, 3, 4]
        assert ref.statistics().overflows == 0


async def test_act_12_wait_policy_nowait_senders_raise() -> None:
    """ACT-12: cast_nowait cannot wait, so a full WAIT mailbox raises MailboxFull at once."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=1))
        await ref.suspend()
        ref.cast_nowait(1)
        with pytest.raises(otpy.MailboxFull):
            ref.cast_nowait(2)


async def test_act_12_waiting_sender_learns_when_actor_exits() -> None:
    """ACT-12: a sender waiting for room is released when the actor exits; its call fails typed."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=1, wait=None))
        await ref.suspend()
        await ref.cast(1)
        errors: list[BaseException] = []

        async def blocked_call() -> None:
            try:
                await ref.call("get", timeout=None)
            except otpy.ActorStopped as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_call)
            await anyio.wait_all_tasks_blocked()
            ref.kill()
        assert len(errors) == 1


async def test_cast_with_room_skips_the_checkpoint_even_in_a_cancelled_scope() -> None:
    """cast and send with room return without a checkpoint: an already-cancelled scope still delivers.

    The documented exception to "every async def is a checkpoint" (docs/concepts.md,
    "Cancellation"): honouring it would cost a cancel-scope lookup per message.
    """
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=2))
        await ref.suspend()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ref.cast("cast")
            await ref.send("send")
        assert not scope.cancelled_caught
        await ref.resume()
        assert await ref.call("get") == ["cast", ("info", "send")]


async def test_cast_that_waits_for_room_in_a_cancelled_scope_is_cancelled() -> None:
    """The twin: a cast or send that must wait for room checkpoints; a cancelled scope stops it, nothing queued."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=1, wait=None))
        await ref.suspend()
        await ref.cast("queued")
        for deliver in (ref.cast, ref.send):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await deliver("lost")
            assert scope.cancelled_caught
        assert ref.statistics().queued == 1
        await ref.resume()
        assert await ref.call("get") == ["queued"]


async def test_system_messages_bypass_capacity() -> None:
    """Monitor DOWNs reach a full mailbox: monitoring guarantees are not subject to capacity."""

    class Watch(Sink):
        async def init(self, target: otpy.ActorRef) -> None:  # type: ignore[override]
            await super().init()
            self.monitor(target)

    async with otpy.open_node() as node:
        target = await node.spawn(Sink)
        watcher = await node.spawn(Watch, target, mailbox=box(otpy.Overflow.REJECT, capacity=1))
        await watcher.suspend()
        await watcher.cast("fill")
        await target.stop()
        assert watcher.statistics().queued == 2
        await watcher.resume()
        got = await watcher.call("get")
        assert got[0] == "fill"
        assert isinstance(got[1][1], otpy.Down)


class TestWaitTimeout:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return virtual_time()

    async def test_act_12_wait_policy_times_out_with_mailbox_full(self) -> None:
        """ACT-12: WAIT gives up after wait_timeout with MailboxFull and counts an overflow."""
        async with otpy.open_node() as node:
            ref = await node.spawn(Sink, mailbox=box(otpy.Overflow.WAIT, capacity=1, wait=2.0))
            await ref.suspend()
            await ref.cast(1)
            start = anyio.current_time()
            with pytest.raises(otpy.MailboxFull, match="after waiting 2s"):
                await ref.cast(2)
            assert anyio.current_time() - start == 2.0
            assert ref.statistics().overflows == 1

    async def test_act_13_dead_letter_logging_is_rate_limited(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """ACT-13: the first 10 dead letters are logged, the rest suppressed, then a summary after the period."""
        async with otpy.open_node() as node:
            ref = await node.spawn(Sink)
            await ref.stop()
            with caplog.at_level(logging.INFO, logger="otpy.deadletters"):
                for i in range(25):
                    await ref.cast({"token": f"secret-{i}"})
                logged = [r for r in caplog.records if r.getMessage().startswith("dead letter")]
                assert len(logged) == 10
                assert "no more will be logged for 300s" in logged[-1].getMessage()
                await anyio.sleep(300)
                await ref.cast("after")
            assert "15 more dead letters were not logged" in caplog.text
            assert "secret-" not in caplog.text
            stats = node.dead_letters.statistics()
            assert (stats.total, stats.logs_suppressed) == (26, 15)


async def test_act_13_slow_subscriber_drops_are_counted() -> None:
    """ACT-13: a subscriber that falls behind its buffer misses events, and each miss is counted."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink)
        await ref.stop()
        with node.dead_letters.subscribe(max_buffer=2) as events:
            for i in range(5):
                await ref.cast(i)
            assert [events.receive_nowait().message for _ in range(2)] == [0, 1]
        assert node.dead_letters.statistics().subscriber_drops == 3


async def test_act_13_sinks_receive_every_event() -> None:
    """ACT-13: a sink (the seam for the durable store) gets each dead letter; removing it stops that."""
    seen: list[otpy.DeadLetterEvent] = []
    async with otpy.open_node() as node:
        remove = node.dead_letters.add_sink(seen.append)
        await node.named("nobody").cast("hello")
        remove()
        await node.named("nobody").cast("again")
    assert [(e.recipient, e.reason, e.message) for e in seen] == [("nobody", "noproc", "hello")]


async def test_named_ref_call_to_unknown_name_is_noproc() -> None:
    """ACT-2/ACT-11: a call by an unregistered name fails at once with ActorStopped(noproc)."""
    async with otpy.open_node() as node:
        with pytest.raises(otpy.ActorStopped, match="noproc"):
            await node.named("ghost").call("x")


async def test_act_12_dropped_calls_fail_with_mailbox_full() -> None:
    """ACT-12: a call dropped by DROP_NEWEST, or evicted by DROP_OLDEST, raises MailboxFull to its caller."""
    async with otpy.open_node() as node:
        newest = await node.spawn(Sink, mailbox=box(otpy.Overflow.DROP_NEWEST, capacity=1))
        await newest.suspend()
        await newest.cast("fill")
        with pytest.raises(otpy.MailboxFull):
            await newest.call("get")
        oldest = await node.spawn(Sink, mailbox=box(otpy.Overflow.DROP_OLDEST, capacity=1))
        await oldest.suspend()
        errors: list[BaseException] = []

        async def evicted_call() -> None:
            try:
                await oldest.call("get")
            except otpy.MailboxFull as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(evicted_call)
            await anyio.wait_all_tasks_blocked()
            await oldest.cast("newer")
        assert len(errors) == 1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"capacity": "10"}, r"^MailboxConfig: capacity must be an integer >= 1, got '10'"),
        ({"capacity": 1.5}, r"^MailboxConfig: capacity must be an integer >= 1, got 1.5"),
        ({"capacity": True}, r"^MailboxConfig: capacity must be an integer >= 1, got True"),
        ({"capacity": 10**30}, r"^MailboxConfig: capacity must be an integer <= 2\*\*53"),
        ({"overflow": "wait"}, r"^MailboxConfig: overflow must be one of Overflow.REJECT, "),
        (
            {"wait_timeout": True},
            r"^MailboxConfig: wait_timeout must be a finite number of seconds > 0",
        ),
        (
            {"wait_timeout": "5"},
            r"^MailboxConfig: wait_timeout must be .*, or None to wait forever, got '5'",
        ),
        (
            {"wait_timeout": float("nan")},
            r"^MailboxConfig: wait_timeout must be .*, or None to wait forever, got nan",
        ),
        (
            {"wait_timeout": float("inf")},
            r"^MailboxConfig: wait_timeout must be .*, or None to wait forever, got inf",
        ),
    ],
)
def test_mailbox_config_names_the_field_it_refuses(kwargs: dict[str, Any], pattern: str) -> None:
    """MailboxConfig(capacity='10') is an InvalidArgument naming capacity, not a bare comparison TypeError."""
    with pytest.raises(otpy.InvalidArgument, match=pattern) as info:
        otpy.MailboxConfig(**kwargs)
    assert info.value.argument == next(iter(kwargs))


async def test_twin_the_largest_mailbox_and_no_timeout_spawn() -> None:
    """Twin: capacity 2**53 with wait_timeout=None is a mailbox an actor runs with."""
    config = otpy.MailboxConfig(capacity=2**53, wait_timeout=None)
    async with otpy.open_node() as node:
        ref = await node.spawn(Sink, mailbox=config)
        await ref.cast(1)
        assert await ref.call("get") == [1]
        assert ref.statistics().capacity == 2**53
