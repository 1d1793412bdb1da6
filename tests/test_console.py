"""The live console: rendering supervision trees from statistics snapshots (REFERENCE A15).

The trees are real (``open_supervisor`` on virtual time), so uptimes and restart
windows in the rendered text are exact; rendering reads only the frozen snapshots.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import anyio
import pytest
from rich.console import Console

import otpy
from otpy.console import NodeSnapshot, format_duration, render_tree, run_console, take_snapshot
from otpy.testing import inject_crash, virtual_time


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Virtual time: trio with a MockClock."""
    return virtual_time()


class Idle(otpy.Actor):
    """Takes casts and does nothing with them."""

    mailbox = otpy.MailboxConfig(capacity=10)

    async def handle_cast(self, message: Any) -> None:
        pass


class Crasher(otpy.Actor):
    """Crashes one second after each start."""

    async def init(self) -> None:
        self.send_after(1.0, "crash")

    async def handle_info(self, message: Any) -> None:
        raise RuntimeError("lost the connection")


class SlowRestart(otpy.Actor):
    """Starts at once the first time; every later start takes 30 s."""

    async def init(self, starts: list[float]) -> None:
        starts.append(anyio.current_time())
        if len(starts) > 1:
            await anyio.sleep(30)


class SlowStop(otpy.Actor):
    """Takes 5 s to terminate."""

    async def terminate(self, reason: object) -> None:
        await anyio.sleep(5)


def render(renderable: Any, *, width: int = 100, styles: bool = False) -> str:
    """Render into a recording console and return the exported text."""
    console = Console(
        record=True,
        width=width,
        file=io.StringIO(),
        force_terminal=styles,
        color_system="standard" if styles else None,
    )
    console.print(renderable)
    return console.export_text(styles=styles)


def lines(output: str) -> list[str]:
    """The rendered lines without trailing padding."""
    return [line.rstrip() for line in output.splitlines()]


async def scene() -> tuple[NodeSnapshot, float]:
    """Run a tree into an interesting state and return a snapshot of it and the time.

    ``inner`` is a nested rest_for_one supervisor; ``flaky`` crashed at 1.0 s and backs
    off until 11.0 s; ``slow`` crashed at 1.5 s and its restart takes 30 s; ``busy`` is
    suspended with 3 messages queued; one cast went to an actor that had stopped.
    """
    inner = otpy.SupervisorSpec(
        id="inner",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE, intensity=2, period=5.0),
        children=[otpy.ChildSpec(id="a", start=Idle), otpy.ChildSpec(id="b", start=Idle)],
    )
    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        inner,
        otpy.ChildSpec(
            id="flaky",
            start=Crasher,
            backoff=otpy.Backoff(minimum=10.0, maximum=10.0, jitter=0.0),
        ),
        otpy.ChildSpec(id="slow", start=SlowRestart, args=([],)),
        otpy.ChildSpec(id="busy", start=Idle),
    ]
    flags = otpy.SupervisorFlags(intensity=3, period=10.0)
    async with otpy.open_supervisor(specs, flags=flags, name="root") as sup:
        node = otpy.current_node()
        busy, slow = sup.child("busy"), sup.child("slow")
        assert busy is not None
        assert slow is not None
        await busy.suspend()
        for n in range(3):
            await busy.cast(n)
        await anyio.sleep(1.5)
        inject_crash(slow, ValueError("bad record 7"))
        await anyio.wait_all_tasks_blocked()
        gone = await otpy.spawn(Idle)
        await gone.stop()
        await gone.cast("late")
        await anyio.sleep(2.0)
        return take_snapshot(node), anyio.current_time()


