"""describe_domain: aggregates, their tables and id columns, before-image reads, event types."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cdc import Change
from pipeline.contracts.catalog import discover_events
from pipeline.events import DomainEvent
from pipeline.mapping import Rules, changed, changed_from, changed_to, equals, where
from pipeline.mapping.describe import DomainDescription, describe_domain
from pipeline.mapping.yaml_rules import compile_rules
from tests.unit import domain_bank


@pytest.fixture(scope="module")
def shop() -> DomainDescription:
    return domain_bank.shop_description()


@pytest.fixture(scope="module")
def bank() -> DomainDescription:
    return domain_bank.bank_description()


def test_shop_order_aggregate_is_fed_by_three_tables(shop: DomainDescription) -> None:
    order = shop.aggregates["order"]
    assert dict(order.tables) == {
        "public.orders": "id",
        "public.order_lines": "order_id",
        "public.payments": "order_id",
    }
    assert order.topic == "shop.order.events"
    assert order.multi_table
    assert dict(shop.aggregates["customer"].tables) == {"public.customers": "id"}
    # The YAML rule's field mapping names the id column.
    assert dict(shop.aggregates["product"].tables) == {"public.products": "id"}
    assert shop.known == {"public.cdcflow_heartbeat"}
    assert shop.findings == ()


def test_shop_before_image_reads(shop: DomainDescription) -> None:
    assert shop.tables["public.customers"].before_columns == {"email", "status"}
    assert shop.tables["public.orders"].before_columns == {"status"}
    assert shop.tables["public.products"].before_columns == {"price"}
    assert shop.tables["public.payments"].before_columns == frozenset()
    assert all(not t.before_unknown for t in shop.tables.values())


def test_shop_rule_event_types_from_annotations_and_yaml(shop: DomainDescription) -> None:
    rules = {r.name: r for t in shop.tables.values() for r in t.rules}
    # order_placed is a Python rule: its event type from the annotation, its id column scanned
    assert rules["order_placed"].events == ("shop.events.OrderPlaced",)
    assert rules["order_placed"].id_sources == {"order": "scan"}
    assert rules["order_shipped"].events == ("shop.events.OrderShipped",)
    assert rules["product_added"].events == ("shop.events.ProductAdded",)
    assert rules["product_added"].id_sources == {"product": "yaml"}
    assert rules["order_paid"].id_sources == {"order": "yaml"}


def test_bank_aggregates_and_declared_id(bank: DomainDescription) -> None:
    assert dict(bank.aggregates["account"].tables) == {
        "public.accounts": "id",
        "public.account_limits": "account_id",
    }
    assert dict(bank.aggregates["member"].tables) == {"public.loans": "member_id"}
    loans = {r.name: r for r in bank.tables["public.loans"].rules}
    assert loans["loan_taken"].id_sources == {"member": "declared"}
    assert loans["loan_taken"].events == ("bank.events.LoanTaken",)  # Iterator[LoanTaken]
    assert bank.known == {"public.audit"}


def test_bank_before_reads_follow_helpers_row_and_before(bank: DomainDescription) -> None:
    accounts = {r.name: r for r in bank.tables["public.accounts"].rules}
    # ops d: change.row["id"] is the before image; _old_owner() reads change.old("owner").
    assert accounts["account_closed"].before_columns == {"id", "owner"}
    # the predicate's columns and change.before["owner"]
    assert accounts["owner_changed"].before_columns == {"owner", "status"}
    assert accounts["account_opened"].before_columns == frozenset()
    assert not accounts["owner_changed"].before_unknown


def test_unknowns_are_reported_not_guessed(bank: DomainDescription) -> None:
    limit = bank.tables["public.account_limits"].rules[0]
    assert limit.before_unknown and "predicate" in limit.before_unknown[0]
    unannotated = {r.name: r for r in bank.tables["public.loans"].rules}["loan_unannotated"]
    assert not unannotated.events_known and unannotated.events == ()
    kinds = {(f.kind, f.subject) for f in bank.findings}
    assert ("event-type-unknown", "public.loans rule loan_unannotated") in kinds
    assert bank.to_dict()["tables"][0]["rules"][0]["events"] == ["bank.events.LimitSet"]


def test_id_column_unknown_is_a_finding() -> None:
    rules = Rules("bank")

    @rules.on("public.accounts", ops="c")
    def opened(change: Change) -> domain_bank.AccountOpened:
        ident = change.new("id")
        return domain_bank.AccountOpened(account_id=ident, owner="x")

    description = describe_domain(rules, discover_events(["tests.unit.domain_bank"]))
    assert dict(description.aggregates["account"].tables) == {"public.accounts": None}
    (finding,) = description.findings
    assert finding.kind == "aggregate-id-unknown"
    assert "aggregate_id_from" in (finding.fix or "")


def test_a_change_passed_where_it_cannot_be_followed_is_unknown() -> None:
    rules = Rules("bank")

    @rules.on("public.accounts", ops="u")
    def opaque(change: Change) -> domain_bank.OwnerChanged:
        return domain_bank.OwnerChanged(account_id=change.new("id"), old_owner=str(change))

    info = describe_domain(rules, []).tables["public.accounts"].rules[0]
    assert info.before_unknown == ("opaque passes the change on where it cannot be followed",)


def test_yaml_rules_know_what_they_read(tmp_path: Path) -> None:
    rules = Rules("bank")
    compile_rules(
        rules,
        {
            "rules": [
                {
                    "table": "public.accounts",
                    "ops": "ud",
                    "when": [{"changed_from": {"status": "open"}}],
                    "event": "AccountClosed",
                    "fields": {"account_id": "key.id", "last_owner": "old.owner"},
                }
            ]
        },
        events=domain_bank,
    )
    description = describe_domain(rules, discover_events(["tests.unit.domain_bank"]))
    (info,) = description.tables["public.accounts"].rules
    assert info.events == ("bank.events.AccountClosed",)
    assert info.before_columns == {"owner", "status"}
    assert info.aggregate_ids == {"account": "id"} and info.id_sources == {"account": "yaml"}


def test_two_id_columns_for_one_table_conflict() -> None:
    rules = Rules("bank")

    @rules.on("public.accounts", ops="c")
    def one(change: Change) -> domain_bank.AccountOpened:
        return domain_bank.AccountOpened(account_id=change.new("id"), owner="a")

    @rules.on("public.accounts", ops="u")
    def two(change: Change) -> domain_bank.OwnerChanged:
        return domain_bank.OwnerChanged(account_id=change.new("other"), old_owner="a")

    description = describe_domain(rules, discover_events(["tests.unit.domain_bank"]))
    assert description.aggregates["account"].conflicts == {"public.accounts": ("id", "other")}
    assert [f.kind for f in description.findings] == ["aggregate-id-conflict"]


def test_predicates_name_the_old_columns_they_read() -> None:
    assert changed("a", "b").old_columns == {"a", "b"}
    assert changed_to("s", 1).old_columns == {"s"}
    assert changed_from("s", 1).old_columns == {"s"}
    both = changed("a") & ~changed_from("s", 1)
    assert both.old_columns == {"a", "s"} and both.row_columns == frozenset()
    assert equals("c", 1).row_columns == {"c"} and equals("c", 1).old_columns == frozenset()
    assert where(lambda c: True).old_columns is None
    assert (changed("a") | where(lambda c: True)).old_columns is None


def test_describe_to_dict_is_plain_data(shop: DomainDescription) -> None:
    data = shop.to_dict()
    order = next(a for a in data["aggregates"] if a["aggregate"] == "order")
    assert order["tables"] == [
        {"table": "public.order_lines", "aggregate_id_from": "order_id"},
        {"table": "public.orders", "aggregate_id_from": "id"},
        {"table": "public.payments", "aggregate_id_from": "order_id"},
    ]
    assert issubclass(domain_bank.LimitSet, DomainEvent)


def test_an_annotation_naming_what_the_module_does_not_define_is_unknown() -> None:
    rules = Rules("bank")

    @rules.on("public.accounts", ops="c")
    def opened(change: Change) -> NotImportedAtRunTime:  # type: ignore[name-defined]  # noqa: F821
        return None

    (info,) = describe_domain(rules, []).tables["public.accounts"].rules
    assert not info.events_known
