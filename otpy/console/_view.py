"""The console's picture of a node: frozen snapshots in, a rich renderable out.

Everything here is pure: :func:`take_snapshot` copies what it needs out of the
public ``statistics()`` snapshots, and :func:`render_tree` turns a snapshot into a
rich renderable for a given ``now``. Nothing reads a private attribute, a clock or
the terminal, so tests render into ``Console(record=True)`` and compare text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from rich.table import Table
from rich.text import Text

import otpy

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

__all__ = ["NodeSnapshot", "format_duration", "render_tree", "take_snapshot"]

STATE_STYLES: dict[str, str] = {
    "running": "green",
    "starting": "cyan",
    "restarting": "bold yellow",
    "backing_off": "bold magenta",
    "suspended": "blue",
    "stopping": "yellow",
    "stopped": "bold red",
}
"""The colour of each child and actor state."""

PRESSURE_STYLES: dict[str, str] = {
    "normal": "dim",
    "warn": "yellow",
    "degraded": "bold yellow",
    "shed": "bold red",
}
"""The colour of each pressure level."""

MONITOR_CLASS = "PressureMonitor"
"""Children of this actor class with a registered name are read as pressure monitors."""

MAX_ROWS_PER_SUPERVISOR = 20
"""Children shown under one supervisor; a big dynamic pool is summarised after that."""

WIDE = 96
"""From this width on, the last exit reason is a column; below it, a list under the table."""

_NORMAL_REASONS = ("normal", "shutdown")


@attrs.frozen
class NodeSnapshot:
    """Everything the console shows about a node at one moment.

    Attributes:
        trees: a snapshot of each root supervisor, in start order.
        live_actors: actors running on the node, supervisors included.
        dead_letters: the dead-letter counters, if known.
        pressure: the last published snapshot of each pressure monitor read, by
            monitor name (empty when none runs: the console then has no pressure
            column).
    """

    trees: tuple[otpy.SupervisorStatistics, ...]
    live_actors: int | None = None
    dead_letters: otpy.DeadLetterStatistics | None = None
    pressure: Mapping[str, otpy.PressureStatistics] = attrs.field(factory=dict)


def take_snapshot(
    node: otpy.Node,
    roots: Iterable[otpy.ActorRef] | None = None,
    *,
    monitors: Iterable[str] = (),
) -> NodeSnapshot:
    """Copy the statistics of *node* and its root supervisors into a :class:`NodeSnapshot`.

    Pressure comes from what the monitors last published
    (:func:`~otpy.pressure_statistics`), never from a call: every child running a
    :class:`~otpy.PressureMonitor` under a registered name is read, and so is each
    name in *monitors*.

    Args:
        node: the running node.
        roots: the root supervisors to show; ``node.roots`` when omitted. Roots that
            are not supervisors are skipped.
        monitors: more pressure monitors to read, by registered name (or by
            ``component``, for a monitor without one).

    Returns:
        A frozen snapshot; rendering it later never touches the node again.

    .. versionadded:: 0.1.0
    """
    trees: list[otpy.SupervisorStatistics] = []
    for ref in node.roots if roots is None else roots:
        try:
            trees.append(otpy.supervisor_ref(ref).statistics())
        except TypeError:  # a plain actor added as a root: nothing to draw as a tree
            continue
    pressure: dict[str, otpy.PressureStatistics] = {}
    for name in [*_monitor_names(trees), *monitors]:
        published = otpy.pressure_statistics(name, node=node)
        if published is not None:
            pressure[name] = published
    return NodeSnapshot(
        trees=tuple(trees),
        live_actors=node.live_actors,
        dead_letters=node.dead_letters.statistics(),
        pressure=pressure,
    )


def _monitor_names(trees: Iterable[otpy.SupervisorStatistics]) -> list[str]:
    """The registered names of the pressure monitors running in *trees*."""
    names: list[str] = []
    for tree in trees:
        for child in tree.children:
            if child.supervisor is not None:
                names.extend(_monitor_names([child.supervisor]))
            elif (
                child.actor is not None
                and child.actor.actor_class == MONITOR_CLASS
                and child.actor.name is not None
            ):
                names.append(child.actor.name)
    return names


def render_tree(
    source: NodeSnapshot | otpy.SupervisorStatistics | Iterable[otpy.SupervisorStatistics],
    *,
    now: float,
    title: str | None = None,
) -> RenderableType:
    """Draw supervision trees as a table, with node totals underneath.

    Each row is a supervisor or a child: its id (indented under its supervisor), its
    state in colour, how often it was restarted, for supervisors the restarts in the
    window against the intensity (``"2/3 in 5s"``), mailbox depth against capacity,
    uptime and the last exit reason. When the snapshot holds pressure monitors, a
    ``pressure`` column shows the level of each row whose child id or registered
    name is the name of a watched queue (the worst level over its partitions), or
    ``"name.i"`` for partition *i* (a partition worker's child id, shown with the
    partition's depth against its capacity); so name the :class:`~otpy.Watched`
    source after the child it watches. Narrower than :data:`WIDE` columns, the
    abnormal exit reasons are listed under the table instead of in a column.

    Args:
        source: a :class:`NodeSnapshot` (from :func:`take_snapshot`), one supervisor's
            statistics, or several.
        now: ``anyio.current_time()`` when the snapshot was taken; uptimes count from it.
        title: a line shown above the table.

    Returns:
        A rich renderable; print it, or hand it to ``rich.live.Live``.

    .. versionadded:: 0.1.0
    """
    if isinstance(source, NodeSnapshot):
        snapshot = source
    elif isinstance(source, otpy.SupervisorStatistics):
        snapshot = NodeSnapshot(trees=(source,))
    else:
        snapshot = NodeSnapshot(trees=tuple(source))
    rows: list[_Row] = []
    for tree in snapshot.trees:
        _supervisor_rows(rows, tree, now, prefix="", branch="", child=None)
    levels = _pressure_levels(snapshot.pressure)
    if snapshot.pressure:
        rows = [attrs.evolve(row, pressure=_pressure_cell(row, levels)) for row in rows]
    return _TreeView(title, tuple(rows), _footer(snapshot), pressure=bool(snapshot.pressure))


def _pressure_levels(
    pressure: Mapping[str, otpy.PressureStatistics],
) -> dict[str, tuple[otpy.Level, str]]:
    """The worst level of each watched queue name, over monitors and partitions.

    Partition *i* of queue ``name`` is also listed as ``"name.i"``, the child id of
    its :class:`~otpy.PartitionWorker`, so each worker's row shows its own level,
    with the partition's depth against its capacity: the backlog of a partition
    worker is in its partition, not in its mailbox.
    """
    levels: dict[str, tuple[otpy.Level, str]] = {}
    for stats in pressure.values():
        for source in stats.sources.values():
            entries = [(source.name, "")]
            if source.partition is not None:
                entries.append(
                    (f"{source.name}.{source.partition}", f"{source.depth}/{source.capacity}")
                )
            for name, depth in entries:
                if name not in levels or source.level > levels[name][0]:
                    levels[name] = (source.level, depth)
    return levels


def _pressure_cell(row: _Row, levels: Mapping[str, tuple[otpy.Level, str]]) -> Text:
    """The row's level (and a partition's depth), or a dim ``-`` when no monitor watches it."""
    found = [levels[name] for name in row.names if name in levels]
    if not found:
        return Text("-", style="dim") if row.names else Text()
    level, depth = max(found, key=lambda entry: entry[0])
    label = level.label
    text = Text(label, style=PRESSURE_STYLES.get(label, ""))
    if depth:
        text.append(f" {depth}")
    return text


# -- rows ------------------------------------------------------------------------------


@attrs.frozen
class _Row:
    """One line of the table, already formatted."""

    name: Text
    id: str = ""
    state: Text = attrs.field(factory=Text)
    restarts: Text = attrs.field(factory=Text)
    window: Text = attrs.field(factory=Text)
    mailbox: Text = attrs.field(factory=Text)
    uptime: Text = attrs.field(factory=Text)
    reason: str | None = None
    names: tuple[str, ...] = ()
    """The child id and registered name: what a watched queue's name is matched against."""
    pressure: Text = attrs.field(factory=Text)


