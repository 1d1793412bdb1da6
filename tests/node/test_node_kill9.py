"""The node killed with SIGKILL mid-load, again and again, loses no acknowledged message.

The real command runs the node: ``python -m otpy run --config otpy.toml``. The
test process holds what outlives every kill: a loopback sink standing for the three
destinations, recording each request in arrival order, and twelve HTTP clients, one
per ordering key, each sending its key's messages in sequence and retrying a message
with the same ``Idempotency-Key`` until the node acknowledges it (``202``, or ``200``
for one it had stored before a kill cut the answer off). While the node is down or
starting (refused connections, ``503``), the clients wait until ``GET /readyz``
answers ``200``.

Five node runs are killed: after a random number of acknowledgements (the seed is
printed; ``KILL9_SEED`` replays one), and one once the sink holds a few requests
unanswered, so the kill finds deliveries in flight. A last run takes the rest, waits
until the sink has everything and stops on SIGTERM. The scenario runs once for the
module; each test checks one property of what it left (IN-1, IN-6, IN-7, IN-10,
GW-1..GW-3).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import attrs
import httpx
import pytest
from gateway._sink import Received, Reply, Sink, free_port, running_sink
from kill9 import integrity

from otpy.deadletter import DeadLetter, open_store
from otpy.gateway import open_outbox
from otpy.ingest import handover_message_id, open_journal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from anyio.abc import Process

ROOT = Path(__file__).parents[2]
PATIENCE = 30.0  # seconds any one step may take before the test fails; never slept
QUIET = 5.0  # seconds without a request after which the sink is done waiting
RETRY = 0.02  # seconds a client waits before asking again: a real client's backoff

ROUTES = {"orders": ("orders-api", "audit"), "events": ("events-api",)}
"""Each route and its destinations: ``orders`` fans out to two."""
DESTINATIONS = ("orders-api", "audit", "events-api")
BATCH = {"orders-api": 4, "audit": 3, "events-api": 4}
"""Each destination's ``batch``: the most of its messages in flight at once."""
KEYS = tuple(f"k{i:02d}" for i in range(12))
"""The ordering keys, one client each; even ones on ``orders``, odd ones on ``events``."""
PER_KEY = 30
"""Messages each client sends, in sequence."""
KILLS = 5
"""Node runs killed before the last one, which stops on SIGTERM."""
ACKS_BEFORE_KILL = (1, 50)
"""A killed run's acknowledgements before its SIGKILL: drawn in this range."""
HELD = 3
"""Requests the sink leaves unanswered in the run killed with deliveries in flight."""


def route_of(key: str) -> str:
    """The route *key*'s client posts to."""
    return "orders" if int(key[1:]) % 2 == 0 else "events"


def idempotency_key(key: str, seq: int) -> str:
    """The ``Idempotency-Key`` of *key*'s message *seq*, the same on every retry."""
    return f"{key}-{seq:03d}"


# -- the config --------------------------------------------------------------------------


def config_text(var_dir: Path, *, ingest: int, sink: int, run: int) -> str:
    """The node's ``otpy.toml`` for run *run*: its requests carry ``X-Run: <run>``."""
    lines = [
        "[node]",
        f"var_dir = {json.dumps(str(var_dir))}",
        'synchronous = "full"',
        "[ingest]",
        'host = "127.0.0.1"',
        f"port = {ingest}",
    ]
    for route, destinations in ROUTES.items():
        lines += [f"[ingest.routes.{route}]", f"destinations = {json.dumps(list(destinations))}"]
    for name in DESTINATIONS:
        lines += [
            f"[gateway.destinations.{name}]",
            f'url = "http://127.0.0.1:{sink}/{name}"',
            f'headers = {{ X-Run = "{run}" }}',
            f"batch = {BATCH[name]}",
            'timeout = "10s"',
        ]
    lines += ["[admin]", "enabled = false", "[drain]", 'budget = "10s"']
    return "\n".join(lines) + "\n"


