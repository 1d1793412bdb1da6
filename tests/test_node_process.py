"""The node process: ``run_node`` in-process, and ``python -m otpy run`` as a real process.

The in-process tests drive :func:`otpy.cli.run_node` through its ``ready`` callback.
The subprocess tests are the only real-time tests: they wait for the readiness line
on stderr (never a sleep), send real signals, and have timeouts so they cannot hang.
"""

from __future__ import annotations

import io
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
import trees
from rich.console import Console

import otpy
import supervisors.tour as demo
from otpy.cli import RunningNode, run_node
from otpy.deadletter import DeadLetterFilter, MemoryDeadLetterStore, Source
from otpy.testing import crash_after, virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterator

TESTS = Path(__file__).parent
ROOT = TESTS.parent
READY = re.compile(r"^otpy: node running (\S+) \(pid (\d+)\); Ctrl-C to stop$")


class Hangs(otpy.Actor):
    """Never finishes ``init``."""

    async def init(self) -> None:
        await anyio.sleep_forever()


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the test printed to stderr so far, line by line."""
    return capsys.readouterr().err.splitlines()


# -- in-process ----------------------------------------------------------------------------


async def test_run_node_starts_the_tree_and_stopping_returns_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The tree is up and registered as a root when ready fires; a stop returns 0."""
    seen: list[RunningNode] = []

    def ready(running: RunningNode) -> None:
        assert running.supervisor is not None
        assert running.node.roots == (running.supervisor.ref,)
        assert [c.state for c in running.supervisor.statistics().children] == ["running"] * 2
        seen.append(running)
        running.stop()

    assert await run_node(trees.quick, target="trees:quick", ready=ready) == 0
    assert len(seen) == 1
    assert seen[0].node.live_actors == 0
    assert stderr_lines(capsys) == [
        f"otpy: node running trees:quick (pid {os.getpid()}); Ctrl-C to stop",
        "otpy: stopping (press Ctrl-C again to stop at once)",
        "otpy: stopped",
    ]


async def test_run_node_runs_a_dynamic_supervisor(capsys: pytest.CaptureFixture[str]) -> None:
    """A DynamicSupervisorSpec root runs and stops the same way."""

    def ready(running: RunningNode) -> None:
        assert running.supervisor is not None
        assert running.supervisor.statistics().strategy == "dynamic"
        running.stop()

    assert await run_node(trees.pool, ready=ready) == 0
    assert stderr_lines(capsys)[0] == f"otpy: node running pool (pid {os.getpid()}); Ctrl-C to stop"


async def test_run_node_stops_on_sigint(capsys: pytest.CaptureFixture[str]) -> None:
    """A real SIGINT sent to this process stops the tree gracefully and returns 0."""
    code = await run_node(trees.quick, ready=lambda running: os.kill(os.getpid(), signal.SIGINT))
    assert code == 0
    assert stderr_lines(capsys)[-2:] == [
        "otpy: stopping (press Ctrl-C again to stop at once)",
        "otpy: stopped",
    ]


async def test_run_node_stopped_while_starting_returns_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A signal while the tree is still starting cancels the start; the exit code is 1."""
    spec = otpy.SupervisorSpec(id="hangs", children=[otpy.ChildSpec(id="h", start=Hangs)])
    async with anyio.create_task_group() as tg:
        result: list[int] = []

        async def run() -> None:
            result.append(await run_node(spec))

        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        os.kill(os.getpid(), signal.SIGINT)
    assert result == [1]
    assert stderr_lines(capsys) == ["otpy: stopped while starting"]


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_sup_5_run_node_returns_1_when_the_root_gives_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SUP-5: with intensity 0 the first crash makes the root give up; run_node returns 1."""
    spec = otpy.SupervisorSpec(
        id="gives_up",
        flags=otpy.SupervisorFlags(intensity=0, period=5.0),
        children=[crash_after(1.0, id="flaky")],
    )
    start = anyio.current_time()
    assert await run_node(spec, target="trees:gives_up") == 1
    assert anyio.current_time() - start == 1.0
    last = stderr_lines(capsys)[-1]
    assert last.startswith("otpy: root supervisor trees:gives_up gave up: supervisor 'gives_up'")
    assert "(last offender 'flaky')" in last


