"""The live console: rendering supervision trees from statistics snapshots (ACT-15).

The trees are real (``open_supervisor`` on virtual time), so uptimes and restart
windows in the rendered text are exact; rendering reads only the frozen snapshots.
"""

from __future__ import annotations

import functools
import io
from typing import Any, cast

import anyio
import attrs
import pytest
from rich.console import Console

import otpy
import otpy.pressure
from otpy.console import (
    NodeSnapshot,
    StoreSnapshot,
    format_duration,
    read_store_statistics,
    render_tree,
    run_console,
    take_snapshot,
)
from otpy.console._view import store_interval
from otpy.deadletter import (
    DeadLetter,
    DeadLetters,
    DeadLetterStore,
    MemoryDeadLetterStore,
    Source,
    StoreStatistics,
    dead_letter_children,
    dead_letter_leftovers,
    dead_lettering_queue,
)
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


def render(
    renderable: Any, *, width: int = 100, height: int | None = None, styles: bool = False
) -> str:
    """Render into a recording console (``height`` lines tall if given) and return the text."""
    console = Console(
        record=True,
        width=width,
        height=height,
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


async def test_act_15_console_shows_the_tree_with_states_restarts_mailboxes_and_reasons() -> None:
    """ACT-15: each supervisor and child: state, restarts, intensity, mailbox, uptime, last exit."""
    snapshot, now = await scene()
    assert lines(render(render_tree(snapshot, now=now, title="otpy · test"))) == [
        "otpy · test",
        "name                      state       restarts  intensity   mailbox uptime last exit",
        "root one_for_one          running            - 2/3 in 10s   0/10000   3.5s",
        "├─ inner rest_for_one     running            0  0/2 in 5s   0/10000   3.5s",
        "│  ├─ a Idle              running            0                 0/10   3.5s",
        "│  └─ b Idle              running            0                 0/10   3.5s",
        "├─ flaky                  backing_off        1                    -      - RuntimeError: lost the c…",
        "├─ slow                   restarting         1                    -      - ValueError: bad record 7",
        "└─ busy Idle              suspended          0                 3/10   3.5s",
        "6 live actors (2 supervisors, 3 workers)  ·  2 restarts  ·  1 dead letter (actor_stopped 1)",
    ]


async def test_act_15_narrow_console_lists_abnormal_exits_under_the_table() -> None:
    """ACT-15: below 96 columns the last crash of each child is listed in full under the table."""
    snapshot, now = await scene()
    output = lines(render(render_tree(snapshot, now=now), width=80))
    assert (
        output[0]
        == "name                            state       restarts  intensity   mailbox uptime"
    )
    start = output.index("last abnormal exits:")
    assert output[start + 1 : start + 3] == [
        "  flaky: RuntimeError: lost the connection",
        "  slow: ValueError: bad record 7",
    ]


async def test_act_15_states_are_coloured() -> None:
    """ACT-15: running is green, backing_off magenta, restarting yellow; a full window is red."""
    snapshot, now = await scene()
    output = render(render_tree(snapshot, now=now), styles=True)
    assert "\x1b[32mrunning " in output
    assert "\x1b[1;35mbacking_off\x1b[0m" in output
    assert "\x1b[1;33mrestarting " in output
    assert "\x1b[34msuspended " in output
    assert "\x1b[33m2/3 in 10s\x1b[0m" in output


async def test_act_15_a_child_stopping_gracefully_shows_stopping() -> None:
    """ACT-15: while the tree stops, a child still in terminate shows ``stopping``."""
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
        "root one_for_one          stopping           -  0/3 in 5s   0/10000   0.0s",
        "└─ slow SlowStop          stopping           0               0/1000   0.0s",
    ]


async def test_act_15_big_dynamic_pools_are_summarised() -> None:
    """ACT-15: a dynamic supervisor shows its first 20 children, then a count of the rest."""
    spec = otpy.DynamicSupervisorSpec(
        id="pool", name="pool", child=otpy.ChildSpec(id="w", start=Idle)
    )
    async with otpy.open_supervisor(spec) as sup:
        for _ in range(23):
            await sup.start_dynamic_child()
        stats = sup.statistics()
    output = lines(render(render_tree(stats, now=anyio.current_time())))
    assert output[1] == "pool dynamic              running            -  0/3 in 5s   0/10000   0.0s"
    assert output[2] == "├─ w#1 Idle               running            0                 0/10   0.0s"
    assert output[-2] == "… and 2 more children, none restarting or crashed"
    assert output[-1] == "24 actors running (1 supervisor, 23 workers)  ·  0 restarts"
    assert len(output) == 25  # the console's height: 1 + 1 + 21 + 1 + 1


