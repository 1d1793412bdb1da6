"""Supervision edge cases checked against OTP's supervisor.erl: links, failed restarts,
cancelled restarts and the dynamic supervisor's API (SUP-2, SUP-7, SUP-10, SUP-11, ACT-9)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import otpy
from otpy import ChildSpec, Strategy, SupervisorFlags, SupervisorSpec
from otpy.testing import inject_crash, virtual_time

Log = list[tuple[str, str]]


class Worker(otpy.Actor):
    """Logs init and terminate; init fails (or ignores) while its tag is in ``fail``."""

    async def init(
        self,
        tag: str,
        log: Log,
        fail: dict[str, int] | None = None,
        terminate_takes: float = 0.0,
    ) -> Any:
        self.tag = tag
        self.log = log
        self.terminate_takes = terminate_takes
        if fail and fail.get(tag):
            fail[tag] -= 1
            log.append(("fail", tag))
            raise RuntimeError(f"{tag} cannot start")
        log.append(("init", tag))
        return None

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return self.tag

    async def terminate(self, reason: object) -> None:
        if self.terminate_takes:
            await anyio.sleep(self.terminate_takes)
        self.log.append(("terminate", self.tag))


class Trapping(Worker):
    """A worker that traps exits, as a gen_server may."""

    trap_exit = True


def worker(tag: str, log: Log, fail: dict[str, int] | None = None, **options: Any) -> ChildSpec:
    return ChildSpec(id=tag, start=Worker, args=(tag, log, fail), **options)


def states(sup: otpy.SupervisorRef) -> list[tuple[str | None, str, bool]]:
    return [(c.id, c.state, c.ref is not None) for c in sup.which_children()]


# -- links: a supervisor's death takes its children with it ----------------------------


async def test_act_9_killed_supervisor_takes_its_children_with_it() -> None:
    """ACT-9: a killed supervisor's children die too: workers killed, trapping ones and child
    supervisors stopped with reason killed (terminate runs), names released."""
    log: Log = []
    inner = SupervisorSpec(id="inner", children=[worker("x", log, name="x")])
    specs: list[ChildSpec | SupervisorSpec] = [
        worker("w", log, name="w"),
        ChildSpec(id="trap", start=Trapping, args=("trap", log)),
        inner,
    ]
    async with otpy.open_node():
        sup = await otpy.start_supervisor(SupervisorSpec(children=specs, id="root"))
        w, trap, inner_ref = (sup.child(t) for t in ("w", "trap", "inner"))
        assert w is not None
        assert trap is not None
        assert inner_ref is not None
        x = otpy.supervisor_ref(inner_ref).child("x")
        assert x is not None
        log.clear()
        sup.ref.kill()
        assert await w.wait_exited() == otpy.KILLED
        assert await trap.wait_exited() == otpy.KILLED
        assert await inner_ref.wait_exited() == otpy.KILLED
        assert await x.wait_exited() == otpy.SHUTDOWN  # stopped by inner's terminate
        assert otpy.whereis("w") is None
        assert otpy.whereis("x") is None
        assert sorted(log) == [("terminate", "trap"), ("terminate", "x")]


async def test_act_9_supervisor_ignores_the_exit_of_a_linked_non_child() -> None:
    """ACT-9: a supervisor traps exits: an actor linked to it that crashes does not kill it."""

    class Linker(otpy.Actor):
        async def handle_cast(self, message: Any) -> None:
            if message == "crash":
                raise RuntimeError("boom")
            self.link(message)

    log: Log = []
    async with otpy.open_supervisor([worker("a", log)]) as sup:
        linker = await otpy.spawn(Linker)
        await linker.cast(sup.ref)
        await linker.cast("crash")
        await linker.wait_exited()
        await anyio.wait_all_tasks_blocked()
        assert sup.ref.is_alive
        assert states(sup) == [("a", "running", True)]


async def test_sup_6_killed_middle_supervisor_restarts_with_its_named_worker() -> None:
    """SUP-6: top -> middle -> named worker; killing the middle makes the top restart it once,
    and the new middle registers the worker's name again (no already_started)."""
    log: Log = []
    middle = SupervisorSpec(id="middle", children=[worker("db", log, name="db")])
    async with otpy.open_supervisor([middle], name="top") as top:
        old_middle = top.child("middle")
        old_db = otpy.whereis("db")
        assert old_middle is not None
        assert old_db is not None
        old_middle.kill()
        new_middle = await top.wait_child("middle", other_than=old_middle)
        assert old_db.exit_reason == otpy.KILLED
        new_db = otpy.whereis("db")
        assert new_db is not None
        assert new_db is not old_db
        assert otpy.supervisor_ref(new_middle).child("db") is new_db
        assert await otpy.named("db").call("tag") == "db"
        assert top.statistics().total_restarts == 1
        assert states(top) == [("middle", "running", True)]