async def test_a15_console_shows_the_tree_with_states_restarts_mailboxes_and_reasons() -> None:
    """A15: each supervisor and child: state, restarts, intensity, mailbox, uptime, last exit."""
    snapshot, now = await scene()
    assert lines(render(render_tree(snapshot, now=now, title="otpy · test"))) == [
        "otpy · test",
        "name                  state       restarts  intensity mailbox uptime last exit",
        "root one_for_one      running            - 2/3 in 10s 0/10000   3.5s",
        "├─ inner rest_for_one running            0  0/2 in 5s 0/10000   3.5s",
        "│  ├─ a Idle          running            0               0/10   3.5s",
        "│  └─ b Idle          running            0               0/10   3.5s",
        "├─ flaky              backing_off        1                  -      - RuntimeError: lost the connect…",
        "├─ slow               restarting         1                  -      - ValueError: bad record 7",
        "└─ busy Idle          suspended          0               3/10   3.5s",
        "6 live actors (2 supervisors, 3 workers)  ·  2 restarts  ·  1 dead letter (actor_stopped 1)",
    ]


async def test_a15_narrow_console_lists_abnormal_exits_under_the_table() -> None:
    """A15: below 96 columns the last crash of each child is listed in full under the table."""
    snapshot, now = await scene()
    output = lines(render(render_tree(snapshot, now=now), width=80))
    assert output[0] == "name                  state       restarts  intensity mailbox uptime"
    start = output.index("last abnormal exits:")
    assert output[start + 1 : start + 3] == [
        "  flaky: RuntimeError: lost the connection",
        "  slow: ValueError: bad record 7",
    ]


async def test_a15_states_are_coloured() -> None:
    """A15: running is green, backing_off magenta, restarting yellow; a full window is red."""
    snapshot, now = await scene()
    output = render(render_tree(snapshot, now=now), styles=True)
    assert "\x1b[32mrunning " in output
    assert "\x1b[1;35mbacking_off\x1b[0m" in output
    assert "\x1b[1;33mrestarting " in output
    assert "\x1b[34msuspended " in output
    assert "\x1b[33m2/3 in 10s\x1b[0m" in output


async def test_a15_a_child_stopping_gracefully_shows_stopping() -> None:
    """A15: while the tree stops, a child still in terminate shows ``stopping``."""
    async with otpy.open_supervisor(
        [otpy.ChildSpec(id="slow", start=SlowStop)], name="root"
    ) as sup:
        node = otpy.current_node()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.stop)
            await anyio.wait_all_tasks_blocked()
            output = render(render_tree(take_snapshot(node), now=anyio.current_time()))
            await sup.wait_exited()
    assert lines(output)[1:3] == [
        "root one_for_one stopping           - 0/3 in 5s 0/10000   0.0s",
        "└─ slow SlowStop stopping           0            0/1000   0.0s",
    ]


async def test_a15_big_dynamic_pools_are_summarised() -> None:
    """A15: a dynamic supervisor shows its first 20 children, then a count of the rest."""
    spec = otpy.DynamicSupervisorSpec(
        id="pool", name="pool", child=otpy.ChildSpec(id="w", start=Idle)
    )
    async with otpy.open_supervisor(spec) as sup:
        for _ in range(23):
            await sup.start_dynamic_child()
        stats = sup.statistics()
    output = lines(render(render_tree(stats, now=anyio.current_time())))
    assert output[1] == "pool dynamic            running            - 0/3 in 5s 0/10000   0.0s"
    assert output[2] == "├─ w#1 Idle             running            0              0/10   0.0s"
    assert output[-2] == "└─ … 3 more (3 running)"
    assert output[-1] == "24 actors running (1 supervisor, 23 workers)  ·  0 restarts"
    assert len(output) == 1 + 1 + 20 + 1 + 1


def test_a15_no_trees() -> None:
    """With no root supervisors the console says so."""
    assert lines(render(render_tree(NodeSnapshot(trees=(), live_actors=0), now=0.0))) == [
        "name                         state       restarts intensity mailbox uptime last exit",
        "no supervision trees running",
        "0 live actors (0 supervisors, 0 workers)  ·  0 restarts",
    ]