def test_act_15_no_trees() -> None:
    """With no root supervisors the console says so."""
    assert lines(render(render_tree(NodeSnapshot(trees=(), live_actors=0), now=0.0))) == [
        "name                      state       restarts  intensity   mailbox uptime last exit",
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


async def test_act_15_run_console_draws_a_last_frame_of_the_stopped_tree() -> None:
    """ACT-15: when told to stop, the live console draws the stopped tree once more and returns."""
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
        "name                      state       restarts  intensity   mailbox uptime last exit",
        "root one_for_one          stopped            -  0/3 in 5s   0/10000      -",
        "└─ a                      stopped            0                    -      - shutdown",
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
            start=otpy.pressure.PressureMonitor,
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
        await otpy.named("pressure").call(otpy.pressure.SamplePressure())
        return take_snapshot(otpy.current_node()), anyio.current_time()


async def test_prs_5_console_shows_the_pressure_level_of_watched_children() -> None:
    """PRS-5/ACT-15: with a monitor running, a pressure column shows each watched child's level."""
    snapshot, now = await pressure_scene()
    assert set(snapshot.pressure) == {"pressure"}
    assert lines(render(render_tree(snapshot, now=now), width=120)) == [
        "name                        state       restarts  intensity   mailbox uptime pressure       last exit",
        "root one_for_one            running            -  0/3 in 5s   0/10000   0.0s -",
        "├─ busy Idle                suspended          0                 9/10   0.0s degraded",
        "├─ calm Idle                running            0                 0/10   0.0s normal",
        "├─ other Idle               running            0                 0/10   0.0s -",
        "└─ monitor PressureMonitor  running            0               0/1000   0.0s -",
        "5 live actors (1 supervisor, 4 workers)  ·  0 restarts  ·  0 dead letters",
    ]


async def test_prs_5_pressure_levels_are_coloured_and_the_column_stays_when_narrow() -> None:
    """PRS-5/ACT-15: degraded is bold yellow, normal dim; below 96 columns the pressure column remains."""
    snapshot, now = await pressure_scene()
    styled = render(render_tree(snapshot, now=now), styles=True)
    assert "\x1b[1;33mdegraded\x1b[0m" in styled
    assert "\x1b[2mnormal\x1b[0m" in styled
    narrow = lines(render(render_tree(snapshot, now=now), width=80))
    assert narrow[0] == "name                    state       restarts  intensity   mailbox pressure"
    assert narrow[2] == "├─ busy Idle            suspended          0                 9/10 degraded"


async def test_prs_5_console_shows_the_worst_partition_of_a_monitor_named_by_component() -> None:
    """PRS-5/ACT-15: take_snapshot(monitors=...) reads an unregistered monitor; partitions show their worst level."""
    calm: otpy.pressure.BoundedQueue[int] = otpy.pressure.BoundedQueue(10, name="busy")
    full: otpy.pressure.BoundedQueue[int] = otpy.pressure.BoundedQueue(10, name="busy")
    for n in range(10):
        full.put_nowait(n, priority=otpy.pressure.Priority.CRITICAL)
    sources = [
        otpy.pressure.Watched("busy", calm, partition=0),
        otpy.pressure.Watched("busy", full, partition=1),
    ]
    async with otpy.open_supervisor([otpy.ChildSpec(id="busy", start=Idle)], name="root"):
        node = otpy.current_node()
        monitor = await otpy.spawn(otpy.pressure.PressureMonitor, sources, None, 1.0, "edge")
        await monitor.call(otpy.pressure.SamplePressure())
        without = take_snapshot(node)
        snapshot = take_snapshot(node, monitors=["edge", "nobody"])
        await monitor.stop()
    assert without.pressure == {}
    assert set(snapshot.pressure) == {"edge"}
    output = lines(render(render_tree(snapshot, now=anyio.current_time()), width=120))
    assert (
        output[0]
        == "name                        state       restarts  intensity   mailbox uptime pressure       last exit"
    )
    assert (
        output[2]
        == "└─ busy Idle                running            0                 0/10   0.0s shed"
    )


async def test_prs_5_each_partition_worker_row_shows_its_own_partition_level() -> None:
    """PRS-5/ACT-15: each partition worker shows its partition's level and depth; the supervisor the worst."""
    queue: otpy.pressure.PartitionedQueue[int] = otpy.pressure.PartitionedQueue(2, 10, name="jobs")
    hot = next(k for k in ("a", "b", "c", "d") if queue.partition_of(k) == 1)
    entered, release = anyio.Event(), anyio.Event()

    async def handler(key: str, item: int) -> None:
        entered.set()
        await release.wait()

    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        queue.supervisor_spec(handler, max_demand=1, name="jobs"),
        otpy.ChildSpec(
            id="monitor",
            start=otpy.pressure.PressureMonitor,
            name="pressure",
            args=({"jobs": queue},),
        ),
    ]
    async with otpy.open_supervisor(specs, name="root"):
        queue.put_nowait(hot, 0)
        await entered.wait()  # one in hand, then 9/10 queued: degraded
        for n in range(1, 10):
            queue.put_nowait(hot, n, priority=otpy.pressure.Priority.CRITICAL)
        await otpy.named("pressure").call(otpy.pressure.SamplePressure())
        snapshot, now = take_snapshot(otpy.current_node()), anyio.current_time()
        release.set()
    rows = lines(render(render_tree(snapshot, now=now), width=120))
    assert rows[2].startswith("├─ jobs one_for_one")
    assert rows[2].endswith(" degraded")  # the worst partition
    assert rows[3].startswith("│  ├─ jobs.0 PartitionWork…")
    assert rows[3].endswith(" 0/1000   0.0s normal 0/10")  # mailbox empty, partition too
    assert rows[4].startswith("│  └─ jobs.1 PartitionWork…")
    # the worker's backlog is in its partition, not its mailbox: the cell shows it
    assert rows[4].endswith(" 0/1000   0.0s degraded 9/10")


