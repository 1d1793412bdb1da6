"""The gateway as a supervision tree: an outbox keeper, then one actor per destination.

Each destination's delivery loop runs as a task of its own actor
(:meth:`~otpy.Actor.start_task`), so a crash in it restarts that destination alone
(``one_for_one``), and a stop drains it: it claims nothing more, lets its attempts in
flight settle within the child's ``shutdown``, and what is cancelled after that goes
back to the outbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from .._core import Actor, is_normal_exit
from .._redact import get_logger
from .._supervision import (
    Backoff,
    ChildSpec,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._gateway import Gateway, _Worker

__all__ = ["DestinationWorker", "OutboxKeeper", "gateway_supervisor_spec"]

logger = get_logger("otpy.gateway")


@final
class OutboxKeeper(Actor):
    """Recovers the outbox at the tree's first start; then reclaims expired leases and samples it."""

    gateway: Gateway

    async def init(self, gateway: Gateway) -> None:
        """Mark the gateway running, recover the outbox once, start the housekeeping."""
        gateway.claim_running(self.ref)
        self.gateway = gateway
        try:
            await gateway.recover_once()
        except BaseException:
            gateway.release_running()
            raise
        self.start_task(gateway.housekeeping, name=f"{self.ref.label} housekeeping")

    async def terminate(self, reason: object) -> None:
        """The tree is stopping (the destinations have stopped first)."""
        self.gateway.release_running()

    def format_status(self) -> Mapping[str, object]:
        """Which gateway; never a message."""
        return {"gateway": repr(self.gateway)}


@final
class DestinationWorker(Actor):
    """Runs one destination's delivery loop; a stop drains it."""

    worker: _Worker

    async def init(self, gateway: Gateway, destination: str) -> None:
        """Take the destination's loop (one actor at a time) and start it."""
        worker = gateway._worker(destination)
        owner = worker.owner
        if owner is not None and owner.is_alive:
            raise RuntimeError(
                f"destination {destination!r} is already delivered by {owner.label}: "
                "a gateway runs in one tree at a time"
            )
        worker.owner = self.ref
        self.worker = worker
        self.start_task(worker.run, name=f"{self.ref.label} delivery")

    async def terminate(self, reason: object) -> None:
        """On a stop, claim nothing more and wait for the attempts in flight to settle.

        The supervisor's ``shutdown`` bounds the wait: past it the attempts still
        running are cancelled, and their messages go back to the outbox.
        """
        worker = self.worker
        if is_normal_exit(reason):
            worker.drain()
            await worker.stopped.wait()
        if worker.owner is self.ref:
            worker.owner = None

    async def handle_call(self, message: Any, caller: Any) -> Any:
        """``"statistics"``: the destination's :class:`~otpy.gateway.DeliveryStatistics`."""
        if message == "statistics":
            return self.worker.statistics()
        return await super().handle_call(message, caller)

    def format_status(self) -> Mapping[str, object]:
        """The destination's counters; never a message."""
        stats = self.worker.statistics()
        return {
            "destination": self.worker.name,
            "disabled": stats.disabled,
            "in_flight": stats.in_flight,
            "sent": stats.sent,
            "succeeded": stats.succeeded,
            "retried": stats.retried,
            "dead_lettered": stats.dead_lettered,
        }


def gateway_supervisor_spec(
    gateway: Gateway,
    destinations: Sequence[str],
    *,
    name: str,
    shutdown: float,
    intensity: int,
    period: float,
    backoff: Backoff | None,
) -> SupervisorSpec:
    """Build the tree :meth:`Gateway.supervisor_spec` documents."""
    children = [
        ChildSpec(id=f"{name}.outbox", start=OutboxKeeper, args=(gateway,), name=f"{name}.outbox")
    ]
    children.extend(
        ChildSpec(
            id=f"{name}.{destination}",
            start=DestinationWorker,
            args=(gateway, destination),
            name=f"{name}.{destination}",
            shutdown=shutdown,
            backoff=backoff,
        )
        for destination in destinations
    )
    # one_for_one: destinations are independent; one that crashes restarts alone
    # and the others keep delivering. The keeper's restart does not recover again.
    return SupervisorSpec(
        id=name,
        name=name,
        children=children,
        flags=SupervisorFlags(strategy=Strategy.ONE_FOR_ONE, intensity=intensity, period=period),
    )