async def test_take_snapshot_skips_roots_that_are_not_supervisors() -> None:
    """A plain actor added as a root is not drawn as a tree."""
    async with otpy.open_node() as node:
        plain = await otpy.spawn(Idle)
        node.add_root(plain)
        snapshot = take_snapshot(node)
        assert snapshot.trees == ()
        assert snapshot.live_actors == 1
        await plain.stop()


async def test_a15_run_console_draws_a_last_frame_of_the_stopped_tree() -> None:
    """A15: when told to stop, the live console draws the stopped tree once more and returns."""
    output = io.StringIO()
    console = Console(record=True, width=100, file=output)
    done = anyio.Event()
    async with otpy.open_supervisor([otpy.ChildSpec(id="a", start=Idle)], name="root") as sup:
        node = otpy.current_node()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                functools.partial(
                    run_console, node, refresh=4.0, title="otpy · live", console=console, until=done
                )
            )
            await anyio.sleep(1.0)
            await sup.stop()
            done.set()
    assert lines(output.getvalue()) == [
        "otpy · live",
        "name             state       restarts intensity mailbox uptime last exit",
        "root one_for_one stopped            - 0/3 in 5s 0/10000      -",
        "└─ a             stopped            0                 -      - shutdown",
        "0 live actors (0 supervisors, 0 workers)  ·  0 restarts  ·  0 dead letters",
    ]


async def test_run_console_rejects_a_refresh_rate_of_zero() -> None:
    """The refresh rate must be positive."""
    async with otpy.open_node() as node:
        with pytest.raises(
            ValueError, match=r"^console refresh must be > 0 frames per second, got 0$"
        ):
            await run_console(node, refresh=0)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-1.0, "0.0s"),
        (0.04, "0.0s"),
        (9.94, "9.9s"),
        (10.0, "10s"),
        (59.9, "59s"),
        (60.0, "1m00s"),
        (3599.0, "59m59s"),
        (3600.0, "1h00m"),
        (86399.0, "23h59m"),
        (90000.0, "1d01h"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    """Durations are short: tenths below 10 s, then s, m+s, h+m, d+h."""
    assert format_duration(seconds) == expected


# -- pressure ----------------------------------------------------------------------------


async def pressure_scene() -> tuple[NodeSnapshot, float]:
    """A tree with a pressure monitor registered as ``pressure`` watching two of its children.

    ``busy`` (mailbox 9/10, degraded) and ``calm`` (empty, normal) are watched by their
    registered names; ``other`` is not watched.
    """
    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        otpy.ChildSpec(id="busy", start=Idle, name="busy"),
        otpy.ChildSpec(id="calm", start=Idle, name="calm"),
        otpy.ChildSpec(id="other", start=Idle),
        otpy.ChildSpec(
            id="monitor",
            start=otpy.PressureMonitor,
            name="pressure",
            args=({"busy": "busy", "calm": "calm"},),
        ),
    ]
    async with otpy.open_supervisor(specs, name="root") as sup:
        busy = sup.child("busy")
        assert busy is not None
        await busy.suspend()
        for n in range(9):
            await busy.cast(n)
        await otpy.named("pressure").call(otpy.SamplePressure())
        return take_snapshot(otpy.current_node()), anyio.current_time()


async def test_p5_console_shows_the_pressure_level_of_watched_children() -> None:
    """P5/A15: with a monitor running, a pressure column shows each watched child's level."""
    snapshot, now = await pressure_scene()
    assert set(snapshot.pressure) == {"pressure"}
    assert lines(render(render_tree(snapshot, now=now), width=120)) == [
        "name                       state       restarts intensity mailbox uptime pressure last exit",
        "root one_for_one           running            - 0/3 in 5s 0/10000   0.0s -",
        "├─ busy Idle               suspended          0              9/10   0.0s degraded",
        "├─ calm Idle               running            0              0/10   0.0s normal",
        "├─ other Idle              running            0              0/10   0.0s -",
        "└─ monitor PressureMonitor running            0            0/1000   0.0s -",
        "5 live actors (1 supervisor, 4 workers)  ·  0 restarts  ·  0 dead letters",
    ]