def _supervisor_rows(
    rows: list[_Row],
    stats: otpy.SupervisorStatistics,
    now: float,
    *,
    prefix: str,
    branch: str,
    child: otpy.ChildStatistics | None,
) -> None:
    """Add the row of supervisor *stats*, then its children under it."""
    ident = child.id if child is not None else stats.label
    name = _cut(prefix + branch, style="dim")
    name.append(ident, style="bold")
    name.append(f" {stats.strategy}", style="cyan")
    rows.append(
        _Row(
            name=name,
            id=ident,
            state=_state(_child_state(child) if child is not None else stats.state),
            restarts=_restarts(child.restarts) if child is not None else Text("-", style="dim"),
            window=_window(stats),
            mailbox=_mailbox(stats.actor),
            uptime=_uptime(stats.actor, now),
            reason=child.last_exit_reason if child is not None else None,
            names=_names(ident, stats.actor),
        )
    )
    inner = prefix + ("" if not branch else ("   " if branch.startswith("└") else "│  "))
    children = stats.children
    shown = children[:MAX_ROWS_PER_SUPERVISOR]
    hidden = len(children) - len(shown)
    for index, grandchild in enumerate(shown):
        mark = "└─ " if index == len(shown) - 1 and not hidden else "├─ "
        if grandchild.supervisor is not None:
            _supervisor_rows(
                rows, grandchild.supervisor, now, prefix=inner, branch=mark, child=grandchild
            )
        else:
            rows.append(_child_row(grandchild, now, prefix=inner + mark))
    if hidden:
        more = _cut(inner + "└─ ", style="dim")
        running = sum(1 for c in children[len(shown) :] if c.state == "running")
        more.append(f"… {hidden} more ({running} running)", style="dim italic")
        rows.append(_Row(name=more))


