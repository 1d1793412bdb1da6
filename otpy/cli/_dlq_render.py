"""What ``otpy dlq`` prints: JSON documents for scripts, rich renderables for people.

Everything here is pure: records, pages and statistics in; a JSON-ready dict or a
rich renderable out. Nothing reads a clock, a store or the terminal, so tests render
into ``Console(record=True, width=...)`` and compare text.

Every string a record holds (keys, reasons, headers, payloads) reaches the terminal
as plain :class:`~rich.text.Text`, never as markup, with control characters escaped:
a payload cannot restyle, clear or retitle the operator's terminal.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
from rich import box
from rich.cells import cell_len
from rich.console import Group
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from otpy._exceptions import ReplayRejected
from otpy.deadletter import (
    LEDGER_EVICTED,
    ReplayOutcome,
    ReplayStatus,
    Status,
    iso_time,
    record_document,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from rich.console import Console, ConsoleOptions, RenderableType

    from otpy.deadletter import DeadLetter, Page, StoreStatistics

__all__ = [
    "HEX_PREVIEW",
    "MAX_DETAILS",
    "MIN_REASON",
    "NO_OUTCOME",
    "ReplayLine",
    "epoch_or_none",
    "format_time",
    "iso_time",
    "printable",
    "record_json",
    "render_page",
    "render_record",
    "render_replay_summary",
    "render_statistics",
    "replay_json",
    "statistics_json",
]

NO_OUTCOME = "no_outcome"
"""The outcome reported for a replay request that got none (its worker exited or timed out)."""

MAX_DETAILS = 20
"""Replays listed one by one under a summary; ``--json`` lists them all."""

HEX_PREVIEW = 256
"""Bytes of a binary payload ``otpy dlq get --payload`` shows as hex."""

OUTCOME_STYLES: dict[str, str] = {
    ReplayOutcome.REPLAYED.value: "green",
    ReplayOutcome.ALREADY_REPLAYED.value: "cyan",
    ReplayOutcome.REJECTED_ARCHIVED.value: "yellow",
    ReplayOutcome.IN_PROGRESS.value: "yellow",
    ReplayOutcome.FAILED.value: "bold red",
    ReplayOutcome.IN_DOUBT.value: "bold magenta",
    NO_OUTCOME: "bold red",
}
"""The colour of each replay outcome in summaries."""

REPLAY_STYLES: dict[str, str] = {
    ReplayStatus.NEVER.value: "",
    ReplayStatus.RUNNING.value: "cyan",
    ReplayStatus.SUCCEEDED.value: "green",
    ReplayStatus.FAILED.value: "red",
    ReplayStatus.IN_DOUBT.value: "bold magenta",
}


# -- text ---------------------------------------------------------------------------


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """Return *text* with control characters escaped (``\\x1b``, ``\\n``...).

    Args:
        text: any string from a record.
        keep_newlines: keep ``\\n`` and ``\\t`` as they are (multi-line payloads).
    """
    out: list[str] = []
    for char in text:
        if keep_newlines and char in "\n\t":
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != " ":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def format_time(epoch: float) -> str:
    """Return *epoch* for a table: ``2024-05-01 12:00:03`` (UTC)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch_or_none(epoch: float | None) -> str | None:
    """Return :func:`iso_time` of *epoch*, or ``None``."""
    return None if epoch is None else iso_time(epoch)


# -- JSON ---------------------------------------------------------------------------


record_json = record_document
"""*record* as ``--json`` prints it: :func:`otpy.deadletter.record_document`."""


def _body(record: DeadLetter) -> bytes | None:
    """The payload, or ``None`` when a listing left a large one out."""
    return (record.payload or b"") if record.payload_loaded else None


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def statistics_json(stats: StoreStatistics) -> dict[str, Any]:
    """Return *stats* as a JSON-ready dict (the attribute names of :class:`StoreStatistics`)."""
    return {
        "total": stats.total,
        "captured": stats.captured,
        "by_status": dict(stats.by_status),
        "by_source": dict(stats.by_source),
        "by_reason_class": dict(stats.by_reason_class),
        "by_key": dict(stats.by_key),
        "by_replay_status": dict(stats.by_replay_status),
        "evicted": dict(stats.evicted),
    }


