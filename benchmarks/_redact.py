"""Benchmark 12: redacting a megabyte-long reason, as capture and logging do on the loop.

``otpy.deadletter.redact`` over 1 MiB of text, against one plain ``re.sub`` of a
literal over the same text (the cheapest regex pass there is). Two texts: a reason
full of credentials (a password, a bearer token and a URL password in every line),
and a pathological one (one run of letters, which made the old URL pattern
quadratic). redact cuts a text to 65,536 characters before its patterns run, so a
third figure times a 64 KiB text that it scans whole, against the same baseline on
those 64 KiB. Target: 1 MiB in under 100 ms.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from otpy.deadletter import redact

from ._harness import BenchmarkResult, Figure, Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._harness import Runtime, Size

__all__ = ["run"]

MIB = 1 << 20
KIB64 = 1 << 16
_LINE = (
    "upstream said 401 for password=hunter2 with Authorization: Bearer abc.def-123456 "
    "via https://bob:pw@db.internal:5432/orders; retry 3 of 5\n"
)
_LITERAL = re.compile("hunter2")


def _credentials(size: int) -> str:
    return (_LINE * (size // len(_LINE) + 1))[:size]


def _pathological(size: int) -> str:
    return "a" * size


def _per_call_us(fn: Callable[[str], str], text: str, calls: int) -> float:
    fn(text)  # warm: compiled patterns, caches
    started = time.perf_counter_ns()
    for _ in range(calls):
        fn(text)
    return (time.perf_counter_ns() - started) / calls / 1000


def _plain_sub(text: str) -> str:
    return _LITERAL.sub("[redacted]", text)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Time redact() per call on 1 MiB and 64 KiB texts against one plain re.sub."""
    calls = size.pick(full=10, quick=2, smoke=1)
    cases = (
        ("credentials_1mib_us", "1 MiB, credentials", _credentials(MIB)),
        ("pathological_1mib_us", "1 MiB, one run", _pathological(MIB)),
        ("credentials_64kib_us", "64 KiB, scanned whole", _credentials(KIB64)),
    )
    figures = []
    for metric, label, text in cases:
        mine: list[float] = []
        theirs: list[float] = []
        for rep in range(repeat):
            pair = [(mine, redact), (theirs, _plain_sub)]
            for samples, fn in pair if rep % 2 == 0 else pair[::-1]:
                samples.append(_per_call_us(fn, text, calls))
        figures.append(
            Figure(
                metric=metric,
                label=label,
                unit="us",
                higher_is_better=False,
                baseline_name="one plain re.sub of a literal",
                otpy_samples=tuple(mine),
                baseline_samples=tuple(theirs),
                target=Target(text="< 100 ms", on="value", op="<", threshold=100_000)
                if "1mib" in metric
                else None,
            )
        )
    return BenchmarkResult(
        name="redact",
        title="12. redaction",
        size=f"redact() of 1 MiB and 64 KiB texts, {calls} calls per repetition",
        figures=tuple(figures),
        notes=(
            "redact cuts a text to 65,536 characters before its patterns run; the "
            "baseline scans the whole text",
            f"synchronous: the same on every runtime ({runtime.name} here)",
        ),
    )
