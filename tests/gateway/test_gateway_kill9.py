"""A gateway killed with SIGKILL mid-load, again and again, loses no acknowledged message (GW-1..GW-3, GW-8).

The child (``_gateway_kill9_child.py``) enqueues and delivers to a loopback sink that
runs here, in the test's event loop, so the sink outlives every kill and records
each request in arrival order. Each request says which child run sent it (``x-run``)
and which attempt it is (``x-attempt``): a request that repeats an attempt already
received is one whose outcome a kill lost.

The scenario runs once for the module (six child processes: three killed while
enqueueing and delivering, one enqueueing with the gateway down, one killed while
only delivering, one draining the outbox to the end); each test checks one
property of what it left.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import attrs
import pytest

from otpy.deadletter import Category, DeadLetter, open_store
from otpy.gateway import open_outbox

from ._gateway_kill9_child import (
    BATCH,
    DESTINATIONS,
    KEYS,
    RUN_STRIDE,
    destination_of,
    fate,
    sequence,
)
from ._sink import Received, Reply, running_sink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from anyio.abc import Process

CHILD = Path(__file__).with_name("_gateway_kill9_child.py")
ROOT = Path(__file__).parents[2]
PATIENCE = 30.0  # seconds any one step may take before the test fails; never slept
IN_FLIGHT = BATCH * len(DESTINATIONS)
"""The most attempts in flight at once: each destination's batch, for both destinations."""


@attrs.frozen(kw_only=True)
class Receipt:
    """One request the sink received, and what it answered (``status``; ``None``: held)."""

    index: int
    run: int
    message_id: str
    idempotency_key: str
    attempt: int
    destination: str
    key: str
    seq: int
    status: int | None

    @property
    def delivered(self) -> bool:
        """Whether the sink answered it with a 2xx."""
        return self.status is not None and 200 <= self.status < 300


@attrs.define
class Recorder:
    """The sink's answers: 200, or by the message's fate a 503 (retried) or a 400.

    The requests in *hold* (``(run, n)``: the run's *n*-th request, from 1), and the
    first retry (an attempt >= 2) sent by the run *hold_retry*, get no answer at
    all: the kill that follows finds them in flight.
    """

    hold: frozenset[tuple[int, int]]
    hold_retry: int
    retry_held: bool = False
    receipts: list[Receipt] = attrs.field(factory=list)
    seen: Counter[str] = attrs.field(factory=Counter)
    per_run: Counter[int] = attrs.field(factory=Counter)
    never: anyio.Event = attrs.field(factory=anyio.Event)

    def __call__(self, request: Received) -> Reply:
        body = json.loads(request.body)
        message_id = request.headers["webhook-id"]
        first = message_id not in self.seen
        self.seen[message_id] += 1
        status = {
            "ok": 200,
            "flaky": 503 if first else 200,
            "bad": 400,
            "doomed": 503,
        }[body["fate"]]
        run = int(request.headers["x-run"])
        self.per_run[run] += 1
        attempt = int(request.headers["x-attempt"])
        held = (run, self.per_run[run]) in self.hold
        if run == self.hold_retry and attempt >= 2 and not self.retry_held:
            self.retry_held = held = True
        self.receipts.append(
            Receipt(
                index=len(self.receipts),
                run=run,
                message_id=message_id,
                idempotency_key=request.headers["idempotency-key"],
                attempt=attempt,
                destination=request.path.removeprefix("/"),
                key=body["key"],
                seq=body["seq"],
                status=None if held else status,
            )
        )
        return Reply(status=status, hang=self.never if held else None)


@attrs.define
class Child:
    """A running child and the complete lines it printed so far."""

    process: Process
    stderr: Path
    lines: list[str] = attrs.field(factory=list)
    partial: str = ""

    async def read_until(self, done: Callable[[list[str]], bool]) -> None:
        """Read the child's output until *done* holds for its lines."""
        assert self.process.stdout is not None
        while not done(self.lines):
            try:
                chunk = await self.process.stdout.receive()
            except anyio.EndOfStream:
                code = await self.process.wait()
                raise AssertionError(
                    f"the child exited with {code}: {self.stderr.read_text()}"
                ) from None
            self.take(chunk.decode())

    def take(self, text: str) -> None:
        """Add *text* to the output: each line it completes, and keep the rest."""
        *complete, self.partial = (self.partial + text).split("\n")
        self.lines.extend(complete)

    async def rest(self) -> None:
        """Read what is left in the pipe of a child that ended (a cut line is dropped)."""
        assert self.process.stdout is not None
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                self.take((await self.process.stdout.receive()).decode())

    async def kill(self) -> None:
        """SIGKILL the child and read what it printed before dying."""
        assert self.process.returncode is None, "the child stopped before the kill"
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL
        await self.rest()

    async def finish(self) -> None:
        """Wait for the child to exit by itself, successfully."""
        await self.rest()
        code = await self.process.wait()
        assert code == 0, self.stderr.read_text()


