"""Every span, attribute and metric name otpy emits, grouped by the subsystem that emits it.

Semantic conventions have nothing for supervision, pressure or dead letters, so these
live in a custom ``otpy.*`` namespace. Failures also carry
the standard ``error.type`` attribute (TEL-3), and the gateway's delivery attempts use
the messaging and HTTP conventions' names where they have one. Names are part of the public API:
dashboards and runbooks query their values, so a value changes only with a changelog
entry. ``docs/telemetry.md`` has the same list as one table, and a test keeps the two
in step.

A constant says its kind (``SPAN_``, ``ATTR_``, ``METRIC_``) and its subsystem
(``PRESSURE``, ``DEADLETTER``, ``REPLAY``, ``GATEWAY``), so it is unambiguous at the top of
`otpy.telemetry`; the supervision names came first and keep their short forms.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    # supervision: spans
    "SPAN_RESTART",
    "SPAN_ESCALATION",
    "SPAN_CHILD_START_ERROR",
    # supervision: attributes
    "ATTR_SUPERVISOR",
    "ATTR_CHILD_ID",
    "ATTR_REASON",
    "ATTR_REASON_CLASS",
    "ATTR_STRATEGY",
    "ATTR_RESTARTS_IN_WINDOW",
    "ATTR_INTENSITY",
    "ATTR_PERIOD",
    "ATTR_RESTART_DELAY",
    "ATTR_ERROR_TYPE",
    # supervision: metrics
    "METRIC_RESTARTS",
    "METRIC_ESCALATIONS",
    # pressure: spans
    "SPAN_PRESSURE_TRANSITION",
    # pressure: attributes
    "ATTR_PRESSURE_COMPONENT",
    "ATTR_PRESSURE_QUEUE",
    "ATTR_PRESSURE_PARTITION",
    "ATTR_PRESSURE_OLD_LEVEL",
    "ATTR_PRESSURE_NEW_LEVEL",
    "ATTR_PRESSURE_DEPTH",
    "ATTR_PRESSURE_CAPACITY",
    "ATTR_PRESSURE_RATIO",
    "ATTR_PRESSURE_REASON",
    "ATTR_PRESSURE_PRIORITY",
    # pressure: metrics
    "METRIC_PRESSURE_DEPTH",
    "METRIC_PRESSURE_CAPACITY",
    "METRIC_PRESSURE_TRANSITIONS",
    "METRIC_PRESSURE_DROPS",
    "METRIC_PRESSURE_THROTTLE",
    # dead letters: spans
    "SPAN_DEADLETTER_WRITE",
    # dead letters: attributes
    "ATTR_DEADLETTER_COUNT",
    "ATTR_DEADLETTER_STORE",
    "ATTR_DEADLETTER_ID",
    "ATTR_DEADLETTER_KEY",
    "ATTR_DEADLETTER_SOURCE",
    "ATTR_DEADLETTER_STATUS",
    "ATTR_DEADLETTER_RULE",
    "ATTR_DEADLETTER_DROP_REASON",
    # dead letters: metrics
    "METRIC_DEADLETTER_CAPTURED",
    "METRIC_DEADLETTER_EVICTIONS",
    "METRIC_DEADLETTER_CAPTURE_DROPPED",
    # replay: spans
    "SPAN_DEADLETTER_REPLAY",
    "SPAN_DEADLETTER_RECLAIM",
    # replay: attributes
    "ATTR_REPLAY_OUTCOME",
    "ATTR_REPLAY_PARTITION",
    "ATTR_REPLAY_ATTEMPT",
    "ATTR_REPLAY_FORCE",
    "ATTR_REPLAY_RESUBMIT",
    # replay: metrics
    "METRIC_REPLAY_OUTCOMES",
    # gateway: spans
    "SPAN_GATEWAY_SEND",
    "SPAN_GATEWAY_BREAKER_TRANSITION",
    "SPAN_GATEWAY_DISABLE",
    "SPAN_GATEWAY_DEAD_LETTER",
    # gateway: attributes (semantic conventions' first)
    "ATTR_MESSAGING_SYSTEM",
    "ATTR_MESSAGING_OPERATION_NAME",
    "ATTR_MESSAGING_OPERATION_TYPE",
    "ATTR_MESSAGING_DESTINATION_NAME",
    "ATTR_MESSAGING_MESSAGE_ID",
    "ATTR_HTTP_RESPONSE_STATUS_CODE",
    "ATTR_ORDERING_KEY",
    "ATTR_OUTBOX_MESSAGE_ID",
    "ATTR_GATEWAY_ATTEMPT",
    "ATTR_GATEWAY_OUTCOME",
    "ATTR_GATEWAY_BREAKER_OLD_STATE",
    "ATTR_GATEWAY_BREAKER_NEW_STATE",
    "ATTR_GATEWAY_BREAKER_REASON",
    "ATTR_GATEWAY_DISABLE_REASON",
    "ATTR_GATEWAY_DEAD_LETTER_REASON",
    # gateway: metrics
    "METRIC_GATEWAY_ATTEMPTS",
    "METRIC_GATEWAY_ATTEMPT_DURATION",
    "METRIC_GATEWAY_BREAKER_TRANSITIONS",
    "METRIC_GATEWAY_DEAD_LETTERED",
    "METRIC_GATEWAY_OUTBOX_DEPTH",
    "METRIC_GATEWAY_OUTBOX_OLDEST_AGE",
    "METRIC_GATEWAY_BREAKER_STATE",
    "METRIC_GATEWAY_DISABLED",
    "ATTR_GATEWAY_BREAKER_STATE",
    # ingest hand-over: spans
    "SPAN_INGEST_BACKFILL",
    # ingest hand-over: attributes
    "ATTR_INGEST_ROUTE",
    "ATTR_INGEST_BACKFILL_BACKLOG",
    "ATTR_INGEST_BACKFILL_RATE",
    "ATTR_INGEST_BACKFILL_STEADY_RATE",
    "ATTR_INGEST_BACKFILL_HANDED_OVER",
    # ingest hand-over: metrics
    "METRIC_INGEST_HANDED_OVER",
    "METRIC_INGEST_UNROUTABLE",
    "METRIC_INGEST_HANDOVER_RATE",
    "METRIC_INGEST_HANDOVER_BACKLOG",
    "METRIC_INGEST_JOURNAL_DEPTH",
    "METRIC_INGEST_JOURNAL_OLDEST_AGE",
    "METRIC_INGEST_JOURNAL_BYTES",
    "METRIC_INGEST_JOURNAL_PURGED",
    # ingest: spans
    "SPAN_INGEST_RECEIVE",
    # ingest: attributes
    "ATTR_INGEST_REASON",
    "ATTR_INGEST_DUPLICATE",
    # ingest: metrics
    "METRIC_INGEST_ACCEPTED",
    "METRIC_INGEST_DUPLICATES",
    "METRIC_INGEST_REFUSED",
]

# -- supervision (otpy.telemetry.record_restart and friends) ------------------------
# Each span is a short INTERNAL span that starts and ends at the event.

SPAN_RESTART: Final = "otpy.supervisor.restart"
"""Span: a supervisor restarted a child after it exited; all supervision attributes but ``error.type``."""
SPAN_ESCALATION: Final = "otpy.supervisor.escalation"
"""Span (status Error): a supervisor exceeded its restart intensity and gave up."""
SPAN_CHILD_START_ERROR: Final = "otpy.supervisor.start_error"
"""Span (status Error): a child failed to start or restart."""

ATTR_SUPERVISOR: Final = "otpy.supervisor"
"""Attribute: the name of the supervisor reporting the event."""
ATTR_CHILD_ID: Final = "otpy.child.id"
"""Attribute: the child's id in its supervisor's spec (the offender, for an escalation)."""
ATTR_REASON: Final = "otpy.reason"
"""Attribute: a redacted description of the exit reason (see `describe_reason`)."""
ATTR_REASON_CLASS: Final = "otpy.reason.class"
"""Attribute: the exit reason's class name, or the reason itself for ``"normal"``-style atoms."""
ATTR_STRATEGY: Final = "otpy.strategy"
"""Attribute: the supervisor's restart strategy, such as ``one_for_one``."""
ATTR_RESTARTS_IN_WINDOW: Final = "otpy.restarts_in_window"
"""Attribute: how many restarts the supervisor's sliding window holds, this one included."""
ATTR_INTENSITY: Final = "otpy.intensity"
"""Attribute: the supervisor's restart intensity (restarts allowed per period)."""
ATTR_PERIOD: Final = "otpy.period"
"""Attribute: the supervisor's intensity period, in seconds."""
ATTR_RESTART_DELAY: Final = "otpy.restart.delay"
"""Attribute: the backoff delay before the restart, in seconds."""
ATTR_ERROR_TYPE: Final = "error.type"
"""Attribute: semantic conventions' error class, on every span with status Error.

Written out rather than imported from ``opentelemetry.semconv`` so the hot path needs
only opentelemetry-api; a test checks it against the semconv package.
"""

