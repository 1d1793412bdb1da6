"""Showing results: a rich table per runtime, and the JSON document."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from ._harness import JUDGED_RUNTIME

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from ._harness import BenchmarkResult, Figure, Runtime

__all__ = ["format_value", "print_report", "to_json"]

SCHEMA = 1


def format_value(value: float, unit: str) -> str:
    """Format *value* for people: ``1.23M/s``, ``45.6 us``, ``1,234 ns``, ``3.1 KiB``."""
    if math.isnan(value):
        return "n/a"
    if unit == "/s":
        for scale, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.2f}{suffix}/s"
        return f"{value:.0f}/s"
    if unit == "ns":
        return f"{value:,.0f} ns"
    if unit == "us":
        return f"{value:.1f} us" if value < 1000 else f"{value / 1000:.2f} ms"
    if unit == "B":
        return f"{value / 1024:.2f} KiB" if abs(value) >= 1024 else f"{value:.0f} B"
    return f"{value:.3g} {unit}"


def _status_cell(figure: Figure, runtime: Runtime) -> Text:
    status = figure.status()
    if status is None:
        return Text("")
    if runtime.name != JUDGED_RUNTIME:
        return Text(f"({status.lower()})", style="dim")
    return Text(status, style="bold green" if status == "PASS" else "bold red")


def _table(runtime: Runtime, results: Sequence[BenchmarkResult], repeat: int) -> Table:
    judged = "targets judged here" if runtime.name == JUDGED_RUNTIME else "targets informative"
    table = Table(title=f"{runtime.label}: medians of {repeat} ({judged})", title_justify="left")
    table.add_column("figure")
    table.add_column("otpy", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("otpy/base", justify="right")
    table.add_column("target")
    table.add_column("status")
    for result in results:
        table.add_row(Text(result.title, style="bold"), end_section=False)
        for figure in result.figures:
            table.add_row(
                f"  {figure.label} vs {figure.baseline_name}",
                format_value(figure.otpy, figure.unit),
                format_value(figure.baseline, figure.unit),
                f"{figure.ratio:.2f}x",
                figure.target.text if figure.target is not None else "",
                _status_cell(figure, runtime),
            )
        table.add_section()
    return table


def print_report(
    console: Console,
    environment: dict[str, object],
    runs: Sequence[tuple[Runtime, Sequence[BenchmarkResult]]],
    repeat: int,
) -> None:
    """Print the environment, one table per runtime, then the notes."""
    console.print(
        f"Python {environment['python']} ({environment['implementation']}), "
        f"anyio {environment['anyio']}, trio {environment['trio']}, "
        f"uvloop {environment['uvloop'] or 'not installed'}, "
        f"{environment['cpu_count']} CPUs ({environment['cpus_usable']} usable), "
        f"{environment['platform']}"
    )
    for runtime, results in runs:
        console.print()
        console.print(_table(runtime, results, repeat))
    notes: dict[str, None] = {}
    for _runtime, results in runs:
        for result in results:
            notes.update({f"{result.title}: {result.size}": None})
            notes.update({f"{result.title}: {note}": None for note in result.notes})
    if notes:
        console.print()
        for note in notes:
            console.print(f"[dim]- {note}[/dim]")
    console.print(
        "[dim]Targets are judged on plain asyncio; on other runtimes they are shown in "
        "parentheses. A MISS never fails the run.[/dim]"
    )


def _figure_json(figure: Figure, runtime: Runtime) -> dict[str, Any]:
    target = figure.target
    return {
        "metric": figure.metric,
        "label": figure.label,
        "unit": figure.unit,
        "higher_is_better": figure.higher_is_better,
        "otpy": figure.otpy,
        "baseline": figure.baseline,
        "baseline_name": figure.baseline_name,
        "ratio": figure.ratio if math.isfinite(figure.ratio) else None,
        "otpy_samples": list(figure.otpy_samples),
        "baseline_samples": list(figure.baseline_samples),
        "target": None
        if target is None
        else {
            "text": target.text,
            "on": target.on,
            "op": target.op,
            "threshold": target.threshold,
            "upper": target.upper,
            "status": figure.status(),
            "judged": runtime.name == JUDGED_RUNTIME,
        },
    }


def to_json(
    environment: dict[str, object],
    settings: dict[str, object],
    runs: Sequence[tuple[Runtime, Sequence[BenchmarkResult]]],
) -> dict[str, Any]:
    """Return the whole run as a JSON-ready dict (``benchmarks/results/latest.json``)."""
    return {
        "schema": SCHEMA,
        "environment": environment,
        "settings": settings,
        "runs": [
            {
                "runtime": runtime.name,
                "backend": runtime.backend,
                "uvloop": runtime.uvloop,
                "benchmarks": [
                    {
                        "name": result.name,
                        "title": result.title,
                        "size": result.size,
                        "notes": list(result.notes),
                        "diagnostics": result.diagnostics,
                        "figures": [_figure_json(f, runtime) for f in result.figures],
                    }
                    for result in results
                ],
            }
            for runtime, results in runs
        ],
    }
