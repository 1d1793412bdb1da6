"""``otpy dlq ...`` against a real SQLite store: filters, paging, JSON, confirmations, exit codes."""

from __future__ import annotations

import base64
import functools
import importlib
import json
import re
import sqlite3
import sys
import textwrap
from typing import TYPE_CHECKING, Any
from unittest.mock import ANY

import anyio
import attrs
import pytest
from click import ClickException
from click.testing import CliRunner
from rich.console import Console

from otpy.cli import main
from otpy.cli._dlq import DlqSettings, parse_time
from otpy.cli._dlq_render import (
    MAX_DETAILS,
    NO_OUTCOME,
    ReplayLine,
    render_record,
    render_replay_summary,
)
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    Diagnostics,
    ReplayOutcome,
    ReplayState,
    ReplayStatus,
    RetentionPolicy,
    Status,
)
from otpy.deadletter._sqlite import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from otpy.deadletter import StoreStatistics

NOW = 1_750_000_000.0
"""The wall clock of every test: the store's and the CLI's (relative times count from it)."""

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def clock() -> float:
    """The fixed wall clock."""
    return NOW


SETTINGS = DlqSettings(
    open_store=functools.partial(open_store, clock=clock, synchronous="OFF"), clock=clock
)


@pytest.fixture(autouse=True)
def stable_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output 120 columns wide and without colour, whatever the CI environment says."""
    monkeypatch.setenv("COLUMNS", "120")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # --handlers puts the cwd on it


def invoke(*args: str, input: str | None = None) -> Result:
    """Run ``otpy dlq ARGS`` through click's runner, with the fixed clock."""
    return CliRunner().invoke(
        main, ["dlq", *args], obj=SETTINGS, input=input, catch_exceptions=False
    )


def run_json(*args: str) -> Any:
    """Run ``otpy dlq ARGS --json``; return the parsed stdout, after checking exit 0."""
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- the store ----------------------------------------------------------------------


def record(
    key: str,
    age: float,
    *,
    source: str = "outbound",
    reason_class: str = "httpx.ConnectTimeout",
    payload: bytes | str = b"{}",
    status: Status = Status.ACTIVE,
    replay: ReplayState | None = None,
    **fields: Any,
) -> DeadLetter:
    """A record captured *age* seconds before ``NOW``."""
    captured = DeadLetter.capture(
        key=key,
        source=source,
        reason_class=reason_class,
        reason=fields.pop("reason", "timed out after 5s"),
        payload=payload,
        trace_context=fields.pop("trace_context", {}),
        now=NOW - age,
        **fields,
    )
    return attrs.evolve(captured, status=status, replay=replay or ReplayState())


def add(path: Path, *records: DeadLetter) -> None:
    """Store *records* in the SQLite store at *path*."""

    async def main() -> None:
        async with open_store(path, clock=clock, synchronous="OFF") as store:
            await store.add_many(records)

    anyio.run(main, backend="asyncio")


def load(path: Path, record_id: str) -> DeadLetter:
    """Read one record back."""

    async def main() -> DeadLetter:
        async with open_store(path, clock=clock, synchronous="OFF") as store:
            return await store.get(record_id)

    return anyio.run(main, backend="asyncio")


def ids_with(path: Path, **filters: Any) -> list[str]:
    """The ids of the records matching *filters*, newest first."""

    async def main() -> list[str]:
        async with open_store(path, clock=clock, synchronous="OFF") as store:
            page = await store.list(DeadLetterFilter(**filters), limit=1000)
            return [r.id for r in page.records]

    return anyio.run(main, backend="asyncio")


def statistics(path: Path) -> StoreStatistics:
    """The store's statistics."""

    async def main() -> StoreStatistics:
        async with open_store(path, clock=clock, synchronous="OFF") as store:
            return await store.statistics()

    return anyio.run(main, backend="asyncio")


@attrs.frozen
class Fixture:
    """The populated store: its path and its records by name."""

    db: Path
    r: dict[str, DeadLetter]

    def id(self, name: str) -> str:
        """The id of record *name*."""
        return self.r[name].id


@pytest.fixture
def store(tmp_path: Path) -> Fixture:
    """Seven records, captured oldest first, so id order is time order.

    =========  =======  =============  =============  ========================
    name       age      source         key            notes
    =========  =======  =============  =============  ========================
    old_arch   40 days  outbound       bridge:a       archived
    connect_a  3 days   outbound       bridge:a       idempotency key order-1
    connect_b  2 days   outbound       bridge:b
    arch       1 day    ingest         bridge:b       archived
    binary     5 hours  ingest         bridge:a       ValueError, binary body
    auth       30 min   outbound       bridge:a       HTTPStatusError, headers, attributes
    crash      1 min    actor_crash    worker         KeyError
    =========  =======  =============  =============  ========================
    """
    records = {
        "old_arch": record("bridge:a", 40 * DAY, status=Status.ARCHIVED),
        "connect_a": record(
            "bridge:a",
            3 * DAY,
            payload='{"order": 1}',
            idempotency_key="order-1",
            correlation_id="req-1",
            diagnostics=Diagnostics(pressure_level="warn", queue_depth=90, queue_capacity=128),
            trace_context={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
        ),
        "connect_b": record("bridge:b", 2 * DAY, payload='{"order": 2}'),
        "arch": record("bridge:b", DAY, source="ingest", status=Status.ARCHIVED),
        "binary": record(
            "bridge:a",
            5 * HOUR,
            source="ingest",
            reason_class="ValueError",
            reason="bad frame",
            payload=bytes(range(256)) + bytes(44),
        ),
        "auth": record(
            "bridge:a",
            30 * MINUTE,
            reason_class="httpx.HTTPStatusError",
            reason="401 Unauthorized password=hunter2 \x1b]0;pwned\x07",
            payload="héllo\n\x1b[2J",
            headers={"Authorization": "Bearer abcdefghijkl", "X-Request-Id": "r-77"},
            attributes={
                "otpy.ordering_key": "customer-42",
                "http.request.method": "POST",
                "url.full": "https://bob:pw@hooks.example/in?access_token=abc987&v=2",
                "http.request.header.authorization": "Bearer abcdefghijkl",
                "http.response.status_code": "401",
            },
        ),
        "crash": record("worker", MINUTE, source="actor_crash", reason_class="KeyError"),
    }
    db = tmp_path / "dead.db"
    add(db, *records.values())
    return Fixture(db, records)


# -- list ---------------------------------------------------------------------------


def test_list_shows_active_records_newest_first(store: Fixture) -> None:
    """Without --status only active records are listed, newest first, with a count (DL-3)."""
    result = invoke("list", "--db", str(store.db))
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:-1]]
    assert rows == [store.id(n) for n in ("crash", "auth", "binary", "connect_b", "connect_a")]
    assert result.stdout.splitlines()[-1] == "5 of 5 matching"
    header = result.stdout.splitlines()[0].split()
    assert header == ["ID", "Created", "(UTC)", "Source", "Category", "Replay", "Key", "Reason"]
    crash_row = result.stdout.splitlines()[2]
    assert "2025-06-15 15:05:40" in crash_row
    assert "actor_crash" in crash_row
    assert "KeyError: timed out after 5s" in crash_row


def assert_whole_ids_and_keys(output: str, records: list[DeadLetter]) -> None:
    """Every record's id and key appears whole in *output*, and its reason class."""
    words = output.split()
    for r in records:
        assert r.id in words
        assert r.key in words
        assert r.reason_class + ":" in words


@pytest.mark.parametrize("columns", ["80", "40"])
def test_a_narrow_terminal_keeps_ids_and_keys_whole(
    store: Fixture, monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    """At 80 or 40 columns each record is a block: its id and key whole, its reason wrapped."""
    monkeypatch.setenv("COLUMNS", columns)
    result = invoke("list", "--db", str(store.db))
    assert result.exit_code == 0, result.output
    active = [store.r[n] for n in ("crash", "auth", "binary", "connect_b", "connect_a")]
    assert_whole_ids_and_keys(result.stdout, active)
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines())
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")][:-1] == [r.id for r in active]
    assert "timed out after 5s" in " ".join(result.stdout.split())


