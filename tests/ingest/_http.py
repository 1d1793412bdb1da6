"""What the HTTP ingest tests share: a wall clock, routes, an app and a client on it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from otpy.ingest import IngestApp, IngestRoute, JournalEntry, MemoryJournalStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from otpy.ingest import Accepted

T0 = 1_700_000_000.0


def clock() -> float:
    """The wall clock the tests' apps and journals read: always T0."""
    return T0


def make_app(
    *routes: IngestRoute, journal: Any = None, ready: bool = True, **options: Any
) -> IngestApp:
    """An app over a memory journal with *routes* (one ``orders`` route by default), ready."""
    app = IngestApp(
        MemoryJournalStore(clock=clock) if journal is None else journal,
        routes or [IngestRoute(name="orders")],
        clock=clock,
        **options,
    )
    if ready:
        app.set_ready()
    return app


@contextlib.asynccontextmanager
async def client(app: IngestApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling *app* in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


class Gate:
    """A memory journal whose ``accept`` waits for ``release`` once ``entered`` is set."""

    def __init__(self) -> None:
        self.store = MemoryJournalStore(clock=clock)
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.calls = 0

    async def accept(
        self, entries: Sequence[JournalEntry], *, now: float | None = None, timeout: Any = None
    ) -> list[Accepted]:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        return await self.store.accept(entries, now=now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Counting:
    """A memory journal that counts its ``accept`` calls."""

    def __init__(self, **options: Any) -> None:
        self.store = MemoryJournalStore(clock=clock, **options)
        self.calls = 0

    async def accept(
        self, entries: Sequence[JournalEntry], *, now: float | None = None, timeout: Any = None
    ) -> list[Accepted]:
        self.calls += 1
        return await self.store.accept(entries, now=now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
