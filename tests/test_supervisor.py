"""Supervisors: strategies, restart types, intensity, escalation, start/stop order, API
(SUP-1..SUP-13, SUP-15)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import otpy
from otpy import ChildSpec, Restart, Shutdown, Strategy, SupervisorFlags, SupervisorSpec
from otpy.testing import CrashInjected, crash_after, inject_crash, virtual_time

Log = list[tuple[str, str]]


class Worker(otpy.Actor):
    """Logs init/terminate into a shared list; 'exit' casts stop it with a reason."""

    async def init(self, tag: str, log: Log, terminate_takes: float = 0.0) -> None:
        self.tag = tag
        self.log = log
        self.terminate_takes = terminate_takes
        log.append(("init", tag))

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return self.tag

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, tuple) and message[0] == "exit":
            self.stop(message[1])

    async def terminate(self, reason: object) -> None:
        if self.terminate_takes:
            await anyio.sleep(self.terminate_takes)
        self.log.append(("terminate", self.tag))


class FailsInit(otpy.Actor):
    async def init(self, *args: Any) -> None:
        raise RuntimeError("cannot start")


def worker(tag: str, log: Log, **options: Any) -> ChildSpec:
    return ChildSpec(id=tag, start=Worker, args=(tag, log), **options)


async def crash(sup: otpy.SupervisorRef, child_id: str) -> otpy.ActorRef:
    """Crash a child and return its new incarnation once the supervisor has restarted it."""
    old = sup.child(child_id)
    assert old is not None
    inject_crash(old)
    return await sup.wait_child(child_id, other_than=old)


# -- strategies ------------------------------------------------------------------------


async def test_sup_1_one_for_one_restarts_only_the_crashed_child() -> None:
    """SUP-1: one_for_one gives the crashed child a fresh incarnation; siblings keep theirs."""
    log: Log = []
    specs = [worker(t, log) for t in "abc"]
    async with otpy.open_supervisor(specs) as sup:
        a, b, c = (sup.child(t) for t in "abc")
        new_b = await crash(sup, "b")
        assert new_b is not b
        assert (sup.child("a"), sup.child("c")) == (a, c)
        assert await new_b.call("tag") == "b"
        assert sup.statistics().children[1].restarts == 1
    inits = [tag for event, tag in log if event == "init"]
    assert inits[:4] == ["a", "b", "c", "b"]


async def test_sup_2_one_for_all_stops_others_in_reverse_then_restarts_all_in_order() -> None:
    """SUP-2: one_for_all stops the others in reverse start order, then starts all in order."""
    log: Log = []
    flags = SupervisorFlags(strategy=Strategy.ONE_FOR_ALL)
    async with otpy.open_supervisor([worker(t, log) for t in "abc"], flags=flags) as sup:
        log.clear()
        old = {t: sup.child(t) for t in "abc"}
        await crash(sup, "b")
        await sup.wait_child("c", other_than=old["c"])
        assert log == [
            ("terminate", "b"),  # the crash runs its own terminate (ACT-8)
            ("terminate", "c"),
            ("terminate", "a"),
            ("init", "a"),
            ("init", "b"),
            ("init", "c"),
        ]
        assert all(sup.child(t) is not old[t] for t in "abc")


async def test_sup_3_rest_for_one_restarts_the_child_and_those_after_it() -> None:
    """SUP-3: rest_for_one restarts the crashed child and later ones; earlier ones are untouched."""
    log: Log = []
    flags = SupervisorFlags(strategy=Strategy.REST_FOR_ONE)
    async with otpy.open_supervisor([worker(t, log) for t in "abcd"], flags=flags) as sup:
        log.clear()
        a = sup.child("a")
        old_d = sup.child("d")
        await crash(sup, "b")
        await sup.wait_child("d", other_than=old_d)
        assert log == [
            ("terminate", "b"),
            ("terminate", "d"),
            ("terminate", "c"),
            ("init", "b"),
            ("init", "c"),
            ("init", "d"),
        ]
        assert sup.child("a") is a


# -- restart types ----------------------------------------------------------------------


async def test_sup_4_permanent_child_is_restarted_after_normal_exit() -> None:
    """SUP-4: a permanent child is restarted whatever its reason, normal included."""
    log: Log = []
    async with otpy.open_supervisor([worker("p", log)]) as sup:
        old = sup.child("p")
        assert old is not None
        await old.cast(("exit", otpy.NORMAL))
        new = await sup.wait_child("p", other_than=old)
        assert new.is_alive


@pytest.mark.parametrize("reason", [otpy.NORMAL, otpy.SHUTDOWN, otpy.ShutdownWith("done")])
async def test_sup_4_transient_child_not_restarted_after_normal_exits(reason: object) -> None:
    """SUP-4: a transient child exiting normal/shutdown/ShutdownWith stays stopped, spec kept."""
    log: Log = []
    async with otpy.open_supervisor([worker("t", log, restart=Restart.TRANSIENT)]) as sup:
        old = sup.child("t")
        assert old is not None
        await old.cast(("exit", reason))
        await old.wait_exited()
        await anyio.wait_all_tasks_blocked()
        (info,) = sup.which_children()
        assert (info.id, info.ref, info.state) == ("t", None, "stopped")
        assert sup.statistics().total_restarts == 0


async def test_sup_4_transient_child_restarted_after_abnormal_exit() -> None:
    """SUP-4: a transient child that crashes is restarted."""
    log: Log = []
    async with otpy.open_supervisor([worker("t", log, restart=Restart.TRANSIENT)]) as sup:
        new = await crash(sup, "t")
        assert new.is_alive


async def test_sup_4_temporary_child_never_restarted_and_spec_removed() -> None:
    """SUP-4: a temporary child is never restarted and its spec disappears."""
    log: Log = []
    async with otpy.open_supervisor(
        [worker("keep", log), worker("tmp", log, restart=Restart.TEMPORARY)]
    ) as sup:
        tmp = sup.child("tmp")
        assert tmp is not None
        inject_crash(tmp)
        await tmp.wait_exited()
        await anyio.wait_all_tasks_blocked()
        assert [c.id for c in sup.which_children()] == ["keep"]


async def test_sup_4_temporary_sibling_not_restarted_by_one_for_all() -> None:
    """SUP-4: a temporary child stopped because a sibling crashed is not restarted."""
    log: Log = []
    flags = SupervisorFlags(strategy=Strategy.ONE_FOR_ALL)
    specs = [worker("a", log), worker("tmp", log, restart=Restart.TEMPORARY)]
    async with otpy.open_supervisor(specs, flags=flags) as sup:
        await crash(sup, "a")
        assert [c.id for c in sup.which_children()] == ["a"]


# -- intensity, escalation, retries (virtual time) ------------------------------------


class TestIntensity:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return virtual_time()

    async def test_sup_5_gives_up_when_intensity_exceeded(self) -> None:
        """SUP-5: intensity 3 in 5 s with a crash every 1 s gives up at exactly t=4.0."""
        flags = SupervisorFlags(intensity=3, period=5.0)
        start = anyio.current_time()
        with pytest.raises(otpy.RestartIntensityExceeded, match="4 restarts in 5s"):
            async with otpy.open_supervisor([crash_after(1.0, id="flaky")], flags=flags):
                await anyio.sleep_forever()
        assert anyio.current_time() - start == 4.0

    async def test_sup_5_twin_crash_every_2s_never_exhausts_intensity(self) -> None:
        """SUP-5 twin: a crash every 2 s never exceeds intensity 3 in 5 s (sliding window)."""
        flags = SupervisorFlags(intensity=3, period=5.0)
        async with otpy.open_supervisor([crash_after(2.0, id="flaky")], flags=flags) as sup:
            await anyio.sleep(100.5)
            stats = sup.statistics()
            assert stats.total_restarts == 50
            assert stats.restarts_in_window == 3
            assert sup.ref.is_alive

    async def test_sup_5_restart_exactly_period_old_still_counts(self) -> None:
        """SUP-5: with crashes every 2.5 s and period 5, the restart 5.0 s old still counts."""
        flags = SupervisorFlags(intensity=2, period=5.0)
        start = anyio.current_time()
        with pytest.raises(otpy.RestartIntensityExceeded):
            async with otpy.open_supervisor([crash_after(2.5, id="c")], flags=flags):
                await anyio.sleep_forever()
        assert anyio.current_time() - start == 7.5

    async def test_sup_5_intensity_zero_gives_up_on_first_crash(self) -> None:
        """SUP-5: intensity 0 gives up on the first crash."""
        start = anyio.current_time()
        with pytest.raises(otpy.RestartIntensityExceeded):
            async with otpy.open_supervisor(
                [crash_after(3.0, id="c")], flags=SupervisorFlags(intensity=0)
            ):
                await anyio.sleep_forever()
        assert anyio.current_time() - start == 3.0

    async def test_sup_5_window_counts_all_children_and_stops_them_in_reverse(self) -> None:
        """SUP-5: crashes of different children share one window; giving up stops children in reverse."""
        log: Log = []
        specs = [
            worker("first", log),
            crash_after(2.0, id="x"),
            crash_after(3.0, id="y"),
            worker("last", log),
        ]
        start = anyio.current_time()
        with pytest.raises(otpy.RestartIntensityExceeded):
            async with otpy.open_supervisor(specs, flags=SupervisorFlags(intensity=2, period=5.0)):
                await anyio.sleep_forever()
        # x crashes at 2, 4; y at 3: the third restart inside 5 s comes at t=4.
        assert anyio.current_time() - start == 4.0
        assert log[-2:] == [("terminate", "last"), ("terminate", "first")]

    async def test_sup_6_permanent_child_supervisor_that_gave_up_is_restarted_by_parent(
        self,
    ) -> None:
        """SUP-6: a permanent child supervisor that gave up is restarted and counts against the parent."""
        inner = SupervisorSpec(
            id="inner", children=[crash_after(1.0, id="c")], flags=SupervisorFlags(intensity=0)
        )
        async with otpy.open_supervisor(
            [inner], flags=SupervisorFlags(intensity=10, period=60)
        ) as sup:
            first = sup.child("inner")
            assert first is not None
            await anyio.sleep(1.0)
            second = await sup.wait_child("inner", other_than=first)
            assert isinstance(first.exit_reason, otpy.ShutdownWith)
            assert isinstance(first.exit_reason.detail, otpy.RestartIntensityExceeded)
            assert second.is_alive
            assert sup.statistics().total_restarts == 1

    async def test_sup_6_transient_child_supervisor_that_gave_up_is_not_restarted(self) -> None:
        """SUP-6: a transient child supervisor that gave up exits shutdown and stays down."""
        inner = SupervisorSpec(
            id="inner",
            children=[crash_after(1.0, id="c")],
            flags=SupervisorFlags(intensity=0),
            restart=Restart.TRANSIENT,
        )
        async with otpy.open_supervisor([inner]) as sup:
            first = sup.child("inner")
            assert first is not None
            await first.wait_exited()
            await anyio.wait_all_tasks_blocked()
            (info,) = sup.which_children()
            assert info.state == "stopped"
            assert sup.statistics().total_restarts == 0

    async def test_sup_6_product_of_intensities_before_root_gives_up(self) -> None:
        """SUP-6: escalation multiplies: inner 1/5s restarted by a root allowing 1/5s gives up at t=4."""
        inner = SupervisorSpec(
            id="inner", children=[crash_after(1.0, id="c")], flags=SupervisorFlags(intensity=1)
        )
        start = anyio.current_time()
        with pytest.raises(otpy.RestartIntensityExceeded, match="'root'"):
            async with otpy.open_supervisor(
                [inner], flags=SupervisorFlags(intensity=1), name="root"
            ):
                await anyio.sleep_forever()
        # inner gives up at t=2 (crashes at 1, 2), restarted; again at t=4: root's 2nd restart.
        assert anyio.current_time() - start == 4.0

    async def test_sup_7_child_failing_to_restart_is_retried_counting_and_supervisor_stays_responsive(
        self,
    ) -> None:
        """SUP-7: a restart that fails is retried through the mailbox, each try counting, until giving up."""

        class FailsOnRestart(otpy.Actor):
            async def init(self, log: list[str]) -> None:
                if log:
                    raise RuntimeError("dependency down")
                log.append("started")
                self.send_after(1.0, "crash")

            async def handle_info(self, message: Any) -> None:
                raise CrashInjected("crash")

        log: list[str] = []
        spec = ChildSpec(id="f", start=FailsOnRestart, args=(log,))
        sup_ref: list[otpy.SupervisorRef] = []
        states: list[str] = []
        with pytest.raises(otpy.RestartIntensityExceeded):
            async with otpy.open_supervisor([spec], flags=SupervisorFlags(intensity=3)) as sup:
                sup_ref.append(sup)
                await anyio.sleep(1.0)
                states.append(sup.which_children()[0].state)
                await anyio.sleep_forever()
        assert sup_ref[0].statistics().total_restarts == 4  # 1 restart + 3 retries, then over

    async def test_sup_14_backoff_delays_restarts_and_stash_holds_named_messages(self) -> None:
        """SUP-14: restarts wait min*2^n (jitter 0); casts by name during backoff reach the new incarnation."""
        log: Log = []

        class Named(Worker):
            async def handle_cast(self, message: Any) -> None:
                self.log.append(("cast", message))

        backoff = otpy.Backoff(minimum=1.0, maximum=3.0, jitter=0.0, reset_after=100.0)
        spec = ChildSpec(id="w", start=Named, args=("w", log), name="w", backoff=backoff)
        async with otpy.open_supervisor(
            [spec], flags=SupervisorFlags(intensity=10, period=60)
        ) as sup:
            named = otpy.named("w")
            times: list[float] = []
            for _ in range(4):
                old = sup.child("w")
                assert old is not None
                t0 = anyio.current_time()
                inject_crash(old)
                await old.wait_exited()
                await anyio.wait_all_tasks_blocked()
                assert sup.which_children()[0].state == "backing_off"
                await named.cast(len(times))
                await sup.wait_child("w", other_than=old)
                times.append(anyio.current_time() - t0)
            assert times == [1.0, 2.0, 3.0, 3.0]  # capped at maximum, never above
            await named.call("sync")
        casts: list[tuple[str, object]] = [entry for entry in log if entry[0] == "cast"]
        assert casts == [("cast", i) for i in range(4)]

    async def test_sup_14_backoff_resets_after_quiet_period(self) -> None:
        """SUP-14: after reset_after seconds without a crash the next delay is back to minimum."""
        log: Log = []
        backoff = otpy.Backoff(minimum=1.0, maximum=30.0, jitter=0.0, reset_after=10.0)
        spec = worker("w", log, backoff=backoff)
        async with otpy.open_supervisor(
            [spec], flags=SupervisorFlags(intensity=10, period=60)
        ) as sup:
            for expected in (1.0, 2.0):
                t0 = anyio.current_time()
                await crash(sup, "w")
                assert anyio.current_time() - t0 == expected
            await anyio.sleep(10.0)
            t0 = anyio.current_time()
            await crash(sup, "w")
            assert anyio.current_time() - t0 == 1.0

    async def test_sup_14_stash_overflow_is_counted_as_dropped(self) -> None:
        """SUP-14: messages by name beyond the stash capacity during backoff are dropped and counted."""
        log: Log = []
        backoff = otpy.Backoff(minimum=5.0, maximum=5.0, jitter=0.0)
        spec = worker("w", log, name="w", backoff=backoff, stash_capacity=2)
        async with otpy.open_supervisor([spec]) as sup:
            node = otpy.current_node()
            old = sup.child("w")
            assert old is not None
            inject_crash(old)
            await old.wait_exited()
            named = otpy.named("w")
            for i in range(5):
                named.cast_nowait(("n", i))
            assert named.stash_statistics() == (2, 3)
            assert node.dead_letters.statistics().by_reason["stash_full"] == 3

    async def test_sup_9_shutdown_timeout_asks_then_kills(self) -> None:
        """SUP-9: a worker slower than its shutdown timeout is killed exactly at the timeout."""
        log: Log = []
        spec = ChildSpec(id="slow", start=Worker, args=("slow", log, 100.0), shutdown=2.0)
        async with otpy.open_supervisor([spec]) as sup:
            start = anyio.current_time()
            await sup.terminate_child("slow")
            assert anyio.current_time() - start == 2.0
        assert ("terminate", "slow") not in log

    async def test_sup_9_infinity_waits_for_terminate(self) -> None:
        """SUP-9: shutdown=INFINITY waits however long terminate takes."""
        log: Log = []
        spec = ChildSpec(
            id="slow", start=Worker, args=("slow", log, 100.0), shutdown=Shutdown.INFINITY
        )
        async with otpy.open_supervisor([spec]) as sup:
            start = anyio.current_time()
            await sup.terminate_child("slow")
            assert anyio.current_time() - start == 100.0
        assert ("terminate", "slow") in log

    async def test_sup_10_dynamic_children_stop_concurrently(self) -> None:
        """SUP-10: a dynamic supervisor stops its children concurrently, not one after another."""
        log: Log = []
        template = ChildSpec(id="w", start=Worker, args=(), shutdown=10.0)
        spec = otpy.DynamicSupervisorSpec(child=template)
        async with otpy.open_node():
            sup = await otpy.start_supervisor(spec)
            for i in range(3):
                await sup.start_dynamic_child(f"w{i}", log, 2.0)
            start = anyio.current_time()
            await sup.stop()
            assert anyio.current_time() - start == 2.0
        assert sorted(e for e in log if e[0] == "terminate") == [
            ("terminate", f"w{i}") for i in range(3)
        ]


# -- start and stop order ---------------------------------------------------------------


async def test_sup_8_children_start_in_order_and_a_failure_rolls_back_in_reverse() -> None:
    """SUP-8: start fails naming child k; children 1..k-1 are stopped in reverse order."""
    log: Log = []
    specs = [
        worker("a", log),
        worker("b", log),
        ChildSpec(id="bad", start=FailsInit),
        worker("c", log),
    ]
    async with otpy.open_node():
        with pytest.raises(otpy.SpawnError, match="failed to start child 'bad'") as info:
            await otpy.start_supervisor(SupervisorSpec(children=specs))
        assert isinstance(info.value.reason, RuntimeError)
    assert log == [("init", "a"), ("init", "b"), ("terminate", "b"), ("terminate", "a")]


async def test_sup_9_shutdown_in_reverse_order_and_brutal_kill_skips_terminate() -> None:
    """SUP-9: stopping the supervisor stops children in reverse; BRUTAL_KILL skips terminate."""
    log: Log = []
    specs = [worker("a", log), worker("b", log, shutdown=Shutdown.BRUTAL_KILL), worker("c", log)]
    async with otpy.open_supervisor(specs):
        log.clear()
    assert log == [("terminate", "c"), ("terminate", "a")]


async def test_sup_10_dynamic_supervisor_extra_args_max_children_and_terminate_by_ref() -> None:
    """SUP-10: children start with template args + extra args; max_children enforced; stop by ref."""
    log: Log = []
    template = ChildSpec(id="w", start=Worker, args=("pool",), restart=Restart.TEMPORARY)
    spec = otpy.DynamicSupervisorSpec(child=ChildSpec(id="w", start=Worker), max_children=2)
    del template
    async with otpy.open_node():
        sup = await otpy.start_supervisor(spec)
        a = await sup.start_dynamic_child("a", log)
        await sup.start_dynamic_child("b", log)
        assert await a.call("tag") == "a"
        with pytest.raises(otpy.MaxChildren, match="max_children=2"):
            await sup.start_dynamic_child("c", log)
        await sup.terminate_child(a)
        assert not a.is_alive
        assert sup.count_children() == otpy.ChildCounts(specs=1, active=1, supervisors=0, workers=1)
        with pytest.raises(otpy.ChildError, match="simple_one_for_one"):
            await sup.restart_child("w")
        await sup.start_dynamic_child("c", log)
        new = await crash_dynamic(sup)
        assert new.is_alive


async def crash_dynamic(sup: otpy.SupervisorRef) -> otpy.ActorRef:
    old = sup.which_children()[0].ref
    assert old is not None
    inject_crash(old)
    await old.wait_exited()
    await anyio.wait_all_tasks_blocked()
    refs = [c.ref for c in sup.which_children()]
    assert old not in refs
    new = refs[-1]
    assert new is not None
    return new


# -- API ------------------------------------------------------------------------------


async def test_sup_15_restart_report_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """SUP-15: each restart logs an info report with the window count; nothing is built when INFO is off."""
    log: Log = []
    async with otpy.open_supervisor([worker("w", log)], name="top") as sup:
        with caplog.at_level(logging.INFO, logger="otpy.supervisor"):
            await crash(sup, "w")
        with caplog.at_level(logging.ERROR, logger="otpy.supervisor"):
            await crash(sup, "w")
    restarts = [r.__dict__["otpy_report"] for r in caplog.records if r.levelno == logging.INFO]
    assert len(restarts) == 1
    assert restarts[0]["context"] == "restart"
    assert restarts[0]["offender"]["id"] == "w"
    assert restarts[0]["restarts_in_window"] == 1
    assert "restarting w (1/3 restarts in 5s)" in caplog.text


async def test_sup_11_child_api_error_cases() -> None:
    """SUP-11: start_child/terminate_child/restart_child/delete_child with OTP's error cases."""
    log: Log = []
    async with otpy.open_supervisor([worker("a", log)]) as sup:
        with pytest.raises(otpy.ChildError, match="already_started"):
            await sup.start_child(worker("a", log))
        b = await sup.start_child(worker("b", log))
        assert b is not None
        assert await b.call("tag") == "b"
        with pytest.raises(otpy.ChildError, match="running"):
            await sup.restart_child("b")
        with pytest.raises(otpy.ChildError, match="running"):
            await sup.delete_child("b")
        await sup.terminate_child("b")
        assert [(c.id, c.state) for c in sup.which_children()] == [
            ("a", "running"),
            ("b", "stopped"),
        ]
        with pytest.raises(otpy.ChildError, match="already_present"):
            await sup.start_child(worker("b", log))
        assert sup.count_children() == otpy.ChildCounts(specs=2, active=1, supervisors=0, workers=2)
        again = await sup.restart_child("b")
        assert again is not None
        assert again is not b
        await sup.terminate_child("b")
        await sup.delete_child("b")
        with pytest.raises(otpy.ChildError, match="not_found"):
            await sup.delete_child("b")
        with pytest.raises(otpy.ChildError, match="not_found"):
            await sup.terminate_child("zzz")
        with pytest.raises(otpy.ChildError, match="not_found"):
            await sup.restart_child("zzz")


