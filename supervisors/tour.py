"""A tour of supervision: restarts you can watch in the console (``make demo`` ran it before the node).

::

    root            one_for_one
    ├── dead-letters rest_for_one  the SQLite store, its writer, retention, the router
    ├── pipeline    rest_for_one   store <- enrich <- parse, talking by name
    ├── workers     dynamic        short report jobs the ticker starts
    ├── deliveries  one_for_one    a partitioned work queue: a worker per partition
    ├── pressure    the pressure monitor, watching each delivery partition
    ├── flaky       crashes every 2-8 s and comes back after a growing backoff
    └── ticker      every 2 s: 8 records into the pipeline, 8 deliveries, one job

``enrich`` crashes on every 40th record, so every 10 s or so the pipeline restarts
it and ``parse`` (started after it) with it; records sent meanwhile wait for the
new ``parse`` under its name. The record it crashed on is a poison message: it is
dead-lettered into ``var/dead-letters.db`` (``OTPY_DEAD_LETTERS`` overrides the
path), where ``otpy dlq list --db var/dead-letters.db`` shows it.

Every third tick one customer has a surge of low-priority deliveries: its partition
climbs through warn and degraded to shed (the console's pressure column), the
ticker is throttled, and the deliveries shed or refused are dead-lettered under the
customer's key. On shutdown the deliveries still queued are drained for up to 2 s
and the rest dead-lettered. Run it with::

    otpy run supervisors.tour:root --console
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import anyio
import attrs

import otpy
import otpy.pressure
from otpy.deadletter import (
    DeadLetters,
    DeadLetterStore,
    PartitionedRejectionDeadLetters,
    dead_letter_children,
    dead_letter_leftovers,
    dead_letter_partitioned_rejections,
    encode_payload,
    sqlite_store,
)

TICK = 2.0
"""Seconds between ticker bursts."""
BURST = 8
"""Records per burst."""
POISON_EVERY = 40
"""``enrich`` crashes on record numbers divisible by this."""
CUSTOMERS = 6
"""Deliveries go to ``customer-0`` ... ``customer-5``, keyed (and partitioned) by customer."""
SURGE_EVERY = 3
"""Every this many ticks, ``customer-0`` gets a surge of :data:`SURGE` low-priority deliveries."""
SURGE = 60
DEAD_LETTERS = os.environ.get("OTPY_DEAD_LETTERS", "var/dead-letters.db")
"""Where the demo keeps its dead letters (the directory is created if missing)."""


@attrs.frozen
class Record:
    """One unit of work flowing through the pipeline."""

    n: int
    text: str


class PoisonRecord(Exception):
    """``enrich`` met a record it cannot handle (on purpose, for the demo)."""


class FlakyCrash(Exception):
    """``flaky`` crashed (on purpose, for the demo)."""


# -- the pipeline ---------------------------------------------------------------------


class Store(otpy.Actor):
    """The sink: takes a little time per record, so its mailbox fills and drains."""

    mailbox = otpy.MailboxConfig(capacity=100)

    async def init(self) -> None:
        """Start with nothing stored."""
        self.stored = 0

    async def handle_cast(self, message: Any) -> None:
        """Store one record."""
        if not isinstance(message, Record):
            await super().handle_cast(message)
            return
        await anyio.sleep(0.1)  # a pretend write
        self.stored += 1

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """Answer ``"stored"`` with the count."""
        if message == "stored":
            return self.stored
        return await super().handle_call(message, caller)


class Enrich(otpy.Actor):
    """The middle stage: crashes on poison records, otherwise passes them on.

    The record it crashed on is dead-lettered (``dead_letter_on_crash``).
    """

    mailbox = otpy.MailboxConfig(capacity=100)
    dead_letter_on_crash = True

    async def init(self) -> None:
        """Resolve where records go next."""
        self.store = self.node.named("demo.store")

    async def handle_cast(self, message: Any) -> None:
        """Enrich a record and send it to ``store``."""
        if not isinstance(message, Record):
            await super().handle_cast(message)
            return
        if message.n % POISON_EVERY == 0:
            raise PoisonRecord(f"record {message.n} is poison")
        await self.store.cast(attrs.evolve(message, text=message.text.upper()))


class Parse(otpy.Actor):
    """The first stage: receives raw records from the ticker."""

    mailbox = otpy.MailboxConfig(capacity=100)

    async def init(self) -> None:
        """Resolve where records go next."""
        self.enrich = self.node.named("demo.enrich")

    async def handle_cast(self, message: Any) -> None:
        """Parse a record and send it to ``enrich``."""
        if not isinstance(message, Record):
            await super().handle_cast(message)
            return
        await self.enrich.cast(attrs.evolve(message, text=message.text.strip()))


# rest_for_one: each stage sends to the one started before it, so when a stage
# restarts, the stages after it (which send to it) restart too. enrich crashes at
# most once per 10 s (every 40th record, 8 records per 2 s), 4 in any 30 s: 5 in 30 s
# never gives up, yet a stage crashing in a loop would.
pipeline = otpy.SupervisorSpec(
    id="pipeline",
    flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE, intensity=5, period=30.0),
    children=[
        otpy.ChildSpec(id="store", start=Store, name="demo.store"),
        otpy.ChildSpec(id="enrich", start=Enrich, name="demo.enrich"),
        otpy.ChildSpec(id="parse", start=Parse, name="demo.parse"),
    ],
)


# -- the worker pool ------------------------------------------------------------------


class Job(otpy.Actor):
    """A short report job: runs for a while, then finishes normally."""

    async def init(self, seconds: float) -> None:
        """Finish after *seconds*."""
        self.send_after(seconds, "done")

    async def handle_info(self, message: Any) -> None:
        """Stop normally when the time is up."""
        if message == "done":
            self.stop()
        else:
            await super().handle_info(message)


# dynamic: jobs come and go at run time from one template. They are temporary, never
# restarted, so intensity only guards against a bug: the default 3 in 5 s is enough.
workers = otpy.DynamicSupervisorSpec(
    id="workers",
    name="demo.workers",
    child=otpy.ChildSpec(id="job", start=Job, restart=otpy.Restart.TEMPORARY),
    max_children=4,
    intensity=3,
    period=5.0,
)


# -- deliveries: a partitioned work queue ------------------------------------------------


async def deliver(customer: str, record: Record) -> None:
    """Pretend to call a customer's slow API."""
    await anyio.sleep(random.uniform(0.05, 0.25))


