"""What every benchmark shares: runtimes, repetitions, timing, figures and targets."""

from __future__ import annotations

import enum
import functools
import gc
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import attrs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from types import TracebackType

__all__ = [
    "rounds_on_files",
    "CAPACITY",
    "JUDGED_RUNTIME",
    "Benchmark",
    "BenchmarkResult",
    "Figure",
    "Runtime",
    "Sample",
    "Stopwatch",
    "Target",
    "column",
    "environment",
    "gc_diagnostics",
    "latency_sample",
    "median",
    "percentile",
    "latency_figures",
    "rate_and_latency_figures",
    "run_rounds",
    "runtime_named",
    "runtimes_for",
    "uvloop_version",
]

T = TypeVar("T")

Sample = dict[str, float]
"""What one run of one contender measured: metric name -> value."""

JUDGED_RUNTIME = "asyncio"
"""Targets are judged on plain asyncio; on other runtimes they are informative."""

CAPACITY = 1000
"""otpy's default mailbox capacity; every bounded baseline queue uses the same."""


# -- runtimes ------------------------------------------------------------------------


class Size(enum.Enum):
    """How big a run is: ``FULL`` for figures, ``QUICK`` for a look, ``SMOKE`` for a check.

    ``SMOKE`` sizes are the smallest that still exercise every path of a benchmark and
    its baseline: the test suite uses them to check the harness runs, and their figures
    mean nothing.
    """

    FULL = "full"
    QUICK = "quick"
    SMOKE = "smoke"

    def pick(self, *, full: int, quick: int, smoke: int) -> int:
        """Return the size for this run."""
        return {Size.FULL: full, Size.QUICK: quick, Size.SMOKE: smoke}[self]


@attrs.frozen
class Runtime:
    """An anyio backend to run contenders on.

    Attributes:
        name: ``"asyncio"``, ``"asyncio+uvloop"`` or ``"trio"``.
        backend: the anyio backend name.
        uvloop: whether the asyncio loop is uvloop's.
    """

    name: str
    backend: Literal["asyncio", "trio"]
    uvloop: bool = False

    @property
    def is_asyncio(self) -> bool:
        """Whether this runtime runs on an asyncio event loop (plain or uvloop)."""
        return self.backend == "asyncio"

    @property
    def label(self) -> str:
        """A heading for this runtime's table."""
        if self.backend == "trio":
            return "trio"
        return "asyncio + uvloop" if self.uvloop else "asyncio (uvloop off)"

    def run(self, fn: Callable[[int], Awaitable[T]], size: int) -> T:
        """Run ``fn(size)`` in a fresh event loop of this runtime."""
        options: dict[str, Any] = {"use_uvloop": True} if self.uvloop else {}
        return anyio.run(fn, size, backend=self.backend, backend_options=options)


def uvloop_version() -> str | None:
    """Return the installed uvloop's version, or ``None`` if it is not installed."""
    if sys.platform == "win32":  # pragma: no cover - uvloop does not exist there
        return None
    try:
        return importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_named(name: str) -> Runtime:
    """Return the runtime called *name* (``"asyncio"``, ``"asyncio+uvloop"``, ``"trio"``)."""
    if name == "trio":
        return Runtime("trio", "trio")
    if name in ("asyncio", "asyncio+uvloop"):
        return Runtime(name, "asyncio", uvloop=name == "asyncio+uvloop")
    raise ValueError(f"unknown runtime {name!r}: use asyncio, asyncio+uvloop or trio")


def runtimes_for(backend: str, *, uvloop: bool) -> list[Runtime]:
    """Return the runtimes ``--backend`` asks for; uvloop runs only when installed."""
    found: list[Runtime] = []
    if backend in ("asyncio", "both"):
        found.append(Runtime("asyncio", "asyncio"))
        if uvloop and uvloop_version() is not None:
            found.append(Runtime("asyncio+uvloop", "asyncio", uvloop=True))
    if backend in ("trio", "both"):
        found.append(Runtime("trio", "trio"))
    return found


# -- timing ----------------------------------------------------------------------------


