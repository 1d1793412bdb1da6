"""The journal stores every journal test runs against, on both anyio backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from otpy.ingest import MemoryJournalStore, SQLiteJournalStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from otpy.ingest import JournalStore

    OpenStore = Callable[..., Awaitable[JournalStore]]


@pytest.fixture(params=["sqlite", "memory"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens each journal store with the options given; closes them all after the test."""
    opened: list[JournalStore] = []

    async def open_one(**options: Any) -> JournalStore:
        store: JournalStore
        if request.param == "sqlite":
            path = tmp_path / f"journal-{len(opened)}.db"
            store = await SQLiteJournalStore.open(path, synchronous="OFF", **options)
        else:
            store = MemoryJournalStore(**options)
        opened.append(store)
        return store

    try:
        yield open_one
    finally:
        for store in opened:
            await store.aclose()
