"""Benchmarks 6-8: durable dead-letter capture, replay with the ledger, listing at scale.

aiosqlite runs on asyncio only, so these run on asyncio (plain and uvloop) and are
skipped on trio. Every write is ``synchronous=FULL``, into a fresh file.

6. capture: 1,000 producers each capture records one at a time through the writer
   (group commit, each acknowledged after its commit), against raw aiosqlite
   inserting the same rows in batches of 1,000 with a commit per batch: into the
   same table, and into a minimal four-column table. The acknowledgement latency
   is set beside the duration of one raw batch.
6b. capture, one producer: one record at a time, against raw aiosqlite committing
   each row on its own (one fsync bounds both).
6c. schema cost: no otpy code; raw batches of 1,000 into the store's table, into
   the same table without its secondary indexes, with each index alone, and into a
   minimal table: what the indexes and the wide rows cost per insert.
7. replay: every record replayed through 8 partition workers with the idempotency
   ledger (two commits per replay, each shared with the other partitions' waiting
   steps), against the fake handler alone called with the same concurrency. The
   handler takes 1 ms, like a fast API.
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

from ._harness import (
    BenchmarkResult,
    Figure,
    Sample,
    Stopwatch,
    Target,
    column,
    gc_diagnostics,
    latency_figures,
    latency_sample,
    median,
    percentile,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._harness import Runtime, Size

__all__ = ["run_capture", "run_capture_one", "run_list", "run_replay", "run_schema"]

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

BATCH = 1000
"""Rows per transaction of the raw batched baselines."""

INDEXES = (
    "dead_letters_status_id",
    "dead_letters_key_id",
    "dead_letters_idempotency_key",
    "dead_letters_replay_status_id",
    "dead_letters_created_at",
)
"""The secondary indexes of the ``dead_letters`` table, each costed alone by 6c."""

MINIMAL_TABLE = "CREATE TABLE minimal (id TEXT PRIMARY KEY, key TEXT, created_at REAL, body BLOB)"
MINIMAL_INSERT = "INSERT INTO minimal (id, key, created_at, body) VALUES (?, ?, ?, ?)"


async def _otpy_capture(path: Path, records: list[DeadLetter], producers: int) -> Sample:
    """*producers* tasks capture *records* (round robin), each awaiting its acknowledgement."""
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    try:
        async with otpy.open_node():
            spec = otpy.SupervisorSpec(
                id="bench", children=dead_letter_children(store, sweep=False)
            )
            async with otpy.open_supervisor(spec):
                client = DeadLetters()
                latencies: list[int] = []

                async def producer(chunk: list[DeadLetter]) -> None:
                    for record in chunk:
                        started = time.perf_counter_ns()
                        await client.capture(record)
                        latencies.append(time.perf_counter_ns() - started)

                with Stopwatch() as watch:
                    if producers == 1:
                        await producer(records)
                    else:
                        async with anyio.create_task_group() as tg:
                            for p in range(producers):
                                # Round robin: ids rise with time, as when each is
                                # made at the moment its message fails.
                                tg.start_soon(producer, records[p::producers])
        stored = await store.count()
    finally:
        await store.aclose()
    if stored != len(records):
        raise RuntimeError(f"otpy stored {stored} of {len(records)} captures")
    return latency_sample("rows_per_s", latencies, watch)


async def _prepare(path: Path, table: str) -> str:
    """Create the file for a raw baseline; return its INSERT statement.

    *table* is ``"full"`` (the store's schema, made by the store itself),
    ``"bare"`` (the same without the secondary indexes of ``dead_letters``),
    ``"minimal"`` (a four-column table), or the name of the one index to keep.
    """
    if table == "minimal":
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(MINIMAL_TABLE)
        return MINIMAL_INSERT
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    await store.aclose()
    if table != "full":
        async with aiosqlite.connect(path, isolation_level=None) as db:
            for index in INDEXES:
                if index != table:
                    await db.execute(f"DROP INDEX {index}")  # fails if the schema renamed it
    return INSERT


def _rows(records: list[DeadLetter], table: str) -> list[tuple[object, ...]]:
    """The pre-encoded rows a raw baseline inserts into *table* (see :func:`_prepare`)."""
    if table == "minimal":
        return [(r.id, r.key, r.created_at, r.payload) for r in records]
    return [encode(record, INLINE)[0] for record in records]


async def _raw_inserts(path: Path, records: list[DeadLetter], table: str, batch: int) -> Sample:
    """Raw aiosqlite: *records* as pre-encoded rows into *table*, *batch* per transaction.

    ``p50_us``/``p99_us`` are the durations of the transactions, ``BEGIN`` to ``COMMIT``:
    with a batch of one, a row's acknowledgement latency; with larger batches, the
    floor under the acknowledgement latency of a group commit of that size.
    """
    sql = await _prepare(path, table)
    rows = _rows(records, table)
    commits: list[int] = []
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        with Stopwatch() as watch:
            if batch == 1:
                for row in rows:
                    started = time.perf_counter_ns()
                    await db.execute("BEGIN IMMEDIATE")
                    await db.execute(sql, row)
                    await db.execute("COMMIT")
                    commits.append(time.perf_counter_ns() - started)
            else:
                for start in range(0, len(rows), batch):
                    started = time.perf_counter_ns()
                    await db.execute("BEGIN IMMEDIATE")
                    await db.executemany(sql, rows[start : start + batch])
                    await db.execute("COMMIT")
                    commits.append(time.perf_counter_ns() - started)
        stored = await db.execute_fetchall(
            "SELECT count(*) FROM minimal"
            if table == "minimal"
            else "SELECT count(*) FROM dead_letters"
        )
    if next(iter(stored))[0] != len(rows):
        raise RuntimeError(f"raw inserts into {table} stored the wrong number of rows")
    commits.sort()
    return {
        "rows_per_s": len(rows) / watch.seconds,
        "p50_us": percentile(commits, 0.50) / 1000,
        "p99_us": percentile(commits, 0.99) / 1000,
        **watch.gc_sample(),
    }


def _rounds(
    runtime: Runtime,
    contenders: dict[str, Callable[[Path, list[DeadLetter]], Awaitable[Sample]]],
    n: int,
    repeat: int,
) -> dict[str, list[Sample]]:
    """Run each contender *repeat* times on a fresh file and fresh records of *n*.

    The first contender rotates from one repetition to the next, so none always
    runs first (or last) on a tired disk.
    """
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        directory = Path(tmp)
        for rep in range(repeat):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                records = _records(n)
                path = _fresh_db(directory, name)
                fn = functools.partial(_call, contenders[name], path, records)
                samples[name].append(runtime.run(fn, 0))
                for leftover in directory.iterdir():
                    leftover.unlink()
    return samples


def _us_per_row(samples: list[Sample]) -> float:
    return 1e6 / median(column(samples, "rows_per_s"))


def run_capture(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Durable group-committed capture from 1,000 producers against raw batched inserts."""
    n = size.pick(full=100_000, quick=20_000, smoke=2 * PRODUCERS)
    samples = _rounds(
        runtime,
        {
            "otpy": functools.partial(_otpy_capture, producers=PRODUCERS),
            "raw": functools.partial(_raw_inserts, table="full", batch=BATCH),
            "minimal": functools.partial(_raw_inserts, table="minimal", batch=BATCH),
        },
        n,
        repeat,
    )
    mine, raw, minimal = samples["otpy"], samples["raw"], samples["minimal"]
    return BenchmarkResult(
        name="dlq-capture",
        title="6. durable capture",
        size=f"{n:,} records from {PRODUCERS:,} producers, synchronous=FULL",
        figures=(
            *_rate_figures(
                mine,
                ("rows_per_s", f"raw, batches of {BATCH:,}, same table", raw, 0.8),
                ("rows_per_s_minimal", f"raw, batches of {BATCH:,}, 4-column table", minimal, 0.6),
            ),
            *latency_figures(
                mine,
                raw,
                baseline_name=f"one raw batch of {BATCH:,}, BEGIN to COMMIT",
                label="ack",
                metric_prefix="ack_",
            ),
        ),
        notes=(
            "each capture is acknowledged only after the transaction holding it committed; "
            "the raw baselines insert pre-encoded rows, in id order, into a fresh file",
            "the producers wait for their acknowledgement before capturing again, so at most "
            f"{PRODUCERS:,} captures are in flight: ack latency is about {PRODUCERS:,} / rate",
            f"{runtime.name}: the cyclic garbage collector took "
            f"{median(column(mine, 'gc_share')):.0%} of otpy's run "
            f"({median(column(mine, 'gc_collections')):.0f} passes; the heap holds the "
            f"{n:,} records built beforehand) and {median(column(raw, 'gc_share')):.0%} "
            "of the raw batches'",
        ),
        diagnostics=gc_diagnostics(samples),
    )


def _rate_figures(
    mine: list[Sample], *against: tuple[str, str, list[Sample], float | None]
) -> tuple[Figure, ...]:
    """Rows/s of *mine* beside each (metric, baseline name, samples, target ratio)."""
    return tuple(
        Figure(
            metric=metric,
            label="captures/s",
            unit="/s",
            higher_is_better=True,
            baseline_name=baseline_name,
            otpy_samples=column(mine, "rows_per_s"),
            baseline_samples=column(theirs, "rows_per_s"),
            target=None
            if ratio is None
            else Target(text=f">= {ratio}x", on="ratio", op=">=", threshold=ratio),
        )
        for metric, baseline_name, theirs, ratio in against
    )


def run_capture_one(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """One producer capturing one record at a time against one raw commit per row."""
    n = size.pick(full=5_000, quick=1_000, smoke=50)
    samples = _rounds(
        runtime,
        {
            "otpy": functools.partial(_otpy_capture, producers=1),
            "raw": functools.partial(_raw_inserts, table="full", batch=1),
        },
        n,
        repeat,
    )
    mine, raw = samples["otpy"], samples["raw"]
    return BenchmarkResult(
        name="dlq-capture-one",
        title="6b. capture, one producer",
        size=f"{n:,} records captured one at a time by one producer, synchronous=FULL",
        figures=(
            *_rate_figures(mine, ("rows_per_s", "raw, one commit per row", raw, 0.8)),
            *latency_figures(
                mine,
                raw,
                baseline_name="raw, one row's BEGIN to COMMIT",
                label="ack",
                metric_prefix="ack_",
            ),
        ),
        notes=("every capture is its own transaction on both sides: one fsync bounds each",),
    )


def run_schema(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """What the store's schema costs per insert: raw batches into it and into leaner tables."""
    n = size.pick(full=100_000, quick=20_000, smoke=2 * BATCH)
    tables = ("full", "bare", "minimal", *INDEXES)
    samples = _rounds(
        runtime,
        {table: functools.partial(_raw_inserts, table=table, batch=BATCH) for table in tables},
        n,
        repeat,
    )
    full, bare, minimal = (samples[t] for t in ("full", "bare", "minimal"))
    per_index = ", ".join(
        f"{index.removeprefix('dead_letters_')} +{_us_per_row(samples[index]) - _us_per_row(bare):.2f}"
        for index in INDEXES
    )
    return BenchmarkResult(
        name="dlq-schema",
        title="6c. schema cost",
        size=f"{n:,} pre-encoded rows through raw aiosqlite, batches of {BATCH:,}, synchronous=FULL",
        figures=tuple(
            Figure(
                metric=metric,
                label="rows/s, the store's table",
                unit="/s",
                higher_is_better=True,
                baseline_name=baseline_name,
                otpy_samples=column(full, "rows_per_s"),
                baseline_samples=column(theirs, "rows_per_s"),
            )
            for metric, baseline_name, theirs in (
                ("rows_per_s_bare", "no secondary indexes", bare),
                ("rows_per_s_minimal", "a 4-column table", minimal),
            )
        ),
        notes=(
            "no otpy code runs here: the 'otpy' column is raw aiosqlite inserting into the "
            "store's own schema (28 columns, 5 secondary indexes)",
            f"{runtime.name}: us per insert: minimal table {_us_per_row(minimal):.2f}, "
            f"wide table without secondary indexes {_us_per_row(bare):.2f}, "
            f"the store's schema {_us_per_row(full):.2f}; each index alone adds "
            f"(us): {per_index}",
        ),
        diagnostics={f"us_per_row.{t}": _us_per_row(samples[t]) for t in tables},
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
            "each replay commits twice: the lease with the ledger's pending entry, then "
            "the outcome with the ledger's commit; the partitions' steps share commits",
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