# -- replay results -----------------------------------------------------------------


@attrs.frozen
class ReplayLine:
    """One replay's result as the CLI reports it.

    Attributes:
        record_id: the record.
        outcome: the :class:`~otpy.deadletter.ReplayOutcome` value.
        error: the failure's message, if any.
        record: the record after the replay, if known.
    """

    record_id: str
    outcome: str
    error: str | None = None
    record: DeadLetter | None = None


def replay_json(lines: Sequence[ReplayLine]) -> dict[str, Any]:
    """Return replay results as ``{"summary": {outcome: n}, "results": [...]}``."""
    return {
        "summary": dict(Counter(line.outcome for line in lines)),
        "results": [
            {
                "id": line.record_id,
                "outcome": line.outcome,
                "error": line.error,
                "record": None if line.record is None else record_json(line.record, payload=False),
            }
            for line in lines
        ],
    }


def _detail(line: ReplayLine) -> str:
    if line.error is not None:
        return line.error
    return str(ReplayRejected(line.record_id, line.outcome))


def render_replay_summary(lines: Sequence[ReplayLine]) -> RenderableType:
    """Return the count of each outcome, then every replay that did not end ``replayed``.

    At most :data:`MAX_DETAILS` are listed, with the error or the reason for the refusal.
    """
    counts = Counter(line.outcome for line in lines)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("Records", justify="right")
    for outcome in sorted(counts, key=lambda o: (list(OUTCOME_STYLES).index(o), o)):
        table.add_row(Text(outcome, style=OUTCOME_STYLES[outcome]), str(counts[outcome]))
    parts: list[RenderableType] = [Text(f"{_count(len(lines), 'replay request')}:"), table]
    unhappy = [line for line in lines if line.outcome != ReplayOutcome.REPLAYED.value]
    if unhappy:
        details = Table.grid(padding=(0, 2))
        details.add_column(no_wrap=True)
        details.add_column(no_wrap=True)
        details.add_column(overflow="fold")
        for line in unhappy[:MAX_DETAILS]:
            details.add_row(
                Text(line.record_id),
                Text(line.outcome, style=OUTCOME_STYLES[line.outcome]),
                Text(printable(_detail(line))),
            )
        parts += [Text(""), details]
        if len(unhappy) > MAX_DETAILS:
            parts.append(Text(f"... and {len(unhappy) - MAX_DETAILS} more (--json lists them all)"))
    return Group(*parts)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


# -- a page -------------------------------------------------------------------------


def _replay_cell(record: DeadLetter) -> Text:
    replay = record.replay
    label = replay.status.value
    if replay.attempts:
        label += f" ({replay.attempts})"
    return Text(label, style=REPLAY_STYLES.get(replay.status.value, ""))


def render_page(page: Page, *, total: int, show_status: bool) -> RenderableType:
    """Return a listing: one row per record, newest first, and where the next page starts.

    Ids and keys are always printed whole, so an id can be pasted into ``get``. When
    the console is too narrow for a table row with every key whole and some of the
    reason, each record becomes a block of lines instead (id, then its facts, key
    and reason, wrapped to the width).

    Args:
        page: the page.
        total: how many records match the filters in all.
        show_status: add a status column (when the listing mixes or shows archived records).
    """
    if not page.records:
        return Text("no dead letters match")
    shown = len(page.records)
    footer = f"{shown} of {total} matching"
    if page.next_cursor is not None:
        footer += f"; next page: --cursor {page.next_cursor}"
    return Group(_Listing(page.records, show_status=show_status), Text(footer))


MIN_REASON = 20
"""The narrowest reason column a table listing has; narrower consoles get blocks."""


