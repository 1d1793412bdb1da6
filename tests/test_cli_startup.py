"""``otpy --help`` and ``otpy --version`` start at once: they import what they need only.

What a subcommand needs waits until it runs: the OpenTelemetry SDK and exporters
until ``otpy run`` configures telemetry, the dead-letter store (aiosqlite) and rich
until ``otpy dlq``, the live console until ``otpy run --console``. The time it saves
is measured by ``make bench`` (``cli-startup``); these tests check the imports
themselves, which do not depend on how busy the machine is.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from otpy.cli import LAZY_COMMANDS, main

HEAVY = (
    # the OpenTelemetry API too: supervision and the run command import it where
    # they record or configure, so `otpy --help` loads none of it
    "opentelemetry",
    "grpc",
    "google.protobuf",
    "rich",
    "aiosqlite",
    "sqlite3",
    "otpy.deadletter",
    "otpy.pressure",
    "otpy.console",
    # otpy's core imports these where it uses them, not on import: asyncio when an
    # actor runs on it, importlib.metadata when telemetry asks for otpy's version
    "asyncio",
    "importlib.metadata",
)
"""Packages (with their submodules) that ``otpy --help`` and ``--version`` do without."""


def _loaded_after(*args: str) -> list[str]:
    """Run ``otpy ARGS`` in a fresh interpreter; return the heavy modules it imported."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from otpy.cli import main
        try:
            main({list(args)!r}, prog_name="otpy")
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        heavy = {HEAVY!r}
        loaded = sorted(
            name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in heavy)
        )
        print(json.dumps(loaded), file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stderr.splitlines()[-1])
    return loaded


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("run", "--help")])
def test_help_and_version_import_no_heavy_module(args: tuple[str, ...]) -> None:
    """`otpy --help`, `--version` and `run --help` import no SDK, exporter, rich, store or console."""
    assert _loaded_after(*args) == []


def test_dlq_is_imported_when_it_runs() -> None:
    """`otpy dlq --help` imports the dead-letter subsystem: the lazy command is the real one."""
    assert "otpy.deadletter" in _loaded_after("dlq", "--help")


@pytest.mark.parametrize("width", [40, 80, 200])
def test_help_lists_a_lazy_command_as_it_would_once_imported(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """`otpy --help` shows a lazy command's own summary, cut as click cuts an imported one."""
    for name in LAZY_COMMANDS:
        monkeypatch.delitem(main.commands, name, raising=False)
    runner = CliRunner()
    lazy = runner.invoke(main, ["--help"], terminal_width=width)
    with click.Context(main) as ctx:
        for name in LAZY_COMMANDS:
            assert main.get_command(ctx, name) is not None
    assert set(LAZY_COMMANDS) <= set(main.commands)
    imported = runner.invoke(main, ["--help"], terminal_width=width)
    assert lazy.exit_code == imported.exit_code == 0
    assert lazy.output == imported.output
    for name in LAZY_COMMANDS:
        assert f"  {name}  " in lazy.output


def test_lazy_summaries_are_the_commands_own() -> None:
    """Each summary in LAZY_COMMANDS is the first line of the command's own help."""
    for name, (module, summary) in LAZY_COMMANDS.items():
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        assert command.get_short_help_str(limit=200) == summary


def test_version_is_the_installed_distributions() -> None:
    """`otpy --version` prints otpy.__version__, which is the installed distribution's version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"otpy, version {importlib.metadata.version('otpy')}\n"