@contextlib.asynccontextmanager
async def child(
    tmp_path: Path, port: int, mode: str, run: int, count: int = 0
) -> AsyncIterator[Child]:
    """Start the child in *mode* as run *run*; kill it on the way out if it still runs."""
    stderr = tmp_path / f"child-{run}.err"
    with stderr.open("wb") as err:
        process = await anyio.open_process(
            [
                sys.executable,
                str(CHILD),
                mode,
                str(tmp_path / "outbox.db"),
                str(tmp_path / "dead.db"),
                str(port),
                str(run),
                str(count),
            ],
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        yield Child(process, stderr)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()


@contextlib.contextmanager
def patience(step: str) -> Iterator[None]:
    """Fail the test, naming *step*, if the block takes longer than PATIENCE."""
    try:
        with anyio.fail_after(PATIENCE):
            yield
    except TimeoutError:
        raise AssertionError(f"{step}: not done within {PATIENCE:g}s") from None


def acks(lines: list[str]) -> list[tuple[str, str, int]]:
    """The acknowledgements among *lines*: ``(message id, key, seq)``."""
    found = []
    for line in lines:
        if line.startswith("acked "):
            _, message_id, key, seq = line.split()
            found.append((message_id, key, int(seq)))
    return found


def acked_at_least(n: int) -> Callable[[list[str]], bool]:
    """A predicate: *lines* hold at least *n* acknowledgements."""
    return lambda lines: len(acks(lines)) >= n


def _integrity(db: Path) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        result: list[tuple[str]] = connection.execute("PRAGMA integrity_check").fetchall()
    return result


async def _dead_letters(db: Path) -> list[DeadLetter]:
    records: list[DeadLetter] = []
    async with open_store(db) as store:
        cursor: str | None = None
        while True:
            page = await store.list(limit=500, cursor=cursor)
            assert page.corrupt == ()
            records.extend(page.records)
            if page.next_cursor is None:
                return records
            cursor = page.next_cursor


LOADS = ((1, 64), (50, 200), (300, 600))
"""Each killed load run: acknowledgements before the SIGKILL, and how many it would enqueue."""
BACKLOG = 160
"""Enqueued with the gateway down, for the run that is killed while only delivering."""
DELIVERED_BEFORE_KILL = 40
"""Requests the delivering-only run sends before its SIGKILL; the last one gets no answer.

Its first retry gets none either, and it is killed once both are in flight.
"""
HELD_IN_LOADS = (3, 10)
"""The requests of each killed load run that get no answer (if the run gets that far)."""


@attrs.frozen(kw_only=True)
class Outcome:
    """What the scenario left, for the tests to check.

    Attributes:
        acked_by_run: each run's acknowledgements, ``(message id, key, seq)``, in order.
        messages: every message known to exist, by id: ``(key, seq)``: the
            acknowledged ones and those the sink or the dead-letter store saw.
        receipts: the sink's requests, in arrival order.
        killed: per killed run, how many requests the sink had received at its SIGKILL.
        drain_run: the run that drained the outbox and exited by itself.
        dead: the dead letters stored.
        outbox: ``(depth, in_flight)`` of the outbox at the end.
        left: the messages still found in the outbox at the end.
        integrity: ``PRAGMA integrity_check`` of each file.
    """

    acked_by_run: dict[int, list[tuple[str, str, int]]]
    messages: dict[str, tuple[str, int]]
    receipts: list[Receipt]
    killed: dict[int, int]
    drain_run: int
    dead: list[DeadLetter]
    outbox: tuple[int, int]
    left: list[str]
    integrity: dict[str, list[tuple[str]]]

    def dead_by_key(self) -> dict[str, list[DeadLetter]]:
        """The dead letters by idempotency key."""
        found: dict[str, list[DeadLetter]] = defaultdict(list)
        for record in self.dead:
            assert record.idempotency_key is not None
            found[record.idempotency_key].append(record)
        return found

    def attempts(self) -> dict[str, set[int]]:
        """The attempt numbers the sink received, by message id."""
        found: dict[str, set[int]] = defaultdict(set)
        for receipt in self.receipts:
            found[receipt.message_id].add(receipt.attempt)
        return found


async def _scenario(tmp_path: Path) -> Outcome:
    deliver_run = len(LOADS) + 1
    recorder = Recorder(
        hold=frozenset(
            {(run, n) for run in range(len(LOADS)) for n in HELD_IN_LOADS}
            | {(deliver_run, DELIVERED_BEFORE_KILL)}
        ),
        hold_retry=deliver_run,
    )
    acked_by_run: dict[int, list[tuple[str, str, int]]] = {}
    killed: dict[int, int] = {}
    async with running_sink(answer=recorder) as sink:
        run = 0
        for kill_after, count in LOADS:
            async with child(tmp_path, sink.port, "load", run, count) as proc:
                with patience(f"load run {run}, until {kill_after} acknowledgements"):
                    await proc.read_until(acked_at_least(kill_after))
                    killed[run] = len(recorder.receipts)
                    await proc.kill()
            acked_by_run[run] = acks(proc.lines)
            assert len(acked_by_run[run]) >= kill_after
            run += 1
        async with child(tmp_path, sink.port, "enqueue", run, BACKLOG) as proc:
            with patience(f"enqueue-only run {run}"):
                await proc.finish()
        assert proc.lines[-1] == "enqueued"
        acked_by_run[run] = acks(proc.lines)
        assert len(acked_by_run[run]) == BACKLOG
        run += 1
        assert run == deliver_run
        async with child(tmp_path, sink.port, "deliver", run) as proc:
            with patience(f"delivering-only run {run}, until its requests are held"):
                await proc.read_until(lambda lines: "ready" in lines)
                await sink.wait_for(
                    lambda: (
                        recorder.per_run[deliver_run] >= DELIVERED_BEFORE_KILL
                        and recorder.retry_held
                    )
                )
                killed[run] = len(recorder.receipts)
                await proc.kill()
        run += 1
        async with child(tmp_path, sink.port, "drain", run) as proc:
            with patience(f"drain run {run}, until the outbox is empty"):
                await proc.finish()
        assert proc.lines == ["ready", "done"]

    messages: dict[str, tuple[str, int]] = {}
    for run_acks in acked_by_run.values():
        for message_id, key, seq in run_acks:
            assert message_id not in messages
            messages[message_id] = (key, seq)
    for receipt in recorder.receipts:
        messages.setdefault(receipt.message_id, (receipt.key, receipt.seq))
    dead = await _dead_letters(tmp_path / "dead.db")
    for record in dead:
        assert record.payload is not None
        assert record.idempotency_key is not None
        body = json.loads(record.payload)
        messages.setdefault(record.idempotency_key, (body["key"], body["seq"]))
    async with open_outbox(tmp_path / "outbox.db") as store:
        stats = await store.statistics()
        left = [m for m in messages if await store.get(m) is not None]
    return Outcome(
        acked_by_run=acked_by_run,
        messages=messages,
        receipts=recorder.receipts,
        killed=killed,
        drain_run=run,
        dead=dead,
        outbox=(stats.depth, stats.in_flight),
        left=left,
        integrity={
            db: await anyio.to_thread.run_sync(_integrity, tmp_path / db)
            for db in ("outbox.db", "dead.db")
        },
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Run the scenario once for the module's tests."""
    result: Outcome = anyio.run(_scenario, tmp_path_factory.mktemp("kill9"), backend="asyncio")
    return result


def test_every_message_seen_was_acknowledged_or_cut_short_by_a_kill(outcome: Outcome) -> None:
    """Each request names an acknowledged message, or the one enqueue per key a kill interrupted."""
    acked = {m for run_acks in outcome.acked_by_run.values() for m, _, _ in run_acks}
    for receipt in outcome.receipts:
        assert receipt.idempotency_key == receipt.message_id
        assert receipt.destination == destination_of(receipt.key)
        assert outcome.messages[receipt.message_id] == (receipt.key, receipt.seq)
    next_unacked: dict[tuple[int, str], int] = {}
    for run, run_acks in outcome.acked_by_run.items():
        by_key: dict[str, list[int]] = defaultdict(list)
        for _, key, seq in run_acks:
            by_key[key].append(seq)
        for key, seqs in by_key.items():
            assert seqs == [sequence(run, key, i) for i in range(len(seqs))]
            next_unacked[run, key] = len(seqs)
    for message_id, (key, seq) in outcome.messages.items():
        if message_id not in acked:
            run = seq // RUN_STRIDE
            assert run in outcome.killed
            assert seq == sequence(run, key, next_unacked.get((run, key), 0)), (key, seq)
    assert len(acked) >= sum(kill_after for kill_after, _ in LOADS) + BACKLOG


def test_every_message_is_delivered_or_dead_lettered(outcome: Outcome) -> None:
    """Each message got its 2xx, or is stored as a dead letter (400, or 503 three times)."""
    delivered = {r.message_id for r in outcome.receipts if r.delivered}
    dead = outcome.dead_by_key()
    for message_id, (key, seq) in outcome.messages.items():
        expected = fate(seq)
        if expected in ("ok", "flaky"):
            assert message_id in delivered, (message_id, key, seq, expected)
            assert message_id not in dead
            continue
        assert message_id not in delivered
        assert dead[message_id], (message_id, key, seq, expected)
        for record in dead[message_id]:
            assert record.key == destination_of(key)
            assert record.correlation_id == message_id
            assert record.payload is not None
            assert json.loads(record.payload) == {"key": key, "seq": seq, "fate": expected}
            assert (record.reason_class, record.category, record.attempt) == (
                ("http.400", Category.TERMINAL, 1)
                if expected == "bad"
                else ("http.503", Category.RETRYABLE, 3)
            )
    assert {fate(seq) for _, seq in outcome.messages.values()} == {"ok", "flaky", "bad", "doomed"}


def test_the_outbox_is_empty_and_both_files_are_intact(outcome: Outcome) -> None:
    """After the drain no message is left in the outbox, and neither SQLite file is damaged."""
    assert outcome.outbox == (0, 0)
    assert outcome.left == []
    assert outcome.integrity == {"outbox.db": [("ok",)], "dead.db": [("ok",)]}


def test_each_key_is_delivered_in_enqueue_order(outcome: Outcome) -> None:
    """Per key, first attempts and first successful deliveries follow the enqueue order."""
    first: dict[str, Receipt] = {}
    first_2xx: dict[str, Receipt] = {}
    for receipt in outcome.receipts:
        first.setdefault(receipt.message_id, receipt)
        if receipt.delivered:
            first_2xx.setdefault(receipt.message_id, receipt)
    for chosen in (first, first_2xx):
        per_key: dict[str, list[int]] = defaultdict(list)
        for receipt in sorted(chosen.values(), key=lambda r: r.index):
            per_key[receipt.key].append(receipt.seq)
        assert len(per_key) == KEYS
        for key, seqs in per_key.items():
            assert seqs == sorted(seqs), key


def test_attempts_are_counted_across_kills(outcome: Outcome) -> None:
    """A message's attempts run 1, 2, ... with no gap, and stop where its fate says."""
    last = {"ok": {1}, "flaky": {1, 2}, "bad": {1}, "doomed": {3}}
    by_message: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in outcome.receipts:
        by_message[receipt.message_id].append(receipt)
    for group in by_message.values():
        assert group[0].attempt == 1
        for earlier, later in itertools.pairwise(group):
            # The next attempt, or the same one again after a kill lost its outcome.
            assert later.attempt == earlier.attempt + 1 or (
                later.attempt == earlier.attempt and later.run > earlier.run
            ), (earlier, later)
    for message_id, seen in outcome.attempts().items():
        assert seen == set(range(1, max(seen) + 1)), message_id
        assert max(seen) in last[fate(outcome.messages[message_id][1])], message_id


def test_an_attempt_a_kill_caught_in_flight_is_made_again(outcome: Outcome) -> None:
    """A request left unanswered at a kill is sent again, same attempt, by a later run."""
    held = [r for r in outcome.receipts if r.status is None]
    # The delivering-only run was killed with its 40th request and a retry held.
    deliver_run = [r for r in outcome.receipts if r.run == outcome.drain_run - 1]
    assert deliver_run[DELIVERED_BEFORE_KILL - 1].status is None
    assert any(r.status is None and r.attempt >= 2 for r in deliver_run)
    for receipt in held:
        again = [
            r
            for r in outcome.receipts[receipt.index + 1 :]
            if (r.message_id, r.attempt) == (receipt.message_id, receipt.attempt)
        ]
        assert again, receipt
        assert again[0].run > receipt.run


def test_only_what_a_kill_caught_in_flight_is_repeated(outcome: Outcome) -> None:
    """A repeated attempt or 2xx comes after a kill, at most IN_FLIGHT per kill."""
    by_attempt: dict[tuple[str, int], list[Receipt]] = defaultdict(list)
    by_2xx: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in outcome.receipts:
        by_attempt[receipt.message_id, receipt.attempt].append(receipt)
        if receipt.delivered:
            by_2xx[receipt.message_id].append(receipt)
    for groups in (by_attempt, by_2xx):
        repeats: Counter[int] = Counter()
        for group in groups.values():
            for earlier, later in itertools.pairwise(group):
                # The earlier one was sent by a run that was killed, before a later run.
                assert earlier.run in outcome.killed, (earlier, later)
                assert earlier.run < later.run, (earlier, later)
                repeats[earlier.run] += 1
        assert all(n <= IN_FLIGHT for n in repeats.values()), repeats
    # A dead letter stored twice: a kill between storing it and removing the message.
    attempts = outcome.attempts()
    for message_id, records in outcome.dead_by_key().items():
        final = max(attempts[message_id])
        assert len(records) <= len(by_attempt[message_id, final]), message_id
    # What reached the sink after a SIGKILL had been sent before it (in flight).
    for run, at_kill in outcome.killed.items():
        late = [r for r in outcome.receipts[at_kill:] if r.run == run]
        assert len(late) <= IN_FLIGHT, late
    assert outcome.drain_run not in outcome.killed
