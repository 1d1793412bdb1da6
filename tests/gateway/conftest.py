"""The outbox stores every outbox test runs against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from otpy.gateway._outbox_memory import MemoryOutboxStore
from otpy.gateway._outbox_sqlite import SQLiteOutboxStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from otpy.gateway._outbox import OutboxStore


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OutboxStore]:
    """Each outbox store, open for the test and closed after it."""
    opened: OutboxStore
    if request.param == "sqlite":
        opened = await SQLiteOutboxStore.open(tmp_path / "outbox.db", synchronous="OFF")
    else:
        opened = MemoryOutboxStore()
    try:
        yield opened
    finally:
        await opened.aclose()
