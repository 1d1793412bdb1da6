"""The ``otpy`` command line: ``otpy run MODULE:ATTR`` runs a supervision tree as a node.

``otpy dlq ...`` lists, inspects, replays, archives and purges dead letters.

Also reachable as ``python -m otpy``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import click

from ._dlq import dlq
from ._run import RunningNode as RunningNode
from ._run import load_target as load_target
from ._run import run as run
from ._run import run_node as run_node
from ._target import TargetError as TargetError

__all__ = ["RunningNode", "TargetError", "load_target", "main", "run_node"]


@click.group(name="otpy", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="otpy", prog_name="otpy")
def main() -> None:
    """otpy: OTP-style actors and supervision trees on anyio."""


main.add_command(run)
main.add_command(dlq)