METRIC_RESTARTS: Final = "otpy.supervisor.restarts"
"""Counter, unit ``{restart}``: child restarts, by `ATTR_SUPERVISOR` and `ATTR_CHILD_ID`."""
METRIC_ESCALATIONS: Final = "otpy.supervisor.escalations"
"""Counter, unit ``{escalation}``: supervisors that gave up, by `ATTR_SUPERVISOR`."""

# -- pressure (otpy.pressure.PressureMonitor and BoundedQueue) ----------------------

SPAN_PRESSURE_TRANSITION: Final = "otpy.pressure.transition"
"""Span: a watched queue changed pressure level (INTERNAL, exactly one per change)."""

ATTR_PRESSURE_COMPONENT: Final = "otpy.pressure.component"
"""Attribute: the monitor's ``component`` (what the queues belong to)."""
ATTR_PRESSURE_QUEUE: Final = "otpy.pressure.queue"
"""Attribute: the watched or bounded queue's name."""
ATTR_PRESSURE_PARTITION: Final = "otpy.pressure.partition"
"""Attribute: the queue's partition; set only when the queue has one."""
ATTR_PRESSURE_OLD_LEVEL: Final = "otpy.pressure.old_level"
"""Attribute: the level before the change: ``normal``, ``warn``, ``degraded`` or ``shed``."""
ATTR_PRESSURE_NEW_LEVEL: Final = "otpy.pressure.new_level"
"""Attribute: the level after the change."""
ATTR_PRESSURE_DEPTH: Final = "otpy.pressure.depth"
"""Attribute: items queued when the change was seen."""
ATTR_PRESSURE_CAPACITY: Final = "otpy.pressure.capacity"
"""Attribute: the queue's capacity."""
ATTR_PRESSURE_RATIO: Final = "otpy.pressure.ratio"
"""Attribute: occupancy, ``depth / capacity``."""
ATTR_PRESSURE_REASON: Final = "otpy.pressure.reason"
"""Attribute: why a bounded queue refused a message: ``load_shed`` or ``queue_full``."""
ATTR_PRESSURE_PRIORITY: Final = "otpy.pressure.priority"
"""Attribute: the refused message's priority, ``low`` to ``critical``."""