# -- the flaky actor and the ticker -----------------------------------------------------


class Flaky(otpy.Actor):
    """Crashes 2 to 8 seconds after every start."""

    async def init(self) -> None:
        """Schedule this incarnation's crash."""
        self.lifetime = random.uniform(2.0, 8.0)
        self.send_after(self.lifetime, "crash")

    async def handle_info(self, message: Any) -> None:
        """Crash when the time comes."""
        if message == "crash":
            raise FlakyCrash(f"flaky crashed after {self.lifetime:.1f}s, on purpose")
        await super().handle_info(message)


class Ticker(otpy.Actor):
    """Feeds the pipeline, the deliveries and the pool every :data:`TICK` seconds."""

    async def init(self, deliveries: otpy.pressure.PartitionedQueue[Record]) -> None:
        """Start counting and schedule the first burst."""
        self.sent = 0
        self.ticks = 0
        self.refused = 0
        self.deliveries = deliveries
        self.parse = self.node.named("demo.parse")
        self.send_after(TICK, "tick")

    async def _deliver(
        self, customer: str, record: Record, priority: otpy.pressure.Priority
    ) -> None:
        try:
            await self.deliveries.put(customer, record, priority=priority)
        except otpy.PressureError:
            self.refused += 1  # shed or full: already dead-lettered by on_reject

    async def handle_info(self, message: Any) -> None:
        """Send a burst of records and start one job."""
        if message != "tick":
            await super().handle_info(message)
            return
        self.ticks += 1
        for _ in range(BURST):
            self.sent += 1
            record = Record(self.sent, f"  record {self.sent}  ")
            await self.parse.cast(record)
            customer = f"customer-{self.sent % CUSTOMERS}"
            await self._deliver(customer, record, otpy.pressure.Priority.NORMAL)
        if self.ticks % SURGE_EVERY == 0:
            for n in range(SURGE):
                surge = Record(-n, f"surge {self.ticks}.{n}")
                await self._deliver("customer-0", surge, otpy.pressure.Priority.LOW)
        pool = self.node.whereis("demo.workers")
        if pool is not None:
            try:
                await otpy.supervisor_ref(pool).start_dynamic_child(random.uniform(2.0, 9.0))
            except otpy.MaxChildren:
                pass  # the pool is full: skip this job
        self.send_after(TICK, "tick")


def encode_record(message: object) -> tuple[bytes, str]:
    """Store a :class:`Record` as JSON, so a dead-lettered one can be read and replayed."""
    if isinstance(message, Record):
        return json.dumps(attrs.asdict(message)).encode(), "application/json"
    return encode_payload(message)


def build_root(store: DeadLetterStore) -> otpy.SupervisorSpec:
    """Return the demo tree, keeping its dead letters in *store*."""
    # rest_for_one: the store opens first and the writer uses it; the router sends
    # to the writer. If one restarts, the ones after it restart too.
    dead_letters = otpy.SupervisorSpec(
        id="dead-letters",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
        children=dead_letter_children(store, route=True, encoder=encode_record),
    )
    rejections: PartitionedRejectionDeadLetters[Record] = dead_letter_partitioned_rejections(
        DeadLetters(), encoder=encode_record
    )
    queue: otpy.pressure.PartitionedQueue[Record] = otpy.pressure.PartitionedQueue(
        4, 40, name="deliveries", on_reject=rejections
    )
    rejections.bind(queue)
    deliveries = queue.supervisor_spec(
        deliver,
        name="deliveries",
        max_demand=4,
        drain=2.0,
        on_leftovers=dead_letter_leftovers(DeadLetters(), encoder=encode_record),
    )
    pressure = otpy.ChildSpec(
        id="pressure",
        start=otpy.pressure.PressureMonitor,
        name="pressure",
        args=({"deliveries": queue}, None, 0.5, "demo"),
    )
    # one_for_one: the dead-letter service, the pipeline, the pool, the deliveries,
    # the monitor, flaky and the ticker are independent (they talk by name or through
    # the queue), so a crash restarts only the one that crashed. The dead-letter
    # service starts first, so it stops last: the deliveries' drain can still store.
    # flaky lives at least 2 s plus a 0.5 s backoff, so at most 5 of its restarts fit
    # in any 10 s: 8 in 10 s never gives up on it.
    return otpy.SupervisorSpec(
        id="root",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ONE, intensity=8, period=10.0),
        children=[
            dead_letters,
            pipeline,
            workers,
            deliveries,
            pressure,
            otpy.ChildSpec(
                id="flaky",
                start=Flaky,
                # The delay doubles while it keeps crashing within 5 s of starting.
                backoff=otpy.Backoff(minimum=0.5, maximum=8.0, reset_after=5.0),
            ),
            otpy.ChildSpec(id="ticker", start=Ticker, args=(queue,)),
        ],
    )


root = build_root(sqlite_store(DEAD_LETTERS))
"""The tree ``make demo`` runs, with its dead letters in :data:`DEAD_LETTERS`."""
