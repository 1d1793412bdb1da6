"""The HTTP ingest served by Hypercorn on loopback, as a supervised actor that drains on stop (IN-10, IN-13)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

import otpy
from otpy.ingest import IngestServer, MemoryJournalStore, ingest_server_spec

from ._http import Gate, clock, make_app


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends on real time: Hypercorn's timers must not jump."""
    return (request.param, {})


async def address(node: Any) -> str:
    """The base URL the ``ingest`` child listens on."""
    ref = node.whereis("ingest")
    assert ref is not None
    host, port = await ref.call("address")
    return f"http://{host}:{port}"


async def test_a_post_on_loopback_is_journalled_before_its_202() -> None:
    """The actor in a tree binds a free port; a POST gets 202 and its entry is in the journal."""
    journal = MemoryJournalStore(clock=clock)
    app = make_app(journal=journal, ready=False)
    spec = ingest_server_spec(app, port=0)
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(otpy.SupervisorSpec(children=[spec])),
    ):
        base = await address(node)
        assert base.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base) as c:
            ready = await c.get("/readyz")
            r = await c.post("/v1/routes/orders/messages", content=b"hello")
        assert ready.status_code == 200
        assert r.status_code == 202
        entry = await journal.get(r.json()["id"])
        assert entry is not None
        assert entry.body == b"hello"


async def test_a_stop_drains_the_request_in_flight_and_refuses_new_ones() -> None:
    """On stop: new requests get 503 at once, the one in flight gets its 202, then the server closes."""
    gate = Gate()
    app = make_app(journal=gate, ready=False)
    spec = ingest_server_spec(app, port=0, shutdown=30.0)
    answers: dict[str, int] = {}
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(otpy.SupervisorSpec(children=[spec])) as sup,
    ):
        base = await address(node)
        async with httpx.AsyncClient(base_url=base) as first, anyio.create_task_group() as tg:

            async def post() -> None:
                r = await first.post("/v1/routes/orders/messages", content=b"in flight")
                answers["in_flight"] = r.status_code

            tg.start_soon(post)
            await gate.entered.wait()
            stopped = anyio.Event()

            async def stop() -> None:
                await sup.terminate_child("ingest")
                stopped.set()

            tg.start_soon(stop)
            while not app.draining:  # terminate has not run yet
                await anyio.lowlevel.checkpoint()
            async with httpx.AsyncClient(base_url=base) as second:
                late = await second.post("/v1/routes/orders/messages", content=b"late")
            answers["late"] = late.status_code
            assert late.json() == {"error": "draining", "detail": "the node is stopping"}
            assert not stopped.is_set()
            gate.release.set()
            await stopped.wait()
        assert answers == {"in_flight": 202, "late": 503}
        assert len(await gate.pending(limit=10)) == 1
        async with httpx.AsyncClient(base_url=base) as after:
            with pytest.raises(httpx.ConnectError):
                await after.get("/healthz")


async def test_the_server_actor_answers_its_address() -> None:
    """``"address"`` is the host and the port bound, port 0 resolved."""
    app = make_app(ready=False)
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(
            otpy.SupervisorSpec(children=[ingest_server_spec(app, port=0, name="ingest")])
        ),
    ):
        ref = node.whereis("ingest")
        assert ref is not None
        host, port = await ref.call("address")
        assert host == "127.0.0.1"
        assert port > 0
        assert app.ready


def test_the_spec_checks_its_port() -> None:
    """A port outside 0..65535 is refused, naming the argument."""
    with pytest.raises(ValueError, match=r"^ingest_server_spec: port must be an int in"):
        ingest_server_spec(make_app(), port=70000)


def test_the_spec_runs_an_ingest_server() -> None:
    """The child spec starts IngestServer with the app, host and port."""
    app = make_app()
    spec = ingest_server_spec(app, host="0.0.0.0", port=9000, shutdown=12.0)
    assert spec.start is IngestServer
    assert spec.args == (app, "0.0.0.0", 9000, 5.0, 30.0)
    assert (spec.id, spec.name, spec.shutdown) == ("ingest", "ingest", 12.0)