# -- the sink ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Receipt:
    """One request the sink received; ``held``: left unanswered until the node died."""

    index: int
    run: int
    destination: str
    webhook_id: str
    idempotency_key: str
    key: str
    seq: int
    held: bool


@attrs.define
class Recorder:
    """Answers 200 to every request, except the first :data:`HELD` of run *hold_run*."""

    hold_run: int
    receipts: list[Receipt] = attrs.field(factory=list)
    delivered: set[tuple[str, str]] = attrs.field(factory=set)
    held: int = 0
    release: anyio.Event = attrs.field(factory=anyio.Event)

    def __call__(self, request: Received) -> Reply:
        body = json.loads(request.body)
        run = int(request.headers["x-run"])
        hold = run == self.hold_run and self.held < HELD
        self.held += hold
        receipt = Receipt(
            index=len(self.receipts),
            run=run,
            destination=request.path.removeprefix("/"),
            webhook_id=request.headers["webhook-id"],
            idempotency_key=request.headers["idempotency-key"],
            key=body["key"],
            seq=body["seq"],
            held=hold,
        )
        self.receipts.append(receipt)
        if hold:
            return Reply(hang=self.release)
        self.delivered.add((receipt.idempotency_key, receipt.destination))
        return Reply(status=200)


# -- the clients -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Ack:
    """An acknowledgement: the node answered *status* with the message's id."""

    key: str
    seq: int
    id: str
    status: int
    run: int


@attrs.define
class Traffic:
    """The clients' shared state: the run now, the acknowledgements, the readiness gate.

    ``ready`` is set while the ingest is known to answer; a client that meets a
    refused connection or a ``503`` clears it, and :meth:`watch` polls
    ``GET /readyz`` until the node is ready again.
    """

    base_url: str
    run: int = 0
    acks: list[Ack] = attrs.field(factory=list)
    ready: anyio.Event = attrs.field(factory=anyio.Event)
    refusals: Counter[str] = attrs.field(factory=Counter)
    _lost: anyio.Event = attrs.field(factory=anyio.Event)
    _changed: anyio.Event = attrs.field(factory=anyio.Event)

    def __attrs_post_init__(self) -> None:
        self._lost.set()  # not known to be ready yet

    def lost(self, why: str) -> None:
        """A client found the ingest unavailable (*why*): wait for ``/readyz``."""
        self.refusals[why] += 1
        if self.ready.is_set():
            self.ready = anyio.Event()
            self._lost.set()

    def ack(self, ack: Ack) -> None:
        """Record an acknowledgement and wake :meth:`wait_for`."""
        self.acks.append(ack)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once *predicate* holds, checking it after every acknowledgement."""
        while not predicate():
            await self._changed.wait()

    def in_run(self, run: int) -> int:
        """The acknowledgements received while run *run* was the node."""
        return sum(1 for a in self.acks if a.run == run)

    async def watch(self) -> None:
        """Whenever a client lost the ingest, poll ``/readyz`` until it answers 200."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as http:
            while True:
                await self._lost.wait()
                while True:
                    try:
                        response = await http.get("/readyz")
                    except httpx.TransportError:
                        self.refusals["readyz refused"] += 1
                    else:
                        if response.status_code == 200:
                            break
                        self.refusals[f"readyz {response.status_code}"] += 1
                    await anyio.sleep(RETRY)
                self._lost = anyio.Event()
                self.ready.set()

    async def client(self, key: str) -> None:
        """Send *key*'s messages in sequence, each until acknowledged."""
        route = route_of(key)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as http:
            for seq in range(PER_KEY):
                headers = {
                    "Idempotency-Key": idempotency_key(key, seq),
                    "X-Otpy-Key": key,
                    "Content-Type": "application/json",
                }
                body = json.dumps({"key": key, "seq": seq}).encode()
                while True:
                    await self.ready.wait()
                    try:
                        response = await http.post(
                            f"/v1/routes/{route}/messages", content=body, headers=headers
                        )
                    except httpx.TransportError as exc:
                        self.lost(type(exc).__name__)
                        continue
                    if response.status_code in (200, 202):
                        answer = response.json()
                        assert answer["duplicate"] is (response.status_code == 200), answer
                        self.ack(
                            Ack(
                                key=key,
                                seq=seq,
                                id=answer["id"],
                                status=response.status_code,
                                run=self.run,
                            )
                        )
                        break
                    assert response.status_code in (429, 503), response.text
                    if response.status_code == 503:
                        self.lost("503")
                    else:
                        await anyio.sleep(RETRY)


