"""An actor's own tasks live and die with its incarnation (ACT-17)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import otpy
from otpy.testing import virtual_time


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Trio with a clock that jumps: the tickers' seconds pass at once, exactly."""
    return virtual_time()


class Ticker(otpy.Actor):
    """Starts a task that counts ticks; terminate waits for it to finish its tick."""

    async def init(self, log: list[str], fail_after: int | None = None) -> None:
        self.log = log
        self.fail_after = fail_after
        self.stopping = anyio.Event()
        self.start_task(self.tick, name="ticker")

    async def tick(self) -> None:
        n = 0
        try:
            while not self.stopping.is_set():
                await anyio.sleep(1.0)
                n += 1
                self.log.append(f"tick {n}")
                if self.fail_after is not None and n == self.fail_after:
                    raise RuntimeError("tick failed")
            self.log.append("finished")
        except anyio.get_cancelled_exc_class():
            self.log.append("cancelled")
            raise

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "ping":
            return "pong"
        return await super().handle_call(message, caller)

    async def terminate(self, reason: object) -> None:
        self.log.append(f"terminate {reason!r}")
        self.stopping.set()
        await anyio.sleep(1.0)  # the task's last tick ends and it returns


async def test_a_task_runs_beside_the_handlers() -> None:
    """The task ticks while calls are answered, and stops with the actor."""
    log: list[str] = []
    async with otpy.open_node() as node:
        ref = await node.spawn(Ticker, log)
        await anyio.sleep(2.5)
        assert await ref.call("ping") == "pong"
        assert log == ["tick 1", "tick 2"]
        await ref.stop()
    assert log == ["tick 1", "tick 2", "terminate 'normal'", "tick 3", "finished"]


async def test_a_stop_runs_terminate_before_the_task_is_cancelled() -> None:
    """terminate can tell the task to finish: it returns by itself, it is not cancelled."""
    log: list[str] = []
    async with otpy.open_node() as node:
        ref = await node.spawn(Ticker, log)
        await anyio.sleep(1.5)
        await ref.stop()
    assert log == ["tick 1", "terminate 'normal'", "tick 2", "finished"]


async def test_a_kill_cancels_the_task_at_once() -> None:
    """A brutal kill skips terminate and cancels the task."""
    log: list[str] = []
    async with otpy.open_node() as node:
        ref = await node.spawn(Ticker, log)
        await anyio.sleep(1.5)
        ref.kill()
        await ref.wait_exited()
        await anyio.wait_all_tasks_blocked()
    assert log == ["tick 1", "cancelled"]


async def test_a_task_that_raises_crashes_its_actor(caplog: pytest.LogCaptureFixture) -> None:
    """The actor exits with the task's exception; terminate does not run; it is logged."""
    log: list[str] = []
    async with otpy.open_node() as node:
        ref = await node.spawn(Ticker, log, 2)
        with caplog.at_level(logging.ERROR, logger="otpy.actor"):
            reason = await ref.wait_exited()
    assert isinstance(reason, RuntimeError)
    assert str(reason) == "tick failed"
    assert log == ["tick 1", "tick 2"]
    assert any(
        "its task ticker crashed with RuntimeError" in r.getMessage() for r in caplog.records
    )


async def test_a_supervisor_restarts_an_actor_whose_task_crashed() -> None:
    """The crash goes to the supervisor, which starts a new incarnation with a new task."""
    log: list[str] = []
    spec = otpy.SupervisorSpec(
        id="sup",
        children=[otpy.ChildSpec(id="ticker", start=Ticker, args=(log, 1), name="ticker")],
        flags=otpy.SupervisorFlags(intensity=5, period=10.0),
    )
    async with otpy.open_node(), otpy.open_supervisor(spec) as sup:
        await anyio.sleep(2.5)
        assert sup.statistics().restarts_in_window == 2
    assert log[:2] == ["tick 1", "tick 1"]


async def test_a_task_that_returns_leaves_the_actor_running() -> None:
    """A task that ends normally is just over; the actor carries on."""
    done = anyio.Event()

    class Once(otpy.Actor):
        async def init(self) -> None:
            self.start_task(self.once)

        async def once(self) -> None:
            done.set()

        async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
            return "alive"

    async with otpy.open_node() as node:
        ref = await node.spawn(Once)
        await done.wait()
        await anyio.wait_all_tasks_blocked()
        assert await ref.call("?") == "alive"


async def test_start_task_after_exit_raises() -> None:
    """An exited incarnation cannot start tasks: ActorStopped names it."""
    kept: list[otpy.Actor] = []

    class Keeper(otpy.Actor):
        async def init(self) -> None:
            kept.append(self)

    async with otpy.open_node() as node:
        ref = await node.spawn(Keeper, name="keeper")
        await ref.stop()

        async def nothing() -> None:
            pass

        with pytest.raises(otpy.ActorStopped, match="keeper"):
            kept[0].start_task(nothing)