# -- failed restarts ----------------------------------------------------------------------


async def test_sup_2_one_for_all_retry_after_a_failed_restart_restarts_the_whole_group() -> None:
    """SUP-2/SUP-7: one_for_all, b's restart fails once: the retry stops the new a and starts a, b, c."""
    log: Log = []
    fail: dict[str, int] = {}
    flags = SupervisorFlags(strategy=Strategy.ONE_FOR_ALL, intensity=10)
    async with otpy.open_supervisor([worker(t, log, fail) for t in "abc"], flags=flags) as sup:
        old_c = sup.child("c")
        assert old_c is not None
        log.clear()
        fail["b"] = 1
        inject_crash(old_c)
        await sup.wait_child("c", other_than=old_c)
        assert log == [
            ("terminate", "c"),
            ("terminate", "b"),
            ("terminate", "a"),
            ("init", "a"),
            ("fail", "b"),
            ("terminate", "a"),
            ("init", "a"),
            ("init", "b"),
            ("init", "c"),
        ]
        assert [s[1] for s in states(sup)] == ["running"] * 3
        assert sup.statistics().total_restarts == 2  # the crash, then the retry


@pytest.mark.parametrize("strategy", [Strategy.REST_FOR_ONE, Strategy.ONE_FOR_ALL])
async def test_sup_7_terminate_child_cancels_a_failing_restart_and_everything_after_it(
    strategy: Strategy,
) -> None:
    """SUP-7/SUP-11: while b's restart fails, c is not running (not restarting); terminate_child(b)
    cancels the restart, and the retry already queued starts nothing."""
    log: Log = []
    reached = anyio.Event()
    gate = anyio.Event()

    class Gated(Worker):
        async def init(self, *args: Any) -> Any:
            if gate.is_set() or reached.is_set():
                reached.set()
                await gate.wait()
                raise RuntimeError("b cannot start")
            return await super().init(*args)

    specs = [worker("a", log), ChildSpec(id="b", start=Gated, args=("b", log)), worker("c", log)]
    flags = SupervisorFlags(strategy=strategy, intensity=100)
    async with otpy.open_supervisor(specs, flags=flags) as sup:
        b = sup.child("b")
        assert b is not None
        reached.set()  # from now on b's init blocks on the gate, then fails
        log.clear()
        inject_crash(b)
        await reached.wait()
        await anyio.wait_all_tasks_blocked()
        assert states(sup) == [
            ("a", "running", True),
            ("b", "restarting", False),
            ("c", "stopped", False),
        ]
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "b")
            await anyio.wait_all_tasks_blocked()  # the request waits behind the restart
            gate.set()
        await anyio.wait_all_tasks_blocked()
        assert states(sup) == [
            ("a", "running", True),
            ("b", "stopped", False),
            ("c", "stopped", False),
        ]
        assert ("init", "c") not in log
        assert sup.ref.is_alive
        assert sup.statistics().total_restarts == 1


# -- the dynamic supervisor's API -------------------------------------------------------


