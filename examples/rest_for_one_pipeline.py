"""rest_for_one: a three-stage pipeline whose stages talk to each other by name.

``parse`` -> ``enrich`` -> ``store``; each stage casts to the next through
``otpy.named(...)``, never through a ref, so it always reaches the current
incarnation. A bad item crashes ``enrich``. With ``Strategy.REST_FOR_ONE`` the
supervisor restarts ``enrich`` and the stage after it (``store``), and leaves
``parse``, which started earlier, alone. ``enrich`` has a short ``Backoff``: items
sent by name while it is backing off wait in the name's stash and reach the new
incarnation first.

Run it with ``python examples/rest_for_one_pipeline.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio

import otpy


class Parse(otpy.Actor):
    """Turns text into numbers and passes them on."""

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, anyio.Event):
            await otpy.named("enrich").cast(message)  # a flush marker: pass it along in order
        else:
            await otpy.named("enrich").cast(int(message))


class Enrich(otpy.Actor):
    """Multiplies by ten; a negative number crashes it."""

    async def init(self) -> None:
        print(f"enrich: started as {self.ref.label}#{self.ref.id}")

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, int) and message < 0:
            raise ValueError(f"cannot enrich {message}")
        if isinstance(message, int):
            message *= 10
        await otpy.named("store").cast(message)


class Store(otpy.Actor):
    """Keeps what reached the end of the pipeline (state is lost on restart)."""

    async def init(self) -> None:
        self.items: list[int] = []
        print(f"store: started as {self.ref.label}#{self.ref.id}")

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, anyio.Event):
            message.set()
        else:
            self.items.append(message)

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "items":
            return list(self.items)
        return await super().handle_call(message, caller)


# rest_for_one: each stage sends to the next, so when a stage restarts the
# stages after it restart too; the stages before it keep running.
pipeline = otpy.SupervisorSpec(
    id="pipeline",
    name="pipeline",
    flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
    children=[
        otpy.ChildSpec(id="parse", start=Parse, name="parse"),
        otpy.ChildSpec(
            id="enrich",
            start=Enrich,
            name="enrich",
            backoff=otpy.Backoff(minimum=0.05, maximum=0.05, jitter=0.0),
        ),
        otpy.ChildSpec(id="store", start=Store, name="store"),
    ],
)


async def feed(*items: str) -> None:
    """Send *items* into the pipeline by name and wait until all have passed through."""
    flushed = anyio.Event()
    for item in items:
        await otpy.named("parse").cast(item)
    await otpy.named("parse").cast(flushed)
    await flushed.wait()


async def main() -> None:
    async with otpy.open_supervisor(pipeline) as sup:
        await feed("1", "2")
        print("store holds", await otpy.named("store").call("items"))

        parse, enrich = sup.child("parse"), sup.child("enrich")
        assert enrich is not None
        print("--- sending -1, which crashes enrich")
        await otpy.named("parse").cast("-1")
        await enrich.wait_exited()
        print("enrich is down; its name now resolves to", otpy.named("enrich").resolve())

        print("--- sending 3 and 4 by name while enrich restarts")
        await feed("3", "4")
        print("store holds", await otpy.named("store").call("items"))
        print("parse kept its incarnation:", sup.child("parse") is parse)
        print("restarts:", {c.id: c.restarts for c in sup.statistics().children})
        print("dead letters:", otpy.current_node().dead_letters.statistics().total)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  [%(name)s] %(message)s", level=logging.ERROR)
    # The supervisor's one-line report is enough here; hide the actor's crash traceback.
    logging.getLogger("otpy.actor").setLevel(logging.CRITICAL)
    anyio.run(main)
