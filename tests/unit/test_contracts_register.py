"""``register`` against an in-memory registry; report formats; the source check with fake tables."""

from __future__ import annotations

import json
import textwrap
import types
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.contracts import CompatibilityConfig, Level, Problem, Report, Severity, format_report
from pipeline.contracts.catalog import contracts_for, discover_events
from pipeline.contracts.checks import Workspace, generate, read_contracts, register
from pipeline.contracts.source import Column, ColumnNeed, check_source, column_needs
from pipeline.domain import load_domain
from pipeline.events import DomainEvent
from pipeline.mapping import Rules
from pipeline.mapping.yaml_rules import compile_rules
from pipeline.serde.registry import RegistryUnavailable


class FakeRegistry:
    """Subjects and levels in memory; counts what was sent."""

    def __init__(self) -> None:
        self.subjects: dict[str, list[str]] = {}
        self.levels: dict[str, Level] = {}
        self.sent: list[tuple[str, str]] = []
        self.down = False

    def _answer(self) -> None:
        if self.down:
            raise RegistryUnavailable("schema registry at fake did not answer")

    def history(self, subject: str) -> list[tuple[int, str]]:
        self._answer()
        return list(enumerate(self.subjects.get(subject, []), start=1))

    def level(self, subject: str) -> Level | None:
        self._answer()
        return self.levels.get(subject)

    def set_level(self, subject: str, level: Level) -> None:
        self._answer()
        self.sent.append(("level", subject))
        self.levels[subject] = level

    def register(self, subject: str, text: str) -> tuple[int, int | None]:
        self._answer()
        self.sent.append(("register", subject))
        # stored compactly and without redundant namespaces, as Apicurio does
        self.subjects.setdefault(subject, []).append(json.dumps(json.loads(text)))
        return len(self.sent), None


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    events = discover_events(["tests.unit.contract_models"])
    workspace = Workspace(
        tmp_path, CompatibilityConfig(), contracts_for(events, tmp_path, CompatibilityConfig())
    )
    generate(workspace, Report())
    return workspace


def test_register_is_idempotent(ws: Workspace) -> None:
    fake = FakeRegistry()
    report = Report()
    actions = register(ws, read_contracts(ws, report), fake, report)  # type: ignore[arg-type]
    assert report.ok
    assert [a.outcome for a in actions] == ["registered", "registered"]
    assert all(level is Level.FULL_TRANSITIVE for level in fake.levels.values())
    sent = len(fake.sent)

    again = register(ws, read_contracts(ws, Report()), fake, Report())  # type: ignore[arg-type]
    assert [a.outcome for a in again] == ["unchanged", "unchanged"]
    assert len(fake.sent) == sent


def test_register_refuses_drift(ws: Workspace) -> None:
    path = ws.contracts[0].path
    path.write_text(path.read_text().replace('"type": "double"', '"type": "float"'))
    fake = FakeRegistry()
    report = Report()
    assert register(ws, read_contracts(ws, report), fake, report) == []  # type: ignore[arg-type]
    assert [p.rule for p in report.errors] == ["schema-drift"]
    assert fake.sent == []


def test_register_refuses_an_incompatible_version_before_sending(ws: Workspace) -> None:
    fake = FakeRegistry()
    contract = ws.contracts[0]
    registered = contract.path.read_text().replace(
        '"name": "size",\n      "type": "long"', '"name": "size",\n      "type": "string"'
    )
    fake.subjects[contract.subject] = [registered]
    report = Report()
    actions = register(ws, read_contracts(ws, report), fake, report)  # type: ignore[arg-type]
    assert [a.outcome for a in actions] == ["refused", "registered"]
    assert ("register", contract.subject) not in fake.sent
    assert report.errors[0].text() == (
        f"error[type-changed] {contract.path}: WidgetMade.size: string -> long: "
        "consumers on either schema cannot read the other's events "
        "(FULL_TRANSITIVE, against registry v1)"
    )


def test_register_sets_a_changed_level_only(ws: Workspace) -> None:
    fake = FakeRegistry()
    register(ws, read_contracts(ws, Report()), fake, Report())  # type: ignore[arg-type]
    subject = ws.contracts[0].subject
    fake.levels[subject] = Level.NONE
    actions = register(ws, read_contracts(ws, Report()), fake, Report())  # type: ignore[arg-type]
    assert [a.outcome for a in actions] == ["level-set", "unchanged"]
    assert fake.levels[subject] is Level.FULL_TRANSITIVE


def test_register_with_the_registry_down(ws: Workspace) -> None:
    fake = FakeRegistry()
    fake.down = True
    report = Report()
    register(ws, read_contracts(ws, report), fake, report)  # type: ignore[arg-type]
    assert [p.rule for p in report.errors] == ["registry-unreachable"]


# -- report formats


def sample() -> Report:
    report = Report()
    report.add(
        Problem(
            rule="type-changed",
            file="schemas/a,b.avsc",
            path="E.total",
            message="bytes(decimal 12,2) -> double",
            impact="consumers on the old schema cannot read new events",
            level="FULL",
            against="main",
            line=12,
            hint="100% sure:\nno",
        )
    )
    report.add(
        Problem(rule="schema-orphaned", file="x.avsc", message="old", severity=Severity.WARNING)
    )
    report.checked.extend(["a", "b"])
    return report


