"""A live view of a node's supervision trees, built only from ``statistics()`` snapshots.

``otpy run MODULE:ATTR --console`` runs :func:`run_console`; to draw one frame
yourself (in a test, say)::

    from rich.console import Console

    console = Console(record=True, width=100)
    stores = await read_store_statistics(node)  # the dead-letter stores' counts
    console.print(render_tree(take_snapshot(node, stores=stores), now=anyio.current_time()))
    text = console.export_text()

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._live import run_console as run_console
from ._stores import read_store_statistics as read_store_statistics
from ._view import STATE_STYLES as STATE_STYLES
from ._view import NodeSnapshot as NodeSnapshot
from ._view import StoreSnapshot as StoreSnapshot
from ._view import format_duration as format_duration
from ._view import render_tree as render_tree
from ._view import take_snapshot as take_snapshot

__all__ = [
    "NodeSnapshot",
    "STATE_STYLES",
    "StoreSnapshot",
    "format_duration",
    "read_store_statistics",
    "render_tree",
    "run_console",
    "take_snapshot",
]
