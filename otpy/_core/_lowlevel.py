"""One-shot futures that are fast on asyncio and correct on every anyio backend.

The mailbox, ``call`` and the start handshake park a task until another task wakes
it. On asyncio a bare ``loop.create_future()`` is the cheapest way to do that (it is
what ``asyncio.Queue`` uses); anyio's ``Event`` costs several times more per wake-up.
Everywhere else (trio) :class:`GenericFuture` builds the same interface on
``anyio.Event``. Cancellation still flows through anyio: on asyncio anyio cancels a
task by cancelling the future it awaits, and :class:`GenericFuture` waits on an anyio
primitive.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import sniffio

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Generator

__all__ = [
    "TIMED_OUT",
    "Backend",
    "Deadlines",
    "GenericFuture",
    "OneShot",
    "current_backend",
    "wait_for",
]


class OneShot(Protocol):
    """The part of ``asyncio.Future`` that otpy relies on."""

    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def set_result(self, result: Any, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...
    def cancel(self, msg: Any | None = None) -> bool: ...
    def __await__(self) -> Generator[Any, None, Any]: ...


_PENDING, _DONE, _CANCELLED = 0, 1, 2


class GenericFuture:
    """A one-shot future on ``anyio.Event``, for backends other than asyncio."""

    __slots__ = ("_event", "_exception", "_result", "_state")

    def __init__(self) -> None:
        self._state = _PENDING
        self._event: anyio.Event | None = None
        self._result: Any = None
        self._exception: BaseException | None = None

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def _finish(self, state: int) -> None:
        if self._state != _PENDING:
            raise RuntimeError("future already done")
        self._state = state
        if self._event is not None:
            self._event.set()

    def set_result(self, result: Any, /) -> None:
        self._result = result
        self._finish(_DONE)

    def set_exception(self, exception: BaseException, /) -> None:
        self._exception = exception
        self._finish(_DONE)

    def cancel(self, msg: Any | None = None) -> bool:
        if self._state != _PENDING:
            return False
        self._finish(_CANCELLED)
        return True

    async def _wait(self) -> Any:
        if self._state == _PENDING:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self._state == _CANCELLED:
            raise anyio.get_cancelled_exc_class()()  # pragma: no cover - only via cancel()
        if self._exception is not None:
            raise self._exception
        return self._result

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()


class Backend:
    """What the running anyio backend offers the core.

    Attributes:
        name: ``"asyncio"`` or ``"trio"``.
        loop: the asyncio loop, or ``None`` on other backends.
        new_future: makes a fresh one-shot future.
    """

    __slots__ = ("clock", "deadlines", "loop", "name", "new_future")

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self.name = name
        self.loop = loop
        self.new_future: Callable[[], OneShot]
        self.clock: Callable[[], float]
        self.deadlines: Deadlines | None = Deadlines(loop) if loop is not None else None
        if loop is not None:
            self.new_future = loop.create_future
            self.clock = loop.time
        else:
            self.new_future = GenericFuture
            self.clock = anyio.current_time


def current_backend() -> Backend:
    """Return the :class:`Backend` for the anyio backend running this task."""
    name = sniffio.current_async_library()
    if name == "asyncio":
        import asyncio  # here: importing otpy (for `otpy --help`, say) need not load asyncio

        return Backend(name, asyncio.get_running_loop())
    return Backend(name, None)


class _TimedOut:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT: Any = _TimedOut()
"""What :func:`wait_for` returns when the timeout passed before the future was done."""


def _expire(fut: OneShot) -> None:
    if not fut.done():
        fut.set_result(TIMED_OUT)


async def wait_for(backend: Backend, fut: OneShot, timeout: float | None) -> Any:
    """Wait for *fut*, at most *timeout* seconds; return its result or :data:`TIMED_OUT`.

    On timeout the future is left done with ``TIMED_OUT`` (asyncio) or cancelled
    (other backends), so a late ``set_result`` through a ``done()`` check is a no-op.
    """
    if timeout is None:
        return await fut
    loop = backend.loop
    if loop is not None:
        handle = loop.call_at(loop.time() + timeout, _expire, fut)
        try:
            return await fut
        finally:
            handle.cancel()
    with anyio.move_on_after(timeout):
        return await fut
    if fut.done() and not fut.cancelled():
        return await fut
    fut.cancel()
    return TIMED_OUT


class Deadlines:
    """Call timeouts on asyncio without a timer handle per call.

    Calls with the same timeout expire in the order they were made, so each timeout
    value keeps a FIFO of ``(deadline, future)`` and one loop timer is armed for the
    earliest deadline. Adding costs a deque append instead of a heap push plus a
    cancel; answered calls are dropped lazily (from the head on every add, and by a
    sweep when a queue grows past :attr:`SWEEP_AT`).
    """

    SWEEP_AT = 4096

    __slots__ = ("_armed_for", "_handle", "_loop", "_queues")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, deque[tuple[float, OneShot]]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    def add(self, timeout: float, fut: OneShot) -> None:
        """Set *fut* to :data:`TIMED_OUT` if it is still pending after *timeout* seconds."""
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        while queue and queue[0][1].done():
            queue.popleft()
        deadline = self._loop.time() + timeout
        queue.append((deadline, fut))
        if len(queue) > self.SWEEP_AT:
            self._queues[timeout] = deque(e for e in queue if not e[1].done())
        if deadline < self._armed_for:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = math.inf
        now = self._loop.time()
        earliest = math.inf
        for timeout, queue in list(self._queues.items()):
            while queue and (queue[0][1].done() or queue[0][0] <= now):
                _, fut = queue.popleft()
                if not fut.done():
                    fut.set_result(TIMED_OUT)
            if queue:
                earliest = min(earliest, queue[0][0])
            else:
                del self._queues[timeout]
        if earliest < math.inf:
            self._arm(earliest)
