"""``otpy ingest load``: JSON lines from a file or stdin into the node's journal, checked as over HTTP."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
from click.testing import CliRunner, Result

from otpy.cli import main
from otpy.ingest import SQLiteJournalStore
from otpy.node import load_config
from otpy.pressure import Priority

if TYPE_CHECKING:
    from pathlib import Path

LINES = [
    {"body": '{"paid": true}', "key": "customer-7", "idempotency_key": "order-1"},
    {"body_base64": "AAEC", "priority": "high", "route": "audit"},
]


def node_config(tmp_path: Path) -> Path:
    """An otpy.toml with the routes ``orders`` (capacity 2) and ``audit``, its files in *tmp_path*."""
    config = tmp_path / "otpy.toml"
    config.write_text(
        f'''[node]
var_dir = "{tmp_path}"
synchronous = "off"

[admin]
enabled = false

[ingest.routes.orders]
destinations = ["bridge"]

[ingest.routes.orders.pressure]
capacity = 2

[ingest.routes.audit]
destinations = ["bridge"]

[gateway.destinations.bridge]
url = "http://127.0.0.1:9/hooks"
'''
    )
    return config


def jsonl(*lines: object) -> str:
    """JSON lines: a dict is dumped, a str kept as it is."""
    return "".join((json.dumps(x) if isinstance(x, dict) else str(x)) + "\n" for x in lines)


def invoke(*args: str, stdin: str | None = None) -> Result:
    """Run ``otpy ingest load ARGS``."""
    return CliRunner().invoke(main, ["ingest", "load", *args], input=stdin)


def pending(config: Path) -> list[tuple[str, str, str | None, Priority, bytes]]:
    """The entries pending in the config's journal: route, key, idempotency key, priority, body."""
    path = load_config(str(config)).node.journal_path

    async def read() -> list[tuple[str, str, str | None, Priority, bytes]]:
        store = await SQLiteJournalStore.open(path, synchronous="OFF")
        try:
            entries = await store.pending(limit=100)
        finally:
            await store.aclose()
        return [(e.route, e.key, e.idempotency_key, e.priority, e.body) for e in entries]

    return anyio.run(read, backend="asyncio")


def test_a_file_is_loaded_into_the_nodes_journal(tmp_path: Path) -> None:
    """Each line is a pending entry with its route, key, idempotency key and priority; exit 0."""
    config = node_config(tmp_path)
    data = tmp_path / "load.jsonl"
    data.write_text(jsonl(*LINES))
    result = invoke(str(data), "--route", "orders", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{data}: 2 accepted, 0 duplicates, 0 refused, 0 malformed\n"
    assert pending(config) == [
        ("orders", "customer-7", "order-1", Priority.NORMAL, b'{"paid": true}'),
        ("audit", "audit", None, Priority.HIGH, b"\x00\x01\x02"),
    ]


def test_stdin_is_read_for_a_dash_and_a_repeat_is_a_duplicate(tmp_path: Path) -> None:
    """``-`` reads stdin; the same idempotency key again is a duplicate, still exit 0."""
    config = node_config(tmp_path)
    line = jsonl({"body": "x", "idempotency_key": "order-1"})
    first = invoke("-", "--route", "orders", "--config", str(config), stdin=line)
    again = invoke("-", "--route", "orders", "--config", str(config), stdin=line)
    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stdout == "stdin: 0 accepted, 1 duplicate, 0 refused, 0 malformed\n"
    assert pending(config) == [("orders", "orders", "order-1", Priority.NORMAL, b"x")]


def test_a_bad_line_is_reported_and_the_others_loaded(tmp_path: Path) -> None:
    """A malformed line and an unknown route: listed with their numbers, exit 1, the rest pending."""
    config = node_config(tmp_path)
    data = jsonl(
        {"body": "a"},
        "{oops",
        {"body": "b", "route": "nope"},
        {"body": "c", "key": "k"},
    )
    result = invoke("-", "--route", "orders", "--config", str(config), stdin=data)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "stdin: 2 accepted, 0 duplicates, 1 refused, 1 malformed",
        "refused: unknown_route 1",
        "  line 3: unknown_route (route 'nope'): no route 'nope'",
        "malformed:",
        "  line 2: bad_json: the line is not JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)",
    ]
    assert [(route, key, body) for route, key, _, _, body in pending(config)] == [
        ("orders", "orders", b"a"),
        ("orders", "k", b"c"),
    ]


