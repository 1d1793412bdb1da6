"""The outbound gateway: signed, ordered, retried delivery; a dead letter; a replay through it.

A small webhook receiver runs on loopback (the standard library's HTTP server, in a
thread). It verifies each request's Standard Webhooks signature, answers the first
attempt of every message with a 503 (the gateway retries), and refuses order 3 with
a 422 until it is "fixed". The gateway runs as a supervision tree (one actor per
destination) beside the dead-letter service; order 3 becomes a dead letter that says
where it was going, and a replay sends it again through the gateway once the
receiver accepts it.

The outbox is SQLite in a temporary directory, so nothing is left behind. Run it
with ``python examples/outbound_gateway.py``.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio

import otpy
from otpy.deadletter import (
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
    open_replayer,
)
from otpy.gateway import (
    DeliveryPolicy,
    Gateway,
    HttpDestination,
    RetryPolicy,
    SigningSecret,
    open_outbox,
    verify,
)

SECRET = SigningSecret.generate()
received: list[tuple[str, int]] = []  # (ordering key, order) of each accepted request
seen: set[str] = set()
fixed = threading.Event()


class Receiver(BaseHTTPRequestHandler):
    """Verifies the signature; 503 to each message's first attempt; 422 to order 3 until fixed."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        message_id = verify([SECRET], headers=dict(self.headers), body=body, now=time.time())
        order = json.loads(body)["order"]
        if message_id not in seen:
            seen.add(message_id)
            status = 503
        elif order == 3 and not fixed.is_set():
            status = 422
        else:
            status = 200
            received.append((self.headers["x-customer"], order))
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the example prints what matters."""


async def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
    store = MemoryDeadLetterStore()
    with tempfile.TemporaryDirectory() as tmp:
        orders = HttpDestination("orders", url, timeout=5.0, signing_secrets=[SECRET])
        async with open_outbox(Path(tmp) / "outbox.db") as outbox, orders:
            gateway = Gateway(
                outbox,
                [orders],
                policy=DeliveryPolicy(retry=RetryPolicy(schedule=("0.1s", "0.2s"))),
                dead_letters=DeadLetters(),
            )
            # one_for_one: the dead-letter service starts first and stops last, so
            # the gateway can store dead letters until it has drained.
            async with otpy.open_supervisor(
                [*dead_letter_children(store, sweep=False), gateway.supervisor_spec()]
            ):
                for order in (1, 2, 3, 4):
                    body = json.dumps({"order": order}).encode()
                    await gateway.enqueue(
                        "orders",
                        key="customer-42",
                        body=body,
                        content_type="application/json",
                        headers={"x-customer": "customer-42"},
                    )
                # The receiver runs in a thread: a short poll is the simplest bridge.
                while len(received) < 3 or not (await store.list()).records:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                print("delivered in order, each after one retry:", received)
                [record] = (await store.list()).records
                attributes = dict(record.attributes)
                print(
                    f"dead letter {record.reason_class} for {record.key} "
                    f"(key {attributes['otpy.ordering_key']}, "
                    f"{attributes['http.request.method']} {attributes['url.full']})"
                )
                fixed.set()
                async with open_replayer(store, {Source.OUTBOUND: gateway.replay}) as replayer:
                    result = await replayer.replay(record.id)
                result.raise_for_outcome()
                print("replayed through the gateway:", result.outcome)
                while len(received) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
    server.shutdown()
    print("after the replay:", received)


if __name__ == "__main__":
    anyio.run(main)
