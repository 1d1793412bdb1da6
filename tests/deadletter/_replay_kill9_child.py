"""The process test_replay_kill9 kills: replays every active dead letter, recording each side effect.

Usage: ``python _replay_kill9_child.py DB_PATH EFFECTS_PATH STUCK_ID``. Opens the SQLite
store and replays all its active records through a replay supervisor of 4 partitions.
The handler appends ``<idempotency key> <record id>`` to EFFECTS_PATH (one ``write`` on
an ``O_APPEND`` file: it is in the file once the call returns, kill -9 or not), then,
for STUCK_ID only, prints ``stuck`` and waits forever: killed mid side effect, before
its outcome is committed. The test ends the process with SIGKILL.
"""

from __future__ import annotations

import os
import sys

import anyio

import otpy
from otpy.deadletter import DeadLetter, DeadLetterFilter, Source, Status, open_replayer, open_store


async def main(db: str, effects: str, stuck: str) -> None:
    fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def send(record: DeadLetter, key: str) -> None:
        os.write(fd, f"{key} {record.id}\n".encode())
        if record.id == stuck:
            sys.stdout.write("stuck\n")
            sys.stdout.flush()
            await anyio.sleep_forever()

    async with (
        open_store(db) as store,
        otpy.open_node(),
        open_replayer(store, {Source.OUTBOUND: send}, reclaim_interval=3600.0) as replayer,
    ):
        await replayer.replay_many(DeadLetterFilter(status=Status.ACTIVE))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], backend="asyncio")