@attrs.frozen
class _Listing:
    """The records of a page, as a table when they fit the console and as blocks when not."""

    records: Sequence[DeadLetter]
    show_status: bool

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        """Render as a table if every key fits whole beside a reason column, else as blocks."""
        fixed = self._table(key=False)
        width = Measurement.get(console, options, fixed).maximum
        key_width = max(cell_len(printable(r.key)) for r in self.records)
        # the table adds the Key and Reason columns, each with one space of padding a side
        if width + key_width + MIN_REASON + 4 <= options.max_width:
            yield self._table(key=True)
        else:
            yield from self._blocks()

    def _table(self, *, key: bool) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("ID", no_wrap=True)
        table.add_column("Created (UTC)", no_wrap=True)
        if self.show_status:
            table.add_column("Status", no_wrap=True)
        table.add_column("Source", no_wrap=True)
        table.add_column("Category", no_wrap=True)
        table.add_column("Replay", no_wrap=True)
        if key:
            # the key is whole; the reason gives up width, cut with an ellipsis
            table.add_column("Key", no_wrap=True)
            table.add_column("Reason", min_width=MIN_REASON)
        for record in self.records:
            row: list[RenderableType] = [Text(record.id), Text(format_time(record.created_at))]
            if self.show_status:
                row.append(_status_cell(record))
            row += [Text(record.source.value), Text(record.category.value), _replay_cell(record)]
            if key:
                row += [Text(printable(record.key)), _one_line(_reason(record))]
            table.add_row(*row)
        return table

    def _blocks(self) -> Iterator[RenderableType]:
        for record in self.records:
            yield Text(record.id, style="bold")
            facts = Text(format_time(record.created_at) + " UTC")
            if self.show_status:
                facts.append("  ").append_text(_status_cell(record))
            facts.append(f"  {record.source.value}  {record.category.value}  replay ")
            facts.append_text(_replay_cell(record))
            details = Table.grid(padding=(0, 1))
            details.add_column(no_wrap=True)
            details.add_column(overflow="fold")
            details.add_row(Text("key"), Text(printable(record.key)))
            details.add_row(Text("reason"), Text(printable(_reason(record))))
            yield Padding(Group(facts, details), (0, 0, 0, 2), expand=False)


def _status_cell(record: DeadLetter) -> Text:
    return Text(record.status.value, style="dim" if record.status is Status.ARCHIVED else "")


def _one_line(text: str) -> Text:
    return Text(printable(text), no_wrap=True, overflow="ellipsis")


def _reason(record: DeadLetter) -> str:
    return f"{record.reason_class}: {record.reason}" if record.reason else record.reason_class


# -- one record ---------------------------------------------------------------------


def _section(title: str, rows: Sequence[tuple[str, str | Text]], empty: str = "none") -> Group:
    heading = Text(title, style="bold underline")
    if not rows:
        return Group(heading, Text(empty, style="dim"), Text(""))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True, min_width=14)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(printable(value)))
    return Group(heading, grid, Text(""))


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else f"{format_time(epoch)} UTC ({epoch:.3f})"


def _pairs_rows(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str | Text]]:
    return [(printable(name), value) for name, value in pairs]


