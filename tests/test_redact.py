"""Redaction: linear on any input, cut to a documented limit, and applied to every text that leaves."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from rich.console import Console

import otpy
from otpy._redact import _scrub as redact_whole
from otpy.cli._run import JsonFormatter, _OneLineFormatter, _RedactingFormatter
from otpy.console import render_tree, take_snapshot
from otpy.deadletter import redact
from otpy.testing import capture_spans, virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterator

LIMIT = 65_536  # documented in docs/dead-letters.md
MB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a run of scheme characters never followed by "://": every start position
        # used to re-scan the rest of the run (27 s for 40,000 characters)
        ("a" * LIMIT, "a" * LIMIT),
        ("1a" * (LIMIT // 2), "1a" * (LIMIT // 2)),
        # a keyword followed by a long run that the lookahead or the separator rejects
        ("token " + "x" * (LIMIT - 6), "token " + "x" * (LIMIT - 6)),
        ("password" + " " * (LIMIT - 8), "password" + " " * (LIMIT - 8)),
        # URLs whose user-info never ends in "@"
        ("x://" + "a:" * ((LIMIT - 4) // 2), "x://" + "a:" * ((LIMIT - 4) // 2)),
        # query parameters that never get a value, or have no name
        ("?" * LIMIT, "?" * LIMIT),
        ("&token" * (LIMIT // 6), "&token" * (LIMIT // 6)),
        ("?=" * (LIMIT // 2), "?=" * (LIMIT // 2)),
        # a user-info of many "@": one redaction, up to the last of them
        ("x://" + "a@" * ((LIMIT - 5) // 2) + "h", "x://[redacted]@h"),
    ],
)
def test_redact_is_linear_on_pathological_text_within_the_limit(text: str, expected: str) -> None:
    """Texts that made the old patterns backtrack quadratically come back unchanged, at once."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "filler",
    ["a", "1a", " ", "a:", "x://a:", "password= ", "Bearer ", "token "],
)
def test_a_megabyte_is_cut_to_the_limit_with_a_marker(filler: str) -> None:
    """A 1 MB text keeps its first 65,536 characters (redacted) and says how much was cut."""
    text = filler * (MB // len(filler))
    result = redact(text)
    match = re.fullmatch(r"(?s)(.*)… \[([\d,]+) more characters cut\]", result)
    assert match is not None
    kept, cut = match[1], int(match[2].replace(",", ""))
    assert cut > len(text) - LIMIT - 4096
    assert kept == redact_whole(text[: len(text) - cut])


def test_secrets_before_the_cut_are_redacted_in_a_megabyte_of_text() -> None:
    """A secret at the start of a 1 MB reason is redacted; the rest is cut, never scanned."""
    text = "login failed: password=hunter2 " + "x" * MB + " token=late"
    result = redact(text)
    assert result.startswith("login failed: password=[redacted] xxx")
    assert "hunter2" not in result
    assert "late" not in result
    assert result.endswith(f"… [{len(text) - LIMIT:,} more characters cut]")


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer abcdefghijklmnop",
        "password=hunter2hunter2",
        "https://bob:pw0123456789@host",
        "Token 9944b09199c62bcf9418ad846dd0e4bb",
    ],
)
def test_the_cut_never_splits_a_credential(secret: str) -> None:
    """A credential straddling the limit is kept whole and redacted, not cut into a readable half."""
    for offset in range(1, len(secret)):
        text = "x" * (LIMIT - offset - 1) + " " + secret + " tail" * MB
        assert text.index(secret) + offset == LIMIT
        result = redact(text)
        assert "[redacted]" in result[-200:], offset
        for piece in ("hunter2", "ghijklmnop", "pw0123", "9944b0919"):
            assert piece not in result, (offset, piece)


# -- every text that leaves the process ------------------------------------------------

# Built at run time, so that no source line in a traceback holds them.
PASSWORD = "hunter" + "2"
TOKEN = "abc" + "123def456ghi789"
URL_USER = "bob:" + "pw"
SECRETS = (PASSWORD, TOKEN, URL_USER)
MESSAGE = (
    f"login failed: password={PASSWORD} sent with Authorization: Bearer {TOKEN} "
    f"to https://{URL_USER}@db.example/orders"
)
CAUSE = f"upstream refused token={PASSWORD}"


