"""Routing simulation of a connector config, its check against a domain, and the derived fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.connect import parse_connector_file
from pipeline.connect.routing import TableCatalog, check_routing, derive_routing
from pipeline.connect.transforms import PARTITION_ROUTING, TABLE_ROUTER, simulate
from pipeline.contracts.catalog import discover_events
from pipeline.mapping.describe import DomainDescription, describe_domain
from tests.unit import domain_bank

SHOP_FILE = Path(__file__).resolve().parents[2] / "connectors" / "shop-postgres.yaml"
MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"

# A connector as a user writes it: Debezium's defaults, no transforms.
BANK = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "topic.prefix": "bank",
    "table.include.list": "public.accounts,public.account_limits,public.loans,public.audit",
}


@pytest.fixture(scope="module")
def shop() -> DomainDescription:
    return domain_bank.shop_description()


@pytest.fixture(scope="module")
def bank() -> DomainDescription:
    return domain_bank.bank_description()


def shop_config() -> dict[str, str]:
    return dict(parse_connector_file(SHOP_FILE).config)


def without_routing(config: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in config.items() if not k.startswith(("transforms", "predicates"))}


# --------------------------------------------------------------------------- simulate


def test_default_topics_and_key_partitioning() -> None:
    routes = simulate(
        BANK | {"message.key.columns": "public\\.loans:member_id"},
        ["public.accounts", "public.loans"],
    )
    assert routes["public.accounts"].topic == "bank.public.accounts"
    assert routes["public.accounts"].partitioning.by == "key"
    assert routes["public.accounts"].partitioning.columns == ()
    assert routes["public.loans"].partitioning.columns == ("member_id",)


def test_shop_file_routes_the_order_tables_into_one_topic() -> None:
    routes = simulate(shop_config(), ["public.orders", "public.payments", "public.customers"])
    assert routes["public.orders"].topic == "shop.public.order_aggregate"
    assert routes["public.payments"].topic == "shop.public.order_aggregate"
    assert routes["public.orders"].partitioning.columns == ("id",)
    assert routes["public.payments"].partitioning.columns == ("order_id",)
    assert routes["public.payments"].partitioning.num == "4"
    assert routes["public.customers"].topic == "shop.public.customers"
    assert routes["public.customers"].partitioning.by == "key"


def test_routers_with_group_references_and_negated_predicates() -> None:
    config = BANK | {
        "transforms": "rename,all",
        "transforms.rename.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.rename.regex": r"bank\.public\.(.*)",
        "transforms.rename.replacement": "core.$1",
        "transforms.rename.predicate": "isAudit",
        "transforms.rename.negate": "true",
        "predicates": "isAudit",
        "predicates.isAudit.type": MATCHES,
        "predicates.isAudit.pattern": r"bank\.public\.audit",
        "transforms.all.type": TABLE_ROUTER,
        "transforms.all.topic.regex": r"core\.(account.*)",
        "transforms.all.topic.replacement": "core.all_$1",
    }
    routes = simulate(config, ["public.accounts", "public.audit", "public.loans"])
    assert routes["public.accounts"].topic == "core.all_accounts"
    assert routes["public.audit"].topic == "bank.public.audit"
    assert routes["public.loans"].topic == "core.loans"
    # The router's default key.enforce.uniqueness adds the table to the key.
    assert "__dbz__physicalTableIdentifier" in routes["public.accounts"].partitioning.columns


def test_unknown_smt_or_predicate_cannot_tell() -> None:
    config = BANK | {
        "transforms": "mine",
        "transforms.mine.type": "com.example.MyRouter",
    }
    route = simulate(config, ["public.accounts"])["public.accounts"]
    assert route.topic is None and route.partitioning.by == "unknown"
    assert route.unknown == "transform mine (com.example.MyRouter)"
    config = BANK | {
        "transforms": "p",
        "transforms.p.type": PARTITION_ROUTING,
        "transforms.p.predicate": "h",
        "predicates": "h",
        "predicates.h.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    }
    assert "predicate h" in (simulate(config, ["public.accounts"])["public.accounts"].unknown or "")


# --------------------------------------------------------------------------- check and derive


def test_shop_file_passes_and_derive_restores_it(shop: DomainDescription) -> None:
    report = check_routing(shop, shop_config())
    assert report.findings == () and report.derived == {}
    # Without the catalogue, derive partitions the single-table aggregates by their
    # id column too (their key is not known here); with it, there is nothing to add.
    extra = derive_routing(shop, shop_config())
    assert extra["transforms"] == (
        "cdcflowDropSignals,partitionOrders,partitionOrderRows,order,"
        "customer_partition_by_id,product_partition_by_id"
    )
    assert check_routing(shop, shop_config() | extra).findings == ()
    keys = {t: TableCatalog("f", ("id",)) for t in ("public.customers", "public.products")}
    assert derive_routing(shop, shop_config(), catalog=keys) == {}

    bare = without_routing(shop_config())
    split = check_routing(shop, bare)
    assert [(f.kind, f.subject) for f in split.findings] == [("split-aggregate", "order")]
    fixed = bare | derive_routing(shop, bare)
    assert check_routing(shop, fixed).findings == ()
    routes = simulate(fixed, ["public.orders", "public.order_lines", "public.payments"])
    assert {r.topic for r in routes.values()} == {"shop.public.order_aggregate"}
    assert routes["public.order_lines"].partitioning.columns == ("order_id",)
    assert routes["public.orders"].partitioning.num == "4"


def test_two_table_aggregate_split_is_found_and_derived(bank: DomainDescription) -> None:
    report = check_routing(bank, BANK)
    (split,) = [f for f in report.findings if f.kind == "split-aggregate"]
    assert split.subject == "account" and split.level == "fail"
    assert "bank.public.accounts" in split.detail and "bank.public.account_limits" in split.detail
    derived = report.derived
    assert derived["transforms"] == (
        "account_partition_by_account_id,account_partition_by_id,account_aggregate"
    )
    assert derived["transforms.account_aggregate.topic.replacement"] == (
        "bank.public.account_aggregate"
    )
    assert derived["transforms.account_aggregate.key.enforce.uniqueness"] == "false"
    # No topic.creation.default.partitions: the broker's default, one partition.
    assert derived["transforms.account_partition_by_id.partition.topic.num"] == "1"
    fixed = BANK | derived
    assert check_routing(bank, fixed).findings == ()
    routes = simulate(fixed, ["public.accounts", "public.account_limits", "public.loans"])
    assert routes["public.accounts"].topic == routes["public.account_limits"].topic
    assert routes["public.loans"].topic == "bank.public.loans"


def test_derived_transforms_come_after_the_users_own(bank: DomainDescription) -> None:
    config = BANK | {
        "topic.creation.default.partitions": "4",
        "transforms": "hdr",
        "transforms.hdr.type": "org.apache.kafka.connect.transforms.InsertHeader",
        "transforms.hdr.header": "source",
        "transforms.hdr.value.literal": "bank",
    }
    derived = derive_routing(bank, config)
    assert derived["transforms"].split(",")[0] == "hdr"
    assert derived["transforms.account_partition_by_account_id.partition.topic.num"] == "4"
    assert check_routing(bank, config | derived).findings == ()


def test_table_keyed_by_another_column_needs_partitioning(bank: DomainDescription) -> None:
    catalog = {
        "public.loans": TableCatalog("d", ("id",), ("id",)),
        "public.accounts": TableCatalog("f", ("id",)),
        "public.account_limits": TableCatalog("f", ("account_id",)),
    }
    report = check_routing(bank, BANK, catalog=catalog)
    (keyed,) = [f for f in report.findings if f.kind == "key-not-aggregate-id"]
    assert keyed.subject == "public.loans -> member"
    assert "record key (id)" in keyed.detail
    fixed = BANK | report.derived
    assert fixed["transforms.member_partition_by_member_id.partition.payload.fields"] == (
        "change.member_id"
    )
    assert "member_aggregate" not in fixed["transforms"]  # one table: no new topic
    after = check_routing(bank, fixed, catalog=catalog)
    # Routed by member_id, which a delete's before image (key only) lacks: a warning,
    # since no rule maps loan deletes.
    assert [(f.kind, f.level) for f in after.findings] == [
        ("routing-column-not-in-identity", "warn")
    ]
    # Without the catalogue the key is not known: nothing is claimed.
    assert not [
        f for f in check_routing(bank, BANK).findings if f.subject.startswith("public.loans")
    ]


def test_routing_column_not_in_identity_fails_when_deletes_are_mapped(
    bank: DomainDescription,
) -> None:
    fixed = BANK | derive_routing(bank, BANK)
    catalog = {
        "public.accounts": TableCatalog("f", ("id",)),
        "public.account_limits": TableCatalog("d", ("id",), ("id",)),
    }
    assert check_routing(bank, fixed, catalog=catalog).findings[0].kind == (
        "routing-column-not-in-identity"
    )
    (finding,) = check_routing(bank, fixed, catalog=catalog).findings
    assert finding.subject == "public.account_limits" and finding.level == "warn"
    catalog = {
        "public.accounts": TableCatalog("i", ("id",), ("owner",)),
        "public.account_limits": TableCatalog("f", ("id",)),
    }
    (finding,) = check_routing(bank, fixed, catalog=catalog).findings
    # accounts' deletes become AccountClosed: out of order is a failure.
    assert (finding.subject, finding.level) == ("public.accounts", "fail")
    assert finding.fix == "ALTER TABLE public.accounts REPLICA IDENTITY FULL"


def test_one_topic_partitioned_by_key_is_not_enough(bank: DomainDescription) -> None:
    config = BANK | {
        "topic.creation.default.partitions": "3",
        "transforms": "acc",
        "transforms.acc.type": TABLE_ROUTER,
        "transforms.acc.topic.regex": r"bank\.public\.(accounts|account_limits)",
        "transforms.acc.topic.replacement": "bank.accounts",
        "transforms.acc.key.enforce.uniqueness": "false",
    }
    report = check_routing(bank, config)
    kinds = sorted((f.kind, f.subject) for f in report.findings)
    assert kinds == [
        ("partitioned-by-other-column", "public.account_limits -> account"),
        ("partitioned-by-other-column", "public.accounts -> account"),
    ]
    fixed = config | report.derived
    assert "account_aggregate" not in fixed["transforms"]  # already one topic
    assert check_routing(bank, fixed).findings == ()
    # With one partition explicitly, one topic is enough.
    one = config | {"topic.creation.default.partitions": "1"}
    assert check_routing(bank, one).findings == ()


def test_unknown_smt_is_a_warning_and_nothing_is_derived(bank: DomainDescription) -> None:
    config = BANK | {"transforms": "x", "transforms.x.type": "com.example.Unwrap"}
    report = check_routing(bank, config)
    assert {f.kind for f in report.findings} == {"cannot-tell"}
    assert {f.level for f in report.findings} == {"warn"}
    assert report.derived == {}
    assert report.split == []


def test_a_table_feeding_two_aggregates_by_different_columns() -> None:
    from pipeline.mapping import Rules

    rules = Rules("bank")

    @rules.on("public.loans", ops="c")
    def taken(change: object) -> domain_bank.LoanTaken:
        return domain_bank.LoanTaken(member_id=change.new("member_id"), loan_id=1)  # type: ignore[attr-defined]

    @rules.on("public.loans", ops="u")
    def limit(change: object) -> domain_bank.LimitSet:
        return domain_bank.LimitSet(account_id=change.new("account_id"), amount=1)  # type: ignore[attr-defined]

    description = describe_domain(rules, discover_events(["tests.unit.domain_bank"]))
    config = BANK | {"table.include.list": "public.loans", "topic.creation.default.partitions": "2"}
    (finding,) = check_routing(description, config).findings
    assert finding.kind == "conflicting-partitioning" and finding.level == "fail"
    single = config | {"topic.creation.default.partitions": "1"}
    assert check_routing(description, single).findings == ()


def test_tables_outside_the_include_list_are_not_checked(bank: DomainDescription) -> None:
    config = BANK | {"table.include.list": "public.accounts,public.loans"}
    report = check_routing(bank, config)
    assert sorted(report.routes) == ["public.accounts", "public.loans"]
    assert report.findings == ()
