"""What the journal tests share: a time, an entry maker."""

from __future__ import annotations

from typing import Any

from otpy.ingest import JournalEntry

T0 = 1_700_000_000.0
TTL = 60.0


def entry(
    idempotency_key: str | None = None,
    *,
    route: str = "orders",
    now: float = T0,
    body: bytes = b"{}",
    **kw: Any,
) -> JournalEntry:
    """A new entry on *route* received at *now*, with *idempotency_key*."""
    return JournalEntry.new(route=route, body=body, now=now, idempotency_key=idempotency_key, **kw)
