"""Monitors and links: watching an actor versus sharing its fate.

A monitor is one-way: the watcher gets an ``otpy.Down`` in ``handle_info`` when the
watched actor exits, whatever the reason, and is otherwise unaffected. A link is
two-way: when one side exits with any reason but ``normal`` (``shutdown``
included, as in OTP), the other is killed with the same reason, unless it sets
``trap_exit = True``, in which case it gets an ``otpy.Exit`` instead. Only a
``normal`` exit kills nobody.

Run it with ``python examples/monitors_links.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio

import otpy


def describe(reason: object) -> str:
    """Show an exit reason: ``"normal"`` as is, an exception by its class and message."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}({reason})"
    return str(reason)


class Job(otpy.Actor):
    """Does nothing until told: ``"crash"`` raises, ``"finish"`` stops normally."""

    async def handle_cast(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("disk full")
        if message == "finish":
            self.stop()


class Observer(otpy.Actor):
    """Monitors or links to the actors it is given and prints what it hears."""

    async def init(self, name: str, trap_exit: bool = False) -> None:
        self.name = name
        self.trap_exit = trap_exit

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        op, target = message
        if op == "monitor":
            self.monitor(target)
        elif op == "link":
            self.link(target)
        return None

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, otpy.Down):
            print(f"{self.name}: Down from {message.actor.label}: {describe(message.reason)}")
        elif isinstance(message, otpy.Exit):
            print(f"{self.name}: Exit from {message.actor.label}: {describe(message.reason)}")
        else:
            await super().handle_info(message)

    async def terminate(self, reason: object) -> None:
        print(f"{self.name}: terminating ({describe(reason)})")


async def main() -> None:
    async with otpy.open_node() as node:
        print("--- monitors")
        job = await node.spawn(Job, name="job")
        watcher = await node.spawn(Observer, "watcher")
        await watcher.call(("monitor", job))
        await job.cast("crash")
        await job.wait_exited()
        await watcher.call(("monitor", job))  # already dead: an immediate Down(noproc)
        await watcher.call(("sync", None))  # both Downs are handled before this returns
        print("watcher alive:", watcher.is_alive)

        print("--- links")
        job = await node.spawn(Job, name="job")
        buddy = await node.spawn(Observer, "buddy")
        guardian = await node.spawn(Observer, "guardian", True)
        await buddy.call(("link", job))
        await guardian.call(("link", job))
        await job.cast("crash")
        reason = await buddy.wait_exited()
        await guardian.call(("sync", None))
        print("buddy (linked) was killed with:", describe(reason))
        print("guardian (linked, trap_exit) alive:", guardian.is_alive)

        print("--- a normal exit does not propagate")
        job = await node.spawn(Job, name="job")
        buddy = await node.spawn(Observer, "buddy")
        await buddy.call(("link", job))
        await job.cast("finish")
        await job.wait_exited()
        await buddy.call(("sync", None))
        print("buddy alive:", buddy.is_alive)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  [%(name)s] %(message)s", level=logging.ERROR)
    # Hide the crash report's traceback; the Down and Exit messages tell the story.
    logging.getLogger("otpy.actor").setLevel(logging.CRITICAL)
    anyio.run(main)
