"""A store a supervision tree owns: named when the tree is built, opened by an actor in it.

A tree is a spec, built before anything runs, but opening SQLite is asynchronous.
So a tree names its store with a handle (:class:`Owned`) that the code using the
store takes at construction, and a :class:`StoreKeeper` actor, put before that code
in a ``rest_for_one`` tree, opens the file in ``init`` and closes it in
``terminate``. Everything using the handle starts after the keeper and restarts if
it does, so it never sees the handle closed; if it did, it would get the store's
typed error, not a hang. The dead-letter store's ``StoreHandle`` came first; the
outbox's and the journal's handles are built on this.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, final

import anyio

from .._core import Actor

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Closable", "Owned", "StoreKeeper"]


class Closable(Protocol):
    """A store that can be closed."""

    async def aclose(self) -> None:
        """Close it."""
        ...


S = TypeVar("S", bound=Closable)


class Owned(Generic[S]):
    """A store named by its file, opened and closed by a :class:`StoreKeeper`.

    Subclasses say how to open the store (:meth:`open_store`), which error a call
    made while it is closed raises (:meth:`closed_error`), and, if the store needs
    it, what the keeper runs beside it (:meth:`housekeeping`).
    """

    kind = "store"
    """What the store is, for messages (``"outbox"``, ``"journal"``)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._store: S | None = None

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "closed"
        return f"<{type(self).__name__} {self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The store's file."""
        return self._path

    @property
    def is_open(self) -> bool:
        """Whether the keeper has the store open."""
        return self._store is not None

    @property
    def store(self) -> S:
        """The open store.

        Raises:
            Exception: :meth:`closed_error`'s, while the keeper is not running (not
                started yet, or restarting).
        """
        store = self._store
        if store is None:
            raise self.closed_error(
                f"not open: its keeper is not running; put {type(self).__name__}.child_spec() "
                f"before everything that uses the {self.kind} in a rest_for_one tree"
            )
        return store

    def closed_error(self, problem: str) -> Exception:
        """The typed error a call made while the store is closed raises."""
        raise NotImplementedError

    async def open_store(self) -> S:
        """Open the store (its directory exists by then)."""
        raise NotImplementedError

    async def housekeeping(self) -> None:
        """What the keeper runs beside the open store until it stops; by default, nothing."""

    def keeper_status(self) -> Mapping[str, object]:
        """What the keeper's ``format_status`` shows: the file, never a record."""
        return {"path": self._path, "open": self.is_open}

    async def open(self) -> None:
        """Open the store now (the keeper does this), creating its directory if missing."""
        directory = os.path.dirname(self._path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        store = await self.open_store()
        previous, self._store = self._store, store
        if previous is not None:  # pragma: no cover - a keeper closes before reopening
            await previous.aclose()

    async def aclose(self) -> None:
        """Close the store now (its keeper does this when it stops). Idempotent."""
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()


@final
class StoreKeeper(Actor):
    """Opens an :class:`Owned` store in ``init``, runs its housekeeping, closes it in ``terminate``.

    If opening fails (a locked, foreign or newer file), ``init`` fails with the typed
    error and the tree does not start: the message says what to do. If the
    housekeeping fails, the keeper crashes and its supervisor restarts it (closing
    and opening the file again), and with ``rest_for_one`` what uses the store too.
    """

    handle: Owned[Any]

    async def init(self, handle: Owned[Any]) -> None:
        """Open *handle*'s store and start its housekeeping."""
        await handle.open()
        self.handle = handle
        self._housekeeping = anyio.CancelScope()
        self.start_task(self._tend, name=f"{self.ref.label} housekeeping")

    async def _tend(self) -> None:
        with self._housekeeping:
            await self.handle.housekeeping()

    async def terminate(self, reason: object) -> None:
        """Stop the housekeeping, then close the store (what uses it has stopped first)."""
        self._housekeeping.cancel("the store is closing")
        await self.handle.aclose()

    def format_status(self) -> Mapping[str, object]:
        """The file and whether it is open; never a record."""
        return self.handle.keeper_status()
