"""``otpy ingest load``: JSON lines from a file or stdin into the node's journal, with the HTTP ingest's checks.

The command opens the journal file the node's ``--config`` names and submits the
lines through an :class:`~otpy.ingest.IngestApp` built from the same routes, so a
line is checked, deduplicated and refused exactly as the batch endpoint would. The
journal is SQLite, shared between processes: a running node's hand-over picks the
entries up (on its next poll), and a node started later finds them pending. A
route under pressure, or a full journal, is waited out (``--max-wait``).

Exits 0 when every line is in the journal (accepted, or a duplicate of an entry
accepted before), 1 when a line was refused or malformed (the summary says which)
or the journal could not be opened, 2 for a usage or configuration error.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Final

import anyio
import click

import otpy

if TYPE_CHECKING:
    from otpy.ingest import LoadReport, Malformed, Refusal

__all__ = ["ingest", "report_json"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""A line refused or malformed, or the journal could not be opened."""

SHOWN: Final = 20
"""The refused and the malformed lines the text summary lists, each; ``--json`` lists all."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def ingest() -> None:
    """Load messages into the node's journal from outside HTTP."""


@ingest.command()
@click.argument(
    "file",
    metavar="FILE|-",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str),
)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    envvar="OTPY_CONFIG",
    show_envvar=True,
    metavar="PATH",
    help="The node's otpy.toml: its journal file and its routes.",
)
@click.option(
    "--route",
    metavar="NAME",
    help="The route of the lines that name none (a line's own 'route' wins).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Lines submitted in one journal commit.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0.0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait in a row for a busy route or a full journal before "
    "reporting its lines refused.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.pass_context
def load(
    ctx: click.Context,
    file: str,
    config_path: str,
    route: str | None,
    batch: int,
    max_wait: float,
    as_json: bool,
) -> None:
    """Load JSON lines (FILE, or - for stdin) into the node's journal.

    One message a line, in the format of the HTTP batch endpoint
    (POST /v1/routes/{route}/batch), plus an optional "route":

    \b
        {"body": "{\\"paid\\": true}", "route": "orders", "idempotency_key": "order-1"}
        {"body_base64": "AAEC", "key": "customer-7", "priority": "high"}

    \b
    Each line is checked, deduplicated and refused as over HTTP. The running node
    hands the entries over to its gateway. Exits 0 when every line is in the journal
    (accepted or a duplicate), 1 if one was refused or malformed, 2 on a usage or
    configuration error:
        otpy ingest load orders.jsonl --route orders --config otpy.toml
    """
    from otpy.ingest import JsonLinesSource, load_source
    from otpy.node import load_config, node_parts

    try:
        config = load_config(config_path)
    except otpy.ConfigError as exc:
        raise click.UsageError(f"the configuration is invalid: {exc}") from None
    if route is not None and route not in config.ingest.routes:
        known = ", ".join(sorted(config.ingest.routes)) or "none"
        raise click.BadParameter(
            f"{route!r} is not a route of {config_path} (its routes: {known})",
            ctx,
            param_hint="'--route'",
        )
    stream = sys.stdin.buffer if file == "-" else None
    source = JsonLinesSource(file if stream is None else stream, route=route, batch=batch)
    parts = node_parts(config)

    async def main() -> LoadReport:
        await parts.journal.open()
        try:
            # The depths the node has now; re-read before each retry, since the
            # node's hand-over lowers them in its own process, not here.
            await parts.ingest.load_pending()
            return await load_source(source, parts.ingest, max_wait=max_wait, reload_pending=True)
        finally:
            await parts.journal.aclose()

    try:
        report = anyio.run(main, backend="asyncio")
    except otpy.OtpyError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"could not read {file}: {exc}") from None
    name = "stdin" if file == "-" else file
    if as_json:
        click.echo(json.dumps(report_json(report, name), indent=2, ensure_ascii=False))
    else:
        click.echo(_summary(report, name))
    ctx.exit(EXIT_OK if report.complete else EXIT_FAILED)


def report_json(report: LoadReport, source: str) -> dict[str, Any]:
    """The ``--json`` document: the counts, each refused and each malformed line."""
    return {
        "source": source,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "refused": dict(report.refused),
        "malformed": len(report.malformed),
        "complete": report.complete,
        "waited": report.waited,
        "refusals": [_refusal_json(r) for r in report.refusals],
        "malformed_lines": [_malformed_json(m) for m in report.malformed],
    }


def _refusal_json(refusal: Refusal) -> dict[str, Any]:
    return {
        "line": refusal.line,
        "route": refusal.route,
        "status": refusal.status,
        "error": refusal.error,
        "detail": refusal.detail,
    }


def _malformed_json(malformed: Malformed) -> dict[str, Any]:
    return {"line": malformed.line, "error": malformed.error, "detail": malformed.detail}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(report: LoadReport, source: str) -> str:
    refused = len(report.refusals)
    lines = [
        f"{source}: {report.accepted} accepted, {_plural(report.duplicates, 'duplicate')}, "
        f"{refused} refused, {len(report.malformed)} malformed"
    ]
    if report.waited:
        lines.append(f"waited {report.waited:g}s for the node's pressure or journal to ease")
    if refused:
        by_reason = ", ".join(f"{reason} {n}" for reason, n in report.refused.items())
        lines.append(f"refused: {by_reason}")
        lines.extend(
            f"  line {r.line}: {r.error} (route {r.route!r}): {r.detail}"
            for r in report.refusals[:SHOWN]
        )
        lines.extend(_more(refused))
    if report.malformed:
        lines.append("malformed:")
        lines.extend(f"  line {m.line}: {m.error}: {m.detail}" for m in report.malformed[:SHOWN])
        lines.extend(_more(len(report.malformed)))
    return "\n".join(lines)


def _more(total: int) -> list[str]:
    return [f"  ... and {total - SHOWN} more (--json lists them all)"] if total > SHOWN else []