METRIC_PRESSURE_DEPTH: Final = "otpy.pressure.queue.depth"
"""Gauge, unit ``{item}``: items queued, at every sample, by component, queue and partition."""
METRIC_PRESSURE_CAPACITY: Final = "otpy.pressure.queue.capacity"
"""Gauge, unit ``{item}``: queue capacity, at every sample, by component, queue and partition."""
METRIC_PRESSURE_TRANSITIONS: Final = "otpy.pressure.transitions"
"""Counter, unit ``{transition}``: level changes, by component, queue, partition and new level."""
METRIC_PRESSURE_DROPS: Final = "otpy.pressure.drops"
"""Counter, unit ``{message}``: messages a bounded queue refused, by queue, reason and priority."""
METRIC_PRESSURE_THROTTLE: Final = "otpy.pressure.throttle_time"
"""Histogram, unit ``s``: one producer's wait while a bounded queue throttled it, by queue."""

# -- dead letters (otpy.deadletter's writer and retention sweep) ---------------------

SPAN_DEADLETTER_WRITE: Final = "otpy.deadletter.write"
"""Span: one committed batch of dead letters (INTERNAL), linked to each record's failure span."""

ATTR_DEADLETTER_COUNT: Final = "otpy.deadletter.count"
"""Attribute: records in the batch."""
ATTR_DEADLETTER_STORE: Final = "otpy.deadletter.store"
"""Attribute: the store kind: ``sqlite``, ``memory``, or the store's class name."""
ATTR_DEADLETTER_ID: Final = "otpy.deadletter.id"
"""Attribute: a record id (on a write span's link to the record's failure, and on replay spans)."""
ATTR_DEADLETTER_KEY: Final = "otpy.deadletter.key"
"""Attribute: the record's dead-letter key, which also picks its replay partition."""
ATTR_DEADLETTER_SOURCE: Final = "otpy.deadletter.source"
"""Attribute: where the record's message failed (``actor_crash``, ``undeliverable``...)."""
ATTR_DEADLETTER_STATUS: Final = "otpy.deadletter.status"
"""Attribute: a record status (``active``, ``archived``)."""
ATTR_DEADLETTER_RULE: Final = "otpy.deadletter.rule"
"""Attribute: the retention rule that evicted records (``max_age``, ``max_count``)."""
ATTR_DEADLETTER_DROP_REASON: Final = "otpy.deadletter.drop_reason"
"""Attribute: why a fire-and-forget capture was dropped (``mailbox_full``...)."""

