"""otpy's benchmark suite: ``python -m benchmarks`` (or ``make bench``).

Every figure is measured beside a baseline written with the raw primitives otpy is
built on (``asyncio.Queue``, anyio memory object streams, bare tasks), in the same
run and on the same event loop, and reported with the ratio between the two. Each
benchmark runs several repetitions and reports medians. Targets are printed as PASS
or MISS and never fail the run. See ``docs/performance.md``.
"""

from __future__ import annotations
