"""``python -m benchmarks``: run the suite, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from . import (
    _call,
    _cast,
    _deadletter,
    _e2e,
    _fanout,
    _gateway,
    _ingest,
    _pressure,
    _recovery,
    _redact,
    _resilience,
    _restart,
    _soak,
    _spawn,
    _startup,
)
from ._harness import Benchmark, Size, environment, runtimes_for
from ._report import print_report, to_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._harness import BenchmarkResult, Runtime

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS = (
    Benchmark(name="cast", title="1. cast throughput", run=_cast.run),
    Benchmark(name="call", title="2. call round trip", run=_call.run),
    Benchmark(name="fanout", title="3. fan-out", run=_fanout.run),
    Benchmark(name="spawn", title="4. spawn idle actors", run=_spawn.run),
    Benchmark(name="restart", title="5. restart latency", run=_restart.run),
    Benchmark(
        name="dlq-capture",
        title="6. durable capture",
        run=_deadletter.run_capture,
        asyncio_only=True,
    ),
    Benchmark(
        name="dlq-capture-one",
        title="6b. capture, one producer",
        run=_deadletter.run_capture_one,
        asyncio_only=True,
    ),
    Benchmark(
        name="dlq-schema", title="6c. schema cost", run=_deadletter.run_schema, asyncio_only=True
    ),
    Benchmark(name="dlq-replay", title="7. replay", run=_deadletter.run_replay, asyncio_only=True),
    Benchmark(name="dlq-list", title="8. list", run=_deadletter.run_list, asyncio_only=True),
    Benchmark(name="gateway", title="14. gateway", run=_gateway.run),
    Benchmark(name="overload", title="9. 10x overload", run=_pressure.run_overload),
    Benchmark(name="monitor", title="10. monitoring cost", run=_pressure.run_monitor),
    Benchmark(name="partitioned", title="11. partitioned queue", run=_pressure.run_partitioned),
    Benchmark(name="redact", title="12. redaction", run=_redact.run),
    Benchmark(name="cli-startup", title="13. CLI start-up", run=_startup.run),
    Benchmark(name="breaker", title="15. breaker overhead", run=_resilience.run_breaker),
    Benchmark(name="ratelimit", title="16. rate-limit overhead", run=_resilience.run_ratelimit),
    Benchmark(name="ingest", title="17. HTTP ingest", run=_ingest.run),
    Benchmark(name="recovery", title="18. backlog recovery", run=_recovery.run),
    # The node runs in a process of its own, on asyncio: the clients' backend adds nothing.
    Benchmark(name="e2e", title="19. the node end to end", run=_e2e.run, asyncio_only=True),
    Benchmark(name="soak", title="20. the node at 10x overload", run=_soak.run, asyncio_only=True),
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark otpy against the raw primitives it is built on. Every figure is a "
            "median over repetitions, beside its baseline from the same run. Targets are "
            "printed as PASS/MISS (judged on plain asyncio) and never fail the run."
        ),
    )
    parser.add_argument(
        "--repeat", type=_positive, default=5, metavar="N", help="repetitions (default 5)"
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick", action="store_true", help="smaller sizes; the whole suite in seconds"
    )
    sizes.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest sizes: checks every benchmark runs; the figures mean nothing",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio", "both"],
        default="asyncio",
        help="asyncio runs plain asyncio and, if installed, uvloop (default asyncio)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop run on asyncio")
    parser.add_argument(
        "--only",
        action="append",
        choices=[b.name for b in BENCHMARKS],
        metavar="NAME",
        help="run only this benchmark (repeatable): " + ", ".join(b.name for b in BENCHMARKS),
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON document instead of the tables"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help="where to write the JSON (default benchmarks/results/latest.json)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; return the exit status."""
    args = _parser().parse_args(argv)
    progress = Console(stderr=True, highlight=False)
    runtimes = runtimes_for(args.backend, uvloop=not args.no_uvloop)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    size = Size.SMOKE if args.smoke else Size.QUICK if args.quick else Size.FULL
    env = environment()
    runs: list[tuple[Runtime, Sequence[BenchmarkResult]]] = []
    for runtime in runtimes:
        results: list[BenchmarkResult] = []
        for benchmark in chosen:
            if benchmark.asyncio_only and not runtime.is_asyncio:
                continue  # aiosqlite resolves asyncio futures: it cannot run on trio
            started = time.perf_counter()
            results.append(benchmark.run(runtime, size, args.repeat))
            elapsed = time.perf_counter() - started
            progress.print(f"[dim]{runtime.name:<15} {benchmark.title:<22} {elapsed:6.1f}s[/dim]")
        runs.append((runtime, results))
    settings: dict[str, object] = {
        "repeat": args.repeat,
        "size": size.value,
        "backend": args.backend,
        "uvloop": not args.no_uvloop,
        "only": args.only,
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    document = to_json(env, settings, runs)
    text = json.dumps(document, indent=2)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    if args.json:
        sys.stdout.write(text + "\n")
    else:
        console = Console(highlight=False)
        if not console.is_terminal:  # piped: rich would assume 80 columns
            console = Console(highlight=False, width=120)
        print_report(console, env, runs, args.repeat)
        progress.print(f"[dim]JSON written to {output}[/dim]")
    return 0
