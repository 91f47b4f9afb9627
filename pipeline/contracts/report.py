"""Reports people act on: one line per problem, then a summary; text, JSON or GitHub.

Every problem carries a stable rule id (documented in :data:`RULES`), the file
it is about, the field path, what changed and whom it breaks::

    error[type-changed] schemas/shop.events/OrderPlaced.avsc: OrderPlaced.total:
        bytes(decimal 12,2) -> double: consumers on the new schema cannot read
        old events (FULL_TRANSITIVE, against main)

(one line in the output). ``--format github`` writes the same as GitHub
workflow commands, so the problems appear as annotations on the changed files.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

__all__ = ["RULES", "Format", "Problem", "Report", "Severity", "format_report"]

Format = Literal["text", "json", "github"]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


RULES: dict[str, str] = {
    # compatibility: translated from Apache Avro's incompatibility types
    "field-added-without-default": "a new field has no default, so old events cannot fill it",
    "field-removed-without-default": "a removed field has no default in the old schema",
    "type-changed": "a type changed to one the other side cannot read (no Avro promotion)",
    "enum-symbol-removed": "an enum lost symbols old events may hold, and has no default symbol",
    "enum-symbol-added": "an enum gained symbols the old schema does not know, and has no default",
    "union-branch-removed": "a union lost a branch old events may hold",
    "union-branch-added": "a union gained a branch the old schema cannot read",
    "name-changed": "a record, enum or fixed type was renamed without an alias",
    "fixed-size-changed": "a fixed type changed its size",
    # compatible for Avro, but worth a look
    "logical-type-changed": "same Avro encoding, different meaning (decimal scale, time unit, ...)",
    # the contract files
    "schema-invalid": "an .avsc file is not valid JSON or not a valid Avro schema",
    "schema-drift": "the committed .avsc differs from what the event model generates",
    "schema-missing": "an event model has no committed .avsc",
    "schema-orphaned": "an .avsc has no event model any more",
    "schema-removed": "a contract that exists in the compared version is gone",
    "model-invalid": "an event model cannot be expressed in Avro",
    # where the schemas are compared with
    "history-unavailable": "the git ref or history to compare with cannot be read",
    "registry-unreachable": "the schema registry did not answer",
    "registry-error": "the schema registry refused a request",
    "registry-not-latest": "the contract is registered, but the subject has newer versions",
    # the source database
    "source-table-missing": "a table the mapping rules read is gone",
    "source-column-missing": "a column the mapping rules read is gone",
    "source-column-type-changed": "a column the mapping rules read has another type",
    "source-unreachable": "the source database did not answer",
}


@dataclass(frozen=True)
class Problem:
    """One finding of a ``cdcflow schemas`` command."""

    rule: str
    """What kind of finding: a key of :data:`RULES` (``schema-drift``, ``field-removed``)."""
    file: str
    """The contract file, rule file or directory it is about."""
    message: str
    """What is wrong."""
    path: str = ""
    """The field path, where it is about one field (``OrderPlaced.lines[].unit_price``)."""
    impact: str = ""
    """Whom it breaks (``consumers on the new schema cannot read old events``)."""
    severity: Severity = Severity.ERROR
    level: str | None = None
    """The compatibility level it breaks (``BACKWARD_TRANSITIVE``)."""
    against: str | None = None
    """The versions compared with, comma-separated (a git ref, ``registry v3``)."""
    subject: str | None = None
    """The registry subject of the contract."""
    line: int | None = None
    """The line in ``file``, where known."""
    avro: str | None = None
    """Avro's own name for the incompatibility (``READER_FIELD_MISSING_DEFAULT_VALUE``)."""
    hint: str | None = None
    """What to do about it."""

    def text(self) -> str:
        """The one-line form: ``severity[rule] file: path: what: whom (level, against)``."""
        parts = [f"{self.severity.value}[{self.rule}] {self.file}"]
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        if self.impact:
            parts.append(self.impact)
        line = ": ".join(parts)
        context = ", ".join(
            p for p in (self.level, f"against {self.against}" if self.against else "") if p
        )
        return f"{line} ({context})" if context else line

    def key(self) -> tuple[str, str, str, str, str, str | None]:
        return (self.rule, self.file, self.path, self.message, self.impact, self.level)


@dataclass
class Report:
    """Problems found by one command, and what was looked at."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = "cdcflow schemas check"

    def add(self, problem: Problem) -> None:
        """Add one problem (see :meth:`extend`)."""
        self.extend([problem])

    def extend(self, problems: Iterable[Problem]) -> None:
        """Add problems; the same finding against several versions becomes one line."""
        index = {p.key(): i for i, p in enumerate(self.problems)}
        for problem in problems:
            at = index.get(problem.key())
            if at is None:
                index[problem.key()] = len(self.problems)
                self.problems.append(problem)
                continue
            known = self.problems[at]
            if (
                problem.against
                and known.against
                and problem.against not in known.against.split(", ")
            ):
                self.problems[at] = replace(known, against=f"{known.against}, {problem.against}")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        files = len(self.checked)
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.title}: {verdict}: {files} contract{'s' if files != 1 else ''} checked, "
            f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_report(report: Report, fmt: Format) -> str:
    """The report in one of the output formats (without a trailing newline)."""
    if fmt == "json":
        return json.dumps(
            {
                "ok": report.ok,
                "summary": report.summary(),
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "checked": report.checked,
                "notes": report.notes,
                "problems": [
                    {**asdict(p), "severity": p.severity.value, "text": p.text()}
                    for p in report.problems
                ],
            },
            indent=2,
        )
    lines: list[str] = []
    for problem in report.problems:
        if fmt == "github":
            lines.append(_github(problem))
        else:
            lines.append(problem.text())
            if problem.hint:
                lines.append(f"    hint: {problem.hint}")
    lines.extend(f"note: {note}" for note in report.notes)
    lines.append(report.summary())
    return "\n".join(lines)


def _github(problem: Problem) -> str:
    """A GitHub workflow command: ``::error file=...,line=...,title=...::message``."""
    props = [f"file={_escape_property(problem.file)}"]
    if problem.line:
        props.append(f"line={problem.line}")
    props.append(f"title={_escape_property(problem.rule)}")
    body = problem.text().split(" ", 1)[1]  # without "error[rule]": GitHub shows both
    if problem.hint:
        body += f"\nhint: {problem.hint}"
    return f"::{problem.severity.value} {','.join(props)}::{_escape_data(body)}"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")
