"""The messaging node at work: ``make demo`` runs it, with a misbehaving receiver and traffic.

::

    demo              one_for_one
    ├── sink          a local HTTP receiver with three endpoints (the destinations)
    ├── node          the messaging node (supervisors/node.py), configured in code
    ├── traffic       posts to the node's ingest: steady orders and audit events, bursts
    └── narrator      says on stderr what changed: breakers, pressure, dead letters

What to watch (each shows within the first half minute, then again and again):

- **flow**: ``orders`` messages fan out to the ``orders`` and ``crm`` endpoints,
  ``audit`` events to ``audit``; every :data:`SUMMARY_EVERY` seconds the narrator
  prints what was posted, accepted, received and delivered.
- **retries**: ``orders`` answers ``503`` or ``429`` (with ``Retry-After``) to
  one request in five; the gateway tries again after half a second, then longer.
- **a breaker**: ``crm`` has an outage (``500``) from :data:`OUTAGE_START` seconds on,
  for :data:`OUTAGE` seconds, every :data:`OUTAGE_EVERY` seconds. Its breaker opens,
  tries again (half-open) every 5 s, and closes once ``crm`` answers again.
- **pressure**: every :data:`BURST_EVERY` seconds a burst of :data:`BURST` low-priority
  audit events arrives at once; the ``audit`` route climbs through warn and degraded
  to shed, the low-priority events get ``429`` with ``Retry-After`` (the traffic
  waits and sends them again), and the level falls as the hand-over catches up.
- **dead letters**: an audit event with ``"poison": true`` gets ``400``, which is
  not retried: it is a dead letter at once; ``crm`` messages that failed five times
  during the outage are dead letters too. ``otpy dlq list --db
  var/dead-letters.sqlite3`` shows them, and :func:`replay_handlers` replays them::

      otpy dlq replay --all-matching --source outbound --db var/dead-letters.sqlite3 \\
          --handlers supervisors.demo:replay_handlers

Everything the node keeps is in ``./var`` (``OTPY_NODE_VAR_DIR`` moves it); the
ingest listens on a free port of 127.0.0.1 (``OTPY_INGEST_PORT`` picks one), and
every other ``OTPY_*`` variable of ``docs/node.md`` applies. The gateway signs its
requests with the Standard Webhooks secret in ``DEMO_WEBHOOK_SECRET`` (a demo
default otherwise) and the sink checks the signatures. Run it with::

    otpy run supervisors.demo:root --console

Written only against otpy's public API.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping  # noqa: TC003  # the CLI reads replay_handlers' return type
from typing import TYPE_CHECKING, Any, final

import anyio
import attrs
import httpx
import sniffio
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import otpy
import otpy.pressure
from otpy.deadletter import DeadLetterFilter, ReplayHandler, ReplayStatus, Source
from otpy.gateway import HttpDestination, SigningSecret, verify
from otpy.node import NodeConfig, NodeParts, node_parts

from .node import build as build_node

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from starlette.requests import Request

    from otpy.deadletter import DeadLetter

__all__ = [
    "Demo",
    "Narrator",
    "Sink",
    "SinkBehaviour",
    "SinkStatistics",
    "Traffic",
    "TrafficPlan",
    "TrafficStatistics",
    "build",
    "demo_config",
    "replay_handlers",
    "root",
]

SECRET_ENV = "DEMO_WEBHOOK_SECRET"
"""The variable holding the secret the gateway signs with and the sink verifies."""
DEMO_SECRET = "whsec_" + base64.b64encode(b"otpy demo key: not a secret!").decode()
"""The secret used when :data:`SECRET_ENV` is not set; a demo's, known to everyone."""
DESTINATIONS = ("orders", "crm", "audit")
"""The sink's endpoints, one destination each."""
OUTAGE_START = 6.0
"""Seconds after the sink starts when ``crm``'s first outage begins."""
OUTAGE = 16.0
"""Seconds each ``crm`` outage lasts."""
OUTAGE_EVERY = 60.0
"""Seconds from one ``crm`` outage's start to the next."""
BURST = 300
"""Low-priority audit events in each burst."""
BURST_EVERY = 25.0
"""Seconds between bursts."""
SUMMARY_EVERY = 10.0
"""Seconds between the narrator's summaries."""