def test_text_format() -> None:
    assert format_report(sample(), "text").splitlines() == [
        "error[type-changed] schemas/a,b.avsc: E.total: bytes(decimal 12,2) -> double: "
        "consumers on the old schema cannot read new events (FULL, against main)",
        "    hint: 100% sure:\nno".splitlines()[0],
        "no",
        "warning[schema-orphaned] x.avsc: old",
        "cdcflow schemas check: FAILED: 2 contracts checked, 1 error, 1 warning",
    ]
    assert sample().exit_code == 1


def test_github_format_escapes() -> None:
    first = format_report(sample(), "github").splitlines()[0]
    assert first == (
        "::error file=schemas/a%2Cb.avsc,line=12,title=type-changed::schemas/a,b.avsc: E.total: "
        "bytes(decimal 12,2) -> double: consumers on the old schema cannot read new events "
        "(FULL, against main)%0Ahint: 100%25 sure:%0Ano"
    )


def test_json_format() -> None:
    data = json.loads(format_report(sample(), "json"))
    assert (data["ok"], data["errors"], data["warnings"]) == (False, 1, 1)
    assert data["problems"][0]["line"] == 12
    assert data["problems"][0]["text"].startswith("error[type-changed]")


def test_same_problem_against_several_versions_is_one_line() -> None:
    report = Report()
    p = Problem(rule="r", file="f", message="m", against="v1")
    report.extend([p, Problem(rule="r", file="f", message="m", against="v2")])
    assert [x.against for x in report.problems] == ["v1, v2"]


# -- source drift


def test_shop_rules_declare_their_columns() -> None:
    needs, notes = column_needs(load_domain("pipeline.domains.shop").rules)
    assert notes == []  # every Python rule says what it reads
    price = next(n for n in needs if (n.table, n.column) == ("public.products", "price"))
    assert price.target == "ProductAdded.price"
    assert price.need is not None and price.need.decimal == (12, 2)
    assert ("public.orders", "cancel_reason") in {(n.table, n.column) for n in needs}


def test_source_problems() -> None:
    needs, _ = column_needs(load_domain("pipeline.domains.shop").rules)
    live: dict[str, dict[str, Column]] = {}
    for need in needs:
        live.setdefault(need.table, {})[need.column] = Column("text", False)
    products = live["public.products"]
    products["price"] = Column("numeric", False, 14, 4)
    products["active"] = Column("boolean", True)
    del products["sku"]
    del live["public.payments"]
    report = Report()
    check_source(needs, live, report)
    texts = [p.text() for p in report.problems]
    assert (
        "error[source-column-type-changed] pipeline/domains/shop/rules.yaml: "
        "public.products.price: column is numeric(14,4), "
        "ProductAdded.price needs numeric with at most 2 decimals and 10 integer digits "
        "(for Decimal(12,2)): values that do not fit fail the rule"
    ) in texts
    assert any("source-column-missing" in t and "public.products.sku" in t for t in texts)
    assert any(
        "warning[source-column-type-changed]" in t and "active: column is nullable" in t
        for t in texts
    )
    assert any("source-table-missing" in t and "public.payments" in t for t in texts)


def test_numeric_that_fits_is_fine() -> None:
    need = ColumnNeed("s.t", "c", "r", "o", "E.f", *_decimal_need())
    report = Report()
    check_source([need], {"s.t": {"c": Column("numeric", False, 10, 2)}}, report)
    assert report.problems == []


def _decimal_need() -> tuple[Any, bool]:
    from pipeline.contracts.source import TypeNeed

    return TypeNeed("Decimal(12,2)", decimal=(12, 2)), True


def test_first_of_columns_are_checked_and_a_covered_null_is_not_flagged() -> None:
    class Sealed(DomainEvent):
        __aggregate__ = "crate"
        __aggregate_id__ = "crate_id"
        crate_id: int
        sealed_at: datetime
        by: str

    events = types.ModuleType("crate_events")
    events.Sealed = Sealed  # type: ignore[attr-defined]
    text = """
        rules:
          - table: public.crates
            ops: c
            event: Sealed
            fields:
              crate_id: new.id
              sealed_at: {first_of: [new.sealed_at, committed_at]}
              by: {first_of: [new.sealer, new.packer]}
    """
    rules = Rules("crates")
    compile_rules(rules, yaml.safe_load(textwrap.dedent(text)), origin="crates.yaml", events=events)
    needs, _ = column_needs(rules)
    assert [(n.column, n.target) for n in needs] == [
        ("id", "Sealed.crate_id"),
        ("sealed_at", "Sealed.sealed_at"),
        ("sealer", "Sealed.by"),
        ("packer", "Sealed.by"),
    ]
    columns = {
        "id": Column("bigint", False),
        "sealed_at": Column("timestamp with time zone", True),
        "sealer": Column("text", True),
        "packer": Column("text", True),
    }
    report = Report()
    check_source(needs, {"public.crates": columns}, report)
    # sealed_at's NULL falls back to the commit time, sealer's to packer; packer's reaches `by`
    assert [p.text() for p in report.problems] == [
        "warning[source-column-type-changed] crates.yaml: public.crates.packer: "
        "column is nullable, Sealed.by is required: a NULL fails the rule"
    ]
    del columns["sealed_at"]
    report = Report()
    check_source(needs, {"public.crates": columns}, report)
    assert any("public.crates.sealed_at: column is gone" in p.text() for p in report.problems)