async def test_sup_11_failed_start_child_discards_spec() -> None:
    """SUP-11: a start_child whose init fails raises SpawnError and keeps no spec."""
    async with otpy.open_supervisor([]) as sup:
        with pytest.raises(otpy.SpawnError):
            await sup.start_child(ChildSpec(id="bad", start=FailsInit))
        assert sup.which_children() == []


async def test_sup_11_which_children_and_count_children_report_supervisors() -> None:
    """SUP-11: nested supervisors are counted as supervisors; which_children gives refs in order."""
    log: Log = []
    inner = SupervisorSpec(id="inner", children=[worker("x", log)])
    async with otpy.open_supervisor([worker("a", log), inner]) as sup:
        infos = sup.which_children()
        assert [(i.id, i.type) for i in infos] == [
            ("a", otpy.ChildType.WORKER),
            ("inner", otpy.ChildType.SUPERVISOR),
        ]
        assert sup.count_children() == otpy.ChildCounts(specs=2, active=2, supervisors=1, workers=1)
        inner_ref = infos[1].ref
        assert inner_ref is not None
        nested = otpy.supervisor_ref(inner_ref)
        assert [i.id for i in nested.which_children()] == ["x"]
        stats = sup.statistics()
        assert stats.children[1].supervisor is not None
        assert stats.children[1].supervisor.children[0].id == "x"


