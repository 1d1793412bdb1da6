"""``otpy dlq ...``: list, inspect, replay, archive and purge the dead letters in a store file.

Every command takes ``--db PATH`` (or ``OTPY_DB``), a store the node wrote; none of
them creates one, so a mistyped path is an error rather than a new empty store, and
those that only read open it read-only. People get rich tables; scripts pass
``--json`` (every command takes it) and read one JSON document from stdout, while
prompts and progress bars go to stderr. Typed otpy errors (a locked store, a file
that is not a store, an unknown id...) print their message and exit 1, usage errors
exit 2.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import attrs
import click
from rich.console import Console

import otpy
from otpy.deadletter import (
    MAX_PARTITIONS,
    DeadLetterFilter,
    ReplayOutcome,
    ReplayStatus,
    Source,
    Status,
    is_async_callable,
    open_replayer,
    open_store,
)

from ._dlq_render import (
    NO_OUTCOME,
    ReplayLine,
    iso_time,
    record_json,
    render_page,
    render_record,
    render_replay_summary,
    render_statistics,
    replay_json,
    statistics_json,
)
from ._target import TargetError, check_factory, describe, raised_at, resolve_target

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from contextlib import AbstractAsyncContextManager

    from rich.console import RenderableType
    from rich.progress import Progress

    from otpy.deadletter import DeadLetter, DeadLetterStore, ReplayHandler

__all__ = [
    "Declined",
    "DlqSettings",
    "HandlersError",
    "StoreOpener",
    "dlq",
    "load_handlers",
    "parse_time",
]

T = TypeVar("T")
F = TypeVar("F", bound="Callable[..., Any]")

EXIT_OK = 0
EXIT_FAILED = 1
"""A typed otpy error, a refused confirmation, or a replay that did not end replayed."""

DEFAULT_PARTITIONS = 4
"""Replay workers ``otpy dlq replay`` runs without ``--partitions``."""

DB_ENVVAR = "OTPY_DB"
"""The environment variable ``--db`` is read from when it is not given."""

MAX_LIMIT = 10_000
"""The largest page ``otpy dlq list --limit`` asks for."""

_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_DURATION = re.compile(
    r"^(?=\d)(?:(?P<w>\d+(?:\.\d+)?)w)?(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_UNIT_SECONDS = {"w": 604_800.0, "d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}
_REPLAYED = frozenset({ReplayOutcome.REPLAYED.value, ReplayOutcome.ALREADY_REPLAYED.value})


def _open_sqlite(
    path: str, *, read_only: bool = False
) -> AbstractAsyncContextManager[DeadLetterStore]:
    return open_store(path, read_only=read_only)


class StoreOpener(Protocol):
    """Opens the store at *path*: ``async with opener(path, read_only=True) as store``.

    *read_only* is set by the commands that only read (``list``, ``get``, ``stats``):
    the store must then never be created, migrated or written.
    """

    def __call__(
        self, path: str, /, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[DeadLetterStore]:
        """Return an async context manager yielding the store at *path*."""
        ...


@attrs.frozen(kw_only=True)
class DlqSettings:
    """What ``otpy dlq`` opens stores with and what time it is; tests pass their own.

    Pass an instance as click's ``obj`` (``CliRunner().invoke(main, args, obj=settings)``).

    Attributes:
        open_store: called with the ``--db`` path (and ``read_only=True`` by the
            commands that only read); returns an async context manager yielding the
            store. The SQLite store by default.
        clock: wall-clock time, for relative times (``--since 2h``) and the snapshot
            bulk commands take when they count what they will act on.
    """

    open_store: StoreOpener = _open_sqlite
    clock: Callable[[], float] = time.time


def _settings(ctx: click.Context) -> DlqSettings:
    return ctx.find_object(DlqSettings) or DlqSettings()


# -- times --------------------------------------------------------------------------


def parse_time(text: str, *, now: float) -> float:
    """Return the epoch time *text* names: ISO 8601, or a duration ago.

    ``2h`` is two hours before *now*; units are ``s``, ``m``, ``h``, ``d`` and ``w``
    and combine (``1d12h``). ISO 8601 times without an offset are UTC, as every time
    ``otpy dlq`` prints is.

    Raises:
        ValueError: *text* is neither.

    .. versionadded:: 0.1.0
    """
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
        return now - seconds
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give ISO 8601 (2024-05-01T12:00:00Z, UTC unless it "
            "has an offset) or a duration ago (15m, 2h, 7d, 1d12h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class _TimeParam(click.ParamType[float, str]):
    name = "TIME"

    def convert(
        self, value: str, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        now = (_settings(ctx) if ctx is not None else DlqSettings()).clock()
        try:
            return parse_time(str(value), now=now)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = _TimeParam()


# -- loading handlers ---------------------------------------------------------------


class HandlersError(TargetError):
    """A ``--handlers MODULE:ATTR`` target could not be turned into replay handlers.

    Attributes:
        target: the target as given.

    .. versionadded:: 0.1.0
    """


def load_handlers(target: str) -> dict[Source | str, ReplayHandler]:
    """Import ``MODULE:ATTR`` and return the replay handlers it names, keyed by source.

    Loaded the way ``otpy run`` loads a tree: the current directory goes on
    ``sys.path``, *ATTR* may be dotted, and a function of no arguments is a factory,
    called once to build the mapping (a class, an async function or one annotated
    to return something else is refused without being called).
    The result must be a mapping from a :class:`~otpy.deadletter.Source` (or its
    value, ``"outbound"``) to an async handler, called as
    ``await handler(record, idempotency_key)``: an ``async def`` function, an object
    whose ``__call__`` is one, or a :func:`functools.partial` of either.

    Raises:
        HandlersError: the target cannot be imported, or is not such a mapping (a
            synchronous handler is refused before anything is replayed).

    .. versionadded:: 0.1.0
    """
    value = resolve_target(
        target,
        error=HandlersError,
        wanted="a mapping of replay handlers",
        example="myapp.replay:handlers",
    )
    if not isinstance(value, Mapping) and callable(value):
        check_factory(
            target, value, error=HandlersError, wanted="a mapping of handlers", returns=(Mapping,)
        )
        try:
            value = value()
        except Exception as exc:
            raise HandlersError(
                target,
                f"calling {target}() to build the handlers failed: {describe(exc)}{raised_at(exc)}",
            ) from exc
        if inspect.iscoroutine(value):
            value.close()
            raise HandlersError(target, f"{target} is an async function; make it a plain function")
    if not isinstance(value, Mapping):
        raise HandlersError(
            target,
            f"{target} is {type(value).__name__}, not a mapping; point at a dict of "
            "{source: async handler}, like {'outbound': resend}",
        )
    handlers: dict[Source | str, ReplayHandler] = {}
    for source, handler in value.items():
        try:
            key = Source(source)
        except ValueError:
            known = ", ".join(s.value for s in Source)
            raise HandlersError(
                target, f"{target}: {source!r} is not a dead-letter source; use one of {known}"
            ) from None
        if not callable(handler):
            raise HandlersError(
                target, f"{target}: the handler for {key.value!r} is not callable: {handler!r}"
            )
        if not is_async_callable(handler):
            # A plain function would send when called, then fail to be awaited: the record
            # would be marked failed and sent again by the next replay.
            raise HandlersError(
                target,
                f"{target}: the handler for {key.value!r} is not an async function: "
                f"{handler!r}; write it as `async def handler(record, idempotency_key): ...`",
            )
        handlers[key] = handler
    if not handlers:
        raise HandlersError(target, f"{target} is empty: register a handler per source to replay")
    return handlers


# -- running ------------------------------------------------------------------------


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run *fn* on asyncio (aiosqlite needs it); typed otpy errors become one-line errors."""
    try:
        return anyio.run(fn, backend="asyncio")
    except otpy.OtpyError as exc:
        raise click.ClickException(str(exc)) from None
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if leaves and all(isinstance(e, click.ClickException | click.Abort) for e in leaves):
            raise leaves[0] from None
        if leaves and all(isinstance(e, otpy.OtpyError) for e in leaves):
            message = "\n".join(dict.fromkeys(str(e) for e in leaves))
            raise click.ClickException(message) from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _out() -> Console:
    """A console on stdout; the width comes from the terminal, or ``COLUMNS``."""
    return Console(highlight=False, soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _print(renderable: RenderableType) -> None:
    _out().print(renderable)


def _print_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _say(message: str) -> None:
    click.echo(message)


@contextlib.contextmanager
def _progress(description: str, total: int) -> Iterator[Progress]:
    """A progress bar on stderr, so ``--json`` output stays parseable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err(),
        transient=False,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


def _advance(progress: Progress, amount: int) -> None:
    for task in progress.tasks:
        progress.advance(task.id, amount)


def _plural(count: int, word: str = "dead letter") -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


class Declined(click.ClickException):
    """The confirmation was answered no: exit 1, saying only that nothing changed."""

    exit_code = EXIT_FAILED

    def __init__(self) -> None:
        super().__init__("nothing changed")

    def show(self, file: Any = None) -> None:
        """Print ``nothing changed`` to stderr (click would add ``Error:``)."""
        click.echo(self.message, err=True)


def _confirm(question: str) -> None:
    """Ask on stderr; a refusal exits 1 with nothing changed, saying so once."""
    if not click.confirm(question, default=False, err=True):
        raise Declined()


# -- options ------------------------------------------------------------------------


def _check_db(ctx: click.Context, param: click.Parameter | None, value: Path) -> Path:
    if not value.exists():
        raise click.BadParameter(
            f"{value} does not exist; check the path. 'otpy dlq' never creates a store: "
            "the node that captures dead letters does",
            ctx,
            param,
        )
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory, not a store file", ctx, param)
    return value


def _check_cursor(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _ID.match(value):
        raise click.BadParameter(
            f"{value!r} is not a cursor; pass the id printed after 'next page:'", ctx, param
        )
    return value


def _check_ids(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for record_id in value:
        if not _ID.match(record_id):
            raise click.BadParameter(
                f"{record_id!r} is not a dead-letter id (26 characters, as 'otpy dlq list' shows)",
                ctx,
                param,
            )
    return tuple(dict.fromkeys(value))


CONFIG_META = "otpy.dlq.config"
"""Where ``--config``'s loaded configuration waits in the click context for the command."""


def _db_option(fn: F) -> F:
    """``--db PATH`` or ``--config otpy.toml`` (the node's store); the command gets ``db``."""

    @functools.wraps(fn)
    def command(*args: Any, db: Path | None, config_path: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if config_path is not None:
            from otpy.node import load_config  # here: the other commands need not load it

            try:
                config = load_config(config_path)
            except otpy.ConfigError as exc:
                raise click.UsageError(f"the configuration is invalid: {exc}") from None
            ctx.meta[CONFIG_META] = config
            if db is None:
                db = _check_db(ctx, _param(ctx, "config_path"), config.node.dead_letters_path)
        if db is None:
            raise click.UsageError(
                "Missing option '--db': name the dead-letter store file (or set OTPY_DB), "
                "or give the node's --config"
            )
        return fn(*args, db=db, **kwargs)

    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=str),
        envvar="OTPY_CONFIG",
        show_envvar=True,
        metavar="PATH",
        help="The node's otpy.toml: its dead-letter store (unless --db), and for replay "
        "its gateway.",
    )(command)
    return click.option(
        "--db",
        type=click.Path(path_type=Path),
        callback=_check_optional_db,
        metavar="PATH",
        envvar=DB_ENVVAR,
        show_envvar=True,
        help="The dead-letter store file.",
    )(command)  # type: ignore[return-value]


