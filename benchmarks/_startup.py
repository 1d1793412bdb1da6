"""Benchmark 13: how much CPU the ``otpy`` command spends before it does anything.

``otpy --help`` and ``otpy --version``, each run as a fresh process, against
``python -c "import anyio"`` run the same way in the same run: the CPU time (user +
system) of the child process, from ``os.wait4``, so a busy machine slows the wall
clock but hardly the figure. ``python -c "import otpy"`` is shown too, as what
every command pays before the CLI's own imports. Target: ``--help`` and
``--version`` within 3x the baseline.

Every process reads its compiled bytecode from a cache this benchmark warms first
(``PYTHONPYCACHEPREFIX`` in a temporary directory), as an installed otpy does (pip
compiles on install), even when ``PYTHONDONTWRITEBYTECODE`` is set: otherwise each
run would compile otpy's sources again and the figure would measure the compiler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ._harness import BenchmarkResult, Figure, Target, median

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._harness import Runtime, Size

__all__ = ["run"]

TARGET = Target(text="<= 3.0x", on="ratio", op="<=", threshold=3.0)
BASELINE = "python -c 'import anyio'"


def _otpy_command() -> tuple[list[str], str]:
    """The installed ``otpy`` script beside this interpreter, else ``python -m otpy``."""
    script = Path(sys.executable).with_name("otpy")
    if script.is_file():
        return [str(script)], "the installed otpy script"
    return [sys.executable, "-m", "otpy"], "python -m otpy (no otpy script beside python)"


def cpu_seconds(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """Run *argv* to completion; return the CPU time (user + system) the process used.

    Raises:
        RuntimeError: the process exited with a status other than 0.
    """
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with status {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def _environment(cache: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Time each command's CPU, medians of several processes per repetition."""
    runs = size.pick(full=5, quick=3, smoke=1)
    otpy, how = _otpy_command()
    contenders = {
        "anyio": [sys.executable, "-c", "import anyio"],
        "help": [*otpy, "--help"],
        "version": [*otpy, "--version"],
        "import": [sys.executable, "-c", "import otpy"],
    }
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-pycache-") as cache:
        env = _environment(cache)
        for argv in contenders.values():  # warm the bytecode cache; not measured
            cpu_seconds(argv, env)
        for rep in range(repeat):
            shift = rep % len(names)
            times: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(runs):
                for name in names[shift:] + names[:shift]:
                    times[name].append(cpu_seconds(contenders[name], env))
            for name in names:
                samples[name].append(median(times[name]) * 1e6)
    figures = tuple(
        Figure(
            metric=f"{name}_cpu_us",
            label=label,
            unit="us",
            higher_is_better=False,
            baseline_name=BASELINE,
            otpy_samples=tuple(samples[name]),
            baseline_samples=tuple(samples["anyio"]),
            target=target,
        )
        for name, label, target in (
            ("help", "otpy --help CPU", TARGET),
            ("version", "otpy --version CPU", TARGET),
            ("import", "import otpy CPU", None),
        )
    )
    return BenchmarkResult(
        name="cli-startup",
        title="13. CLI start-up",
        size=f"{runs} processes per command per repetition, {how}",
        figures=figures,
        notes=(
            "CPU time (user + system) of each child process, from os.wait4; bytecode "
            "cached as an installed otpy has it",
            f"separate processes: the same on every runtime ({runtime.name} here)",
        ),
    )
