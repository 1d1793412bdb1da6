"""gen_server semantics of otpy.Actor (ACT-1..ACT-8, ACT-11, ACT-14, ACT-15)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import otpy
from otpy.testing import CrashInjected, inject_crash, virtual_time


class Counter(otpy.Actor):
    async def init(self, start: int = 0) -> None:
        self.count = start
        self.secret = "hunter2"

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "get":
            return self.count
        if message == "boom":
            raise ValueError("boom")
        if message == "defer":
            self.deferred = caller
            return otpy.NO_REPLY
        if message == "answer":
            self.deferred.reply("later")
            return "done"
        if message == "never":
            return otpy.NO_REPLY
        if isinstance(message, tuple) and message[0] == "stop":
            self.stop(message[1])
            return "stopping"
        return await super().handle_call(message, caller)

    async def handle_cast(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("cast crash")
        self.count += message


class Recorder(otpy.Actor):
    """Records every info it gets; answers ("seen") with the list."""

    async def init(self, log: list[Any] | None = None) -> None:
        self.seen: list[Any] = log if log is not None else []

    async def handle_info(self, message: Any) -> None:
        self.seen.append(message)

    async def handle_cast(self, message: Any) -> None:
        self.seen.append(message)

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "seen":
            return list(self.seen)
        return await super().handle_call(message, caller)


async def test_act_1_call_returns_the_handlers_reply() -> None:
    """ACT-1: call returns what handle_call returned; casts are applied in order first."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter, 5)
        await ref.cast(2)
        await ref.cast(3)
        assert await ref.call("get") == 10


class TestCallTimeout:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return virtual_time()

    async def test_act_1_call_times_out_with_typed_error_and_server_keeps_running(self) -> None:
        """ACT-1: no reply within the timeout raises CallTimeout (a TimeoutError) at exactly t+timeout."""
        async with otpy.open_node() as node:
            ref = await node.spawn(Counter)
            start = anyio.current_time()
            with pytest.raises(
                otpy.CallTimeout, match=r"^call to 'Counter#1' got no reply within 2s"
            ):
                await ref.call("never", timeout=2.0)
            assert anyio.current_time() - start == 2.0
            assert ref.is_alive
            assert await ref.call("get") == 0

    async def test_act_1_default_call_timeout_is_five_seconds(self) -> None:
        """ACT-1: the default timeout is 5 s."""
        async with otpy.open_node() as node:
            ref = await node.spawn(Counter)
            start = anyio.current_time()
            with pytest.raises(TimeoutError):
                await ref.call("never")
            assert anyio.current_time() - start == 5.0

    async def test_act_1_late_reply_never_surfaces(self) -> None:
        """ACT-1: a reply sent after the caller timed out is dropped; the next call gets its own reply."""
        async with otpy.open_node() as node:
            ref = await node.spawn(Counter)
            with pytest.raises(otpy.CallTimeout):
                await ref.call("defer", timeout=1.0)
            assert await ref.call("answer") == "done"
            assert await ref.call("get") == 0

    async def test_act_7_idle_timeout_fires_only_without_messages(self) -> None:
        """ACT-7: IdleTimeout arrives after the idle period; a message in between cancels it."""

        class Idle(otpy.Actor):
            async def init(self) -> None:
                self.seen: list[tuple[str, float]] = []
                self.set_idle_timeout(10.0)

            async def handle_info(self, message: Any) -> None:
                self.seen.append((type(message).__name__, anyio.current_time()))

            async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
                if message == "arm":
                    self.set_idle_timeout(10.0)
                return self.seen

        async with otpy.open_node() as node:
            start = anyio.current_time()
            ref = await node.spawn(Idle)
            await anyio.sleep(5.0)
            await ref.call("arm")  # a message at t=5 cancels the first, arms a new one
            await anyio.sleep(20.0)
            seen = await ref.call("seen")
            assert seen == [("IdleTimeout", start + 15.0)]

    async def test_act_6_init_exceeding_start_timeout_is_killed(self) -> None:
        """ACT-6: init longer than start_timeout: start fails with timeout, terminate not called."""
        terminated: list[object] = []

        class Slow(otpy.Actor):
            async def init(self) -> None:
                await anyio.sleep(100)

            async def terminate(self, reason: object) -> None:
                terminated.append(reason)

        async with otpy.open_node() as node:
            with pytest.raises(otpy.SpawnError, match="did not finish init within 1s") as info:
                await node.spawn(Slow, start_timeout=1.0, name="slow")
            assert info.value.reason == "timeout"
            assert terminated == []
            assert node.whereis("slow") is None

    async def test_timers_deliver_after_delay_and_can_be_cancelled(self) -> None:
        """send_after delivers at exactly the delay; a cancelled timer never delivers."""

        class Timed(otpy.Actor):
            async def init(self) -> None:
                self.seen: list[tuple[Any, float]] = []
                self.send_after(3.0, "a")
                self.cancelled = self.send_after(2.0, "b")
                self.cancelled.cancel()

            async def handle_info(self, message: Any) -> None:
                self.seen.append((message, anyio.current_time()))

            async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
                return self.seen

        async with otpy.open_node() as node:
            start = anyio.current_time()
            ref = await node.spawn(Timed)
            await anyio.sleep(10)
            assert await ref.call("seen") == [("a", start + 3.0)]


