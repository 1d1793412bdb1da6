"""Replay: re-send dead letters through handlers, at most once per idempotency key (DL-6..DL-10).

The replay supervisor (``one_for_one``) runs ``partitions`` workers and a reclaimer.
The workers are the :class:`~otpy.pressure.PartitionWorker` actors of a
:class:`~otpy.pressure.PartitionedQueue` (the pressure package's building block): a request
goes to partition ``stable_hash(record.key) % partitions``, so the replays of one key
run in order, one at a time, while other partitions run concurrently. Keys that share
a partition share its queue, as with Broadway's ``partition_by``; each partition
holds up to ``capacity`` waiting requests, with the queue's pressure levels.

One replay, in the worker (see :func:`decide_replay` in ``_guard.py`` for the guard):

1. ``store.start_replay`` takes a lease and writes the ledger entry ``pending`` for
   the record's replay key in one transaction, and returns the record with its
   payload; or it answers ``rejected_archived`` / ``in_progress`` /
   ``already_replayed`` / ``in_doubt`` without a side effect;
2. the handler runs, within ``handler_timeout``;
3. ``store.finish`` records the outcome and commits (``replayed``), clears
   (``failed``) or keeps (``in_doubt``) the ledger entry in one transaction.

Two commits per replay, and the SQLite store shares each with the other partitions'
steps waiting at the same moment (one fsync for all of them). A worker dying after
1 and before 3 leaves the key pending: after the lease the record is ``in_doubt``,
and so is every other record carrying the key; none is re-sent automatically until
an operator resolves the key (``runbooks/replay.md``).

A store without ``start_replay`` (:class:`~otpy.deadletter.ReplayStarter` is
optional, for stores written before it) is driven in three steps instead:
``store.begin_replay`` takes the lease, ``store.get`` loads the payload and
``store.mark_started`` writes the pending entry. A worker dying between the first
and the third leaves a lease and no ledger entry: once the lease expires the
reclaimer marks the record failed and resubmits it. If ``mark_started`` refuses
(another record with the same key got there first), nothing is sent.

This module is the configuration and the client; it builds the supervisor from the
actors in ``_replay_worker.py`` (which never imports this module), and both speak
the messages of ``_replay_messages.py``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, TypeAlias, final

import anyio
import anyio.lowlevel
import attrs

from .._check import MAX_COUNT, count, number, short
from .._check import name as check_name
from .._core import current_node
from .._exceptions import (
    DeadLetterError,
    DeadLetterNotFound,
    InvalidArgument,
    InvalidChildSpec,
    InvalidReplayHandler,
    NoReplayHandler,
    PressureError,
    single_error,
)
from .._partition import partition_of
from .._supervision import (
    ChildSpec,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
    open_supervisor,
)
from ..pressure import PartitionedQueue
from ._record import Source, current_trace_context
from ._replay_messages import RECLAIM_NOW, ReplayJob, ReplayRequest, ReplayResult
from ._replay_worker import Reclaimer, ReplayHandler, ReplayRunner, crash_worker
from ._store import DeadLetterFilter, DeadLetterStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._guard import Reclaimed

__all__ = [
    "MAX_PARTITIONS",
    "ReplayConfig",
    "ReplayHandlers",
    "Replayer",
    "check_handler",
    "is_async_callable",
    "open_replayer",
    "replay_supervisor",
]


# -- configuration ------------------------------------------------------------------


ReplayHandlers: TypeAlias = Mapping[Source, ReplayHandler] | Mapping[str, ReplayHandler]
"""Handlers by source: ``{Source.OUTBOUND: resend}`` or ``{"outbound": resend}``."""

_SOURCES = frozenset(source.value for source in Source)

MAX_PARTITIONS: Final = 1024
"""The most replay workers a :class:`ReplayConfig` runs: each is an actor started up
front, and replays of one store are bounded by its write transactions long before."""


def is_async_callable(handler: object) -> bool:
    """Return whether calling *handler* returns a coroutine without running its body first.

    An ``async def`` function or method, an object whose ``__call__`` is one, or a
    :func:`functools.partial` of either. A plain function is not one, even if it
    returns an awaitable: its body runs (and may send) when it is called.
    """
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    if inspect.isroutine(handler) or isinstance(handler, type):
        return False
    return inspect.iscoroutinefunction(inspect.getattr_static(type(handler), "__call__", None))


def check_handler(name: str, source: str, handler: object) -> None:
    """Refuse a replay handler for *source* that is not an async callable.

    Args:
        name: the replay supervisor's name, for the message.
        source: the source the handler is registered for.
        handler: the handler.

    Raises:
        InvalidReplayHandler: *handler* is not callable, or not async (a TypeError).
    """
    if not callable(handler) or not is_async_callable(handler):
        raise InvalidReplayHandler(name, source, handler)


def _to_handlers(value: ReplayHandlers) -> Mapping[str, ReplayHandler]:
    if not isinstance(value, Mapping):
        raise InvalidChildSpec(
            "replay",
            f"handlers must be a mapping of source to handler, e.g. {{Source.OUTBOUND: resend}}, "
            f"got {short(value)}",
        )
    return types.MappingProxyType({str(key): handler for key, handler in value.items()})


def _positive(name: str, value: object) -> str | None:
    try:
        number(value, name)
    except InvalidArgument as exc:
        return str(exc)
    return None


@attrs.frozen(kw_only=True, eq=False)
class ReplayConfig:
    """Everything the replay supervisor and its clients share; validated when built.

    Attributes:
        store: the dead-letter store.
        handlers: a handler per :class:`~otpy.deadletter.Source`; records from a
            source without one cannot be replayed (:class:`~otpy.NoReplayHandler`).
        name: the supervisor's name; workers are ``"<name>.<i>"``, the reclaimer
            ``"<name>.reclaimer"``. Two replay supervisors on a node need two names.
        partitions: how many workers, from 1 to :data:`MAX_PARTITIONS` (1024).
        capacity: replay requests that may wait per partition (>= 1); past it a
            request gets no outcome and an error saying the queue is full.
        handler_timeout: seconds a handler may run; past it the record is ``in_doubt``.
        lease_margin: the lease is ``handler_timeout + lease_margin`` seconds, so a
            live worker finishes its store writes well within it; a dead worker's
            record is reclaimed once it runs out.
        reclaim_interval: seconds between the reclaimer's sweeps for expired leases.
        intensity: worker restarts allowed within ``period`` before the replay
            supervisor gives up and its parent decides.
        period: the restart window, seconds.

    Raises:
        InvalidChildSpec: a value is out of range, or a handler key is not a source.
        InvalidReplayHandler: a handler is not an async callable (also a
            ``TypeError``; a synchronous one would send, then be marked failed and
            send again on the next replay).

    .. versionadded:: 0.1.0
    """

    store: DeadLetterStore
    handlers: Mapping[str, ReplayHandler] = attrs.field(converter=_to_handlers)
    name: str = "replay"
    partitions: int = 4
    capacity: int = 1000
    handler_timeout: float = 30.0
    lease_margin: float = 30.0
    reclaim_interval: float = 5.0
    intensity: int = 10
    period: float = 60.0
    _queue: PartitionedQueue[ReplayJob] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise InvalidChildSpec(
                name if isinstance(name, str) else short(name),
                "the replay supervisor's name must not be empty",
            )
        if (
            not isinstance(self.partitions, int)
            or isinstance(self.partitions, bool)
            or not 1 <= self.partitions <= MAX_PARTITIONS
        ):
            raise InvalidChildSpec(
                name,
                f"partitions must be an integer from 1 to {MAX_PARTITIONS}, "
                f"got {short(self.partitions)}",
            )
        try:
            check_name(name)
        except InvalidArgument as exc:
            raise InvalidChildSpec(name, str(exc)) from None
        if not isinstance(self.store, DeadLetterStore):
            raise InvalidChildSpec(
                name,
                f"store must be a dead-letter store (SQLiteDeadLetterStore, "
                f"MemoryDeadLetterStore), got {short(self.store)}",
            )
        for field, maximum in (("partitions", MAX_PARTITIONS), ("capacity", MAX_COUNT)):
            try:
                count(getattr(self, field), field, maximum=maximum)
            except InvalidArgument as exc:
                raise InvalidChildSpec(name, str(exc)) from None
        for field in ("handler_timeout", "lease_margin", "reclaim_interval"):
            problem = _positive(field, getattr(self, field))
            if problem is not None:
                raise InvalidChildSpec(name, problem)
        SupervisorFlags(intensity=self.intensity, period=self.period)
        if not self.handlers:
            raise InvalidChildSpec(
                name, "handlers is empty: register one per source, e.g. {Source.OUTBOUND: resend}"
            )
        known = ", ".join(source.value for source in Source)
        for key, handler in self.handlers.items():
            if key not in _SOURCES:
                raise InvalidChildSpec(name, f"handler key {key!r} is not a source ({known})")
            check_handler(name, key, handler)
        queue: PartitionedQueue[ReplayJob] = PartitionedQueue(
            self.partitions, self.capacity, name=name
        )
        object.__setattr__(self, "_queue", queue)

    @property
    def queue(self) -> PartitionedQueue[ReplayJob]:
        """The replay requests, partitioned by key; watch it with a pressure monitor."""
        return self._queue

    @property
    def lease(self) -> float:
        """Seconds a worker holds a record: ``handler_timeout + lease_margin``."""
        return self.handler_timeout + self.lease_margin

    def worker_name(self, partition: int) -> str:
        """Return the registered name of the worker for *partition*."""
        return f"{self.name}.{partition}"

    @property
    def reclaimer_name(self) -> str:
        """The reclaimer's registered name."""
        return f"{self.name}.reclaimer"

    def partition_of(self, key: str) -> int:
        """Return the partition that replays records with dead-letter key *key*."""
        return partition_of(key, self.partitions)

    def supervisor_spec(self) -> SupervisorSpec:
        """Return the replay supervisor's spec: the workers, then the reclaimer.

        Put it in a tree's children (after the store's writer), or start it with
        :func:`open_replayer`.
        """
        workers = self._queue.worker_specs(
            ReplayRunner(self),
            max_demand=1,  # waiting requests stay in the queue, where pressure sees them
            on_error=crash_worker,
            # A graceful stop lets the replay in flight finish instead of leaving it
            # in doubt.
            shutdown=self.handler_timeout + 1.0,
            id_prefix=self.name,
            register=True,
        )
        reclaimer = ChildSpec(
            id=self.reclaimer_name, start=Reclaimer, args=(self,), name=self.reclaimer_name
        )
        # one_for_one: partitions are independent; a crashed worker restarts alone
        # and the others keep replaying (DL-10).
        return SupervisorSpec(
            id=self.name,
            name=self.name,
            children=[*workers, reclaimer],
            flags=SupervisorFlags(
                strategy=Strategy.ONE_FOR_ONE, intensity=self.intensity, period=self.period
            ),
        )

    def replayer(self) -> Replayer:
        """Return a client for the replay supervisor this config starts."""
        return Replayer(self)