async def test_p5_pressure_levels_are_coloured_and_the_column_stays_when_narrow() -> None:
    """P5/A15: degraded is bold yellow, normal dim; below 96 columns the pressure column remains."""
    snapshot, now = await pressure_scene()
    styled = render(render_tree(snapshot, now=now), styles=True)
    assert "\x1b[1;33mdegraded\x1b[0m" in styled
    assert "\x1b[2mnormal  \x1b[0m" in styled
    narrow = lines(render(render_tree(snapshot, now=now), width=80))
    assert (
        narrow[0]
        == "name                      state       restarts intensity mailbox uptime pressure"
    )
    assert (
        narrow[2]
        == "├─ busy Idle              suspended          0              9/10   0.0s degraded"
    )


async def test_p5_console_shows_the_worst_partition_of_a_monitor_named_by_component() -> None:
    """P5/A15: take_snapshot(monitors=...) reads an unregistered monitor; partitions show their worst level."""
    calm: otpy.BoundedQueue[int] = otpy.BoundedQueue(10, name="busy")
    full: otpy.BoundedQueue[int] = otpy.BoundedQueue(10, name="busy")
    for n in range(10):
        full.put_nowait(n, priority=otpy.Priority.CRITICAL)
    sources = [otpy.Watched("busy", calm, partition=0), otpy.Watched("busy", full, partition=1)]
    async with otpy.open_supervisor([otpy.ChildSpec(id="busy", start=Idle)], name="root"):
        node = otpy.current_node()
        monitor = await otpy.spawn(otpy.PressureMonitor, sources, None, 1.0, "edge")
        await monitor.call(otpy.SamplePressure())
        without = take_snapshot(node)
        snapshot = take_snapshot(node, monitors=["edge", "nobody"])
        await monitor.stop()
    assert without.pressure == {}
    assert set(snapshot.pressure) == {"edge"}
    output = lines(render(render_tree(snapshot, now=anyio.current_time()), width=120))
    assert (
        output[0]
        == "name             state       restarts intensity mailbox uptime pressure last exit"
    )
    assert output[2] == "└─ busy Idle     running            0              0/10   0.0s shed"


async def test_p5_each_partition_worker_row_shows_its_own_partition_level() -> None:
    """P5/A15: each partition worker shows its partition's level and depth; the supervisor the worst."""
    queue: otpy.PartitionedQueue[int] = otpy.PartitionedQueue(2, 10, name="jobs")
    hot = next(k for k in ("a", "b", "c", "d") if queue.partition_of(k) == 1)
    entered, release = anyio.Event(), anyio.Event()

    async def handler(key: str, item: int) -> None:
        entered.set()
        await release.wait()

    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        queue.supervisor_spec(handler, max_demand=1, name="jobs"),
        otpy.ChildSpec(
            id="monitor", start=otpy.PressureMonitor, name="pressure", args=({"jobs": queue},)
        ),
    ]
    async with otpy.open_supervisor(specs, name="root"):
        queue.put_nowait(hot, 0)
        await entered.wait()  # one in hand, then 9/10 queued: degraded
        for n in range(1, 10):
            queue.put_nowait(hot, n, priority=otpy.Priority.CRITICAL)
        await otpy.named("pressure").call(otpy.SamplePressure())
        snapshot, now = take_snapshot(otpy.current_node()), anyio.current_time()
        release.set()
    rows = lines(render(render_tree(snapshot, now=now), width=120))
    assert rows[2].startswith("├─ jobs one_for_one")
    assert rows[2].endswith(" degraded")  # the worst partition
    assert rows[3].startswith("│  ├─ jobs.0 PartitionWorker")
    assert rows[3].endswith(" 0/1000   0.0s normal 0/10")  # mailbox empty, partition too
    assert rows[4].startswith("│  └─ jobs.1 PartitionWorker")
    # the worker's backlog is in its partition, not its mailbox: the cell shows it
    assert rows[4].endswith(" 0/1000   0.0s degraded 9/10")
