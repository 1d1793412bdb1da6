"""What the outbox tests share: a time, a lease, a message maker."""

from __future__ import annotations

from typing import Any

from otpy.gateway._outbox import OutboxMessage

T0 = 1_700_000_000.0
LEASE = 30.0


def message(
    key: str = "k", *, now: float = T0, destination: str = "hooks", **kw: Any
) -> OutboxMessage:
    """A new message of *key*, enqueued at *now*."""
    return OutboxMessage.new(destination=destination, key=key, body=b"{}", now=now, **kw)


def ids(messages: list[OutboxMessage]) -> list[str]:
    """The ids of *messages*, in their order."""
    return [m.id for m in messages]