def replay_supervisor(
    store: DeadLetterStore,
    handlers: ReplayHandlers,
    *,
    name: str = "replay",
    partitions: int = 4,
    capacity: int = 1000,
    handler_timeout: float = 30.0,
    lease_margin: float = 30.0,
    reclaim_interval: float = 5.0,
) -> SupervisorSpec:
    """Return the replay supervisor's spec; see :class:`ReplayConfig` for the options.

    Reach it with ``Replayer.from_spec(spec)``.

    .. versionadded:: 0.1.0
    """
    return ReplayConfig(
        store=store,
        handlers=handlers,
        name=name,
        partitions=partitions,
        capacity=capacity,
        handler_timeout=handler_timeout,
        lease_margin=lease_margin,
        reclaim_interval=reclaim_interval,
    ).supervisor_spec()


# -- the client ---------------------------------------------------------------------

_PAGE = 500


@final
class Replayer:
    """Sends replay requests to a running replay supervisor.

    Make one from the config that built the supervisor (``Replayer(config)``,
    ``config.replayer()``, ``Replayer.from_spec(spec)``) or get one from
    :func:`open_replayer`. Methods must run on the node that runs the supervisor.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("config",)

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"<Replayer {self.config.name!r} partitions={self.config.partitions}>"

    @classmethod
    def from_spec(cls, spec: SupervisorSpec) -> Replayer:
        """Return a client for the supervisor *spec* (made by :func:`replay_supervisor`).

        Raises:
            TypeError: *spec* is not a replay supervisor's spec.
        """
        for child in spec.children:
            if child.start is Reclaimer and child.args and isinstance(child.args[0], ReplayConfig):
                return cls(child.args[0])
        raise TypeError(f"supervisor spec {spec.id!r} was not made by replay_supervisor()")

    async def replay(
        self, record_id: str, *, force: bool = False, timeout: float | None = 60.0
    ) -> ReplayResult:
        """Replay one record through its partition's worker (DL-6..DL-9).

        A refusal by the guard (archived, in progress, already replayed, in doubt) is
        a result, not an error: call :meth:`ReplayResult.raise_for_outcome` to turn
        anything but ``replayed`` into an exception.

        Args:
            record_id: the record.
            force: send again even if already replayed or in doubt. Archived records
                and replays in progress are refused even then.
            timeout: seconds to wait for the outcome, including time queued behind
                the partition's other replays; ``None`` waits as long as it takes. A
                request still queued when it expires is never run.

        Returns:
            The result; ``outcome`` is ``None`` if the worker exited or did not answer
            in time (see :class:`ReplayResult`).

        Raises:
            DeadLetterNotFound: no such record.
            CorruptRecord: its stored row cannot be decoded; nothing was changed.
            NoReplayHandler: no handler for the record's source; nothing was changed.
        """
        await anyio.lowlevel.checkpoint()
        page = await self.config.store.list(DeadLetterFilter(ids=(record_id,)), limit=1)
        if page.corrupt:
            raise page.corrupt[0]
        if not page.records:
            raise DeadLetterNotFound(record_id)
        record = page.records[0]
        self._check_handler(str(record.source))
        reply = await self._submit(
            ReplayRequest.of(record, force=force, carrier=current_trace_context()), timeout
        )
        if isinstance(reply, DeadLetterError):
            raise reply
        return reply

    async def replay_many(
        self,
        where: DeadLetterFilter,
        *,
        force: bool = False,
        timeout: float | None = 60.0,
        on_progress: Callable[[ReplayResult], object] | None = None,
    ) -> list[ReplayResult]:
        """Replay every record matching *where*, oldest first (the CLI's bulk replay).

        The matching ids are read first, page by page. Each partition then gets its
        records one at a time, in capture order, so a key's records are replayed in
        order; the partitions run concurrently, so at most ``partitions`` replays run
        at once. Records captured after the listing are not included.

        Args:
            where: which records.
            force: as for :meth:`replay`.
            timeout: per record, as for :meth:`replay`.
            on_progress: called with each result as it arrives (a progress bar); if
                it raises, the remaining replays are cancelled.

        Returns:
            One result per record, oldest record first. A record purged meanwhile
            gets ``outcome=None`` and an error saying so; so does a stored row that
            cannot be decoded (the error is its :exc:`~otpy.CorruptRecord` message),
            which is never replayed.

        Raises:
            NoReplayHandler: some matching records have no handler for their source;
                nothing was replayed (narrow *where* by source).
            OtpyError: an otpy error *on_progress* raised, as it is (not in an
                exception group); its other exceptions come in one.
        """
        await anyio.lowlevel.checkpoint()
        carrier = current_trace_context()
        requests: list[ReplayRequest] = []
        corrupt: list[ReplayResult] = []
        cursor: str | None = None
        while True:
            page = await self.config.store.list(where, limit=_PAGE, cursor=cursor)
            requests.extend(ReplayRequest.of(r, force=force, carrier=carrier) for r in page.records)
            corrupt.extend(
                ReplayResult(record_id=exc.record_id, outcome=None, error=str(exc))
                for exc in page.corrupt
            )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        requests.reverse()  # newest first -> capture order
        for source in sorted({r.source for r in requests}):
            self._check_handler(source)
        lanes: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            lanes.setdefault(self.config.partition_of(request.key), []).append(index)
        results: list[ReplayResult | None] = [None] * len(requests)

        async def lane(indices: list[int]) -> None:
            for index in indices:
                request = requests[index]
                reply = await self._submit(request, timeout)
                if isinstance(reply, DeadLetterError):
                    reply = ReplayResult(
                        record_id=request.record_id, outcome=None, error=str(reply)
                    )
                results[index] = reply
                if on_progress is not None:
                    on_progress(reply)

        try:
            async with anyio.create_task_group() as tg:
                for indices in lanes.values():
                    tg.start_soon(lane, indices)
        except BaseExceptionGroup as group:
            error = single_error(group)
            if error is None:
                raise
            raise error from None
        done = [result for result in results if result is not None]
        return sorted([*done, *corrupt], key=lambda r: r.record_id) if corrupt else done

    async def reclaim(self, *, timeout: float | None = 60.0) -> list[Reclaimed]:
        """Sweep for expired leases now instead of at the reclaimer's next tick.

        Returns:
            What was reclaimed; records with ``resubmit`` set were sent back to
            their partitions.
        """
        reply = (
            await current_node()
            .named(self.config.reclaimer_name)
            .call(RECLAIM_NOW, timeout=timeout)
        )
        return reply  # type: ignore[no-any-return]

    def _check_handler(self, source: str) -> None:
        if source not in self.config.handlers:
            raise NoReplayHandler(source, sorted(self.config.handlers))

    async def _submit(
        self, request: ReplayRequest, timeout: float | None
    ) -> ReplayResult | DeadLetterError:
        config = self.config
        partition = config.partition_of(request.key)
        worker = config.worker_name(partition)
        if not config.queue.has_worker(partition):
            await anyio.lowlevel.checkpoint()
            detail = (
                f"replay worker {worker!r} is not running (noproc); nothing was replayed: "
                f"start replay supervisor {config.name!r} and replay again"
            )
            return ReplayResult(record_id=request.record_id, outcome=None, error=detail)
        done = anyio.Event()
        job = ReplayJob(request, done)
        try:
            with anyio.fail_after(timeout):
                await config.queue.put(request.key, job)
                await done.wait()
        except TimeoutError:
            job.settled = True  # if it has not started, it never will
            detail = (
                f"replay worker {worker!r} did not answer within {timeout:g}s: if the replay "
                "had not started it never will; if it had, it goes on and the record shows "
                "its outcome"
            )
        except PressureError as exc:
            detail = f"{exc}; nothing was replayed"
        else:
            assert job.result is not None
            return job.result
        return ReplayResult(record_id=request.record_id, outcome=None, error=detail)


@contextlib.asynccontextmanager
async def open_replayer(
    store: DeadLetterStore,
    handlers: ReplayHandlers,
    *,
    name: str = "replay",
    partitions: int = 4,
    capacity: int = 1000,
    handler_timeout: float = 30.0,
    lease_margin: float = 30.0,
    reclaim_interval: float = 5.0,
) -> AsyncIterator[Replayer]:
    """``async with open_replayer(store, handlers) as replayer:`` runs a replay supervisor.

    For the CLI and scripts, which have no tree of their own: the supervisor runs on
    the current node (one is opened if none is running) and stops when the block
    ends. The options are :class:`ReplayConfig`'s.

    .. versionadded:: 0.1.0
    """
    config = ReplayConfig(
        store=store,
        handlers=handlers,
        name=name,
        partitions=partitions,
        capacity=capacity,
        handler_timeout=handler_timeout,
        lease_margin=lease_margin,
        reclaim_interval=reclaim_interval,
    )
    async with open_supervisor(config.supervisor_spec()):
        yield Replayer(config)