async def test_sup_11_dynamic_terminate_child_by_id_dead_ref_and_count_children() -> None:
    """SUP-11: a dynamic supervisor answers simple_one_for_one for an id, ok for a ref that
    already exited, not_found for a live stranger; count_children counts one spec."""
    log: Log = []
    spec = otpy.DynamicSupervisorSpec(child=ChildSpec(id="w", start=Worker))
    async with otpy.open_supervisor(spec) as sup:
        assert sup.count_children() == otpy.ChildCounts(specs=1, active=0, supervisors=0, workers=0)
        a = await sup.start_dynamic_child("a", log)
        await sup.start_dynamic_child("b", log)
        assert sup.count_children() == otpy.ChildCounts(specs=1, active=2, supervisors=0, workers=2)
        with pytest.raises(otpy.ChildError, match=r"^child 'w': simple_one_for_one"):
            await sup.terminate_child("w")
        await sup.terminate_child(a)
        await sup.terminate_child(a)  # already gone: fine, as in OTP
        stranger = await otpy.spawn(Worker, "s", log)
        with pytest.raises(otpy.ChildError, match="not_found"):
            await sup.terminate_child(stranger)
        assert sup.count_children() == otpy.ChildCounts(specs=1, active=1, supervisors=0, workers=1)


async def test_sup_10_dynamic_child_whose_restart_ignores_is_forgotten() -> None:
    """SUP-10/ACT-6: a dynamic child whose restart returns IGNORE is dropped and frees its slot."""
    log: Log = []
    ignore = [False]

    class Ignores(Worker):
        async def init(self, *args: Any) -> Any:
            if ignore[0]:
                return otpy.IGNORE
            return await super().init(*args)

    spec = otpy.DynamicSupervisorSpec(child=ChildSpec(id="w", start=Ignores), max_children=1)
    async with otpy.open_supervisor(spec) as sup:
        first = await sup.start_dynamic_child("a", log)
        ignore[0] = True
        inject_crash(first)
        await first.wait_exited()
        await anyio.wait_all_tasks_blocked()
        assert sup.which_children() == []
        assert sup.count_children().workers == 0
        ignore[0] = False
        second = await sup.start_dynamic_child("b", log)
        assert await second.call("tag") == "b"


