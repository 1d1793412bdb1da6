"""Benchmark 4: spawning idle actors, and what each one costs in memory.

``await otpy.spawn(Idle)`` N times in a row from one task (each spawn returns once
the actor's ``init`` has run), against N bare tasks started with
``tg.start_soon`` that wait on one ``anyio.Event`` (timed until every one of them
has run). RSS per actor is the growth of the process's resident set (psutil, after
``gc.collect()``) divided by N.

Every repetition of each contender runs in a fresh interpreter
(``python -m benchmarks._spawn``), so neither RSS nor the garbage collector's heap
carries anything over from earlier benchmarks.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

import otpy

from ._actors import Idle
from ._harness import (
    BenchmarkResult,
    Figure,
    Sample,
    Stopwatch,
    Target,
    column,
    gc_diagnostics,
    runtime_named,
)

if TYPE_CHECKING:
    from ._harness import Runtime, Size

__all__ = ["run"]

FULL = 100_000
QUICK = 5_000
SMOKE = 200
TIMEOUT = 600.0  # seconds for one child process; a full run takes a few

_ROOT = Path(__file__).resolve().parent.parent


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def otpy_spawns(n: int) -> Sample:
    """Spawn *n* idle actors one after another; measure time and RSS growth."""
    async with otpy.open_node():
        await otpy.spawn(Idle)  # one-off allocations of the first spawn are not counted
        before = _rss()
        with Stopwatch() as watch:
            for _ in range(n):
                await otpy.spawn(Idle)
        after = _rss()
        sample = {
            "spawns_per_s": n / watch.seconds,
            "rss_per_actor_b": (after - before) / n,
            **watch.gc_sample(),
        }
        _emit(sample)
    return sample


async def bare_tasks(n: int) -> Sample:
    """Start *n* tasks waiting on one event; time until every one of them has run."""
    release = anyio.Event()
    all_running = anyio.Event()
    running = 0

    async def idle() -> None:
        nonlocal running
        running += 1
        if running == n:
            all_running.set()
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release.wait)  # as above: warm up before measuring
        await anyio.lowlevel.checkpoint()
        before = _rss()
        with Stopwatch() as watch:
            for _ in range(n):
                tg.start_soon(idle)
            await all_running.wait()
        after = _rss()
        sample = {
            "spawns_per_s": n / watch.seconds,
            "rss_per_actor_b": (after - before) / n,
            **watch.gc_sample(),
        }
        _emit(sample)
        release.set()
    return sample


def _emit(sample: Sample) -> None:
    # Printed before the teardown, so the parent can stop waiting for N tasks to end.
    print(json.dumps(sample), flush=True)


def _in_subprocess(runtime: Runtime, contender: str, n: int) -> Sample:
    command = [
        sys.executable,
        "-m",
        "benchmarks._spawn",
        "--runtime",
        runtime.name,
        "--contender",
        contender,
        "--count",
        str(n),
    ]
    done = subprocess.run(
        command,
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"spawn benchmark child ({contender} on {runtime.name}) failed with exit code "
            f"{done.returncode}:\n{done.stderr}"
        )
    sample: Sample = json.loads(done.stdout.splitlines()[0])
    return sample


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Measure spawns/s and RSS per idle actor against bare waiting tasks."""
    n = size.pick(full=FULL, quick=QUICK, smoke=SMOKE)
    samples: dict[str, list[Sample]] = {"otpy": [], "bare": []}
    for rep in range(repeat):
        order = ["otpy", "bare"] if rep % 2 == 0 else ["bare", "otpy"]
        for contender in order:
            samples[contender].append(_in_subprocess(runtime, contender, n))
    mine, theirs = samples["otpy"], samples["bare"]
    figures = (
        Figure(
            metric="spawns_per_s",
            label="spawns/s",
            unit="/s",
            higher_is_better=True,
            baseline_name="bare tasks on an Event",
            otpy_samples=column(mine, "spawns_per_s"),
            baseline_samples=column(theirs, "spawns_per_s"),
            target=Target(text=">= 30,000/s", on="value", op=">=", threshold=30_000),
        ),
        Figure(
            metric="rss_per_actor_b",
            label="RSS per actor",
            unit="B",
            higher_is_better=False,
            baseline_name="bare tasks on an Event",
            otpy_samples=column(mine, "rss_per_actor_b"),
            baseline_samples=column(theirs, "rss_per_actor_b"),
            target=Target(text="<= 4 KiB", on="value", op="<=", threshold=4096),
        ),
    )
    return BenchmarkResult(
        name="spawn",
        title="4. spawn idle actors",
        size=f"{n:,} idle actors, spawned one after another",
        figures=figures,
        notes=("each repetition of each contender runs in a fresh interpreter",),
        diagnostics=gc_diagnostics(samples),
    )


def main() -> None:
    """Run one contender once in this process and print its sample as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._spawn")
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--contender", choices=["otpy", "bare"], required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    runtime = runtime_named(args.runtime)
    runtime.run(otpy_spawns if args.contender == "otpy" else bare_tasks, args.count)


if __name__ == "__main__":
    main()
