"""The process test_kill9 kills: captures dead letters in a burst, printing each acknowledged id.

Usage: ``python _kill9_child.py DB_PATH``. Opens a SQLite store with
``synchronous="FULL"``, starts the writer, prints ``ready``, then runs 16 producers
that capture without pause (odd ones three records at a time) and write each id to
stdout, flushed, only after ``capture`` returned: a printed id is an acknowledged one.
It never stops on its own; the test ends it with SIGKILL.
"""

from __future__ import annotations

import sys

import anyio

import otpy
from otpy.deadletter import (
    DeadLetter,
    DeadLetters,
    Source,
    SQLiteDeadLetterStore,
    dead_letter_children,
)

PRODUCERS = 16


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def produce(client: DeadLetters, n: int) -> None:
    size = 3 if n % 2 else 1
    sequence = 0
    while True:
        records = [
            DeadLetter.capture(
                key=f"producer-{n}",
                source=Source.OUTBOUND,
                reason_class="ConnectTimeout",
                payload=f"message {n}/{sequence + i}".encode() * 8,
            )
            for i in range(size)
        ]
        sequence += size
        for record_id in await client.capture(records, timeout=60.0):
            say(record_id)


async def main(path: str) -> None:
    store = await SQLiteDeadLetterStore.open(path, synchronous="FULL")
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        client = DeadLetters()
        say("ready")
        async with anyio.create_task_group() as tg:
            for n in range(PRODUCERS):
                tg.start_soon(produce, client, n)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend="asyncio")