class TestVirtualTime:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return virtual_time()

    async def test_sup_6_killed_middle_is_restarted_once_its_whole_subtree_has_stopped(
        self,
    ) -> None:
        """SUP-6: top -> middle -> sub -> named db slow to stop: the top restarts the killed middle
        only once db has finished stopping, so the new db gets its name at the first try."""
        log: Log = []
        db = ChildSpec(id="db", start=Worker, args=("db", log, None, 1.0), name="db")
        sub = SupervisorSpec(id="sub", children=[db])
        middle = SupervisorSpec(id="middle", children=[sub])
        async with otpy.open_supervisor([middle], name="top") as top:
            old_middle = top.child("middle")
            old_db = otpy.whereis("db")
            assert old_middle is not None
            assert old_db is not None
            start = anyio.current_time()
            old_middle.kill()
            await top.wait_child("middle", other_than=old_middle)
            assert anyio.current_time() - start == 1.0
            assert old_db.exit_reason == otpy.SHUTDOWN
            new_db = otpy.whereis("db")
            assert new_db is not None
            assert new_db is not old_db
            assert top.statistics().total_restarts == 1

    async def test_sup_11_deleting_a_sibling_waiting_for_a_restart_frees_its_name(self) -> None:
        """SUP-11: under one_for_all, b waits stopped while a backs off; delete_child(b) frees
        b's name at once (no restart stash left behind) and a's restart leaves b out."""
        log: Log = []
        backoff = otpy.Backoff(minimum=5.0, maximum=5.0, jitter=0.0)
        specs = [worker("a", log, backoff=backoff), worker("b", log, name="b")]
        flags = SupervisorFlags(strategy=Strategy.ONE_FOR_ALL)
        async with otpy.open_supervisor(specs, flags=flags) as sup:
            old_a = sup.child("a")
            assert old_a is not None
            inject_crash(old_a)
            await old_a.wait_exited()
            await anyio.wait_all_tasks_blocked()
            assert states(sup) == [("a", "backing_off", False), ("b", "stopped", False)]
            await sup.delete_child("b")
            with pytest.raises(otpy.ActorStopped):
                await otpy.named("b").call("tag")
            await sup.wait_child("a", other_than=old_a)
            assert states(sup) == [("a", "running", True)]

    async def test_sup_11_dynamic_terminate_child_cancels_a_pending_restart(self) -> None:
        """SUP-11: terminate_child(old ref) of a dynamic child backing off cancels its restart."""
        log: Log = []
        backoff = otpy.Backoff(minimum=5.0, maximum=5.0, jitter=0.0)
        spec = otpy.DynamicSupervisorSpec(child=ChildSpec(id="w", start=Worker, backoff=backoff))
        async with otpy.open_supervisor(spec) as sup:
            old = await sup.start_dynamic_child("a", log)
            inject_crash(old)
            await old.wait_exited()
            await anyio.wait_all_tasks_blocked()
            assert [c.state for c in sup.which_children()] == ["backing_off"]
            await sup.terminate_child(old)
            assert sup.which_children() == []
            await anyio.sleep(10.0)
            assert sup.which_children() == []
            assert log.count(("init", "a")) == 1

    async def test_sup_15_dynamic_shutdown_errors_name_each_child(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """SUP-15: each shutdown_error report of a dynamic supervisor names that child, not the template."""
        log: Log = []
        template = ChildSpec(id="w", start=Worker, shutdown=1.0)
        async with otpy.open_node():
            sup = await otpy.start_supervisor(otpy.DynamicSupervisorSpec(child=template))
            refs = [await sup.start_dynamic_child(t, log, None, 100.0) for t in "ab"]
            with caplog.at_level(logging.ERROR, logger="otpy.supervisor"):
                await sup.stop()
        reports = [r.__dict__["otpy_report"] for r in caplog.records if r.name == "otpy.supervisor"]
        assert sorted(r["offender"]["id"] for r in reports) == sorted(r.label for r in refs)
        assert sorted(r.label for r in refs) == ["w#1", "w#2"]
        assert {r["context"] for r in reports} == {"shutdown_error"}
        assert "shutdown_error of w#1: killed" in caplog.text


# -- validation: start_child checks what a spec checks -----------------------------------


async def test_sup_12_start_child_rejects_significant_under_auto_shutdown_never() -> None:
    """SUP-12: start_child refuses a significant child when auto_shutdown is NEVER (bad_combination)."""
    log: Log = []
    spec = worker("job", log, restart=otpy.Restart.TRANSIENT, significant=True)
    async with otpy.open_supervisor([worker("a", log)]) as sup:
        with pytest.raises(otpy.InvalidChildSpec, match=r"^child 'job': significant children need"):
            await sup.start_child(spec)
        with pytest.raises(otpy.InvalidChildSpec, match=r"^child '\?': expected a ChildSpec"):
            await sup.start_child("job")  # type: ignore[arg-type]
        assert [c.id for c in sup.which_children()] == ["a"]
        assert ("init", "job") not in log
    flags = SupervisorFlags(auto_shutdown=otpy.AutoShutdown.ANY_SIGNIFICANT)
    async with otpy.open_supervisor([], flags=flags) as sup:
        assert await sup.start_child(spec) is not None


def test_sup_12_child_spec_fields_are_checked_when_built() -> None:
    """SUP-12: significant, mailbox and an infinite shutdown or start_timeout fail when the spec is built."""
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"^child 'x': significant must be True or False, got 'yes'"
    ):
        ChildSpec(id="x", start=Worker, restart=otpy.Restart.TRANSIENT, significant="yes")  # type: ignore[arg-type]
    with pytest.raises(
        otpy.InvalidChildSpec,
        match=r"^child 'x': mailbox must be an otpy.MailboxConfig or None, got 'x'",
    ):
        ChildSpec(id="x", start=Worker, mailbox="x")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^child 'x': shutdown must be >= 0 seconds, .* got inf; write Shutdown.INFINITY",
    ):
        ChildSpec(id="x", start=Worker, shutdown=float("inf"))
    with pytest.raises(otpy.InvalidChildSpec, match=r"or None to wait forever, got inf"):
        ChildSpec(id="x", start=Worker, start_timeout=float("inf"))
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"^child 'x': stash_capacity must be an integer >= 1"
    ):
        ChildSpec(id="x", start=Worker, stash_capacity=True)
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"^child 'sup': significant must be True or False"
    ):
        SupervisorSpec(id="sup", children=[], significant=1)  # type: ignore[arg-type]


def test_sup_12_dynamic_template_cannot_be_significant() -> None:
    """SUP-12: a dynamic supervisor's template cannot be significant: it has no auto_shutdown."""
    template = ChildSpec(id="w", start=Worker, restart=otpy.Restart.TEMPORARY, significant=True)
    with pytest.raises(
        otpy.InvalidChildSpec,
        match=r"^child 'w': a dynamic supervisor's child template cannot be significant",
    ):
        otpy.DynamicSupervisorSpec(child=template)