# -- the node ----------------------------------------------------------------------------


@attrs.define
class NodeProcess:
    """One run of ``python -m otpy run``; its log (stderr) is *log*."""

    process: Process
    log: Path

    def failure(self, what: str) -> AssertionError:
        """An AssertionError saying *what*, with the node's log."""
        return AssertionError(f"{what}; the node's log:\n{self.log.read_text()}")

    async def kill(self) -> None:
        """SIGKILL the node, which must still be running."""
        if self.process.returncode is not None:
            raise self.failure(f"the node exited with {self.process.returncode} before its kill")
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL

    async def stop(self) -> int:
        """SIGTERM the node and return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


@contextlib.asynccontextmanager
async def running_node(config: Path, log: Path) -> AsyncIterator[NodeProcess]:
    """Run the node on *config*; SIGKILL it on the way out if it still runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPY_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    with log.open("wb") as err:
        process = await anyio.open_process(
            [
                sys.executable,
                "-m",
                "otpy",
                "run",
                "--config",
                str(config),
                "--log-level",
                "info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=config.parent,
            env=env,
        )
    try:
        yield NodeProcess(process, log)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()


@contextlib.contextmanager
def patience(step: str, node: NodeProcess) -> Iterator[None]:
    """Fail the test, naming *step* and showing the node's log, past PATIENCE."""
    try:
        with anyio.fail_after(PATIENCE):
            yield
    except TimeoutError:
        raise node.failure(f"{step}: not done within {PATIENCE:g}s") from None


async def settle(sink: Sink, recorder: Recorder, expected: set[tuple[str, str]]) -> None:
    """Wait until the sink has *expected*, or has received nothing for :data:`QUIET` seconds.

    A message lost is never coming: the tests then say which, instead of a timeout.
    """
    while not expected <= recorder.delivered:
        seen = len(recorder.receipts)
        with anyio.move_on_after(QUIET):
            await sink.wait_for(lambda: len(recorder.receipts) > seen)  # noqa: B023
        if len(recorder.receipts) == seen:
            return


# -- the scenario ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Outcome:
    """What the scenario left, for the tests to check.

    Attributes:
        seed: the random seed of the kill plan.
        acks: every acknowledgement, in the order received.
        receipts: the sink's requests, in arrival order.
        killed: per killed run, how many requests the sink had received at its SIGKILL.
        hold_run: the run killed while the sink held :data:`HELD` requests.
        exit_code: the last run's exit code after SIGTERM.
        refusals: what the clients met while the node was down or starting.
        journal_depth: the journal's pending entries after the last run.
        outbox: ``(depth, in_flight, dead)`` of the outbox after the last run.
        dead: the dead letters stored.
        integrity: ``PRAGMA integrity_check`` of each file.
    """

    seed: int
    acks: list[Ack]
    receipts: list[Receipt]
    killed: dict[int, int]
    hold_run: int
    exit_code: int
    refusals: Counter[str]
    journal_depth: int
    outbox: tuple[int, int, int]
    dead: list[DeadLetter]
    integrity: dict[str, list[tuple[str]]]

    def ids(self) -> dict[tuple[str, int], str]:
        """Each message's id, by ``(key, seq)``, as its acknowledgement gave it."""
        return {(a.key, a.seq): a.id for a in self.acks}


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


async def _scenario(tmp_path: Path, seed: int) -> Outcome:
    rng = random.Random(seed)
    acks_before_kill = [rng.randint(*ACKS_BEFORE_KILL) for _ in range(KILLS)]
    hold_run = rng.randrange(KILLS)
    ingest_port = await free_port()
    recorder = Recorder(hold_run=hold_run)
    traffic = Traffic(base_url=f"http://127.0.0.1:{ingest_port}")
    config = tmp_path / "otpy.toml"
    var_dir = tmp_path / "var"
    killed: dict[int, int] = {}
    async with running_sink(answer=recorder) as sink, anyio.create_task_group() as group:
        group.start_soon(traffic.watch)
        async with anyio.create_task_group() as clients:
            for key in KEYS:
                clients.start_soon(traffic.client, key)
            for run in range(KILLS):
                traffic.run = run
                config.write_text(config_text(var_dir, ingest=ingest_port, sink=sink.port, run=run))
                async with running_node(config, tmp_path / f"node-{run}.log") as node:
                    if run == hold_run:
                        with patience(f"run {run}: {HELD} requests held", node):
                            await sink.wait_for(lambda: recorder.held >= HELD)
                    else:
                        wanted = acks_before_kill[run]
                        with patience(f"run {run}: {wanted} acknowledgements", node):
                            await traffic.wait_for(lambda: traffic.in_run(run) >= wanted)  # noqa: B023
                    killed[run] = len(recorder.receipts)
                    await node.kill()
                if run == hold_run:
                    recorder.release.set()  # the held handlers end on a dead connection
            traffic.run = KILLS
            text = config_text(var_dir, ingest=ingest_port, sink=sink.port, run=KILLS)
            config.write_text(text)
            async with running_node(config, tmp_path / f"node-{KILLS}.log") as node:
                with patience("the last run: every message acknowledged", node):
                    await traffic.wait_for(lambda: len(traffic.acks) == len(KEYS) * PER_KEY)
                expected = {
                    (idempotency_key(key, seq), destination)
                    for key in KEYS
                    for seq in range(PER_KEY)
                    for destination in ROUTES[route_of(key)]
                }
                with patience("the last run: every message delivered", node):
                    await settle(sink, recorder, expected)
                with patience("the last run: SIGTERM", node):
                    exit_code = await node.stop()
        group.cancel_scope.cancel()

    async with open_journal(var_dir / "journal.sqlite3") as journal:
        journal_depth = (await journal.statistics()).depth
    async with open_outbox(var_dir / "outbox.sqlite3") as outbox:
        stats = await outbox.statistics()
    files = ("journal.sqlite3", "outbox.sqlite3", "dead-letters.sqlite3")
    return Outcome(
        seed=seed,
        acks=traffic.acks,
        receipts=recorder.receipts,
        killed=killed,
        hold_run=hold_run,
        exit_code=exit_code,
        refusals=traffic.refusals,
        journal_depth=journal_depth,
        outbox=(stats.depth, stats.in_flight, stats.dead),
        dead=await _dead_letters(var_dir / "dead-letters.sqlite3"),
        integrity={f: await anyio.to_thread.run_sync(integrity, var_dir / f) for f in files},
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Run the scenario once for the module's tests, with a printed seed."""
    seed = int(os.environ.get("KILL9_SEED") or random.SystemRandom().randrange(2**32))
    print(f"node kill -9 scenario: KILL9_SEED={seed}")
    result: Outcome = anyio.run(
        _scenario, tmp_path_factory.mktemp("node-kill9"), seed, backend="asyncio"
    )
    return result


# -- the properties ----------------------------------------------------------------------


def test_every_message_is_acknowledged_once_with_one_id(outcome: Outcome) -> None:
    """Each message is acknowledged once; a retry after a kill gets the original's id (IN-10)."""
    seen = Counter((a.key, a.seq) for a in outcome.acks)
    assert seen == Counter((k, s) for k in KEYS for s in range(PER_KEY)), outcome.seed
    ids = outcome.ids()
    assert len(set(ids.values())) == len(ids)
    # A 200 is a retry whose first try the node stored before a kill cut its answer off.
    assert {a.status for a in outcome.acks} <= {200, 202}


def test_the_clients_waited_out_the_kills_and_the_starts(outcome: Outcome) -> None:
    """Each kill cut requests off, and the clients polled ``/readyz`` through each start."""
    assert outcome.refusals["readyz refused"] >= KILLS, outcome.refusals
    assert sum(outcome.refusals.values()) > KILLS
    assert sorted(outcome.killed) == list(range(KILLS))
    assert outcome.exit_code == 0


def test_every_acknowledged_message_reaches_each_destination(outcome: Outcome) -> None:
    """NODE-1: each acknowledged message got a 200 from each destination of its route, none dead."""
    delivered = {(r.idempotency_key, r.destination) for r in outcome.receipts if not r.held}
    for ack in outcome.acks:
        for destination in ROUTES[route_of(ack.key)]:
            assert (idempotency_key(ack.key, ack.seq), destination) in delivered, (
                ack,
                destination,
                outcome.seed,
            )
    assert outcome.dead == []


def test_every_request_carries_the_message_s_id_and_key(outcome: Outcome) -> None:
    """Each request, repeats too, has the message's Idempotency-Key and webhook-id (GW-2, IN-6)."""
    ids = outcome.ids()
    for receipt in outcome.receipts:
        assert receipt.destination in ROUTES[route_of(receipt.key)], receipt
        assert receipt.idempotency_key == idempotency_key(receipt.key, receipt.seq), receipt
        entry = ids[receipt.key, receipt.seq]
        assert receipt.webhook_id == handover_message_id(entry, receipt.destination), receipt


def test_each_key_reaches_each_destination_in_order(outcome: Outcome) -> None:
    """NODE-1: per destination and key, first deliveries follow the sequence; a repeat is an earlier one (IN-7, GW-3)."""
    firsts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for receipt in outcome.receipts:
        stream = firsts[receipt.destination, receipt.key]
        if receipt.seq not in stream:
            stream.append(receipt.seq)
    for (destination, key), seqs in firsts.items():
        assert seqs == list(range(PER_KEY)), (destination, key, seqs, outcome.seed)
    assert len(firsts) == sum(len(ROUTES[route_of(k)]) for k in KEYS)


def test_only_what_a_kill_caught_in_flight_is_sent_again(outcome: Outcome) -> None:
    """NODE-2: a repeated request follows a kill of the run that sent the first, a bounded few per kill (GW-2)."""
    by_message: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in outcome.receipts:
        by_message[receipt.webhook_id].append(receipt)
    repeats: Counter[int] = Counter()
    for group in by_message.values():
        for earlier, later in itertools.pairwise(group):
            assert earlier.run in outcome.killed, (earlier, later)
            assert earlier.run < later.run, (earlier, later)
            repeats[earlier.run] += 1
    # In flight at a kill: each destination's batch. A hand-over page the kill cut
    # off between the outbox's commit and the journal's mark (IN-6) adds none: the
    # outbox remembers the messages that left it (GW-1) and does not take them again.
    bound = sum(BATCH.values())
    assert all(n <= bound for n in repeats.values()), repeats
    held = [r for r in outcome.receipts if r.held]
    assert len(held) == HELD
    assert all(r.run == outcome.hold_run for r in held)
    for receipt in held:
        assert any(r.webhook_id == receipt.webhook_id and not r.held for r in outcome.receipts)
    # What reached the sink after a SIGKILL had been sent before it (in flight).
    for run, at_kill in outcome.killed.items():
        late = [r for r in outcome.receipts[at_kill:] if r.run == run]
        assert len(late) <= sum(BATCH.values()), late


def test_the_stores_end_empty_and_intact(outcome: Outcome) -> None:
    """After the SIGTERM the journal and the outbox are empty and the three files intact."""
    assert outcome.journal_depth == 0
    assert outcome.outbox == (0, 0, 0)
    assert outcome.integrity == {
        "journal.sqlite3": [("ok",)],
        "outbox.sqlite3": [("ok",)],
        "dead-letters.sqlite3": [("ok",)],
    }
