"""``otpy run MODULE:ATTR``: load a supervision tree by name and run it as a node.

The tree is loaded the way hypercorn loads ``module:app``: *ATTR* names a
:class:`~otpy.SupervisorSpec` or :class:`~otpy.DynamicSupervisorSpec`, or a factory
of no arguments returning one, called once to build the tree. The node runs on
asyncio (with uvloop when it is installed) until SIGINT or SIGTERM: the first
signal stops the tree gracefully, a second one stops it at once.
"""

from __future__ import annotations

import contextvars
import datetime
import functools
import inspect
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, final

import anyio
import click

import otpy
from otpy._redact import format_exception, get_logger, redact

from ._target import TargetError, check_factory, describe, raised_at, resolve_target

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from anyio.abc import TaskGroup, TaskStatus
    from rich.console import Console

    from otpy.node import NodeConfig

__all__ = ["JsonFormatter", "RunningNode", "TargetError", "load_target", "run", "run_node"]

logger = get_logger("otpy.cli")

Spec = otpy.SupervisorSpec | otpy.DynamicSupervisorSpec

TELEMETRY_FLUSH = 3.0
"""Seconds the node waits at exit for spans and metrics to be exported."""

EXIT_OK = 0
"""The tree stopped cleanly."""
EXIT_FAILED = 1
"""The tree failed to start, its root supervisor gave up or crashed, or it was stopped at once."""
EXIT_USAGE = 2
"""Bad arguments: the target could not be loaded (click's usage-error code)."""


_json_status: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "otpy_json_status", default=False
)
"""Set by ``otpy run --log-format json``: status lines are JSON log lines too."""


def say(message: str, *, level: int = logging.INFO) -> None:
    """Print one ``otpy:`` status line to stderr, whatever the log level.

    ``sys.stderr`` is looked up at each call and written as text, so the live
    console's redirect (which prints above the view) and test captures see it.
    Under ``--log-format json`` the line is a JSON log line from logger
    ``otpy.cli`` at *level*, so stderr holds nothing but JSON.
    """
    stream = sys.stderr
    if _json_status.get():
        stream.write(_json_line(level, message) + "\n")
    else:
        stream.write(f"otpy: {message}\n")
    stream.flush()


def _json_line(
    level: int, message: str, *, exc: BaseException | None = None, **fields: object
) -> str:
    """One JSON log line from logger ``otpy.cli``, written whatever the log level."""
    import json  # here, as in JsonFormatter: `otpy --help` need not import it

    exc_info = None if exc is None else (type(exc), exc, exc.__traceback__)
    record = logger.makeRecord(logger.name, level, __file__, 0, message, (), exc_info)
    if not fields:
        return JsonFormatter().format(record)
    entry = json.loads(JsonFormatter().format(record))
    entry.update(fields)
    return json.dumps(entry, default=str, ensure_ascii=False)


# -- loading the tree --------------------------------------------------------------------


NODE_TARGET = "otpy.supervisors.node:node"
"""The tree ``otpy run`` runs with no target: the messaging node (``supervisors/node.py``)."""


def load_target(target: str, *, config: object | None = None) -> Spec:
    """Import ``MODULE:ATTR`` and return the supervisor spec it names.

    The current directory is put on ``sys.path`` first, so ``otpy run`` finds the
    project's own modules. *ATTR* may be dotted (``module:trees.root``).

    Importing the module is the only user code run to find out what *ATTR* is.
    A callable *ATTR* is a factory: it is called once, with no arguments, to build
    the tree, and must return a spec. A class is never instantiated, and a function
    that needs arguments, is async, or is annotated to return something else (a
    program's ``def main() -> None``) is refused without being called.

    With *config* (``otpy run --config``), *ATTR* must be a factory taking one
    argument, and it is called with the configuration instead.

    Args:
        target: ``"package.module:attribute"``.
        config: the node's configuration (an :class:`otpy.node.NodeConfig`) to build
            the tree from, or ``None``.

    Returns:
        The :class:`~otpy.SupervisorSpec` or :class:`~otpy.DynamicSupervisorSpec`.

    Raises:
        TargetError: the syntax is wrong, the module cannot be imported, the attribute
            is missing, or it is not a supervisor spec or a factory returning one.

    .. versionadded:: 0.1.0
    """
    value = resolve_target(
        target,
        error=TargetError,
        wanted="a supervisor spec",
        example="supervisors.demo:root",
        attribute_hint=_specs_hint,
    )
    if config is not None and (isinstance(value, _SPECS) or not _takes_one(value)):
        raise TargetError(
            target,
            f"{target} does not take a configuration, so --config cannot be used with it; "
            "point at a function of one argument (the otpy.node.NodeConfig) that returns "
            "the tree, like otpy.supervisors.node:node",
        )
    if isinstance(value, _SPECS):
        return value
    if not callable(value):
        raise TargetError(target, _wrong_type(target, value))
    if config is None:
        check_factory(target, value, error=TargetError, wanted="a supervisor spec", returns=_SPECS)
    try:
        result = value() if config is None else value(config)
    except Exception as exc:
        raise TargetError(
            target,
            f"calling {target}() to build the tree failed: {describe(exc)}{raised_at(exc)}",
        ) from exc
    if inspect.iscoroutine(result):  # an async function check_factory could not see
        result.close()
        raise TargetError(
            target,
            f"{target} is an async function; make it a plain function that returns "
            "the SupervisorSpec",
        )
    if isinstance(result, _SPECS):
        return result
    raise TargetError(target, _wrong_type(f"{target}()", result, returned=True))