# -- dead letters: what the stores hold ----------------------------------------------------


class Poison(otpy.Actor):
    """Crashes on every cast; the message it crashed on is a dead letter."""

    dead_letter_on_crash = True

    async def handle_cast(self, message: Any) -> None:
        raise ValueError(f"cannot handle {message!r}")


def dead_letter_tree(store: DeadLetterStore) -> otpy.SupervisorSpec:
    """The dead-letter service (store, writer, router) as one subtree."""
    return otpy.SupervisorSpec(
        id="dead-letters",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
        children=dead_letter_children(store, route=True, sweep=False),
    )


def footer(output: str) -> str:
    """The rendered footer: the lines after the table, joined."""
    rendered = lines(output)
    start = next(n for n, line in enumerate(rendered) if "live actor" in line)
    return "  ·  ".join(rendered[start:])


@pytest.mark.parametrize("anyio_backend", ["asyncio", virtual_time()])
async def test_console_counts_every_dead_letter_the_store_holds() -> None:
    """The footer counts what the store holds: poison, shed, refused, drained and direct records."""
    store = MemoryDeadLetterStore()
    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        dead_letter_tree(store),
        otpy.ChildSpec(id="poison", start=Poison),
    ]
    async with otpy.open_supervisor(specs, name="root") as sup:
        node = otpy.current_node()
        poison = sup.child("poison")
        assert poison is not None
        await poison.cast("order 7")  # poison: through the node's stream and the router
        await poison.wait_exited()
        queue: otpy.pressure.BoundedQueue[int] = dead_lettering_queue(
            20, DeadLetters(), key="orders"
        )
        for n in range(19):  # 19/20 queued is level shed
            queue.put_nowait(n, priority=otpy.pressure.Priority.CRITICAL)
        with pytest.raises(otpy.LoadShed):
            queue.put_nowait(100, priority=otpy.pressure.Priority.LOW)
        queue.put_nowait(19, priority=otpy.pressure.Priority.CRITICAL)
        with pytest.raises(otpy.QueueFull):
            queue.put_nowait(101, priority=otpy.pressure.Priority.CRITICAL)
        await dead_letter_leftovers(DeadLetters())("jobs", [("a", 5), ("b", 6)])  # a drain's rest
        await store.add_many([DeadLetter.capture(key="direct", source=Source.INGEST)])
        # acknowledged after commit, and the writer commits in order: everything is in
        await DeadLetters().capture(DeadLetter.capture(key="client", source=Source.OUTBOUND))
        stores = await read_store_statistics(node)
        snapshot = take_snapshot(node, stores=stores)
        now = anyio.current_time()
        held = (await store.statistics()).total
    assert held == 7
    assert set(stores) == {"dead-letters"}
    assert footer(render(render_tree(snapshot, now=now), width=120)).endswith(
        "  ·  7 dead letters (undeliverable 2, actor_crash 1, ingest 1)"
    )


