"""Small supervision trees for the CLI and node-process tests (``otpy run trees:NAME``).

The subprocess tests run from ``tests/``, so ``otpy run`` imports this module by the
name ``trees``, as it would a project's own module.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

import otpy


class Idle(otpy.Actor):
    """Does nothing; answers calls with the message."""

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """Echo."""
        return message


class SlowStop(otpy.Actor):
    """Never finishes ``terminate``: only a forced stop gets rid of it."""

    async def terminate(self, reason: object) -> None:
        """Say so on stderr, then wait forever."""
        sys.stderr.write("trees: slow terminate started\n")
        sys.stderr.flush()
        await anyio.sleep_forever()


class FailsInit(otpy.Actor):
    """Cannot start."""

    async def init(self) -> None:
        """Fail."""
        raise RuntimeError("the database is not there")


class FinishesSoon(otpy.Actor):
    """A job that takes 50 ms, then stops normally."""

    async def init(self) -> None:
        """Schedule the end of the job.

        Not at once: a child that exits before its supervisor has monitored it is
        reported with reason ``noproc`` (see the note on ``finishes``).
        """
        self.send_after(0.05, "finished")

    async def handle_info(self, message: Any) -> None:
        """Stop normally when the job is done."""
        if message == "finished":
            self.stop()
        else:
            await super().handle_info(message)


# one_for_one: the workers are independent; the default intensity, nothing crashes.
quick = otpy.SupervisorSpec(
    id="quick",
    children=[otpy.ChildSpec(id="a", start=Idle), otpy.ChildSpec(id="b", start=Idle)],
)

# one_for_one: "slow" stops first (reverse order) and never finishes its terminate.
slow_stop = otpy.SupervisorSpec(
    id="slow_stop",
    children=[
        otpy.ChildSpec(id="idle", start=Idle),
        otpy.ChildSpec(id="slow", start=SlowStop, shutdown=otpy.Shutdown.INFINITY),
    ],
)

# one_for_one: the only child cannot start, so the tree cannot either.
fails_to_start = otpy.SupervisorSpec(
    id="fails_to_start", children=[otpy.ChildSpec(id="db", start=FailsInit)]
)

# one_for_one with auto_shutdown: the tree is done when its significant child is.
# (Its job must outlive its own start: the supervisor monitors a child only after the
# spawn returns, so a child that stops in handle_continue right after init is seen
# exiting with "noproc", treated as a crash, and restarted until intensity runs out.)
finishes = otpy.SupervisorSpec(
    id="finishes",
    flags=otpy.SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ANY_SIGNIFICANT),
    children=[
        otpy.ChildSpec(
            id="job", start=FinishesSoon, restart=otpy.Restart.TRANSIENT, significant=True
        )
    ],
)

# dynamic: starts empty.
pool = otpy.DynamicSupervisorSpec(id="pool", child=otpy.ChildSpec(id="worker", start=Idle))

not_a_spec = 42


def build() -> otpy.SupervisorSpec:
    """Return :data:`quick`, as a factory target would."""
    return quick


def needs_arguments(size: int) -> otpy.SupervisorSpec:
    """A factory otpy cannot call: it needs an argument."""
    return quick


async def build_async() -> otpy.SupervisorSpec:
    """A factory otpy cannot use: it is async."""
    return quick


def build_wrong() -> object:
    """A factory returning something that is not a spec."""
    return "root"


def build_broken() -> otpy.SupervisorSpec:
    """A factory that raises."""
    raise KeyError("settings")
