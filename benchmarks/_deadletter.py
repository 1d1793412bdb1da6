"""Benchmarks 6-8: durable dead-letter capture, replay with the ledger, listing at scale.

aiosqlite runs on asyncio only, so these run on asyncio (plain and uvloop) and are
skipped on trio.

6. capture: 1,000 producers each capture records one at a time through the writer
   (group commit, ``synchronous=FULL``, each acknowledged after its commit), against
   raw aiosqlite inserting the same rows into the same table in batches of 1,000 with
   a commit per batch.
7. replay: every record replayed through 8 partition workers with the idempotency
   ledger (three commits per replay), against the fake handler alone called with the
   same concurrency. The handler takes 1 ms, like a fast API.
8. list: the first page and a page 90 % deep (by cursor) of the active records in a
   store of 1,000,000, against the same ``SELECT`` issued through raw aiosqlite.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite
import anyio

import otpy
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetters,
    Source,
    SQLiteDeadLetterStore,
    Status,
    dead_letter_children,
    new_id,
    open_replayer,
)
from otpy.deadletter._codec import encode
from otpy.deadletter._queries import INSERT

from ._harness import BenchmarkResult, Figure, Sample, Stopwatch, Target, column, median, percentile

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._harness import Runtime, Size

__all__ = ["run_capture", "run_list", "run_replay"]

PRODUCERS = 1000
INLINE = 64 * 1024


def _records(n: int, *, keys: int = 64) -> list[DeadLetter]:
    """N small, realistic records spread over *keys* destinations."""
    now = time.time()
    template = DeadLetter.capture(
        key="bench",
        source=Source.OUTBOUND,
        reason_class="httpx.ConnectTimeout",
        reason="timed out connecting to api.example.com",
        payload=b'{"text": "hello", "channel": "C123"}',
        content_type="application/json",
        headers={"content-type": "application/json"},
        correlation_id="corr",
        attempt=5,
        max_attempts=5,
        trace_context={},
        now=now,
    )
    out = []
    for i in range(n):
        record_id = new_id(now)
        out.append(
            DeadLetter(
                id=record_id,
                key=f"dest-{i % keys}",
                source=template.source,
                reason_class=template.reason_class,
                reason=template.reason,
                correlation_id=f"corr-{i}",
                idempotency_key=f"idem-{record_id}",
                attempt=template.attempt,
                max_attempts=template.max_attempts,
                payload=template.payload,
                content_type=template.content_type,
                headers=template.headers,
                created_at=now,
                updated_at=now,
            )
        )
    return out


async def _call(
    fn: Callable[[Path, list[DeadLetter]], Awaitable[Sample]],
    path: Path,
    records: list[DeadLetter],
    _size: int,
) -> Sample:
    return await fn(path, records)


def _fresh_db(directory: Path, name: str) -> Path:
    path = directory / f"{name}-{new_id()}.db"
    return path


# -- 6. durable capture ------------------------------------------------------------------


async def _otpy_capture(path: Path, records: list[DeadLetter]) -> Sample:
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    try:
        async with otpy.open_node():
            spec = otpy.SupervisorSpec(
                id="bench", children=dead_letter_children(store, sweep=False)
            )
            async with otpy.open_supervisor(spec):
                client = DeadLetters()
                per = len(records) // PRODUCERS
                latencies: list[int] = []

                async def producer(chunk: list[DeadLetter]) -> None:
                    for record in chunk:
                        started = time.perf_counter_ns()
                        await client.capture(record)
                        latencies.append(time.perf_counter_ns() - started)

                with Stopwatch() as watch:
                    async with anyio.create_task_group() as tg:
                        for p in range(PRODUCERS):
                            # Round robin: ids rise with time, as when each is
                            # made at the moment its message fails.
                            tg.start_soon(producer, records[p::PRODUCERS])
        stored = await store.count()
    finally:
        await store.aclose()
    if stored != per * PRODUCERS:
        raise RuntimeError(f"otpy stored {stored} of {per * PRODUCERS} captures")
    latencies.sort()
    return {
        "rows_per_s": stored / watch.seconds,
        "ack_p50_us": percentile(latencies, 0.5) / 1000,
        "ack_p99_us": percentile(latencies, 0.99) / 1000,
    }


async def _raw_inserts(path: Path, records: list[DeadLetter]) -> Sample:
    # Same schema and indexes: let the store create the file, then write around it.
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    await store.aclose()
    rows = [encode(record, INLINE)[0] for record in records]
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        with Stopwatch() as watch:
            for start in range(0, len(rows), 1000):
                await db.execute("BEGIN IMMEDIATE")
                await db.executemany(INSERT, rows[start : start + 1000])
                await db.execute("COMMIT")
        async with db.execute("SELECT count(*) FROM dead_letters") as cursor:
            row = await cursor.fetchone()
    assert row is not None
    return {"rows_per_s": row[0] / watch.seconds}


def run_capture(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Durable group-committed capture against raw batched inserts."""
    n = size.pick(full=100_000, quick=20_000, smoke=2 * PRODUCERS)
    samples: dict[str, list[Sample]] = {"otpy": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        directory = Path(tmp)
        for rep in range(repeat):
            order = ["otpy", "raw"] if rep % 2 == 0 else ["raw", "otpy"]
            for who in order:
                records = _records(n)
                path = _fresh_db(directory, who)
                fn = _otpy_capture if who == "otpy" else _raw_inserts
                samples[who].append(runtime.run(functools.partial(_call, fn, path, records), 0))
                for leftover in directory.iterdir():
                    leftover.unlink()
    mine, raw = samples["otpy"], samples["raw"]
    return BenchmarkResult(
        name="dlq-capture",
        title="6. durable capture",
        size=f"{n:,} records from {PRODUCERS:,} producers, synchronous=FULL",
        figures=(
            Figure(
                metric="rows_per_s",
                label="captures/s",
                unit="/s",
                higher_is_better=True,
                baseline_name="raw aiosqlite, batches of 1,000",
                otpy_samples=column(mine, "rows_per_s"),
                baseline_samples=column(raw, "rows_per_s"),
                target=Target(text=">= 0.5x", on="ratio", op=">=", threshold=0.5),
            ),
        ),
        notes=(
            "each capture is acknowledged only after the transaction holding it committed",
            f"ack latency p50 {median(column(mine, 'ack_p50_us')):,.0f} us, "
            f"p99 {median(column(mine, 'ack_p99_us')):,.0f} us",
        ),
    )


# -- 7. replay ---------------------------------------------------------------------------

PARTITIONS = 8
HANDLER_TIME = 0.001


async def _handler(record: DeadLetter, key: str) -> None:
    await anyio.sleep(HANDLER_TIME)


async def _otpy_replay(path: Path, records: list[DeadLetter]) -> Sample:
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    try:
        await store.add_many(records)
        async with (
            otpy.open_node(),
            open_replayer(store, {Source.OUTBOUND: _handler}, partitions=PARTITIONS) as replayer,
        ):
            with Stopwatch() as watch:
                results = await replayer.replay_many(DeadLetterFilter(status=Status.ACTIVE))
    finally:
        await store.aclose()
    replayed = sum(1 for r in results if r.outcome is not None and r.outcome.value == "replayed")
    if replayed != len(records):
        raise RuntimeError(f"otpy replayed {replayed} of {len(records)} records")
    return {"replays_per_s": replayed / watch.seconds}


async def _handler_alone(records: list[DeadLetter]) -> Sample:
    lanes: list[list[DeadLetter]] = [[] for _ in range(PARTITIONS)]
    for i, record in enumerate(records):
        lanes[i % PARTITIONS].append(record)

    async def lane(chunk: list[DeadLetter]) -> None:
        for record in chunk:
            await _handler(record, record.replay_key)

    with Stopwatch() as watch:
        async with anyio.create_task_group() as tg:
            for chunk in lanes:
                tg.start_soon(lane, chunk)
    return {"replays_per_s": len(records) / watch.seconds}


async def _handler_alone_at(_path: Path, records: list[DeadLetter]) -> Sample:
    return await _handler_alone(records)


def run_replay(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Replay through partitioned workers and the ledger, against the handler alone."""
    n = size.pick(full=10_000, quick=1_000, smoke=100)
    samples: dict[str, list[Sample]] = {"otpy": [], "handler": []}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        directory = Path(tmp)
        for _ in range(repeat):
            records = _records(n)
            path = _fresh_db(directory, "replay")
            samples["otpy"].append(
                runtime.run(functools.partial(_call, _otpy_replay, path, records), 0)
            )
            samples["handler"].append(
                runtime.run(functools.partial(_call, _handler_alone_at, path, records), 0)
            )
            for leftover in directory.iterdir():
                leftover.unlink()
    return BenchmarkResult(
        name="dlq-replay",
        title="7. replay",
        size=f"{n:,} records over 64 keys, {PARTITIONS} partitions, a 1 ms handler, synchronous=FULL",
        figures=(
            Figure(
                metric="replays_per_s",
                label="replays/s",
                unit="/s",
                higher_is_better=True,
                baseline_name=f"the handler alone, {PARTITIONS} lanes",
                otpy_samples=column(samples["otpy"], "replays_per_s"),
                baseline_samples=column(samples["handler"], "replays_per_s"),
            ),
        ),
        notes=(
            "each replay commits three times: the lease, the ledger's pending entry, "
            "and the outcome with the ledger's commit",
        ),
    )


# -- 8. list ---------------------------------------------------------------------------

PAGE = 50
QUERIES = 50


async def _populate(path: Path, n: int) -> None:
    store = await SQLiteDeadLetterStore.open(path, synchronous="OFF")
    try:
        for start in range(0, n, 20_000):
            await store.add_many(_records(min(20_000, n - start)))
    finally:
        await store.aclose()


async def _deep_cursor(path: Path, n: int) -> str:
    async with (
        aiosqlite.connect(path) as db,
        db.execute(
            "SELECT id FROM dead_letters WHERE status = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (Status.ACTIVE.value, int(n * 0.9)),
        ) as cursor,
    ):
        row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def _otpy_list(path: Path, cursor: str | None) -> Sample:
    store = await SQLiteDeadLetterStore.open(path)
    active = DeadLetterFilter(status=Status.ACTIVE)
    timings: list[int] = []
    try:
        for _ in range(QUERIES):
            started = time.perf_counter_ns()
            page = await store.list(active, limit=PAGE, cursor=cursor)
            timings.append(time.perf_counter_ns() - started)
            if len(page.records) != PAGE:
                raise RuntimeError(f"a page held {len(page.records)} records, not {PAGE}")
    finally:
        await store.aclose()
    return {"ms": median([t / 1e6 for t in timings])}


async def _raw_list(path: Path, cursor: str | None) -> Sample:
    sql = "SELECT * FROM dead_letters WHERE status = ?"
    params: list[object] = [Status.ACTIVE.value]
    if cursor is not None:
        sql += " AND id < ?"
        params.append(cursor)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(PAGE + 1)
    timings: list[int] = []
    async with aiosqlite.connect(path) as db:
        for _ in range(QUERIES):
            started = time.perf_counter_ns()
            async with db.execute(sql, params) as rows:
                fetched = list(await rows.fetchall())
            timings.append(time.perf_counter_ns() - started)
            if len(fetched) != PAGE + 1:
                raise RuntimeError("the raw query came back short")
    return {"ms": median([t / 1e6 for t in timings])}


def run_list(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """First and deep page of a large store, against the raw query."""
    n = size.pick(full=1_000_000, quick=20_000, smoke=2_000)
    samples: dict[str, list[Sample]] = {k: [] for k in ("first", "raw_first", "deep", "raw_deep")}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        path = Path(tmp) / "list.db"
        runtime.run(lambda _: _populate(path, n), 0)
        deep = runtime.run(lambda _: _deep_cursor(path, n), 0)
        for _ in range(repeat):
            samples["first"].append(runtime.run(lambda _: _otpy_list(path, None), 0))
            samples["raw_first"].append(runtime.run(lambda _: _raw_list(path, None), 0))
            samples["deep"].append(runtime.run(lambda _: _otpy_list(path, deep), 0))
            samples["raw_deep"].append(runtime.run(lambda _: _raw_list(path, deep), 0))
    return BenchmarkResult(
        name="dlq-list",
        title="8. list",
        size=f"pages of {PAGE} active records in a store of {n:,}; median of {QUERIES} queries",
        figures=(
            Figure(
                metric="first_page_ms",
                label="first page",
                unit="ms",
                higher_is_better=False,
                baseline_name="the same SELECT, raw aiosqlite",
                otpy_samples=column(samples["first"], "ms"),
                baseline_samples=column(samples["raw_first"], "ms"),
            ),
            Figure(
                metric="deep_page_ms",
                label="page 90 % deep",
                unit="ms",
                higher_is_better=False,
                baseline_name="the same SELECT, raw aiosqlite",
                otpy_samples=column(samples["deep"], "ms"),
                baseline_samples=column(samples["raw_deep"], "ms"),
            ),
        ),
        notes=("otpy decodes each row into a validated DeadLetter; the raw query does not",),
    )
