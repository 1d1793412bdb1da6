"""Benchmark 18: re-delivering a journal's backlog after a restart, at the governed rate.

Set-up (not timed): a ``SQLiteJournalStore`` is filled with N pending entries of one
route (64 ordering keys, an idempotency key each, bodies of about 200 bytes),
accepted in batches of 1,000, and closed; each run starts from a copy of that file.

The restart (timed, from opening the stores to the sink having every message):
open the journal and a ``SQLiteOutboxStore`` (both ``synchronous="FULL"``), build a
``Gateway`` with one ``HttpDestination`` (32 slots) and a ``Handover`` of the route to
it, with an explicit ``BackfillPolicy(rate=R)``; run ``gateway.run()`` and
``handover.run()`` as tasks until the sink has received all N. The hand-over sees
more than a page pending, so it drains the backlog at R entries a second (a page of
100 at a time), enqueueing each page in one outbox commit and marking it in one
journal commit; the gateway claims, posts and completes them.

The sink is an ``httpx.MockTransport`` under the destination's client, answering
``200`` to every request in the same event loop: on this machine a real loopback
sink caps httpx at about 600 requests a second (benchmark 14), which would make a
100,000-message run take three minutes by itself and measure httpx, not the
hand-over.

The figures: the achieved rate (N over the wall time) against the governed rate
(the ``BackfillPolicy``'s), and the wall time against N / R. Beside them, the same
restart with a rate too high to bind (``BackfillPolicy(rate=1e6)``), on a smaller
backlog, measures what the pipeline itself can do, so the reader can tell whether
the cap or the pipeline was the bottleneck.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from otpy.gateway import DeliveryPolicy, Gateway, HttpDestination, open_outbox
from otpy.ingest import BackfillPolicy, Handover, JournalEntry, open_journal

from ._harness import BenchmarkResult, Figure, Sample, Stopwatch, Target, column, median

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from otpy.deadletter import DeadLetter

    from ._harness import Runtime, Size

__all__ = ["run"]

ROUTE = "bench"
DESTINATION = "sink"
KEYS = 64
CONCURRENCY = 32
PAGE_SIZE = 100
FILL_BATCH = 1_000
LAG_INTERVAL = 0.05
"""Seconds between looks at how far the sink is behind the hand-over."""
UNBOUND_RATE = 1e6
"""A backfill rate no pipeline reaches: the hand-over is then paced by nothing."""
BODY_TEMPLATE = (
    '{{"type": "invoice.paid", "id": "evt_{i:012d}", "created": 1733500000, '
    '"data": {{"invoice": "in_{i:012d}", "customer": "cus_{c:06d}", "amount_paid": 4200, '
    '"currency": "eur", "status": "paid"}}}}'
)


async def _fill(path: Path, n: int) -> None:
    """Accept N entries of ROUTE into a new journal at *path*, 1,000 a call, and close it."""
    now = time.time()
    async with open_journal(path, synchronous="OFF") as journal:
        for first in range(0, n, FILL_BATCH):
            entries = [
                JournalEntry.new(
                    route=ROUTE,
                    body=BODY_TEMPLATE.format(i=i, c=i % 997).encode(),
                    now=now,
                    key=f"customer-{i % KEYS}",
                    idempotency_key=f"evt_{i:012d}",
                    content_type="application/json",
                )
                for i in range(first, min(first + FILL_BATCH, n))
            ]
            await journal.accept(entries, now=now)
        depth = (await journal.statistics()).depth
    if depth != n:
        raise RuntimeError(f"the fill left {depth} entries pending, {n} expected")


class _Sink:
    """Answers 200 to every request; notes each ``webhook-id`` and sets ``done`` at N."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received: set[str] = set()
        self.requests = 0
        self.done = anyio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.received.add(request.headers["webhook-id"])
        if len(self.received) >= self.expected:
            self.done.set()
        return httpx.Response(200)


async def _no_dead_letters(record: DeadLetter) -> None:
    raise RuntimeError(f"the benchmark's sink never fails, yet {record.correlation_id} failed")