METRIC_DEADLETTER_CAPTURED: Final = "otpy.deadletter.captured"
"""Counter, unit ``{record}``: records committed to the store, by `ATTR_DEADLETTER_SOURCE`."""
METRIC_DEADLETTER_EVICTIONS: Final = "otpy.deadletter.evictions"
"""Counter, unit ``{record}``: records evicted by retention, by status and rule."""
METRIC_DEADLETTER_CAPTURE_DROPPED: Final = "otpy.deadletter.capture_dropped"
"""Counter, unit ``{record}``: fire-and-forget captures dropped or lost, by `ATTR_DEADLETTER_DROP_REASON`.

The reasons: ``mailbox_full``, ``stash_full``, ``noproc`` (they never reached the
writer), ``writer_crashed`` (the writer crashed while committing them; they may or may
not have been stored), ``invalid``.
"""

# -- replay (otpy.deadletter's replay workers and reclaimer) -------------------------
# Replay spans also carry ATTR_DEADLETTER_ID, ATTR_DEADLETTER_KEY and
# ATTR_DEADLETTER_SOURCE, and link to the failed attempt's span.

SPAN_DEADLETTER_REPLAY: Final = "otpy.deadletter.replay"
"""Span: one replay request handled by a worker (INTERNAL), linked to the failed attempt's span."""
SPAN_DEADLETTER_RECLAIM: Final = "otpy.deadletter.reclaim"
"""Span: a dead worker's replay settled by the reclaimer (INTERNAL), linked likewise."""

ATTR_REPLAY_OUTCOME: Final = "otpy.replay.outcome"
"""Attribute: ``replayed``, ``already_replayed``, ``rejected_archived``, ``in_progress``, ``failed``, ``in_doubt``."""
ATTR_REPLAY_PARTITION: Final = "otpy.replay.partition"
"""Attribute: the replay worker's partition number."""
ATTR_REPLAY_ATTEMPT: Final = "otpy.replay.attempt"
"""Attribute: the record's replay attempts, this one included when it ran."""
ATTR_REPLAY_FORCE: Final = "otpy.replay.force"
"""Attribute: whether the replay was forced."""
ATTR_REPLAY_RESUBMIT: Final = "otpy.replay.resubmit"
"""Attribute, on a reclaim span: whether the record was resubmitted (its side effect never started)."""

METRIC_REPLAY_OUTCOMES: Final = "otpy.replay.outcomes"
"""Counter, unit ``{attempt}``: replay attempts by outcome and source; a dead worker's when reclaimed."""

# -- gateway (otpy.gateway.Gateway's delivery loops) ---------------------------------
# A delivery attempt is a PRODUCER span named "send {destination}", as messaging
# conventions name them, a child of the trace context stored with the message when
# it was enqueued. The other gateway spans are INTERNAL.

SPAN_GATEWAY_SEND: Final = "send"
"""Span name's operation: one delivery attempt is the span ``"send {destination}"`` (PRODUCER)."""
SPAN_GATEWAY_BREAKER_TRANSITION: Final = "otpy.gateway.breaker.transition"
"""Span: a destination's circuit breaker changed state (INTERNAL, exactly one per change)."""
SPAN_GATEWAY_DISABLE: Final = "otpy.gateway.disable"
"""Span: delivery to a destination was disabled, by a 410 Gone or ``Gateway.disable``."""
SPAN_GATEWAY_DEAD_LETTER: Final = "otpy.gateway.dead_letter"
"""Span: a message was given up and its dead letter stored (a child of its last attempt's span)."""

