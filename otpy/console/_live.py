"""The live loop: take a snapshot, render it, sleep, at the refresh rate only.

The dead-letter stores are read by a task of their own, at most once a second: a
frame never waits for a disk, it shows the latest reading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from rich.console import Console
from rich.live import Live

from ._stores import mark_stopped, read_store_statistics
from ._view import render_tree, store_interval, take_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

    import otpy

    from ._view import StoreSnapshot

__all__ = ["run_console"]


async def run_console(
    node: otpy.Node,
    *,
    refresh: float = 4.0,
    title: str | Callable[[], str] | None = None,
    console: Console | None = None,
    until: anyio.Event | None = None,
) -> None:
    """Show the node's supervision trees live until *until* is set or the task is cancelled.

    Each refresh takes one :func:`~otpy.console.take_snapshot` in the event loop and
    draws it. Meanwhile one more task reads the dead-letter stores' statistics
    (:func:`~otpy.console.read_store_statistics`), waiting a second after each
    read (ten times as long as the read took, if more; 30 s at most), so the
    footer counts what the stores hold and a slow store never delays a frame.
    Every frame fits the terminal (see :func:`~otpy.console.render_tree`). A tree
    that stops stays on screen, shown as stopped. When *until* is set, one last
    frame is drawn and the function returns; when the task is cancelled (Ctrl-C),
    the last frame drawn stays. Either way the terminal is restored.

    Args:
        node: the node to watch; its ``roots`` are the trees shown.
        refresh: frames per second (> 0).
        title: a line above the table, or a function returning it at each frame.
        console: where to draw; a new :class:`rich.console.Console` on stdout by default.
        until: an event that ends the console after a final frame.

    Raises:
        ValueError: *refresh* is not > 0.

    .. versionadded:: 0.1.0
    """
    if not refresh > 0:
        raise ValueError(f"console refresh must be > 0 frames per second, got {refresh!r}")
    interval = 1.0 / refresh
    shown: list[otpy.ActorRef] = []  # every root seen so far, so stopped trees stay visible
    stores: dict[str, StoreSnapshot] = {}

    def draw(live: Live) -> None:
        shown.extend(ref for ref in node.roots if ref not in shown)
        heading = title() if callable(title) else title
        snapshot = take_snapshot(node, shown, stores=stores)
        live.update(render_tree(snapshot, now=anyio.current_time(), title=heading), refresh=True)

    async def read_stores() -> None:
        while True:
            started = anyio.current_time()
            stores.update(await read_store_statistics(node, stores))
            await anyio.sleep(store_interval(anyio.current_time() - started))

    live = Live(
        console=console or Console(),
        auto_refresh=False,  # frames are drawn from the event loop, never from a thread
        redirect_stdout=True,
        redirect_stderr=True,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stores)
        with live:
            while until is None or not until.is_set():
                draw(live)
                with anyio.move_on_after(interval):
                    if until is None:
                        await anyio.sleep_forever()
                    else:
                        await until.wait()
            stores.update(mark_stopped(node, stores))  # the last frame says which stopped
            draw(live)
        tg.cancel_scope.cancel("otpy: the console stopped")
