"""The outbound gateway: delivery to HTTP destinations, with retries, a breaker and signatures.

In progress: docs/gateway.md says what exists and what comes next. A
:class:`Gateway` joins the parts below: ``await gateway.enqueue(...)`` returns once
a message is durable, and ``await gateway.run()`` delivers, one loop per destination.

- :class:`RetryPolicy`: attempts counting the first, exponential backoff with jitter
  never above its cap, or an explicit schedule (``("5s", "5m", "30m", ...)``);
  ``Retry-After`` honoured and clamped (:func:`parse_retry_after`).
- :func:`classify`: success, retryable (408, 429, 5xx, connection errors and
  timeouts), terminal (other 4xx, 3xx) or gone (410), with a user override.
- :class:`CircuitBreaker`: Resilience4j's breaker, count- or time-based window,
  failure- and slow-call-rate thresholds, a fixed number of half-open trials.
- :func:`sign`, :func:`verify`, :func:`webhook_headers`: Standard Webhooks
  signatures, with :class:`SigningSecret` s that rotate and never print their key.
- :class:`HttpDestination`: one endpoint on httpx, one attempt per :meth:`send`
  under a hard time limit, a :class:`Bulkhead` and an optional rate limit; the
  request carries ``Idempotency-Key`` and the Standard Webhooks headers.
- :class:`OutboxStore` (:class:`SQLiteOutboxStore` on otpy's one write path,
  :class:`MemoryOutboxStore`): messages acknowledged after commit, claimed one head
  per ordering key under a lease, put back after a crash.
"""

from __future__ import annotations

from ._breaker import BreakerPolicy as BreakerPolicy
from ._breaker import BreakerState as BreakerState
from ._breaker import BreakerStatistics as BreakerStatistics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import TransitionCallback as TransitionCallback
from ._bulkhead import Bulkhead as Bulkhead
from ._bulkhead import BulkheadStatistics as BulkheadStatistics
from ._classify import Classifier as Classifier
from ._classify import Outcome as Outcome
from ._classify import classify as classify
from ._classify import classify_error as classify_error
from ._classify import classify_status as classify_status
from ._gateway import DEFAULT_RETRY as DEFAULT_RETRY
from ._gateway import DISABLE_AFTER as DISABLE_AFTER
from ._gateway import DeadLetterSink as DeadLetterSink
from ._gateway import DeliveryPolicy as DeliveryPolicy
from ._gateway import DeliveryStatistics as DeliveryStatistics
from ._gateway import Destination as Destination
from ._gateway import Gateway as Gateway
from ._gateway import GatewayStatistics as GatewayStatistics
from ._http import DEFAULT_EXCERPT_LIMIT as DEFAULT_EXCERPT_LIMIT
from ._http import IDEMPOTENCY_HEADER as IDEMPOTENCY_HEADER
from ._http import DeliveryResult as DeliveryResult
from ._http import HttpDestination as HttpDestination
from ._http import OutboundRequest as OutboundRequest
from ._http import classify_http_error as classify_http_error
from ._outbox import DestinationState as DestinationState
from ._outbox import DestinationStatistics as DestinationStatistics
from ._outbox import OutboxMessage as OutboxMessage
from ._outbox import OutboxState as OutboxState
from ._outbox import OutboxStatistics as OutboxStatistics
from ._outbox import OutboxStore as OutboxStore
from ._outbox_memory import MemoryOutboxStore as MemoryOutboxStore
from ._outbox_owned import OutboxHandle as OutboxHandle
from ._outbox_owned import sqlite_outbox as sqlite_outbox
from ._outbox_sqlite import APPLICATION_ID as OUTBOX_APPLICATION_ID
from ._outbox_sqlite import SQLiteOutboxStore as SQLiteOutboxStore
from ._outbox_sqlite import open_outbox as open_outbox
from ._retry import RetryPolicy as RetryPolicy
from ._retry import parse_duration as parse_duration
from ._retry import parse_retry_after as parse_retry_after
from ._signing import DEFAULT_TOLERANCE as DEFAULT_TOLERANCE
from ._signing import ID_HEADER as ID_HEADER
from ._signing import MIN_SECRET_BYTES as MIN_SECRET_BYTES
from ._signing import SECRET_PREFIX as SECRET_PREFIX
from ._signing import SIGNATURE_HEADER as SIGNATURE_HEADER
from ._signing import TIMESTAMP_HEADER as TIMESTAMP_HEADER
from ._signing import SigningSecret as SigningSecret
from ._signing import sign as sign
from ._signing import verify as verify
from ._signing import webhook_headers as webhook_headers

__all__ = [
    "DEFAULT_EXCERPT_LIMIT",
    "DEFAULT_RETRY",
    "DEFAULT_TOLERANCE",
    "IDEMPOTENCY_HEADER",
    "ID_HEADER",
    "DISABLE_AFTER",
    "MIN_SECRET_BYTES",
    "OUTBOX_APPLICATION_ID",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStatistics",
    "Bulkhead",
    "BulkheadStatistics",
    "CircuitBreaker",
    "Classifier",
    "DeadLetterSink",
    "DeliveryPolicy",
    "DeliveryStatistics",
    "Destination",
    "Gateway",
    "GatewayStatistics",
    "DeliveryResult",
    "DestinationState",
    "DestinationStatistics",
    "HttpDestination",
    "MemoryOutboxStore",
    "OutboundRequest",
    "Outcome",
    "OutboxMessage",
    "OutboxState",
    "OutboxStatistics",
    "OutboxStore",
    "OutboxHandle",
    "RetryPolicy",
    "SQLiteOutboxStore",
    "SigningSecret",
    "TransitionCallback",
    "classify",
    "classify_error",
    "classify_http_error",
    "classify_status",
    "open_outbox",
    "sqlite_outbox",
    "parse_duration",
    "parse_retry_after",
    "sign",
    "verify",
    "webhook_headers",
]
