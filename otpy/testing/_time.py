"""Virtual time for tests: trio's ``MockClock`` through the anyio pytest plugin."""

from __future__ import annotations

from typing import Any


def virtual_time() -> tuple[str, dict[str, Any]]:
    """Return an ``anyio_backend`` value: trio with a ``MockClock`` that jumps at once."""
    try:
        from trio.testing import MockClock
    except ImportError as exc:
        raise ImportError("virtual_time() needs trio: pip install 'otpy[testing]'") from exc

    return ("trio", {"clock": MockClock(autojump_threshold=0)})
