"""The process test_outbox_kill9 kills: enqueues in a burst, or claims and then idles.

Usage: ``python _outbox_kill9_child.py DB_PATH enqueue|claim``.

``enqueue``: opens the outbox with ``synchronous="FULL"``, prints ``ready``, then runs
16 producers that enqueue without pause (odd ones three messages at a time) and
print each id, flushed, only after ``enqueue`` returned: a printed id is an
acknowledged one. It never stops on its own; the test ends it with SIGKILL.

``claim``: enqueues 30 messages on 10 keys, claims them, records a failed attempt
(``attempts=3``) for each, claims them again, prints ``claimed ID`` for each, marks
the first one dead (``attempts=4``, status 410) and prints ``dead ID``, then
``ready``, and waits to be killed with the others in flight.
"""

from __future__ import annotations

import sys
import time

import anyio

from otpy.gateway._outbox import OutboxMessage
from otpy.gateway._outbox_sqlite import SQLiteOutboxStore

PRODUCERS = 16


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def produce(store: SQLiteOutboxStore, n: int) -> None:
    size = 3 if n % 2 else 1
    sequence = 0
    while True:
        messages = [
            OutboxMessage.new(
                destination="hooks",
                key=f"producer-{n}",
                body=f"message {n}/{sequence + i}".encode() * 8,
                now=time.time(),
            )
            for i in range(size)
        ]
        sequence += size
        await store.enqueue(messages, timeout=60.0)
        for message in messages:
            say(message.id)


async def claim(store: SQLiteOutboxStore) -> None:
    now = time.time()
    await store.enqueue(
        [
            OutboxMessage.new(destination="hooks", key=f"key-{i % 10}", body=b"{}", now=now)
            for i in range(30)
        ]
    )
    for message in await store.claim("hooks", now=now, limit=100, lease=600.0):
        await store.record_retry(message.id, attempts=3, next_attempt_at=now, status=503)
    claimed = await store.claim("hooks", now=now, limit=100, lease=600.0)
    for message in claimed:
        say(f"claimed {message.id}")
    dead = await store.mark_dead(claimed[0].id, attempts=4, status=410, error="gone", now=now)
    say(f"dead {dead.id}")
    say("ready")
    await anyio.sleep_forever()


async def main(path: str, mode: str) -> None:
    store = await SQLiteOutboxStore.open(path, synchronous="FULL")
    if mode == "claim":
        await claim(store)
        return
    say("ready")
    async with anyio.create_task_group() as tg:
        for n in range(PRODUCERS):
            tg.start_soon(produce, store, n)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], backend="asyncio")
