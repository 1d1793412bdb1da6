"""Shared fixtures: every async test runs on asyncio and on trio unless it says otherwise."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from collections.abc import Iterator


# CI's machine is a shared 2-core box: an example may take any time there, so no
# property test has a per-example deadline or a "too slow" health check. Sizes are
# kept small instead (max_examples), for correctness rather than speed.
settings.register_profile(
    "otpy", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("otpy")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends; trio runs on a MockClock so timers cost no real time."""
    if request.param == "trio":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {})


ROOT = Path(__file__).resolve().parent.parent
# Caches that tools write into the checkout by design; everything else a test writes
# belongs in a temporary directory.
CACHES = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
}


def _checkout_files() -> dict[str, int]:
    """Every file in the checkout outside the caches, with its modification time."""
    files: dict[str, int] = {}
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in CACHES]
        for name in names:
            path = os.path.join(directory, name)
            if name.startswith(".coverage"):
                continue  # pytest-cov's data file, written by the run itself
            with contextlib.suppress(FileNotFoundError):
                files[os.path.relpath(path, ROOT)] = os.stat(path).st_mtime_ns
    return files


@pytest.fixture(scope="session", autouse=True)
def _tests_write_only_to_temporary_directories() -> Iterator[None]:
    """Fail the run if a test created or changed a file in the checkout (``var/``, say)."""
    before = _checkout_files()
    yield
    after = _checkout_files()
    written = sorted(path for path, mtime in after.items() if before.get(path) != mtime)
    assert written == [], f"tests wrote into the checkout: {written}"