async def test_sup_9_shutdown_infinity_is_the_way_to_wait_forever() -> None:
    """SUP-9: Shutdown.INFINITY, the legal spelling of OTP's infinity, works at every stage."""
    log: Log = []
    spec = worker("w", log, shutdown=otpy.Shutdown.INFINITY)
    async with otpy.open_supervisor([spec]) as sup:
        await sup.terminate_child("w")
        assert await sup.restart_child("w") is not None
    assert log.count(("terminate", "w")) == 2


# -- a nested supervisor that cannot start ------------------------------------------------


async def test_sup_8_nested_start_failure_names_the_path_and_exits_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SUP-8: root -> middle -> db failing: the start fails naming db and root/middle/db; middle
    exits ShutdownWith(FailedToStartChild), so root's start_error report says shutdown."""
    log: Log = []
    fail = {"db": 1}
    middle = SupervisorSpec(id="middle", children=[worker("ok", log), worker("db", log, fail)])
    root = SupervisorSpec(id="root", children=[worker("first", log), middle])
    with caplog.at_level(logging.ERROR, logger="otpy"):
        async with otpy.open_node():
            with pytest.raises(
                otpy.FailedToStartChild,
                match=r"^supervisor 'root' failed to start child 'db' \(root/middle/db\): "
                r"RuntimeError: db cannot start$",
            ) as info:
                await otpy.start_supervisor(root)
    error = info.value
    assert isinstance(error, otpy.SpawnError)
    assert (error.supervisor, error.actor, error.child) == ("root", "root", "middle")
    assert error.path == ("root", "middle", "db")
    assert isinstance(error.cause, RuntimeError)
    assert isinstance(error.reason, otpy.ShutdownWith)
    assert isinstance(error.reason.detail, otpy.FailedToStartChild)
    assert error.reason.detail.path == ("middle", "db")
    assert isinstance(error.__cause__, otpy.SpawnError)
    reports = {
        r.__dict__["otpy_report"]["supervisor"]: r.__dict__["otpy_report"]
        for r in caplog.records
        if r.name == "otpy.supervisor"
    }
    assert reports["middle"]["reason"] == "RuntimeError: db cannot start"
    assert reports["root"]["context"] == "start_error"
    assert reports["root"]["offender"]["id"] == "middle"
    assert reports["root"]["reason"].startswith("shutdown: FailedToStartChild: ")
    assert not [r for r in caplog.records if r.name == "otpy.actor"]  # no crash report
    assert log == [
        ("init", "first"),
        ("init", "ok"),
        ("fail", "db"),
        ("terminate", "ok"),
        ("terminate", "first"),
    ]


async def test_sup_8_open_supervisor_and_start_child_raise_the_nested_failure_itself() -> None:
    """SUP-8: open_supervisor and start_child raise FailedToStartChild naming the path too."""
    log: Log = []
    middle = SupervisorSpec(id="middle", children=[worker("db", log, {"db": 2})])
    with pytest.raises(otpy.FailedToStartChild, match=r"child 'db' \(top/middle/db\)"):
        async with otpy.open_supervisor([middle], name="top"):
            pass  # pragma: no cover - the tree must not start
    async with otpy.open_supervisor([], name="top") as sup:
        with pytest.raises(
            otpy.FailedToStartChild,
            match=r"^supervisor 'middle' failed to start child 'db' \(middle/db\)",
        ):
            await sup.start_child(middle)
        assert sup.which_children() == []


# -- temporary children: nothing of their arguments is kept ------------------------------


class Payload:
    """A large argument, weakly referenceable so a test can see it being freed."""


class Consumer(otpy.Actor):
    """Uses its payload in init and keeps nothing of it."""

    async def init(self, payload: Payload) -> None:
        self.seen = type(payload).__name__

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return self.seen