logger = logging.getLogger("otpy.demo")


def say(message: str) -> None:
    """Print one line of the demo's story to stderr (above the console, when it runs)."""
    print(f"{time.strftime('%H:%M:%S')} demo: {message}", file=sys.stderr, flush=True)


# -- configuration ----------------------------------------------------------------------


def demo_config(sink: str, *, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """The node's configuration, with the sink's endpoints under the base URL *sink*.

    Short retries, small breaker windows and small route capacities, so every
    behaviour shows within seconds. ``OTPY_*`` variables in *environ* (the process's
    by default) override it as they would a file; :data:`SECRET_ENV` defaults to
    :data:`DEMO_SECRET`.

    Raises:
        ConfigError: an ``OTPY_*`` variable is not valid; it names the key.
    """
    env = dict(os.environ if environ is None else environ)
    env.setdefault(SECRET_ENV, DEMO_SECRET)
    retry = {"initial": "0.5s", "max_backoff": "5s", "max_attempts": 5}
    breaker = {
        "window_size": 10,
        "minimum_calls": 5,
        "wait_in_open": "5s",
        "half_open_calls": 3,
    }

    def destination(name: str, **extra: object) -> dict[str, object]:
        return {
            "url": f"{sink}/{name}",
            "timeout": "5s",
            "signing_secrets_env": [SECRET_ENV],
            "disable_after": False,  # an outage must never switch a demo endpoint off
            "poll_interval": "0.5s",
            "retry": retry,
            "breaker": breaker,
            **extra,
        }

    data: dict[str, object] = {
        "node": {
            "var_dir": "var",
            "synchronous": "normal",
        },  # a demo survives a crash, not a power cut
        "ingest": {
            "port": 0,
            # A backlog (a burst) is handed over at 25 entries/s: the route's pending
            # depth stays up for a few seconds, so its pressure can be watched.
            "backfill": {"rate": 25},
            "routes": {
                "orders": {"destinations": ["orders", "crm"], "pressure": {"capacity": 200}},
                "audit": {"destinations": ["audit"], "pressure": {"capacity": 200}},
            },
        },
        "gateway": {
            "destinations": {
                "orders": destination("orders"),
                # crm gives up sooner: messages failing through its outage become
                # dead letters, to replay once it is back.
                "crm": destination("crm", retry={**retry, "max_attempts": 3}),
                "audit": destination("audit", ordering="none", max_concurrent=20),
            }
        },
        "admin": {"enabled": False},
        "drain": {"budget": "5s"},
    }
    return NodeConfig.from_mapping(data, environ=env, source="supervisors/demo.py")


# -- the sink -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SinkStatistics:
    """What the sink received.

    Attributes:
        received: requests per endpoint.
        answered: requests per ``(endpoint, status)``.
    """

    received: Mapping[str, int]
    answered: Mapping[tuple[str, int], int]


@final
@attrs.define
class SinkBehaviour:
    """How the sink's endpoints answer; the state outlives a restart of the sink actor.

    - ``orders``: of every ten requests, the fourth gets ``503`` and the eighth ``429``
      with ``Retry-After: 1``; one in four takes 0.3 s; the rest get ``200``.
    - ``crm``: ``500`` during an outage (:data:`OUTAGE` seconds from
      :data:`OUTAGE_START`, every :data:`OUTAGE_EVERY`), else ``200``; it takes 0.3 s
      either way, so the breaker's half-open trials last long enough to be seen.
    - ``audit``: ``400`` for a JSON body with ``"poison": true``, else ``200``.

    Every endpoint answers ``401`` to a request whose Standard Webhooks signature does
    not verify with *secrets* (none: not checked).

    Attributes:
        secrets: the keys the signatures are checked with.
        outage_start: seconds after the start when the first outage begins.
        outage: seconds an outage lasts.
        outage_every: seconds between outages' starts.
        started_at: ``anyio.current_time()`` when the sink first served, or ``None``.
        received: requests per endpoint.
        answered: requests per ``(endpoint, status)``.
    """

    secrets: tuple[SigningSecret, ...] = ()
    outage_start: float = OUTAGE_START
    outage: float = OUTAGE
    outage_every: float = OUTAGE_EVERY
    started_at: float | None = None
    received: Counter[str] = attrs.field(factory=Counter)
    answered: Counter[tuple[str, int]] = attrs.field(factory=Counter)

    def in_outage(self, now: float) -> bool:
        """Whether ``crm`` is in an outage at *now*."""
        if self.started_at is None:
            return False
        elapsed = now - self.started_at - self.outage_start
        return elapsed >= 0 and elapsed % self.outage_every < self.outage

    def statistics(self) -> SinkStatistics:
        """A snapshot of the counts."""
        return SinkStatistics(received=dict(self.received), answered=dict(self.answered))

    async def answer(
        self, endpoint: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], dict[str, str]]:
        """Return ``(status, JSON body, headers)`` for one request to *endpoint*."""
        n = self.received[endpoint]
        self.received[endpoint] += 1
        if self.secrets:
            try:
                verify(self.secrets, headers=headers, body=body, now=time.time())
            except otpy.SignatureError as exc:
                return 401, {"error": "bad_signature", "detail": str(exc)}, {}
        if endpoint == "orders":
            if n % 4 == 1:
                await anyio.sleep(0.3)
            if n % 10 == 3:
                return 503, {"error": "unavailable", "detail": "try again"}, {}
            if n % 10 == 7:
                return 429, {"error": "busy", "detail": "slow down"}, {"Retry-After": "1"}
        elif endpoint == "crm":
            await anyio.sleep(0.3)
            if self.in_outage(anyio.current_time()):
                return 500, {"error": "outage", "detail": "crm is down"}, {}
        elif endpoint == "audit":
            try:
                poison = json.loads(body).get("poison") is True
            except (ValueError, AttributeError):
                poison = False
            if poison:
                return 400, {"error": "poison", "detail": "this event cannot be stored"}, {}
        return 200, {"status": "ok"}, {}

    def app(self) -> Starlette:
        """The Starlette app: ``POST /{endpoint}`` for each of :data:`DESTINATIONS`."""

        async def endpoint(request: Request) -> JSONResponse:
            name = request.path_params["endpoint"]
            if name not in DESTINATIONS:
                return JSONResponse({"error": "not_found", "detail": name}, status_code=404)
            body = await request.body()
            status, content, headers = await self.answer(name, body, request.headers)
            self.answered[name, status] += 1
            return JSONResponse(content, status_code=status, headers=headers)

        return Starlette(routes=[Route("/{endpoint}", endpoint, methods=["POST"])])