async def test_act_6_ignored_child_keeps_its_spec_under_a_supervisor() -> None:
    """ACT-6: a child whose init returns IGNORE keeps its spec (stopped); a temporary one is dropped."""

    class Ignores(otpy.Actor):
        async def init(self) -> Any:
            return otpy.IGNORE

    specs = [
        ChildSpec(id="i", start=Ignores),
        ChildSpec(id="t", start=Ignores, restart=Restart.TEMPORARY),
    ]
    async with otpy.open_supervisor(specs) as sup:
        assert [(c.id, c.state, c.ref) for c in sup.which_children()] == [("i", "stopped", None)]


# -- auto shutdown --------------------------------------------------------------------


async def test_sup_13_any_significant_child_finishing_stops_the_supervisor() -> None:
    """SUP-13: with any_significant, a significant child exiting normally shuts the supervisor down."""
    log: Log = []
    flags = SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ANY_SIGNIFICANT)
    specs = [worker("a", log), worker("job", log, restart=Restart.TRANSIENT, significant=True)]
    async with otpy.open_node():
        sup = await otpy.start_supervisor(SupervisorSpec(children=specs, flags=flags))
        job = sup.child("job")
        assert job is not None
        await job.cast(("exit", otpy.NORMAL))
        assert await sup.wait_exited() == otpy.SHUTDOWN
    assert log[-1] == ("terminate", "a")


