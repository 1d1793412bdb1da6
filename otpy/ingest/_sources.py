"""Sources other than HTTP: JSON lines (a file or stdin) and memory, loaded through :meth:`IngestApp.submit`.

A source yields :class:`SourceBatch` objects: the messages it read, where each came
from, and the lines it could not read. :func:`load_source` submits each batch,
waits out the refusals that pass by themselves (the route's pressure, a full
journal) and reports every line: accepted, duplicate, refused or malformed.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol, final, runtime_checkable

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._check import count, number
from .._check import name as check_name
from .._exceptions import InvalidArgument, InvalidArgumentType
from ..pressure import Priority
from ._app import DEFAULT_MAX_BATCH_SIZE, SOURCE_LINE_FIELDS, IngestApp, Refused, line_fields
from ._message import IngestMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

    from ._message import SubmitResult

__all__ = [
    "DEFAULT_MAX_WAIT",
    "JsonLinesSource",
    "LoadReport",
    "Malformed",
    "MemorySource",
    "MessageSource",
    "Refusal",
    "SourceBatch",
    "load_source",
]

DEFAULT_BATCH: Final = 100
"""The messages a source yields at a time, and so submits in one journal call."""

DEFAULT_MAX_WAIT: Final = 60.0
"""How long :func:`load_source` waits in a row for a busy node before it gives up, seconds."""

_READ_CHUNK: Final = 65_536


# -- what a source yields -------------------------------------------------------------


@attrs.frozen
class Malformed:
    """A line a source could not read as a message; it was skipped and the load went on.

    Attributes:
        line: its number in the source, counting every line from 1.
        error: as the batch endpoint says it: ``bad_json``, ``bad_line`` (not an
            object, an unknown or mistyped field, a bad body), ``bad_priority``,
            ``bad_request`` (an empty key or content type); and ``no_route``
            (neither the line nor the source names one) or ``too_large`` (the line
            passes the source's ``max_line_size``).
        detail: what is wrong.

    .. versionadded:: 0.2.0
    """

    line: int
    error: str
    detail: str


def _lines(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _malformed(value: Iterable[Malformed]) -> tuple[Malformed, ...]:
    return tuple(value)


def _one_line_each(batch: SourceBatch, _attribute: object, lines: tuple[int, ...]) -> None:
    if lines and len(lines) != len(batch.messages):
        raise InvalidArgument(
            "lines",
            f"must give one line per message ({len(batch.messages)}) or none, got {len(lines)}",
            owner="SourceBatch",
        )


def _messages(value: Iterable[IngestMessage]) -> tuple[IngestMessage, ...]:
    messages = tuple(value)
    for message in messages:
        if not isinstance(message, IngestMessage):
            raise InvalidArgumentType(
                "messages",
                f"must hold IngestMessage objects, got {type(message).__name__}",
                owner="SourceBatch",
            )
    return messages


@attrs.frozen(kw_only=True)
class SourceBatch:
    """What a :class:`MessageSource` yields: messages to submit together, and the lines it skipped.

    Attributes:
        messages: the messages read, in order; submitted in one call.
        lines: where each message came from (its line number in a file, its
            position in a list); empty if the source has no such thing.
        malformed: the lines read with them that are not messages.

    Raises:
        InvalidArgument: *lines* is neither empty nor one per message.

    .. versionadded:: 0.2.0
    """

    messages: tuple[IngestMessage, ...] = attrs.field(converter=_messages)
    lines: tuple[int, ...] = attrs.field(default=(), converter=_lines, validator=_one_line_each)
    malformed: tuple[Malformed, ...] = attrs.field(default=(), converter=_malformed)


@runtime_checkable
class MessageSource(Protocol):
    """Anything :func:`load_source` loads: an async iterable of :class:`SourceBatch`.

    .. versionadded:: 0.2.0
    """

    def __aiter__(self) -> AsyncIterator[SourceBatch]:
        """Yield the batches, in order."""
        ...


def _batch_size(value: object, owner: str) -> int:
    return count(value, "batch", owner=owner, maximum=100_000)


# -- memory -----------------------------------------------------------------------------


@final
class MemorySource:
    """Messages from a list, *batch* at a time; their lines are their positions from 1.

    For tests, and for a program that has its messages in hand.

    Args:
        messages: the messages.
        batch: how many to submit in one call.

    Raises:
        InvalidArgumentType: *messages* holds something else than an
            :class:`IngestMessage`.
        InvalidArgument: *batch* is not a positive integer.

    .. versionadded:: 0.2.0
    """

    def __init__(self, messages: Iterable[IngestMessage], *, batch: int = DEFAULT_BATCH) -> None:
        self.messages = _messages(messages)
        self.batch = _batch_size(batch, "MemorySource")

    def __repr__(self) -> str:
        return f"<MemorySource messages={len(self.messages)} batch={self.batch}>"

    async def __aiter__(self) -> AsyncIterator[SourceBatch]:
        """Yield the messages *batch* at a time."""
        for start in range(0, len(self.messages), self.batch):
            await anyio.lowlevel.checkpoint()
            chunk = self.messages[start : start + self.batch]
            yield SourceBatch(messages=chunk, lines=range(start + 1, start + 1 + len(chunk)))


# -- JSON lines -------------------------------------------------------------------------


@attrs.frozen
class _TooLong:
    """A line read past the limit (and the rest of it skipped)."""


_TOO_LONG: Final = _TooLong()


@final
class JsonLinesSource:
    """Messages from JSON lines, a file or a binary stream (stdin), in the batch endpoint's format.

    A line is what ``POST /v1/routes/{route}/batch`` takes (docs/ingest.md, "The
    batch line format"): an object with ``body`` or ``body_base64``, and optionally
    ``key``, ``idempotency_key``, ``priority`` and ``content_type``. It may also say
    its ``route``, which wins over the source's *route*; a line with neither is
    malformed. Blank lines are skipped; line numbers count every line from 1. A line
    that is not a message is reported as :class:`Malformed` with its number, and the
    reading goes on.

    Lines are read *batch* at a time, in a worker thread (a file read blocks).

    Args:
        source: a path (opened, and closed after, at each iteration) or a binary
            stream such as ``sys.stdin.buffer`` (read from where it is; not closed).
        route: the route of the lines that name none.
        batch: how many lines to read (and so submit) at a time.
        max_line_size: the longest line read, bytes; a longer one is malformed
            (``too_large``) and skipped to its end without being kept in memory.

    Raises:
        InvalidArgumentType: *source* is a text stream or not a path or a stream.
        InvalidArgument: *route*, *batch* or *max_line_size* is not allowed.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        route: str | None = None,
        batch: int = DEFAULT_BATCH,
        max_line_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> None:
        owner = "JsonLinesSource"
        if isinstance(source, io.TextIOBase):
            raise InvalidArgumentType(
                "source",
                "must be a path or a binary stream; for stdin pass sys.stdin.buffer",
                owner=owner,
            )
        if not isinstance(source, (str, os.PathLike)) and not callable(
            getattr(source, "readline", None)
        ):
            raise InvalidArgumentType(
                "source",
                f"must be a path or a binary stream, got {type(source).__name__}",
                owner=owner,
            )
        self.source = source
        self.route = None if route is None else check_name(route, "route", owner=owner)
        self.batch = _batch_size(batch, owner)
        self.max_line_size = count(max_line_size, "max_line_size", owner=owner)

    def __repr__(self) -> str:
        where = os.fspath(self.source) if isinstance(self.source, (str, os.PathLike)) else "stream"
        return f"<JsonLinesSource {where!r} route={self.route!r} batch={self.batch}>"

    async def __aiter__(self) -> AsyncIterator[SourceBatch]:
        """Read the lines *batch* at a time; yield their messages and the malformed ones."""
        opened: BinaryIO | None = None
        if isinstance(self.source, (str, os.PathLike)):
            opened = await anyio.to_thread.run_sync(open, self.source, "rb")
            stream: BinaryIO = opened
        else:
            stream = self.source
        try:
            number = 0
            while True:
                raws, eof = await anyio.to_thread.run_sync(self._read, stream)
                messages: list[IngestMessage] = []
                lines: list[int] = []
                malformed: list[Malformed] = []
                for raw in raws:
                    number += 1
                    if isinstance(raw, _TooLong):
                        malformed.append(
                            Malformed(
                                number,
                                "too_large",
                                f"the line is over the {self.max_line_size} bytes allowed",
                            )
                        )
                        continue
                    if not raw.strip():
                        continue
                    read = self._message(raw, number)
                    if isinstance(read, Malformed):
                        malformed.append(read)
                    else:
                        messages.append(read)
                        lines.append(number)
                if messages or malformed:
                    yield SourceBatch(messages=messages, lines=lines, malformed=malformed)
                if eof:
                    return
        finally:
            if opened is not None:
                opened.close()

    def _read(self, stream: BinaryIO) -> tuple[list[bytes | _TooLong], bool]:
        """Up to *batch* lines (in a worker thread), and whether the stream ended."""
        raws: list[bytes | _TooLong] = []
        while len(raws) < self.batch:
            raw = stream.readline(self.max_line_size + 1)
            if not isinstance(raw, bytes):
                raise InvalidArgumentType(
                    "source",
                    f"must be a binary stream; its readline gave {type(raw).__name__}",
                    owner="JsonLinesSource",
                )
            if not raw:
                return raws, True
            if len(raw) > self.max_line_size and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest, a chunk at a time
                    raw = stream.readline(_READ_CHUNK)
                raws.append(_TOO_LONG)
                if not raw:
                    return raws, True
                continue
            raws.append(raw)
        return raws, False

    def _message(self, raw: bytes, number: int) -> IngestMessage | Malformed:
        try:
            fields = line_fields(raw, SOURCE_LINE_FIELDS)
        except Refused as exc:
            return Malformed(number, exc.reason, exc.detail)
        route = fields["route"] if fields["route"] is not None else self.route
        if route is None:
            return Malformed(
                number, "no_route", "the line names no 'route' and the source has no default"
            )
        priority = fields["priority"]
        if priority is not None and priority.strip().upper() not in Priority.__members__:
            return Malformed(
                number,
                "bad_priority",
                f"'priority' must be low, normal, high or critical, got {priority[:40]!r}",
            )
        try:
            return IngestMessage(
                route=route,
                body=fields["body"],
                key=fields["key"],
                idempotency_key=fields["idempotency_key"],
                priority=None if priority is None else priority.strip(),
                content_type=fields["content_type"],
            )
        except InvalidArgument as exc:  # an empty key, a lone surrogate: the entry's checks
            return Malformed(number, "bad_request", f"{exc.argument!r} {exc.problem}")


# -- loading ----------------------------------------------------------------------------


@attrs.frozen
class Refusal:
    """A message :func:`load_source` could not journal, and why.

    Attributes:
        line: where it came from in its source (``None`` if the source does not say).
        route: the route it was for.
        status: the status the HTTP ingest would have answered.
        error: the reason (``unknown_route``, ``too_large``, ``bad_request``,
            ``shed``, ``deferred``, ``route_full``, ``journal_full``).
        detail: what was wrong.

    .. versionadded:: 0.2.0
    """

    line: int | None
    route: str
    status: int
    error: str
    detail: str


@attrs.frozen(kw_only=True)
class LoadReport:
    """What :func:`load_source` did with every line of its source.

    Attributes:
        accepted: messages journalled.
        duplicates: messages answered as repeats of ones journalled before
            (within the dedup window): journalled already, nothing stored.
        refusals: the messages refused, in order.
        malformed: the lines that were not messages, in order.
        waited: seconds spent waiting for the node's pressure or journal to ease.

    .. versionadded:: 0.2.0
    """

    accepted: int
    duplicates: int
    refusals: tuple[Refusal, ...]
    malformed: tuple[Malformed, ...]
    waited: float

    @property
    def refused(self) -> Mapping[str, int]:
        """The refusals counted by reason, sorted by reason."""
        return dict(sorted(Counter(r.error for r in self.refusals).items()))

    @property
    def complete(self) -> bool:
        """Every line is in the journal: accepted or a duplicate, none refused or malformed."""
        return not self.refusals and not self.malformed


async def load_source(
    source: MessageSource,
    app: IngestApp,
    *,
    max_wait: float = DEFAULT_MAX_WAIT,
    reload_pending: bool = False,
) -> LoadReport:
    """Submit every batch of *source* to *app*, waiting out a busy node; report every line.

    Batches are submitted in order, one :meth:`IngestApp.submit` (one journal call)
    each. The messages refused with a ``429`` (the route's pressure, a full
    journal) are submitted again after the ``retry_after`` the app answers with,
    before the next batch, until they pass. A load is not dropped because the node
    is busy, but it does not hang on a node that is stuck either: once it has
    waited *max_wait* seconds in a row without a message journalled, the messages
    still refused are reported refused, and so is any later one refused with a
    ``429`` until a message gets through again. Other refusals are reported at
    once. A retried message is journalled after the messages of its batch that
    passed the first time.

    Args:
        source: what to load (:class:`JsonLinesSource`, :class:`MemorySource`...).
        app: the ingest whose routes and journal take the messages.
        max_wait: the most seconds waited in a row without progress; 0 retries
            nothing.
        reload_pending: before each retry, read the routes' pending depths from
            the journal (:meth:`IngestApp.load_pending`). Set it when *app* is not
            the running node's (``otpy ingest load``): that node's hand-over lowers
            the depths in its own process, not in *app*.

    Returns:
        The :class:`LoadReport`.

    Raises:
        InvalidArgumentType: *source* or *app* is of the wrong type.
        InvalidArgument: *max_wait* is negative or not finite.

    .. versionadded:: 0.2.0
    """
    owner = "load_source"
    if not isinstance(source, MessageSource):
        raise InvalidArgumentType("source", "must be a MessageSource (async iterable)", owner=owner)
    if not isinstance(app, IngestApp):
        raise InvalidArgumentType("app", "must be an IngestApp", owner=owner)
    limit = number(max_wait, "max_wait", owner=owner, positive=False, unit=" of seconds")
    accepted = duplicates = 0
    refusals: list[Refusal] = []
    malformed: list[Malformed] = []
    waited = 0.0
    stalled_since: float | None = None  # since when nothing has been journalled
    iterator = aiter(source)
    try:
        async for batch in iterator:
            malformed.extend(batch.malformed)
            lines = batch.lines or (None,) * len(batch.messages)
            refused: dict[int, SubmitResult] = {}  # by the message's index in the batch
            todo = list(range(len(batch.messages)))
            while todo:
                results = await app.submit([batch.messages[i] for i in todo])
                retry: list[int] = []
                delay = 0
                for index, result in zip(todo, results, strict=True):
                    if result.journalled:
                        stalled_since = None
                        if result.duplicate:
                            duplicates += 1
                        else:
                            accepted += 1
                    elif result.retryable:
                        retry.append(index)
                        delay = max(delay, result.retry_after or 1)
                        refused[index] = result  # unless a retry passes
                    else:
                        refused[index] = result
                if not retry:
                    break
                now = anyio.current_time()
                if stalled_since is None:
                    stalled_since = now
                if now + delay - stalled_since > limit:
                    break
                await anyio.sleep(delay)
                waited += delay
                if reload_pending:
                    await app.load_pending()
                for index in retry:
                    del refused[index]
                todo = retry
            refusals.extend(
                _refusal(batch.messages[i], lines[i], refused[i]) for i in sorted(refused)
            )
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
    return LoadReport(
        accepted=accepted,
        duplicates=duplicates,
        refusals=tuple(refusals),
        malformed=tuple(malformed),
        waited=waited,
    )


def _refusal(message: IngestMessage, line: int | None, result: SubmitResult) -> Refusal:
    return Refusal(
        line=line,
        route=message.route,
        status=result.status,
        error=result.error or "refused",
        detail=result.detail or "",
    )