async def test_the_console_draws_its_frames_while_the_store_does_not_answer() -> None:
    """A store that hangs never delays a frame; after the timeout the footer says it is unreachable."""
    store = cast("DeadLetterStore", HangingStore())
    frames: list[float] = []

    def title() -> str:
        frames.append(anyio.current_time())
        return "otpy · live"

    output = io.StringIO()
    console = Console(record=True, width=100, height=24, file=output)
    done = anyio.Event()
    async with otpy.open_supervisor([dead_letter_tree(store)], name="root"):
        node = otpy.current_node()
        async with anyio.create_task_group() as tg:
            start = anyio.current_time()
            tg.start_soon(
                functools.partial(
                    run_console, node, refresh=4.0, title=title, console=console, until=done
                )
            )
            await anyio.sleep(6.125)  # between two frames: the last one is the final frame
            done.set()
    assert [at - start for at in frames] == [n * 0.25 for n in range(25)] + [6.125]
    assert footer(output.getvalue()).endswith(
        "  ·  dead-letter store unreachable (no answer within 5s)"
    )


async def test_the_last_frame_gives_the_age_of_a_stopped_writers_count() -> None:
    """Once its writer stopped, a store's last count is shown with its age: newer captures are missing."""
    store = MemoryDeadLetterStore()
    output = io.StringIO()
    console = Console(record=True, width=100, height=24, file=output)
    done = anyio.Event()
    async with otpy.open_supervisor([dead_letter_tree(store)], name="root") as sup:
        node = otpy.current_node()
        await DeadLetters().capture(DeadLetter.capture(key="client", source=Source.OUTBOUND))
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                functools.partial(run_console, node, refresh=4.0, console=console, until=done)
            )
            await anyio.sleep(1.5)  # the store was read at 0.0 and 1.0
            await sup.stop()
            done.set()
    assert footer(output.getvalue()).endswith("  ·  1 dead letter as of 0.5s ago (outbound 1)")


class SlowStore:
    """A memory store whose statistics take half a second; it notes when each read starts."""

    def __init__(self) -> None:
        self.inner = MemoryDeadLetterStore()
        self.reads: list[float] = []

    async def statistics(self) -> StoreStatistics:
        self.reads.append(anyio.current_time())
        await anyio.sleep(0.5)
        return await self.inner.statistics()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_slow_store_is_read_less_often() -> None:
    """A read taking 0.5 s is followed by a 5 s wait: the console holds the store a tenth of the time."""
    slow = SlowStore()
    output = io.StringIO()
    console = Console(record=True, width=100, height=24, file=output)
    done = anyio.Event()
    async with otpy.open_supervisor(
        [dead_letter_tree(cast("DeadLetterStore", slow))], name="root"
    ) as sup:
        node = otpy.current_node()
        async with anyio.create_task_group() as tg:
            start = anyio.current_time()
            tg.start_soon(
                functools.partial(run_console, node, refresh=4.0, console=console, until=done)
            )
            await anyio.sleep(11.75)  # read at 0.0-0.5, 5.5-6.0, 11.0-11.5
            done.set()
        await sup.stop()
    assert [at - start for at in slow.reads] == [0.0, 5.5, 11.0]
    assert footer(output.getvalue()).endswith("  ·  0 dead letters")  # 0.25 s old: not stale


