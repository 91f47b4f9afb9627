"""The preflight's domain checks, on catalogue rows as the preflight query returns them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.connect import ConnectorSpec
from pipeline.connect.domain import check_connector, domain_checks
from tests.unit import domain_bank

CONFIG = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "topic.prefix": "bank",
    "table.include.list": "public.accounts,public.account_limits,public.loans,public.audit",
}


def row(
    identity: str, key: tuple[str, ...] = ("id",), index: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"identity": identity, "key_columns": list(key), "index_identity_columns": list(index)}


def checks(
    captured: dict[str, dict[str, Any]],
    existing: dict[str, dict[str, Any]] | None = None,
    routing: str = "derive",
) -> list[tuple[str, str, str, str | None]]:
    spec = ConnectorSpec(
        "bank", CONFIG, Path("bank.yaml"), domain="tests.unit.domain_bank", routing=routing
    )
    _, check = check_connector(spec, domain_bank.bank_description(), "test")
    found = domain_checks(check, captured, existing or captured)
    return [(c.subject, c.level, c.detail, c.fix) for c in found]


EVERYTHING = {
    "public.accounts": row("f"),
    "public.account_limits": row("f"),
    "public.loans": row("f"),
    "public.audit": row("d"),
}


def only(
    found: list[tuple[str, str, str, str | None]], prefix: str
) -> list[tuple[str, str, str, str | None]]:
    return [c for c in found if c[0].startswith(prefix)]


def test_full_identities_and_derived_routing_leave_only_the_domains_own_findings() -> None:
    found = checks(EVERYTHING)
    # Only the bank's unannotated rule, a warning from describe; the where()
    # predicate of account_limits reads nothing a FULL identity lacks.
    assert [(c[0], c[1]) for c in found] == [
        ("domain bank public.loans rule loan_unannotated", "warn")
    ]
    unknown = only(checks(EVERYTHING | {"public.account_limits": row("d")}), "before image")
    assert [(c[0], c[1]) for c in unknown] == [("before image public.account_limits", "warn")]
    assert "cannot be told" in unknown[0][2]


def test_a_table_the_rules_need_but_not_captured() -> None:
    captured = {t: r for t, r in EVERYTHING.items() if t != "public.loans"}
    (check,) = only(checks(captured, EVERYTHING), "domain bank")[:1]
    assert check[1:] == (
        "fail",
        "rules read public.loans, which this connector does not capture",
        "add public.loans to table.include.list",
    )
    # Not in this database at all: perhaps another connector's; a warning.
    (check,) = only(checks(captured, captured), "domain bank")[:1]
    assert check[1] == "warn" and "nor does it exist in this database" in check[2]


def test_captured_tables_the_domain_does_not_know() -> None:
    captured = EVERYTHING | {"public.secrets": row("d")}
    (unknown,) = [c for c in checks(captured) if "does not know" in c[2]]
    assert unknown[1] == "fail"
    assert "public.secrets" in unknown[2] and "public.audit" not in unknown[2]
    assert "rules.known(...) or rules.ignore(...)" in (unknown[3] or "")


def test_before_image_reads_need_the_identity() -> None:
    captured = EVERYTHING | {"public.accounts": row("d")}
    (check,) = only(checks(captured), "before image public.accounts")
    assert check[1] == "fail"
    assert "carries only id" in check[2]
    assert "account_closed, owner_changed read(s) the old owner, status" in check[2]
    assert check[3] == "ALTER TABLE public.accounts REPLICA IDENTITY FULL"
    # An identity index that holds the columns read is enough.
    captured = EVERYTHING | {"public.accounts": row("i", index=("id", "owner", "status"))}
    assert only(checks(captured), "before image public.accounts") == []


def test_routing_column_outside_the_identity() -> None:
    captured = EVERYTHING | {"public.account_limits": row("d")}
    found = only(checks(captured), "routing")
    assert found == [
        (
            "routing public.account_limits",
            "warn",
            "it is partitioned by change.account_id, which a delete's before image does not "
            "carry (REPLICA IDENTITY DEFAULT): its deletes land on another partition (no rule "
            "maps its deletes today)",
            "ALTER TABLE public.account_limits REPLICA IDENTITY FULL",
        )
    ]


def test_split_aggregate_with_the_config_that_fixes_it() -> None:
    found = only(checks(EVERYTHING, routing="check"), "routing account")
    (split,) = found
    assert split[1] == "fail" and "written to 2 topics" in split[2]
    assert "transforms.account_aggregate.topic.replacement=bank.public.account_aggregate" in (
        split[3] or ""
    )


def test_the_derived_config_is_given_once_however_many_findings_it_fixes() -> None:
    failed = [c for c in checks(EVERYTHING, routing="check") if c[1] == "fail"]
    assert [c[0] for c in failed] == ["routing account", "routing public.loans -> member"]
    first, second = failed[0][3] or "", failed[1][3] or ""
    assert first.startswith("set in the connector file's config (or 'routing: derive'): ")
    assert "transforms.account_aggregate.type=io.debezium.transforms.ByLogicalTableRouter" in first
    assert "change.member_id" in first  # the loans' partitioning is in the one config too
    assert second == "the config given for 'routing account' fixes this too (or 'routing: derive')"
