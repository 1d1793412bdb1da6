"""Benchmark 20: the node under ten times its delivery rate, for minutes: memory, disk, refusals.

The node runs as users run it (``python -m otpy run --config otpy.toml``) against
the sink process of benchmark 19, made slow: the destination allows 2 attempts in
flight and the sink holds each request 50 ms, so the node delivers about 40
messages a second. Clients post at ten times that (400/s, open loop) for the whole
run. The route's pressure capacity and the journal's disk budget are small, so the
node must refuse most of it: ``429`` with ``Retry-After``.

Every second the benchmark samples the node's resident memory (``/proc``) and its
journal through the admin API (``/v1/status``: depth and bytes against the budget).
Figures: the memory at the end against the memory after the warm-up (flat: about
1.0x), the journal's largest bytes against its budget (at most 1.0x), and the
refusals: each must be a ``429`` with ``Retry-After`` (anything else is counted as
a failure). Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from ._e2e import _free_port, _sink, running_node
from ._harness import BenchmarkResult, Figure, Sample, Target, column, median

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

    from ._harness import Runtime, Size

__all__ = ["run"]

CLIENTS = 64
"""The most posts in flight at once; an offer finding them all busy is not sent (counted)."""
RATE = 400.0
"""Messages a second the clients offer: ten times what the node delivers."""
MAX_BYTES = 200_000
"""The journal's disk budget: a few hundred messages."""
WARM_UP = 10.0
"""Seconds before the memory baseline is taken."""
BODY = json.dumps({"t": 0, "pad": "x" * 400}).encode()

_CONFIG = """\
[node]
var_dir = "{var}"
synchronous = "full"

[ingest]
port = {port}
max_bytes = {max_bytes}
outbox_limit = {outbox_limit}

[ingest.routes.soak]
destinations = ["slow"]

[ingest.routes.soak.pressure]
capacity = 400

[gateway.destinations.slow]
url = "{sink}/hooks?delay=0.05"
max_concurrent = 2

[admin]
port = {admin}
"""


