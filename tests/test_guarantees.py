"""docs/guarantees.md and its citations: every id cited resolves, and only the current ids are used.

Docstrings, comments, test names and the docs cite guarantees by id (``SUP-11``,
``DL-8..DL-10``, ``test_prs_5_...``). These tests read the whole repository, so a
citation that points nowhere, an id listed twice, or a citation in the checklist
style the ids replaced (a bare letter and number) fails here, not in a reader's head.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

ROOT = Path(__file__).resolve().parent.parent
GUARANTEES = ROOT / "docs" / "guarantees.md"
SCANNED = ("otpy", "supervisors", "tests", "docs", "runbooks", "examples", "benchmarks")

#: Each section of docs/guarantees.md and the group its ids belong to.
SECTIONS = {
    "Supervision": "SUP",
    "Actors and messaging": "ACT",
    "Pressure": "PRS",
    "Dead letters": "DL",
    "Replay": "DL",
    "Outbound gateway": "GW",
    "Ingest": "IN",
    "Node": "NODE",
    "Admin API": "ADM",
    "Telemetry": "TEL",
}
NOT_GUARANTEED = "Not guaranteed (yet)"
GROUPS = "|".join(sorted(set(SECTIONS.values())))

ENTRY = re.compile(r"^- \*\*(?P<id>[^*]+)\*\*(?P<withdrawn> \*\(withdrawn\)\*)? (?P<text>\S.*)$")
WELL_FORMED = re.compile(rf"(?:{GROUPS})-[1-9][0-9]*")
CITATION = re.compile(rf"\b(?P<first>(?:{GROUPS})-[0-9]+)(?:\.\.(?P<last>(?:{GROUPS})-[0-9]+))?\b")
TEST_NAME = re.compile(r"\b(?:test_|Test)\w*")
NAME_CITATION = re.compile(rf"(?<=_)(?P<group>{GROUPS.lower()})_(?P<number>[0-9]+)(?=_|$)")
# The ids the current ones replaced: one letter and a number, in prose or in a test name.
OLD_STYLE = re.compile(r"(?<![\w.])[SAPDTR][1-9][0-9]?(?!\w)")
OLD_STYLE_NAME = re.compile(r"(?<=_)[SAPDTRsapdtr][1-9][0-9]?(?=_|$)")
# Pointers into documents that are not in the repository.
OUTSIDE = re.compile(
    r"REFERENCE-SOURCE[S]|REFERENCE\.md|STYLE\.md|STYLE [0-9]|OTP #[0-9]|jido [0-9]"
    r"|\bresearch/|\.\./shared|/wor[k]/"
)


@attrs.frozen
class Entry:
    id: str
    section: str
    withdrawn: bool
    line: int


@attrs.frozen
class Prose:
    """A piece of a file that is prose (a comment, a string, markdown) or a test's name."""

    path: Path
    line: int
    text: str
    is_name: bool

    def where(self, offset: int) -> str:
        line = self.line + self.text.count("\n", 0, offset)
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{shown}:{line}"

    def names(self) -> Iterator[Prose]:
        """This test name, or the test names mentioned in this prose."""
        if self.is_name:
            yield self
            return
        for match in TEST_NAME.finditer(self.text):
            line = self.line + self.text.count("\n", 0, match.start())
            yield Prose(self.path, line, match.group(0), is_name=True)


def read_entries() -> list[Entry]:
    entries: list[Entry] = []
    section = ""
    for number, line in enumerate(GUARANTEES.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        match = ENTRY.match(line)
        if match is not None:
            entries.append(Entry(match["id"], section, match["withdrawn"] is not None, number))
    return entries


def active_ids() -> set[str]:
    return {entry.id for entry in read_entries() if not entry.withdrawn}


def source_files() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".md") and path.is_file():
                yield path


def prose_of(path: Path) -> Iterator[Prose]:
    """The comments, strings and test names of a Python file; all of a markdown file."""
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        yield Prose(path, 1, source, is_name=False)
        return
    text_tokens = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in text_tokens:
            yield Prose(path, token.start[0], token.string, is_name=False)
        elif token.type == tokenize.NAME and TEST_NAME.fullmatch(token.string):
            yield Prose(path, token.start[0], token.string, is_name=True)


