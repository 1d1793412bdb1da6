"""Crash injection: make an actor crash on cue, as if one of its handlers had raised."""

from __future__ import annotations

from typing import Any

from .._check import number
from .._core import Actor, ActorRef, post_callback
from .._supervision import ChildSpec, Restart


class CrashInjected(Exception):
    """The exception :func:`inject_crash` and :class:`CrashAfter` crash actors with."""


def inject_crash(ref: ActorRef, error: BaseException | None = None) -> None:
    """Make *ref* crash with *error* (default :class:`CrashInjected`) at its next message.

    The crash happens inside the actor's own task, in mailbox order, exactly as if
    a handler had raised.
    """
    label = ref.label

    def crash() -> None:
        # Built here, not captured: a captured exception would sit in a reference
        # cycle (closure -> exception -> traceback -> frame) after the crash.
        raise error if error is not None else CrashInjected(f"crash injected into {label}")

    post_callback(ref, crash)


class CrashAfter(Actor):
    """An actor that crashes ``delay`` seconds after each start; answers ``"ping"`` calls."""

    async def init(self, delay: float) -> None:
        self.delay = delay
        self.send_after(delay, "crash")

    async def handle_info(self, message: Any) -> None:
        if message == "crash":
            raise CrashInjected(f"{self.ref.label} crashed after {self.delay:g}s")
        await super().handle_info(message)

    async def handle_call(self, message: Any, caller: Any) -> Any:
        return message


def crash_after(
    delay: float, *, id: str, restart: Restart = Restart.PERMANENT, **options: Any
) -> ChildSpec:
    """Return a child spec whose actor crashes *delay* seconds after every start.

    Raises:
        InvalidArgument: *delay* is not a finite number of seconds >= 0.
    """
    delay = number(delay, "delay", owner="crash_after", positive=False, unit=" of seconds")
    return ChildSpec(id=id, start=CrashAfter, args=(delay,), restart=restart, **options)
