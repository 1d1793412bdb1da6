"""Smoke test of the benchmark suite: it runs and reports every figure with a baseline.

Targets are never asserted here: they are performance goals, judged by a person
reading ``make bench`` on a quiet machine, not by CI on a shared one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = {
    "cast",
    "call",
    "fanout",
    "spawn",
    "restart",
    "overload",
    "monitor",
    "partitioned",
    "redact",
    "cli-startup",
    "gateway",
    "breaker",
    "ratelimit",
    "ingest",
    "recovery",
}
DEAD_LETTERS = {  # asyncio only: aiosqlite, and the node's own process
    "e2e",
    "soak",
    "dlq-capture",
    "dlq-capture-one",
    "dlq-schema",
    "dlq-replay",
    "dlq-list",
}


def _run_smoke(tmp_path: Path, *extra: str) -> dict[str, Any]:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--smoke",
            "--repeat",
            "1",
            "--json",
            "--output",
            str(output),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    assert json.loads(output.read_text()) == document
    return document


def _check_figures(run: dict[str, Any]) -> None:
    expected = CORE if run["runtime"] == "trio" else CORE | DEAD_LETTERS
    assert {b["name"] for b in run["benchmarks"]} == expected
    for benchmark in run["benchmarks"]:
        assert benchmark["figures"], benchmark["name"]
        for figure in benchmark["figures"]:
            where = f"{run['runtime']} {benchmark['name']} {figure['metric']}"
            assert figure["otpy"] > 0, where
            assert figure["baseline"] > 0, where
            assert figure["baseline_name"], where
            assert math.isfinite(figure["ratio"]), where
            assert len(figure["otpy_samples"]) == len(figure["baseline_samples"]) == 1, where


@pytest.mark.timeout(150)
def test_smoke_run_reports_every_benchmark_with_a_baseline(tmp_path: Path) -> None:
    """`python -m benchmarks --smoke --repeat 1 --json` gives every figure and baseline."""
    document = _run_smoke(tmp_path)
    environment = document["environment"]
    assert environment["python"]
    assert environment["cpu_count"] >= 1
    runtimes = [run["runtime"] for run in document["runs"]]
    assert runtimes[0] == "asyncio"
    assert runtimes[1:] == (["asyncio+uvloop"] if environment["uvloop"] else [])
    for run in document["runs"]:
        _check_figures(run)


@pytest.mark.timeout(90)
def test_smoke_run_on_trio(tmp_path: Path) -> None:
    """The trio variants of every benchmark and baseline run too."""
    document = _run_smoke(tmp_path, "--backend", "trio")
    assert [run["runtime"] for run in document["runs"]] == ["trio"]
    _check_figures(document["runs"][0])
