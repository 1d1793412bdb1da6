"""The telemetry names: one module holds them all, and docs/telemetry.md lists exactly those (TEL-1)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import otpy.telemetry

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "telemetry.md"
NAMES_MODULE = ROOT / "otpy" / "telemetry" / "_names.py"

NAME_CONSTANT = re.compile(r"^(SPAN|ATTR|METRIC)_[A-Z0-9_]+$")
KINDS = {"SPAN": {"span"}, "ATTR": {"attribute"}, "METRIC": {"counter", "histogram", "gauge"}}

#: Values two constants may share on purpose, each with the reason; none do today.
SHARED_ON_PURPOSE: dict[str, str] = {}


def exported_names() -> dict[str, str]:
    """The SPAN_/ATTR_/METRIC_ constants otpy.telemetry exports, with their values."""
    return {
        name: getattr(otpy.telemetry, name)
        for name in otpy.telemetry.__all__
        if NAME_CONSTANT.match(name)
    }


def table_rows() -> list[tuple[str, str, str]]:
    """``(value, constant, kind)`` for each row of the table in docs/telemetry.md."""
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Name | Constant |"))
    rows: list[tuple[str, str, str]] = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        value, constant, kind = (cell.strip("`") for cell in cells[:3])
        rows.append((value, constant, kind))
    return rows


def test_the_table_lists_exactly_the_exported_names() -> None:
    """Every exported name has one row in docs/telemetry.md, and every row is an exported name."""
    constants = [constant for _, constant, _ in table_rows()]
    assert len(constants) == len(set(constants)), "a constant is listed twice"
    assert set(constants) == set(exported_names())


def test_each_row_shows_its_constant_value_and_kind() -> None:
    """A row's name is its constant's value, and its kind matches the constant's prefix."""
    names = exported_names()
    for value, constant, kind in table_rows():
        assert names[constant] == value, constant
        assert kind in KINDS[constant.split("_", 1)[0]], constant


def test_the_table_is_not_empty() -> None:
    """The parser found the table: a renamed header would otherwise make the checks vacuous."""
    assert len(table_rows()) == len(exported_names()) > 50


def test_moved_names_keep_their_values() -> None:
    """The names that moved here from pressure and deadletter in 0.2 kept the values dashboards query."""
    pinned = {
        "SPAN_PRESSURE_TRANSITION": "otpy.pressure.transition",
        "ATTR_PRESSURE_COMPONENT": "otpy.pressure.component",
        "ATTR_PRESSURE_QUEUE": "otpy.pressure.queue",
        "ATTR_PRESSURE_PARTITION": "otpy.pressure.partition",
        "ATTR_PRESSURE_OLD_LEVEL": "otpy.pressure.old_level",
        "ATTR_PRESSURE_NEW_LEVEL": "otpy.pressure.new_level",
        "ATTR_PRESSURE_DEPTH": "otpy.pressure.depth",
        "ATTR_PRESSURE_CAPACITY": "otpy.pressure.capacity",
        "ATTR_PRESSURE_RATIO": "otpy.pressure.ratio",
        "ATTR_PRESSURE_REASON": "otpy.pressure.reason",
        "ATTR_PRESSURE_PRIORITY": "otpy.pressure.priority",
        "METRIC_PRESSURE_DEPTH": "otpy.pressure.queue.depth",
        "METRIC_PRESSURE_CAPACITY": "otpy.pressure.queue.capacity",
        "METRIC_PRESSURE_TRANSITIONS": "otpy.pressure.transitions",
        "METRIC_PRESSURE_DROPS": "otpy.pressure.drops",
        "METRIC_PRESSURE_THROTTLE": "otpy.pressure.throttle_time",
        "SPAN_DEADLETTER_WRITE": "otpy.deadletter.write",
        "ATTR_DEADLETTER_COUNT": "otpy.deadletter.count",
        "ATTR_DEADLETTER_STORE": "otpy.deadletter.store",
        "ATTR_DEADLETTER_ID": "otpy.deadletter.id",
        "ATTR_DEADLETTER_KEY": "otpy.deadletter.key",
        "ATTR_DEADLETTER_SOURCE": "otpy.deadletter.source",
        "ATTR_DEADLETTER_STATUS": "otpy.deadletter.status",
        "ATTR_DEADLETTER_RULE": "otpy.deadletter.rule",
        "ATTR_DEADLETTER_DROP_REASON": "otpy.deadletter.drop_reason",
        "METRIC_DEADLETTER_CAPTURED": "otpy.deadletter.captured",
        "METRIC_DEADLETTER_EVICTIONS": "otpy.deadletter.evictions",
        "METRIC_DEADLETTER_CAPTURE_DROPPED": "otpy.deadletter.capture_dropped",
        "SPAN_DEADLETTER_REPLAY": "otpy.deadletter.replay",
        "SPAN_DEADLETTER_RECLAIM": "otpy.deadletter.reclaim",
        "ATTR_REPLAY_OUTCOME": "otpy.replay.outcome",
        "ATTR_REPLAY_PARTITION": "otpy.replay.partition",
        "ATTR_REPLAY_ATTEMPT": "otpy.replay.attempt",
        "ATTR_REPLAY_FORCE": "otpy.replay.force",
        "ATTR_REPLAY_RESUBMIT": "otpy.replay.resubmit",
        "METRIC_REPLAY_OUTCOMES": "otpy.replay.outcomes",
    }
    assert {name: getattr(otpy.telemetry, name) for name in pinned} == pinned


