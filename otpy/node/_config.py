"""The node's configuration: one frozen tree, one class per TOML table.

Every setting is declared once, with :func:`~otpy.node._schema.setting`: its kind,
its default and one line of documentation. :func:`~otpy.node.load_config` reads the
TOML file and the ``OTPY_*`` variables against these declarations, and
:func:`~otpy.node.env_table` writes the docs' table from them.

The classes only hold values. The objects the node runs on (an
:class:`~otpy.gateway.HttpDestination`, a :class:`~otpy.gateway.DeliveryPolicy`, a
:class:`~otpy.pressure.PressurePolicy`, a :class:`~otpy.deadletter.RetentionPolicy`)
are built by their methods, so each value is checked by the library's own
validation; the loader builds each once and turns a refusal into a
:class:`~otpy.ConfigError` naming the TOML key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ..deadletter import RetentionPolicy, RetentionRule
from ..gateway import (
    DEFAULT_EXCERPT_LIMIT,
    DEFAULT_RETRY,
    DEFAULT_TOLERANCE,
    DISABLE_AFTER,
    BreakerPolicy,
    DeliveryPolicy,
    HttpDestination,
    RetryPolicy,
    SigningSecret,
)
from ..ingest import (
    DEFAULT_DEDUP_MAX,
    DEFAULT_DEDUP_TTL,
    DEFAULT_MAX_BYTES,
    DEFAULT_OUTBOX_LIMIT,
    BackfillPolicy,
)
from ..pressure import PressurePolicy, Priority, Threshold
from . import _schema as k
from ._schema import SECRET, SECRET_TABLE, SECRETS, Named, Secret, Section, meta

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

__all__ = [
    "AdminConfig",
    "BreakerConfig",
    "DeadLettersConfig",
    "DestinationConfig",
    "DrainConfig",
    "GatewayConfig",
    "IngestConfig",
    "NodeConfig",
    "PressureConfig",
    "ReplayWorkersConfig",
    "RetentionRuleConfig",
    "RetryConfig",
    "RouteConfig",
    "StoresConfig",
    "TelemetryConfig",
]

_BREAKER = BreakerPolicy()
_PRESSURE = PressurePolicy()
_RETENTION = RetentionPolicy()


@attrs.frozen(kw_only=True)
class StoresConfig:
    """``[node]``: where the node keeps its files, and how hard SQLite syncs them.

    Attributes:
        var_dir: the directory of the node's files (relative: to the current directory).
        journal: the ingest journal's file (relative: in ``var_dir``).
        outbox: the gateway's outbox file (relative: in ``var_dir``).
        dead_letters: the dead-letter store's file (relative: in ``var_dir``).
        synchronous: SQLite's ``synchronous`` for the three: ``"full"`` (a commit
            survives a power cut), ``"normal"`` (a crash of the process) or ``"off"``.
    """

    var_dir: Path = attrs.field(
        default=Path("var"), metadata=meta(k.PATH, "directory of the node's files")
    )
    journal: Path = attrs.field(
        default=Path("journal.sqlite3"), metadata=meta(k.PATH, "ingest journal file, in var_dir")
    )
    outbox: Path = attrs.field(
        default=Path("outbox.sqlite3"), metadata=meta(k.PATH, "outbox file, in var_dir")
    )
    dead_letters: Path = attrs.field(
        default=Path("dead-letters.sqlite3"),
        metadata=meta(k.PATH, "dead-letter store file, in var_dir"),
    )
    synchronous: str = attrs.field(
        default="full", metadata=meta(k.SYNCHRONOUS, "SQLite synchronous mode")
    )

    @property
    def journal_path(self) -> Path:
        """The journal's path: ``journal`` under ``var_dir`` (or as given, if absolute)."""
        return self.var_dir / self.journal

    @property
    def outbox_path(self) -> Path:
        """The outbox's path: ``outbox`` under ``var_dir`` (or as given, if absolute)."""
        return self.var_dir / self.outbox

    @property
    def dead_letters_path(self) -> Path:
        """The dead-letter store's path: ``dead_letters`` under ``var_dir`` (or as given)."""
        return self.var_dir / self.dead_letters