def _param(ctx: click.Context, name: str) -> click.Parameter | None:
    return next((p for p in ctx.command.params if p.name == name), None)


def _check_optional_db(
    ctx: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    return None if value is None else _check_db(ctx, param, value)


def _json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document to stdout."
    )(fn)


def _yes_option(fn: F) -> F:
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(fn)


def _status_choice(default: str) -> Callable[[F], F]:
    return click.option(
        "--status",
        type=click.Choice(["active", "archived", "all"]),
        default=default,
        show_default=True,
        help="Records with this status.",
    )


_FILTERS = ("key", "source", "reason_class", "replay_status", "since", "until")


def _filter_options(fn: F) -> F:
    options = [
        click.option("--key", metavar="KEY", help="Exactly this dead-letter key."),
        click.option(
            "--source",
            type=click.Choice([s.value for s in Source]),
            help="Failed at this source.",
        ),
        click.option(
            "--reason-class",
            metavar="CLASS",
            help="Failed with exactly this exception class (e.g. httpx.ConnectTimeout).",
        ),
        click.option(
            "--replay-status",
            type=click.Choice([s.value for s in ReplayStatus]),
            help="With this replay status.",
        ),
        click.option(
            "--since",
            type=TIME,
            help="Captured at or after TIME: ISO 8601 (UTC by default) or a duration ago (2h, 7d).",
        ),
        click.option("--until", type=TIME, help="Captured before TIME (same forms as --since)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _status_value(status: str) -> Status | None:
    return None if status == "all" else Status(status)


def _make_filter(
    *, status: Status | None, ids: tuple[str, ...] | None = None, **filters: Any
) -> DeadLetterFilter:
    since, until = filters.get("since"), filters.get("until")
    if since is not None and until is not None and until < since:
        raise click.UsageError(
            f"--until ({iso_time(until)}) is before --since ({iso_time(since)}), so nothing "
            "can match; swap them"
        )
    try:
        where = DeadLetterFilter(status=status, **filters)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return where if ids is None else _only(where, ids)


def _only(where: DeadLetterFilter, ids: tuple[str, ...]) -> DeadLetterFilter:
    # mypy's attrs plugin types the ``ids`` converter (``optional(tuple)``) as taking
    # ``Iterable[_T_co]`` with the type variable unsolved, and rejects every argument
    loose: Any = ids
    return attrs.evolve(where, ids=loose)


def _snapshot(where: DeadLetterFilter, now: float) -> DeadLetterFilter:
    """Limit a bulk filter to what exists now, so a confirmed count is what is acted on."""
    until = now if where.until is None else min(where.until, now)
    return attrs.evolve(where, until=max(until, where.since) if where.since is not None else until)


def _selection(
    ids: tuple[str, ...], all_matching: bool, filters: dict[str, Any], verb: str
) -> bool:
    """Check IDs and filters are not mixed; return whether this is a bulk operation."""
    narrowed = _narrowed(filters)
    if ids and (narrowed or all_matching):
        raise click.UsageError(f"give either IDs or filters (--all-matching) to {verb}, not both")
    if not ids and not (narrowed or all_matching):
        raise click.UsageError(
            f"say what to {verb}: IDs, filters, or --all-matching for every active record"
        )
    return not ids


def _narrowed(filters: Mapping[str, Any]) -> bool:
    return any(filters[name] is not None for name in _FILTERS)


async def _require_ids(store: DeadLetterStore, ids: tuple[str, ...]) -> None:
    """Raise :class:`~otpy.DeadLetterNotFound` for the first of *ids* that is not stored.

    Counts rather than loads, so a corrupt record among them can still be acted on.
    """
    if await store.count(_only(DeadLetterFilter(), ids)) == len(ids):
        return
    for record_id in ids:
        if not await store.count(_only(DeadLetterFilter(), (record_id,))):
            raise otpy.DeadLetterNotFound(record_id)


# -- the group ----------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """Inspect, replay, archive and purge dead letters.

    \b
        otpy dlq list --db var/dead.db --since 2h
        otpy dlq get 01HZX3... --db var/dead.db
        otpy dlq replay --all-matching --source outbound --db var/dead.db \\
            --handlers myapp.replay:handlers

    --db may come from OTPY_DB instead; every command takes --json. Times are
    printed in UTC. Exits 0 on success, 1 on an error (the message says what to
    do), 2 on bad arguments.
    """


@dlq.command("list")
@_db_option
@_status_choice("active")
@_filter_options
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    metavar="N",
    default=50,
    show_default=True,
    help="Records per page.",
)
@click.option(
    "--cursor",
    metavar="ID",
    callback=_check_cursor,
    help="Start after this record: the cursor the previous page printed.",
)
@click.option("--payload", is_flag=True, help="With --json, include payloads (base64 and text).")
@_json_option
@click.pass_context
def list_(
    ctx: click.Context,
    /,
    db: Path,
    status: str,
    limit: int,
    cursor: str | None,
    payload: bool,
    as_json: bool,
    **filters: Any,
) -> None:
    """List dead letters, newest first, one page at a time.

    The page ends with the cursor of the next one, when there is one. A stored row
    that cannot be decoded is reported on stderr, one line per id, the others are
    listed, and the exit code is 1.
    """
    if payload and not as_json:
        raise click.UsageError(
            "--payload needs --json: a listing shows no payloads; "
            "'otpy dlq get ID --payload' shows one"
        )
    settings = _settings(ctx)
    where = _make_filter(status=_status_value(status), **filters)

    async def main() -> tuple[otpy.CorruptRecord, ...]:
        async with settings.open_store(str(db), read_only=True) as store:
            page = await store.list(where, limit=limit, cursor=cursor)
            total = await store.count(where)
        if as_json:
            _print_json(
                {
                    "records": [record_json(r, payload=payload) for r in page.records],
                    "next_cursor": page.next_cursor,
                    "total": total,
                    "corrupt": [{"id": c.record_id, "error": str(c)} for c in page.corrupt],
                }
            )
        else:
            _print(render_page(page, total=total, show_status=status != "active"))
        return page.corrupt

    corrupt = _run(main)
    for exc in corrupt:
        click.echo(f"Error: {exc}", err=True)
    if corrupt:
        ctx.exit(EXIT_FAILED)


@dlq.command()
@click.argument("record_id", metavar="ID", callback=lambda c, p, v: _check_ids(c, p, (v,))[0])
@_db_option
@click.option(
    "--payload", is_flag=True, help="Show the payload: text if UTF-8, else a hex preview."
)
@_json_option
@click.pass_context
def get(ctx: click.Context, record_id: str, db: Path, payload: bool, as_json: bool) -> None:
    """Show one dead letter in full: diagnostics, trace context, replay state, headers.

    The payload is shown only with --payload.
    """
    settings = _settings(ctx)

    async def main() -> None:
        async with settings.open_store(str(db), read_only=True) as store:
            record = await store.get(record_id)
        if as_json:
            _print_json(record_json(record, payload=payload))
        else:
            _print(render_record(record, payload=payload))

    _run(main)


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...", callback=_check_ids)
@_db_option
@click.option(
    "--all-matching",
    is_flag=True,
    help="Replay every active record matching the filters (all of them with no filter).",
)
@_filter_options
@click.option(
    "--handlers",
    "handlers_target",
    metavar="MODULE:ATTR",
    help="A mapping {source: async handler}; each handler re-sends a record: "
    "await handler(record, idempotency_key). Without it, --config's node: an outbound "
    "record is enqueued again in the node's outbox, for its gateway to deliver.",
)
@click.option("--force", is_flag=True, help="Replay even records that succeeded or are in doubt.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1, max=MAX_PARTITIONS),
    metavar="N",
    default=None,
    help=f"Replay workers, 1 to {MAX_PARTITIONS} (default 4; never more than the records "
    "to replay); records with the same key go to the same one, in order.",
)
@_yes_option
@_json_option
@click.pass_context
def replay(
    ctx: click.Context,
    /,
    ids: tuple[str, ...],
    db: Path,
    all_matching: bool,
    handlers_target: str | None,
    force: bool,
    partitions: int | None,
    yes: bool,
    as_json: bool,
    **filters: Any,
) -> None:
    """Re-send dead letters through their source's handler.

    Give IDs, or --all-matching with the list filters. A bulk replay asks for
    confirmation with the count (unless --yes) and shows a progress bar on stderr.
    Exits 0 when every record ended replayed (or had been already), 1 otherwise:
    a failure, a record in doubt, an archived record or one a replay is running for.

    \b
    With the node's config, no --handlers is needed: an outbound record goes back
    into the node's outbox (durably, with its idempotency key), and the running
    node's gateway delivers it (or the next one to start):
        otpy dlq replay --all-matching --source outbound --config otpy.toml
    """
    settings = _settings(ctx)
    bulk = _selection(ids, all_matching, filters, "replay")
    outbox: Any = None  # the node's outbox, opened around the replay
    handlers: dict[Source | str, ReplayHandler]
    if handlers_target is not None:
        try:
            handlers = load_handlers(handlers_target)
        except HandlersError as exc:
            raise click.BadParameter(str(exc), ctx, param_hint="'--handlers'") from None
        handlers_name = handlers_target
    else:
        config = ctx.meta.get(CONFIG_META)
        if config is None:
            raise click.UsageError(
                "Missing option '--handlers': name the replay handlers (MODULE:ATTR), or "
                "give the node's --config to replay through its gateway"
            )
        from otpy.node import node_parts

        parts = node_parts(config)
        handlers = {source: fn for source, fn in parts.replay_handlers.items()}
        outbox = parts.outbox
        handlers_name = f"the node's gateway ({config.source or 'defaults'})"
    where = _make_filter(status=Status.ACTIVE, **filters)

    async def main() -> list[ReplayLine]:
        if outbox is None:
            return await replay_all()
        await outbox.open()
        try:
            return await replay_all()
        finally:
            await outbox.aclose()

    async def replay_all() -> list[ReplayLine]:
        async with settings.open_store(str(db)) as store:
            if bulk:
                target = _snapshot(where, settings.clock())
            else:
                await _require_ids(store, ids)
                # every status: an archived record is reported as refused, not skipped
                target = _only(DeadLetterFilter(), ids)
            total = await store.count(target)
            if total == 0:
                return []
            await _check_handlers(store, target, handlers, handlers_name)
            if bulk and not yes:
                _confirm(f"Replay {_plural(total)}?")
            return await _replay(
                store,
                handlers,
                target,
                total=total if bulk else None,
                force=force,
                # A worker per partition is started up front: never more than can be busy.
                partitions=min(partitions or DEFAULT_PARTITIONS, total),
            )

    lines = _run(main)
    if as_json:
        _print_json(replay_json(lines))
    elif not lines:
        _say("no dead letters match; nothing replayed")
    else:
        _print(render_replay_summary(lines))
    ctx.exit(EXIT_OK if all(line.outcome in _REPLAYED for line in lines) else EXIT_FAILED)


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...", callback=_check_ids)
@_db_option
@click.option(
    "--all-matching",
    is_flag=True,
    help="Archive every active record matching the filters (all of them with no filter).",
)
@_filter_options
@_yes_option
@_json_option
@click.pass_context
def archive(
    ctx: click.Context,
    /,
    ids: tuple[str, ...],
    db: Path,
    all_matching: bool,
    yes: bool,
    as_json: bool,
    **filters: Any,
) -> None:
    """Archive active dead letters: kept for the record, never replayed.

    Give IDs, or filters (--all-matching alone archives every active record).
    Asks for confirmation with the count unless --yes. Records a replay is running
    for are skipped.
    """
    settings = _settings(ctx)
    bulk = _selection(ids, all_matching, filters, "archive")

    async def main() -> tuple[int, int]:
        async with settings.open_store(str(db)) as store:
            if bulk:
                target = _snapshot(_make_filter(status=Status.ACTIVE, **filters), settings.clock())
            else:
                await _require_ids(store, ids)
                target = _make_filter(status=Status.ACTIVE, ids=ids)
            total = await store.count(target)
            if total == 0:
                return 0, 0
            if not yes:
                _confirm(f"Archive {_plural(total)}? Archived records are never replayed.")
            if not bulk:
                return await store.archive(target), total
            with _progress("archiving", total) as progress:
                done = await store.archive(target)
                _advance(progress, total)
            return done, total

    done, total = _run(main)
    _report("archived", done, total, as_json=as_json)


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...", callback=_check_ids)
@_db_option
@click.option(
    "--status",
    type=click.Choice(["active", "archived", "all"]),
    default=None,
    help="Records with this status: archived by default. "
    "Active records are only purged when asked for, and always after confirmation.",
)
@_filter_options
@click.option(
    "--older-than",
    type=TIME,
    metavar="AGE",
    help="Only records captured before AGE ago (30d) or before an ISO 8601 time.",
)
@click.option(
    "--id",
    "more_ids",
    multiple=True,
    metavar="ID",
    callback=_check_ids,
    help="Also this record (repeatable), like an ID argument.",
)
@_yes_option
@_json_option
@click.pass_context
def purge(
    ctx: click.Context,
    /,
    ids: tuple[str, ...],
    db: Path,
    status: str | None,
    older_than: float | None,
    more_ids: tuple[str, ...],
    yes: bool,
    as_json: bool,
    **filters: Any,
) -> None:
    """Delete dead letters for good, with their payloads.

    Give IDs (any status: a corrupt record, say), or filters: the list filters,
    --older-than and --status (archived records unless it says otherwise). Asks
    for confirmation with the count unless --yes. Records a replay is running for
    are skipped.
    """
    settings = _settings(ctx)
    ids = tuple(dict.fromkeys(ids + more_ids))
    if ids and (status is not None or older_than is not None or _narrowed(filters)):
        raise click.UsageError("give either IDs or filters to purge, not both")
    if older_than is not None:
        until = filters["until"]
        filters["until"] = older_than if until is None else min(until, older_than)
    chosen = status or ("all" if ids else "archived")
    where = _make_filter(status=_status_value(chosen), ids=ids or None, **filters)

    async def main() -> tuple[int, int]:
        async with settings.open_store(str(db)) as store:
            if ids:
                await _require_ids(store, ids)
            target = where if ids else _snapshot(where, settings.clock())
            total = await store.count(target)
            if total == 0:
                return 0, 0
            active = (
                await store.count(attrs.evolve(target, status=Status.ACTIVE))
                if target.status is not Status.ARCHIVED
                else 0
            )
            if not yes:
                detail = f" ({active} active, never replayed)" if active else ""
                _confirm(f"Purge {_plural(total)}{detail}? This cannot be undone.")
            if ids:
                return await store.purge(target), total
            with _progress("purging", total) as progress:
                done = await store.purge(target)
                _advance(progress, total)
            return done, total

    done, total = _run(main)
    _report("purged", done, total, as_json=as_json)


def _report(verb: str, done: int, total: int, *, as_json: bool) -> None:
    if as_json:
        _print_json({verb: done, "matched": total, "skipped": total - done})
    else:
        _say(_done_message(verb, done, total))


def _done_message(verb: str, done: int, total: int) -> str:
    if total == 0:
        return f"no dead letters match; nothing {verb}"
    message = f"{verb} {_plural(done)}"
    if done < total:
        message += f"; {total - done} skipped: a replay is running for them"
    return message


@dlq.command()
@_db_option
@_json_option
@click.pass_context
def stats(ctx: click.Context, db: Path, as_json: bool) -> None:
    """Count dead letters by status, source, reason class, key and replay status.

    Also shows how many records retention evicted, by status and rule, and how
    many idempotency ledger entries it pruned.
    """
    settings = _settings(ctx)

    async def main() -> None:
        async with settings.open_store(str(db), read_only=True) as store:
            statistics = await store.statistics()
        if as_json:
            _print_json(statistics_json(statistics))
        else:
            _print(render_statistics(statistics))

    _run(main)


@dlq.command()
@click.argument("record_id", metavar="ID", callback=lambda c, p, v: _check_ids(c, p, (v,))[0])
@_db_option
@click.option(
    "--succeeded/--failed",
    "succeeded",
    default=None,
    help="What you found at the destination: the side effect happened, or it did not.",
)
@_json_option
@click.pass_context
def resolve(
    ctx: click.Context, record_id: str, db: Path, succeeded: bool | None, as_json: bool
) -> None:
    """Settle an in-doubt replay by hand, after checking the destination.

    --succeeded marks it replayed (it is never sent again without --force);
    --failed marks it failed, so it can be replayed. Doubt belongs to the
    idempotency key: every other record carrying the same key that is in doubt is
    settled the same way. See runbooks/replay.md.
    """
    if succeeded is None:  # click does not enforce required=True on a flag pair
        raise click.UsageError(
            "say what you found at the destination: --succeeded (the side effect "
            "happened) or --failed (it did not)"
        )
    settings = _settings(ctx)

    async def main() -> tuple[DeadLetter, int]:
        async with settings.open_store(str(db)) as store:
            record = await store.get(record_id)
            if record.replay.status is not ReplayStatus.IN_DOUBT:
                raise click.ClickException(_not_in_doubt(record_id, record.replay.status))
            others = await _doubts_sharing_key(store, record, settings.clock())
            try:
                resolved = await store.resolve(record_id, succeeded=succeeded)
            except ValueError as exc:  # a forced replay of the key is sending it now
                raise click.ClickException(str(exc)) from None
            return resolved, others

    resolved, others = _run(main)
    also = ""
    if others:
        also = (
            f", with {_plural(others, 'other record')} carrying idempotency key "
            f"{resolved.replay_key!r}"
        )
    if as_json:
        _print_json(record_json(resolved, payload=False))
    elif succeeded:
        _say(f"dead letter {record_id} resolved as succeeded{also}; it will not be replayed again")
    else:
        _say(
            f"dead letter {record_id} resolved as failed{also}; 'otpy dlq replay' can send it again"
        )


async def _doubts_sharing_key(store: DeadLetterStore, record: DeadLetter, now: float) -> int:
    """Count the other records resolving *record* settles too (what the store's resolve picks)."""
    count = 0
    for status in (ReplayStatus.IN_DOUBT, ReplayStatus.RUNNING):
        cursor: str | None = None
        while True:
            page = await store.list(
                DeadLetterFilter(replay_status=status), limit=500, cursor=cursor
            )
            count += sum(
                1
                for other in page.records
                if other.id != record.id
                and other.replay_key == record.replay_key
                and (
                    status is ReplayStatus.IN_DOUBT or (other.replay.lease_expires_at or 0.0) <= now
                )
            )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return count


def _not_in_doubt(record_id: str, status: ReplayStatus) -> str:
    return (
        f"dead letter {record_id} is not in doubt (its replay status is {status.value!r}): "
        "only in-doubt records are resolved by hand; 'otpy dlq replay' replays the others"
    )


# -- replaying ----------------------------------------------------------------------


async def _check_handlers(
    store: DeadLetterStore,
    where: DeadLetterFilter,
    handlers: Mapping[Source | str, ReplayHandler],
    target: str,
) -> None:
    """Refuse, before anything is replayed, records from a source *handlers* lacks."""
    for source in Source:
        if source in handlers or where.source not in (None, source):
            continue
        count = await store.count(attrs.evolve(where, source=source))
        if count:
            raise click.ClickException(
                f"nothing replayed: {_plural(count)} to replay came from source "
                f"{source.value!r}, which {target} has no handler for; add one, or narrow "
                "the replay with --source"
            )


def _no_handler(source: str, handlers: Mapping[Source | str, ReplayHandler]) -> str:
    known = ", ".join(sorted(str(s) for s in handlers))
    return (
        f"records to replay came from source {source!r}, which has no handler (handlers: "
        f"{known}); add one, or narrow the replay with --source"
    )


async def _replay(
    store: DeadLetterStore,
    handlers: Mapping[Source | str, ReplayHandler],
    where: DeadLetterFilter,
    *,
    total: int | None,
    force: bool,
    partitions: int,
) -> list[ReplayLine]:
    """Replay what *where* matches on a replay supervisor of our own; *total* shows progress.

    The supervisor runs on a node opened for the occasion and partitions records by
    key, so one key's records are replayed in order, as the node's own replayer does.
    A replay running elsewhere (the node's) holds its lease: this one answers
    ``in_progress`` for it rather than sending twice.
    """
    async with otpy.open_node(), open_replayer(store, handlers, partitions=partitions) as replayer:
        try:
            if total is None:
                results = await replayer.replay_many(where, force=force)
            else:
                with _progress("replaying", total) as progress:
                    results = await replayer.replay_many(
                        where, force=force, on_progress=lambda _: _advance(progress, 1)
                    )
        except otpy.NoReplayHandler as exc:  # a record captured since _check_handlers
            raise click.ClickException(_no_handler(exc.source, handlers)) from None
    return [
        ReplayLine(
            record_id=result.record_id,
            outcome=NO_OUTCOME if result.outcome is None else result.outcome.value,
            error=result.error,
            record=result.record,
        )
        for result in results
    ]