_SPECS = (otpy.SupervisorSpec, otpy.DynamicSupervisorSpec)


def _takes_one(value: object) -> bool:
    """Whether *value* is a plain function that can be called with one positional argument."""
    if not callable(value) or inspect.isclass(value) or inspect.iscoroutinefunction(value):
        return False
    try:
        inspect.signature(value).bind(None)
    except (TypeError, ValueError):
        return False
    return True


def _wrong_type(what: str, value: object, *, returned: bool = False) -> str:
    verb = "returned" if returned else "is"
    return (
        f"{what} {verb} {_short_repr(value)} ({type(value).__name__}), not a supervisor spec; "
        "point at an otpy.SupervisorSpec or otpy.DynamicSupervisorSpec, or a function "
        "returning one"
    )


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _specs_hint(module: object) -> str:
    specs = sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, (otpy.SupervisorSpec, otpy.DynamicSupervisorSpec))
    )
    return f"; supervisor specs in it: {', '.join(specs)}" if specs else ""


# -- running it ------------------------------------------------------------------------


@final
class RunningNode:
    """A node started by :func:`run_node`; its ``ready`` callback receives this.

    Attributes:
        node: the running :class:`~otpy.Node`.
        target: the name the tree was started under (for messages).
        supervisor: the root supervisor, once it has started.
        stopping: whether a stop was requested.
        forced: whether the stop was forced (a second request).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        node: otpy.Node,
        target: str,
        task_group: TaskGroup,
        *,
        drain_budget: float | None = None,
    ) -> None:
        self.node = node
        self.target = target
        self.drain_budget = drain_budget
        self.supervisor: otpy.SupervisorRef | None = None
        self.stopping = False
        self.forced = False
        self._task_group = task_group
        self._startup = anyio.CancelScope()

    def stop(self) -> None:
        """Stop the tree gracefully; calling it again stops it at once.

        A graceful stop asks the root supervisor to stop, which stops its children in
        reverse start order, each within its shutdown setting. Stopping at once kills
        the root supervisor, and the node then cancels every actor still running, so
        slow ``terminate`` callbacks are cut short.
        """
        supervisor = self.supervisor
        if supervisor is None:
            self.stopping = True
            self._startup.cancel("otpy: stop requested while the tree was starting")
            return
        if not self.stopping:
            self.stopping = True
            say("stopping (press Ctrl-C again to stop at once)")
            self._task_group.start_soon(supervisor.stop)
            if self.drain_budget is not None:
                self._task_group.start_soon(self._stop_at_once_after, self.drain_budget)
        elif not self.forced:
            self.forced = True
            say("stopping at once")
            supervisor.ref.kill(otpy.KILLED)

    async def _stop_at_once_after(self, budget: float) -> None:
        await anyio.sleep(budget)
        if not self.forced:
            say(f"the drain took more than {budget:g}s", level=logging.WARNING)
            self.stop()


async def run_node(
    spec: Spec,
    *,
    target: str | None = None,
    drain_budget: float | None = None,
    console: bool | Console = False,
    refresh: float = 4.0,
    ready: Callable[[RunningNode], object] | None = None,
    handle_signals: bool = True,
) -> int:
    """Run *spec* as a node until it stops; return the process exit code.

    Opens a node, starts the root supervisor, registers it as a root and prints
    ``otpy: node running TARGET (pid N); Ctrl-C to stop`` to stderr. SIGINT and
    SIGTERM stop the tree (see :meth:`RunningNode.stop`).

    Args:
        spec: the root supervisor's spec.
        target: the name used in messages; the spec's id by default.
        drain_budget: seconds a graceful stop may take before the node stops at
            once, as on a second signal; ``None``: no limit but the children's
            ``shutdown``.
        console: show the live console (:func:`otpy.console.run_console`); pass a
            :class:`rich.console.Console` to choose where it draws.
        refresh: console frames per second.
        ready: called once the tree is up, with a :class:`RunningNode` (for tests and
            embedding: ``ready=lambda running: running.stop()``).
        handle_signals: stop on SIGINT and SIGTERM. Needs the main thread.

    Returns:
        ``0`` after a clean stop; ``1`` if the tree failed to start, its root
        supervisor gave up (``ShutdownWith(RestartIntensityExceeded)``) or exited
        abnormally, or it was stopped at once. The reason is printed to stderr.

    .. versionadded:: 0.1.0
    """
    label = target or spec.id
    async with otpy.open_node() as node, anyio.create_task_group() as tg:
        running = RunningNode(node, label, tg, drain_budget=drain_budget)
        if handle_signals:
            await tg.start(_stop_on_signals, running)
        with running._startup:
            try:
                supervisor = await otpy.start_supervisor(spec)
            except otpy.SpawnError as exc:
                say(f"{label} failed to start: {exc}", level=logging.ERROR)
                tg.cancel_scope.cancel("otpy: the tree failed to start")
                return EXIT_FAILED
        if running._startup.cancelled_caught:
            say("stopped while starting")
            tg.cancel_scope.cancel("otpy: stopped while starting")
            return EXIT_FAILED
        node.add_root(supervisor.ref)
        running.supervisor = supervisor
        exited = anyio.Event()
        async with anyio.create_task_group() as view:
            if console is not False:
                view.start_soon(
                    functools.partial(
                        _show_console,
                        running,
                        refresh=refresh,
                        console=None if console is True else console,
                        until=exited,
                    )
                )
            say(f"node running {label} (pid {os.getpid()}); Ctrl-C to stop")
            if ready is not None:
                ready(running)
            reason = await supervisor.wait_exited()
            exited.set()  # the console draws the stopped tree once more and returns
        tg.cancel_scope.cancel("otpy: the root supervisor exited")
    return _exit_code(running, reason)


async def _stop_on_signals(running: RunningNode, *, task_status: TaskStatus[None]) -> None:
    """Turn SIGINT and SIGTERM into :meth:`RunningNode.stop` calls."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _signum in signals:
            running.stop()