async def test_sup_4_temporary_child_arguments_are_freed_while_it_runs() -> None:
    """SUP-4: a supervisor keeps nothing of a temporary child's arguments (as OTP): a payload
    passed to a running temporary worker is collectable once the worker drops it."""
    import gc
    import weakref

    template = ChildSpec(id="c", start=Consumer, restart=otpy.Restart.TEMPORARY)
    async with otpy.open_supervisor(
        [otpy.DynamicSupervisorSpec(id="pool", child=template)], name="top"
    ) as top:
        pool_ref = top.child("pool")
        assert pool_ref is not None
        pool = otpy.supervisor_ref(pool_ref)
        payload = Payload()
        alive = weakref.ref(payload)
        dynamic = await pool.start_dynamic_child(payload)
        static = await top.start_child(
            ChildSpec(id="t", start=Consumer, args=(payload,), restart=otpy.Restart.TEMPORARY)
        )
        assert static is not None
        del payload
        gc.collect()
        assert alive() is None
        assert await dynamic.call("seen") == await static.call("seen") == "Payload"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"args": None}, "child 'x': args must be a tuple or list of arguments for init, got None"),
        ({"args": "ab"}, "child 'x': args must be a tuple or list of arguments for init, got 'ab'"),
        ({"args": {"a": 1}}, "child 'x': args must be a tuple or list of arguments for init"),
        (
            {"id": 10**5000},
            "child '?': id must be a non-empty string, got an integer of 16610 bits",
        ),
        ({"id": "a\udc80"}, "child 'a\\udc80': id must be valid text, got 'a\\udc80', which has"),
        ({"name": "\ud800"}, "child 'x': name must be valid text, got '\\ud800', which has"),
        ({"start": 10**5000}, "child 'x': start must be an otpy.Actor subclass, got an integer of"),
        ({"shutdown": 10**400}, "child 'x': shutdown must be >= 0 seconds, Shutdown.BRUTAL_KILL"),
        ({"start_timeout": 10**400}, "child 'x': start_timeout must be > 0 seconds, or None"),
        (
            {"stash_capacity": 2**60},
            "child 'x': stash_capacity must be an integer >= 1 and <= 2**53",
        ),
        ({"backoff": 1.5}, "child 'x': backoff must be an otpy.Backoff or None, got 1.5"),
    ],
)
def test_sup_12_child_spec_refuses_odd_values_naming_the_field(
    options: dict[str, Any], message: str
) -> None:
    """SUP-12: a value a later stage could not use (starting the child, a span) fails when built."""
    with pytest.raises(otpy.InvalidChildSpec) as info:
        ChildSpec(**{"id": "x", "start": Worker, **options})
    assert str(info.value).startswith(message)


async def test_sup_12_child_spec_args_from_a_list_start_the_child() -> None:
    """SUP-12: args given as a list (an ordered collection) are kept as a tuple and passed to init."""
    log: Log = []
    spec = ChildSpec(id="a", start=Worker, args=["a", log])
    assert spec.args == ("a", log)
    async with otpy.open_supervisor([spec]):
        assert ("init", "a") in log


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"children": None},
            "child 'sup': children must be a list of ChildSpec, SupervisorSpec or "
            "DynamicSupervisorSpec, got None",
        ),
        (
            {"children": ["x"]},
            "child 'sup': children must be ChildSpec, SupervisorSpec or DynamicSupervisorSpec, "
            "got str 'x'",
        ),
        ({"flags": 3}, "child 'sup': flags must be an otpy.SupervisorFlags, got 3"),
        (
            {"id": 10**5000},
            "child '?': id must be a non-empty string, got an integer of 16610 bits",
        ),
    ],
)
def test_sup_12_supervisor_spec_refuses_odd_values_naming_the_field(
    options: dict[str, Any], message: str
) -> None:
    """SUP-12: children that are no list of specs, or bad flags, fail when the spec is built."""
    with pytest.raises(otpy.InvalidChildSpec) as info:
        SupervisorSpec(**{"id": "sup", "children": [], **options})
    assert str(info.value) == message


def test_sup_5_flags_take_only_what_the_restart_window_takes() -> None:
    """SUP-5: flags a supervisor's RestartWindow would refuse fail when the flags are built."""
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"intensity must be an integer >= 0 and <= 2\*\*53"
    ):
        SupervisorFlags(intensity=2**60)
    with pytest.raises(
        otpy.InvalidChildSpec, match=r"period must be > 0 seconds \(finite\), got inf"
    ):
        SupervisorFlags(period=float("inf"))