class Stopwatch:
    """Time a block with ``perf_counter_ns`` and the garbage collector's share of it.

    ``gc.collect()`` runs before the block so that garbage from an earlier contender
    is not collected on this one's time.
    """

    __slots__ = ("_gc_ns", "_gc_runs", "_gc_start", "_start", "elapsed_ns", "gc_ns", "gc_runs")

    def __init__(self) -> None:
        self._start = 0
        self._gc_start = 0
        self._gc_ns = 0
        self._gc_runs = 0
        self.elapsed_ns = 0
        self.gc_ns = 0
        self.gc_runs = 0

    @property
    def seconds(self) -> float:
        """The block's duration in seconds."""
        return self.elapsed_ns / 1e9

    @property
    def gc_share(self) -> float:
        """The fraction of the block spent in the cyclic garbage collector."""
        return self.gc_ns / self.elapsed_ns if self.elapsed_ns else 0.0

    def _on_gc(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter_ns()
        else:
            self._gc_ns += time.perf_counter_ns() - self._gc_start
            self._gc_runs += 1

    def __enter__(self) -> Stopwatch:
        gc.collect()
        gc.callbacks.append(self._on_gc)
        self._start = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed_ns = time.perf_counter_ns() - self._start
        gc.callbacks.remove(self._on_gc)
        self.gc_ns = self._gc_ns
        self.gc_runs = self._gc_runs

    def gc_sample(self) -> Sample:
        """The garbage collector's share of the block and how often it ran."""
        return {"gc_share": self.gc_share, "gc_collections": float(self.gc_runs)}


def median(values: Sequence[float]) -> float:
    """Return the median of *values*."""
    return float(statistics.median(values))


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Return the nearest-rank percentile of already sorted *sorted_values*."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def run_rounds(
    runtime: Runtime,
    contenders: Mapping[str, Callable[[int], Awaitable[Sample]]],
    *,
    size: int,
    repeat: int,
    warmup: int = 0,
) -> dict[str, list[Sample]]:
    """Run every contender *repeat* times, each run in a fresh event loop.

    The starting contender rotates from one repetition to the next, so neither otpy
    nor a baseline always runs first on a warm (or a tired) machine.

    Args:
        runtime: where to run.
        contenders: name -> ``async fn(size) -> Sample``.
        size: the problem size for the measured runs.
        repeat: how many measured runs each contender gets.
        warmup: if > 0, one unrecorded run of each contender at this size first.

    Returns:
        name -> one sample per repetition.
    """
    names = list(contenders)
    if warmup > 0:
        for name in names:
            runtime.run(contenders[name], warmup)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for rep in range(repeat):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(runtime.run(contenders[name], size))
    return samples


def column(samples: Sequence[Sample], metric: str) -> tuple[float, ...]:
    """Return one metric across repetitions."""
    return tuple(sample[metric] for sample in samples)


# -- results ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Target:
    """A goal for one figure, from the issue; checked and printed, never asserted.

    Attributes:
        text: how the table shows it, e.g. ``">= 0.5x"`` or ``"< 150 us"``.
        on: ``"ratio"`` compares otpy/baseline, ``"value"`` compares otpy's figure.
        op: the comparison; ``"within"`` means ``threshold <= value <= upper``.
        threshold: what it compares with (the lower bound, for ``"within"``).
        upper: the upper bound, for ``"within"`` only.
    """

    text: str
    on: Literal["ratio", "value"]
    op: Literal[">=", "<=", "<", "within"]
    threshold: float
    upper: float | None = None

    def met_by(self, figure: Figure) -> bool:
        """Return whether *figure* meets this target."""
        value = figure.ratio if self.on == "ratio" else figure.otpy
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        if self.op == "within":
            return self.threshold <= value <= (math.inf if self.upper is None else self.upper)
        return value < self.threshold


@attrs.frozen(kw_only=True)
class Figure:
    """One otpy metric beside the same metric of one baseline.

    Attributes:
        metric: a stable key for JSON, e.g. ``"casts_per_s"``.
        label: what the table calls it, e.g. ``"casts/s"``.
        unit: ``"/s"``, ``"us"`` or ``"B"``.
        higher_is_better: for rates; False for latencies and memory.
        baseline_name: what otpy is compared with.
        otpy_samples: otpy's value in each repetition.
        baseline_samples: the baseline's value in each repetition.
        target: the goal, if the issue sets one.
    """

    metric: str
    label: str
    unit: str
    higher_is_better: bool
    baseline_name: str
    otpy_samples: tuple[float, ...]
    baseline_samples: tuple[float, ...]
    target: Target | None = None

    @property
    def otpy(self) -> float:
        """otpy's median."""
        return median(self.otpy_samples)

    @property
    def baseline(self) -> float:
        """The baseline's median."""
        return median(self.baseline_samples)

    @property
    def ratio(self) -> float:
        """otpy's median divided by the baseline's median."""
        return self.otpy / self.baseline if self.baseline else math.nan

    def status(self) -> str | None:
        """``"PASS"`` or ``"MISS"`` against the target, ``None`` without one."""
        if self.target is None:
            return None
        return "PASS" if self.target.met_by(self) else "MISS"


