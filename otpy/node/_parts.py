"""The node's parts, built from its configuration: stores, gateway, ingest, hand-over.

:func:`node_parts` turns a :class:`~otpy.node.NodeConfig` into the objects the
node's tree runs (``supervisors/node.py`` arranges them) and the CLI's offline
commands use (``otpy dlq replay --config`` re-enqueues through the same gateway).
Nothing is opened or started here: the stores are handles their keepers open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs

from ..deadletter import DeadLetters, Source, StoreHandle, sqlite_store
from ..gateway import Gateway, OutboxHandle, sqlite_outbox
from ..ingest import Handover, IngestApp, JournalHandle, sqlite_journal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from ..deadletter import ReplayHandler
    from ..gateway import Destination
    from ._config import NodeConfig

__all__ = ["NodeParts", "node_parts"]


@final
@attrs.frozen(kw_only=True)
class NodeParts:
    """What a node runs, built from one :class:`~otpy.node.NodeConfig`.

    Attributes:
        config: the configuration they were built from.
        journal: the ingest journal (its keeper opens it).
        outbox: the gateway's outbox (its keeper opens it).
        dead_letters: the dead-letter store (its ``StoreOwner`` opens it).
        gateway: the outbound gateway, one destination per ``[gateway.destinations]``.
        ingest: the HTTP ingest app, one route per ``[ingest.routes]``.
        handover: the loop from the journal to the gateway, waking on each accept
            and lowering the routes' pending depths as entries leave.

    .. versionadded:: 0.2.0
    """

    config: NodeConfig = attrs.field(repr=False)
    journal: JournalHandle
    outbox: OutboxHandle
    dead_letters: StoreHandle
    gateway: Gateway
    ingest: IngestApp
    handover: Handover

    @property
    def replay_handlers(self) -> Mapping[Source, ReplayHandler]:
        """The replay handlers: an outbound dead letter is enqueued again through the gateway."""
        return {Source.OUTBOUND: self.gateway.replay}


def node_parts(
    config: NodeConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    destinations: Sequence[Destination] | None = None,
) -> NodeParts:
    """Build the node's parts from *config*; nothing is opened or started.

    Args:
        config: the node's configuration (:func:`~otpy.node.load_config`).
        transport: the HTTP transport of every destination (tests pass an
            ``httpx.MockTransport``); ``None``, the network.
        destinations: destinations to use instead of building them from the config
            (their names must be the config's); for tests and embedding.

    Raises:
        InvalidArgument: a part refuses a value (the config checked them all, so
            only for *destinations*).

    .. versionadded:: 0.2.0
    """
    stores = config.node
    ingest = config.ingest
    journal = sqlite_journal(
        stores.journal_path,
        synchronous=stores.synchronous,
        max_bytes=ingest.max_bytes,
        dedup_ttl=ingest.dedup_ttl,
        dedup_max=ingest.dedup_max,
        routes=tuple(ingest.routes),
    )
    outbox = sqlite_outbox(stores.outbox_path, synchronous=stores.synchronous)
    dead_letters = sqlite_store(stores.dead_letters_path, synchronous=stores.synchronous)
    configured = config.gateway.destinations
    if destinations is None:
        destinations = [d.build(transport=transport) for d in configured.values()]
    gateway = Gateway(
        outbox,
        destinations,
        policies={name: d.policy() for name, d in configured.items()},
        dead_letters=DeadLetters(),
    )
    app: IngestApp | None = None

    def handed_over(counts: Mapping[str, int]) -> None:
        if app is not None:
            for route, n in counts.items():
                app.handed_over(route, n)

    handover = Handover(
        journal,
        gateway,
        {name: route.destinations for name, route in ingest.routes.items()},
        backfill=ingest.backfill.policy(),
        dead_letters=DeadLetters(),
        on_handed_over=handed_over,
        outbox_limit=ingest.outbox_limit,
    )
    app = IngestApp(
        journal,
        ingest.routes,
        token=ingest.token,
        max_body_size=ingest.max_body_size,
        on_accepted=lambda entries: handover.notify(),
    )
    return NodeParts(
        config=config,
        journal=journal,
        outbox=outbox,
        dead_letters=dead_letters,
        gateway=gateway,
        ingest=app,
        handover=handover,
    )
