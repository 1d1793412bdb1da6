"""one_for_all: two actors that only make sense together restart together.

A ``Connection`` and the ``Reader`` that reads from it share a session number. If
the connection crashes, a reader left running would hold a dead session, so the
supervisor uses ``Strategy.ONE_FOR_ALL``: it stops the reader (children stop in
reverse start order), then starts both again in start order.

Run it with ``python examples/one_for_all_pair.py``.
"""

from __future__ import annotations

import itertools
import logging
import sys
from typing import Any

import anyio

import otpy

sessions = itertools.count(1)


def describe(reason: object) -> str:
    """Show an exit reason: ``"shutdown"`` as is, an exception by its class."""
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)


class Connection(otpy.Actor):
    """Opens a new session on every start; a ``"fail"`` cast crashes it."""

    async def init(self) -> None:
        self.session = next(sessions)
        print(f"connection: opened session {self.session}")

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "session":
            return self.session
        return await super().handle_call(message, caller)

    async def handle_cast(self, message: Any) -> None:
        if message == "fail":
            raise ConnectionResetError(f"session {self.session} reset by peer")
        await super().handle_cast(message)

    async def terminate(self, reason: object) -> None:
        print(f"connection: session {self.session} closed ({describe(reason)})")


class Reader(otpy.Actor):
    """Reads from the session the connection had when the reader started."""

    async def init(self) -> None:
        self.session = await otpy.named("connection").call("session")
        print(f"reader: reading session {self.session}")

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "session":
            return self.session
        return await super().handle_call(message, caller)

    async def terminate(self, reason: object) -> None:
        print(f"reader: stopped reading session {self.session} ({describe(reason)})")


# one_for_all: a reader outliving its connection would read a dead session.
pair = otpy.SupervisorSpec(
    id="pair",
    name="pair",
    flags=otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ALL),
    children=[
        otpy.ChildSpec(id="connection", start=Connection, name="connection"),
        otpy.ChildSpec(id="reader", start=Reader),
    ],
)


async def main() -> None:
    async with otpy.open_supervisor(pair) as sup:
        old_reader = sup.child("reader")
        print("--- crashing the connection")
        await otpy.named("connection").cast("fail")
        reader = await sup.wait_child("reader", other_than=old_reader)
        connection = await otpy.named("connection").call("session")
        read = await reader.call("session")
        print(f"--- both restarted: connection on session {connection}, reader on session {read}")
        print("restarts:", {c.id: c.restarts for c in sup.statistics().children})
        print("--- stopping")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  [%(name)s] %(message)s", level=logging.ERROR)
    # The supervisor's one-line report is enough here; hide the actor's crash traceback.
    logging.getLogger("otpy.actor").setLevel(logging.CRITICAL)
    anyio.run(main)
