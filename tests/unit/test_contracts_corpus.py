"""The schema-change corpus, offline: cdcflow's verdict at every level, and its report text."""

from __future__ import annotations

import json

import pytest

from pipeline.contracts import Level, parse_schema
from tests.contracts_corpus import CASES, Case, problems, verdict


def test_corpus_is_large_and_unique() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_verdict(case: Case, level: Level) -> None:
    assert verdict(case, level) == (level in case.ok)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_report_text(case: Case) -> None:
    lines = tuple(p.text() for p in problems(case, Level.FULL_TRANSITIVE))
    assert lines == case.report


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_schemas_are_valid_avro(case: Case) -> None:
    for schema in (*case.history, case.proposed):
        parse_schema(json.dumps(schema), case.id)
