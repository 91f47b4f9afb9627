"""The schema-change corpus, offline: cdcflow's verdict at every level, and its report text."""

from __future__ import annotations

import json

import pytest

from pipeline.contracts import Level, Problem, Severity, Version, check_compatibility, parse_schema
from pipeline.contracts.generate import render
from tests.contracts_corpus import CASES, FILE, Case


def verdict(case: Case, level: Level) -> bool:
    """cdcflow's verdict: no errors (warnings do not fail a check)."""
    problems = check(case, level)
    return not [p for p in problems if p.severity is Severity.ERROR]


def check(case: Case, level: Level) -> list[Problem]:
    history = [
        Version(f"v{i}", parse_schema(render(schema), f"v{i}"))
        for i, schema in enumerate(case.history, start=1)
    ]
    new = parse_schema(render(case.proposed), FILE)
    return check_compatibility(new, history, level, file=FILE)


def test_corpus_is_large_and_unique() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_verdict(case: Case, level: Level) -> None:
    assert verdict(case, level) == (level in case.ok)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_report_text(case: Case) -> None:
    lines = tuple(p.text() for p in check(case, Level.FULL_TRANSITIVE))
    assert lines == case.report


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_schemas_are_valid_avro(case: Case) -> None:
    for schema in (*case.history, case.proposed):
        parse_schema(json.dumps(schema), case.id)
