"""Every script in examples/ runs by itself, exits 0 and prints what it promises.

The scripts are found with a glob, so a new example is run without touching this
file; add its key line to ``KEY_LINES`` to check its output too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

KEY_LINES = {
    "outbound_gateway.py": "after the replay: [('customer-42', 1), ('customer-42', 2), ('customer-42', 4), ('customer-42', 3)]",
    "backoff.py": "flaky is stable after 6 restarts",
    "counter.py": "deferred reply: count reached 20 (count=21)",
    "dynamic_pool.py": "pool: 3 workers running, 1 restart",
    "monitors_links.py": "guardian (linked, trap_exit) alive: True",
    "one_for_all_pair.py": "both restarted: connection on session 2, reader on session 2",
    "partitioned_deliveries.py": "nothing lost: 60 of 60 burst deliveries delivered or dead-lettered",
    "rest_for_one_pipeline.py": "store holds [30, 40]",
}


def example_names() -> list[str]:
    """Return the file names of every example, sorted."""
    return sorted(path.name for path in EXAMPLES.glob("*.py"))


def test_examples_are_found() -> None:
    """The glob finds the examples directory and every example with a key line."""
    assert set(KEY_LINES) <= set(example_names())


@pytest.mark.parametrize("name", example_names())
def test_example_runs_and_ends_by_itself(name: str) -> None:
    """The example exits 0 within 60 s and prints its key line."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), f"{name} printed nothing"
    if name in KEY_LINES:
        assert KEY_LINES[name] in result.stdout, result.stdout