def citations(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """Every guarantee cited in *paths*: ``(where, id or range)``."""
    for path in paths:
        for prose in prose_of(path):
            if not prose.is_name:
                for match in CITATION.finditer(prose.text):
                    yield prose.where(match.start()), match.group(0)
            for name in prose.names():
                for match in NAME_CITATION.finditer(name.text):
                    yield name.where(0), f"{match['group'].upper()}-{match['number']}"


def old_style(paths: Iterable[Path]) -> Iterator[str]:
    """Every citation in the checklist style: where, and what."""
    for path in paths:
        for prose in prose_of(path):
            if not prose.is_name:
                for match in OLD_STYLE.finditer(prose.text):
                    yield f"{prose.where(match.start())}: {match.group(0)}"
            for name in prose.names():
                for match in OLD_STYLE_NAME.finditer(name.text):
                    yield f"{name.where(0)}: {match.group(0)} in {name.text}"


def old(letter: str, number: int) -> str:
    """A checklist-style id, built here so that this file holds none as text."""
    return f"{letter}{number}"


def test_the_guarantees_page_lists_well_formed_unique_ids_in_their_sections() -> None:
    """Each entry's id is GROUP-number, listed once, under the section of its group."""
    entries = read_entries()
    assert len(entries) >= 50, "docs/guarantees.md lists fewer guarantees than otpy makes"
    seen: dict[str, int] = {}
    for entry in entries:
        assert WELL_FORMED.fullmatch(entry.id), f"line {entry.line}: malformed id {entry.id!r}"
        assert entry.id not in seen, f"line {entry.line}: {entry.id} is listed at {seen[entry.id]}"
        seen[entry.id] = entry.line
        assert entry.section in SECTIONS, f"line {entry.line}: {entry.id} under {entry.section!r}"
        assert entry.id.split("-")[0] == SECTIONS[entry.section], (
            f"line {entry.line}: {entry.id} is under {entry.section!r}"
        )


def test_ids_increase_within_each_group() -> None:
    """New guarantees take the next number; nothing is renumbered, so each group reads in order."""
    last: dict[str, int] = {}
    for entry in read_entries():
        group, number = entry.id.split("-")
        assert int(number) > last.get(group, 0), f"line {entry.line}: {entry.id} is out of order"
        last[group] = int(number)


def test_what_is_not_guaranteed_has_no_ids() -> None:
    """The not-guaranteed section names behaviours without giving them ids."""
    text = GUARANTEES.read_text(encoding="utf-8")
    heading = f"## {NOT_GUARANTEED}\n"
    assert heading in text
    rest = text.split(heading, 1)[1]
    assert not any(ENTRY.match(line) for line in rest.splitlines())


def test_every_cited_id_resolves_to_a_guarantee() -> None:
    """Every id or range cited in code, tests and docs is a guarantee that is not withdrawn."""
    active = active_ids()
    found = list(citations(p for p in source_files() if p != GUARANTEES))
    assert len(found) > 500, "the scan found almost no citations: is it reading the files?"
    unresolved: list[str] = []
    for where, cited in found:
        first, _, last = cited.partition("..")
        ends = (first, last) if last else (first,)
        unresolved += [
            f"{where}: {cited} ({end} is not a guarantee)" for end in ends if end not in active
        ]
        if last:
            (group, a), (other, b) = first.split("-"), last.split("-")
            if group != other or int(a) >= int(b):
                unresolved.append(f"{where}: {cited} is not a range within one group")
    assert unresolved == []


def test_no_checklist_style_id_is_left() -> None:
    """No prose or test name cites a guarantee the old way, a bare letter and number."""
    assert list(old_style(source_files())) == []


def test_nothing_points_outside_the_repository() -> None:
    """Code and docs cite what a reader of the repository can open."""
    outside = [
        f"{prose.where(m.start())}: {m.group(0)}"
        for path in source_files()
        for prose in prose_of(path)
        for m in OUTSIDE.finditer(prose.text)
    ]
    assert outside == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("restarts (SUP-5); replays (DL-8..DL-10)", ["SUP-5", "DL-8..DL-10"]),
        ("PRS-7, PRS-8/DL-1", ["PRS-7", "PRS-8", "DL-1"]),
        ("test_sup_11_child_api and test_prs_6_prs_7_admission", ["SUP-11", "PRS-6", "PRS-7"]),
        ("HTTP-503, SUPER-1, XDL-2, test_model_1_x, sup_3 outside a test name", []),
    ],
)
def test_the_citation_scan_reads_each_form(tmp_path: Path, text: str, expected: list[str]) -> None:
    """The twin of the resolution check: each citation form is found, and look-alikes are not."""
    cited = tmp_path / "cited.md"
    cited.write_text(text, encoding="utf-8")
    assert [found for _, found in citations([cited])] == expected


def test_the_old_style_scan_sees_old_ids_and_nothing_else(tmp_path: Path) -> None:
    """The twin of the guard: old ids in prose and test names are caught; T0, hex and new ids are not."""
    module = tmp_path / "test_cited.py"
    module.write_text(
        f"T0 = 0xA1\n\n\ndef test_{old('s', 11)}_x() -> None:\n"
        f'    """Restarts ({old("S", 5)}), ranges {old("D", 8)}-{old("D", 10)}, '
        f'lists {old("P", 7)}/{old("P", 8)}; SUP-5, DL-10, v1.S2."""\n',
        encoding="utf-8",
    )
    assert [found.split(": ", 1)[1] for found in old_style([module])] == [
        f"{old('s', 11)} in test_{old('s', 11)}_x",
        old("S", 5),
        old("D", 8),
        old("D", 10),
        old("P", 7),
        old("P", 8),
    ]