def test_json_lists_every_refused_and_malformed_line(tmp_path: Path) -> None:
    """``--json``: the counts, each refusal and each malformed line, in one document."""
    config = node_config(tmp_path)
    data = jsonl({"body": "a"}, {"body": "b", "priority": "meh", "route": "orders"}, {"body": "c"})
    result = invoke("-", "--config", str(config), "--json", stdin=data)
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert {k: document[k] for k in ("accepted", "duplicates", "refused", "complete")} == {
        "accepted": 0,
        "duplicates": 0,
        "refused": {},
        "complete": False,
    }
    assert [(m["line"], m["error"]) for m in document["malformed_lines"]] == [
        (1, "no_route"),
        (2, "bad_priority"),
        (3, "no_route"),
    ]


def test_a_busy_route_is_refused_after_max_wait(tmp_path: Path) -> None:
    """Capacity 2 and no node handing over: the third line is refused route_full once --max-wait is spent."""
    config = node_config(tmp_path)
    data = jsonl({"body": "a"}, {"body": "b"}, {"body": "c"})
    result = invoke(
        "-", "--route", "orders", "--config", str(config), "--max-wait", "0", stdin=data
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:3] == [
        "stdin: 2 accepted, 0 duplicates, 1 refused, 0 malformed",
        "refused: route_full 1",
        "  line 3: route_full (route 'orders'): route 'orders' has 2 messages pending, its capacity",
    ]
    again = invoke("-", "--route", "orders", "--config", str(config), "--max-wait", "0", stdin=data)
    assert again.stdout.startswith(
        "stdin: 0 accepted, 0 duplicates, 3 refused"
    )  # the depth is read


def test_a_config_error_exits_2(tmp_path: Path) -> None:
    """An invalid config, an unknown --route or a missing file is a usage error, exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nsynchronous = 'sometimes'\n")
    invalid = invoke("-", "--config", str(bad), stdin="")
    assert invalid.exit_code == 2
    assert "the configuration is invalid:" in invalid.stderr
    assert "node.synchronous" in invalid.stderr
    config = node_config(tmp_path)
    route = invoke("-", "--route", "nope", "--config", str(config), stdin="")
    assert route.exit_code == 2
    assert "'nope' is not a route of" in route.stderr
    assert "(its routes: audit, orders)" in route.stderr
    missing = invoke(str(tmp_path / "absent.jsonl"), "--config", str(config))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert invoke("-", stdin="").exit_code == 2  # no --config, no OTPY_CONFIG


def test_a_file_that_is_not_a_journal_exits_1(tmp_path: Path) -> None:
    """The config's journal path holds something else: one line saying so, exit 1, nothing written."""
    config = node_config(tmp_path)
    journal = load_config(str(config)).node.journal_path
    journal.write_bytes(b"not a database, but long enough to look like a header" * 4)
    result = invoke("-", "--route", "orders", "--config", str(config), stdin=jsonl({"body": "a"}))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert str(journal) in result.stderr
    assert journal.read_bytes() == b"not a database, but long enough to look like a header" * 4


def test_json_lists_the_refusals_with_their_routes(tmp_path: Path) -> None:
    """A refused line in ``--json``: its line, route, status, reason and detail."""
    config = node_config(tmp_path)
    data = jsonl({"body": "a", "route": "nope"}, {"body": "b", "route": "audit"})
    result = invoke("-", "--config", str(config), "--json", stdin=data)
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert (document["source"], document["accepted"], document["refused"]) == (
        "stdin",
        1,
        {"unknown_route": 1},
    )
    assert document["refusals"] == [
        {
            "line": 1,
            "route": "nope",
            "status": 404,
            "error": "unknown_route",
            "detail": "no route 'nope'",
        }
    ]