def test_the_store_read_interval_is_ten_reads_long_within_bounds() -> None:
    """The wait after a read is 10x its duration, at least 1 s and at most 30 s."""
    assert [store_interval(d) for d in (0.0, 0.05, 0.4, 2.0, 10.0)] == [1.0, 1.0, 4.0, 20.0, 30.0]


class HangingStore:
    """A memory store whose statistics never come back."""

    def __init__(self) -> None:
        self.inner = MemoryDeadLetterStore()

    async def statistics(self) -> StoreStatistics:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_store_reading_shows_its_age_when_stale_and_its_error_instead_of_a_count() -> None:
    """An old reading carries its age; a failed read shows the error and no number."""
    stats = StoreStatistics(
        total=243,
        by_status={"active": 243},
        by_source={"load_shed": 200, "queue_full": 39, "actor_crash": 4},
        by_reason_class={},
        by_key={},
        by_replay_status={},
        evicted={},
        captured=243,
    )
    fresh = StoreSnapshot(statistics=stats, read_at=100.0)
    failed = StoreSnapshot(statistics=stats, read_at=100.0, error="StoreLocked: locked")

    def shown(reading: StoreSnapshot, now: float) -> str:
        snapshot = NodeSnapshot(trees=(), live_actors=0, stores={"dead-letters": reading})
        return footer(render(render_tree(snapshot, now=now), width=120))

    counts = "243 dead letters (load_shed 200, queue_full 39, actor_crash 4)"
    assert shown(fresh, now=103.0).endswith(f"  ·  {counts}")
    assert shown(fresh, now=112.5).endswith(
        "  ·  243 dead letters as of 12s ago (load_shed 200, queue_full 39, actor_crash 4)"
    )
    assert shown(failed, now=101.0).endswith(
        "  ·  dead-letter store unreachable (StoreLocked: locked)"
    )
    assert "243" not in shown(failed, now=101.0)
    slow = attrs.evolve(fresh, duration=0.4)  # read every 4 s: stale after 12 s
    assert shown(slow, now=111.0).endswith(f"  ·  {counts}")
    assert " as of 13s ago " in shown(slow, now=113.0)
    assert shown(StoreSnapshot(), now=0.0).endswith("  ·  dead letters: reading the store…")


# -- fitting the terminal ------------------------------------------------------------------


async def big_tree(workers: int) -> tuple[NodeSnapshot, float]:
    """A root with *workers* idle children and, near the end, one backing off and one crashed.

    ``flaky`` (after the 30th worker) crashed at 1.0 s and backs off until 11.0 s;
    ``worker-36``'s snapshot is made to say it crashed for good, as children of a
    supervisor that gave up do.
    """
    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        otpy.ChildSpec(id=f"worker-{n:02d}", start=Idle) for n in range(workers)
    ]
    specs.insert(
        30,
        otpy.ChildSpec(
            id="flaky", start=Crasher, backoff=otpy.Backoff(minimum=10.0, maximum=10.0, jitter=0.0)
        ),
    )
    async with otpy.open_supervisor(specs, name="root") as sup:
        await anyio.sleep(1.5)
        stats, now = sup.statistics(), anyio.current_time()
    children = list(stats.children)
    if workers > 36:
        crashed = next(n for n, child in enumerate(children) if child.id == "worker-36")
        children[crashed] = attrs.evolve(
            children[crashed], state="stopped", last_exit_reason="OSError: disk full", actor=None
        )
    tree = attrs.evolve(stats, children=tuple(children))
    running = 1 + sum(child.state == "running" for child in children)
    return NodeSnapshot(trees=(tree,), live_actors=running), now


def changed(snapshot: NodeSnapshot, child_id: str, *, reason: str, queued: int) -> NodeSnapshot:
    """*snapshot* with one child's last exit reason and mailbox depth changed (capacity 100000)."""
    [tree] = snapshot.trees
    children = []
    for child in tree.children:
        if child.id == child_id:
            assert child.actor is not None
            actor = attrs.evolve(child.actor, queued=queued, capacity=100_000)
            child = attrs.evolve(child, last_exit_reason=reason, actor=actor)
        children.append(child)
    return attrs.evolve(snapshot, trees=(attrs.evolve(tree, children=tuple(children)),))