def _rss(pid: int) -> int:
    """The process's resident memory, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def _node(
    directory: Path, sink: str, scale: int
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    port, admin = _free_port(), _free_port()
    text = _CONFIG.format(
        var=directory / "var",
        port=port,
        admin=admin,
        sink=sink,
        max_bytes=MAX_BYTES // scale,
        outbox_limit=max(200 // scale, 1),
    )
    with running_node(directory, text, port) as (process, base):
        yield process, base, f"http://127.0.0.1:{admin}"


async def _soak(directory: Path, sink: str, seconds: float, scale: int) -> Sample:
    counts = {"accepted": 0, "refused": 0, "bad_refusals": 0, "errors": 0, "not_sent": 0}
    rss: list[tuple[float, int]] = []
    max_bytes_used = 0
    with _node(directory, sink, scale) as (process, base, admin):
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with (
            httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client,
            httpx.AsyncClient(base_url=admin, timeout=10.0) as status,
            anyio.create_task_group() as tg,
        ):

            async def post(i: int) -> None:
                try:
                    response = await client.post(
                        "/v1/routes/soak/messages",
                        content=BODY,
                        headers={"idempotency-key": f"soak-{i}", "x-otpy-key": f"k{i % 16}"},
                    )
                except httpx.HTTPError:
                    counts["errors"] += 1
                    return
                if response.status_code == 202:
                    counts["accepted"] += 1
                elif response.status_code == 429 and response.headers.get("retry-after"):
                    counts["refused"] += 1
                else:
                    counts["bad_refusals"] += 1

            async def sample() -> None:
                nonlocal max_bytes_used
                start = time.monotonic()
                while True:
                    rss.append((time.monotonic() - start, _rss(process.pid)))
                    journal = (await status.get("/v1/status")).json()["journal"]
                    max_bytes_used = max(max_bytes_used, int(journal["bytes"]))
                    await anyio.sleep(1.0)

            tg.start_soon(sample)
            started = time.monotonic()
            i = 0
            slots = anyio.Semaphore(CLIENTS)

            async def offer(i: int) -> None:
                try:
                    await post(i)
                finally:
                    slots.release()

            while (elapsed := time.monotonic() - started) < seconds:
                wait = started + i / RATE - time.monotonic()
                if wait > 0:
                    await anyio.sleep(wait)
                i += 1
                try:  # an open loop, but never more than CLIENTS posts waiting at once
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    counts["not_sent"] += 1
                    continue
                tg.start_soon(offer, i)
            tg.cancel_scope.cancel()
    answered = counts["accepted"] + counts["refused"] + counts["bad_refusals"]
    baseline_rss = median([r for t, r in rss if WARM_UP <= t < WARM_UP + 5] or [rss[0][1]])
    final_rss = median([r for _, r in rss[-5:]])
    return {
        "rss_growth": final_rss / baseline_rss,
        "rss_end_mb": final_rss / 2**20,
        "rss_warm_mb": baseline_rss / 2**20,
        "journal_fill": max_bytes_used / (MAX_BYTES // scale),
        "accepted_per_s": counts["accepted"] / elapsed,
        "refused_share": counts["refused"] / max(answered, 1),
        "answered_per_s": answered / elapsed,
        "not_sent_share": counts["not_sent"] / max(i, 1),
        "bad_refusals": float(counts["bad_refusals"] + counts["errors"]),
    }


async def _call(directory: Path, sink: str, seconds: float, scale: int, _: int) -> Sample:
    return await _soak(directory, sink, seconds, scale)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """The node at 10x its delivery rate: memory flat, disk within budget, refusals as 429s."""
    seconds = float(size.pick(full=180, quick=30, smoke=3))
    scale = size.pick(full=1, quick=1, smoke=40)  # a smoke run is short: smaller bounds
    samples: list[Sample] = []
    with _sink() as sink, tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        for rep in range(repeat):
            directory = Path(tmp) / f"soak-{rep}"
            directory.mkdir()
            samples.append(
                runtime.run(functools.partial(_call, directory, sink, seconds, scale), 0)
            )
    one = [{"x": 1.0} for _ in samples]
    figures = (
        Figure(
            metric="rss_growth",
            label="node memory at the end vs after the warm-up",
            unit="x",
            higher_is_better=False,
            baseline_name="flat (1.0x)",
            otpy_samples=column(samples, "rss_growth"),
            baseline_samples=column(one, "x"),
            target=Target(text="<= 1.1x", on="value", op="<=", threshold=1.1),
        ),
        Figure(
            metric="journal_fill",
            label="journal's largest bytes vs its budget",
            unit="x",
            higher_is_better=False,
            baseline_name="the budget (1.0x)",
            otpy_samples=column(samples, "journal_fill"),
            baseline_samples=column(one, "x"),
            target=Target(text="<= 1.0x", on="value", op="<=", threshold=1.0),
        ),
        Figure(
            metric="refused_share",
            label="share of answered posts refused with 429 + Retry-After",
            unit="x",
            higher_is_better=True,
            baseline_name="all offered",
            otpy_samples=column(samples, "refused_share"),
            baseline_samples=column(one, "x"),
        ),
    )
    return BenchmarkResult(
        name="soak",
        title="20. the node at 10x overload",
        size=(
            f"{seconds:g} s at {RATE:g} posts/s offered to a node delivering ~40/s "
            f"(journal budget {MAX_BYTES // scale:,} B, outbox limit {max(200 // scale, 1)}, "
            "route capacity 400)"
        ),
        figures=figures,
        notes=(
            f"memory after warm-up {median(column(samples, 'rss_warm_mb')):.1f} MB, at the end "
            f"{median(column(samples, 'rss_end_mb')):.1f} MB; answered "
            f"{median(column(samples, 'answered_per_s')):.1f}/s of the {RATE:g}/s offered "
            f"({median(column(samples, 'not_sent_share')):.0%} not sent: all {CLIENTS} "
            "in flight), accepted "
            f"{median(column(samples, 'accepted_per_s')):.1f}/s; refusals that were not a 429 "
            f"with Retry-After, or failed requests: {max(column(samples, 'bad_refusals')):g}",
        ),
    )
