"""Monitors and links (ACT-9, ACT-10)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import otpy
from otpy.testing import CrashInjected, inject_crash


class Idle(otpy.Actor):
    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return message


class Watcher(otpy.Actor):
    """Records infos; can be told to monitor/demonitor/link."""

    trap_exit = False

    async def init(self, trap: bool = False) -> None:
        self.trap_exit = trap
        self.infos: list[Any] = []
        self.monitors: dict[str, otpy.Monitor] = {}

    async def handle_info(self, message: Any) -> None:
        self.infos.append(message)

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        op, *rest = message
        if op == "monitor":
            self.monitors[rest[1]] = self.monitor(rest[0])
        elif op == "demonitor":
            return self.demonitor(self.monitors[rest[0]])
        elif op == "link":
            self.link(rest[0])
        elif op == "unlink":
            self.unlink(rest[0])
        elif op == "infos":
            return list(self.infos)
        return None


async def test_act_10_down_carries_the_exit_reason() -> None:
    """ACT-10: a monitor delivers Down with the monitored actor's exit reason."""
    async with otpy.open_node() as node:
        target = await node.spawn(Idle)
        watcher = await node.spawn(Watcher)
        await watcher.call(("monitor", target, "m"))
        inject_crash(target)
        await target.wait_exited()
        await anyio.wait_all_tasks_blocked()
        (down,) = await watcher.call(("infos",))
        assert isinstance(down, otpy.Down)
        assert down.actor is target
        assert isinstance(down.reason, CrashInjected)


async def test_act_10_monitoring_a_dead_actor_gives_immediate_noproc() -> None:
    """ACT-10: monitoring an actor that already exited yields Down(noproc) at once."""
    async with otpy.open_node() as node:
        target = await node.spawn(Idle)
        await target.stop()
        watcher = await node.spawn(Watcher)
        await watcher.call(("monitor", target, "m"))
        (down,) = await watcher.call(("infos",))
        assert down.reason == otpy.NOPROC


async def test_act_10_two_monitors_give_two_downs() -> None:
    """ACT-10: each monitor fires once, independently."""
    async with otpy.open_node() as node:
        target = await node.spawn(Idle)
        watcher = await node.spawn(Watcher)
        await watcher.call(("monitor", target, "a"))
        await watcher.call(("monitor", target, "b"))
        await target.stop()
        await anyio.wait_all_tasks_blocked()
        downs = await watcher.call(("infos",))
        assert [type(d) for d in downs] == [otpy.Down, otpy.Down]
        assert downs[0].monitor is not downs[1].monitor


async def test_act_10_demonitor_guarantees_no_down_even_if_already_queued() -> None:
    """ACT-10: after demonitor no Down is handled, even one queued before the demonitor."""

    class Demonitors(Watcher):
        async def handle_cast(self, message: Any) -> None:
            self.demonitor(self.monitors["m"])

    async with otpy.open_node() as node:
        target = await node.spawn(Idle)
        watcher = await node.spawn(Demonitors)
        await watcher.call(("monitor", target, "m"))
        await watcher.suspend()
        await watcher.cast("demonitor")  # queued first...
        await target.stop()  # ...then the Down queues behind it
        assert watcher.statistics().queued == 2
        await watcher.resume()
        assert await watcher.call(("infos",)) == []


async def test_act_9_abnormal_exit_kills_linked_non_trapping_actor_with_same_reason() -> None:
    """ACT-9: an abnormal exit propagates over a link and kills a non-trapping actor with that reason."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Watcher)
        await b.call(("link", a))
        inject_crash(a)
        reason = await b.wait_exited()
        assert isinstance(reason, CrashInjected)
        assert reason is a.exit_reason


async def test_act_9_normal_exit_does_not_propagate() -> None:
    """ACT-9: a normal exit does not kill linked actors."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Watcher)
        await b.call(("link", a))
        await a.stop(otpy.NORMAL)
        await anyio.wait_all_tasks_blocked()
        assert b.is_alive


@pytest.mark.parametrize(
    "reason", [otpy.SHUTDOWN, otpy.ShutdownWith("maintenance")], ids=["shutdown", "shutdown_with"]
)
async def test_act_9_shutdown_exit_kills_linked_non_trapping_actor(reason: object) -> None:
    """ACT-9: as in OTP, shutdown and ShutdownWith travel over links; only normal spares the other side."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Watcher)
        await b.call(("link", a))
        await a.stop(reason)
        with anyio.fail_after(5):
            assert await b.wait_exited() == reason


async def test_act_9_trapping_actor_receives_exit_message() -> None:
    """ACT-9: an actor trapping exits gets Exit(actor, reason) and keeps running."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Watcher, True)
        await b.call(("link", a))
        inject_crash(a)
        await a.wait_exited()
        await anyio.wait_all_tasks_blocked()
        (exit_msg,) = await b.call(("infos",))
        assert isinstance(exit_msg, otpy.Exit)
        assert exit_msg.actor is a
        assert isinstance(exit_msg.reason, CrashInjected)
        assert b.is_alive


async def test_act_9_explicit_kill_cannot_be_trapped() -> None:
    """ACT-9: kill() ends even a trapping actor, with reason killed and no terminate."""
    async with otpy.open_node() as node:
        b = await node.spawn(Watcher, True)
        b.kill()
        assert await b.wait_exited() == otpy.KILLED


