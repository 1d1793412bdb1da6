"""A worker pool on a DynamicSupervisor: max_children, round-robin jobs, a crashing job.

The pool starts empty and adds workers at run time with ``start_dynamic_child``,
up to ``max_children``; one more raises ``otpy.MaxChildren``. Jobs go round-robin
to the workers with ``call``. A job that crashes its worker fails that call with
``otpy.ActorExited``, and the supervisor starts a fresh worker with the same
arguments in its place. Each worker announces itself from ``init``, so the pool
learns about the replacement without polling.

Run it with ``python examples/dynamic_pool.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import anyio

import otpy

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

Announce = tuple[int, otpy.ActorRef]


class Worker(otpy.Actor):
    """Squares numbers; the job ``"poison"`` crashes it."""

    async def init(self, announce: MemoryObjectSendStream[Announce], slot: int) -> None:
        self.slot = slot
        print(f"worker {slot}: started as {self.ref.label}")
        announce.send_nowait((slot, self.ref))

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "poison":
            raise ValueError(f"worker {self.slot} cannot digest {message!r}")
        if isinstance(message, int):
            return (self.slot, message * message)
        return await super().handle_call(message, caller)


async def main() -> None:
    announce, announcements = anyio.create_memory_object_stream[Announce](10)
    pool = otpy.DynamicSupervisorSpec(
        child=otpy.ChildSpec(id="worker", start=Worker, args=(announce,)),
        max_children=3,
        name="pool",
    )
    with announce, announcements:
        await run_pool(pool, announcements)


async def run_pool(
    pool: otpy.DynamicSupervisorSpec, announcements: MemoryObjectReceiveStream[Announce]
) -> None:
    async with otpy.open_supervisor(pool) as sup:
        for slot in range(3):
            await sup.start_dynamic_child(slot)
        try:
            await sup.start_dynamic_child(3)
        except otpy.MaxChildren as exc:
            print("fourth worker refused:", exc)
        workers = dict([announcements.receive_nowait() for _ in range(3)])

        jobs: list[int | str] = [1, 2, 3, "poison", 4, 5, 6]
        for n, job in enumerate(jobs):
            slot = n % len(workers)
            try:
                done_by, result = await workers[slot].call(job)
                print(f"job {job!r}: worker {done_by} says {result}")
            except otpy.ActorExited as exc:
                print(f"job {job!r}: {exc}")
                slot, workers[slot] = await announcements.receive()  # the replacement
                print(f"worker {slot} replaced by {workers[slot].label}")

        counts = sup.count_children()
        print(f"pool: {counts.active} workers running, {sup.statistics().total_restarts} restart")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  [%(name)s] %(message)s", level=logging.ERROR)
    # The supervisor's one-line report is enough here; hide the actor's crash traceback.
    logging.getLogger("otpy.actor").setLevel(logging.CRITICAL)
    anyio.run(main)
