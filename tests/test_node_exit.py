"""Leaving a node stops everything on it, last started first, with terminate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import otpy
from otpy.testing import virtual_time

ROOT = Path(__file__).parent.parent


class Logs(otpy.Actor):
    """Appends its label to a shared log when it terminates."""

    async def init(self, log: list[str], label: str) -> None:
        self.log = log
        self.label = label

    async def terminate(self, reason: object) -> None:
        assert reason == otpy.SHUTDOWN
        self.log.append(self.label)


class SpawnsHelper(Logs):
    """Spawns an unlinked helper of its own in init: the helper is its to stop, not the node's."""

    async def init(self, log: list[str], label: str) -> None:
        await super().init(log, label)
        self.helper = await otpy.spawn(Logs, log, f"{label}.helper")


async def test_leaving_open_node_terminates_plain_actors_and_trees_in_reverse_start_order() -> None:
    """spawn and start_supervisor inside open_node: leaving it runs every terminate, last started first."""
    log: list[str] = []
    tree = otpy.SupervisorSpec(
        id="tree",
        children=[
            otpy.ChildSpec(id="w1", start=Logs, args=(log, "tree.w1")),
            otpy.ChildSpec(id="w2", start=Logs, args=(log, "tree.w2")),
        ],
    )
    async with otpy.open_node() as node:
        await node.spawn(Logs, log, "first")
        sup = await otpy.start_supervisor(tree)
        await node.spawn(SpawnsHelper, log, "last")
        assert node.roots == ()  # not started through open_supervisor, stopped all the same
    assert log == ["last", "tree.w2", "tree.w1", "first"]  # the orphaned helper is cancelled
    assert sup.ref.exit_reason == otpy.SHUTDOWN
    assert node.live_actors == 0


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_leaving_open_node_kills_a_worker_whose_terminate_outlasts_5s() -> None:
    """A plain actor gets 5 s to terminate (a worker's default shutdown), then it is killed."""

    class Stuck(otpy.Actor):
        async def terminate(self, reason: object) -> None:
            await anyio.sleep_forever()

    async with otpy.open_node() as node:
        ref = await node.spawn(Stuck)
        start = anyio.current_time()
    assert anyio.current_time() - start == 5.0
    assert ref.exit_reason == otpy.KILLED


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_leaving_open_node_waits_for_a_supervisor_as_long_as_it_takes() -> None:
    """A top-level supervisor is waited for (shutdown infinity); its child's own shutdown applies."""
    log: list[str] = []

    class Slow(Logs):
        async def terminate(self, reason: object) -> None:
            await anyio.sleep(30)
            await super().terminate(reason)

    tree = otpy.SupervisorSpec(
        id="tree",
        children=[otpy.ChildSpec(id="slow", start=Slow, args=(log, "slow"), shutdown=60.0)],
    )
    async with otpy.open_node():
        sup = await otpy.start_supervisor(tree)
        start = anyio.current_time()
    assert anyio.current_time() - start == 30.0
    assert log == ["slow"]
    assert sup.ref.exit_reason == otpy.SHUTDOWN


async def test_a_spawn_cancelled_during_init_leaves_no_orphan() -> None:
    """Cancelling a spawn while init runs kills the new actor, on asyncio too."""
    entered = anyio.Event()

    class Hangs(otpy.Actor):
        async def init(self) -> None:
            entered.set()
            await anyio.sleep_forever()

    async with otpy.open_node() as node:
        async with anyio.create_task_group() as tg:
            tg.start_soon(node.spawn, Hangs)
            await entered.wait()
            tg.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert node.live_actors == 0


CHILD = textwrap.dedent(
    """
    import sys

    import anyio

    import otpy
    from otpy.deadletter import dead_letter_children, sqlite_store


    async def main(path: str) -> None:
        async with otpy.open_node():
            await otpy.start_supervisor(
                otpy.SupervisorSpec(
                    id="node",
                    flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
                    children=dead_letter_children(sqlite_store(path)),
                )
            )
        print("left the node", flush=True)


    anyio.run(main, sys.argv[1], backend="asyncio")
    """
)


@pytest.mark.timeout(90)  # beyond the subprocess's own 60 s, so that one reports
def test_a_process_with_a_sqlite_dead_letter_tree_exits_by_itself(tmp_path: Path) -> None:
    """open_node + start_supervisor(dead_letter_children(sqlite_store)) ends: no store thread outlives the node."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "dead.db")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,  # generous for a loaded machine; the failure is a hang forever
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "left the node\n"