@attrs.frozen(kw_only=True)
class PressureConfig:
    """``[ingest.routes.<name>.pressure]``: a route's bounded queue and its pressure levels.

    Attributes:
        capacity: the most messages the route's queue holds.
        warn: the ``warn`` level's ``(enter, exit)`` occupancy ratios.
        degraded: the ``degraded`` level's ratios.
        shed: the ``shed`` level's ratios.
        min_dwell: seconds a level lasts before it may step down.
        throttle: seconds a producer waits at ``degraded`` and above (0: off).
        defer: priorities that wait at ``degraded`` and above.
        shed_priorities: priorities refused at ``shed``.
    """

    capacity: int = attrs.field(
        default=1000, metadata=meta(k.COUNT, "most messages the route's queue holds")
    )
    warn: tuple[float, float] = attrs.field(
        default=(0.70, 0.60),
        metadata=meta(k.RATIOS, "warn level's occupancy ratios", shown="[0.7, 0.6]"),
    )
    degraded: tuple[float, float] = attrs.field(
        default=(0.85, 0.75),
        metadata=meta(k.RATIOS, "degraded level's occupancy ratios", shown="[0.85, 0.75]"),
    )
    shed: tuple[float, float] = attrs.field(
        default=(0.95, 0.85),
        metadata=meta(k.RATIOS, "shed level's occupancy ratios", shown="[0.95, 0.85]"),
    )
    min_dwell: float = attrs.field(
        default=_PRESSURE.min_dwell,
        metadata=meta(k.DURATION, "seconds a level lasts before stepping down"),
    )
    throttle: float = attrs.field(
        default=_PRESSURE.throttle,
        metadata=meta(k.DURATION, "producer's wait at degraded and above"),
    )
    defer: frozenset[Priority] = attrs.field(
        default=frozenset(),
        metadata=meta(k.PRIORITIES, "priorities that wait at degraded", shown="[]"),
    )
    shed_priorities: frozenset[Priority] = attrs.field(
        default=_PRESSURE.shed_priorities,
        metadata=meta(k.PRIORITIES, "priorities refused at shed", shown='["low"]'),
    )

    def policy(self) -> PressurePolicy:
        """Return the :class:`~otpy.pressure.PressurePolicy` these settings describe.

        Raises:
            InvalidPressurePolicy: the library refuses a value.
        """
        return PressurePolicy(
            warn=Threshold(*self.warn),
            degraded=Threshold(*self.degraded),
            shed=Threshold(*self.shed),
            min_dwell=self.min_dwell,
            throttle=self.throttle,
            defer=self.defer,
            shed_priorities=self.shed_priorities,
        )


@attrs.frozen(kw_only=True)
class RouteConfig:
    """``[ingest.routes.<name>]``: one ingest route and the destinations it fans out to.

    Attributes:
        name: the route's name (its table's key).
        destinations: the gateway destinations each accepted message is sent to.
        priority: the priority of the route's messages under pressure.
        max_body_size: the largest body accepted, in bytes (``None``: the ingest's).
        token: the bearer token callers present (``None``: the ingest's).
        signing_secrets: Standard Webhooks secrets a request's signature is verified
            with (any one verifying is enough); none: not verified.
        tolerance: how far a signed request's timestamp may be from now, seconds.
        pressure: the route's queue and pressure levels.
    """

    name: str
    destinations: tuple[str, ...] = attrs.field(
        metadata=meta(k.NAMES, "destinations each message is sent to")
    )
    priority: Priority = attrs.field(
        default=Priority.NORMAL, metadata=meta(k.PRIORITY, "priority of the route's messages")
    )
    max_body_size: int | None = attrs.field(
        default=None, metadata=meta(k.OPTIONAL_COUNT, "largest body, bytes", shown="ingest's")
    )
    token: Secret | None = attrs.field(
        default=None, metadata=meta(SECRET, "bearer token callers present")
    )
    signing_secrets: tuple[SigningSecret, ...] = attrs.field(
        default=(), metadata=meta(SECRETS, "signature verification secrets")
    )
    tolerance: float = attrs.field(
        default=DEFAULT_TOLERANCE, metadata=meta(k.DURATION, "signed timestamp's allowed skew")
    )
    pressure: PressureConfig = attrs.field(
        factory=PressureConfig, metadata=meta(Section(PressureConfig), "")
    )


_BACKFILL = BackfillPolicy()


