"""The process test_gateway_kill9 kills: a gateway delivering to the test's sink, loaded by producers.

Usage: ``python _gateway_kill9_child.py MODE OUTBOX DEAD_LETTERS PORT RUN [COUNT]``.

It opens the SQLite outbox at OUTBOX and a node whose dead-letter writer stores in
the SQLite file DEAD_LETTERS, and builds a :class:`~otpy.gateway.Gateway` with two
HTTP destinations, ``alpha`` and ``beta``, both posting to the sink on 127.0.0.1:PORT.
Every request carries ``x-run: RUN`` (which process sent it) and ``x-attempt`` (the
attempt's number), so the test can tell a repeated attempt from a retry. Then, by
MODE:

``load``: prints ``ready``, runs the gateway, and :data:`KEYS` producers, one per
ordering key, that enqueue COUNT messages in all and print ``acked ID KEY SEQ``,
flushed, each time ``enqueue`` returned: a printed message is an acknowledged one.
Then it delivers until killed.

``enqueue``: the same producers without the gateway; prints ``enqueued`` and exits.

``deliver``: prints ``ready``, then runs the gateway on what the outbox holds until killed.

``drain``: prints ``ready``, runs the gateway until the outbox is empty, prints
``done`` and exits.

A message's body is ``{"key": KEY, "seq": SEQ, "fate": FATE}``: :func:`fate` tells
the sink how to answer it. SEQ grows with RUN, so a key's sequence numbers follow
its enqueue order across runs.
"""

from __future__ import annotations

import json
import sys
from typing import Final

import anyio
import attrs

import otpy
from otpy.deadletter import DeadLetters, dead_letter_children, sqlite_store
from otpy.gateway import (
    DeliveryPolicy,
    DeliveryResult,
    Gateway,
    HttpDestination,
    OutboundRequest,
    RetryPolicy,
    SQLiteOutboxStore,
    open_outbox,
)

KEYS: Final = 32
"""Ordering keys, one producer each: ``key-0`` ... ``key-31``."""
DESTINATIONS: Final = ("alpha", "beta")
"""Even keys go to ``alpha``, odd ones to ``beta``."""
BATCH: Final = 8
"""Each destination's most messages in flight: ``BATCH * len(DESTINATIONS)`` in all."""
RETRY: Final = RetryPolicy(schedule=("0s", "0s"))
"""Three attempts, retried at once: a failing message is settled quickly."""
SYNCHRONOUS: Final = "NORMAL"
"""Both files' sync mode: a commit survives the process's death (what a kill tests),
not a power cut, and the disk is not flushed at every commit, so the test is quick."""
RUN_STRIDE: Final = 100_000
"""A run's sequence numbers start at ``RUN * RUN_STRIDE``."""


def sequence(run: int, key: str, i: int) -> int:
    """The sequence number of the *i*-th message run *run* enqueues on *key*.

    Unique across keys (so fates spread over them all), growing with *i* and *run*.
    """
    return run * RUN_STRIDE + i * KEYS + int(key.rsplit("-", 1)[1])


def fate(seq: int) -> str:
    """How the sink answers the message numbered *seq*.

    ``"ok"``: 200. ``"flaky"``: 503 the first time, then 200. ``"bad"``: 400, never
    retried (dead-lettered). ``"doomed"``: 503 always, dead-lettered after three attempts.
    """
    if seq % 17 == 5:
        return "bad"
    if seq % 43 == 21:
        return "doomed"
    if seq % 7 == 3:
        return "flaky"
    return "ok"


def destination_of(key: str) -> str:
    """The destination of *key*'s messages."""
    return DESTINATIONS[int(key.rsplit("-", 1)[1]) % len(DESTINATIONS)]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@attrs.frozen
class Numbered:
    """An HTTP destination whose requests say which attempt they are (``x-attempt``)."""

    http: HttpDestination

    @property
    def name(self) -> str:
        """The HTTP destination's name."""
        return self.http.name

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        """Send *request* with its attempt's number in a header."""
        headers = (*request.headers, ("x-attempt", str(request.attempt)))
        return await self.http.send(attrs.evolve(request, headers=headers), now=now)


async def produce(gateway: Gateway, key: str, run: int, count: int) -> None:
    for i in range(count):
        seq = sequence(run, key, i)
        body = json.dumps({"key": key, "seq": seq, "fate": fate(seq)}).encode()
        message_id = await gateway.enqueue(
            destination_of(key), key=key, body=body, content_type="application/json"
        )
        say(f"acked {message_id} {key} {seq}")


async def load(gateway: Gateway, run: int, count: int) -> None:
    async with anyio.create_task_group() as tg:
        for k in range(KEYS):
            share = count // KEYS + (1 if k < count % KEYS else 0)
            tg.start_soon(produce, gateway, f"key-{k}", run, share)


async def drain(gateway: Gateway, outbox: SQLiteOutboxStore) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(gateway.run)
        # The gateway tells no one it is idle: poll the outbox (in the child, not the test).
        while (await outbox.statistics()).depth:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()


async def main(
    mode: str, outbox_path: str, dead_path: str, port: str, run: str, count: str
) -> None:
    policy = DeliveryPolicy(retry=RETRY, breaker=None, batch=BATCH)
    https = [
        HttpDestination(
            name,
            f"http://127.0.0.1:{port}/{name}",
            headers={"x-run": run},
            timeout=30.0,
            max_concurrent=BATCH,
        )
        for name in DESTINATIONS
    ]
    async with (
        open_outbox(outbox_path, synchronous=SYNCHRONOUS) as outbox,
        otpy.open_supervisor(
            dead_letter_children(sqlite_store(dead_path, synchronous=SYNCHRONOUS), sweep=False)
        ),
        https[0],
        https[1],
    ):
        gateway = Gateway(
            outbox,
            [Numbered(http) for http in https],
            policy=policy,
            dead_letters=DeadLetters(),
        )
        if mode == "enqueue":
            await load(gateway, int(run), int(count))
            say("enqueued")
            return
        say("ready")
        if mode == "drain":
            await drain(gateway, outbox)
            say("done")
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(gateway.run)
            if mode == "load":
                await load(gateway, int(run), int(count))


if __name__ == "__main__":
    mode, outbox_path, dead_path, port, run, *count = sys.argv[1:]
    anyio.run(
        main, mode, outbox_path, dead_path, port, run, count[0] if count else "0", backend="asyncio"
    )