@attrs.frozen(kw_only=True)
class BenchmarkResult:
    """One benchmark on one runtime.

    Attributes:
        name: the benchmark's key, e.g. ``"cast"``.
        title: its heading.
        size: what was measured, e.g. ``"1,000,000 casts"``.
        figures: otpy against its baselines.
        notes: how it was run, where that matters to the reader.
        diagnostics: medians of secondary measurements (time in GC, ...).
    """

    name: str
    title: str
    size: str
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = ()
    diagnostics: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Benchmark:
    """A benchmark the CLI can run.

    Attributes:
        name: its key for ``--only`` and JSON.
        title: its heading.
        run: ``run(runtime, size, repeat)``.
        asyncio_only: skipped on trio (the dead-letter store needs asyncio).
    """

    name: str
    title: str
    run: Callable[[Runtime, Size, int], BenchmarkResult]
    asyncio_only: bool = False


def latency_sample(rate_metric: str, latencies: list[int], watch: Stopwatch) -> Sample:
    """Rate, p50 and p99 (in us) of *latencies* (ns) timed inside *watch*; sorts them."""
    latencies.sort()
    return {
        rate_metric: len(latencies) / watch.seconds,
        "p50_us": percentile(latencies, 0.50) / 1000,
        "p99_us": percentile(latencies, 0.99) / 1000,
        **watch.gc_sample(),
    }


def rate_and_latency_figures(
    mine: Sequence[Sample],
    theirs: Sequence[Sample],
    *,
    baseline_name: str,
    rate_metric: str,
    rate_label: str,
    latency_label: str,
    rate_target: Target | None = None,
    p99_target: Target | None = None,
) -> tuple[Figure, Figure, Figure]:
    """The rate, p50 and p99 figures of two contenders measured by :func:`latency_sample`."""
    rate = Figure(
        metric=rate_metric,
        label=rate_label,
        unit="/s",
        higher_is_better=True,
        baseline_name=baseline_name,
        otpy_samples=column(mine, rate_metric),
        baseline_samples=column(theirs, rate_metric),
        target=rate_target,
    )
    p50, p99 = latency_figures(
        mine, theirs, baseline_name=baseline_name, label=latency_label, p99_target=p99_target
    )
    return rate, p50, p99


def latency_figures(
    mine: Sequence[Sample],
    theirs: Sequence[Sample],
    *,
    baseline_name: str,
    label: str,
    metric_prefix: str = "",
    p99_target: Target | None = None,
) -> tuple[Figure, Figure]:
    """The p50 and p99 figures of two contenders measured by :func:`latency_sample`."""
    p50, p99 = (
        Figure(
            metric=f"{metric_prefix}{quantile}_us",
            label=f"{quantile} {label}",
            unit="us",
            higher_is_better=False,
            baseline_name=baseline_name,
            otpy_samples=column(mine, f"{quantile}_us"),
            baseline_samples=column(theirs, f"{quantile}_us"),
            target=target,
        )
        for quantile, target in (("p50", None), ("p99", p99_target))
    )
    return p50, p99


def gc_diagnostics(samples: Mapping[str, Sequence[Sample]]) -> dict[str, float]:
    """Medians of the GC measurements (``Stopwatch.gc_sample``) per contender."""
    return {
        f"{key}.{name}": median(column(runs, key))
        for name, runs in samples.items()
        for key in ("gc_share", "gc_collections")
        if runs and key in runs[0]
    }


# -- environment ---------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _otpy_digest() -> str:
    """Hash otpy's sources: the core changes fast, so a figure names the code it measured."""
    import hashlib

    import otpy

    root = Path(otpy.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def environment() -> dict[str, object]:
    """Describe the machine and the interpreter the figures come from."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else os.cpu_count(),
        "otpy": _version("otpy"),
        "otpy_sources_sha256": _otpy_digest(),
        "anyio": _version("anyio"),
        "trio": _version("trio"),
        "uvloop": uvloop_version(),
        "gc_enabled": gc.isenabled(),
        "gc_thresholds": list(gc.get_threshold()),
    }


async def _call_on_file(
    fn: Callable[[Path, int], Awaitable[Sample]], path: Path, n: int, _: int
) -> Sample:
    return await fn(path, n)


def rounds_on_files(
    runtime: Runtime,
    contenders: dict[str, Callable[[Path, int], Awaitable[Sample]]],
    n: int,
    repeat: int,
) -> dict[str, list[Sample]]:
    """Run each contender *repeat* times, each on a fresh file in a temporary directory.

    ``contenders[name](path, n)`` measures once with its store at *path*; the order of
    the contenders rotates from one repetition to the next, so none always runs
    first on a cold machine.
    """
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        directory = Path(tmp)
        for rep in range(repeat):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                path = directory / f"{name}-{rep}.db"
                fn = functools.partial(_call_on_file, contenders[name], path, n)
                samples[name].append(runtime.run(fn, 0))
                for leftover in directory.iterdir():
                    leftover.unlink()
    return samples