async def _show_console(
    running: RunningNode, *, refresh: float, console: Console | None, until: anyio.Event
) -> None:
    """Run the live console; a failure in it is logged and never stops the node."""
    from otpy.console import run_console

    def title() -> str:
        if until.is_set():
            status = "stopped"
        elif running.forced:
            status = "stopping at once"
        elif running.stopping:
            status = "stopping (Ctrl-C again: at once)"
        else:
            status = "Ctrl-C to stop"
        return f"otpy · {running.target} · pid {os.getpid()} · {status}"

    try:
        await run_console(running.node, refresh=refresh, title=title, console=console, until=until)
    except Exception:
        logger.exception("the console failed; the node keeps running without it")


def _exit_code(running: RunningNode, reason: object) -> int:
    """Print how the tree ended and return the exit code for it."""
    if running.forced and not otpy.is_normal_exit(reason):
        say(
            "stopped at once; actors still stopping were cancelled before terminate finished",
            level=logging.WARNING,
        )
        return EXIT_FAILED
    if isinstance(reason, otpy.ShutdownWith) and isinstance(reason.detail, BaseException):
        say(f"root supervisor {running.target} gave up: {reason.detail}", level=logging.ERROR)
        return EXIT_FAILED
    from otpy.telemetry import describe_reason  # here: `otpy --help` need not load OpenTelemetry

    if otpy.is_normal_exit(reason):
        if not running.stopping:
            say(f"root supervisor {running.target} exited: {describe_reason(reason)[1]}")
        say("stopped")
        return EXIT_OK
    say(
        f"root supervisor {running.target} exited abnormally: {describe_reason(reason)[1]}",
        level=logging.ERROR,
    )
    return EXIT_FAILED