async def test_sup_9_a_second_stop_does_not_wait_for_a_slow_terminate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SUP-9: the first stop waits for terminate (shutdown INFINITY); the second stops at once."""
    ready = anyio.Event()
    nodes: list[RunningNode] = []

    def on_ready(running: RunningNode) -> None:
        nodes.append(running)
        ready.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            result: list[int] = []

            async def run() -> None:
                result.append(await run_node(trees.slow_stop, ready=on_ready))

            tg.start_soon(run)
            await ready.wait()
            nodes[0].stop()
            await anyio.wait_all_tasks_blocked()
            assert "trees: slow terminate started" in capsys.readouterr().err
            nodes[0].stop()
    assert result == [1]
    assert nodes[0].node.live_actors == 0
    assert stderr_lines(capsys)[-2:] == [
        "otpy: stopping at once",
        "otpy: stopped at once; actors still stopping were cancelled before terminate finished",
    ]


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_a_drain_past_its_budget_stops_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """NODE-4: With drain_budget, a graceful stop still running after it becomes a stop at once."""
    nodes: list[RunningNode] = []
    start = anyio.current_time()

    def on_ready(running: RunningNode) -> None:
        nodes.append(running)
        running.stop()

    assert await run_node(trees.slow_stop, ready=on_ready, drain_budget=7.0) == 1
    assert anyio.current_time() - start == 7.0
    assert nodes[0].forced
    assert stderr_lines(capsys)[-3:] == [
        "otpy: the drain took more than 7s",
        "otpy: stopping at once",
        "otpy: stopped at once; actors still stopping were cancelled before terminate finished",
    ]


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_a_drain_within_its_budget_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """NODE-4: A graceful stop that ends before drain_budget is a clean stop: no forced stop follows."""
    nodes: list[RunningNode] = []

    def on_ready(running: RunningNode) -> None:
        nodes.append(running)
        running.stop()

    assert await run_node(trees.quick, ready=on_ready, drain_budget=7.0) == 0
    assert not nodes[0].forced
    assert stderr_lines(capsys)[-1] == "otpy: stopped"


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_act_15_run_node_console_leaves_the_stopped_tree_on_screen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ACT-15: with the console on, its last frame shows the tree stopped."""
    output = io.StringIO()
    console = Console(record=True, width=100, file=output)

    def ready(running: RunningNode) -> None:
        running.stop()

    assert await run_node(trees.quick, target="trees:quick", console=console, ready=ready) == 0
    frame = [line.rstrip() for line in output.getvalue().splitlines()]
    assert frame[0] == f"otpy · trees:quick · pid {os.getpid()} · stopped"
    assert frame[2:5] == [
        "quick one_for_one         stopped            -  0/3 in 5s   0/10000      -",
        "├─ a                      stopped            0                    -      - shutdown",
        "└─ b                      stopped            0                    -      - shutdown",
    ]
    assert stderr_lines(capsys)[-1] == "otpy: stopped"


# -- a real process --------------------------------------------------------------------------