ATTR_MESSAGING_SYSTEM: Final = "messaging.system"
"""Attribute: semantic conventions' messaging system; ``otpy`` on the gateway's spans."""
ATTR_MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
"""Attribute: semantic conventions' operation name; ``send`` on an attempt's span."""
ATTR_MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
"""Attribute: semantic conventions' operation type; ``send`` on an attempt's span."""
ATTR_MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
"""Attribute: the gateway destination's name (semantic conventions' destination name)."""
ATTR_MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
"""Attribute: the outbox message's id (semantic conventions' message id)."""
ATTR_HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
"""Attribute: the HTTP status the destination answered; absent when there was no answer."""
ATTR_ORDERING_KEY: Final = "otpy.ordering_key"
"""Dead-letter attribute: the message's ordering key (a replay goes back to its key)."""
ATTR_OUTBOX_MESSAGE_ID: Final = "otpy.outbox.message_id"
"""Dead-letter attribute: the id the message had in the gateway's outbox."""
ATTR_GATEWAY_ATTEMPT: Final = "otpy.gateway.attempt"
"""Attribute: the attempt's number for its message, the first being 1."""
ATTR_GATEWAY_OUTCOME: Final = "otpy.gateway.outcome"
"""Attribute: how an attempt was classified: ``success``, ``retryable``, ``terminal`` or ``gone``."""
ATTR_GATEWAY_BREAKER_OLD_STATE: Final = "otpy.gateway.breaker.old_state"
"""Attribute: the breaker's state before the change (``closed``, ``open``, ``half_open``...)."""
ATTR_GATEWAY_BREAKER_NEW_STATE: Final = "otpy.gateway.breaker.new_state"
"""Attribute: the breaker's state after the change."""
ATTR_GATEWAY_BREAKER_REASON: Final = "otpy.gateway.breaker.reason"
"""Attribute: why the breaker changed state, in words (a rate over its threshold...)."""
ATTR_GATEWAY_DISABLE_REASON: Final = "otpy.gateway.disable.reason"
"""Attribute: why a destination was disabled: ``gone`` (it answered 410) or ``manual``."""
ATTR_GATEWAY_DEAD_LETTER_REASON: Final = "otpy.gateway.dead_letter.reason"
"""Attribute: why a message was given up: ``retries_exhausted``, ``terminal`` or ``gone``."""

METRIC_GATEWAY_ATTEMPTS: Final = "otpy.gateway.attempts"
"""Counter, unit ``{attempt}``: delivery attempts, by destination and `ATTR_GATEWAY_OUTCOME`."""
METRIC_GATEWAY_ATTEMPT_DURATION: Final = "otpy.gateway.attempt.duration"
"""Histogram, unit ``s``: how long each attempt took, by destination."""
METRIC_GATEWAY_BREAKER_TRANSITIONS: Final = "otpy.gateway.breaker.transitions"
"""Counter, unit ``{transition}``: breaker state changes, by destination and new state."""
METRIC_GATEWAY_DEAD_LETTERED: Final = "otpy.gateway.dead_lettered"
"""Counter, unit ``{message}``: messages given up, by destination and `ATTR_GATEWAY_DEAD_LETTER_REASON`."""
METRIC_GATEWAY_OUTBOX_DEPTH: Final = "otpy.gateway.outbox.depth"
"""Gauge, unit ``{message}``: messages waiting or in flight, by destination, sampled once per poll."""
METRIC_GATEWAY_OUTBOX_OLDEST_AGE: Final = "otpy.gateway.outbox.oldest_age"
"""Gauge, unit ``s``: age of a destination's oldest message (0 if none), sampled once per poll."""
METRIC_GATEWAY_BREAKER_STATE: Final = "otpy.gateway.breaker.status"
"""Gauge, a state set: 1 for a destination's breaker state (``otpy.gateway.breaker.state``), 0 for the others."""
METRIC_GATEWAY_DISABLED: Final = "otpy.gateway.disabled"
"""Gauge: 1 while a destination is disabled, else 0; sampled once per poll."""
ATTR_GATEWAY_BREAKER_STATE: Final = "otpy.gateway.breaker.state"
"""Attribute: a breaker state (``closed``, ``open``...) on ``otpy.gateway.breaker.status``."""

