"""kill -9 of a replaying process never lets one idempotency key be sent twice without force (DL-8).

Each run captures pairs of records that share an idempotency key under different
dead-letter keys, then runs ``_replay_kill9_child.py``, which replays them all and is
killed with SIGKILL while one record's side effect is in flight (written, not
committed). Its partner is in the same partition, behind it; the other pairs are in
different partitions and are wherever the kill finds them. A second replayer then
replays everything again, once every lease has expired. Whatever the kill interrupted,
no key may have been sent twice; and the key killed mid side effect is in doubt for
both of its records.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    ReplayStatus,
    Source,
    SQLiteDeadLetterStore,
    Status,
    open_replayer,
)
from otpy.pressure import partition_of

CHILD = Path(__file__).with_name("_replay_kill9_child.py")
ROOT = Path(__file__).parents[2]
RUNS = 4
PAIRS = 6  # besides the pair killed mid side effect
PARTITIONS = 4  # the child's replay supervisor's (open_replayer's default)
PATIENCE = 30.0  # seconds to wait for the child; never slept
LATER = 3600.0  # the recovery's clock runs this far ahead: every lease has expired


def keys(run: int) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """Dead-letter keys: a pair in one partition, and PAIRS pairs each split across two others."""
    by_partition: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for i in range(1000):
        key = f"run{run}:dest{i}"
        by_partition[partition_of(key, PARTITIONS)].append(key)
    home = run % PARTITIONS
    rest = [p for p in range(PARTITIONS) if p != home]
    split = [
        (by_partition[rest[i % 3]].pop(), by_partition[rest[(i + 1) % 3]].pop())
        for i in range(PAIRS)
    ]
    return (by_partition[home][0], by_partition[home][1]), split


def record(key: str, idempotency_key: str, now: float) -> DeadLetter:
    """An outbound record carrying *idempotency_key*."""
    return DeadLetter.capture(
        key=key,
        source=Source.OUTBOUND,
        reason_class="httpx.ReadTimeout",
        payload=b"charge",
        idempotency_key=idempotency_key,
        trace_context={},
        now=now,
    )


async def kill_mid_side_effect(db: Path, effects: Path, stuck: str, stderr: Path) -> None:
    """Run the child until the stuck record's side effect is in flight, then SIGKILL it."""
    with stderr.open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, str(CHILD), str(db), str(effects), stuck],
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    async with process:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(PATIENCE):
            async for chunk in process.stdout:
                output += chunk
                if b"stuck\n" in output:
                    break
        if b"stuck\n" not in output:
            raise AssertionError(await anyio.Path(stderr).read_text())
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL


async def recover(db: Path, effects: Path) -> None:
    """Replay every active record again, without force, once every lease has expired."""

    async def send(record: DeadLetter, key: str) -> None:
        with effects.open("a") as file:
            file.write(f"{key} {record.id}\n")

    store = await SQLiteDeadLetterStore.open(db, clock=lambda: time.time() + LATER)
    try:
        async with open_replayer(
            store, {Source.OUTBOUND: send}, reclaim_interval=LATER
        ) as replayer:
            await replayer.replay_many(DeadLetterFilter(status=Status.ACTIVE))
    finally:
        await store.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_dl_8_kill_9_mid_side_effect_never_sends_a_shared_key_twice(tmp_path: Path) -> None:
    """DL-8: across runs killed mid side effect, no idempotency key is sent twice without force."""
    sent: Counter[str] = Counter()
    for run in range(RUNS):
        db, effects = tmp_path / f"dead{run}.db", tmp_path / f"effects{run}.txt"
        (stuck_key, partner_key), split = keys(run)
        now = time.time()
        stuck = record(stuck_key, f"run{run}:stuck", now)
        partner = record(partner_key, f"run{run}:stuck", now + 1)
        others = [
            rec
            for i, (a, b) in enumerate(split)
            for rec in (record(a, f"run{run}:pay{i}", now), record(b, f"run{run}:pay{i}", now + 1))
        ]
        store = await SQLiteDeadLetterStore.open(db)
        try:
            await store.add_many([stuck, partner, *others])
        finally:
            await store.aclose()

        await kill_mid_side_effect(db, effects, stuck.id, tmp_path / f"child{run}.err")
        await recover(db, effects)

        run_sent = Counter(line.split()[0] for line in effects.read_text().splitlines())
        sent.update(run_sent)
        assert run_sent[f"run{run}:stuck"] == 1
        store = await SQLiteDeadLetterStore.open(db)
        try:
            final = {r.id: (await store.get(r.id)).replay.status for r in (stuck, partner, *others)}
        finally:
            await store.aclose()
        assert final[stuck.id] is final[partner.id] is ReplayStatus.IN_DOUBT
        for i, (a, b) in enumerate(zip(others[::2], others[1::2], strict=True)):
            # In doubt for both records (sent at most once), or sent once: by one record,
            # the other then already replayed, or refused while the first was sending.
            statuses = {final[a.id], final[b.id]}
            if ReplayStatus.IN_DOUBT in statuses:
                assert statuses == {ReplayStatus.IN_DOUBT}
            else:
                assert ReplayStatus.SUCCEEDED in statuses
                assert run_sent[f"run{run}:pay{i}"] == 1
    assert {key: n for key, n in sent.items() if n > 1} == {}