@attrs.frozen(kw_only=True)
class BackfillConfig:
    """``[ingest.backfill]``: how fast a backlog of the journal is handed to the gateway.

    A backlog (after a restart, or once a destination's outage ends) drains at
    *rate* if set, else at ``max(min_rate, factor x the recent steady rate)``.

    Attributes:
        factor: the backlog's rate as a multiple of the steady rate.
        min_rate: the least rate of a backlog, entries per second.
        rate: a fixed backlog rate, entries per second, or ``None``.
        half_life: seconds after which a steady-rate sample weighs half as much.
    """

    factor: float = attrs.field(
        default=_BACKFILL.factor, metadata=meta(k.NUMBER, "multiple of the steady rate")
    )
    min_rate: float = attrs.field(
        default=_BACKFILL.min_rate, metadata=meta(k.NUMBER, "least backlog rate, entries/s")
    )
    rate: float | None = attrs.field(
        default=None,
        metadata=meta(k.OPTIONAL_NUMBER, "fixed backlog rate, entries/s", shown="follows steady"),
    )
    half_life: float = attrs.field(
        default=_BACKFILL.half_life, metadata=meta(k.DURATION, "steady rate's half-life")
    )

    def policy(self) -> BackfillPolicy:
        """Return the :class:`~otpy.ingest.BackfillPolicy`.

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        return BackfillPolicy(
            factor=self.factor, min_rate=self.min_rate, rate=self.rate, half_life=self.half_life
        )


@attrs.frozen(kw_only=True)
class IngestConfig:
    """``[ingest]``: the HTTP ingest's listener and its routes.

    Attributes:
        host: the address to listen on (loopback unless configured otherwise).
        port: the port to listen on.
        max_body_size: the largest body accepted, in bytes, unless a route says.
        token: the bearer token callers present, unless a route has its own.
        max_bytes: the journal's disk budget: bytes of the bodies and headers not yet
            handed over; past it the ingest answers ``429``.
        dedup_ttl: seconds a repeat of an idempotency key is answered as a duplicate.
        dedup_max: the most dedup records kept; beyond it the oldest go.
        outbox_limit: the most messages a destination may have in the outbox before
            the routes sending to it wait in the journal (``None``: no limit).
        backfill: how fast a backlog drains.
        routes: the routes, by name.
    """

    host: str = attrs.field(
        default="127.0.0.1", metadata=meta(k.HOST, "address the ingest listens on")
    )
    port: int = attrs.field(default=8080, metadata=meta(k.PORT, "port the ingest listens on"))
    max_body_size: int = attrs.field(
        default=1_048_576, metadata=meta(k.COUNT, "largest body, bytes")
    )
    token: Secret | None = attrs.field(
        default=None, metadata=meta(SECRET, "bearer token callers present")
    )
    max_bytes: int = attrs.field(
        default=DEFAULT_MAX_BYTES, metadata=meta(k.COUNT, "journal's disk budget, bytes")
    )
    dedup_ttl: float = attrs.field(
        default=DEFAULT_DEDUP_TTL, metadata=meta(k.DURATION, "dedup window")
    )
    dedup_max: int = attrs.field(
        default=DEFAULT_DEDUP_MAX, metadata=meta(k.COUNT, "most dedup records kept")
    )
    outbox_limit: int | None = attrs.field(
        default=DEFAULT_OUTBOX_LIMIT,
        metadata=meta(k.OPTIONAL_COUNT, "a destination's most outbox messages"),
    )
    backfill: BackfillConfig = attrs.field(
        factory=BackfillConfig, metadata=meta(Section(BackfillConfig), "")
    )
    routes: Mapping[str, RouteConfig] = attrs.field(
        factory=dict, metadata=meta(Named(RouteConfig, "route"), "")
    )


@attrs.frozen(kw_only=True)
class RetryConfig:
    """``[gateway.destinations.<name>.retry]``: a destination's :class:`~otpy.gateway.RetryPolicy`.

    A field left ``None`` keeps the library's default. Without a ``schedule`` and
    without any of the exponential fields (``initial``, ``multiplier``,
    ``max_backoff``, ``jitter``), the schedule is :data:`~otpy.gateway.DEFAULT_RETRY`'s.

    Attributes:
        schedule: explicit delays in seconds.
        max_attempts: attempts in all, counting the first.
        initial: the exponential backoff's first delay.
        multiplier: its growth per attempt.
        max_backoff: its cap.
        jitter: its random spread, a fraction.
        max_retry_after: the most a ``Retry-After`` may delay an attempt.
    """

    schedule: tuple[float, ...] | None = attrs.field(
        default=None,
        metadata=meta(k.DURATIONS, "explicit retry delays", shown='["5s", "5m", "30m", ...]'),
    )
    max_attempts: int | None = attrs.field(
        default=None, metadata=meta(k.COUNT, "attempts in all", shown="schedule + 1")
    )
    initial: float | None = attrs.field(
        default=None, metadata=meta(k.DURATION, "exponential: first delay", shown="1.0")
    )
    multiplier: float | None = attrs.field(
        default=None, metadata=meta(k.NUMBER, "exponential: growth per attempt", shown="2.0")
    )
    max_backoff: float | None = attrs.field(
        default=None, metadata=meta(k.DURATION, "exponential: cap on a delay", shown="60.0")
    )
    jitter: float | None = attrs.field(
        default=None, metadata=meta(k.NUMBER, "exponential: random spread", shown="0.2")
    )
    max_retry_after: float | None = attrs.field(
        default=None, metadata=meta(k.DURATION, "most a Retry-After may delay", shown="3600.0")
    )

    def policy(self) -> RetryPolicy:
        """Return the :class:`~otpy.gateway.RetryPolicy` these settings describe.

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        given = {
            f.name: v for f in attrs.fields(type(self)) if (v := getattr(self, f.name)) is not None
        }
        exponential = {"initial", "multiplier", "max_backoff", "jitter"} & given.keys()
        if "schedule" not in given and not exponential:
            given["schedule"] = DEFAULT_RETRY.schedule
        return RetryPolicy(**given)


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """``[gateway.destinations.<name>.breaker]``: a destination's circuit breaker.

    Attributes:
        enabled: whether the destination has a breaker at all.
        window_type: ``"count"`` or ``"time"``.
        window_size: calls, or seconds for a time window.
        minimum_calls: outcomes the window holds before rates count.
        failure_rate_threshold: percent of failures that opens it.
        slow_call_rate_threshold: percent of slow calls that opens it.
        slow_call_duration: seconds above which a call is slow.
        wait_in_open: seconds it stays open before trial calls.
        half_open_calls: trial calls in half-open.
        max_wait_in_half_open: seconds half-open may wait for its trials (0: forever).
    """

    enabled: bool = attrs.field(
        default=True, metadata=meta(k.BOOLEAN, "whether the destination has a breaker")
    )
    window_type: str = attrs.field(
        default=_BREAKER.window_type, metadata=meta(k.WINDOW, "count or time window")
    )
    window_size: int = attrs.field(
        default=_BREAKER.window_size, metadata=meta(k.COUNT, "calls, or seconds for a time window")
    )
    minimum_calls: int = attrs.field(
        default=_BREAKER.minimum_calls, metadata=meta(k.COUNT, "outcomes before rates count")
    )
    failure_rate_threshold: float = attrs.field(
        default=_BREAKER.failure_rate_threshold,
        metadata=meta(k.NUMBER, "failure percent that opens it"),
    )
    slow_call_rate_threshold: float = attrs.field(
        default=_BREAKER.slow_call_rate_threshold,
        metadata=meta(k.NUMBER, "slow-call percent that opens it"),
    )
    slow_call_duration: float = attrs.field(
        default=_BREAKER.slow_call_duration,
        metadata=meta(k.DURATION, "seconds above which a call is slow"),
    )
    wait_in_open: float = attrs.field(
        default=_BREAKER.wait_in_open, metadata=meta(k.DURATION, "seconds open before trial calls")
    )
    half_open_calls: int = attrs.field(
        default=_BREAKER.half_open_calls, metadata=meta(k.COUNT, "trial calls in half-open")
    )
    max_wait_in_half_open: float = attrs.field(
        default=_BREAKER.max_wait_in_half_open,
        metadata=meta(k.DURATION, "half-open's wait for its trials"),
    )

    def policy(self) -> BreakerPolicy | None:
        """Return the :class:`~otpy.gateway.BreakerPolicy`, or ``None`` when not enabled.

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        if not self.enabled:
            return None
        fields = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        del fields["enabled"]
        return BreakerPolicy(**fields)


@attrs.frozen(kw_only=True)
class DestinationConfig:
    """``[gateway.destinations.<name>]``: one HTTP destination and how it is delivered to.

    Attributes:
        name: the destination's name (its table's key).
        url: where to send.
        method: the HTTP method.
        headers: static headers that are not secret.
        secret_headers: headers whose values are secrets, from ``headers_from_env``
            and ``headers_from_file``.
        timeout: each attempt's deadline, seconds.
        max_concurrent: attempts in flight at once (the bulkhead).
        max_wait: seconds an attempt waits for a bulkhead slot.
        rate_limit: requests per second, or ``None``.
        burst: requests at once after a quiet period.
        max_connections: the connection pool's size (``None``: ``max_concurrent``).
        excerpt_limit: bytes of a response's body kept.
        signing_secrets: Standard Webhooks keys requests are signed with.
        retry: the retry policy's settings.
        breaker: the breaker's settings.
        ordering: ``"key"`` or ``"none"``.
        disable_after: seconds of failures before the destination is disabled, or
            ``None`` for never.
        batch: the most messages in flight from this gateway.
        lease: seconds an attempt may stay in flight before its message is handed
            out again.
        poll_interval: seconds between looks at the outbox while idle.
    """

    name: str
    url: str = attrs.field(metadata=meta(k.STRING, "http:// or https:// URL"))
    method: str = attrs.field(default="POST", metadata=meta(k.STRING, "HTTP method"))
    headers: Mapping[str, str] = attrs.field(
        factory=dict, metadata=meta(k.TABLE, "static headers (no secrets)", shown="{}")
    )
    secret_headers: Mapping[str, Secret] = attrs.field(
        factory=dict, metadata=meta(SECRET_TABLE, "headers whose values are secrets", shown="{}")
    )
    timeout: float = attrs.field(default=30.0, metadata=meta(k.DURATION, "each attempt's deadline"))
    max_concurrent: int = attrs.field(
        default=10, metadata=meta(k.COUNT, "attempts in flight at once")
    )
    max_wait: float = attrs.field(
        default=0.0, metadata=meta(k.DURATION, "wait for a bulkhead slot")
    )
    rate_limit: float | None = attrs.field(
        default=None, metadata=meta(k.OPTIONAL_NUMBER, "requests per second", shown="false")
    )
    burst: int = attrs.field(
        default=1, metadata=meta(k.COUNT, "requests at once after a quiet period")
    )
    max_connections: int | None = attrs.field(
        default=None,
        metadata=meta(k.OPTIONAL_COUNT, "connection pool's size", shown="max_concurrent"),
    )
    excerpt_limit: int = attrs.field(
        default=DEFAULT_EXCERPT_LIMIT,
        metadata=meta(k.SIZE, "response bytes kept for a dead letter"),
    )
    signing_secrets: tuple[SigningSecret, ...] = attrs.field(
        default=(), metadata=meta(SECRETS, "Standard Webhooks signing secrets")
    )
    retry: RetryConfig = attrs.field(factory=RetryConfig, metadata=meta(Section(RetryConfig), ""))
    breaker: BreakerConfig = attrs.field(
        factory=BreakerConfig, metadata=meta(Section(BreakerConfig), "")
    )
    ordering: str = attrs.field(default="key", metadata=meta(k.ORDERING, "per-key order, or none"))
    disable_after: float | None = attrs.field(
        default=DISABLE_AFTER,
        metadata=meta(k.OPTIONAL_DURATION, "failing this long disables it", shown='"5d"'),
    )
    batch: int = attrs.field(default=32, metadata=meta(k.COUNT, "most messages in flight"))
    lease: float = attrs.field(default=60.0, metadata=meta(k.DURATION, "an attempt's lease"))
    poll_interval: float = attrs.field(
        default=1.0, metadata=meta(k.DURATION, "idle look at the outbox")
    )

    def all_headers(self) -> dict[str, str]:
        """The static headers and the secret ones, revealed: what every request carries."""
        return {**self.headers, **{h: s.reveal() for h, s in self.secret_headers.items()}}

    def build(self, *, transport: httpx.AsyncBaseTransport | None = None) -> HttpDestination:
        """Return a new :class:`~otpy.gateway.HttpDestination` with these settings.

        Args:
            transport: an httpx transport to send through instead of the network (tests).

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        return HttpDestination(
            self.name,
            self.url,
            method=self.method,
            headers=self.all_headers(),
            timeout=self.timeout,
            max_concurrent=self.max_concurrent,
            max_wait=self.max_wait,
            rate_limit=self.rate_limit,
            burst=self.burst,
            signing_secrets=self.signing_secrets,
            max_connections=self.max_connections,
            excerpt_limit=self.excerpt_limit,
            transport=transport,
        )

    def policy(self) -> DeliveryPolicy:
        """Return the destination's :class:`~otpy.gateway.DeliveryPolicy`.

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        return DeliveryPolicy(
            retry=self.retry.policy(),
            breaker=self.breaker.policy(),
            lease=self.lease,
            batch=self.batch,
            poll_interval=self.poll_interval,
            ordering=self.ordering,
            disable_after=self.disable_after,
        )


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """``[gateway]``: the outbound gateway's destinations.

    Attributes:
        destinations: the destinations, by name.
    """

    destinations: Mapping[str, DestinationConfig] = attrs.field(
        factory=dict, metadata=meta(Named(DestinationConfig, "destination"), "")
    )


@attrs.frozen(kw_only=True)
class RetentionRuleConfig:
    """``[dead_letters.active]`` or ``[dead_letters.archived]``: limits for one status.

    Attributes:
        max_count: keep at most this many records, or ``None``.
        max_age: keep none older than this many seconds, or ``None``.
    """

    max_count: int | None = attrs.field(
        default=None, metadata=meta(k.OPTIONAL_SIZE, "most records kept")
    )
    max_age: float | None = attrs.field(
        default=None, metadata=meta(k.OPTIONAL_DURATION, "oldest record kept")
    )

    def rule(self) -> RetentionRule:
        """Return the :class:`~otpy.deadletter.RetentionRule`."""
        return RetentionRule(max_count=self.max_count, max_age=self.max_age)


def _archived() -> RetentionRuleConfig:
    rule = _RETENTION.archived
    return RetentionRuleConfig(max_count=rule.max_count, max_age=rule.max_age)


@attrs.frozen(kw_only=True)
class DeadLettersConfig:
    """``[dead_letters]``: the dead-letter store's retention.

    Attributes:
        sweep_interval: seconds between retention sweeps.
        ledger_max_age: seconds an unused idempotency-ledger entry is kept, or ``None``.
        active: limits for active records (none by default: never evicted).
        archived: limits for archived records.
    """

    sweep_interval: float = attrs.field(
        default=_RETENTION.interval, metadata=meta(k.DURATION, "seconds between retention sweeps")
    )
    ledger_max_age: float | None = attrs.field(
        default=_RETENTION.ledger_max_age,
        metadata=meta(
            k.OPTIONAL_DURATION, "unused ledger entry's age before pruning", shown='"90d"'
        ),
    )
    active: RetentionRuleConfig = attrs.field(
        factory=RetentionRuleConfig, metadata=meta(Section(RetentionRuleConfig), "")
    )
    archived: RetentionRuleConfig = attrs.field(
        factory=_archived, metadata=meta(Section(RetentionRuleConfig), "")
    )

    def retention(self) -> RetentionPolicy:
        """Return the :class:`~otpy.deadletter.RetentionPolicy`.

        Raises:
            InvalidArgument: the library refuses a value; the message names it.
        """
        return RetentionPolicy(
            active=self.active.rule(),
            archived=self.archived.rule(),
            interval=self.sweep_interval,
            ledger_max_age=self.ledger_max_age,
        )


@attrs.frozen(kw_only=True)
class ReplayWorkersConfig:
    """``[replay]``: the dead-letter replay workers.

    Attributes:
        partitions: replay workers (1 to 1024).
        capacity: requests that may wait per partition.
        handler_timeout: seconds a replay handler may run.
    """

    partitions: int = attrs.field(default=4, metadata=meta(k.COUNT, "replay workers"))
    capacity: int = attrs.field(
        default=1000, metadata=meta(k.COUNT, "requests waiting per partition")
    )
    handler_timeout: float = attrs.field(
        default=30.0, metadata=meta(k.DURATION, "seconds a replay may run")
    )


@attrs.frozen(kw_only=True)
class AdminConfig:
    """``[admin]``: the admin API's listener and its token.

    Attributes:
        enabled: whether the admin API listens at all.
        host: the address to listen on.
        port: the port to listen on.
        token: the bearer token the admin API wants, or ``None``.
    """

    enabled: bool = attrs.field(
        default=True, metadata=meta(k.BOOLEAN, "whether the admin API listens")
    )
    host: str = attrs.field(
        default="127.0.0.1", metadata=meta(k.HOST, "address the admin API listens on")
    )
    port: int = attrs.field(default=8081, metadata=meta(k.PORT, "port the admin API listens on"))
    token: Secret | None = attrs.field(
        default=None, metadata=meta(SECRET, "bearer token the admin API wants")
    )


@attrs.frozen(kw_only=True)
class TelemetryConfig:
    """``[telemetry]``: whether the node exports telemetry; the rest comes from ``OTEL_*``.

    Attributes:
        enabled: whether ``otpy run`` configures OpenTelemetry from ``OTEL_*``.
    """

    enabled: bool = attrs.field(
        default=True, metadata=meta(k.BOOLEAN, "configure OpenTelemetry from OTEL_*")
    )


@attrs.frozen(kw_only=True)
class DrainConfig:
    """``[drain]``: how long a graceful shutdown may take.

    Attributes:
        budget: seconds the node has to drain before what is left is cancelled.
    """

    budget: float = attrs.field(
        default=30.0, metadata=meta(k.DURATION, "seconds a graceful shutdown may take")
    )


@attrs.frozen(kw_only=True)
class NodeConfig:
    """The whole node, as ``otpy.toml`` and the ``OTPY_*`` variables describe it.

    Build it with :func:`~otpy.node.load_config` or :meth:`from_mapping`: they check
    every value, resolve the secrets and the cross-references, and raise
    :class:`~otpy.ConfigError` for the first problem.

    Attributes:
        node: ``[node]``: files and paths.
        ingest: ``[ingest]``: the HTTP ingest and its routes.
        gateway: ``[gateway]``: the destinations.
        dead_letters: ``[dead_letters]``: retention.
        replay: ``[replay]``: the replay workers.
        admin: ``[admin]``: the admin API.
        telemetry: ``[telemetry]``.
        drain: ``[drain]``: the shutdown budget.
        source: the file it was loaded from, or ``None``.

    .. versionadded:: 0.2.0
    """

    node: StoresConfig = attrs.field(factory=StoresConfig, metadata=meta(Section(StoresConfig), ""))
    ingest: IngestConfig = attrs.field(
        factory=IngestConfig, metadata=meta(Section(IngestConfig), "")
    )
    gateway: GatewayConfig = attrs.field(
        factory=GatewayConfig, metadata=meta(Section(GatewayConfig), "")
    )
    dead_letters: DeadLettersConfig = attrs.field(
        factory=DeadLettersConfig, metadata=meta(Section(DeadLettersConfig), "")
    )
    replay: ReplayWorkersConfig = attrs.field(
        factory=ReplayWorkersConfig, metadata=meta(Section(ReplayWorkersConfig), "")
    )
    admin: AdminConfig = attrs.field(factory=AdminConfig, metadata=meta(Section(AdminConfig), ""))
    telemetry: TelemetryConfig = attrs.field(
        factory=TelemetryConfig, metadata=meta(Section(TelemetryConfig), "")
    )
    drain: DrainConfig = attrs.field(factory=DrainConfig, metadata=meta(Section(DrainConfig), ""))
    source: Path | None = None

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, object],
        *,
        environ: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> NodeConfig:
        """Return the configuration *data* (a parsed TOML document) describes.

        Args:
            data: the TOML document, as ``tomllib`` returns it.
            environ: the environment, for ``OTPY_*`` overrides and secrets
                (``None``: ``os.environ``).
            source: where *data* came from, for messages.

        Raises:
            ConfigError: a key or a value is not allowed; it names the key.
        """
        from ._load import from_mapping

        return from_mapping(data, environ=environ, source=source)