def listen() -> socket.socket:
    """A listening socket on a free port of 127.0.0.1, for the sink."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


@final
class Sink(otpy.Actor):
    """Serves :class:`SinkBehaviour`'s app with Hypercorn on a socket bound when the tree was built.

    Each incarnation serves a duplicate of the socket's descriptor (Hypercorn closes
    its own), so a restart serves the same port; connections queue meanwhile. A
    call ``"statistics"`` answers a :class:`SinkStatistics`.
    """

    async def init(self, listener: socket.socket, behaviour: SinkBehaviour) -> None:
        """Serve *behaviour*'s app on *listener*."""
        from hypercorn.config import Config

        self.behaviour = behaviour
        if behaviour.started_at is None:
            behaviour.started_at = anyio.current_time()
        self.closing = anyio.Event()
        self.closed = anyio.Event()
        config = Config()
        config.bind = [f"fd://{os.dup(listener.fileno())}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("otpy.demo.sink")
        config.graceful_timeout = 1.0
        config.include_server_header = False
        self.start_task(self.serve, config, name=f"{self.ref.label} http")

    async def serve(self, config: Any) -> None:
        """Run Hypercorn until :meth:`terminate` asks it to close."""
        app: Any = self.behaviour.app()  # Starlette's ASGI types are not Hypercorn's
        try:
            if sniffio.current_async_library() == "trio":
                from hypercorn.trio import serve as trio_serve

                await trio_serve(app, config, shutdown_trigger=self.closing.wait)
            else:
                from hypercorn.asyncio import serve as asyncio_serve

                await asyncio_serve(app, config, shutdown_trigger=self.closing.wait)
        finally:
            self.closed.set()

    async def terminate(self, reason: object) -> None:
        """Close the server, letting the requests in flight finish (within the child's shutdown)."""
        self.closing.set()
        await self.closed.wait()

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """``"statistics"``: what the sink received, a :class:`SinkStatistics`."""
        if message == "statistics":
            return self.behaviour.statistics()
        return await super().handle_call(message, caller)


# -- the traffic ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TrafficPlan:
    """What the traffic generator sends, and when.

    Attributes:
        order_every: seconds between two orders (route ``orders``).
        audit_every: seconds between two audit events (route ``audit``).
        customers: orders are keyed ``customer-0`` ... by customer.
        duplicate_every: every this many orders, the previous one is sent again
            with its ``Idempotency-Key`` (the ingest answers ``200``).
        poison_every: every this many audit events, one is poison (from the third).
        burst: low-priority audit events in a burst.
        first_burst: seconds after the start of the first burst.
        burst_every: seconds between bursts.
        run: what makes this run's idempotency keys its own (a new run must not be
            taken for a repeat of the last one).
    """

    order_every: float = 0.25
    audit_every: float = 1.0
    customers: int = 8
    duplicate_every: int = 10
    poison_every: int = 12
    burst: int = BURST
    first_burst: float = 12.0
    burst_every: float = BURST_EVERY
    run: str = attrs.field(factory=lambda: uuid.uuid4().hex[:8])


@attrs.frozen(kw_only=True)
class TrafficStatistics:
    """What the traffic generator sent and how the ingest answered.

    Attributes:
        posted: requests made (a batch counts once).
        accepted: messages answered ``202``.
        duplicates: messages answered ``200`` as a repeat.
        refused: ``429`` answers (pressure), each honoured by waiting ``Retry-After``.
        failed: requests that got no answer, or another status.
        poison: poison events sent.
        bursts: bursts sent.
    """

    posted: int
    accepted: int
    duplicates: int
    refused: int
    failed: int
    poison: int
    bursts: int


@final
class Traffic(otpy.Actor):
    """Posts to the node's ingest: orders, audit events and bursts, per its :class:`TrafficPlan`.

    Starts after the node, so it asks the ingest where it listens. It never
    crashes on a failed request: a refusal is waited out (``Retry-After``) and sent
    again, any other failure counted and logged at debug. A call ``"statistics"``
    answers a :class:`TrafficStatistics`.
    """

    async def init(self, plan: TrafficPlan, dead_letters: str | None = None) -> None:
        """Find the ingest, say how to use it (once, given the *dead_letters* path), and send."""
        self.plan = plan
        self.counts: Counter[str] = Counter()
        host, port = await self.node.named("ingest").call("address")
        self.base = f"http://{host}:{port}"
        self.client = httpx.AsyncClient(
            base_url=self.base,
            timeout=10.0,
            limits=httpx.Limits(max_connections=20),
        )
        if dead_letters is not None:
            say(
                f"the ingest listens on {self.base}; post your own message with\n"
                f"    curl -i -X POST {self.base}/v1/routes/orders/messages "
                "-H 'Content-Type: application/json' -H 'X-Otpy-Key: customer-1' "
                '-d \'{"order": "mine"}\'\n'
                f"  dead letters: otpy dlq list --db {dead_letters}\n"
                "  replay them:  otpy dlq replay --all-matching --source outbound "
                f"--db {dead_letters} --handlers {__name__}:replay_handlers"
            )
        self.start_task(self.send_orders, name=f"{self.ref.label} orders")
        self.start_task(self.send_audit, name=f"{self.ref.label} audit")
        self.start_task(self.send_bursts, name=f"{self.ref.label} bursts")

    async def terminate(self, reason: object) -> None:
        """Close the HTTP client."""
        with anyio.move_on_after(1.0, shield=True):
            await self.client.aclose()

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """``"statistics"``: what was sent, a :class:`TrafficStatistics`."""
        if message == "statistics":
            c = self.counts
            return TrafficStatistics(
                posted=c["posted"],
                accepted=c["accepted"],
                duplicates=c["duplicates"],
                refused=c["refused"],
                failed=c["failed"],
                poison=c["poison"],
                bursts=c["bursts"],
            )
        return await super().handle_call(message, caller)

    async def post(self, route: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Post one message, waiting out and retrying ``429`` and ``503`` (up to 30 times)."""
        for _ in range(30):
            self.counts["posted"] += 1
            try:
                response = await self.client.post(
                    f"/v1/routes/{route}/messages", content=body, headers=dict(headers)
                )
            except httpx.HTTPError as exc:
                self.counts["failed"] += 1
                logger.debug("posting to route %s failed: %r", route, exc)
                return
            if response.status_code == 202:
                self.counts["accepted"] += 1
                return
            if response.status_code == 200:
                self.counts["duplicates"] += 1
                return
            if response.status_code not in (429, 503):
                self.counts["failed"] += 1
                logger.debug("route %s answered %d", route, response.status_code)
                return
            if response.status_code == 429:
                self.counts["refused"] += 1
            await anyio.sleep(retry_after(response))
        self.counts["failed"] += 1

    async def every(self, seconds: float, send: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        """Call ``send(n)`` for n = 0, 1, ... every *seconds*, each in a task of its own."""
        async with anyio.create_task_group() as tg:
            n = 0
            while True:
                tg.start_soon(send, n)
                n += 1
                await anyio.sleep(seconds)

    async def send_orders(self) -> None:
        """An order every ``order_every`` seconds; now and then the previous one again."""
        plan = self.plan

        async def order(n: int) -> None:
            if n and n % plan.duplicate_every == 0:
                n -= 1  # the same Idempotency-Key as the last one: a duplicate
            customer = f"customer-{n % plan.customers}"
            body = json.dumps({"order": n, "customer": customer, "total": 10 + n % 90})
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"{plan.run}-order-{n}",
                "X-Otpy-Key": customer,
            }
            await self.post("orders", body.encode(), headers)

        await self.every(plan.order_every, order)

    async def send_audit(self) -> None:
        """An audit event every ``audit_every`` seconds; every ``poison_every``-th is poison."""
        plan = self.plan

        async def event(n: int) -> None:
            poison = n % plan.poison_every == 2
            fields: dict[str, object] = {"event": n, "action": "login"}
            if poison:
                fields["poison"] = True
                self.counts["poison"] += 1
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"{plan.run}-audit-{n}",
            }
            await self.post("audit", json.dumps(fields).encode(), headers)

        await self.every(plan.audit_every, event)

    async def send_bursts(self) -> None:
        """A burst every ``burst_every`` seconds from ``first_burst`` on."""
        await anyio.sleep(self.plan.first_burst)
        n = 0
        while True:
            await self.burst(n)
            n += 1
            await anyio.sleep(self.plan.burst_every)

    async def burst(self, n: int) -> None:
        """Send ``plan.burst`` low-priority audit events in one batch; resend those refused.

        The batch is admitted line by line, so the route's depth climbs until its
        level refuses low priority (``429 shed``); the refused events are sent again
        one by one, each waiting out its ``Retry-After``.
        """
        plan = self.plan
        self.counts["bursts"] += 1
        say(f"burst {n}: {plan.burst} low-priority audit events at once")
        lines = [
            {
                "body": json.dumps({"event": f"bulk-{n}-{i}", "action": "export"}),
                "idempotency_key": f"{plan.run}-bulk-{n}-{i}",
                "priority": "low",
                "content_type": "application/json",
            }
            for i in range(plan.burst)
        ]
        self.counts["posted"] += 1
        refused = list(range(plan.burst))
        try:
            response = await self.client.post(
                "/v1/routes/audit/batch",
                content="\n".join(json.dumps(line) for line in lines).encode(),
                headers={"Content-Type": "application/x-ndjson"},
            )
            if response.status_code == 200:
                refused = []
                for result in response.json()["results"]:
                    status = result["status"]
                    if status == 202:
                        self.counts["accepted"] += 1
                    elif status == 200:
                        self.counts["duplicates"] += 1
                    else:
                        self.counts["refused" if status == 429 else "failed"] += 1
                        refused.append(result["line"] - 1)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.debug("a burst's batch failed: %r", exc)
        if not refused:
            return
        say(f"burst {n}: {len(refused)} refused with 429; sending them again after Retry-After")
        limiter = anyio.CapacityLimiter(10)

        async def resend(i: int) -> None:
            async with limiter:
                line = lines[i]
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(line["idempotency_key"]),
                    "X-Otpy-Priority": "low",
                }
                await self.post("audit", str(line["body"]).encode(), headers)

        await anyio.sleep(1.0)  # the batch's Retry-After
        async with anyio.create_task_group() as tg:
            for i in refused:
                tg.start_soon(resend, i)


def retry_after(response: httpx.Response) -> float:
    """Seconds a ``429`` or ``503`` asks to wait: its ``Retry-After``, 1 s if absent, at most 30."""
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.1), 30.0)
    except ValueError:
        return 1.0


# -- the narrator ---------------------------------------------------------------------


@final
class Narrator(otpy.Actor):
    """Says on stderr what changed: breakers, route pressure, dead letters; and a summary.

    Reads only statistics: the gateway's, the pressure monitors' published levels,
    and the sink's and traffic's (by call).
    """

    async def init(self, parts: NodeParts, every: float = 0.2) -> None:
        """Start watching *parts* every *every* seconds."""
        self.parts = parts
        self.every = every
        self.breakers: dict[str, str] = {}
        self.dead: dict[str, int] = {}
        self.levels: dict[str, otpy.pressure.Level] = {}
        self.replayed: int | None = None
        self.start_task(self.watch, name=f"{self.ref.label} watch")
        self.start_task(self.watch_replays, name=f"{self.ref.label} replays")

    async def watch_replays(self) -> None:
        """Say when dead letters were replayed (``otpy dlq replay``), every 2 s."""
        replayed = DeadLetterFilter(replay_status=ReplayStatus.SUCCEEDED)
        while True:
            count: int | None
            try:
                count = await self.parts.dead_letters.count(replayed)
            except otpy.OtpyError:  # the store is restarting: next time
                count = self.replayed
            if self.replayed is not None and count is not None and count > self.replayed:
                say(
                    f"{count - self.replayed} dead letter(s) replayed: back in the outbox, "
                    "the gateway delivers them again"
                )
            self.replayed = count
            await anyio.sleep(2.0)

    async def watch(self) -> None:
        """Look every ``every`` seconds; summarise every :data:`SUMMARY_EVERY`."""
        next_summary = anyio.current_time() + SUMMARY_EVERY
        while True:
            self.look()
            if anyio.current_time() >= next_summary:
                next_summary += SUMMARY_EVERY
                await self.summarise()
            await anyio.sleep(self.every)

    def look(self) -> None:
        """Say what changed since the last look."""
        for name, stats in self.parts.gateway.statistics().destinations.items():
            state = "none" if stats.breaker is None else stats.breaker.value
            before = self.breakers.get(name, "closed")
            if state != before:
                why = {
                    "open": "too many failures: no more requests for 5 s",
                    "half_open": "trying a few requests",
                    "closed": "the trial requests succeeded",
                }.get(state, "")
                say(f"{name}: breaker {before} -> {state} ({why})")
            self.breakers[name] = state
            dead = stats.dead_lettered
            if dead > self.dead.get(name, 0):
                added = dead - self.dead.get(name, 0)
                say(f"{name}: {added} message(s) dead-lettered ({dead} since start)")
            self.dead[name] = dead
        for route in self.parts.config.ingest.routes:
            key = f"route.{route}"  # the key node.py watches a route under, and its monitor's name
            published = otpy.pressure.pressure_statistics(key, node=self.node)
            if published is None:
                continue
            source = published.sources.get(key)
            level = published.level(key)
            before_level = self.levels.get(route, otpy.pressure.Level.NORMAL)
            if level != before_level:
                depth = "" if source is None else f", {source.depth}/{source.capacity} pending"
                say(f"route {route}: pressure {before_level.label} -> {level.label}{depth}")
            self.levels[route] = level

    async def summarise(self) -> None:
        """One line each: what the traffic sent, what the sink answered, what the gateway did."""
        try:
            traffic: TrafficStatistics = await self.node.named("demo.traffic").call("statistics")
            sink: SinkStatistics = await self.node.named("demo.sink").call("statistics")
        except otpy.OtpyError:  # one of them is restarting: next time
            return
        say(
            f"traffic: {traffic.accepted} accepted, {traffic.duplicates} duplicates, "
            f"{traffic.refused} refused (429), {traffic.failed} failed, "
            f"{traffic.bursts} bursts"
        )
        answers = []
        for name in DESTINATIONS:
            codes = sorted((s, n) for (e, s), n in sink.answered.items() if e == name)
            answers.append(f"{name} " + " ".join(f"{n}x{s}" for s, n in codes))
        say("sink answered: " + " | ".join(answers))
        gateway = self.parts.gateway.statistics().destinations
        say(
            "gateway: "
            + " | ".join(
                f"{name} {s.succeeded} delivered, {s.retried} retried, "
                f"{s.dead_lettered} dead, breaker {self.breakers.get(name, '-')}"
                for name, s in gateway.items()
            )
        )


# -- the tree -------------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class Demo:
    """A built demo: its tree and what it runs.

    Attributes:
        spec: the root supervisor's spec.
        parts: the node's parts (the gateway, the stores...).
        destinations: the gateway's destinations; ``aclose()`` each once the tree
            has stopped, to close their connections to the sink.
        behaviour: the sink's behaviour and counts.
        listener: the sink's listening socket; close it once the tree has stopped.
        sink: the sink's base URL.
    """

    spec: otpy.SupervisorSpec
    parts: NodeParts
    destinations: tuple[HttpDestination, ...]
    behaviour: SinkBehaviour
    listener: socket.socket
    sink: str


def build(
    *,
    environ: Mapping[str, str] | None = None,
    plan: TrafficPlan | None = None,
    behaviour: SinkBehaviour | None = None,
    announce: bool = True,
) -> Demo:
    """Bind the sink's socket and build the demo's tree around it.

    Args:
        environ: the environment for :func:`demo_config` (the process's by default).
        plan: what the traffic sends (:class:`TrafficPlan`'s defaults by default).
        behaviour: how the sink answers; its secrets are set from the config.
        announce: print where the ingest listens and how to see the dead letters.

    Raises:
        ConfigError: an ``OTPY_*`` variable is not valid.
    """
    listener = listen()
    try:
        host, port = listener.getsockname()[:2]
        sink = f"http://{host}:{port}"
        config = demo_config(sink, environ=environ)
    except BaseException:
        listener.close()
        raise
    # Built here, not by node_parts, so that whoever embeds the demo can close their
    # connection pools once it has stopped (the gateway leaves them open).
    destinations = tuple(d.build() for d in config.gateway.destinations.values())
    parts = node_parts(config, destinations=destinations)
    secrets = config.gateway.destinations["orders"].signing_secrets
    dead_letters = str(config.node.dead_letters_path)
    behaviour = attrs.evolve(behaviour or SinkBehaviour(), secrets=secrets)
    # one_for_one: the sink, the node, the traffic and the narrator only talk over
    # HTTP or read statistics, so a crash restarts the one that crashed. The sink
    # starts first and stops last, so the node's drain still reaches it; the traffic
    # starts after the node, whose ingest it asks for its address. 10 in 60 s: the
    # node itself gives up sooner (3 in 60 s) when its stores fail.
    spec = otpy.SupervisorSpec(
        id="demo",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ONE, intensity=10, period=60.0),
        children=[
            otpy.ChildSpec(
                id="sink", start=Sink, args=(listener, behaviour), name="demo.sink", shutdown=3.0
            ),
            build_node(parts),
            otpy.ChildSpec(
                id="traffic",
                start=Traffic,
                args=(plan or TrafficPlan(), dead_letters if announce else None),
                name="demo.traffic",
                shutdown=2.0,
            ),
            otpy.ChildSpec(id="narrator", start=Narrator, args=(parts,), name="demo.narrator"),
        ],
    )
    return Demo(
        spec=spec,
        parts=parts,
        destinations=destinations,
        behaviour=behaviour,
        listener=listener,
        sink=sink,
    )


def root() -> otpy.SupervisorSpec:
    """The tree ``make demo`` runs: ``otpy run supervisors.demo:root --console``."""
    return build().spec


# -- replay ---------------------------------------------------------------------------


@final
class OutboxReplay:
    """The ``outbound`` replay handler: re-enqueues a dead letter in the demo's outbox.

    The outbox is opened on the first replay and closed once no replay is running,
    so it is never left open after ``otpy dlq replay`` returns, and replays running
    side by side (one per partition) share it. The running demo delivers what is
    enqueued (it looks at the outbox every half second); if it is not running,
    the messages wait for its next start.
    """

    def __init__(self, parts: NodeParts) -> None:
        self.parts = parts
        self.users = 0
        self.lock: anyio.Lock | None = None

    async def __call__(self, record: DeadLetter, idempotency_key: str) -> None:
        """Enqueue *record* again through the gateway, durably, with *idempotency_key*."""
        if self.lock is None:
            self.lock = anyio.Lock()
        outbox = self.parts.outbox
        async with self.lock:
            if self.users == 0:
                await outbox.open()
            self.users += 1
        try:
            await self.parts.gateway.replay(record, idempotency_key)
        finally:
            with anyio.CancelScope(shield=True):
                async with self.lock:
                    self.users -= 1
                    if self.users == 0:
                        await outbox.aclose()


def replay_handlers() -> Mapping[Source, ReplayHandler]:
    """The handlers ``otpy dlq replay --handlers supervisors.demo:replay_handlers`` uses.

    Run from the directory the demo ran in: the outbox is ``var/outbox.sqlite3``
    (with the same ``OTPY_*`` variables as the demo).
    """
    config = demo_config("http://127.0.0.1:9")  # the URL is not used to enqueue
    return {Source.OUTBOUND: OutboxReplay(node_parts(config))}