def test_piped_output_keeps_ids_and_keys_whole(
    store: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped, with no COLUMNS to say how wide, the listing still has every id and key whole."""
    monkeypatch.delenv("COLUMNS")
    result = invoke("list", "--db", str(store.db), "--status", "all")
    assert result.exit_code == 0, result.output
    assert_whole_ids_and_keys(result.stdout, list(store.r.values()))


def test_a_key_too_long_for_the_table_is_printed_whole(store: Fixture) -> None:
    """A key that would not fit a table row whole turns the listing into blocks, not an ellipsis."""
    long = record("https://hooks.example.com/customers/7/orders/webhook-endpoint", 1.0)
    add(store.db, long)
    result = invoke("list", "--db", str(store.db), "--since", "1h")
    assert result.exit_code == 0, result.output
    assert_whole_ids_and_keys(result.stdout, [long, store.r["crash"], store.r["auth"]])
    assert "…" not in result.stdout


def test_list_escapes_control_characters_and_keeps_redaction(
    store: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reason is shown redacted, with a terminal escape in it printed rather than run."""
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke("list", "--db", str(store.db), "--reason-class", "httpx.HTTPStatusError")
    assert result.exit_code == 0
    assert "401 Unauthorized password=[redacted] \\x1b]0;pwned\\x07" in result.stdout
    assert "hunter2" not in result.stdout
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--status", "archived"], ["arch", "old_arch"]),
        (
            ["--status", "all"],
            ["crash", "auth", "binary", "arch", "connect_b", "connect_a", "old_arch"],
        ),
        (["--source", "outbound"], ["auth", "connect_b", "connect_a"]),
        (["--key", "bridge:a"], ["auth", "binary", "connect_a"]),
        (["--reason-class", "ValueError"], ["binary"]),
        (["--replay-status", "never", "--source", "actor_crash"], ["crash"]),
        (["--since", "6h"], ["crash", "auth", "binary"]),
        (["--until", "1h", "--since", "3d"], ["binary", "connect_b", "connect_a"]),
        (["--key", "bridge:a", "--since", "1d", "--status", "all"], ["auth", "binary"]),
        (["--since", "2025-06-15T14:36:40Z"], ["crash", "auth"]),
    ],
)
def test_list_filters_combine(store: Fixture, args: list[str], names: list[str]) -> None:
    """Each filter narrows the listing, and they combine with AND (DL-3)."""
    doc = run_json("list", "--db", str(store.db), *args)
    assert [r["id"] for r in doc["records"]] == [store.id(n) for n in names]
    assert doc["total"] == len(names)


def test_since_includes_a_record_exactly_that_old(store: Fixture) -> None:
    """``--since 2d`` includes the record captured exactly two days ago."""
    doc = run_json("list", "--db", str(store.db), "--since", "2d")
    assert store.id("connect_b") in [r["id"] for r in doc["records"]]


def test_until_excludes_a_record_exactly_that_old(store: Fixture) -> None:
    """``--until 2d`` stops short of the record captured exactly two days ago."""
    doc = run_json("list", "--db", str(store.db), "--until", "2d")
    assert [r["id"] for r in doc["records"]] == [store.id("connect_a")]


def test_list_pages_with_the_printed_cursor(store: Fixture) -> None:
    """--limit cuts a page; the printed cursor starts the next; the last has none (DL-3)."""
    first = invoke("list", "--db", str(store.db), "--limit", "2")
    assert first.exit_code == 0
    footer = first.stdout.splitlines()[-1]
    match = re.fullmatch(r"2 of 5 matching; next page: --cursor (\w{26})", footer)
    assert match is not None
    assert match.group(1) == store.id("auth")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = ["--cursor", cursor] if cursor else []
        doc = run_json("list", "--db", str(store.db), "--limit", "2", *extra)
        seen += [r["id"] for r in doc["records"]]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [store.id(n) for n in ("crash", "auth", "binary", "connect_b", "connect_a")]


def test_a_full_last_page_has_no_cursor(store: Fixture) -> None:
    """A page holding exactly the remaining records prints no cursor."""
    doc = run_json("list", "--db", str(store.db), "--limit", "5")
    assert len(doc["records"]) == 5
    assert doc["next_cursor"] is None
    result = invoke("list", "--db", str(store.db), "--limit", "5")
    assert "--cursor" not in result.stdout


def test_list_json_encodes_records_for_scripts(store: Fixture) -> None:
    """--json prints one document: ISO and epoch times, no payload unless asked for."""
    doc = run_json("list", "--db", str(store.db), "--key", "bridge:b")
    assert doc["next_cursor"] is None
    (item,) = doc["records"]
    assert item["id"] == store.id("connect_b")
    assert item["created_at"] == "2025-06-13T15:06:40.000Z"
    assert item["created_at_epoch"] == NOW - 2 * DAY
    assert item["replay"]["status"] == "never"
    assert item["replay"]["last_attempt_at"] is None
    assert item["replay_key"] == f"dead_letter:{item['id']}"
    assert "payload" not in item
    assert "payload_text" not in item
    assert item["payload_size"] == len(b'{"order": 2}')


def test_list_json_with_payload_gives_base64_and_text(store: Fixture) -> None:
    """--payload adds base64, and the text only when the body is valid UTF-8."""
    doc = run_json("list", "--db", str(store.db), "--key", "bridge:a", "--payload")
    by_id = {r["id"]: r for r in doc["records"]}
    text = by_id[store.id("connect_a")]
    assert base64.b64decode(text["payload"]) == b'{"order": 1}'
    assert text["payload_text"] == '{"order": 1}'
    binary = by_id[store.id("binary")]
    assert base64.b64decode(binary["payload"]) == bytes(range(256)) + bytes(44)
    assert "payload_text" not in binary


def test_list_of_all_statuses_adds_a_status_column(store: Fixture) -> None:
    """With --status all the table says which records are archived."""
    result = invoke("list", "--db", str(store.db), "--status", "all", "--key", "bridge:b")
    lines = result.stdout.splitlines()
    assert lines[0].split()[3] == "Status"
    assert lines[2].split()[:4] == [store.id("arch"), "2025-06-14", "15:06:40", "archived"]
    assert lines[3].split()[3] == "active"


def test_list_leaves_large_payloads_to_get(store: Fixture) -> None:
    """A payload over the store's inline limit is null in ``list --json --payload``; get loads it."""
    big = record("bridge:big", 5.0, payload=b"x" * 70_000)
    add(store.db, big)
    doc = run_json("list", "--db", str(store.db), "--key", "bridge:big", "--payload")
    assert doc["records"][0]["payload"] is None
    assert doc["records"][0]["payload_size"] == 70_000
    assert "payload_text" not in doc["records"][0]
    full = run_json("get", big.id, "--db", str(store.db), "--payload")
    assert full["payload_text"] == "x" * 70_000


def test_list_says_so_when_nothing_matches(store: Fixture) -> None:
    """An empty listing is a message, not an empty table."""
    result = invoke("list", "--db", str(store.db), "--key", "nowhere")
    assert result.exit_code == 0
    assert result.stdout == "no dead letters match\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "'yesterday' is not a time"),
        (
            ["--since", "1h", "--until", "2h"],
            "--until (2025-06-15T13:06:40.000Z) is before --since (2025-06-15T14:06:40.000Z)",
        ),
        (["--payload"], "--payload needs --json: a listing shows no payloads"),
        (["--limit", "0"], "0 is not in the range"),
        (["--cursor", "nope"], "'nope' is not a cursor"),
        (["--source", "email"], "'email' is not one of"),
    ],
)
def test_list_rejects_bad_arguments_as_usage_errors(
    store: Fixture, args: list[str], message: str
) -> None:
    """Bad times, limits, cursors and sources exit 2 with a message saying what is wrong."""
    result = invoke("list", "--db", str(store.db), *args)
    assert result.exit_code == 2
    assert message in result.stderr


# -- get ----------------------------------------------------------------------------