def render_record(record: DeadLetter, *, payload: bool) -> RenderableType:
    """Return every field of *record*; the payload itself only with *payload*.

    A UTF-8 payload is shown as text (control characters escaped), any other as a
    hex preview of its first :data:`HEX_PREVIEW` bytes.
    """
    diagnostics = record.diagnostics
    replay = record.replay
    idempotency = record.idempotency_key or f"- (replays use {record.replay_key})"
    parts = [
        _section(
            f"Dead letter {record.id}",
            [
                ("status", record.status.value),
                ("key", record.key),
                ("source", record.source.value),
                ("category", record.category.value),
                ("reason class", record.reason_class),
                ("reason", record.reason or "-"),
                ("attempts", f"{record.attempt} of {record.max_attempts}"),
                ("correlation id", record.correlation_id or "-"),
                ("idempotency", idempotency),
                ("created", _when(record.created_at)),
                ("updated", _when(record.updated_at)),
            ],
        ),
        _section("Attributes (credentials redacted)", _pairs_rows(record.attributes)),
        _section(
            "Diagnostics",
            [
                ("pressure level", diagnostics.pressure_level or "-"),
                ("queue depth", _optional(diagnostics.queue_depth)),
                ("queue capacity", _optional(diagnostics.queue_capacity)),
            ],
        ),
        _section(
            "Trace context", _pairs_rows(record.trace_context), "none (captured outside a span)"
        ),
        _section(
            "Replay",
            [
                ("status", Text(replay.status.value, style=REPLAY_STYLES[replay.status.value])),
                ("attempts", str(replay.attempts)),
                ("last attempt", _when(replay.last_attempt_at)),
                ("last outcome", "-" if replay.last_outcome is None else replay.last_outcome.value),
                ("last error", replay.last_error or "-"),
                ("lease expires", _when(replay.lease_expires_at)),
            ],
        ),
        _section("Headers (credentials redacted)", _pairs_rows(record.headers)),
        _render_payload(record, show=payload),
    ]
    return Group(*parts)


def _optional(value: int | None) -> str:
    return "-" if value is None else str(value)


def _render_payload(record: DeadLetter, *, show: bool) -> RenderableType:
    size = record.payload_size
    summary = f"{size:,} byte{'s' if size != 1 else ''}, {record.content_type}"
    title = Text("Payload", style="bold underline")
    if not show:
        return Group(title, Text(f"{summary}; add --payload to show it"))
    body = _body(record)
    if body is None:
        return Group(title, Text(f"{summary}; not loaded"))
    text = _utf8(body)
    if text is not None:
        return Group(title, Text(f"{summary}, UTF-8:"), Text(printable(text, keep_newlines=True)))
    preview = body[:HEX_PREVIEW]
    lines = [
        f"{offset:08x}  {preview[offset : offset + 16].hex(' '):<47}  "
        + "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in preview[offset : offset + 16])
        for offset in range(0, len(preview), 16)
    ]
    if len(body) > len(preview):
        lines.append(f"... {len(body) - len(preview):,} more bytes")
    return Group(title, Text(f"{summary}, binary:"), Text("\n".join(lines)))


# -- statistics ---------------------------------------------------------------------


def _count_table(title: str, counts: Mapping[str, int], label: str) -> Group:
    heading = Text(title, style="bold underline")
    if not counts:
        return Group(heading, Text("none", style="dim"), Text(""))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column(label, overflow="fold")
    table.add_column("Records", justify="right")
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(Text(printable(name)), str(count))
    return Group(heading, table, Text(""))


def render_statistics(stats: StoreStatistics) -> RenderableType:
    """Return the totals, a table per dimension, one of retention evictions, then ledger pruning.

    Pruned idempotency ledger entries are not records: they get their own line
    rather than a row among (and a share of the total of) the evicted records.
    """
    active = stats.by_status.get(Status.ACTIVE.value, 0)
    archived = stats.by_status.get(Status.ARCHIVED.value, 0)
    headline = Text(
        f"{stats.total} dead letter{'s' if stats.total != 1 else ''} "
        f"({active} active, {archived} archived); "
        f"{stats.captured} captured since the store was created"
    )
    records = {name: n for name, n in stats.evicted.items() if name != LEDGER_EVICTED}
    evicted = sum(records.values())
    pruned = stats.evicted.get(LEDGER_EVICTED, 0)
    return Group(
        headline,
        Text(""),
        _count_table("By source", stats.by_source, "Source"),
        _count_table("By reason class", stats.by_reason_class, "Reason class"),
        _count_table("By key (the 20 largest)", stats.by_key, "Key"),
        _count_table("By replay status", stats.by_replay_status, "Replay status"),
        _count_table(f"Evicted by retention: {evicted}", records, "Status:rule"),
        Text(f"Idempotency ledger entries pruned by retention: {pruned}"),
    )