async def test_act_15_at_80x24_a_big_tree_is_summarised_and_the_footer_stays() -> None:
    """ACT-15: 41 children at 80x24: 24 lines, unhealthy children kept, a count of the rest, the footer."""
    snapshot, now = await big_tree(40)
    output = lines(render(render_tree(snapshot, now=now, title="otpy · big"), width=80, height=24))
    assert len(output) == 24
    assert output[0] == "otpy · big"
    assert output[-1] == "40 live actors (1 supervisor, 39 workers)  ·  1 restart"
    assert "… and 25 more children, none restarting or crashed" in output
    shown = [line.split()[1] for line in output[3:19]]  # after the title, header and root
    assert shown == [*(f"worker-{n:02d}" for n in range(14)), "flaky", "worker-36"]
    assert output[-4:-1] == [
        "last abnormal exits:",
        "  flaky: RuntimeError: lost the connection",
        "  worker-36: OSError: disk full",
    ]
    assert all(len(line) <= 80 for line in output)


async def test_act_15_the_summary_counts_the_unhealthy_children_it_hides() -> None:
    """ACT-15: when even the crashed and restarting children do not fit, the summary counts them."""
    snapshot, now = await big_tree(40)
    output = lines(render(render_tree(snapshot, now=now), width=120, height=4))
    assert output == [
        "name                                state       restarts  intensity   mailbox uptime last exit",
        "root one_for_one                    running            -  1/3 in 5s   0/10000   1.5s",
        "… and 41 more children (1 restarting, 1 crashed)",
        "40 live actors (1 supervisor, 39 workers)  ·  1 restart",
    ]


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
async def test_act_15_columns_stay_put_whatever_the_cells_hold(width: int, height: int) -> None:
    """ACT-15: a reason growing long and a mailbox going from 1 to 100000 move no column."""
    snapshot, now = await big_tree(40)
    before = changed(snapshot, "worker-00", reason="normal", queued=1)
    after = changed(snapshot, "worker-00", reason="RuntimeError: " + "x" * 300, queued=100_000)
    frames = [
        lines(render(render_tree(frame, now=now), width=width, height=height))
        for frame in (before, after)
    ]
    assert frames[0][0] == frames[1][0]  # the header, so every column boundary
    old, new = (next(line for line in frame if "worker-00" in line) for frame in frames)
    header = frames[0][0]
    for column in ("state", "restarts", "mailbox"):
        end = header.index(column) + len(column)
        assert old[end - 1] != " "  # right-aligned numbers, and the state, end in place
        assert new[end - 1] != " "
    assert old.index("running") == new.index("running") == header.index("state")
    mailbox_end = header.index("mailbox") + len("mailbox")
    assert old[:mailbox_end].endswith(" 1/100000")
    assert new[:mailbox_end].endswith(" 100k/100k")
    assert all(len(line) <= width for frame in frames for line in frame)


async def test_act_15_at_120x40_a_tree_that_fits_is_shown_whole() -> None:
    """ACT-15: 31 children fit in 120x40: every one is shown and nothing is summarised."""
    snapshot, now = await big_tree(30)
    output = lines(render(render_tree(snapshot, now=now, title="otpy"), width=120, height=40))
    assert len(output) == 1 + 1 + 32 + 1
    assert not any("more children" in line for line in output)
    assert [line.split()[1] for line in output[3:-1]] == [
        *(f"worker-{n:02d}" for n in range(30)),
        "flaky",
    ]


async def test_act_15_an_id_too_long_for_its_column_keeps_its_end() -> None:
    """ACT-15: a cut id loses its middle and its class first, so ids differing at the end stay apart."""
    specs: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        otpy.ChildSpec(id=f"deliveries-for-customer-partition-{n}", start=Idle) for n in (10, 11)
    ]
    async with otpy.open_supervisor(specs, name="root") as sup:
        output = lines(render(render_tree(sup.statistics(), now=anyio.current_time()), width=80))
    assert [line[:32] for line in output[2:4]] == [
        "├─ deliveries-for…-partition-10 ",
        "└─ deliveries-for…-partition-11 ",
    ]