class Node:
    """A ``python -m otpy run`` subprocess whose stderr is read line by line."""

    def __init__(self, *args: str, cwd: Path, environ: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTPY_"))}
        env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", **(environ or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otpy", "run", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._stdout: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr as stream:
            for line in stream:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as stream:
            self._stdout.append(stream.read())

    @property
    def stdout(self) -> str:
        """Everything the node wrote to stdout (complete once it has exited)."""
        return "".join(self._stdout)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Return the match of the first new stderr line matching *pattern*."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"stderr closed before {pattern!r}; saw {self.seen}")
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def signal(self, signum: int) -> None:
        """Send *signum* to the node."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the exit; return the code, with every stderr line in ``seen``."""
        code = self.process.wait(timeout=timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return code

    def kill(self) -> None:
        """Make sure the process is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10.0)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Started nodes; any still running at the end of the test is killed."""
    started: list[Node] = []
    yield started
    for node in started:
        node.kill()


def test_tour_tree_runs_and_stops_cleanly_on_sigint(nodes: list[Node], tmp_path: Path) -> None:
    """``python -m otpy run otpy.supervisors.tour:root`` prints readiness, then exits 0 on SIGINT.

    It runs in a temporary directory, from the installed package: the tour keeps its dead letters under ``./var``.
    """
    node = Node("otpy.supervisors.tour:root", cwd=tmp_path)
    nodes.append(node)
    ready = node.wait_for(READY.pattern)
    assert ready.group(1) == "otpy.supervisors.tour:root"
    assert int(ready.group(2)) == node.process.pid
    node.signal(signal.SIGINT)
    assert node.wait() == 0, node.seen
    assert node.seen[-2:] == [
        "otpy: stopping (press Ctrl-C again to stop at once)",
        "otpy: stopped",
    ]
    assert (tmp_path / "var" / "dead-letters.db").is_file()


def test_run_with_no_target_runs_the_messaging_node_on_the_defaults(
    nodes: list[Node], tmp_path: Path
) -> None:
    """NODE-4, NODE-6: ``otpy run`` alone runs otpy.supervisors.node:node with its files in ./var; SIGTERM exits 0."""
    node = Node(
        "--log-level",
        "info",
        cwd=tmp_path,
        environ={"OTPY_INGEST_PORT": "0", "OTPY_ADMIN_ENABLED": "false"},
    )
    nodes.append(node)
    listening = node.wait_for(r"ingest listening on http://127\.0\.0\.1:(\d+)$")
    assert int(listening.group(1)) > 0
    ready = node.wait_for(READY.pattern)
    assert ready.group(1) == "otpy.supervisors.node:node"
    node.signal(signal.SIGTERM)
    assert node.wait() == 0, node.seen
    assert node.seen[-1] == "otpy: stopped"
    names = {"journal.sqlite3", "outbox.sqlite3", "dead-letters.sqlite3"}
    assert names <= {p.name for p in (tmp_path / "var").iterdir()}


def test_a_bad_config_exits_2_before_anything_starts(nodes: list[Node], tmp_path: Path) -> None:
    """NODE-5: A config error names the key, the value and what is allowed; exit 2, no files made."""
    (tmp_path / "otpy.toml").write_text('[ingest]\nport = "eighty"\n')
    node = Node("--config", "otpy.toml", cwd=tmp_path)
    nodes.append(node)
    assert node.wait() == 2
    message = " ".join(node.seen)
    assert "the configuration is invalid" in message
    assert "ingest.port must be an integer >= 0 and <= 65535, got 'eighty'" in message
    assert not (tmp_path / "var").exists()


def test_sigterm_stops_cleanly(nodes: list[Node]) -> None:
    """SIGTERM stops the tree gracefully too, from a module in the working directory."""
    node = Node("trees:quick", cwd=TESTS)
    nodes.append(node)
    node.wait_for(READY.pattern)
    node.signal(signal.SIGTERM)
    assert node.wait() == 0, node.seen
    assert node.seen[-1] == "otpy: stopped"


def test_sup_9_second_sigint_stops_a_slow_terminate_at_once(nodes: list[Node]) -> None:
    """SUP-9, NODE-4: a child with shutdown INFINITY holds up the first SIGINT; a second exits 1."""
    node = Node("trees:slow_stop", cwd=TESTS)
    nodes.append(node)
    node.wait_for(READY.pattern)
    node.signal(signal.SIGINT)
    node.wait_for("^trees: slow terminate started$")
    node.signal(signal.SIGINT)
    assert node.wait() == 1, node.seen
    assert node.seen[-2:] == [
        "otpy: stopping at once",
        "otpy: stopped at once; actors still stopping were cancelled before terminate finished",
    ]


def test_act_15_console_stops_cleanly_on_sigint(nodes: list[Node]) -> None:
    """ACT-15: Ctrl-C with the console on stops the node; the console's last frame is printed."""
    node = Node("trees:quick", "--console", "--refresh", "20", cwd=TESTS)
    nodes.append(node)
    node.wait_for(READY.pattern)
    node.signal(signal.SIGINT)
    assert node.wait() == 0, node.seen
    assert node.seen[-1] == "otpy: stopped"
    assert f"otpy · trees:quick · pid {node.process.pid} · stopped" in node.stdout
    assert "├─ a " in node.stdout
    assert "0 live actors" in node.stdout


def test_bad_target_exits_2_from_a_real_process() -> None:
    """A target that does not load exits 2 before anything starts."""
    result = subprocess.run(
        [sys.executable, "-m", "otpy", "run", "trees:not_a_spec"],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "trees:not_a_spec is 42 (int), not a supervisor spec" in " ".join(result.stderr.split())


def otpy_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m otpy run ARGS`` to the end, with ``tests/`` importable and no exporter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", PYTHONPATH=str(TESTS))
    return subprocess.run(
        [sys.executable, "-m", "otpy", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every stderr line parsed as a JSON object (fails on the first that is not one)."""
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


def test_log_format_json_writes_nothing_but_json_on_stderr(tmp_path: Path) -> None:
    """With --log-format json, status lines, the readiness line and warnings are JSON too."""
    (tmp_path / "warned.py").write_text(
        "import warnings\n"
        "from trees import finishes as root\n"
        "warnings.warn('the settings file format is deprecated', UserWarning)\n"
    )
    result = otpy_run("warned:root", "--log-format", "json", "--log-level", "debug", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = json_lines(result.stderr)
    [warning] = [e for e in entries if e["logger"] == "py.warnings"]
    assert warning["level"] == "warning"
    assert "the settings file format is deprecated" in str(warning["message"])
    status = [e["message"] for e in entries if e["logger"] == "otpy.cli"]
    assert re.fullmatch(r"node running warned:root \(pid \d+\); Ctrl-C to stop", str(status[0]))
    assert status[-2:] == ["root supervisor warned:root exited: shutdown", "stopped"]


def test_log_format_json_reports_a_usage_error_as_json(tmp_path: Path) -> None:
    """With --log-format json, click's own errors (a bad option) are one JSON line, with the code."""
    result = otpy_run("trees:quick", "--refresh", "0", "--log-format=json", cwd=TESTS)
    assert result.returncode == 2
    [entry] = json_lines(result.stderr)
    assert entry["level"] == "error"
    assert entry["exit_code"] == 2
    assert (
        entry["message"] == "Error: Invalid value for '--refresh': 0.0 is not in the range 0<x<=60."
    )


# -- the demo tree -------------------------------------------------------------------------


@pytest.fixture
def seeded_random() -> Iterator[None]:
    """Seed the global random generator the demo uses; restore its state afterwards."""
    state = random.getstate()
    random.seed(20240601)
    yield
    random.setstate(state)


@pytest.mark.usefixtures("seeded_random")
@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_sup_5_demo_tree_restarts_but_never_gives_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SUP-5: for 15 virtual minutes the demo restarts flaky and enrich, and never gives up."""
    # The demo's own store is SQLite (asyncio only); the same tree on a memory store
    # runs on trio's virtual clock.
    duration = 900.0
    seen: list[otpy.SupervisorStatistics] = []
    worst: dict[str, int] = {}

    def watch(stats: otpy.SupervisorStatistics) -> None:
        worst[stats.label] = max(worst.get(stats.label, 0), stats.restarts_in_window)
        for child in stats.children:
            if child.supervisor is not None:
                watch(child.supervisor)

    async def observe(running: RunningNode) -> None:
        assert running.supervisor is not None
        start = anyio.current_time()
        while anyio.current_time() - start < duration:
            await anyio.sleep(0.5)
            watch(running.supervisor.statistics())
        seen.append(running.supervisor.statistics())
        stored = running.node.whereis("demo.store")
        assert stored is not None
        assert await stored.call("stored") > 0
        running.stop()

    store = MemoryDeadLetterStore()
    tree = demo.build_root(store)
    async with anyio.create_task_group() as tg:
        code = await run_node(tree, ready=lambda running: tg.start_soon(observe, running))
    assert code == 0
    [final] = seen
    assert final.state == "running"
    children = {child.id: child for child in final.children}
    assert children["flaky"].restarts > 50
    pipeline = children["pipeline"].supervisor
    assert pipeline is not None
    enrich_restarts = {c.id: c.restarts for c in pipeline.children}["enrich"]
    assert enrich_restarts > 50
    # DL-1: every record enrich crashed on was dead-lettered, as JSON, keyed by its name.
    poison = (await store.list(DeadLetterFilter(source=Source.ACTOR_CRASH), limit=1000)).records
    # (the snapshot is taken just before the node stops: one more crash may follow it)
    assert enrich_restarts <= len(poison) <= enrich_restarts + 1
    assert {r.key for r in poison} == {"demo.enrich"}
    assert all(json.loads(r.payload or b"")["n"] % demo.POISON_EVERY == 0 for r in poison)
    assert worst["root"] <= 5 < tree.flags.intensity
    assert worst["pipeline"] <= 4 < demo.pipeline.flags.intensity
    assert stderr_lines(capsys)[-1] == "otpy: stopped"


async def test_run_node_returns_1_when_the_root_exits_abnormally(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A root supervisor killed with an abnormal reason makes run_node return 1."""

    def ready(running: RunningNode) -> None:
        assert running.supervisor is not None
        running.supervisor.ref.kill("disk_on_fire")

    assert await run_node(trees.quick, target="trees:quick", ready=ready) == 1
    assert stderr_lines(capsys)[-1] == (
        "otpy: root supervisor trees:quick exited abnormally: disk_on_fire"
    )


async def test_act_15_a_failing_console_does_not_stop_the_node(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ACT-15: if the console fails, the failure is logged and the node keeps running."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("terminal went away")

    monkeypatch.setattr("otpy.console.run_console", broken)
    stopped: list[bool] = []

    async def stop_later(running: RunningNode) -> None:
        await anyio.wait_all_tasks_blocked()
        assert running.supervisor is not None
        assert running.supervisor.ref.is_alive
        stopped.append(True)
        running.stop()

    async with anyio.create_task_group() as tg:
        code = await run_node(
            trees.quick, console=True, ready=lambda running: tg.start_soon(stop_later, running)
        )
    assert code == 0
    assert stopped == [True]
    assert "the console failed; the node keeps running without it" in caplog.text