def test_no_two_constants_share_a_value() -> None:
    """Each value has one constant, so a dashboard query maps back to one name."""
    by_value: dict[str, list[str]] = {}
    for name, value in exported_names().items():
        by_value.setdefault(value, []).append(name)
    shared = {value: names for value, names in by_value.items() if len(names) > 1}
    assert set(shared) == set(SHARED_ON_PURPOSE), shared


#: The names semantic conventions define, which otpy reuses rather than namespacing.
SEMANTIC_CONVENTIONS = {
    "ATTR_ERROR_TYPE",
    "SPAN_GATEWAY_SEND",  # the operation: the span is named "send {destination}"
    "SPAN_INGEST_RECEIVE",  # the operation: the span is named "receive {route}"
    "ATTR_MESSAGING_SYSTEM",
    "ATTR_MESSAGING_OPERATION_NAME",
    "ATTR_MESSAGING_OPERATION_TYPE",
    "ATTR_MESSAGING_DESTINATION_NAME",
    "ATTR_MESSAGING_MESSAGE_ID",
    "ATTR_HTTP_RESPONSE_STATUS_CODE",
}


def test_values_are_in_the_otpy_namespace() -> None:
    """Every value is otpy.*, except the semantic conventions' names otpy reuses."""
    outside = {name for name, value in exported_names().items() if not value.startswith("otpy.")}
    assert outside == SEMANTIC_CONVENTIONS


def _module_level_name_constants(path: Path) -> list[str]:
    """The module-level names in *path* that look like telemetry names, underscored or not."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        found.extend(
            target.id
            for target in targets
            if isinstance(target, ast.Name) and NAME_CONSTANT.match(target.id.lstrip("_"))
        )
    return found


def test_names_are_defined_only_in_the_names_module() -> None:
    """No other module defines its own SPAN_/ATTR_/METRIC_ constant: every name has one home."""
    elsewhere = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "otpy").rglob("*.py"))
        if path != NAMES_MODULE and (found := _module_level_name_constants(path))
    }
    assert elsewhere == {}


def test_the_names_module_defines_what_the_package_exports() -> None:
    """The names module and the package agree: nothing defined there is left unexported."""
    assert set(_module_level_name_constants(NAMES_MODULE)) == set(exported_names())