# -- ingest hand-over (otpy.ingest.Handover: the journal to the gateway) ------------
# A backfill is one INTERNAL span, the root of its own trace, from the moment the
# hand-over finds more than a page pending until a page comes back short.

SPAN_INGEST_BACKFILL: Final = "otpy.ingest.backfill"
"""Span: a backlog of the journal drained at a governed rate, from its start to its end."""

ATTR_INGEST_ROUTE: Final = "otpy.ingest.route"
"""Attribute: the ingest route a message came in on: the receive span, the ingest metrics, an ingest dead letter."""
ATTR_INGEST_BACKFILL_BACKLOG: Final = "otpy.ingest.backfill.backlog"
"""Attribute: the entries pending in the journal when the backfill started."""
ATTR_INGEST_BACKFILL_RATE: Final = "otpy.ingest.backfill.rate"
"""Attribute: the backfill's rate limit, entries per second."""
ATTR_INGEST_BACKFILL_STEADY_RATE: Final = "otpy.ingest.backfill.steady_rate"
"""Attribute: the steady rate measured before the backfill, entries per second (absent if none yet)."""
ATTR_INGEST_BACKFILL_HANDED_OVER: Final = "otpy.ingest.backfill.handed_over"
"""Attribute, set at the end: the entries the backfill handed over."""

METRIC_INGEST_HANDED_OVER: Final = "otpy.ingest.handed_over"
"""Counter, unit ``{entry}``: journal entries handed over to the gateway, by `ATTR_INGEST_ROUTE`."""
METRIC_INGEST_UNROUTABLE: Final = "otpy.ingest.unroutable"
"""Counter, unit ``{entry}``: entries dead-lettered at the hand-over (route gone), by `ATTR_INGEST_ROUTE`."""
METRIC_INGEST_HANDOVER_RATE: Final = "otpy.ingest.handover.rate"
"""Gauge, unit ``{entry}/s``: the steady rate measured, or the rate limit during a backfill."""
METRIC_INGEST_HANDOVER_BACKLOG: Final = "otpy.ingest.handover.backlog"
"""Gauge, unit ``{entry}``: entries estimated pending during a backfill; 0 when it ends."""
METRIC_INGEST_JOURNAL_DEPTH: Final = "otpy.ingest.journal.depth"
"""Gauge, unit ``{entry}``: entries in the journal not yet handed over, by `ATTR_INGEST_ROUTE`."""
METRIC_INGEST_JOURNAL_OLDEST_AGE: Final = "otpy.ingest.journal.oldest_age"
"""Gauge, unit ``s``: age of the oldest entry not yet handed over, by `ATTR_INGEST_ROUTE`."""
METRIC_INGEST_JOURNAL_BYTES: Final = "otpy.ingest.journal.bytes"
"""Gauge, unit ``By``: the disk budget the pending entries take (all routes)."""
METRIC_INGEST_JOURNAL_PURGED: Final = "otpy.ingest.journal.purged"
"""Counter, unit ``{record}``: dedup records removed by the journal's housekeeping (older than the window)."""
# -- ingest (otpy.ingest.IngestApp, the HTTP ingest) --------------------------------
# Each accepted message has a CONSUMER span named "receive {route}", a child of the
# caller's traceparent if it sent one; its context is stored with the journal entry,
# so the gateway's delivery attempts ("send {destination}") are its children.

SPAN_INGEST_RECEIVE: Final = "receive"
"""Span name's operation: one message taken in is the span ``"receive {route}"`` (CONSUMER)."""
ATTR_INGEST_REASON: Final = "otpy.ingest.reason"
"""Attribute: why the ingest refused a message (``unauthorized``, ``too_large``, ``shed``...)."""
ATTR_INGEST_DUPLICATE: Final = "otpy.ingest.duplicate"
"""Attribute: whether the message repeated one accepted within the dedup window."""

METRIC_INGEST_ACCEPTED: Final = "otpy.ingest.accepted"
"""Counter, unit ``{message}``: messages journalled (answered 202), by `ATTR_INGEST_ROUTE`."""
METRIC_INGEST_DUPLICATES: Final = "otpy.ingest.duplicates"
"""Counter, unit ``{message}``: repeats answered 200 with the original's id, by route."""
METRIC_INGEST_REFUSED: Final = "otpy.ingest.refused"
"""Counter, unit ``{message}``: requests or batch lines refused, by route and `ATTR_INGEST_REASON`."""
