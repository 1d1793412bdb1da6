"""A store a supervision tree owns: opened by an actor, closed when that actor stops.

A tree is a spec, built before anything runs, but opening SQLite is asynchronous.
So a tree names its store with :func:`sqlite_store`, which returns a
:class:`StoreHandle`: a :class:`DeadLetterStore` whose file is opened by the
:class:`StoreOwner` actor that :func:`~otpy.deadletter.dead_letter_children` puts
first in the tree, and closed when that actor stops. Everything that uses the
handle starts after the owner (``rest_for_one``) and restarts if it does, so it
never sees the handle closed; if it did, it would get a typed error, not a hang.

:class:`DeadLetterRouter` is the actor that routes the node's in-memory dead-letter
stream (poison and undeliverable messages) to the writer for as long as it runs.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from .._check import count
from .._core import Actor
from .._durable import DEFAULT_MAX_BATCH as STORE_MAX_BATCH
from .._durable import DEFAULT_MAX_PENDING as STORE_MAX_PENDING
from .._exceptions import DeadLetterStoreError
from .._supervision import ChildSpec
from ._capture import DEFAULT_REASONS, encode_payload, route_dead_letters
from ._sqlite import SQLiteDeadLetterStore
from ._store import ALL, RetentionPolicy
from ._writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_NAME,
    WRITER_MAILBOX,
    DeadLetters,
    DeadLetterWriter,
    RetentionSweeper,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterable, Sequence

    from .._core import MailboxConfig
    from ._capture import Encoder
    from ._guard import Decision, LedgerEntry, Reclaimed
    from ._record import DeadLetter, ReplayOutcome
    from ._store import (
        DeadLetterFilter,
        DeadLetterStore,
        Page,
        StoreStatistics,
        SweepResult,
    )

__all__ = [
    "DeadLetterRouter",
    "StoreHandle",
    "StoreOwner",
    "dead_letter_children",
    "sqlite_store",
]


@attrs.frozen(kw_only=True)
class _SQLiteOptions:
    path: str
    synchronous: str = "FULL"
    inline_limit: int = 64 * 1024
    busy_timeout: float = 5.0
    clock: Callable[[], float] = time.time
    max_batch: int = STORE_MAX_BATCH
    max_pending: int = STORE_MAX_PENDING


@final
class StoreHandle:
    """A :class:`DeadLetterStore` opened and closed by a :class:`StoreOwner` in the tree.

    Make one with :func:`sqlite_store` and pass it wherever a store goes
    (:func:`~otpy.deadletter.dead_letter_children`,
    :func:`~otpy.deadletter.replay_supervisor`). Every method raises
    :exc:`~otpy.DeadLetterStoreError` while the owner is not running.

    Attributes:
        store_kind: ``"sqlite"``, what spans and statistics report as the kind of
            store (``otpy.deadletter.store``), rather than this wrapper's class name.
    """

    store_kind: Final = "sqlite"

    def __init__(self, options: _SQLiteOptions) -> None:
        self.options = options
        self._store: SQLiteDeadLetterStore | None = None

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "closed"
        return f"<StoreHandle {self.options.path!r} {state}>"

    @property
    def path(self) -> str:
        """The store's file."""
        return self.options.path

    @property
    def is_open(self) -> bool:
        """Whether the owner has the store open."""
        return self._store is not None

    @property
    def store(self) -> SQLiteDeadLetterStore:
        """The open store.

        Raises:
            DeadLetterStoreError: its owner is not running (not started yet, or
                restarting).
        """
        if self._store is None:
            raise DeadLetterStoreError(
                self.options.path,
                "not open: its StoreOwner is not running; put dead_letter_children(...) "
                "first in a rest_for_one tree so everything using it starts after it",
            )
        return self._store

    @property
    def groups_commits(self) -> bool:
        """Whether the wrapped store commits concurrent ``add_many`` calls together."""
        return getattr(self.store, "groups_commits", False) is True

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """See :meth:`DeadLetterStore.add_many`."""
        return await self.store.add_many(records, timeout=timeout)

    async def get(self, record_id: str) -> DeadLetter:
        """See :meth:`DeadLetterStore.get`."""
        return await self.store.get(record_id)

    async def list(
        self, where: DeadLetterFilter = ALL, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """See :meth:`DeadLetterStore.list`."""
        return await self.store.list(where, limit=limit, cursor=cursor)

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """See :meth:`DeadLetterStore.count`."""
        return await self.store.count(where)

    async def archive(self, where: DeadLetterFilter) -> int:
        """See :meth:`DeadLetterStore.archive`."""
        return await self.store.archive(where)

    async def purge(self, where: DeadLetterFilter) -> int:
        """See :meth:`DeadLetterStore.purge`."""
        return await self.store.purge(where)

    async def statistics(self) -> StoreStatistics:
        """See :meth:`DeadLetterStore.statistics`."""
        return await self.store.statistics()

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """See :meth:`DeadLetterStore.sweep`."""
        return await self.store.sweep(policy)

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """See :meth:`DeadLetterStore.begin_replay`."""
        return await self.store.begin_replay(record_id, lease=lease, force=force)

    async def start_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """See :meth:`ReplayStarter.start_replay`."""
        return await self.store.start_replay(record_id, lease=lease, force=force)

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """See :meth:`DeadLetterStore.mark_started`."""
        return await self.store.mark_started(record, force=force)

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """See :meth:`DeadLetterStore.finish`."""
        return await self.store.finish(record_id, outcome, error=error)

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """See :meth:`DeadLetterStore.reclaim_expired`."""
        return await self.store.reclaim_expired()

    async def resolve(self, record_id: str, *, succeeded: bool) -> DeadLetter:
        """See :meth:`DeadLetterStore.resolve`."""
        return await self.store.resolve(record_id, succeeded=succeeded)

    async def ledger(self, key: str) -> LedgerEntry | None:
        """See :meth:`DeadLetterStore.ledger`."""
        return await self.store.ledger(key)

    async def aclose(self) -> None:
        """Close the store now (its owner normally does this when it stops)."""
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()


def sqlite_store(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    inline_limit: int = 64 * 1024,
    busy_timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
    max_batch: int = STORE_MAX_BATCH,
    max_pending: int = STORE_MAX_PENDING,
) -> StoreHandle:
    """Name a SQLite dead-letter store for a tree to own (the default store of a node).

    The file is opened when the tree's :class:`StoreOwner` starts (its directory is
    created if missing) and closed when it stops. The options are
    :meth:`SQLiteDeadLetterStore.open`'s, checked now so a bad one fails when the
    tree is built::

        store = sqlite_store("var/dead-letters.db")
        root = SupervisorSpec(
            id="node",
            # rest_for_one: the store and its writer start first; if they restart,
            # everything that captures restarts too.
            flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE),
            children=[*dead_letter_children(store), app],
        )

    Raises:
        ValueError: an option is invalid.
    """
    mode = str(synchronous).upper()
    if mode not in ("FULL", "NORMAL", "OFF"):
        raise ValueError(f"synchronous must be one of 'FULL', 'NORMAL', 'OFF', got {synchronous!r}")
    if inline_limit < 0:
        raise ValueError(f"inline_limit must be >= 0, got {inline_limit}")
    if busy_timeout < 0:
        raise ValueError(f"busy_timeout must be >= 0, got {busy_timeout}")
    count(max_batch, "max_batch", owner="sqlite_store")
    count(max_pending, "max_pending", owner="sqlite_store")
    return StoreHandle(
        _SQLiteOptions(
            path=os.fspath(path),
            synchronous=mode,
            inline_limit=inline_limit,
            busy_timeout=busy_timeout,
            clock=clock,
            max_batch=max_batch,
            max_pending=max_pending,
        )
    )


@final
class StoreOwner(Actor):
    """Opens a :class:`StoreHandle`'s file in ``init`` and closes it in ``terminate``.

    If opening fails (a locked, foreign or newer file), ``init`` fails with the typed
    error and the tree does not start: the message says what to do.
    """

    async def init(self, handle: StoreHandle) -> None:
        """Open *handle*'s store."""
        options = handle.options
        directory = os.path.dirname(options.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        handle._store = await SQLiteDeadLetterStore.open(
            options.path,
            synchronous=options.synchronous,
            inline_limit=options.inline_limit,
            busy_timeout=options.busy_timeout,
            clock=options.clock,
            max_batch=options.max_batch,
            max_pending=options.max_pending,
        )
        self.handle = handle

    async def terminate(self, reason: object) -> None:
        """Close the store."""
        await self.handle.aclose()

    def format_status(self) -> dict[str, object]:
        """Show the file, never records."""
        return {"path": self.handle.path, "open": self.handle.is_open}


@final
class DeadLetterRouter(Actor):
    """Routes the node's dead-letter stream to the writer while it runs.

    ``init(writer_name, reasons, encoder)``: poison messages (from actors with
    ``dead_letter_on_crash``) and undeliverable messages become stored records;
    stopping the router removes the route.
    """

    async def init(
        self,
        writer: str,
        reasons: Iterable[str] = DEFAULT_REASONS,
        encoder: Encoder = encode_payload,
    ) -> None:
        """Route to the writer registered as *writer*."""
        self.client = DeadLetters(writer, node=self.node)
        self._remove = route_dead_letters(
            self.node.dead_letters, self.client, reasons=reasons, encoder=encoder
        )

    async def terminate(self, reason: object) -> None:
        """Remove the route."""
        self._remove()

    def format_status(self) -> dict[str, Any]:
        """Show the client's counters."""
        return attrs.asdict(self.client.statistics())


# -- child specs -----------------------------------------------------------------------


def dead_letter_children(
    store: DeadLetterStore,
    *,
    name: str = DEFAULT_NAME,
    retention: RetentionPolicy | None = None,
    sweep: bool = True,
    route: bool = False,
    route_reasons: Iterable[str] = DEFAULT_REASONS,
    encoder: Encoder = encode_payload,
    max_batch: int = DEFAULT_MAX_BATCH,
    mailbox: MailboxConfig = WRITER_MAILBOX,
) -> list[ChildSpec]:
    """Return the child specs of a node's dead-letter service, in start order.

    - a :class:`StoreOwner`, if *store* is a :class:`StoreHandle` (from
      :func:`sqlite_store`), named ``"<name>.store"``;
    - the :class:`~otpy.deadletter.DeadLetterWriter`, named *name*;
    - the :class:`~otpy.deadletter.RetentionSweeper`, ``"<name>-retention"`` (if *sweep*);
    - a :class:`DeadLetterRouter`, ``"<name>-router"`` (if *route*), storing the
      node's poison and undeliverable messages.

    Put them first in a ``rest_for_one`` tree, so everything that captures starts
    after the writer and restarts if it does::

        # rest_for_one: the dead-letter store and writer start first; if they
        # restart, everything that sends to them restarts too.
        root = SupervisorSpec(
            id="node",
            flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE),
            children=[*dead_letter_children(sqlite_store("var/dead.db")), app],
        )

    Args:
        store: a store the caller opens and closes, or a :class:`StoreHandle` the
            tree owns.
        name: the writer's registered name; the others derive from it.
        retention: the sweeper's policy; :class:`RetentionPolicy` defaults if ``None``.
        sweep: whether to include the sweeper.
        route: whether to route the node's dead-letter stream to the store.
        route_reasons: which stream reasons the router stores.
        encoder: how the router encodes message bodies.
        max_batch: records per transaction, about.
        mailbox: the writer's mailbox; its restart stash holds as many messages.
    """
    children: list[ChildSpec] = []
    if isinstance(store, StoreHandle):
        children.append(
            ChildSpec(id=f"{name}.store", start=StoreOwner, args=(store,), name=f"{name}.store")
        )
    children.append(
        ChildSpec(
            id=name,
            start=DeadLetterWriter,
            args=(store, max_batch),
            name=name,
            mailbox=mailbox,
            stash_capacity=mailbox.capacity,
        )
    )
    if sweep:
        children.append(
            ChildSpec(
                id=f"{name}-retention",
                start=RetentionSweeper,
                args=(store, retention or RetentionPolicy()),
                name=f"{name}-retention",
            )
        )
    if route:
        children.append(
            ChildSpec(
                id=f"{name}-router",
                start=DeadLetterRouter,
                args=(name, frozenset(route_reasons), encoder),
                name=f"{name}-router",
            )
        )
    return children
