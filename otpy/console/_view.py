"""The console's picture of a node: frozen snapshots in, a rich renderable out.

Everything here is pure: :func:`take_snapshot` copies what it needs out of the
public ``statistics()`` snapshots, and :func:`render_tree` turns a snapshot into a
rich renderable for a given ``now``. Nothing reads a private attribute, a clock or
the terminal, so tests render into ``Console(record=True)`` and compare text.

The layout depends on the terminal's size only: every column has a width computed
from the width alone, so nothing moves from frame to frame whatever the cells hold,
and the rows are cut to the height, so the footer always shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

import otpy
import otpy.pressure

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from otpy.deadletter import StoreStatistics

__all__ = ["NodeSnapshot", "StoreSnapshot", "format_duration", "render_tree", "take_snapshot"]

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

WIDE = 96
"""From this width on (and room for it), the last exit reason is a column; below it, a list."""

STALE_AFTER = 3.0
"""A store reading older than this many read intervals is shown with its age."""

STORE_INTERVAL = 1.0
"""Seconds the live console waits between two reads of the stores, at least."""

STORE_MAX_INTERVAL = 30.0
"""Seconds the live console waits between two reads of the stores, at most."""


def store_interval(duration: float) -> float:
    """Seconds to wait after a read of the stores that took *duration* seconds.

    Ten times as long as the read, within :data:`STORE_INTERVAL` and
    :data:`STORE_MAX_INTERVAL`: reading a large SQLite store takes a while, and
    holds the store's connection meanwhile, so the console keeps that under a
    tenth of the time.
    """
    return min(max(STORE_INTERVAL, 10 * duration), STORE_MAX_INTERVAL)


_NORMAL_REASONS = ("normal", "shutdown")
_RESTARTING = ("restarting", "backing_off")

# Column widths, fixed so that the table never jumps as the cells change.
_STATE_WIDTH = len("backing_off")
_RESTARTS_WIDTH = len("restarts")
_WINDOW_WIDTH = len("2/3 in 10s")
_MAILBOX_WIDTH = len("9999/9999")
_UPTIME_WIDTH = len("59m59s")
_PRESSURE_WIDTH = len("degraded 40/40")
_NAME_MIN = 22
"""The narrowest name column; below it the uptime column is left out to make room."""
_NAME_MAX = 40
_EXIT_MIN = 20
"""The narrowest last-exit column; without room for it, exits are listed under the table."""


@attrs.frozen(kw_only=True)
class StoreSnapshot:
    """The console's latest reading of one dead-letter store's own statistics.

    The live console reads each store in the background
    (:func:`~otpy.console.read_store_statistics`), so a slow or locked store never
    holds up a frame; a frame shows the latest reading, with its age once it is
    older than three read intervals (3 s usually), and says plainly when the last
    read failed.

    Attributes:
        statistics: the latest statistics read, or ``None`` if no read succeeded yet.
        read_at: ``anyio.current_time()`` when *statistics* was read.
        error: why the latest read failed (the store is unreachable), or ``None``
            when it succeeded.
        stopped: the store's writer stopped: this reading is its last, and what it
            captured since is not counted (shown with the reading's age).
        duration: seconds the latest read took; the console waits ten times as
            long before the next one, and shows the age of a reading older than
            three such waits.

    .. versionadded:: 0.1.0
    """

    statistics: StoreStatistics | None = None
    read_at: float | None = None
    error: str | None = None
    stopped: bool = False
    duration: float = 0.0


@attrs.frozen
class NodeSnapshot:
    """Everything the console shows about a node at one moment.

    Attributes:
        trees: a snapshot of each root supervisor, in start order.
        live_actors: actors running on the node, supervisors included.
        dead_letters: the counters of the node's in-memory dead-letter stream, if
            known; shown only when no store is read (*stores* is empty).
        pressure: the last published snapshot of each pressure monitor read, by
            monitor name (empty when none runs: the console then has no pressure
            column).
        stores: the latest reading of each dead-letter store, by writer name. The
            footer counts what the stores hold: every dead letter, however it was
            captured.
    """

    trees: tuple[otpy.SupervisorStatistics, ...]
    live_actors: int | None = None
    dead_letters: otpy.DeadLetterStreamStatistics | None = None
    pressure: Mapping[str, otpy.pressure.PressureStatistics] = attrs.field(factory=dict)
    stores: Mapping[str, StoreSnapshot] = attrs.field(factory=dict)


def take_snapshot(
    node: otpy.Node,
    roots: Iterable[otpy.ActorRef] | None = None,
    *,
    monitors: Iterable[str] = (),
    stores: Mapping[str, StoreSnapshot] | None = None,
) -> NodeSnapshot:
    """Copy the statistics of *node* and its root supervisors into a :class:`NodeSnapshot`.

    Pressure comes from what the monitors last published
    (:func:`~otpy.pressure.pressure_statistics`), never from a call: every child running a
    :class:`~otpy.pressure.PressureMonitor` under a registered name is read, and so is each
    name in *monitors*. Dead-letter stores are never read here (a read may wait on
    a disk): pass the latest readings from
    :func:`~otpy.console.read_store_statistics` as *stores*.

    Args:
        node: the running node.
        roots: the root supervisors to show; ``node.roots`` when omitted. Roots that
            are not supervisors are skipped.
        monitors: more pressure monitors to read, by registered name (or by
            ``component``, for a monitor without one).
        stores: the latest reading of each dead-letter store, by writer name.

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
    pressure: dict[str, otpy.pressure.PressureStatistics] = {}
    for name in [*_monitor_names(trees), *monitors]:
        published = otpy.pressure.pressure_statistics(name, node=node)
        if published is not None:
            pressure[name] = published
    return NodeSnapshot(
        trees=tuple(trees),
        live_actors=node.live_actors,
        dead_letters=node.dead_letters.statistics(),
        pressure=pressure,
        stores=dict(stores or {}),
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
    partition's depth against its capacity); so name the :class:`~otpy.pressure.Watched`
    source after the child it watches.

    It fits the console it is drawn on (its height, or ``options.height``): the
    column widths depend on the width only, and a cell too long for its column
    ends in an ellipsis (a child's class or strategy gives way before its id, and an
    id too long loses its middle, not its end). Narrower
    than 96 columns (or without room for a last-exit column), the abnormal
    exit reasons are listed under the table instead. When the rows do not fit, the
    first rows are shown, crashed and restarting children before healthy ones,
    then one line such as ``"… and 17 more children (1 restarting, 2 crashed)"``;
    the footer is always drawn.

    Args:
        source: a :class:`NodeSnapshot` (from :func:`take_snapshot`), one supervisor's
            statistics, or several.
        now: ``anyio.current_time()`` when the snapshot was taken; uptimes, and the age
            of a dead-letter store reading, count from it.
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
    return _TreeView(title, tuple(rows), _footer(snapshot, now), pressure=bool(snapshot.pressure))


def _pressure_levels(
    pressure: Mapping[str, otpy.pressure.PressureStatistics],
) -> dict[str, tuple[otpy.pressure.Level, tuple[int, int] | None]]:
    """The worst level of each watched queue name, over monitors and partitions.

    Partition *i* of queue ``name`` is also listed as ``"name.i"``, the child id of
    its :class:`~otpy.pressure.PartitionWorker`, so each worker's row shows its own level,
    with the partition's depth against its capacity: the backlog of a partition
    worker is in its partition, not in its mailbox.
    """
    levels: dict[str, tuple[otpy.pressure.Level, tuple[int, int] | None]] = {}
    for stats in pressure.values():
        for source in stats.sources.values():
            entries: list[tuple[str, tuple[int, int] | None]] = [(source.name, None)]
            if source.partition is not None:
                entries.append(
                    (f"{source.name}.{source.partition}", (source.depth, source.capacity))
                )
            for name, depth in entries:
                if name not in levels or source.level > levels[name][0]:
                    levels[name] = (source.level, depth)
    return levels


def _pressure_cell(
    row: _Row, levels: Mapping[str, tuple[otpy.pressure.Level, tuple[int, int] | None]]
) -> Text:
    """The row's level (and a partition's depth), or a dim ``-`` when no monitor watches it."""
    found = [levels[name] for name in row.names if name in levels]
    if not found:
        return Text("-", style="dim") if row.names else Text()
    level, depth = max(found, key=lambda entry: entry[0])
    label = level.label
    text = Text()
    text.append(label, style=PRESSURE_STYLES.get(label, ""))  # the padding stays unstyled
    if depth is not None:
        room = _PRESSURE_WIDTH - len(label) - 1
        ratio = _ratio(*depth, width=room)
        if len(ratio) <= room:  # a depth too wide is left out, never cut
            text.append(" " + ratio)
    return text


# -- rows ------------------------------------------------------------------------------


@attrs.frozen
class _Row:
    """One line of the table, already formatted but for the name, which is fitted later."""

    prefix: str
    """The tree drawing before the id (``"│  ├─ "``)."""
    ident: str
    """The child id (or the root supervisor's label): kept whole before anything else."""
    note: str = ""
    """What follows the id: a supervisor's strategy, a worker's class."""
    note_style: str = "dim"
    supervisor: bool = False
    state_name: str = ""
    state: Text = attrs.field(factory=Text)
    restarts: Text = attrs.field(factory=Text)
    window: Text = attrs.field(factory=Text)
    mailbox: Text = attrs.field(factory=Text)
    uptime: Text = attrs.field(factory=Text)
    reason: str | None = None
    names: tuple[str, ...] = ()
    """The child id and registered name: what a watched queue's name is matched against."""
    pressure: Text = attrs.field(factory=Text)

    @property
    def restarting(self) -> bool:
        """Whether the supervisor is restarting it (or waiting to)."""
        return self.state_name in _RESTARTING

    @property
    def crashed(self) -> bool:
        """Whether it stopped for an abnormal reason and is not coming back."""
        return self.state_name == "stopped" and _abnormal(self.reason)

    def name_cell(self, width: int) -> Text:
        """The prefix, the id and its note in *width* cells: the note gives way first.

        An id too long for the column loses its middle, not its end, so that
        ``deliveries.10`` and ``deliveries.11`` stay apart.
        """
        text = Text(self.prefix, style="dim", no_wrap=True, overflow="ellipsis")
        used = cell_len(self.prefix)
        ident = self.ident
        if used + cell_len(ident) > width:
            ident = _shorten_middle(ident, max(width - used, 1))
        text.append(ident, style="bold" if self.supervisor else "")
        used += cell_len(ident)
        room = width - used - 1
        if self.note and room >= min(cell_len(self.note), 6):
            text.append(" " + _shorten(self.note, room), style=self.note_style)
        return text


def _shorten(text: str, width: int) -> str:
    """*text* cut to *width* cells, ending in an ellipsis if it was cut."""
    if cell_len(text) <= width:
        return text
    while text and cell_len(text) > width - 1:
        text = text[:-1]
    return text + "…"


def _shorten_middle(text: str, width: int) -> str:
    """*text* in *width* cells, an ellipsis in place of its middle if it was too long."""
    if cell_len(text) <= width or width < 3:
        return _shorten(text, width)
    tail = (width - 1) // 2
    head = _shorten(text, width - tail)[:-1]
    return head + "…" + text[len(text) - tail :]


def _abnormal(reason: str | None) -> bool:
    return bool(reason) and reason not in _NORMAL_REASONS


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
    state = _child_state(child) if child is not None else stats.state
    rows.append(
        _Row(
            prefix=prefix + branch,
            ident=ident,
            note=stats.strategy,
            note_style="cyan",
            supervisor=True,
            state_name=state,
            state=_state(state),
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
    for index, grandchild in enumerate(children):
        mark = "└─ " if index == len(children) - 1 else "├─ "
        if grandchild.supervisor is not None:
            _supervisor_rows(
                rows, grandchild.supervisor, now, prefix=inner, branch=mark, child=grandchild
            )
        else:
            rows.append(_child_row(grandchild, now, prefix=inner + mark))


def _child_row(child: otpy.ChildStatistics, now: float, *, prefix: str) -> _Row:
    """The row of a worker, or of a child supervisor that is not running."""
    note, note_style = "", "dim"
    if child.type is otpy.ChildType.SUPERVISOR:
        note, note_style = "supervisor", "cyan"
    elif child.actor is not None and not _names_class(child.id, child.actor.actor_class):
        note = child.actor.actor_class
    actor = child.actor
    state = _child_state(child)
    return _Row(
        prefix=prefix,
        ident=child.id,
        note=note,
        note_style=note_style,
        state_name=state,
        state=_state(state),
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


def _pick_rows(rows: Sequence[_Row], room: int) -> tuple[list[_Row], Text | None]:
    """The rows to show in *room* lines, and the summary of the rest (``None`` if all fit).

    Root supervisors come first, then crashed and restarting children, then child
    supervisors, then the rest, each in tree order; what is shown keeps tree order.
    """
    if len(rows) <= room:
        return list(rows), None
    keep = max(room - 1, 0)  # one line for the summary

    def rank(index: int) -> tuple[int, int]:
        row = rows[index]
        if row.supervisor and not row.prefix:
            return (0, index)
        if row.crashed or row.restarting:
            return (1, index)
        return (2 if row.supervisor else 3, index)

    chosen = set(sorted(range(len(rows)), key=rank)[:keep])
    shown = [row for index, row in enumerate(rows) if index in chosen]
    hidden = [row for index, row in enumerate(rows) if index not in chosen]
    restarting = sum(row.restarting for row in hidden)
    crashed = sum(row.crashed for row in hidden)
    summary = _cut(
        f"… and {len(hidden)} more {_plural(len(hidden), 'child', 'children')}", style="dim italic"
    )
    parts = [f"{restarting} restarting"] if restarting else []
    if crashed:
        parts.append(f"{crashed} crashed")
    if parts:
        summary.append(f" ({', '.join(parts)})", style="bold yellow")
    else:
        summary.append(", none restarting or crashed", style="dim italic")
    return shown, summary


# -- layout ----------------------------------------------------------------------------


@attrs.frozen
class _Column:
    header: str
    width: int
    justify: str = "left"


def _columns(width: int, *, pressure: bool) -> tuple[list[_Column], bool]:
    """The columns for a terminal *width* cells wide, and whether last exit is one of them.

    Only the width (and whether there is a pressure column) decides: the cells never do.
    """
    fixed = [
        _Column("state", _STATE_WIDTH),
        _Column("restarts", _RESTARTS_WIDTH, "right"),
        _Column("intensity", _WINDOW_WIDTH, "right"),
        _Column("mailbox", _MAILBOX_WIDTH, "right"),
        _Column("uptime", _UPTIME_WIDTH, "right"),
    ]
    if pressure:
        fixed.append(_Column("pressure", _PRESSURE_WIDTH))
    # Every column but the last is followed by one cell of padding.
    free = width - sum(column.width for column in fixed) - len(fixed) - 1
    if width >= WIDE and free - _NAME_MIN >= _EXIT_MIN:
        name = min(max(free // 2, _NAME_MIN), _NAME_MAX)
        return [_Column("name", name), *fixed, _Column("last exit", free - name)], True
    if free + 1 < _NAME_MIN:
        fixed = [column for column in fixed if column.header != "uptime"]
        free += _UPTIME_WIDTH + 1
    return [_Column("name", max(free + 1, 1)), *fixed], False


@attrs.frozen
class _TreeView:
    """The formatted rows; laid out when rich knows the size."""

    title: str | None
    rows: tuple[_Row, ...]
    footer: tuple[Text, ...]
    """The footer's parts; joined into as few lines as the width allows."""
    pressure: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height if options.height is not None else options.size.height
        columns, wide = _columns(width, pressure=self.pressure)
        footer = _join(self.footer, width)
        room = height - len(footer) - 1 - (self.title is not None)  # 1: the header
        exits = [] if wide else [row for row in self.rows if _abnormal(row.reason)]
        wanted = len(self.rows) or 1
        exit_room = 0
        if exits:
            exit_room = 1 + len(exits)
            if wanted + exit_room > room:  # the rows need the room: exits get a third of it
                exit_room = min(exit_room, max(room - wanted, room // 3, 2))
        rows, summary = _pick_rows(self.rows, max(room - exit_room, 1))
        if self.title is not None:
            yield _cut(self.title, style="bold")
        yield self._table(columns, wide, rows)
        if not self.rows:
            yield _cut("no supervision trees running", style="dim")
        if summary is not None:
            yield summary
        if exits and exit_room >= 2:
            yield Text("last abnormal exits:", style="bold")
            listed = exits if len(exits) <= exit_room - 1 else exits[: exit_room - 2]
            for row in listed:
                line = _cut(f"  {row.ident}: ", style="")
                line.append(row.reason or "", style="red")
                yield line
            if len(listed) < len(exits):
                yield _cut(f"  … and {len(exits) - len(listed)} more", style="dim italic")
        yield from footer

    def _table(self, columns: list[_Column], wide: bool, rows: list[_Row]) -> Table:
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
        for column in columns:
            table.add_column(
                column.header,
                width=column.width,
                justify=column.justify,  # type: ignore[arg-type]
                no_wrap=True,
                overflow="ellipsis",
            )
        name_width = columns[0].width
        for row in rows:
            cells = [
                row.name_cell(name_width),
                row.state,
                row.restarts,
                row.window,
                row.mailbox,
            ]
            if any(column.header == "uptime" for column in columns):
                cells.append(row.uptime)
            if self.pressure:
                cells.append(row.pressure)
            if wide:
                cells.append(_reason(row.reason))
            table.add_row(*cells)
        return table


def _join(parts: Sequence[Text], width: int) -> list[Text]:
    """*parts* joined by ``"  ·  "`` into lines of at most *width* cells; a part is never split."""
    lines: list[Text] = []
    for part in parts:
        if lines and lines[-1].cell_len + 5 + part.cell_len <= width:
            lines[-1].append("  ·  ")
            lines[-1].append_text(part)
        else:
            lines.append(part.copy())
    for line in lines:
        line.no_wrap = True
        line.overflow = "ellipsis"
    return lines


def _footer(snapshot: NodeSnapshot, now: float) -> tuple[Text, ...]:
    """The node totals: actors, restarts, dead letters."""
    supervisors, workers, restarts = 0, 0, 0
    for tree in snapshot.trees:
        counted = _count(tree)
        supervisors += counted[0]
        workers += counted[1]
        restarts += counted[2]
    actors = Text()
    if snapshot.live_actors is not None:
        actors.append(str(snapshot.live_actors), style="bold")
        actors.append(_plural(snapshot.live_actors, " live actor"))
    else:
        actors.append(str(supervisors + workers), style="bold")
        actors.append(_plural(supervisors + workers, " actor") + " running")
    actors.append(
        f" ({supervisors}{_plural(supervisors, ' supervisor')}, "
        f"{workers}{_plural(workers, ' worker')})",
        style="dim",
    )
    parts = [actors, Text(str(restarts), style="bold yellow" if restarts else "bold")]
    parts[1].append(_plural(restarts, " restart"))
    if snapshot.stores:
        named = len(snapshot.stores) > 1
        for name, reading in sorted(snapshot.stores.items()):
            parts.append(_store_part(name if named else None, reading, now))
    elif snapshot.dead_letters is not None:
        dead = snapshot.dead_letters
        part = Text(str(dead.total), style="bold red" if dead.total else "bold")
        part.append(_plural(dead.total, " dead letter"))
        if dead.by_reason:
            top = sorted(dead.by_reason.items(), key=lambda item: (-item[1], item[0]))[:3]
            part.append(" (" + ", ".join(f"{reason} {n}" for reason, n in top) + ")", style="dim")
        parts.append(part)
    return tuple(parts)


def _store_part(name: str | None, reading: StoreSnapshot, now: float) -> Text:
    """What one dead-letter store holds: a count, its age when stale, or why there is none."""
    part = Text(f"{name}: " if name is not None else "")
    stats = reading.statistics
    if reading.error is not None:
        part.append("dead-letter store unreachable", style="bold red")
        part.append(f" ({reading.error})", style="red")
        return part
    if stats is None or reading.read_at is None:
        part.append("dead letters: reading the store…", style="dim")
        return part
    part.append(str(stats.total), style="bold red" if stats.total else "bold")
    part.append(_plural(stats.total, " dead letter"))
    age = now - reading.read_at
    if age > STALE_AFTER * store_interval(reading.duration) or reading.stopped:
        part.append(f" as of {format_duration(age)} ago", style="yellow")
    if stats.by_source:
        top = sorted(stats.by_source.items(), key=lambda item: (-item[1], item[0]))[:3]
        part.append(" (" + ", ".join(f"{source} {n}" for source, n in top) + ")", style="dim")
    return part


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    if count == 1:
        return noun
    return plural if plural is not None else noun + "s"


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
    text = f"{used}/{allowed} in {stats.period:g}s"
    if len(text) > _WINDOW_WIDTH:
        text = f"{used}/{allowed}"  # the period is in the spec; the counts are what matter
    return Text(text, style=style)


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
    return Text(_ratio(actor.queued, actor.capacity, width=_MAILBOX_WIDTH), style=style)


def _ratio(count: int, capacity: int, *, width: int) -> str:
    """``"12/1000"``, or ``"120k/1M"`` when that is too wide for *width* cells."""
    text = f"{count}/{capacity}"
    if len(text) <= width:
        return text
    return f"{_short(count)}/{_short(capacity)}"


def _short(number: int) -> str:
    """A count in at most 4 characters: ``"950"``, ``"12k"``, ``"100k"``, ``"3M"``."""
    for limit, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(number) >= limit:
            return f"{number // limit}{unit}"
    return str(number)


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
