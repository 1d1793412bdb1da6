"""``otpy run MODULE:ATTR``: loading the target, bad targets and options, exit codes."""

from __future__ import annotations

import json
import logging
import re
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
import trees
from click.testing import CliRunner

import otpy
from otpy.cli import TargetError, load_target, main

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_target`` puts the working directory on ``sys.path``; undo it after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


class FakeTelemetry:
    """Stands in for ``otpy.telemetry.Telemetry`` so no global provider is installed."""

    def __init__(self) -> None:
        self.shutdowns: list[float] = []

    def shutdown(self, timeout: float = 5.0) -> None:
        self.shutdowns.append(timeout)


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> FakeTelemetry:
    """Replace ``configure_from_env`` with one returning a :class:`FakeTelemetry`."""
    fake = FakeTelemetry()

    def configure_from_env(**kwargs: Any) -> FakeTelemetry:
        return fake

    monkeypatch.setattr("otpy.telemetry.configure_from_env", configure_from_env)
    return fake


def invoke(*args: str) -> Any:
    """Run ``otpy ARGS`` through click's runner."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- targets that load ------------------------------------------------------------------


def test_load_target_returns_the_spec() -> None:
    """MODULE:ATTR naming a SupervisorSpec returns that spec."""
    assert load_target("trees:quick") is trees.quick


def test_load_target_accepts_a_dynamic_supervisor_spec() -> None:
    """A DynamicSupervisorSpec is a valid root too."""
    assert load_target("trees:pool") is trees.pool


def test_load_target_calls_a_factory() -> None:
    """A zero-argument callable is called and its spec returned."""
    assert load_target("trees:build") is trees.quick


def test_load_target_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current directory is importable, as it is for ``python -m``."""
    (tmp_path / "cwd_tree.py").write_text(
        textwrap.dedent(
            """
            import otpy
            import trees

            root = otpy.SupervisorSpec(id="cwd", children=[otpy.ChildSpec(id="a", start=trees.Idle)])
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_tree", raising=False)
    spec = load_target("cwd_tree:root")
    assert isinstance(spec, otpy.SupervisorSpec)
    assert spec.id == "cwd"


# -- targets that do not: exit code 2 and a message that says what to do ----------------


@pytest.mark.parametrize("target", ["trees", "trees:", ":quick", "trees:quick:x", " :quick"])
def test_bad_target_syntax_exits_2(target: str) -> None:
    """A target that is not MODULE:ATTR is a usage error naming the expected form."""
    result = invoke("run", target)
    assert result.exit_code == 2
    assert "Error: Invalid value for MODULE:ATTR:" in result.output
    assert f"{target!r} is not MODULE:ATTR" in result.output
    assert "'supervisors.demo:root'" in result.output


def test_missing_module_exits_2() -> None:
    """A module that does not exist is named, with where it was looked for."""
    result = invoke("run", "no_such_tree_module:root")
    assert result.exit_code == 2
    assert "cannot import module 'no_such_tree_module'" in result.output
    assert "there is no module named 'no_such_tree_module'" in result.output


def test_module_that_fails_to_import_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while importing the module is reported with its type and message."""
    (tmp_path / "broken_tree.py").write_text("raise ValueError('no config file')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "broken_tree", raising=False)
    result = invoke("run", "broken_tree:root")
    assert result.exit_code == 2
    assert "importing module 'broken_tree' failed: ValueError: no config file" in result.output


def test_module_missing_a_dependency_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing import inside the module is not mistaken for the module being missing."""
    (tmp_path / "needs_dep.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "needs_dep", raising=False)
    result = invoke("run", "needs_dep:root")
    assert result.exit_code == 2
    assert "importing module 'needs_dep' failed: ModuleNotFoundError" in result.output
    assert "not_installed_dependency_xyz" in result.output


def test_missing_attribute_exits_2_and_lists_the_specs() -> None:
    """A missing attribute is named, with the supervisor specs the module does have."""
    result = invoke("run", "trees:nope")
    assert result.exit_code == 2
    assert "module 'trees' has no attribute 'nope'" in result.output
    assert "supervisor specs in it: fails_to_start, finishes, pool, quick, slow_stop" in (
        " ".join(result.output.split())
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("trees:not_a_spec", "trees:not_a_spec is 42 (int), not a supervisor spec"),
        ("trees:build_wrong", "trees:build_wrong() returned 'root' (str), not a supervisor spec"),
        ("trees:needs_arguments", "trees:needs_arguments is a callable that needs arguments"),
        ("trees:build_async", "trees:build_async is an async function"),
        ("trees:build_broken", "calling trees:build_broken() to build the tree failed: KeyError"),
        ("trees:Idle", "trees:Idle is the class Idle, not a supervisor spec; otpy does not"),
    ],
)
def test_wrong_attribute_exits_2(target: str, message: str) -> None:
    """Something that is not (and does not return) a supervisor spec is a usage error."""
    result = invoke("run", target)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project directory, the working directory, whose modules are forgotten after."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(directory: Path, name: str, source: str) -> None:
    """Write module *name* into *directory*."""
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def test_an_import_error_names_the_file_and_line_it_was_raised_at(project: Path) -> None:
    """An error raised in a module the target imports says where, not only what."""
    write(project, "deep", "import settings\nroot = settings.build()\n")
    write(project, "settings", "CONFIG = {}\n\n\ndef build():\n    return CONFIG['missing']\n")
    result = invoke("run", "deep:root")
    assert result.exit_code == 2
    assert (
        "importing module 'deep' failed: KeyError: 'missing' (at settings.py, line 5); "
        "fix the error in it (--log-level debug shows the traceback)"
    ) in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_an_error_raised_in_the_standard_library_names_the_projects_line(project: Path) -> None:
    """An error raised inside the standard library (json) names the project's line, not json's."""
    write(project, "conf", "import json\n\nroot = json.loads('{not json')\n")
    result = invoke("run", "conf:root")
    assert result.exit_code == 2
    assert "JSONDecodeError: Expecting property name enclosed in double quotes" in result.stderr
    assert "(at conf.py, line 3)" in result.stderr


def test_log_level_debug_shows_the_whole_traceback(project: Path) -> None:
    """With --log-level debug a target that fails to load prints its full traceback."""
    write(project, "deep", "import settings\nroot = settings.build()\n")
    write(project, "settings", "CONFIG = {}\n\n\ndef build():\n    return CONFIG['missing']\n")
    result = invoke("run", "deep:root", "--log-level", "debug")
    assert result.exit_code == 2
    assert "Traceback (most recent call last):" in result.stderr
    assert f'File "{project / "deep.py"}", line 2, in <module>' in result.stderr
    assert f'File "{project / "settings.py"}", line 5, in build' in result.stderr
    assert "(--log-level debug shows the traceback)" not in result.stderr


def test_a_failing_factory_names_the_file_and_line(project: Path) -> None:
    """A factory that raises is reported with where it raised."""
    write(project, "factory", "def build():\n    raise KeyError('settings')\n")
    result = invoke("run", "factory:build")
    assert result.exit_code == 2
    assert "calling factory:build() to build the tree failed: KeyError: 'settings' " in (
        " ".join(result.stderr.split())
    )
    assert "(at factory.py, line 2)" in result.stderr


SIDE_EFFECTS = """
    from pathlib import Path

    import otpy


    def main() -> None:
        Path("main-ran").touch()


    def forever():
        Path("generator-ran").touch()
        yield


    class App:
        def __init__(self) -> None:
            Path("app-ran").touch()
"""


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("main", "app:main is annotated to return None, not a supervisor spec, so otpy does not"),
        ("App", "app:App is the class App, not a supervisor spec; otpy does not instantiate it"),
        ("forever", "app:forever is a generator function"),
    ],
)
def test_a_target_is_never_called_to_find_out_what_it_is(
    project: Path, attr: str, message: str
) -> None:
    """A program's main, a class or a generator is refused without running any of its code."""
    write(project, "app", SIDE_EFFECTS)
    result = invoke("run", f"app:{attr}")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert sorted(p.name for p in project.iterdir() if not p.name.endswith(".py")) in (
        [],
        ["__pycache__"],
    )


def test_a_factory_is_called_once_when_the_node_runs(
    project: Path, telemetry: FakeTelemetry
) -> None:
    """A factory (annotated or not, or as a union with None) is called exactly once by run."""
    write(
        project,
        "built",
        """
        import otpy
        import trees

        calls = []


        def build() -> otpy.SupervisorSpec | None:
            calls.append("build")
            return trees.finishes
        """,
    )
    result = invoke("run", "built:build")
    assert result.exit_code == 0, result.output
    assert sys.modules["built"].calls == ["build"]


def test_load_target_raises_target_error() -> None:
    """``load_target`` raises TargetError, a ValueError, carrying the target."""
    with pytest.raises(TargetError, match=r"^module 'trees' has no attribute 'nope'") as info:
        load_target("trees:nope")
    assert isinstance(info.value, ValueError)
    assert info.value.target == "trees:nope"


@pytest.mark.parametrize("refresh", ["0", "-1", "61", "fast"])
def test_bad_refresh_exits_2(refresh: str) -> None:
    """--refresh must be a rate in (0, 60] frames per second."""
    result = invoke("run", "trees:quick", "--refresh", refresh)
    assert result.exit_code == 2
    assert "Invalid value for '--refresh'" in result.output


def test_help_shows_usage() -> None:
    """``otpy run --help`` shows the target form and the console options."""
    result = invoke("run", "--help")
    assert result.exit_code == 0
    assert "Usage: otpy run [OPTIONS] [MODULE:ATTR]" in result.output
    assert "--console / --no-console" in result.output
    assert "--refresh HZ" in result.output


# -- running through the command ---------------------------------------------------------


def test_run_exits_0_when_the_tree_finishes(telemetry: FakeTelemetry) -> None:
    """A tree that stops by itself (auto_shutdown) exits 0; telemetry is shut down once."""
    result = invoke("run", "trees:finishes")
    assert result.exit_code == 0, result.output
    assert "otpy: node running trees:finishes (pid " in result.stderr
    assert "otpy: root supervisor trees:finishes exited: shutdown" in result.stderr
    assert result.stderr.endswith("otpy: stopped\n")
    assert telemetry.shutdowns == [3.0]


def test_run_exits_1_when_the_tree_cannot_start(telemetry: FakeTelemetry) -> None:
    """A tree whose child fails init exits 1 and says which child and why (SUP-8)."""
    result = invoke("run", "trees:fails_to_start")
    assert result.exit_code == 1
    assert "otpy: trees:fails_to_start failed to start:" in result.stderr
    assert "RuntimeError: the database is not there" in result.stderr
    assert telemetry.shutdowns == [3.0]


def test_python_m_otpy_is_the_same_command() -> None:
    """``python -m otpy`` runs the same click group."""
    import otpy.__main__ as entry

    assert entry.main is main


def test_run_with_console_prints_the_last_frame(telemetry: FakeTelemetry) -> None:
    """ACT-15: with --console and no terminal, the console's last frame is printed at the end."""
    result = invoke("run", "trees:finishes", "--console", "--refresh", "20")
    assert result.exit_code == 0, result.output
    assert "otpy · trees:finishes · pid " in result.stdout
    assert re.search(r"finishes one_for_one +stopped", result.stdout)
    assert result.stderr.endswith("otpy: stopped\n")


def test_misconfigured_telemetry_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unsupported OTEL_* value is a usage error, reported before the node starts."""
    from otpy.telemetry import TelemetryConfigError

    def configure_from_env(**kwargs: Any) -> FakeTelemetry:
        raise TelemetryConfigError("OTEL_TRACES_EXPORTER", "zipkin", ("otlp", "console", "none"))

    monkeypatch.setattr("otpy.telemetry.configure_from_env", configure_from_env)
    result = invoke("run", "trees:quick")
    assert result.exit_code == 2
    assert "Error: telemetry is misconfigured: OTEL_TRACES_EXPORTER='zipkin'" in result.output
    assert "otpy: node running" not in result.output


def test_grpc_without_the_extra_exits_2_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc without otpy[grpc] is a usage error, not a traceback."""
    for name in (
        "opentelemetry.exporter.otlp.proto.grpc",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    ):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    result = invoke("run", "trees:quick")
    assert result.exit_code == 2
    assert (
        "Error: telemetry is misconfigured: OTEL_EXPORTER_OTLP_PROTOCOL='grpc' needs the "
        "gRPC exporter (pip install 'otpy[grpc]'), which is not installed; install it or "
        "use 'http/protobuf' (the default)\n"
    ) in result.output
    assert "Traceback" not in result.output
    assert "otpy: node running" not in result.output


def test_console_log_lines_are_one_line_without_tracebacks() -> None:
    """Under the console, log records are cut to one line and leave tracebacks out."""
    from otpy.cli._run import _OneLineFormatter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "otpy.actor", logging.ERROR, __file__, 1, "crashed:\nsecond line", (), sys.exc_info()
        )
    text = _OneLineFormatter("%(levelname)s %(message)s").format(record)
    assert text == "ERROR crashed:"
    assert record.exc_info is not None
    assert "Traceback" in logging.Formatter().format(record)


def test_run_falls_back_to_plain_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop the node runs on the default asyncio loop."""
    from otpy.cli._run import _backend_options

    assert _backend_options() == {"use_uvloop": True}
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert _backend_options() == {}


def test_sup_15_log_format_json_writes_structured_reports(telemetry: FakeTelemetry) -> None:
    """SUP-15: --log-format json gives one JSON object per line, with the supervisor's report."""
    result = invoke("run", "trees:fails_to_start", "--log-format", "json")
    assert result.exit_code == 1
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    [start_error] = [e for e in entries if e.get("report", {}).get("context") == "start_error"]
    assert start_error["level"] == "error"
    assert start_error["logger"] == "otpy.supervisor"
    assert start_error["report"]["supervisor"] == "fails_to_start"
    assert start_error["report"]["offender"]["id"] == "db"
    assert "the database is not there" in start_error["report"]["reason"]
    assert start_error["time"].endswith("+00:00")
    [failed] = [e for e in entries if e["logger"] == "otpy.cli"]
    assert failed["level"] == "error"
    assert failed["message"].startswith("trees:fails_to_start failed to start: supervisor")


def test_log_format_json_reports_a_bad_target_as_json(project: Path) -> None:
    """A target that cannot be loaded is one JSON error line, its traceback in a debug one."""
    write(project, "broken", "raise KeyError('missing')\n")
    result = invoke("run", "broken:root", "--log-format", "json", "--log-level", "debug")
    assert result.exit_code == 2
    debug, error = (json.loads(line) for line in result.stderr.splitlines())
    assert debug["message"] == "loading broken:root failed"
    assert "Traceback" in debug["exception"]["traceback"]
    assert error["message"] == (
        "Error: Invalid value for MODULE:ATTR: importing module 'broken' failed: "
        "KeyError: 'missing' (at broken.py, line 1); fix the error in it"
    )
    assert error["exit_code"] == 2


def test_log_format_json_reports_an_unexpected_failure_as_json(
    telemetry: FakeTelemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a bug in the command ends as one JSON line with its traceback, and exit 1."""

    async def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the node broke")

    monkeypatch.setattr("otpy.cli._run.run_node", broken)
    result = invoke("run", "trees:quick", "--log-format", "json")
    assert result.exit_code == 1
    [entry] = [json.loads(line) for line in result.stderr.splitlines()]
    assert entry["level"] == "critical"
    assert entry["message"] == "otpy run failed: RuntimeError: the node broke"
    assert "Traceback" in entry["exception"]["traceback"]
    assert telemetry.shutdowns == [3.0]


def test_json_lines_carry_the_exception_and_the_current_trace() -> None:
    """A record logged inside a span names its trace; an exception keeps type and traceback."""
    from opentelemetry import trace as otel_trace

    from otpy.cli._run import JsonFormatter
    from otpy.testing import capture_spans

    try:
        raise ValueError("bad input, token=s3cr3t")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    record.otpy_report = {"actor": "a", "last_message": "cast:str"}
    with capture_spans(), otpy.telemetry.get_tracer().start_as_current_span("s") as span:
        line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "failed x"
    assert entry["report"] == {"actor": "a", "last_message": "cast:str"}
    assert entry["exception"]["type"] == "builtins.ValueError"
    assert entry["exception"]["message"] == "bad input, token=[redacted]"
    assert "Traceback" in entry["exception"]["traceback"]
    assert "s3cr3t" not in line
    context = span.get_span_context()
    assert (entry["trace_id"], entry["span_id"]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
    assert otel_trace.get_current_span().get_span_context().is_valid is False


# -- the node's configuration ----------------------------------------------------------------


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    """NODE-5: --config naming no file is a usage error that names the file."""
    result = invoke("run", "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2
    assert "Error: the configuration is invalid:" in result.output
    assert "absent.toml: config file cannot be read" in result.output


def test_config_with_a_target_that_takes_none_exits_2(tmp_path: Path) -> None:
    """A spec (or a factory of no arguments) cannot take --config: exit 2, saying what can."""
    (tmp_path / "otpy.toml").write_text("")
    result = invoke("run", "trees:quick", "--config", str(tmp_path / "otpy.toml"))
    assert result.exit_code == 2
    assert "trees:quick does not take a configuration" in result.output
    assert "otpy.supervisors.node:node" in result.output


def test_load_target_passes_the_config_to_a_factory_of_one_argument(project: Path) -> None:
    """With a config, a factory of one argument is called with it, once."""
    write(
        project,
        "configured",
        """
        import trees

        seen = []

        def tree(config):
            seen.append(config)
            return trees.quick
        """,
    )
    config = object()
    assert load_target("configured:tree", config=config) is trees.quick
    import configured  # type: ignore[import-not-found]

    assert configured.seen == [config]


@pytest.mark.parametrize(
    ("level", "httpx_level"), [("info", logging.WARNING), ("debug", logging.NOTSET)]
)
def test_the_http_clients_request_lines_are_kept_out_of_info(
    level: str, httpx_level: int, telemetry: FakeTelemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At --log-level info httpx's line per request is not logged (a flood under load); at debug it is."""
    seen: list[int] = []
    monkeypatch.setattr(
        "otpy.cli._run.run_node",
        lambda *args, **kwargs: _record_level(seen),
    )
    result = invoke("run", "trees:quick", "--log-level", level)
    assert result.exit_code == 0, result.output
    assert seen == [httpx_level]
    assert logging.getLogger("httpx").level == logging.NOTSET  # restored after the run


async def _record_level(seen: list[int]) -> int:
    seen.append(logging.getLogger("httpx").level)
    return 0