async def test_sup_13_all_significant_waits_for_the_last_one() -> None:
    """SUP-13: with all_significant, the supervisor stops only when the last significant child ends."""
    log: Log = []
    flags = SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ALL_SIGNIFICANT)
    specs = [worker(t, log, restart=Restart.TEMPORARY, significant=True) for t in "ab"]
    async with otpy.open_node():
        sup = await otpy.start_supervisor(SupervisorSpec(children=specs, flags=flags))
        a, b = sup.child("a"), sup.child("b")
        assert a is not None
        assert b is not None
        await a.cast(("exit", otpy.NORMAL))
        await a.wait_exited()
        await anyio.wait_all_tasks_blocked()
        assert sup.ref.is_alive
        await b.cast(("exit", otpy.NORMAL))
        assert await sup.wait_exited() == otpy.SHUTDOWN


async def test_sup_13_terminate_child_of_significant_does_not_auto_shutdown() -> None:
    """SUP-13: a significant child stopped by the supervisor itself does not trigger auto-shutdown."""
    log: Log = []
    flags = SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ANY_SIGNIFICANT)
    specs = [worker("job", log, restart=Restart.TRANSIENT, significant=True)]
    async with otpy.open_supervisor(SupervisorSpec(children=specs, flags=flags)) as sup:
        await sup.terminate_child("job")
        await anyio.wait_all_tasks_blocked()
        assert sup.ref.is_alive