async def _restart(directory: Path, template: Path, n: int, rate: float) -> Sample:
    """Restart on a copy of *template*: hand over and deliver its N entries at *rate*."""
    journal_path = directory / "journal.db"
    for part in template.parent.glob(f"{template.name}*"):  # the file, and a WAL if any
        shutil.copyfile(part, directory / part.name.replace(template.name, journal_path.name))
    sink = _Sink(n)
    destination = HttpDestination(
        DESTINATION,
        "http://sink.invalid/hook",
        max_concurrent=CONCURRENCY,
        timeout=30.0,
        transport=httpx.MockTransport(sink),
    )
    policy = BackfillPolicy(rate=rate)
    with Stopwatch() as watch:
        began = time.perf_counter_ns()
        async with (
            open_journal(journal_path, synchronous="FULL") as journal,
            open_outbox(directory / "outbox.db", synchronous="FULL") as outbox,
            destination,
        ):
            gateway = Gateway(
                outbox,
                [destination],
                policy=DeliveryPolicy(batch=CONCURRENCY),
                dead_letters=_no_dead_letters,
            )
            handover = Handover(
                journal,
                gateway,
                {ROUTE: [DESTINATION]},
                page_size=PAGE_SIZE,
                backfill=policy,
                dead_letters=_no_dead_letters,
            )
            lag = 0

            async def watch_lag() -> None:
                nonlocal lag
                while True:
                    lag = max(lag, handover.statistics().handed_over - len(sink.received))
                    await anyio.sleep(LAG_INTERVAL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(gateway.run)
                tg.start_soon(handover.run)
                tg.start_soon(watch_lag)
                await sink.done.wait()
                elapsed = (time.perf_counter_ns() - began) / 1e9
                tg.cancel_scope.cancel()
            stats = handover.statistics()
            left = (await journal.statistics()).depth
    if stats.backfills != 1 or left or stats.handed_over != n or sink.requests != n:
        raise RuntimeError(
            f"recovery: {stats.backfills} backfills, {stats.handed_over} handed over, "
            f"{left} left in the journal, {sink.requests} requests for {n} messages"
        )
    governed = policy.backlog_rate(stats.steady_rate)
    return {
        "seconds": elapsed,
        "messages_per_s": n / elapsed,
        "governed_per_s": governed,
        "ideal_seconds": n / governed,
        "max_lag": float(lag),
        **watch.gc_sample(),
    }


async def _call(
    fn: Callable[[Path, Path, int, float], Awaitable[Sample]],
    directory: Path,
    template: Path,
    n: int,
    rate: float,
    _: int,
) -> Sample:
    return await fn(directory, template, n, rate)


def _rounds(runtime: Runtime, n: int, rate: float, repeat: int) -> list[Sample]:
    """Fill a journal of N entries once, then restart on a fresh copy of it *repeat* times."""
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        root = Path(tmp)
        template = root / "template" / "journal.db"
        template.parent.mkdir()
        runtime.run(lambda _: _fill(template, n), 0)
        work = root / "work"
        for _rep in range(repeat):
            work.mkdir()
            fn = functools.partial(_call, _restart, work, template, n, rate)
            samples.append(runtime.run(fn, 0))
            shutil.rmtree(work)
    return samples


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Re-deliver N journalled messages after a restart, against the governed rate."""
    n = size.pick(full=100_000, quick=5_000, smoke=200)
    rate = float(size.pick(full=2_000, quick=2_000, smoke=2_000))
    unbound_n = size.pick(full=10_000, quick=5_000, smoke=200)
    governed = _rounds(runtime, n, rate, repeat)
    unbound = _rounds(runtime, unbound_n, UNBOUND_RATE, repeat)
    capacity = median(column(unbound, "messages_per_s"))
    bottleneck = (
        "the cap: the pipeline alone goes faster"
        if capacity > rate
        else "the pipeline: it cannot reach the cap"
    )
    return BenchmarkResult(
        name="recovery",
        title="18. backlog recovery",
        size=(
            f"{n:,} journalled messages re-delivered after a restart at "
            f"BackfillPolicy(rate={rate:,.0f}), over {KEYS} keys, {CONCURRENCY} in flight"
        ),
        figures=(
            Figure(
                metric="messages_per_s",
                label="re-delivered messages/s",
                unit="/s",
                higher_is_better=True,
                baseline_name="the governed rate (BackfillPolicy.rate)",
                otpy_samples=column(governed, "messages_per_s"),
                baseline_samples=column(governed, "governed_per_s"),
                target=Target(
                    text="0.9x to 1.0x", on="ratio", op="within", threshold=0.9, upper=1.0
                ),
            ),
            Figure(
                metric="seconds",
                label=f"wall time, {n:,} messages",
                unit="s",
                higher_is_better=False,
                baseline_name="N / the governed rate",
                otpy_samples=column(governed, "seconds"),
                baseline_samples=column(governed, "ideal_seconds"),
            ),
            Figure(
                metric="unbound_messages_per_s",
                label=f"re-delivered messages/s, rate not binding ({unbound_n:,})",
                unit="/s",
                higher_is_better=True,
                baseline_name="the governed rate (BackfillPolicy.rate)",
                otpy_samples=column(unbound, "messages_per_s"),
                baseline_samples=column(governed, "governed_per_s"),
            ),
        ),
        notes=(
            "the sink is an httpx.MockTransport answering 200 in the same event loop: a "
            "real loopback sink would cap the run at httpx's ~600 requests/s",
            "timed from opening the journal and the outbox to the sink having every "
            "message; the journal is filled beforehand (not timed) and copied per run",
            f"{runtime.name}: at most {median(column(governed, 'max_lag')):,.0f} messages "
            "were handed over but not yet at the sink (median of the runs' maxima; "
            f"{median(column(unbound, 'max_lag')):,.0f} with the rate not binding)",
            f"{runtime.name}: the bottleneck is {bottleneck} "
            f"({capacity:,.0f}/s with BackfillPolicy(rate={UNBOUND_RATE:g}) "
            f"on {unbound_n:,} messages, against a cap of {rate:,.0f}/s)",
        ),
        diagnostics={
            "max_lag.governed": median(column(governed, "max_lag")),
            "max_lag.unbound": median(column(unbound, "max_lag")),
            "unbound_seconds": median(column(unbound, "seconds")),
            "gc_share.governed": median(column(governed, "gc_share")),
            "gc_share.unbound": median(column(unbound, "gc_share")),
        },
    )