async def test_act_9_link_to_dead_actor_delivers_noproc() -> None:
    """ACT-9: linking to an exited actor sends an exit signal with reason noproc."""
    async with otpy.open_node() as node:
        dead = await node.spawn(Idle)
        await dead.stop()
        trapper = await node.spawn(Watcher, True)
        await trapper.call(("link", dead))
        (exit_msg,) = await trapper.call(("infos",))
        assert exit_msg.reason == otpy.NOPROC


async def test_act_9_unlink_stops_propagation() -> None:
    """ACT-9: after unlink, a crash no longer reaches the other actor."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Watcher)
        await b.call(("link", a))
        await b.call(("unlink", a))
        inject_crash(a)
        await a.wait_exited()
        await anyio.wait_all_tasks_blocked()
        assert b.is_alive


async def test_act_9_spawn_link_links_before_init() -> None:
    """ACT-9: spawn_link ties the child's fate to the parent's from the start."""

    class Parent(otpy.Actor):
        async def init(self) -> None:
            self.child = await self.spawn_link(Idle)

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            return self.child

    async with otpy.open_node() as node:
        parent = await node.spawn(Parent)
        child = await parent.call("child")
        inject_crash(parent)
        assert isinstance(await child.wait_exited(), CrashInjected)


class FailsToStart(otpy.Actor):
    """Fails its start the way *mode* says: stop, raise, timeout or ignore."""

    async def init(self, mode: str) -> Any:
        if mode == "stop":
            self.stop("no_config")
        elif mode == "raise":
            raise RuntimeError("init failed")
        elif mode == "timeout":
            await anyio.sleep_forever()
        elif mode == "ignore":
            return otpy.IGNORE
        return None


START_FAILURES = ["stop", "raise", "timeout", "ignore"]


class SpawnsLinked(Watcher):
    """Watcher that spawn_links a FailsToStart on request and reports the error."""

    async def handle_cast(self, mode: str) -> None:
        try:
            await self.spawn_link(FailsToStart, mode, start_timeout=0.01)
        except otpy.SpawnError as exc:
            self.infos.append(exc)


@pytest.mark.parametrize("trap", [False, True], ids=["non_trapping", "trapping"])
@pytest.mark.parametrize("mode", START_FAILURES)
async def test_act_9_failed_spawn_link_gives_the_caller_the_error_and_nothing_else(
    mode: str, trap: bool
) -> None:
    """ACT-9: when a spawn_link'ed init fails, the caller gets only the SpawnError: no kill, no Exit."""
    async with otpy.open_node() as node:
        parent = await node.spawn(SpawnsLinked, trap)
        await parent.cast(mode)
        await parent.call(("infos",))  # handled after the cast, so after the failed start
        (error,) = await parent.call(("infos",))  # an Exit sent by the failure is in by now
        assert parent.is_alive
        assert isinstance(error, otpy.SpawnError)
        assert node.live_actors == 1


@pytest.mark.parametrize("trap", [False, True], ids=["non_trapping", "trapping"])
@pytest.mark.parametrize("mode", START_FAILURES)
async def test_act_9_failed_spawn_with_link_leaves_the_linked_actor_alone(
    mode: str, trap: bool
) -> None:
    """ACT-9: spawn(link=ref) whose init fails raises SpawnError and sends ref no exit signal."""
    async with otpy.open_node() as node:
        watcher = await node.spawn(Watcher, trap)
        with pytest.raises(otpy.SpawnError):
            await node.spawn(FailsToStart, mode, link=watcher, start_timeout=0.01)
        await anyio.wait_all_tasks_blocked()
        assert watcher.is_alive
        assert await watcher.call(("infos",)) == []


async def test_act_9_link_made_by_a_successful_spawn_link_stays() -> None:
    """ACT-9: once init succeeded the spawn link is an ordinary link: the child's crash kills the parent."""
    async with otpy.open_node() as node:
        parent = await node.spawn(Watcher)
        child = await node.spawn(Idle, link=parent)
        inject_crash(child)
        assert isinstance(await parent.wait_exited(), CrashInjected)


async def test_act_16_receptionist_find_subscribe_and_vanish_on_stop() -> None:
    """ACT-16: find returns members; subscribe gets the current set then every change; stopping removes."""
    async with otpy.open_node() as node:
        a = await node.spawn(Idle)
        b = await node.spawn(Idle)
        rec = node.receptionist
        rec.register("workers", a)
        with rec.subscribe("workers") as listings:
            assert await listings.receive() == frozenset({a})
            rec.register("workers", b)
            rec.register("workers", b)  # idempotent: no second listing
            assert await listings.receive() == frozenset({a, b})
            await a.stop()
            assert await listings.receive() == frozenset({b})
            rec.deregister("workers", b)
            assert await listings.receive() == frozenset()
        assert rec.find("workers") == frozenset()
        assert rec.find("nothing") == frozenset()


async def test_act_15_trace_logs_kinds_and_types_only(caplog: Any) -> None:
    """ACT-15: trace logs each handled message by kind and type (never content); off again, silence."""
    import logging

    async with otpy.open_node() as node:
        ref = await node.spawn(Idle)
        with caplog.at_level(logging.INFO, logger="otpy.trace"):
            ref.trace()
            await ref.call("secret-value")
            ref.trace(False)
            await ref.call("quiet")
        lines = [r.getMessage() for r in caplog.records if r.name == "otpy.trace"]
        assert lines == [f"{ref.label} handle_call str", f"{ref.label} handle_call returned str"]
