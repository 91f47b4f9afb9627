"""Compatibility of a new schema with earlier versions, by Apache Avro's own checker.

The verdict is always ``avro.compatibility.ReaderWriterCompatibilityChecker``'s
(the Python port of the Java ``SchemaCompatibility`` the registry runs):
cdcflow adds no rules of its own. What it adds is the reading of the result:

* The checker merges its findings into one result whose messages and
  locations are unordered sets, so several problems cannot be told apart.
  :func:`_check_pair` records each finding as the checker makes it (it wraps
  the module's ``incompatible`` while it runs) and keeps those that made it
  into the final result.
* When the checker compares the branches of a union it calls itself without
  a location, so a finding deep in a schema is reported at ``/``. The
  subclass passes the union's location down.
* When a union has no branch that reads a record, the checker only says
  "reader union lacking writer type: RECORD"; the findings of its attempt at
  the record with the same name say why, and are reported instead.
* Aliases are qualified with their namespace first: the spec allows relative
  aliases, Java resolves them, the Python checker compares them as written.

Each finding becomes a :class:`~pipeline.contracts.report.Problem` with a
stable rule id, the field path, what changed (old -> new) and whom it breaks.
Changes of a logical type (a decimal's scale, a timestamp's unit) are
compatible for Avro and the registry, since the bytes still decode; they are
reported as warnings, because the decoded value means something else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import avro.compatibility as avro_compat
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from pipeline.contracts.levels import Direction, Level
from pipeline.contracts.report import Problem, Report
from pipeline.contracts.schemafile import ParsedSchema, full_names
from pipeline.contracts.translate import (
    IMPACT,
    IMPACT_BOTH,
    AvroSchema,
    Finding,
    logical_changes,
    merge_branches,
    translate,
)

__all__ = ["Version", "check_compatibility", "is_compatible"]

_RECORDING = threading.Lock()


@dataclass(frozen=True)
class Version:
    """An earlier version of a schema and how to name it in a report (``main``, ``registry v3``)."""

    label: str
    schema: ParsedSchema


class _Checker(ReaderWriterCompatibilityChecker):
    """Avro's checker, with its verdicts unchanged; passes locations into union branches."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._at: list[list[str]] = []
        self.findings: list[Finding] = []

    def get_compatibility(
        self,
        reader: AvroSchema,
        writer: AvroSchema,
        reference_token: str = ReaderWriterCompatibilityChecker.ROOT_REFERENCE_TOKEN,
        location: list[str] | None = None,
    ) -> SchemaCompatibilityResult:
        if location is None and self._at:
            # A union branch: Avro passes no location. Use the union's own.
            here = self._at[-1]
            return super().get_compatibility(reader, writer, here[-1], here[:-1])
        return super().get_compatibility(reader, writer, reference_token, location)

    def calculate_compatibility(
        self, reader: AvroSchema, writer: AvroSchema, location: list[str]
    ) -> SchemaCompatibilityResult:
        self._at.append(location)
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._at.pop()


@contextmanager
def _recording(checker: _Checker) -> Iterator[None]:
    # The module-level helper every finding goes through; wrapped only while
    # this checker runs, under a lock, and always restored.
    original = avro_compat.incompatible

    def record(
        incompat_type: SchemaIncompatibilityType, message: str, location: list[str]
    ) -> SchemaCompatibilityResult:
        checker.findings.append(Finding(incompat_type, message, tuple(location[1:])))
        return original(incompat_type, message, location)

    with _RECORDING:
        avro_compat.incompatible = record
        try:
            yield
        finally:
            avro_compat.incompatible = original


def _parse_for_check(schema: ParsedSchema) -> AvroSchema:
    return avro.schema.make_avsc_object(full_names(schema.data))


def _check_pair(reader: AvroSchema, writer: AvroSchema) -> tuple[bool, list[Finding]]:
    checker = _Checker()
    with _recording(checker):
        result = checker.get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return True, []
    kept = [
        f
        for f in checker.findings
        if f.avro_location in result.locations and f.message in result.messages
    ]
    return False, _explain_unions(_unique(kept), checker.findings)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    return [f for f in findings if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]


def _explain_unions(kept: list[Finding], everything: list[Finding]) -> list[Finding]:
    """Replace "union lacks a RECORD/ARRAY/MAP branch" by the reasons found inside it."""
    out: list[Finding] = []
    for finding in kept:
        missing = finding.message.rsplit(" ", 1)[-1].lower()
        if finding.kind is SchemaIncompatibilityType.missing_union_branch and missing in _COMPLEX:
            base = finding.location
            if base and base[-1].isdigit() and base[-2:-1] != ("fields",):
                base = base[:-1]  # the writer branch index
            inner = [
                f
                for f in everything
                if len(f.location) > len(base)
                and f.location[: len(base)] == base
                and f.location[len(base)]
                in ("fields", "symbols", "name", "size", "items", "values")
            ]
            if inner:
                out.extend(f for f in _unique(inner) if f not in out)
                continue
        out.append(finding)
    return out


_COMPLEX = frozenset({"record", "error", "array", "map", "enum", "fixed"})


def is_compatible(reader: ParsedSchema, writer: ParsedSchema) -> bool:
    """Whether ``reader`` can read what ``writer`` wrote (Apache Avro's verdict)."""
    return _check_pair(_parse_for_check(reader), _parse_for_check(writer))[0]


def check_compatibility(
    new: ParsedSchema,
    history: Sequence[Version],
    level: Level,
    *,
    file: str,
    subject: str | None = None,
) -> list[Problem]:
    """Check ``new`` against the earlier versions (oldest first) at ``level``.

    Non-transitive levels compare with the last version only, transitive ones
    with each. Returns one problem per finding (errors: Avro says incompatible)
    plus warnings for changed logical types; empty when ``new`` is compatible.
    """
    if level is Level.NONE or not history:
        return []
    targets = list(history) if level.transitive else [history[-1]]
    new_schema = _parse_for_check(new)
    problems: list[Problem] = []
    for version in targets:
        old_schema = _parse_for_check(version.schema)
        for direction in level.directions:
            reader, writer = (
                (new_schema, old_schema)
                if direction is Direction.BACKWARD
                else (old_schema, new_schema)
            )
            _, findings = _check_pair(reader, writer)
            drafts = [translate(f, reader, writer, direction, new) for f in findings]
            problems.extend(
                d.with_context(
                    file=file, level=level.value, against=version.label, subject=subject, new=new
                )
                for d in merge_branches(drafts)
            )
        problems.extend(
            p.with_context(
                file=file, level=level.value, against=version.label, subject=subject, new=new
            )
            for p in logical_changes(old_schema, new_schema, new)
        )
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per finding: the same change breaking both directions says so once."""
    impacts: dict[tuple[object, ...], set[str]] = {}
    for p in problems:
        impacts.setdefault(_sans_impact(p), set()).add(p.impact)
    merged: list[Problem] = []
    for p in problems:
        if impacts[_sans_impact(p)] >= set(IMPACT.values()):
            p = replace(p, impact=IMPACT_BOTH)
        merged.append(p)
    report = Report()
    report.extend(merged)
    return report.problems


def _sans_impact(p: Problem) -> tuple[object, ...]:
    return (p.rule, p.file, p.path, p.message, p.level, p.against)