def _child_row(child: otpy.ChildStatistics, now: float, *, prefix: str) -> _Row:
    """The row of a worker, or of a child supervisor that is not running."""
    name = _cut(prefix, style="dim")
    name.append(child.id)
    if child.type is otpy.ChildType.SUPERVISOR:
        name.append(" supervisor", style="cyan")
    elif child.actor is not None and not _names_class(child.id, child.actor.actor_class):
        name.append(f" {child.actor.actor_class}", style="dim")
    actor = child.actor
    return _Row(
        name=name,
        id=child.id,
        state=_state(_child_state(child)),
        restarts=_restarts(child.restarts),
        mailbox=_mailbox(actor) if actor is not None else Text("-", style="dim"),
        uptime=_uptime(actor, now) if actor is not None else Text("-", style="dim"),
        reason=child.last_exit_reason,
        names=_names(child.id, actor),
    )


def _names(ident: str, actor: otpy.ActorStatistics | None) -> tuple[str, ...]:
    if actor is None or actor.name is None or actor.name == ident:
        return (ident,)
    return (ident, actor.name)


def _child_state(child: otpy.ChildStatistics) -> str:
    """The supervisor's view of the child, or the actor's own when it says more.

    A running child that is suspended, still starting or already stopping (during a
    graceful shutdown) shows that state instead of ``running``.
    """
    if child.state == "running" and child.actor is not None:
        return child.actor.state
    return child.state


def _names_class(child_id: str, actor_class: str) -> bool:
    """Whether the id already says the class (``ticker``/``Ticker``, ``Job#12``/``Job``)."""
    lowered, cls = child_id.lower(), actor_class.lower()
    return lowered == cls or lowered.startswith(cls + "#")


# -- layout ----------------------------------------------------------------------------


@attrs.frozen
class _TreeView:
    """The formatted rows; laid out when rich knows the width."""

    title: str | None
    rows: tuple[_Row, ...]
    footer: Text
    pressure: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.max_width >= WIDE
        if self.title is not None:
            yield _cut(self.title, style="bold")
        yield self._table(wide)
        if not wide:
            lines = [row for row in self.rows if row.reason and row.reason not in _NORMAL_REASONS]
            if lines:
                yield Text("last abnormal exits:", style="bold")
                for row in lines:
                    line = _cut(f"  {row.id}: ", style="")
                    line.append(row.reason or "", style="red")
                    yield line
        yield self.footer

    def _table(self, wide: bool) -> Table:
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
        # The name (and the reason) give way on a narrow terminal: they are the
        # wrappable columns rich shrinks, and their cells end in an ellipsis.
        table.add_column("name", max_width=40)
        # Fixed widths for the rest, so the table does not jump as states change.
        table.add_column("state", no_wrap=True, min_width=len("backing_off"))
        table.add_column("restarts", justify="right", no_wrap=True)
        table.add_column("intensity", justify="right", no_wrap=True, min_width=len("0/3 in 5s"))
        table.add_column("mailbox", justify="right", no_wrap=True, min_width=len("0/1000"))
        table.add_column("uptime", justify="right", no_wrap=True, min_width=len("59m59s"))
        if self.pressure:
            table.add_column("pressure", no_wrap=True, min_width=len("degraded"))
        if wide:
            table.add_column("last exit", min_width=12)
        for row in self.rows:
            cells = [row.name, row.state, row.restarts, row.window, row.mailbox, row.uptime]
            if self.pressure:
                cells.append(row.pressure)
            if wide:
                cells.append(_reason(row.reason))
            table.add_row(*cells)
        if not self.rows:
            table.add_row(_cut("no supervision trees running", style="dim"))
        return table


