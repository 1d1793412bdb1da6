"""The process test_journal_kill9 kills: accepts entries from concurrent tasks, without pause.

Usage: ``python _journal_kill9_child.py DB_PATH``.

Opens the journal with ``synchronous="FULL"``, prints ``ready``, then runs 16
producers that accept without pause (odd ones three entries at a time, even ones
with an idempotency key of their own) and print each entry's id, flushed, only
after ``accept`` returned it as new: a printed id is an acknowledged one. It never
stops on its own; the test ends it with SIGKILL.
"""

from __future__ import annotations

import sys
import time

import anyio

from otpy.ingest import JournalEntry, SQLiteJournalStore

PRODUCERS = 16


def say(line: str) -> None:
    """Print *line* and flush it, so the test reads it before the kill."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def produce(store: SQLiteJournalStore, n: int) -> None:
    """Accept entries of route ``orders`` forever, printing each acknowledged id."""
    size = 3 if n % 2 else 1
    sequence = 0
    while True:
        entries = [
            JournalEntry.new(
                route="orders",
                key=f"producer-{n}",
                idempotency_key=None if n % 2 else f"producer-{n}/{sequence + i}",
                body=f"message {n}/{sequence + i}".encode() * 8,
                headers={"Content-Length": "128"},
                now=time.time(),
            )
            for i in range(size)
        ]
        sequence += size
        for accepted in await store.accept(entries, timeout=60.0):
            assert not accepted.duplicate
            say(accepted.id)


async def main(path: str) -> None:
    """Open the journal and run the producers until killed."""
    store = await SQLiteJournalStore.open(path, synchronous="FULL")
    say("ready")
    async with anyio.create_task_group() as tg:
        for n in range(PRODUCERS):
            tg.start_soon(produce, store, n)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend="asyncio")
