"""The ``otpy`` command line: ``otpy run MODULE:ATTR`` runs a supervision tree as a node.

``otpy dlq ...`` lists, inspects, replays, archives and purges dead letters.
``otpy ingest load FILE`` loads JSON lines into the node's journal.

Also reachable as ``python -m otpy``.

The command starts at once: ``otpy --help`` and ``otpy --version`` import click
and otpy's core, nothing more. A subcommand's heavy imports wait until it runs:
the dead-letter store (aiosqlite) and rich for ``otpy dlq``, the OpenTelemetry SDK
and exporters for ``otpy run`` (when it configures telemetry), the live console
for ``otpy run --console``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import importlib
from typing import Final

import click

import otpy

from ._run import RunningNode as RunningNode
from ._run import load_target as load_target
from ._run import run as run
from ._run import run_node as run_node
from ._target import TargetError as TargetError

__all__ = ["RunningNode", "TargetError", "load_target", "main", "run_node"]

LAZY_COMMANDS: Final[dict[str, tuple[str, str]]] = {
    # name: (the module defining a click command of that name, the summary
    # ``otpy --help`` lists it with; a test checks it is the command's own)
    "dlq": ("otpy.cli._dlq", "Inspect, replay, archive and purge dead letters."),
    "ingest": ("otpy.cli._ingest", "Load messages into the node's journal from outside HTTP."),
}
"""Subcommands imported only when they run, not to list them in ``otpy --help``."""


class _Otpy(click.Group):
    """The ``otpy`` group: its heavy subcommands are imported when they are used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, imported or not, sorted."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the subcommand *cmd_name*, importing its module the first time."""
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            module, _summary = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), cmd_name)
            assert isinstance(command, click.Command), f"{module}.{cmd_name} is not a command"
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the subcommands with their summaries, without importing the lazy ones.

        click's own listing asks `get_command` for each subcommand, which would import
        them all; a subcommand not imported yet is listed with its summary from
        `LAZY_COMMANDS`, cut to the terminal's width as click cuts the others.
        """
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=LAZY_COMMANDS[name][1])
            if not command.hidden:
                commands.append((name, command))
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in commands]
            )


# The version is otpy's own constant, not the installed metadata: reading that
# would import importlib.metadata, which costs more than the rest of --version.
@click.group(cls=_Otpy, name="otpy", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(otpy.__version__, package_name="otpy", prog_name="otpy")
def main() -> None:
    """otpy: OTP-style actors and supervision trees on anyio."""


main.add_command(run)
