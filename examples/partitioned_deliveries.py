"""A partitioned work queue under pressure: per-customer order, shedding, a drain that keeps the rest.

Deliveries are keyed by customer: one customer's deliveries run in order on one
partition worker, different customers' in parallel. One customer sends a burst of
low-priority deliveries: its partition climbs to ``shed``, the low-priority ones
past that point are refused with :class:`otpy.LoadShed` and stored as dead letters
under the customer's key, and the other partitions never notice. When the tree stops,
the queue drains for up to 0.2 s and what is left is dead-lettered too: nothing
accepted is lost without a record.

The store is in memory so the example leaves nothing behind; ``sqlite_store(path)``
makes it durable. Run it with ``python examples/partitioned_deliveries.py``.
"""

from __future__ import annotations

import anyio

import otpy
import otpy.pressure
from otpy.deadletter import (
    DeadLetters,
    MemoryDeadLetterStore,
    PartitionedRejectionDeadLetters,
    dead_letter_children,
    dead_letter_leftovers,
    dead_letter_partitioned_rejections,
)

delivered: dict[str, list[int]] = {}


async def deliver(customer: str, n: int) -> None:
    """Pretend to call the customer's API: 10 ms each."""
    await anyio.sleep(0.01)
    delivered.setdefault(customer, []).append(n)


async def main() -> None:
    store = MemoryDeadLetterStore()
    rejections: PartitionedRejectionDeadLetters[int] = dead_letter_partitioned_rejections(
        DeadLetters()
    )
    queue: otpy.pressure.PartitionedQueue[int] = otpy.pressure.PartitionedQueue(
        4, 20, name="deliveries", on_reject=rejections
    )
    rejections.bind(queue)
    dead_letters = otpy.SupervisorSpec(
        id="dead-letters",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
        children=dead_letter_children(store, sweep=False),
    )
    workers = queue.supervisor_spec(
        deliver,
        max_demand=4,
        drain=0.2,
        on_leftovers=dead_letter_leftovers(DeadLetters()),
    )
    shed = 0
    # one_for_one: the dead-letter service starts first, so it stops last and the
    # drain can still store what it leaves.
    async with otpy.open_supervisor([dead_letters, workers]):
        for n in range(5):
            await queue.put("customer-a", n)
        for n in range(60):  # a burst from one customer
            try:
                await queue.put("customer-b", 100 + n, priority=otpy.pressure.Priority.LOW)
            except otpy.PressureError:
                shed += 1
        levels = {p.queue.name: p.queue.level.label for p in queue.statistics().partitions}
        print("levels after the burst:", levels)
    records = (await store.list(limit=1000)).records
    by_source: dict[str, int] = {}
    for record in records:
        by_source[record.source.value] = by_source.get(record.source.value, 0) + 1
    print("customer-a delivered in order:", delivered.get("customer-a"))
    print(f"customer-b: {len(delivered.get('customer-b', []))} delivered, {shed} refused")
    print("dead letters by source:", dict(sorted(by_source.items())))
    kept = len(delivered.get("customer-b", [])) + len(records)
    print(f"nothing lost: {kept} of 60 burst deliveries delivered or dead-lettered")


if __name__ == "__main__":
    anyio.run(main)