# -- the command -----------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now, so the live console can redirect it."""

    previous_level = logging.NOTSET
    """The root logger's level before :func:`_install_logging`, restored by :func:`_uninstall_logging`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class _RedactingFormatter(logging.Formatter):
    """The usual text format, with credentials redacted from messages and tracebacks.

    otpy's own records arrive redacted (`otpy._redact.RedactingFilter`); this covers
    the records of the application's loggers that reach the same handler.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format *record*, never reusing another handler's unredacted traceback."""
        cached = record.exc_text
        if cached is not None and record.exc_info:
            record.exc_text = None
        try:
            return super().format(record)
        finally:
            if cached is not None and record.exc_info:
                record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Format the message line, redacted."""
        return redact(super().formatMessage(record))

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        """Format a traceback with every exception's message redacted."""
        exc = ei[1]
        return format_exception(exc) if exc is not None else super().formatException(ei)


class _OneLineFormatter(_RedactingFormatter):
    """One line per record, cut to the terminal width, without tracebacks.

    Under the live console the tree already shows each exit reason; full records
    (run without ``--console``) keep the tracebacks.
    """

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        import shutil  # here: `otpy --help` need not import it

        line = text.splitlines()[0] if text else text
        width = shutil.get_terminal_size().columns - 1
        return line if len(line) <= width else line[: width - 1] + "…"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (SUP-15).

    Fields: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``; ``report``
    for otpy's structured crash and supervisor reports (supervisor, context, reason,
    offender; actor, last message *type*, state as ``format_status`` shows it);
    ``exception`` (type, message, traceback) when there is one; and ``trace_id`` /
    ``span_id`` of the current span, so a crash line finds its trace. Message
    contents are never included (reports carry types only), and credentials in
    exception messages are redacted as dead-letter reasons are.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format *record* as one line of JSON."""
        import json  # here: `otpy --help` need not import it

        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        report = getattr(record, "otpy_report", None)
        if report is not None:
            entry["report"] = report
        exception = getattr(record, "otpy_exception", None)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["exception"] = {
                "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "message": redact(str(exc)),
                "traceback": format_exception(exc),
            }
        elif isinstance(exception, dict) and record.exc_text:
            # an otpy record: RedactingFilter kept the exception as redacted text
            entry["exception"] = {**exception, "traceback": record.exc_text}
        from opentelemetry import trace  # here: `otpy --help` need not load OpenTelemetry

        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        return json.dumps(entry, default=str, ensure_ascii=False)


def _install_logging(level: str, *, console: bool, json_lines: bool = False) -> _StderrHandler:
    """Send log records, and warnings (``py.warnings``), to stderr in the chosen format."""
    logging.captureWarnings(True)
    handler = _StderrHandler()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _OneLineFormatter(fmt, "%H:%M:%S") if console else _RedactingFormatter(fmt)
        )
    root = logging.getLogger()
    handler.previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        # One line per HTTP request the gateway makes: noise at info, a flood under load.
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    return handler


CHATTY_LOGGERS = ("httpx", "httpcore")
"""Loggers kept at WARNING unless ``--log-level debug``: they log every request at INFO."""


def _uninstall_logging(handler: _StderrHandler) -> None:
    """Undo :func:`_install_logging`: the handler, the warnings, the levels as they were."""
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(handler.previous_level)
    logging.captureWarnings(False)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


class _JsonUsageError(click.ClickException):
    """A click error shown as one JSON log line, for ``--log-format json``."""

    def __init__(self, error: click.ClickException) -> None:
        super().__init__(error.format_message())
        self.error = error

    @property
    def exit_code(self) -> int:  # type: ignore[override]  # click's is a plain class attribute
        """The wrapped error's exit code."""
        return self.error.exit_code

    def show(self, file: Any = None) -> None:
        """Write the error to stderr as a JSON log line (``otpy.cli``, level error)."""
        line = _json_line(logging.ERROR, f"Error: {self.message}", exit_code=self.exit_code)
        click.echo(line, err=True)


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for ``--log-format json`` (before click parses it)."""
    wanted = False
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--log-format" and i + 1 < len(args):
            wanted = args[i + 1].lower() == "json"
        elif arg.startswith("--log-format="):
            wanted = arg.partition("=")[2].lower() == "json"
    return wanted


class _RunCommand(click.Command):
    """``otpy run``, whose usage errors are JSON log lines under ``--log-format json``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse *args*; an error is shown as JSON if they ask for JSON logs."""
        wants_json = _wants_json(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            if wants_json:
                raise _JsonUsageError(exc) from None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an error is shown as JSON under ``--log-format json``."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.params.get("log_format") == "json" and not isinstance(exc, _JsonUsageError):
                raise _JsonUsageError(exc) from None
            raise
        except click.exceptions.Exit:  # ctx.exit(code): the command's own exit status
            raise
        except Exception as exc:  # a bug: its traceback as JSON too, for the log collector
            if ctx.params.get("log_format") != "json":
                raise
            click.echo(
                _json_line(logging.CRITICAL, f"otpy run failed: {describe(exc)}", exc=exc),
                err=True,
            )
            ctx.exit(EXIT_FAILED)


def _backend_options() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


@click.command(cls=_RunCommand)
@click.argument("target", metavar="[MODULE:ATTR]", required=False)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    envvar="OTPY_CONFIG",
    show_envvar=True,
    metavar="PATH",
    help="The node's otpy.toml (without it, the defaults: files in ./var).",
)
@click.option(
    "--console/--no-console",
    default=False,
    show_default=True,
    help="Show a live view of the supervision tree.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=4.0,
    show_default=True,
    metavar="HZ",
    help="Console frames per second.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Log records at this level and above go to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="json: one JSON object per line, with otpy's structured reports and trace ids.",
)
@click.pass_context
def run(
    ctx: click.Context,
    target: str | None,
    config_path: str | None,
    console: bool,
    refresh: float,
    log_level: str,
    log_format: str,
) -> None:
    """Run the messaging node, or a supervision tree, until Ctrl-C or SIGTERM.

    With no MODULE:ATTR, runs the messaging node (otpy.supervisors.node:node)
    described by --config, or on the defaults (files in ./var):

    \b
        otpy run --config otpy.toml

    Otherwise ATTR names an otpy.SupervisorSpec or otpy.DynamicSupervisorSpec in
    MODULE, or a factory of no arguments returning one, called once to build the
    tree (a class, or a function annotated to return something else, is never
    called); with --config, a factory of one argument, the configuration:

    \b
        otpy run supervisors.demo:root --console

    The first Ctrl-C (or SIGTERM) stops the tree gracefully (the node: within
    [drain] budget); a second stops it at once. Exits 0 after a clean stop, 1 if
    the root supervisor gave up, and 2 if the configuration is invalid or
    MODULE:ATTR cannot be loaded.
    """
    json_lines = log_format == "json"
    handler = _install_logging(log_level, console=console, json_lines=json_lines)
    status = _json_status.set(json_lines)
    try:
        config: NodeConfig | None = None
        if target is None or config_path is not None:
            from otpy.node import load_config  # here: `otpy --help` need not load the node

            try:
                config = load_config(config_path)
            except otpy.ConfigError as exc:
                raise click.UsageError(f"the configuration is invalid: {exc}") from None
        if target is None:
            target = NODE_TARGET
        try:
            spec = load_target(target, config=config)
        except TargetError as exc:
            message = str(exc)
            if exc.__cause__ is not None:
                logger.debug("loading %s failed", target, exc_info=exc.__cause__)
                if log_level.lower() != "debug":
                    message += " (--log-level debug shows the traceback)"
            raise click.BadParameter(message, param_hint="MODULE:ATTR") from None

        from otpy.telemetry import TelemetryConfigError, configure_from_env

        try:
            telemetry = configure_from_env() if config is None or config.telemetry.enabled else None
        except TelemetryConfigError as exc:
            raise click.UsageError(f"telemetry is misconfigured: {exc}") from None
        try:
            code = anyio.run(
                functools.partial(
                    run_node,
                    spec,
                    target=target,
                    console=console,
                    refresh=refresh,
                    drain_budget=None if config is None else config.drain.budget,
                ),
                backend="asyncio",
                backend_options=_backend_options(),
            )
        finally:
            try:
                if telemetry is not None:
                    telemetry.shutdown(timeout=TELEMETRY_FLUSH)
            except KeyboardInterrupt:  # a third Ctrl-C while spans flush: stop waiting for them
                say(
                    "telemetry flush interrupted; spans not yet exported are lost",
                    level=logging.WARNING,
                )
    finally:
        _json_status.reset(status)
        _uninstall_logging(handler)
    ctx.exit(code)