class Boom(Exception):
    """What the actor raises."""


class Crasher(otpy.Actor):
    """Raises Boom, caused by a ConnectionError, on every cast."""

    async def handle_cast(self, message: Any) -> None:
        raise Boom(MESSAGE) from ConnectionError(CAUSE)


def assert_redacted(text: str, where: str, *, marker: bool = True) -> None:
    """No secret appears in *text* and (unless cut before it) the redaction marker does."""
    for secret in SECRETS:
        assert secret not in text, f"{where}: {secret!r} leaked"
    assert "[redacted]" in text or not marker, where


@pytest.fixture
def logs() -> Iterator[dict[str, io.StringIO]]:
    """Handlers on the root logger: otpy run's text, console and JSON formats, and a user's own."""
    formatters: dict[str, logging.Formatter] = {
        "otpy text": _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"),
        "otpy console": _OneLineFormatter("%(levelname)s %(name)s: %(message)s"),
        "otpy json": JsonFormatter(),
        "basicConfig": logging.Formatter(logging.BASIC_FORMAT),
    }
    streams = {name: io.StringIO() for name in formatters}
    handlers = []
    for name, formatter in formatters.items():
        handler = logging.StreamHandler(streams[name])
        handler.setFormatter(formatter)
        handlers.append(handler)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield streams
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_a_crash_leaks_no_secret_to_logs_spans_or_the_console(
    logs: dict[str, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    """A child raising secrets: crash report, tracebacks, reports, spans and console are redacted."""
    flags = otpy.SupervisorFlags(intensity=1, period=5.0)
    with (
        capture_spans() as exporter,
        caplog.at_level(logging.INFO),
        pytest.raises(otpy.RestartIntensityExceeded),
    ):
        async with otpy.open_supervisor(
            [otpy.ChildSpec(id="db", start=Crasher)], flags=flags, name="root"
        ) as sup:
            first = sup.child("db")
            assert first is not None
            await first.cast("go")
            await first.wait_exited()
            await anyio.wait_all_tasks_blocked()
            snapshot = take_snapshot(otpy.current_node())
            second = sup.child("db")
            assert second is not None
            assert second is not first
            await second.cast("go")
            await anyio.sleep_forever()

    # (a) logs, in every format, and as the records themselves
    crash_reports = [r for r in caplog.records if r.name == "otpy.actor"]
    assert len(crash_reports) == 2
    assert crash_reports[0].exc_info is None
    assert crash_reports[0].exc_text is not None
    assert "Boom: login failed: password=[redacted]" in crash_reports[0].exc_text
    assert "ConnectionError: upstream refused token=[redacted]" in crash_reports[0].exc_text
    for name, stream in logs.items():
        # the console's lines are cut to the terminal's width, maybe before the marker
        assert_redacted(stream.getvalue(), name, marker=name != "otpy console")
    assert "Traceback" in logs["otpy text"].getvalue()
    assert "Traceback" in logs["basicConfig"].getvalue()
    entries = [json.loads(line) for line in logs["otpy json"].getvalue().splitlines()]
    [crash] = [e for e in entries if e["logger"] == "otpy.actor"][:1]
    assert crash["exception"]["type"] == f"{__name__}.Boom"
    assert crash["exception"]["message"].startswith("login failed: password=[redacted]")
    assert "ConnectionError: upstream refused token=[redacted]" in crash["exception"]["traceback"]
    assert crash["report"]["reason"].startswith("Boom: login failed: password=[redacted]")
    assert_redacted(caplog.text, "caplog")

    # (b) spans: attributes, status descriptions, events
    spans = exporter.get_finished_spans()
    assert {"otpy.supervisor.restart", "otpy.supervisor.escalation"} <= {s.name for s in spans}
    exported = json.dumps(
        [
            {
                "attributes": dict(span.attributes or {}),
                "status": span.status.description,
                "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            }
            for span in spans
        ]
    )
    assert_redacted(exported, "spans")
    for span in spans:
        if span.name in ("otpy.supervisor.restart", "otpy.supervisor.escalation"):
            assert str((span.attributes or {})["otpy.reason"]).startswith(
                "Boom: login failed: password=[redacted]"
            )

    # (c) the console's last-exit cell, wide and narrow
    for width in (300, 60):
        console = Console(record=True, width=width, file=io.StringIO())
        console.print(render_tree(snapshot, now=anyio.current_time(), title="otpy"))
        assert_redacted(console.export_text(), f"console at width {width}")


def test_otpy_run_formats_redact_the_applications_own_records(
    logs: dict[str, io.StringIO],
) -> None:
    """otpy run's text and JSON formats redact records of other loggers too, tracebacks included."""
    app = logging.getLogger("tests.app")
    try:
        raise Boom(MESSAGE) from ConnectionError(CAUSE)
    except Boom:
        app.exception("could not log in: %s", MESSAGE)
    for name in ("otpy text", "otpy console", "otpy json"):
        assert_redacted(logs[name].getvalue(), name)
    assert "ConnectionError: upstream refused token=[redacted]" in logs["otpy text"].getvalue()
    [entry] = [json.loads(line) for line in logs["otpy json"].getvalue().splitlines()]
    assert entry["message"].startswith("could not log in: login failed: password=[redacted]")
    assert "Boom: login failed: password=[redacted]" in entry["exception"]["traceback"]
    # a user's plain handler formats the application's record as it is: not otpy's to change
    assert PASSWORD in logs["basicConfig"].getvalue()


def test_every_otpy_logger_redacts_its_records() -> None:
    """otpy's modules take their loggers from get_logger, so each one carries the filter."""
    import ast
    import importlib
    import pathlib

    from otpy._redact import RedactingFilter

    package = pathlib.Path(otpy.__file__).parent
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert called != "getLogger", f"{path}: use otpy._redact.get_logger"
                if called == "get_logger":
                    names.add(str(node.args[0].value))
                    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
                    importlib.import_module(module)
    assert {"otpy.actor", "otpy.supervisor", "otpy.deadletter", "otpy.telemetry"} <= names
    for name in names:
        filters = logging.getLogger(name).filters
        assert any(isinstance(f, RedactingFilter) for f in filters), name


def test_the_filter_redacts_reports_and_keeps_exception_details() -> None:
    """A record through an otpy logger: message, report fields and traceback redacted in place."""
    from otpy._redact import get_logger

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = get_logger("otpy.tests.redact")
    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise Boom(MESSAGE)
        except Boom:
            logger.exception(
                "failed with %s",
                CAUSE,
                extra={"otpy_report": {"reason": MESSAGE, "nested": [{"why": CAUSE}], "n": 3}},
            )
    finally:
        logger.removeHandler(handler)
    [record] = seen
    assert record.getMessage() == "failed with upstream refused token=[redacted]"
    assert record.otpy_report == {  # type: ignore[attr-defined]
        "reason": redact(MESSAGE),
        "nested": [{"why": "upstream refused token=[redacted]"}],
        "n": 3,
    }
    assert record.exc_info is None
    assert record.otpy_exception == {  # type: ignore[attr-defined]
        "type": f"{__name__}.Boom",
        "message": redact(MESSAGE),
    }
    assert record.exc_text is not None
    assert record.exc_text.startswith("Traceback (most recent call last):")
    assert record.exc_text.endswith(f"Boom: {redact(MESSAGE)}")
    assert_redacted(logging.Formatter().format(record), "plain formatter")


def test_describe_reason_redacts_before_it_cuts() -> None:
    """Span reasons and the console's last exit: redacted, then cut, so no half secret is left."""
    from otpy.telemetry import describe_reason

    assert describe_reason(Boom(f"password={PASSWORD}")) == ("Boom", "Boom: password=[redacted]")
    long = Boom("x " * 90 + MESSAGE)
    _, description = describe_reason(long)
    assert len(description) == len("Boom: ") + 200
    assert_redacted(description, "describe_reason", marker=False)
    assert describe_reason(f"token={PASSWORD}") == ("token=[redacted]",) * 2


def test_tracebacks_of_exception_groups_and_notes_are_redacted() -> None:
    """Members of an exception group and notes are redacted like the exception's own message."""
    from otpy._redact import format_exception

    try:
        error = Boom(MESSAGE)
        error.add_note(f"while sending password={PASSWORD}")
        raise ExceptionGroup("task group failed", [error, ValueError(CAUSE)])
    except ExceptionGroup as group:
        text = format_exception(group)
    assert_redacted(text, "exception group")
    assert "while sending password=[redacted]" in text
    assert "ValueError: upstream refused token=[redacted]" in text