def corrupt(path: Path, record_id: str) -> None:
    """Give the record *record_id* a category no record can have, as a vandal with sqlite3 would."""
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE dead_letters SET category = 'sad' WHERE id = ?", (record_id,))
    raw.close()


def test_list_shows_the_others_and_reports_a_corrupt_row_on_stderr(store: Fixture) -> None:
    """One undecodable row does not hide the others: they are listed, it gets one line on stderr by id, exit 1."""
    corrupt(store.db, store.id("binary"))
    result = invoke("list", "--db", str(store.db))
    assert result.exit_code == 1
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:-1]]
    assert rows == [store.id(n) for n in ("crash", "auth", "connect_b", "connect_a")]
    assert result.stderr.splitlines() == [
        f"Error: dead-letter store {store.db}: record '{store.id('binary')}' is corrupt "
        "(category 'sad' is not one of retryable, terminal, fatal); the other records are "
        "intact: "
        f"'otpy dlq purge --id {store.id('binary')}' removes it"
    ]


def test_list_json_carries_the_corrupt_rows(store: Fixture) -> None:
    """With --json the corrupt rows are in the document too, by id and error, and the exit code is 1."""
    corrupt(store.db, store.id("crash"))
    result = invoke("list", "--db", str(store.db), "--status", "all", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert len(document["records"]) == 6
    assert [c["id"] for c in document["corrupt"]] == [store.id("crash")]
    assert "is corrupt (category 'sad'" in document["corrupt"][0]["error"]


def test_list_of_an_intact_store_reports_no_corrupt_rows(store: Fixture) -> None:
    """Twin: without damage the JSON's corrupt list is empty, stderr is quiet and the exit code 0."""
    result = invoke("list", "--db", str(store.db), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["corrupt"] == []
    assert result.stderr == ""


def test_get_of_a_corrupt_record_names_it_and_what_is_wrong(store: Fixture) -> None:
    """get of an undecodable row is one error line naming the id and the damage, exit 1."""
    corrupt(store.db, store.id("auth"))
    result = invoke("get", store.id("auth"), "--db", str(store.db))
    assert result.exit_code == 1
    assert f"record '{store.id('auth')}' is corrupt (category 'sad' is not one of" in (
        result.stderr
    )


def test_get_shows_the_whole_record_but_not_the_payload(store: Fixture) -> None:
    """get shows diagnostics, trace context, replay state and headers; no payload by default."""
    result = invoke("get", store.id("connect_a"), "--db", str(store.db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Dead letter {store.id('connect_a')}" in out
    assert re.search(r"idempotency\s+order-1", out)
    assert re.search(r"correlation id\s+req-1", out)
    assert re.search(r"pressure level\s+warn", out)
    assert re.search(r"queue depth\s+90", out)
    assert re.search(r"traceparent\s+00-abab", out)
    assert re.search(r"status\s+never", out)
    assert re.search(r"created\s+2025-06-12 15:06:40 UTC \(1749740800\.000\)", out)
    assert "12 bytes, text/plain; charset=utf-8; add --payload to show it" in out
    assert '{"order": 1}' not in out


def test_get_shows_redacted_headers(store: Fixture) -> None:
    """Headers are shown as stored: credentials already redacted, never the secret."""
    result = invoke("get", store.id("auth"), "--db", str(store.db), "--payload")
    assert re.search(r"Authorization\s+\[redacted\]", result.stdout)
    assert re.search(r"X-Request-Id\s+r-77", result.stdout)
    assert "abcdefghijkl" not in result.stdout


def test_get_shows_attributes_with_credentials_redacted(store: Fixture) -> None:
    """get lists the attributes in capture order, URL and header credentials already redacted."""
    result = invoke("get", store.id("auth"), "--db", str(store.db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    section = out[out.index("Attributes (credentials redacted)") : out.index("Diagnostics")]
    assert [line.split() for line in section.splitlines()[1:] if line.strip()] == [
        ["otpy.ordering_key", "customer-42"],
        ["http.request.method", "POST"],
        ["url.full", "https://[redacted]@hooks.example/in?access_token=[redacted]&v=2"],
        ["http.request.header.authorization", "[redacted]"],
        ["http.response.status_code", "401"],
    ]
    assert "abc987" not in out
    assert "abcdefghijkl" not in out


def test_get_shows_none_for_a_record_without_attributes(store: Fixture) -> None:
    """Twin: a record captured without attributes says so."""
    result = invoke("get", store.id("crash"), "--db", str(store.db))
    assert re.search(r"Attributes \(credentials redacted\)\n+none\n", result.stdout)


def test_get_payload_shows_text_with_control_characters_escaped(store: Fixture) -> None:
    """--payload shows a UTF-8 body as text; an escape sequence in it is printed, not run."""
    result = invoke("get", store.id("auth"), "--db", str(store.db), "--payload")
    assert result.exit_code == 0
    assert "héllo\n\\x1b[2J" in result.stdout
    assert "\x1b" not in result.stdout


def test_get_payload_shows_binary_as_a_hex_preview(store: Fixture) -> None:
    """A body that is not UTF-8 is shown as hex, cut after 256 bytes."""
    result = invoke("get", store.id("binary"), "--db", str(store.db), "--payload")
    assert result.exit_code == 0
    assert "300 bytes, application/octet-stream, binary:" in result.stdout
    assert (
        "00000040  40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f  @ABCDEFGHIJKLMNO"
        in result.stdout
    )
    assert "... 44 more bytes" in result.stdout


def test_get_json_is_the_full_record(store: Fixture) -> None:
    """get --json has every field; --payload adds the body."""
    doc = run_json("get", store.id("auth"), "--db", str(store.db))
    assert doc["headers"] == [["Authorization", "[redacted]"], ["X-Request-Id", "r-77"]]
    assert doc["attributes"] == {
        "otpy.ordering_key": "customer-42",
        "http.request.method": "POST",
        "url.full": "https://[redacted]@hooks.example/in?access_token=[redacted]&v=2",
        "http.request.header.authorization": "[redacted]",
        "http.response.status_code": "401",
    }
    assert list(doc["attributes"]) == [
        "otpy.ordering_key",
        "http.request.method",
        "url.full",
        "http.request.header.authorization",
        "http.response.status_code",
    ]
    assert run_json("get", store.id("crash"), "--db", str(store.db))["attributes"] == {}
    assert doc["reason"] == "401 Unauthorized password=[redacted] \x1b]0;pwned\x07"
    assert doc["diagnostics"] == {
        "pressure_level": None,
        "queue_depth": None,
        "queue_capacity": None,
    }
    assert "payload" not in doc
    with_body = run_json("get", store.id("auth"), "--db", str(store.db), "--payload")
    assert with_body["payload_text"] == "héllo\n\x1b[2J"


def test_get_unknown_id_exits_1_with_the_message(store: Fixture) -> None:
    """An id the store does not hold exits 1 with DeadLetterNotFound's message, no traceback (DL-3)."""
    missing = "01" + "0" * 24
    result = invoke("get", missing, "--db", str(store.db))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: dead letter '{missing}' not found: it was never captured, or was purged "
        "or evicted by retention; 'otpy dlq list' shows what the store holds\n"
    )
    assert result.stdout == ""


def test_get_rejects_something_that_is_not_an_id(store: Fixture) -> None:
    """A malformed id is a usage error."""
    result = invoke("get", "42", "--db", str(store.db))
    assert result.exit_code == 2
    assert "'42' is not a dead-letter id" in result.stderr


# -- the store file -----------------------------------------------------------------


@pytest.mark.parametrize("command", [["list"], ["stats"], ["purge", "--yes"]])
def test_a_missing_db_file_is_an_error_and_is_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    """A mistyped --db exits 2 and never leaves an empty store behind."""
    db = tmp_path / "typo.db"
    result = invoke(*command, "--db", str(db))
    assert result.exit_code == 2
    assert f"{db} does not exist" in result.stderr
    assert not db.exists()


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    """--db naming a directory is a usage error."""
    result = invoke("list", "--db", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_reading_an_older_store_says_how_to_migrate_it(
    store: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list on a store of an older schema exits 1, leaves it as it was and names what migrates it."""
    from otpy.deadletter import _schema

    newer = ("ALTER TABLE dead_letters ADD COLUMN note TEXT",)
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, newer))
    before = directory_state(store.db.parent)
    result = invoke("list", "--db", str(store.db))
    assert result.exit_code == 1
    assert "schema version 3 is older than this otpy's (4)" in result.stderr
    assert "run a command that writes ('otpy dlq archive', 'otpy dlq purge')" in result.stderr
    assert directory_state(store.db.parent) == before


def test_a_text_file_is_not_an_otpy_store(tmp_path: Path) -> None:
    """A file that is not an otpy store exits 1 with NotAnOtpyStore's message and is left as it was."""
    db = tmp_path / "notes.txt"
    db.write_text("remember the milk\n" * 100)
    before = db.read_bytes()
    result = invoke("list", "--db", str(db))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: dead-letter store {db}: not an otpy dead-letter store")
    assert "Traceback" not in result.output
    assert db.read_bytes() == before


def directory_state(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in *directory* with its bytes and mtime, and the directory's mtime."""
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}
    files["."] = (b"", directory.stat().st_mtime_ns)
    return files


READING = [["list"], ["stats"], ["get", "01HZX3QK7M2D6W0B8E4R5T9Y1C"]]


@pytest.mark.parametrize("command", READING)
def test_reading_commands_leave_an_empty_file_empty(tmp_path: Path, command: list[str]) -> None:
    """list, get and stats on a zero-byte file say it is not a store and write nothing to it."""
    db = tmp_path / "empty.db"
    db.touch()
    before = directory_state(tmp_path)
    result = invoke(*command, "--db", str(db))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: dead-letter store {db}: not an otpy dead-letter store (the file is empty); "
        "check --db, or move the file away and let otpy create a new one\n"
    )
    assert directory_state(tmp_path) == before
    assert db.stat().st_size == 0


@pytest.mark.parametrize("command", READING)
def test_reading_commands_read_a_read_only_store_in_a_read_only_directory(
    store: Fixture, command: list[str]
) -> None:
    """A store chmod 0444 in a 0555 directory is read; no byte, mtime or side file changes."""
    directory = store.db.parent
    args = [*command, "--db", str(store.db)]
    if command[0] == "get":
        args[1] = store.id("crash")
    store.db.chmod(0o444)
    directory.chmod(0o555)
    try:
        before = directory_state(directory)
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert directory_state(directory) == before
    finally:
        directory.chmod(0o755)
        store.db.chmod(0o644)
    assert not [p for p in directory.iterdir() if p.name != store.db.name]


# -- archive ------------------------------------------------------------------------


def test_archive_ids_with_yes(store: Fixture) -> None:
    """archive ID... --yes archives exactly those records (DL-4)."""
    result = invoke("archive", store.id("crash"), store.id("auth"), "--db", str(store.db), "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "archived 2 dead letters\n"
    assert load(store.db, store.id("crash")).status is Status.ARCHIVED
    assert load(store.db, store.id("auth")).status is Status.ARCHIVED
    assert load(store.db, store.id("binary")).status is Status.ACTIVE


def test_archive_refused_at_the_prompt_changes_nothing(store: Fixture) -> None:
    """Answering no to the confirmation leaves every record active and exits 1."""
    result = invoke("archive", "--db", str(store.db), "--source", "outbound", input="n\n")
    assert result.exit_code == 1
    assert "Archive 3 dead letters? Archived records are never replayed. [y/N]" in result.stderr
    assert "nothing changed" in result.stderr
    assert result.stdout == ""
    assert ids_with(store.db, status=Status.ARCHIVED) == [store.id("arch"), store.id("old_arch")]


def test_archive_by_filter_after_yes_at_the_prompt(store: Fixture) -> None:
    """Answering yes archives what the filters match, with a progress bar on stderr."""
    result = invoke("archive", "--db", str(store.db), "--key", "bridge:a", input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "archived 3 dead letters\n"
    assert "archiving" in result.stderr
    assert ids_with(store.db, status=Status.ACTIVE) == [store.id("crash"), store.id("connect_b")]


def test_archive_all_matching_without_filters_archives_every_active_record(
    store: Fixture,
) -> None:
    """--all-matching alone archives every active record."""
    result = invoke("archive", "--db", str(store.db), "--all-matching", "--yes")
    assert result.stdout == "archived 5 dead letters\n"
    assert ids_with(store.db, status=Status.ACTIVE) == []


def test_archive_needs_ids_or_filters(store: Fixture) -> None:
    """archive with neither IDs nor filters is a usage error, so nothing is archived by accident."""
    result = invoke("archive", "--db", str(store.db), "--yes")
    assert result.exit_code == 2
    assert "say what to archive" in result.stderr
    assert len(ids_with(store.db, status=Status.ACTIVE)) == 5


def test_archive_refuses_ids_mixed_with_filters(store: Fixture) -> None:
    """IDs and filters together are ambiguous: a usage error."""
    result = invoke(
        "archive", store.id("crash"), "--db", str(store.db), "--source", "ingest", "--yes"
    )
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_archive_unknown_id_archives_nothing(store: Fixture) -> None:
    """One unknown id among several exits 1 before anything is archived (DL-4)."""
    missing = "01" + "0" * 24
    result = invoke("archive", store.id("crash"), missing, "--db", str(store.db), "--yes")
    assert result.exit_code == 1
    assert f"dead letter '{missing}' not found" in result.stderr
    assert load(store.db, store.id("crash")).status is Status.ACTIVE


def test_archive_skips_a_record_being_replayed(store: Fixture) -> None:
    """A record whose replay holds a live lease is not archived, and the count says so (DL-4)."""
    running = record(
        "bridge:r",
        5.0,
        replay=ReplayState(status=ReplayStatus.RUNNING, attempts=1, lease_expires_at=NOW + 60),
    )
    idle = record("bridge:r", 4.0)
    add(store.db, running, idle)
    result = invoke("archive", "--db", str(store.db), "--key", "bridge:r", "--yes")
    assert result.exit_code == 0
    assert result.stdout == "archived 1 dead letter; 1 skipped: a replay is running for them\n"
    assert load(store.db, running.id).status is Status.ACTIVE
    assert load(store.db, idle.id).status is Status.ARCHIVED


def test_archive_of_archived_records_says_nothing_matched(store: Fixture) -> None:
    """Archiving records that are already archived changes nothing and says so."""
    result = invoke("archive", store.id("arch"), "--db", str(store.db))
    assert result.exit_code == 0
    assert result.stdout == "no dead letters match; nothing archived\n"


# -- purge --------------------------------------------------------------------------


def test_purge_defaults_to_archived_records(store: Fixture) -> None:
    """purge without --status deletes archived records only and reports the count (DL-5)."""
    result = invoke("purge", "--db", str(store.db), "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "purged 2 dead letters\n"
    assert ids_with(store.db, status=Status.ARCHIVED) == []
    assert len(ids_with(store.db, status=Status.ACTIVE)) == 5


def test_purge_older_than_keeps_younger_archived_records(store: Fixture) -> None:
    """--older-than 30d deletes the 40-day-old archived record and keeps the 1-day-old one (DL-5)."""
    result = invoke("purge", "--db", str(store.db), "--older-than", "30d", "--yes")
    assert result.stdout == "purged 1 dead letter\n"
    assert ids_with(store.db, status=Status.ARCHIVED) == [store.id("arch")]


def test_purge_confirms_with_the_count(store: Fixture) -> None:
    """Without --yes purge asks, and a refusal deletes nothing."""
    result = invoke("purge", "--db", str(store.db), input="n\n")
    assert result.exit_code == 1
    assert "Purge 2 dead letters? This cannot be undone. [y/N]" in result.stderr
    assert len(ids_with(store.db)) == 7


def test_purge_of_active_records_needs_status_active_and_confirms(store: Fixture) -> None:
    """Active records are purged only with --status active, after a prompt naming them."""
    refused = invoke("purge", "--db", str(store.db), "--status", "active", input="n\n")
    assert refused.exit_code == 1
    assert "Purge 5 dead letters (5 active, never replayed)?" in refused.stderr
    assert len(ids_with(store.db, status=Status.ACTIVE)) == 5

    done = invoke(
        "purge", "--db", str(store.db), "--status", "active", "--older-than", "1d", "--yes"
    )
    assert done.stdout == "purged 2 dead letters\n"
    assert ids_with(store.db, status=Status.ACTIVE) == [
        store.id("crash"),
        store.id("auth"),
        store.id("binary"),
    ]


def test_purge_by_id_removes_that_record_whatever_its_status(store: Fixture) -> None:
    """``purge --id`` (what CorruptRecord suggests) removes that active record, after saying it is active."""
    result = invoke("purge", "--db", str(store.db), "--id", store.id("crash"), input="y\n")
    assert result.exit_code == 0, result.output
    assert "Purge 1 dead letter (1 active, never replayed)?" in result.stderr
    assert result.stdout == "purged 1 dead letter\n"
    assert store.id("crash") not in ids_with(store.db)
    assert len(ids_with(store.db)) == 6


def test_purge_takes_ids_as_arguments(store: Fixture) -> None:
    """purge ID... removes those records, of any status, as get and archive take ids."""
    result = invoke(
        "purge", store.id("crash"), store.id("arch"), "--db", str(store.db), "--yes", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"purged": 2, "matched": 2, "skipped": 0}
    assert {store.id("crash"), store.id("arch")}.isdisjoint(ids_with(store.db))


def test_purge_takes_the_list_filters(store: Fixture) -> None:
    """purge --key (and the other list filters) narrows what is purged, archived by default."""
    result = invoke("purge", "--db", str(store.db), "--key", "bridge:b", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "purged 1 dead letter\n"
    assert ids_with(store.db, status=Status.ARCHIVED) == [store.id("old_arch")]


def test_purge_refuses_ids_mixed_with_filters(store: Fixture) -> None:
    """IDs and filters together are a usage error; nothing is purged."""
    result = invoke("purge", store.id("crash"), "--db", str(store.db), "--key", "worker", "--yes")
    assert result.exit_code == 2
    assert "give either IDs or filters to purge, not both" in result.stderr
    assert len(ids_with(store.db)) == 7


def test_purge_of_an_unknown_id_is_an_error(store: Fixture) -> None:
    """An id that is not stored is reported, as archive reports it; nothing is purged."""
    missing = "01HZX3QK7M2D6W0B8E4R5T9Y1C"
    result = invoke("purge", missing, store.id("crash"), "--db", str(store.db), "--yes")
    assert result.exit_code == 1
    assert missing in result.stderr
    assert len(ids_with(store.db)) == 7


def test_archive_json_reports_the_counts(store: Fixture) -> None:
    """archive --json prints what it archived, matched and skipped."""
    doc = run_json("archive", "--db", str(store.db), "--source", "outbound", "--yes")
    assert doc == {"archived": 3, "matched": 3, "skipped": 0}


def test_declining_says_nothing_changed_once(store: Fixture) -> None:
    """A no at the prompt prints one message after the question, not click's 'Aborted!' too."""
    result = invoke("purge", "--db", str(store.db), input="n\n")
    assert result.exit_code == 1
    question = "Purge 2 dead letters? This cannot be undone. [y/N]: "
    assert result.stderr == f"{question}n\nnothing changed\n"  # (the runner echoes the n)


def test_db_comes_from_otpy_db(store: Fixture) -> None:
    """Without --db the store is the one OTPY_DB names; --help says so."""
    result = CliRunner().invoke(
        main, ["dlq", "stats", "--json"], obj=SETTINGS, env={"OTPY_DB": str(store.db)}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 7
    helped = " ".join(CliRunner().invoke(main, ["dlq", "list", "--help"]).stdout.split())
    assert "--db PATH The dead-letter store file. [env var: OTPY_DB]" in helped
    assert "--config PATH The node's otpy.toml" in helped


def node_config(tmp_path: Path, db: Path, *, destination: str = "bridge") -> Path:
    """An otpy.toml whose dead-letter store is *db* and whose gateway has *destination*."""
    config = tmp_path / "otpy.toml"
    config.write_text(
        f'''[node]
var_dir = "{tmp_path}"
dead_letters = "{db}"
synchronous = "off"

[gateway.destinations.{destination}]
url = "http://127.0.0.1:9/hooks"
'''
    )
    return config


def test_the_store_comes_from_the_nodes_config(store: Fixture, tmp_path: Path) -> None:
    """--config (or OTPY_CONFIG) names the node's store: [node] dead_letters, in var_dir."""
    config = node_config(tmp_path, store.db)
    assert run_json("stats", "--config", str(config))["total"] == 7
    result = CliRunner().invoke(
        main, ["dlq", "stats", "--json"], obj=SETTINGS, env={"OTPY_CONFIG": str(config)}
    )
    assert json.loads(result.stdout)["total"] == 7


def test_without_db_or_config_the_command_says_what_it_needs() -> None:
    """Neither --db, OTPY_DB nor --config: exit 2, naming the three."""
    result = invoke("stats")
    assert result.exit_code == 2
    assert "Missing option '--db'" in result.stderr
    assert "(or set OTPY_DB), or give the node's --config" in result.stderr


def test_a_bad_node_config_exits_2(tmp_path: Path) -> None:
    """A config error is a usage error naming the key."""
    config = tmp_path / "otpy.toml"
    config.write_text("[node]\nsynchronous = 'sometimes'\n")
    result = invoke("stats", "--config", str(config))
    assert result.exit_code == 2
    assert "the configuration is invalid:" in result.stderr
    assert "node.synchronous" in result.stderr


def test_replay_with_the_config_enqueues_in_the_nodes_outbox(tmp_path: Path) -> None:
    """Without --handlers, an outbound record goes back into the node's outbox, with its key."""
    from otpy.gateway import open_outbox

    db = tmp_path / "dead.db"
    letter = record(
        "bridge",
        HOUR,
        payload=b'{"order": 7}',
        idempotency_key="order-7",
        attributes={"messaging.destination.name": "bridge", "otpy.ordering_key": "customer-42"},
    )
    add(db, letter)
    config = node_config(tmp_path, db, destination="bridge")
    result = invoke("replay", letter.id, "--config", str(config))
    assert result.exit_code == 0, result.output

    async def pending() -> list[tuple[str, str, str | None, bytes]]:
        async with open_outbox(tmp_path / "outbox.sqlite3", synchronous="OFF") as outbox:
            claimed = await outbox.claim("bridge", limit=10, lease=60.0, now=NOW + 1e9)
            await outbox.recover(now=NOW)
            return [(m.destination, m.key, m.idempotency_key, m.body) for m in claimed]

    assert anyio.run(pending, backend="asyncio") == [
        ("bridge", "customer-42", "order-7", b'{"order": 7}')
    ]
    assert load(db, letter.id).replay.status is ReplayStatus.SUCCEEDED
    again = invoke("replay", letter.id, "--config", str(config))
    assert again.exit_code == 0
    assert len(anyio.run(pending, backend="asyncio")) == 1  # the ledger: never enqueued twice


def test_replay_without_handlers_or_config_exits_2(store: Fixture) -> None:
    """Replay needs --handlers or the node's --config: exit 2, saying so."""
    result = invoke("replay", store.id("auth"), "--db", str(store.db))
    assert result.exit_code == 2
    assert "Missing option '--handlers'" in result.stderr
    assert "give the node's --config to replay through its gateway" in result.stderr


@pytest.mark.parametrize(
    "command", ["list", "get", "replay", "archive", "purge", "stats", "resolve"]
)
def test_every_dlq_command_takes_json_otpy_db_and_the_config(command: str) -> None:
    """--json, the OTPY_DB variable and --config (OTPY_CONFIG) work the same on every dlq command."""
    helped = CliRunner().invoke(main, ["dlq", command, "--help"])
    assert helped.exit_code == 0
    text = " ".join(helped.stdout.split())
    assert "--json Print one JSON document to stdout." in text
    assert "[env var: OTPY_DB]" in text
    assert "[env var: OTPY_CONFIG]" in text


# -- stats --------------------------------------------------------------------------


def test_stats_counts_by_every_dimension(store: Fixture) -> None:
    """stats shows totals and counts by source, reason class, key and replay status."""
    result = invoke("stats", "--db", str(store.db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(
        "7 dead letters (5 active, 2 archived); 7 captured since the store was created\n"
    )
    assert re.search(
        r"By source\nSource\s+Records\n─+\noutbound\s+4\ningest\s+2\nactor_crash\s+1\n", out
    )
    assert re.search(r"bridge:a\s+4\n", out)
    assert re.search(r"never\s+7\n", out)
    assert "Evicted by retention: 0\nnone" in out


def test_stats_json(store: Fixture) -> None:
    """stats --json has the StoreStatistics fields."""
    doc = run_json("stats", "--db", str(store.db))
    assert doc["total"] == 7
    assert doc["by_status"] == {"active": 5, "archived": 2}
    assert doc["by_source"] == {"outbound": 4, "ingest": 2, "actor_crash": 1}
    assert doc["by_reason_class"]["httpx.ConnectTimeout"] == 4
    assert doc["by_key"] == {"bridge:a": 4, "bridge:b": 2, "worker": 1}
    assert doc["by_replay_status"] == {"never": 7}
    assert doc["evicted"] == {}
    assert doc["captured"] == 7


def test_stats_shows_pruned_ledger_entries_apart_from_evicted_records(store: Fixture) -> None:
    """DL-5, DL-8: ledger entries a sweep pruned get their own line; they are not counted as evicted records."""

    async def replay_archive_and_sweep() -> None:
        async with open_store(store.db, clock=clock, synchronous="OFF") as opened:
            for name in ("connect_b", "crash"):
                decision = await opened.begin_replay(store.id(name), lease=30.0)
                assert await opened.mark_started(decision.record)
                await opened.finish(store.id(name), ReplayOutcome.REPLAYED)
            await opened.archive(DeadLetterFilter(key="bridge:b"))
            await opened.archive(DeadLetterFilter(key="worker"))

        def later() -> float:
            """100 days on: the archived records and the replayed keys have aged out."""
            return NOW + 100 * DAY

        async with open_store(store.db, clock=later, synchronous="OFF") as opened:
            result = await opened.sweep(RetentionPolicy())
        assert result.evicted == {"archived:max_age": 4, "ledger:max_age": 2}

    anyio.run(replay_archive_and_sweep, backend="asyncio")
    result = invoke("stats", "--db", str(store.db))
    assert result.exit_code == 0, result.output
    assert re.search(
        r"Evicted by retention: 4\nStatus:rule\s+Records\n─+\narchived:max_age\s+4\n\n"
        r"Idempotency ledger entries pruned by retention: 2\n$",
        result.stdout,
    ), result.stdout
    doc = run_json("stats", "--db", str(store.db))
    assert doc["evicted"] == {"archived:max_age": 4, "ledger:max_age": 2}


# -- resolve ------------------------------------------------------------------------


def in_doubt(db: Path) -> DeadLetter:
    """Add a record whose replay is in doubt."""
    doubtful = record(
        "bridge:c",
        10.0,
        replay=ReplayState(
            status=ReplayStatus.IN_DOUBT,
            attempts=1,
            last_attempt_at=NOW - 5,
            last_outcome=ReplayOutcome.IN_DOUBT,
            last_error="ReplayOutcomeUnknown: read timeout",
        ),
    )
    add(db, doubtful)
    return doubtful


@pytest.mark.parametrize(
    ("flag", "status", "message"),
    [
        ("--succeeded", ReplayStatus.SUCCEEDED, "resolved as succeeded"),
        ("--failed", ReplayStatus.FAILED, "resolved as failed"),
    ],
)
def test_resolve_settles_an_in_doubt_record(
    store: Fixture, flag: str, status: ReplayStatus, message: str
) -> None:
    """resolve --succeeded / --failed settles an in-doubt replay as the operator found it."""
    doubtful = in_doubt(store.db)
    result = invoke("resolve", doubtful.id, "--db", str(store.db), flag)
    assert result.exit_code == 0, result.output
    assert message in result.stdout
    assert load(store.db, doubtful.id).replay.status is status


@pytest.mark.parametrize(
    ("flag", "status"), [("--succeeded", ReplayStatus.SUCCEEDED), ("--failed", ReplayStatus.FAILED)]
)
def test_resolve_settles_every_record_in_doubt_for_the_same_idempotency_key(
    store: Fixture, flag: str, status: ReplayStatus
) -> None:
    """DL-8: resolving one record settles every in-doubt record carrying its idempotency key, alike."""
    sender, sharing, bystander = (
        record("bridge:c", 30.0, idempotency_key="pay-7"),
        record("bridge:d", 20.0, idempotency_key="pay-7"),
        record("bridge:e", 10.0, idempotency_key="pay-7"),
    )
    add(store.db, sender, sharing, bystander)

    async def die_mid_side_effect() -> None:
        async with open_store(store.db, clock=lambda: NOW - 5.0, synchronous="OFF") as opened:
            leased = await opened.begin_replay(sender.id, lease=5.0)
            assert await opened.mark_started(leased.record)
        async with open_store(store.db, clock=clock, synchronous="OFF") as opened:
            doubted = await opened.begin_replay(sharing.id, lease=5.0)
            assert doubted.outcome is ReplayOutcome.IN_DOUBT

    anyio.run(die_mid_side_effect, backend="asyncio")
    result = invoke("resolve", sharing.id, "--db", str(store.db), flag)
    assert result.exit_code == 0, result.output
    assert (
        f"dead letter {sharing.id} resolved as {status.value}, with 1 other record carrying "
        "idempotency key 'pay-7'"
    ) in result.stdout.replace("\n", " ")
    assert load(store.db, sender.id).replay.status is status
    assert load(store.db, sharing.id).replay.status is status
    assert load(store.db, bystander.id).replay.status is ReplayStatus.NEVER


def test_resolve_waits_while_a_forced_replay_sends_the_key(store: Fixture) -> None:
    """DL-8: while a forced replay of another record sends the key, resolve exits 1 and changes nothing."""
    sender, forced = (
        record("bridge:c", 30.0, idempotency_key="pay-8"),
        record("bridge:d", 20.0, idempotency_key="pay-8"),
    )
    add(store.db, sender, forced)

    async def force_a_replay() -> None:
        async with open_store(store.db, clock=lambda: NOW - 5.0, synchronous="OFF") as opened:
            leased = await opened.begin_replay(sender.id, lease=5.0)
            assert await opened.mark_started(leased.record)
        async with open_store(store.db, clock=clock, synchronous="OFF") as opened:
            assert (await opened.begin_replay(sender.id, lease=5.0)).outcome is (
                ReplayOutcome.IN_DOUBT
            )
            leased = await opened.begin_replay(forced.id, lease=60.0, force=True)
            assert await opened.mark_started(leased.record, force=True)

    anyio.run(force_a_replay, backend="asyncio")
    result = invoke("resolve", sender.id, "--db", str(store.db), "--failed")
    assert result.exit_code == 1
    assert (
        f"the replay of dead letter {forced.id} is sending idempotency key 'pay-8' now"
    ) in result.stderr
    assert load(store.db, sender.id).replay.status is ReplayStatus.IN_DOUBT


def test_resolve_json_prints_the_settled_record(store: Fixture) -> None:
    """resolve --json prints the record as it now is."""
    doubtful = in_doubt(store.db)
    doc = run_json("resolve", doubtful.id, "--db", str(store.db), "--succeeded")
    assert doc["id"] == doubtful.id
    assert doc["replay"]["status"] == "succeeded"


def test_resolve_refuses_a_record_that_is_not_in_doubt(store: Fixture) -> None:
    """Resolving a record never replayed exits 1 and leaves it alone."""
    result = invoke("resolve", store.id("crash"), "--db", str(store.db), "--succeeded")
    assert result.exit_code == 1
    assert "is not in doubt (its replay status is 'never')" in result.stderr
    assert load(store.db, store.id("crash")).replay.status is ReplayStatus.NEVER


def test_resolve_needs_a_verdict(store: Fixture) -> None:
    """resolve without --succeeded or --failed is a usage error."""
    doubtful = in_doubt(store.db)
    result = invoke("resolve", doubtful.id, "--db", str(store.db))
    assert result.exit_code == 2
    assert "--succeeded" in result.stderr
    assert load(store.db, doubtful.id).replay.status is ReplayStatus.IN_DOUBT


# -- replay -------------------------------------------------------------------------

HANDLERS = """
calls = []

async def resend(record, idempotency_key):
    calls.append((record.id, idempotency_key, record.payload))
    if record.key == "bridge:b":
        raise RuntimeError("destination answered 503 token=abcdef123456")

handlers = {"outbound": resend, "ingest": resend, "actor_crash": resend}
outbound_only = {"outbound": resend}

def build():
    return {"outbound": resend}

not_a_mapping = 42
wrong_source = {"email": resend}
not_callable = {"outbound": 42}
empty = {}

def broken():
    raise RuntimeError("no configuration")

async def async_build():
    return handlers

def sync_resend(record, idempotency_key):
    calls.append((record.id, idempotency_key, record.payload))

sync = {"outbound": sync_resend}

class Resender:
    async def __call__(self, record, idempotency_key):
        await resend(record, idempotency_key)

async def resend_via(channel, record, idempotency_key):
    await resend(record, idempotency_key)

callable_object = {"outbound": Resender()}
partial = {"outbound": __import__("functools").partial(resend_via, "sms")}
"""


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of replay handlers on sys.path; returns its name (unique per test)."""
    name = "dlq_handlers_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / "handlers_dir").mkdir()
    (tmp_path / "handlers_dir" / f"{name}.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "handlers_dir" / f"{name}_broken.py").write_text("1 / 0\n")
    (tmp_path / "handlers_dir" / f"{name}_needs.py").write_text("import not_installed_here\n")
    monkeypatch.syspath_prepend(tmp_path / "handlers_dir")
    return name


def calls(module: str) -> list[tuple[str, str, bytes]]:
    """What the handlers module was called with."""
    result: list[tuple[str, str, bytes]] = importlib.import_module(module).calls
    return result


def test_replay_one_record(store: Fixture, handlers: str) -> None:
    """replay ID sends the record with its idempotency key and marks it succeeded (DL-6)."""
    result = invoke(
        "replay", store.id("connect_a"), "--db", str(store.db), "--handlers", f"{handlers}:handlers"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"replayed\s+1\n", result.stdout)
    assert calls(handlers) == [(store.id("connect_a"), "order-1", b'{"order": 1}')]
    replay = load(store.db, store.id("connect_a")).replay
    assert replay.status is ReplayStatus.SUCCEEDED
    assert replay.attempts == 1
    assert replay.last_attempt_at == NOW
    listed = invoke("list", "--db", str(store.db), "--replay-status", "succeeded")
    assert listed.stdout.splitlines()[2].split()[:7] == [
        store.id("connect_a"),
        "2025-06-12",
        "15:06:40",
        "outbound",
        "terminal",
        "succeeded",
        "(1)",
    ]


def test_replaying_again_is_already_replayed_without_a_side_effect(
    store: Fixture, handlers: str
) -> None:
    """A second replay answers already_replayed, exits 0 and does not call the handler (DL-7)."""
    args = [
        "replay",
        store.id("crash"),
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
    ]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0
    assert re.search(r"already_replayed\s+1\n", again.stdout)
    assert "use force to send it again" in again.stdout
    assert len(calls(handlers)) == 1

    forced = invoke(*args, "--force")
    assert forced.exit_code == 0
    assert len(calls(handlers)) == 2


def test_replay_that_fails_exits_1_and_stays_replayable(store: Fixture, handlers: str) -> None:
    """A handler error exits 1, shows the redacted error and leaves the record failed (DL-6)."""
    result = invoke(
        "replay", store.id("connect_b"), "--db", str(store.db), "--handlers", f"{handlers}:handlers"
    )
    assert result.exit_code == 1
    assert re.search(r"failed\s+1\n", result.stdout)
    assert "RuntimeError: destination answered 503 token=[redacted]" in result.stdout
    assert "abcdef123456" not in result.output
    assert load(store.db, store.id("connect_b")).replay.status is ReplayStatus.FAILED
    assert len(ids_with(store.db)) == 7


def test_replay_of_an_archived_record_is_refused(store: Fixture, handlers: str) -> None:
    """An archived record is refused (rejected_archived), nothing is sent, and it exits 1 (DL-4)."""
    result = invoke(
        "replay", store.id("arch"), "--db", str(store.db), "--handlers", f"{handlers}:handlers"
    )
    assert result.exit_code == 1
    assert re.search(r"rejected_archived\s+1\n", result.stdout)
    assert "archived records are never replayed" in result.stdout
    assert calls(handlers) == []


def test_bulk_replay_with_yes_summarises_by_outcome(store: Fixture, handlers: str) -> None:
    """--all-matching with filters replays every match; a failure among them makes it exit 1."""
    result = invoke(
        "replay",
        "--all-matching",
        "--source",
        "outbound",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        "--yes",
    )
    assert result.exit_code == 1
    assert re.search(
        r"3 replay requests:\nOutcome\s+Records\n─+\nreplayed\s+2\nfailed\s+1\n", result.stdout
    )
    assert "replaying" in result.stderr
    assert sorted(c[0] for c in calls(handlers)) == sorted(
        store.id(n) for n in ("connect_a", "connect_b", "auth")
    )
    assert load(store.db, store.id("auth")).replay.status is ReplayStatus.SUCCEEDED
    assert load(store.db, store.id("crash")).replay.status is ReplayStatus.NEVER


def test_bulk_replay_without_failures_exits_0(store: Fixture, handlers: str) -> None:
    """Every match replayed (by one partition, so in capture order): exit 0."""
    result = invoke(
        "replay",
        "--key",
        "bridge:a",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        "--partitions",
        "1",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"replayed\s+3\n", result.stdout)
    assert [c[0] for c in calls(handlers)] == [
        store.id("connect_a"),
        store.id("binary"),
        store.id("auth"),
    ]


@pytest.mark.parametrize("partitions", ["0", "1025", "100000"])
def test_replay_partitions_beyond_the_maximum_are_a_usage_error(
    store: Fixture, handlers: str, partitions: str
) -> None:
    """--partitions outside 1..1024 exits 2 naming the option and the range; nothing is replayed."""
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        "--partitions",
        partitions,
        "--yes",
    )
    assert result.exit_code == 2
    assert (
        f"Invalid value for '--partitions': {partitions} is not in the range 1<=x<=1024."
    ) in result.stderr
    assert calls(handlers) == []


@pytest.mark.parametrize(
    ("options", "started"), [((), 4), (("--partitions", "1024"), 5), (("--partitions", "2"), 2)]
)
def test_replay_starts_no_more_workers_than_records_to_replay(
    store: Fixture,
    handlers: str,
    monkeypatch: pytest.MonkeyPatch,
    options: tuple[str, ...],
    started: int,
) -> None:
    """A worker per partition starts up front: never more of them than records, so the cost follows the records."""
    from otpy.deadletter import open_replayer as real

    workers: list[int] = []

    def counting(*args: Any, partitions: int, **kwargs: Any) -> Any:
        workers.append(partitions)
        return real(*args, partitions=partitions, **kwargs)

    monkeypatch.setattr("otpy.cli._dlq.open_replayer", counting)
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        *options,
        "--yes",
    )
    assert result.exit_code == 1, result.output  # bridge:b's handler fails
    assert workers == [started]
    assert len(calls(handlers)) == 5


def test_bulk_replay_confirms_with_the_count(store: Fixture, handlers: str) -> None:
    """Without --yes a bulk replay asks; a refusal replays nothing."""
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        input="n\n",
    )
    assert result.exit_code == 1
    assert "Replay 5 dead letters? [y/N]" in result.stderr
    assert calls(handlers) == []


def test_bulk_replay_json_keeps_stdout_parseable(store: Fixture, handlers: str) -> None:
    """--json prints the summary and each result on stdout; the prompt and progress go to stderr."""
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:handlers",
        "--json",
        input="y\n",
    )
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["summary"] == {"replayed": 4, "failed": 1}
    by_id = {r["id"]: r for r in doc["results"]}
    failed = by_id[store.id("connect_b")]
    assert failed["outcome"] == "failed"
    assert failed["error"] == "RuntimeError: destination answered 503 token=[redacted]"
    assert failed["record"]["replay"]["status"] == "failed"
    assert "Replay 5 dead letters?" in result.stderr


def test_replay_refuses_records_without_a_handler_before_sending_any(
    store: Fixture, handlers: str
) -> None:
    """If some matches have no handler for their source, nothing is replayed and it exits 1."""
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:outbound_only",
        "--yes",
    )
    assert result.exit_code == 1
    assert "nothing replayed: 1 dead letter to replay came from source 'ingest'" in result.stderr
    assert calls(handlers) == []


def test_handlers_may_come_from_a_factory(store: Fixture, handlers: str) -> None:
    """A function of no arguments returning the mapping is called, as ``otpy run`` does."""
    result = invoke(
        "replay", store.id("auth"), "--db", str(store.db), "--handlers", f"{handlers}:build"
    )
    assert result.exit_code == 0, result.output
    assert [c[0] for c in calls(handlers)] == [store.id("auth")]


def test_a_record_captured_without_a_handler_mid_replay_is_refused(
    store: Fixture, handlers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the replayer meets a source with no handler after the check, it exits 1 saying so."""

    async def no_check(*args: object) -> None:
        pass

    monkeypatch.setattr("otpy.cli._dlq._check_handlers", no_check)
    result = invoke(
        "replay",
        "--all-matching",
        "--db",
        str(store.db),
        "--handlers",
        f"{handlers}:outbound_only",
        "--yes",
    )
    assert result.exit_code == 1
    assert "came from source 'actor_crash', which has no handler (handlers: outbound)" in (
        result.stderr
    )
    assert calls(handlers) == []


def test_a_synchronous_handler_is_refused_before_anything_is_sent(
    store: Fixture, handlers: str
) -> None:
    """A sync handler would send, then be marked failed and resent: exit 2 with the signature wanted."""
    result = invoke(
        "replay", store.id("auth"), "--db", str(store.db), "--handlers", f"{handlers}:sync"
    )
    assert result.exit_code == 2
    assert (
        f"{handlers}:sync: the handler for 'outbound' is not an async function: <function "
        "sync_resend at "
    ) in result.stderr
    assert "write it as `async def handler(record, idempotency_key): ...`" in result.stderr
    assert calls(handlers) == []
    assert load(store.db, store.id("auth")).replay.status is ReplayStatus.NEVER


@pytest.mark.parametrize("attr", ["callable_object", "partial"])
def test_async_callable_objects_and_partials_are_handlers(
    store: Fixture, handlers: str, attr: str
) -> None:
    """An object with an async __call__, or a functools.partial of an async function, replays."""
    result = invoke(
        "replay", store.id("auth"), "--db", str(store.db), "--handlers", f"{handlers}:{attr}"
    )
    assert result.exit_code == 0, result.output
    assert calls(handlers) == [(store.id("auth"), f"dead_letter:{store.id('auth')}", ANY)]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere_at_all:handlers", "there is no module named 'nowhere_at_all'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:not_a_mapping", "is int, not a mapping"),
        ("{module}:wrong_source", "'email' is not a dead-letter source"),
        ("{module}:not_callable", "the handler for 'outbound' is not callable: 42"),
        ("{module}:empty", "is empty: register a handler per source"),
        ("{module}:broken", "failed: RuntimeError: no configuration"),
        ("{module}:async_build", "is an async function; make it a plain function"),
        ("{module}_broken:handlers", "failed: ZeroDivisionError: division by zero (at /"),
        (
            "{module}_needs:handlers",
            "failed: ModuleNotFoundError: No module named 'not_installed_here'",
        ),
        ("{module}", "is not MODULE:ATTR"),
    ],
)
def test_bad_handlers_are_usage_errors(
    store: Fixture, handlers: str, target: str, message: str
) -> None:
    """A --handlers target that cannot be loaded exits 2 with what to fix."""
    result = invoke(
        "replay",
        store.id("auth"),
        "--db",
        str(store.db),
        "--handlers",
        target.format(module=handlers),
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_replay_of_nothing_matching_exits_0(store: Fixture, handlers: str) -> None:
    """A bulk replay matching nothing says so and succeeds."""
    result = invoke(
        "replay", "--key", "nowhere", "--db", str(store.db), "--handlers", f"{handlers}:handlers"
    )
    assert result.exit_code == 0
    assert result.stdout == "no dead letters match; nothing replayed\n"


# -- times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", NOW - 15 * MINUTE),
        ("2h", NOW - 2 * HOUR),
        ("7d", NOW - 7 * DAY),
        ("1w", NOW - 7 * DAY),
        ("1d12h", NOW - 36 * HOUR),
        ("90s", NOW - 90),
        ("1.5h", NOW - 90 * MINUTE),
        ("2025-06-15T12:00:00Z", 1_749_988_800.0),
        ("2025-06-15T14:00:00+02:00", 1_749_988_800.0),
        ("2025-06-15T12:00:00", 1_749_988_800.0),
        ("2025-06-15", 1_749_945_600.0),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    """Durations count back from now; ISO 8601 without an offset is UTC."""
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "h", "2x", "-2h", "soon", "2h 30m"])
def test_parse_time_rejects_what_it_cannot_read(text: str) -> None:
    """Anything else is a ValueError naming both accepted forms."""
    with pytest.raises(ValueError, match=r"is not a time: give ISO 8601 .* or a duration ago"):
        parse_time(text, now=NOW)


# -- plumbing -----------------------------------------------------------------------


def test_without_settings_the_cli_opens_the_sqlite_store(store: Fixture) -> None:
    """The real command (no injected settings) opens the SQLite file at --db."""
    result = CliRunner().invoke(main, ["dlq", "stats", "--db", str(store.db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 7


def test_otpy_errors_raised_in_a_task_group_print_their_message() -> None:
    """A typed error wrapped in an exception group still prints one line, exit 1."""
    from otpy import DeadLetterNotFound
    from otpy.cli._dlq import _run

    async def fails() -> None:
        inner = ExceptionGroup("worker", [DeadLetterNotFound("01" + "0" * 24)])
        raise ExceptionGroup("replay", [inner])

    with pytest.raises(ClickException, match=r"^dead letter '010+' not found"):
        _run(fails)


def test_other_errors_in_a_task_group_propagate() -> None:
    """A bug is not dressed up as an operator error: it keeps its traceback."""
    from otpy.cli._dlq import _run

    async def fails() -> None:
        raise ExceptionGroup("replay", [KeyError("bug")])

    with pytest.raises(ExceptionGroup):
        _run(fails)


def test_render_record_says_when_a_payload_is_not_loaded() -> None:
    """A record from a listing, its large payload left out, says so instead of showing nothing."""
    listed = attrs.evolve(record("k", 1.0, payload=b"x" * 10), payload=None)
    console = Console(record=True, width=100)
    console.print(render_record(listed, payload=True))
    assert "10 bytes, application/octet-stream; not loaded" in console.export_text()


def test_replay_summary_lists_at_most_max_details() -> None:
    """Past MAX_DETAILS unhappy replays, the summary points to --json for the rest."""
    lines = [
        ReplayLine(record_id=f"{i:026d}", outcome=NO_OUTCOME, error="worker exited")
        for i in range(MAX_DETAILS + 3)
    ]
    console = Console(record=True, width=100)
    console.print(render_replay_summary(lines))
    text = console.export_text()
    assert re.search(r"no_outcome\s+23\n", text)
    assert text.count("worker exited") == MAX_DETAILS
    assert text.endswith("... and 3 more (--json lists them all)\n")
