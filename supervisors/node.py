"""The messaging node's tree: what ``otpy run`` runs, from one ``otpy.toml``.

::

    node              rest_for_one
    ├── stores        rest_for_one   journal, outbox, dead letters (store, writer, retention, router)
    ├── telemetry     flushes spans and metrics when the node stops
    ├── pressure      one_for_one    a monitor per ingest route (route.<name>)
    ├── gateway       one_for_one    the outbox keeper, then one actor per destination
    ├── replay        one_for_one    dead-letter replay workers, partitioned by key
    ├── ingest        one_for_one    the hand-over (journal -> gateway), the HTTP server
    └── admin         the admin API (if enabled)

Start order is the order above, and a stop runs it backwards: the admin API and the
ingest stop first (new requests get ``503``, those in flight finish), then the
hand-over finishes its page, the replay workers and the gateway settle what is in
flight within their shutdown (what is left stays in the outbox for the next start),
telemetry flushes, and the stores close last.

Written only against otpy's public API. ``otpy run`` with no target runs
:func:`node`; ``otpy run --config otpy.toml`` passes it the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import anyio
import attrs

import otpy
import otpy.pressure
import otpy.telemetry
from otpy.deadletter import Replayer, dead_letter_children, replay_supervisor
from otpy.ingest import ingest_server_spec
from otpy.node import AdminApp, NodeConfig, NodeParts, admin_server_spec, node_parts

if TYPE_CHECKING:
    from otpy.ingest import IngestApp

__all__ = ["TelemetryFlusher", "build", "node"]

TELEMETRY_FLUSH = 5.0
"""Seconds the telemetry child waits, at stop, for spans and metrics to be exported."""


@final
class TelemetryFlusher(otpy.Actor):
    """Flushes the node's spans and metrics when the node stops.

    It starts after the stores and before everything that records, so it stops
    after them: its ``terminate`` exports the last spans of the drain.
    """

    async def terminate(self, reason: object) -> None:
        """Export what the providers hold, within :data:`TELEMETRY_FLUSH` seconds."""
        with anyio.move_on_after(TELEMETRY_FLUSH + 1.0, shield=True):
            await anyio.to_thread.run_sync(
                otpy.telemetry.force_flush, TELEMETRY_FLUSH, abandon_on_cancel=True
            )


@attrs.frozen
class RouteDepth:
    """A route's pending depth, as the pressure monitor reads a queue."""

    queued: int
    capacity: int


@attrs.frozen
class WatchedRoute:
    """An ingest route the pressure monitor samples: its pending depth against its capacity."""

    app: IngestApp
    route: str

    def statistics(self) -> RouteDepth:
        """The route's pending depth and capacity now."""
        return RouteDepth(self.app.pending(self.route), self.app.routes[self.route].capacity)


def build(parts: NodeParts) -> otpy.SupervisorSpec:
    """Return the node's tree, running *parts* (from :func:`otpy.node.node_parts`)."""
    config = parts.config
    drain = config.drain.budget
    # rest_for_one: the journal and the outbox are independent files, but the
    # dead-letter writer needs its store, and the router its writer. 3 restarts
    # in 60 s: a store that keeps failing is a disk problem, not a glitch.
    stores = otpy.SupervisorSpec(
        id="stores",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE, intensity=3, period=60.0),
        children=[
            parts.journal.child_spec(),
            parts.outbox.child_spec(),
            *dead_letter_children(
                parts.dead_letters, route=True, retention=config.dead_letters.retention()
            ),
        ],
    )
    telemetry = otpy.ChildSpec(
        id="telemetry", start=TelemetryFlusher, shutdown=TELEMETRY_FLUSH + 2.0
    )
    # one_for_one: each route's monitor only observes; a crash loses one route's
    # level history and nothing else. 10 in 60 s: a sampling bug must not stop the node.
    # A monitor is registered under the key it watches ("route.<name>"), so the
    # console shows the route's level on the monitor's row.
    pressure = otpy.SupervisorSpec(
        id="pressure",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ONE, intensity=10, period=60.0),
        children=[
            otpy.ChildSpec(
                id=f"route.{name}",
                start=otpy.pressure.PressureMonitor,
                name=f"route.{name}",
                args=(
                    {f"route.{name}": WatchedRoute(parts.ingest, name)},
                    route.pressure.policy(),
                    1.0,
                    "ingest",
                ),
            )
            for name, route in config.ingest.routes.items()
        ],
    )
    # The gateway is one_for_one inside (a destination's crash restarts it alone);
    # 10 in 60 s lets a flapping destination restart without taking the others down.
    gateway = parts.gateway.supervisor_spec(shutdown=drain, intensity=10, period=60.0)
    replay = replay_supervisor(
        parts.dead_letters,
        parts.replay_handlers,
        partitions=config.replay.partitions,
        capacity=config.replay.capacity,
        handler_timeout=config.replay.handler_timeout,
    )
    # one_for_one: the hand-over and the HTTP server share only the journal; a
    # crash of one never loses what the other holds. 5 in 30 s, then the node
    # restarts the ingest domain from its stores.
    ingest = otpy.SupervisorSpec(
        id="ingest",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ONE, intensity=5, period=30.0),
        children=[
            parts.handover.child_spec(id="handover", name="ingest.handover", shutdown=drain),
            ingest_server_spec(
                parts.ingest,
                host=config.ingest.host,
                port=config.ingest.port,
                id="http",
                name="ingest",
                shutdown=drain,
            ),
        ],
    )
    children: list[otpy.ChildSpec | otpy.SupervisorSpec] = [
        stores,
        telemetry,
        pressure,
        gateway,
        replay,
        ingest,
    ]
    if config.admin.enabled:
        admin = AdminApp(
            token=config.admin.token,
            dead_letters=parts.dead_letters,
            gateway=parts.gateway,
            ingest=parts.ingest,
            journal=parts.journal,
            replayer=Replayer.from_spec(replay),
        )
        children.append(admin_server_spec(admin, host=config.admin.host, port=config.admin.port))
    # rest_for_one: each domain uses the ones started before it (everything writes
    # to the stores, the ingest hands over to the gateway, the admin API reads them
    # all), so when one restarts, those after it restart too. 3 in 60 s: a domain that has given up more often
    # than that needs an operator; the node exits 1.
    return otpy.SupervisorSpec(
        id="node",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE, intensity=3, period=60.0),
        children=children,
    )


def node(config: NodeConfig | None = None) -> otpy.SupervisorSpec:
    """The node ``otpy run`` runs: *config*, or the defaults (files in ``./var``)."""
    return build(node_parts(NodeConfig() if config is None else config))
