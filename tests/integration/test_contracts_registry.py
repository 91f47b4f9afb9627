"""The schema-change corpus against the real registry: its verdict equals cdcflow's, at every level.

For each case and level, a subject of its own (unique per run) gets the
case's history registered (under NONE, so every earlier version goes in), then
the level (``PUT /config/{subject}``), and then two questions:

1. ``POST /compatibility/subjects/{subject}/versions/latest``: the registry
   compares with the latest version only (Apicurio and Confluent alike, even
   at a transitive level); cdcflow is asked the same (``latest_only``).
2. Registering the proposed version: the registry applies the level in full
   (transitive levels: every version) and accepts or refuses (409); cdcflow's
   verdict at the level must be the same.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from pipeline.contracts import (
    CompatibilityConfig,
    ContractRegistry,
    Level,
    Report,
    contracts_for,
    discover_events,
    format_report,
    render,
)
from pipeline.contracts.checks import Workspace, check_registry, generate, read_contracts, register
from pipeline.contracts.source import ColumnNeed, TypeNeed, check_source, live_columns
from pipeline.errors import RegistryError
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.contracts_corpus import CASES, Case, verdict

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def registry(stack: LocalStack, settings: Settings) -> ContractRegistry:
    return ContractRegistry(settings.registry, timeout_s=30, retries=2)


@pytest.fixture
def subject(registry: ContractRegistry, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"cdcflow-it-{RUN}-{request.node.callspec.id}"
    yield name
    # A cleanup that fails leaves a uniquely named subject behind, nothing more.
    with contextlib.suppress(RegistryError):
        registry.delete_subject(name, permanent=True)


def _accepted(registry: ContractRegistry, subject: str, text: str) -> bool:
    try:
        registry.register(subject, text)
    except RegistryError as exc:
        if "HTTP 409" in exc.message:
            return False
        raise
    return True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("level", list(Level), ids=lambda lv: lv.value)
def test_registry_agrees_with_cdcflow(
    registry: ContractRegistry, subject: str, case: Case, level: Level
) -> None:
    history = [render(schema) for schema in case.history]
    registry.register(subject, history[0])
    registry.set_level(subject, Level.NONE)
    for text in history[1:]:
        registry.register(subject, text)
    registry.set_level(subject, level)
    assert registry.level(subject) is level
    proposed = render(case.proposed)

    latest = registry.test_compatibility(subject, proposed, "latest")
    registered = _accepted(registry, subject, proposed)

    ours_latest = verdict(case, level, latest_only=True)
    ours = verdict(case, level)
    assert ours == (level in case.ok)  # the corpus's own expectation (also a unit test)
    assert (latest, registered) == (ours_latest, ours), (
        f"{case.id} at {level.value}: registry latest={latest} register={registered}, "
        f"cdcflow latest={ours_latest} level={ours}"
    )


# -- register and check, for real


@pytest.fixture
def workspace(tmp_path: Path, registry: ContractRegistry) -> Iterator[Workspace]:
    """The test-only widget contracts, under subjects unique to this run."""
    config = CompatibilityConfig()
    events = discover_events(["tests.unit.contract_models"])
    contracts = [
        replace(c, subject=f"cdcflow-it-{RUN}-{c.subject}")
        for c in contracts_for(events, tmp_path, config)
    ]
    ws = Workspace(tmp_path, config, contracts)
    generate(ws, Report())
    yield ws
    for contract in contracts:
        with contextlib.suppress(RegistryError):
            registry.delete_subject(contract.subject, permanent=True)


def test_register_is_idempotent_and_refuses_incompatible(
    registry: ContractRegistry, workspace: Workspace
) -> None:
    report = Report()
    actions = register(workspace, read_contracts(workspace, report), registry, report)
    assert report.ok, format_report(report, "text")
    assert [a.outcome for a in actions] == ["registered", "registered"]
    for contract in workspace.contracts:
        assert registry.level(contract.subject) is Level.FULL_TRANSITIVE

    # Apicurio stores the text rewritten (compact, redundant namespaces dropped):
    # the second run must still see "already registered".
    again = register(workspace, read_contracts(workspace, Report()), registry, Report())
    assert [a.outcome for a in again] == ["unchanged", "unchanged"]

    # The subject holds a version cdcflow's contract cannot live with (registered
    # from another branch, say): register refuses, and sends nothing.
    last = workspace.contracts[-1]
    registry.delete_subject(last.subject, permanent=True)
    other = json.loads(last.path.read_text())
    reason = next(f for f in other["fields"] if f["name"] == "reason")
    reason["type"] = "boolean"
    registry.register(last.subject, json.dumps(other))
    before = registry.versions(last.subject)

    report = Report()
    actions = register(workspace, read_contracts(workspace, report), registry, report)
    assert [a.outcome for a in actions] == ["unchanged", "refused"]
    assert registry.versions(last.subject) == before  # nothing was sent
    assert [p.text() for p in report.errors] == [
        f"error[union-branch-removed] {last.path}: WidgetScrapped.reason: "
        "boolean -> union(string, long): no branch for boolean any more: "
        "consumers on the new schema cannot read old events (FULL_TRANSITIVE, against registry v1)",
        f"error[type-changed] {last.path}: WidgetScrapped.reason: "
        "boolean -> union(string, long) (string, long in new events cannot be read as boolean): "
        "consumers on the old schema cannot read new events (FULL_TRANSITIVE, against registry v1)",
    ]

    report = Report()
    check_registry(workspace, read_contracts(workspace, report), registry, report)
    assert [p.rule for p in report.errors] == ["union-branch-removed", "type-changed"]


# -- the source tables, for real (a scratch schema, not the shop's tables)


def test_source_drift_against_live_tables(settings: Settings, stack: LocalStack) -> None:
    schema = f"cdcflow_it_{RUN}"
    table = f"{schema}.t"
    needs = [
        ColumnNeed(
            table,
            "price",
            "r",
            "rules.yaml",
            "E.price",
            TypeNeed("Decimal(12,2)", decimal=(12, 2)),
            True,
        ),
        ColumnNeed(table, "note", "r", "rules.yaml"),
    ]
    with psycopg.connect(settings.source.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(
                f"CREATE TABLE {table} (id bigint, price numeric(12,2) NOT NULL, note text)"
            )
            report = Report()
            check_source(needs, live_columns(settings.source.dsn(), [table]), report)
            assert report.problems == []

            conn.execute(f"ALTER TABLE {table} ALTER COLUMN price TYPE numeric(14,4)")
            conn.execute(f"ALTER TABLE {table} DROP COLUMN note")
            report = Report()
            check_source(needs, live_columns(settings.source.dsn(), [table]), report)
            assert [p.text() for p in report.problems] == [
                f"error[source-column-type-changed] rules.yaml: {table}.price: "
                "column is numeric(14,4), E.price needs numeric with at most 2 decimals "
                "and 10 integer digits (for Decimal(12,2)): values that do not fit fail the rule",
                f"error[source-column-missing] rules.yaml: {table}.note: "
                f"column is gone; rule r reads it: the rule fails on every change of {table}",
            ]
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
