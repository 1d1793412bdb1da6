"""Spans name the kind of store a tree writes dead letters to, whatever wraps it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import otpy
from otpy import Strategy, SupervisorFlags, SupervisorSpec
from otpy.deadletter import (
    DeadLetter,
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
    sqlite_store,
)
from otpy.deadletter._telemetry import store_kind
from otpy.telemetry import ATTR_DEADLETTER_STORE, SPAN_DEADLETTER_WRITE
from otpy.testing import capture_spans

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiosqlite needs asyncio
async def test_a_tree_owned_sqlite_store_is_reported_as_sqlite(tmp_path: Path) -> None:
    """The write span of a store from sqlite_store() says 'sqlite', not 'StoreHandle'."""
    # rest_for_one: the store and its writer start first, as in a node.
    tree = SupervisorSpec(
        id="node",
        flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE),
        children=dead_letter_children(sqlite_store(tmp_path / "dead.db"), sweep=False),
    )
    record = DeadLetter.capture(key="dest", source=Source.OUTBOUND, reason_class="E")
    with capture_spans() as exporter:
        async with otpy.open_supervisor(tree):
            await DeadLetters().capture(record)
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_WRITE]
    assert span.attributes is not None
    assert span.attributes[ATTR_DEADLETTER_STORE] == "sqlite"


def test_store_kinds() -> None:
    """A handle reports what it wraps; other stores by class (memory, or the class name)."""
    assert store_kind(sqlite_store("dead.db")) == "sqlite"
    assert store_kind(MemoryDeadLetterStore()) == "memory"
    assert store_kind(object()) == "object"
