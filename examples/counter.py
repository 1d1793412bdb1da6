"""A counter gen_server: calls, casts, and a reply deferred until a target is reached.

``call`` waits for a reply, ``cast`` does not. ``("wait_for", n)`` shows a deferred
reply: ``handle_call`` keeps the :class:`otpy.Caller` and returns ``otpy.NO_REPLY``,
and a later cast answers it once the count reaches *n*.

Run it with ``python examples/counter.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc

import otpy


class Counter(otpy.Actor):
    """Holds a count; answers ``"get"`` and ``("wait_for", n)``; casts add to it."""

    async def init(self, start: int) -> None:
        self.count = start
        self.waiting: list[tuple[int, otpy.Caller]] = []

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "get":
            return self.count
        if isinstance(message, tuple) and message[0] == "wait_for":
            target: int = message[1]
            if self.count >= target:
                return self.count
            self.waiting.append((target, caller))
            print(f"counter: count is {self.count}, deferring the reply until it reaches {target}")
            return otpy.NO_REPLY  # answered later, from handle_cast
        return await super().handle_call(message, caller)

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, tuple) and message[0] == "add":
            self.count += message[1]
            still_waiting = []
            for target, caller in self.waiting:
                if self.count >= target:
                    caller.reply(self.count)
                else:
                    still_waiting.append((target, caller))
            self.waiting = still_waiting
            return
        await super().handle_cast(message)


async def main() -> None:
    async with otpy.open_node():
        counter = await otpy.spawn(Counter, 10, name="counter")
        print("get ->", await counter.call("get"))

        await counter.cast(("add", 5))
        print("after cast add 5, get ->", await counter.call("get"))

        async def waiter(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()
            value = await counter.call(("wait_for", 20))
            print(f"deferred reply: count reached 20 (count={value})")

        async with anyio.create_task_group() as tg:
            # call() queues its message before it first yields, so once start()
            # returns the call is in the mailbox, ahead of the casts below.
            await tg.start(waiter)
            for _ in range(3):
                await counter.cast(("add", 2))  # 21 after the third
        print("final get ->", await otpy.named("counter").call("get"))
        print("stop ->", await counter.stop())


if __name__ == "__main__":
    anyio.run(main)