# -- names through restarts --------------------------------------------------------------


async def test_named_child_reachable_by_name_after_restart() -> None:
    """ACT-11/SUP-1: a supervised name resolves to the current incarnation after a restart."""
    log: Log = []
    async with otpy.open_supervisor([worker("svc", log, name="svc")]) as sup:
        old = otpy.whereis("svc")
        new = await crash(sup, "svc")
        assert otpy.whereis("svc") is new is not old
        assert await otpy.named("svc").call("tag") == "svc"


async def test_named_child_not_restarted_releases_name() -> None:
    """ACT-11: when a named transient child ends normally, its name is free and sends are dead letters."""
    log: Log = []
    spec = worker("svc", log, name="svc", restart=Restart.TRANSIENT)
    async with otpy.open_supervisor([spec]) as sup:
        ref = sup.child("svc")
        assert ref is not None
        await ref.cast(("exit", otpy.NORMAL))
        await ref.wait_exited()
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(otpy.ActorStopped):
            await otpy.named("svc").call("tag")
        other = await otpy.spawn(Worker, "other", log, name="svc")
        assert otpy.whereis("svc") is other


# -- reports ----------------------------------------------------------------------------


async def test_sup_15_reports_for_crash_start_error_and_giving_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SUP-15: child_terminated, start_error and shutdown reports name supervisor, child and reason."""
    log: Log = []

    class FailsSecondTime(otpy.Actor):
        async def init(self, starts: list[int]) -> None:
            starts.append(1)
            if len(starts) > 1:
                raise RuntimeError("no second start")

    specs = [worker("ok", log), ChildSpec(id="f", start=FailsSecondTime, args=([],))]
    flags = SupervisorFlags(intensity=1)
    with (
        caplog.at_level(logging.ERROR, logger="otpy.supervisor"),
        pytest.raises(otpy.RestartIntensityExceeded),
    ):
        async with otpy.open_supervisor(specs, flags=flags, name="top") as sup:
            inject_crash(sup.child("f"))  # type: ignore[arg-type]
            await anyio.sleep_forever()
    reports = [r.__dict__["otpy_report"] for r in caplog.records if r.name == "otpy.supervisor"]
    contexts = [
        (r["context"], r["offender"]["id"] if isinstance(r["offender"], dict) else r["offender"])
        for r in reports
    ]
    assert contexts == [("child_terminated", "f"), ("start_error", "f"), ("shutdown", "f")]
    assert reports[0]["supervisor"] == "top"
    assert reports[0]["reason"].startswith("CrashInjected")
    assert reports[1]["reason"] == "RuntimeError: no second start"
    assert reports[2]["reason"] == "reached_max_restart_intensity"
    assert reports[2]["last_exit"] == "CrashInjected: crash injected into f"
    assert all(isinstance(r["offender"], dict) for r in reports)


# -- validation --------------------------------------------------------------------------


def test_sup_12_child_spec_validation_errors_are_typed_and_name_the_child() -> None:
    """SUP-12: invalid specs fail when built, with InvalidChildSpec (a ValueError) naming the child."""
    with pytest.raises(otpy.InvalidChildSpec, match=r"^child 'db': shutdown must be >= 0"):
        ChildSpec(id="db", start=Worker, shutdown=-1)
    with pytest.raises(ValueError, match=r"^child '': id must be a non-empty string"):
        ChildSpec(id="", start=Worker)
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"^child 'x': start must be an otpy.Actor subclass"
    ):
        ChildSpec(id="x", start=print)  # type: ignore[arg-type]
    with pytest.raises(otpy.InvalidChildSpec, match=r"^child 'x': restart must be a Restart"):
        ChildSpec(id="x", start=Worker, restart="always")  # type: ignore[arg-type]
    with pytest.raises(otpy.InvalidChildSpec, match="significant child cannot be permanent"):
        ChildSpec(id="x", start=Worker, significant=True)
    with pytest.raises(otpy.InvalidChildSpec, match=r"^child 'a': duplicate child id"):
        SupervisorSpec(children=[worker("a", []), worker("a", [])])
    with pytest.raises(otpy.InvalidChildSpec, match="need the supervisor's auto_shutdown"):
        SupervisorSpec(children=[worker("a", [], restart=Restart.TRANSIENT, significant=True)])
    with pytest.raises(otpy.InvalidChildSpec, match="intensity must be an integer >= 0"):
        SupervisorFlags(intensity=-1)
    with pytest.raises(otpy.InvalidChildSpec, match="period must be > 0"):
        SupervisorFlags(period=0)
    with pytest.raises(otpy.InvalidChildSpec, match="cannot have a name"):
        otpy.DynamicSupervisorSpec(child=worker("a", [], name="n"))
    with pytest.raises(ValueError, match="jitter must be between 0 and 1"):
        otpy.Backoff(jitter=2.0)
    with pytest.raises(ValueError, match="maximum must be >= minimum"):
        otpy.Backoff(minimum=2.0, maximum=1.0)


def test_sup_12_defaults() -> None:
    """SUP-12: defaults are permanent worker with 5 s shutdown; supervisors get INFINITY."""
    spec = worker("w", [])
    assert (spec.restart, spec.type, spec.shutdown, spec.significant) == (
        Restart.PERMANENT,
        otpy.ChildType.WORKER,
        5.0,
        False,
    )
    sup_child = SupervisorSpec(id="s", children=[]).as_child()
    assert (sup_child.type, sup_child.shutdown) == (otpy.ChildType.SUPERVISOR, Shutdown.INFINITY)
    assert (SupervisorFlags().intensity, SupervisorFlags().period) == (3, 5.0)


class TestTelemetry:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return virtual_time()

    async def test_tel_1_sup_15_restart_and_escalation_spans(self) -> None:
        """TEL-1/SUP-15: each restart emits otpy.supervisor.restart; giving up emits an error escalation span."""
        from opentelemetry.trace import StatusCode

        from otpy.testing import capture_spans

        with capture_spans() as exporter:
            with pytest.raises(otpy.RestartIntensityExceeded):
                async with otpy.open_supervisor(
                    [crash_after(1.0, id="flaky")], flags=SupervisorFlags(intensity=2), name="sup"
                ):
                    await anyio.sleep_forever()
            spans = exporter.get_finished_spans()
        names = [s.name for s in spans]
        assert names == ["otpy.supervisor.restart"] * 2 + ["otpy.supervisor.escalation"]
        restart = spans[1].attributes or {}
        assert restart["otpy.supervisor"] == "sup"
        assert restart["otpy.child.id"] == "flaky"
        assert restart["otpy.reason.class"] == "CrashInjected"
        assert restart["otpy.restarts_in_window"] == 2
        assert restart["otpy.strategy"] == "one_for_one"
        escalation = spans[2]
        assert escalation.status.status_code is StatusCode.ERROR
        assert (escalation.attributes or {})["error.type"] == "RestartIntensityExceeded"

    async def test_tel_1_start_error_span(self) -> None:
        """TEL-1: a child failing to restart emits an otpy.supervisor.start_error span with error.type."""
        from otpy.testing import capture_spans

        class OnlyOnce(otpy.Actor):
            async def init(self, starts: list[int]) -> None:
                starts.append(1)
                if len(starts) > 1:
                    raise KeyError("gone")

        spec = ChildSpec(id="once", start=OnlyOnce, args=([],), restart=Restart.TRANSIENT)
        with capture_spans() as exporter:
            with pytest.raises(otpy.RestartIntensityExceeded):
                async with otpy.open_supervisor([spec], flags=SupervisorFlags(intensity=1)) as sup:
                    inject_crash(sup.child("once"))  # type: ignore[arg-type]
                    await anyio.sleep_forever()
            errors = [
                s for s in exporter.get_finished_spans() if s.name == "otpy.supervisor.start_error"
            ]
        assert len(errors) == 1
        assert (errors[0].attributes or {})["error.type"] == "KeyError"


async def test_labels_are_child_ids_and_dynamic_children_have_none() -> None:
    """Reports and spans name children by spec id (or name); dynamic children get id#n labels."""
    log: Log = []
    inner = otpy.DynamicSupervisorSpec(id="pool", child=ChildSpec(id="job", start=Worker))
    async with otpy.open_supervisor([worker("a", log), inner], name=None) as sup:
        assert sup.ref.label == "root"
        assert sup.child("a").label == "a"  # type: ignore[union-attr]
        pool_ref = sup.child("pool")
        assert pool_ref is not None
        pool = otpy.supervisor_ref(pool_ref)
        job = await pool.start_dynamic_child("j", log)
        assert job.label.startswith("job#")
        with pytest.raises(TypeError, match="dynamic supervisors' children have none"):
            await pool.wait_child("job")


