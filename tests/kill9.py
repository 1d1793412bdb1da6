"""What the kill -9 tests share: run a child process, SIGKILL it once it has said enough.

A child prints one line per acknowledgement (an id, or a word the test waits for).
:func:`run_then_kill` reads its output without sleeping, kills it with SIGKILL
mid-work, and returns every complete line it printed, those still in the pipe after
the kill included: a line cut short by the kill is not an acknowledgement.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).parents[1]
PATIENCE = 30.0  # seconds to wait for the child's output before failing; never slept


def _read_lines(proc: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> list[str]:
    """Return the output *proc* has written so far, waiting up to PATIENCE for some."""
    assert proc.stdout is not None
    if not selector.select(timeout=PATIENCE):
        raise AssertionError(f"the child printed nothing for {PATIENCE:g}s")
    chunk = os.read(proc.stdout.fileno(), 65536)
    if not chunk:
        raise AssertionError(f"the child exited early with {proc.wait()}")
    return chunk.decode().splitlines(keepends=True)


def run_then_kill(child: Path, args: Sequence[str], stderr: Path, until: int | str) -> list[str]:
    """Run ``python child *args``; SIGKILL it once it printed *until* lines (or the line *until*).

    Returns every complete line it printed, before and after the kill.
    """
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(child), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.stdout is not None
    pending = ""
    lines: list[str] = []

    def done() -> bool:
        return until in lines if isinstance(until, str) else len(lines) >= until

    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + PATIENCE
            while not done():
                assert time.monotonic() < deadline, f"only {len(lines)} lines in {PATIENCE:g}s"
                for piece in _read_lines(proc, selector):
                    pending += piece
                    if pending.endswith("\n"):
                        lines.append(pending.strip())
                        pending = ""
        assert proc.poll() is None, "the child stopped before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=PATIENCE) == -signal.SIGKILL
        rest = pending + proc.stdout.read().decode()
        lines.extend(rest.split("\n")[:-1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stdout.close()
    assert lines, stderr.read_text()
    return lines


def integrity(db: Path) -> list[tuple[str]]:
    """``PRAGMA integrity_check`` of the SQLite file *db*: ``[("ok",)]`` when intact."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        result: list[tuple[str]] = connection.execute("PRAGMA integrity_check").fetchall()
    return result