async def test_act_2_call_to_dead_actor_fails_immediately() -> None:
    """ACT-2: call to an exited actor raises ActorStopped at once, not after the timeout."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        await ref.stop()
        with pytest.raises(otpy.ActorStopped, match="is not running"):
            await ref.call("get", timeout=None)


async def test_act_2_actor_dying_mid_call_gives_caller_its_exit_reason() -> None:
    """ACT-2/ACT-5: the handler raising gives the caller ActorExited carrying the exception."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        with pytest.raises(otpy.ActorExited) as info:
            await ref.call("boom")
        assert isinstance(info.value.reason, ValueError)
        assert isinstance(ref.exit_reason, ValueError)


async def test_act_2_deferred_caller_gets_exit_reason_when_actor_dies() -> None:
    """ACT-2: a caller whose reply was deferred is told the exit reason when the actor crashes."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        result: list[BaseException] = []

        async def caller() -> None:
            try:
                await ref.call("defer", timeout=None)
            except otpy.ActorExited as exc:
                result.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await anyio.wait_all_tasks_blocked()
            inject_crash(ref)
        assert isinstance(result[0], otpy.ActorExited)
        assert isinstance(result[0].reason, CrashInjected)


async def test_act_3_deferred_reply_from_another_task() -> None:
    """ACT-3: NO_REPLY then caller.reply() later answers the original caller."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        replies: list[Any] = []

        async def waiting_caller() -> None:
            replies.append(await ref.call("defer"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting_caller)
            await anyio.wait_all_tasks_blocked()
            assert await ref.call("answer") == "done"
        assert replies == ["later"]


async def test_act_4_cast_to_dead_actor_never_raises_and_is_a_dead_letter() -> None:
    """ACT-4/ACT-13: cast and send to an exited actor return normally and publish a dead letter."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        await ref.stop()
        with node.dead_letters.subscribe() as events:
            await ref.cast(1)
            ref.cast_nowait(2)
            await ref.send("x")
            first = await events.receive()
        assert (first.recipient, first.kind, first.reason, first.message) == (
            ref.label,
            "cast",
            "actor_stopped",
            1,
        )
        assert node.dead_letters.statistics().by_reason["actor_stopped"] == 3


class Nudge(otpy.DeadLetterSuppression):
    """An actor's own housekeeping message: never a dead letter."""


async def test_act_13_signals_and_suppressed_messages_are_counted_not_published() -> None:
    """ACT-13: Down, Exit and DeadLetterSuppression messages to a dead actor are only counted.

    They are notifications, not work: a durable dead-letter router must not store them
    (Akka's DeadLetterSuppression). An ordinary message is still published.
    """
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        other = await node.spawn(Counter)
        await ref.stop()
        with node.dead_letters.subscribe() as events:
            await ref.send(Nudge())
            await ref.send(otpy.Exit(other, otpy.NORMAL))
            await ref.send("work")
            first = await events.receive()
        assert first.message == "work"
        stats = node.dead_letters.statistics()
        assert (stats.total, stats.suppressed) == (1, 2)
        await other.stop()


async def test_act_4_casts_from_one_sender_arrive_in_order() -> None:
    """ACT-4: casts from one sender are handled in send order."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Recorder)
        for i in range(500):
            await ref.cast(i)
        assert await ref.call("seen") == list(range(500))


async def test_act_5_unexpected_info_is_logged_by_type_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ACT-5: an info with no handler is logged (type only, never content) and the actor lives on."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter)
        with caplog.at_level(logging.WARNING, logger="otpy.actor"):
            await ref.send({"password": "s3cret"})
            assert await ref.call("get") == 0
        assert "unexpected info of type dict" in caplog.text
        assert "s3cret" not in caplog.text


async def test_act_5_call_without_handler_crashes_with_typed_error_naming_the_message() -> None:
    """ACT-5: a call the actor does not handle crashes it; the caller gets UnhandledMessage as the reason."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Recorder)
        with pytest.raises(otpy.ActorExited) as info:
            await ref.call(42)
        assert isinstance(info.value.reason, otpy.UnhandledMessage)
        assert "received a call of type int" in str(info.value.reason)


async def test_act_5_cast_without_handler_crashes() -> None:
    """ACT-5: a cast the actor does not handle crashes it with UnhandledMessage."""

    class NoCast(otpy.Actor):
        pass

    async with otpy.open_node() as node:
        ref = await node.spawn(NoCast)
        await ref.cast("x")
        reason = await ref.wait_exited()
        assert isinstance(reason, otpy.UnhandledMessage)


async def test_act_6_init_raising_fails_start_without_terminate() -> None:
    """ACT-6: init raising makes spawn fail with the reason; terminate is not called; name released."""
    terminated: list[object] = []

    class Bad(otpy.Actor):
        async def init(self) -> None:
            raise KeyError("config")

        async def terminate(self, reason: object) -> None:
            terminated.append(reason)

    async with otpy.open_node() as node:
        with pytest.raises(otpy.SpawnError, match="failed to start: KeyError") as info:
            await node.spawn(Bad, name="bad")
        assert isinstance(info.value.reason, KeyError)
        assert terminated == []
        assert node.whereis("bad") is None
        # the name is free for an immediate retry (ACT-11)
        await node.spawn(Counter, name="bad")


async def test_act_6_init_stop_fails_start_with_reason() -> None:
    """ACT-6: self.stop(reason) in init fails the start with that reason."""

    class Refuses(otpy.Actor):
        async def init(self) -> None:
            self.stop("no_config")

    async with otpy.open_node() as node:
        with pytest.raises(otpy.SpawnError) as info:
            await node.spawn(Refuses)
        assert info.value.reason == "no_config"


async def test_act_6_init_ignore() -> None:
    """ACT-6: init returning IGNORE makes spawn raise SpawnError('ignore'); nothing keeps running."""

    class Ignored(otpy.Actor):
        async def init(self) -> Any:
            return otpy.IGNORE

    async with otpy.open_node() as node:
        with pytest.raises(otpy.SpawnError) as info:
            await node.spawn(Ignored, name="ignored")
        assert info.value.reason == "ignore"
        assert node.whereis("ignored") is None
        assert node.live_actors == 0


async def test_act_7_continue_runs_before_the_next_message() -> None:
    """ACT-7: a continue step requested in init runs before any queued message."""

    class Continues(otpy.Actor):
        async def init(self) -> None:
            self.log: list[str] = []
            self.continue_with("warm-up")

        async def handle_continue(self, argument: Any) -> None:
            self.log.append(f"continue:{argument}")
            if argument == "warm-up":
                self.continue_with("second")

        async def handle_cast(self, message: Any) -> None:
            self.log.append(f"cast:{message}")

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            return self.log

    async with otpy.open_node() as node:
        ref = await node.spawn(Continues)
        await ref.cast("a")
        assert await ref.call("log") == ["continue:warm-up", "continue:second", "cast:a"]


async def test_act_8_terminate_runs_on_stop_and_crash_but_not_on_kill() -> None:
    """ACT-8: terminate sees the reason on stop and on a crash; a brutal kill skips it."""
    reasons: list[object] = []

    class Tracked(otpy.Actor):
        async def handle_cast(self, message: Any) -> None:
            raise RuntimeError("crash")

        async def terminate(self, reason: object) -> None:
            reasons.append(reason)

    async with otpy.open_node() as node:
        a = await node.spawn(Tracked)
        assert await a.stop("normal") == "normal"
        b = await node.spawn(Tracked)
        await b.cast("x")
        await b.wait_exited()
        c = await node.spawn(Tracked)
        c.kill()
        assert await c.wait_exited() == otpy.KILLED
    assert reasons[0] == "normal"
    assert isinstance(reasons[1], RuntimeError)
    assert len(reasons) == 2


async def test_act_8_crash_report_is_logged_with_redacted_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ACT-8: an abnormal exit logs a crash report with state names/types only; normal stops log nothing."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter, name="counter")
        with caplog.at_level(logging.ERROR, logger="otpy.actor"):
            await ref.cast("crash")
            await ref.wait_exited()
        records = [r for r in caplog.records if hasattr(r, "otpy_report")]
        assert len(records) == 1
        report = records[0].otpy_report
        assert report["actor"] == "counter"
        assert report["last_message"] == "cast:str"
        assert report["state"] == {"count": "int", "secret": "str"}
        assert "hunter2" not in caplog.text
        caplog.clear()
        other = await node.spawn(Counter)
        with caplog.at_level(logging.ERROR, logger="otpy.actor"):
            await other.stop(otpy.SHUTDOWN)
        assert caplog.records == []


async def test_stop_with_reply_sends_reply_after_terminate() -> None:
    """OTP {stop, Reason, Reply}: the caller gets the reply, after terminate has run."""
    order: list[str] = []

    class Stopper(otpy.Actor):
        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            self.stop("normal")
            return "bye"

        async def terminate(self, reason: object) -> None:
            order.append("terminate")

    async with otpy.open_node() as node:
        ref = await node.spawn(Stopper)
        assert await ref.call("x") == "bye"
        order.append("reply")
        assert await ref.wait_exited() == "normal"
    assert order == ["terminate", "reply"]


async def test_calling_self_raises_instead_of_deadlocking() -> None:
    """An actor calling itself gets CallingSelf (OTP's calling_self)."""

    class Selfish(otpy.Actor):
        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            try:
                await self.ref.call("again")
            except otpy.CallingSelf as exc:
                return str(exc)
            return "no error"

    async with otpy.open_node() as node:
        ref = await node.spawn(Selfish, name="selfish")
        assert "called itself" in await ref.call("x")


async def test_act_11_names_unique_and_whereis() -> None:
    """ACT-11: a taken name fails with AlreadyStarted; whereis finds live actors, None otherwise."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter, name="c")
        assert otpy.whereis("c") is ref
        assert otpy.whereis("nobody") is None
        with pytest.raises(otpy.AlreadyStarted, match=r"^name 'c' is already registered"):
            await node.spawn(Counter, name="c")
        assert await ref.call("get") == 0


async def test_act_11_name_released_before_down_is_delivered() -> None:
    """ACT-11: when a watcher sees DOWN the name is already free, so it can re-register at once."""

    class Watcher(otpy.Actor):
        async def init(self, target: otpy.ActorRef) -> None:
            self.monitor(target)
            self.result: list[Any] = []

        async def handle_info(self, message: Any) -> None:
            if isinstance(message, otpy.Down):
                self.result.append(self.node.whereis("svc"))
                new = await self.node.spawn(Counter, 7, name="svc")
                self.result.append(await new.call("get"))

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            return self.result

    async with otpy.open_node() as node:
        target = await node.spawn(Counter, name="svc")
        watcher = await node.spawn(Watcher, target)
        await target.stop()
        await anyio.wait_all_tasks_blocked()
        assert await watcher.call("result") == [None, 7]


async def test_act_14_stash_and_unstash_all_replays_in_order_before_new_messages() -> None:
    """ACT-14: stashed messages come back in their original order, before newer ones."""

    class Gate(otpy.Actor):
        stash_capacity = 3

        async def init(self) -> None:
            self.open = False
            self.log: list[Any] = []

        async def handle_cast(self, message: Any) -> None:
            if message == "open":
                self.open = True
                self.unstash_all()
            elif not self.open:
                self.stash()
            else:
                self.log.append(message)

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            if message == "log":
                return self.log
            if not self.open:
                return self.stash()
            return f"late:{message}"

    async with otpy.open_node() as node:
        ref = await node.spawn(Gate)
        await ref.cast(1)
        await ref.cast(2)
        replies: list[Any] = []

        async def call_while_closed() -> None:
            replies.append(await ref.call("q"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_while_closed)
            await anyio.wait_all_tasks_blocked()
            await ref.cast("open")
            await ref.cast(3)
        assert await ref.call("log") == [1, 2, 3]
        assert replies == ["late:q"]


async def test_act_14_stash_overflow_is_a_typed_error() -> None:
    """ACT-14: stashing beyond stash_capacity raises StashOverflow inside the handler."""
    errors: list[BaseException] = []

    class Small(otpy.Actor):
        stash_capacity = 1

        async def handle_cast(self, message: Any) -> None:
            try:
                self.stash()
            except otpy.StashOverflow as exc:
                errors.append(exc)

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            return len(errors)

    async with otpy.open_node() as node:
        ref = await node.spawn(Small)
        await ref.cast(1)
        await ref.cast(2)
        assert await ref.call("n") == 1
        assert "stash is full (1 messages)" in str(errors[0])


async def test_act_15_status_statistics_suspend_resume() -> None:
    """ACT-15: get_status shows redacted state; suspend holds messages until resume; statistics count."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Counter, 1, name="stats")
        status = await ref.get_status()
        assert status.state == {"count": "int", "secret": "str"}
        await ref.suspend()
        assert ref.statistics().state == "suspended"
        await ref.cast(1)
        await ref.cast(1)
        assert ref.statistics().queued == 2
        await ref.resume()
        assert await ref.call("get") == 3
        stats = ref.statistics()
        assert (stats.name, stats.state, stats.queued, stats.processed, stats.capacity) == (
            "stats",
            "running",
            0,
            3,
            1000,
        )
        await ref.stop()
        assert ref.statistics().state == "stopped"


async def test_spawn_outside_a_node_explains_what_to_do() -> None:
    """Using otpy.spawn with no node running gives a NodeError saying how to start one."""
    with pytest.raises(otpy.NodeError, match="open_node"):
        await otpy.spawn(Counter)


async def test_kill_stops_an_actor_whose_handler_swallows_cancellation() -> None:
    """ACT-9: a kill still ends an actor whose handler catches the cancellation and returns."""
    entered = anyio.Event()

    class Stubborn(otpy.Actor):
        async def handle_cast(self, message: Any) -> None:
            entered.set()
            try:
                await anyio.sleep_forever()
            except BaseException:  # the point of the test: a handler that swallows it
                return

    async with otpy.open_node() as node:
        ref = await node.spawn(Stubborn)
        await ref.cast("block")
        await entered.wait()
        ref.kill()
        assert await ref.wait_exited() == otpy.KILLED


async def test_node_exit_stops_plain_actors_with_terminate() -> None:
    """Leaving open_node stops plain actors gracefully too: terminate runs with reason shutdown."""
    terminated: list[object] = []

    class Plain(otpy.Actor):
        async def terminate(self, reason: object) -> None:
            terminated.append(reason)

    async with otpy.open_node() as node:
        ref = await node.spawn(Plain)
        events = node.dead_letters.subscribe()
    assert ref.exit_reason == otpy.SHUTDOWN
    assert terminated == [otpy.SHUTDOWN]
    assert node.live_actors == 0
    with events, pytest.raises(anyio.EndOfStream):
        await events.receive()