async def test_give_up_message_names_intensity() -> None:
    """SUP-5: the give-up error says how many restarts exceeded which intensity."""
    error = otpy.RestartIntensityExceeded("top", 4, 5.0, "f", 3)
    assert str(error).startswith(
        "supervisor 'top' shut down: 4 restarts in 5s exceed its intensity of 3"
    )


async def test_sup_4_child_exiting_right_after_init_reports_its_real_reason() -> None:
    """SUP-4/SUP-13: a transient child that stops in a continue step right after init exits normal, not noproc."""

    class Finishes(otpy.Actor):
        async def init(self) -> None:
            self.continue_with("done")

        async def handle_continue(self, argument: Any) -> None:
            self.stop(otpy.NORMAL)

    flags = SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ANY_SIGNIFICANT, intensity=0)
    spec = ChildSpec(id="job", start=Finishes, restart=Restart.TRANSIENT, significant=True)
    async with otpy.open_node():
        sup = await otpy.start_supervisor(SupervisorSpec(children=[spec], flags=flags))
        assert await sup.wait_exited() == otpy.SHUTDOWN
        assert sup.statistics().total_restarts == 0


async def test_dead_incarnations_are_freed_without_the_cyclic_gc() -> None:
    """Restarted children leave nothing in reference cycles, so no GC pause grows with restarts."""
    import gc

    log: Log = []
    async with otpy.open_supervisor(
        [worker("w", log)], flags=SupervisorFlags(intensity=1000, period=1.0)
    ) as sup:
        await crash(sup, "w")  # warm up: first-use caches are not garbage
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                await crash(sup, "w")
            unreachable = gc.collect()
        finally:
            gc.enable()
    assert unreachable < 50  # one object per restart would already be 50


async def test_sup_10_open_supervisor_without_a_node_raises_the_start_error_itself() -> None:
    """SUP-10: a failed start through open_supervisor's own node raises SpawnError, not a group."""
    with pytest.raises(otpy.SpawnError, match="failed to start child 'bad'") as info:
        async with otpy.open_supervisor([ChildSpec(id="bad", start=FailsInit)]):
            pass  # pragma: no cover - the tree must not start
    assert isinstance(info.value.reason, RuntimeError)
