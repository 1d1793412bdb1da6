"""Typed dead-letter errors reach callers as themselves, never inside an exception group.

``except otpy.DeadLetterError`` around ``open_node()``, a capture or a bulk replay
must catch what otpy raises; cancellation and groups of several errors pass
through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import otpy
from otpy import DeadLetterError, ReplayFailed, StoreFull
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetters,
    MemoryDeadLetterStore,
    ReplayResult,
    Source,
    dead_letter_children,
    open_replayer,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


def record(key: str = "orders") -> DeadLetter:
    """A small outbound record."""
    return DeadLetter.capture(
        key=key, source=Source.OUTBOUND, reason_class="HTTPError", trace_context={}
    )


class FullStore:
    """A memory store whose every add_many raises StoreFull."""

    def __init__(self) -> None:
        self.inner = MemoryDeadLetterStore()

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """Refuse, as a full disk does."""
        await anyio.lowlevel.checkpoint()
        raise StoreFull("dead.db")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def replay_nothing(record: DeadLetter, key: str) -> None:
    """A replay handler that succeeds without doing anything."""
    await anyio.lowlevel.checkpoint()


async def test_a_store_error_from_capture_leaves_open_node_as_itself() -> None:
    """DL-2: StoreFull from capture inside open_node is caught by `except otpy.DeadLetterError` outside it."""
    store: Any = FullStore()
    with pytest.raises(StoreFull, match=r"^dead-letter store dead\.db: the disk") as info:
        async with (
            otpy.open_node(),
            otpy.open_supervisor(dead_letter_children(store, sweep=False)),
        ):
            await DeadLetters().capture(record())
    assert isinstance(info.value, DeadLetterError)


async def test_cancelling_an_open_node_block_is_still_a_plain_cancellation() -> None:
    """Twin: cancellation passes through open_node untouched, and a cancelled block is not an error."""
    with anyio.move_on_after(5.0) as scope:
        async with otpy.open_node():
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught


async def test_an_error_of_a_task_beside_the_block_stays_in_its_group() -> None:
    """Twin: only the block's own error is unwrapped; a task of the node that crashed is reported in a group."""

    async def crash() -> None:
        await anyio.lowlevel.checkpoint()
        raise StoreFull("other.db")

    with pytest.raises(BaseExceptionGroup) as info:
        async with otpy.open_node() as node:
            node._task_group.start_soon(crash)
            await anyio.sleep_forever()
    assert [str(e) for e in info.value.exceptions] == [str(StoreFull("other.db"))]


async def test_a_typed_error_from_bulk_replay_progress_is_raised_as_itself() -> None:
    """An otpy error raised by replay_many's on_progress reaches the caller as itself, even outside open_node."""
    store = MemoryDeadLetterStore()
    await store.add_many([record()])

    def progress(result: ReplayResult) -> None:
        raise ReplayFailed(result.record_id, "the operator's progress bar gave up")

    with pytest.raises(ReplayFailed, match="the operator's progress bar gave up"):
        async with (
            otpy.open_node(),
            open_replayer(store, {Source.OUTBOUND: replay_nothing}) as replayer,
        ):
            await replayer.replay_many(DeadLetterFilter(), on_progress=progress)


async def test_an_ordinary_error_from_bulk_replay_progress_keeps_its_group() -> None:
    """Twin: only otpy errors are unwrapped; a bug in on_progress keeps its traceback in the group."""
    store = MemoryDeadLetterStore()
    await store.add_many([record()])

    def progress(result: ReplayResult) -> None:
        raise KeyError(result.record_id)

    with pytest.raises(BaseExceptionGroup) as info:
        async with open_replayer(store, {Source.OUTBOUND: replay_nothing}) as replayer:
            await replayer.replay_many(DeadLetterFilter(), on_progress=progress)
    assert info.group_contains(KeyError)