def _footer(snapshot: NodeSnapshot) -> Text:
    """The node totals line."""
    footer = Text()
    supervisors, workers, restarts = 0, 0, 0
    for tree in snapshot.trees:
        counted = _count(tree)
        supervisors += counted[0]
        workers += counted[1]
        restarts += counted[2]
    if snapshot.live_actors is not None:
        footer.append(str(snapshot.live_actors), style="bold")
        footer.append(_plural(snapshot.live_actors, " live actor"))
    else:
        footer.append(str(supervisors + workers), style="bold")
        footer.append(_plural(supervisors + workers, " actor") + " running")
    footer.append(
        f" ({supervisors}{_plural(supervisors, ' supervisor')}, "
        f"{workers}{_plural(workers, ' worker')})",
        style="dim",
    )
    footer.append("  ·  ")
    footer.append(str(restarts), style="bold yellow" if restarts else "bold")
    footer.append(_plural(restarts, " restart"))
    if snapshot.dead_letters is not None:
        dead = snapshot.dead_letters
        footer.append("  ·  ")
        footer.append(str(dead.total), style="bold red" if dead.total else "bold")
        footer.append(_plural(dead.total, " dead letter"))
        if dead.by_reason:
            top = sorted(dead.by_reason.items(), key=lambda item: (-item[1], item[0]))[:3]
            footer.append(" (" + ", ".join(f"{reason} {n}" for reason, n in top) + ")", style="dim")
    return footer


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else noun + "s"


def _count(stats: otpy.SupervisorStatistics) -> tuple[int, int, int]:
    """Return running supervisors, running workers and total restarts in a tree."""
    supervisors = 0 if stats.state == "stopped" else 1
    workers, restarts = 0, stats.total_restarts
    for child in stats.children:
        if child.supervisor is not None:
            sub = _count(child.supervisor)
            supervisors += sub[0]
            workers += sub[1]
            restarts += sub[2]
        elif child.actor is not None and child.state == "running":
            workers += 1
    return supervisors, workers, restarts


# -- cells -----------------------------------------------------------------------------


def _cut(text: str, *, style: str) -> Text:
    """A cell that stays on one line and ends in an ellipsis when its column is narrow."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _restarts(count: int) -> Text:
    return Text(str(count), style="yellow" if count else "dim")


def _window(stats: otpy.SupervisorStatistics) -> Text:
    """``"2/3 in 5s"``: red when one more restart would make the supervisor give up."""
    used, allowed = stats.restarts_in_window, stats.intensity
    if used >= allowed:
        style = "bold red"
    elif used:
        style = "yellow"
    else:
        style = "dim"
    return Text(f"{used}/{allowed} in {stats.period:g}s", style=style)


def _mailbox(actor: otpy.ActorStatistics) -> Text:
    """``"12/1000"``: yellow from half full, red from 90 %."""
    fill = actor.queued / actor.capacity if actor.capacity else 0.0
    if fill >= 0.9:
        style = "bold red"
    elif fill >= 0.5:
        style = "yellow"
    elif actor.queued:
        style = ""
    else:
        style = "dim"
    return Text(f"{actor.queued}/{actor.capacity}", style=style)


def _uptime(actor: otpy.ActorStatistics, now: float) -> Text:
    if actor.state == "stopped":
        return Text("-", style="dim")
    return Text(format_duration(now - actor.started_at))


def _reason(reason: str | None) -> Text:
    if reason is None:
        return Text("")
    return _cut(reason, style="dim" if reason in _NORMAL_REASONS else "red")


def format_duration(seconds: float) -> str:
    """Return a short duration: ``"4.2s"``, ``"59s"``, ``"3m05s"``, ``"2h07m"``, ``"3d04h"``.

    .. versionadded:: 0.1.0
    """
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
