"""Reading the dead-letter stores' own statistics for the console, away from its frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import attrs

from otpy.deadletter import redact, running_stores

from ._view import StoreSnapshot

if TYPE_CHECKING:
    from collections.abc import Mapping

    import otpy

__all__ = ["STORE_TIMEOUT", "mark_stopped", "read_store_statistics"]

STORE_TIMEOUT = 5.0
"""Seconds a store has to answer before the console calls it unreachable."""


async def read_store_statistics(
    node: otpy.Node,
    previous: Mapping[str, StoreSnapshot] | None = None,
    *,
    timeout: float = STORE_TIMEOUT,
) -> dict[str, StoreSnapshot]:
    """Read the statistics of every dead-letter store in use on *node*, once.

    The stores are those of the running dead-letter writers
    (:func:`~otpy.deadletter.running_stores`), so every dead letter is counted
    however it was captured: poison and undeliverable messages, shed and refused
    ones, drain leftovers, direct captures. A store that fails or does not answer
    within *timeout* keeps its last statistics, marked with the error; a store
    whose writer stopped keeps its last reading, marked ``stopped``: it shows its age.

    Args:
        node: the node whose stores to read.
        previous: the readings this one follows.
        timeout: seconds each store has to answer.

    Returns:
        The readings by writer name, for :func:`~otpy.console.take_snapshot`.

    .. versionadded:: 0.1.0
    """
    readings = mark_stopped(node, previous or {})
    stores = running_stores(node=node)
    if not stores:
        await anyio.lowlevel.checkpoint()
    for name, store in stores.items():
        last = readings.get(name, StoreSnapshot())
        started = anyio.current_time()
        try:
            with anyio.fail_after(timeout):
                statistics = await store.statistics()
        except TimeoutError:
            error = f"no answer within {timeout:g}s"
        except Exception as exc:  # whatever the store raises, the console shows it and goes on
            error = redact(f"{type(exc).__name__}: {exc}")
        else:
            now = anyio.current_time()
            readings[name] = StoreSnapshot(
                statistics=statistics, read_at=now, duration=now - started
            )
            continue
        duration = anyio.current_time() - started
        readings[name] = attrs.evolve(last, error=error, duration=duration, stopped=False)
    return readings


def mark_stopped(
    node: otpy.Node, readings: Mapping[str, StoreSnapshot]
) -> dict[str, StoreSnapshot]:
    """Return *readings* with those of the writers no longer running on *node* marked stopped."""
    running = running_stores(node=node)
    return {
        name: reading if name in running or reading.stopped else attrs.evolve(reading, stopped=True)
        for name, reading in readings.items()
    }
