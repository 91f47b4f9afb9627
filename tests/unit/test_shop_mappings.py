"""The shop domain: every business operation, from Debezium records to stamped domain events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from pipeline.cdc import Change, SkipReason, decode_record
from pipeline.domain import load_domain
from pipeline.domains.shop import events as ev
from pipeline.errors import ConfigError, MappingError
from pipeline.events import DomainEvent
from pipeline.mapping import Mapped, Rules, UnknownTable, map_change
from tests.unit import debezium as dbz

ORDER = UUID("0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e")
T0 = "2024-06-10T06:13:20.123456Z"
T1 = "2024-06-11T09:00:00Z"
WHEN0 = datetime(2024, 6, 10, 6, 13, 20, 123456, tzinfo=UTC)
WHEN1 = datetime(2024, 6, 11, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_domain("pipeline.domains.shop").rules


def customer(**over: Any) -> dict[str, Any]:
    row = {
        "id": 42,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "country": "DE",
        "status": "active",
        "created_at": T0,
        "updated_at": T0,
    }
    return {**row, **over}


def order(**over: Any) -> dict[str, Any]:
    row = {
        "id": str(ORDER),
        "customer_id": 42,
        "status": "placed",
        "total": dbz.dec("129.50", 2),
        "currency": "EUR",
        "shipping_address": '{"street": "12 Main St", "city": "Berlin", "zip": "10115"}',
        "placed_at": T0,
        "paid_at": None,
        "shipped_at": None,
        "tracking_number": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "updated_at": T0,
    }
    return {**row, **over}


def product(**over: Any) -> dict[str, Any]:
    row = {
        "id": 9,
        "sku": "SKU-00009",
        "name": "Burr grinder",
        "description": None,
        "price": dbz.dec("129.00", 2),
        "currency": "EUR",
        "active": True,
        "updated_at": T0,
    }
    return {**row, **over}


def change(op: str, table: str, **kw: Any) -> Change:
    key, value = dbz.record(op, table, **kw)
    result = decode_record(value, key=key, topic=dbz.topic(table), partition=0, offset=1)
    assert isinstance(result, Change)
    return result


def events_of(rules: Rules, op: str, table: str, **kw: Any) -> tuple[DomainEvent, ...]:
    result = map_change(rules, change(op, table, **kw))
    assert isinstance(result, Mapped), result
    return result.events


def skip_of(rules: Rules, op: str, table: str, **kw: Any) -> SkipReason:
    result = map_change(rules, change(op, table, **kw))
    assert not isinstance(result, Mapped), result.events
    return result.reason


# -- customers


@pytest.mark.parametrize("op", ["c", "r"])
def test_register_customer(rules: Rules, op: str) -> None:
    (event,) = events_of(
        rules, op, "customers", after=customer(), snapshot="true" if op == "r" else "false"
    )
    assert event == ev.CustomerRegistered(
        customer_id=42,
        email="ada@example.com",
        name="Ada Lovelace",
        country="DE",
        registered_at=WHEN0,
    ).stamped(event.metadata)  # type: ignore[arg-type]
    assert event.metadata is not None and event.metadata.aggregate_id == "42"
    assert ev.CustomerRegistered.aggregate_type() == "customer"


def test_change_email(rules: Rules) -> None:
    (event,) = events_of(
        rules,
        "u",
        "customers",
        before=customer(),
        after=customer(email="ada@lovelace.org", updated_at=T1),
    )
    assert isinstance(event, ev.CustomerEmailChanged)
    assert (event.old_email, event.new_email) == ("ada@example.com", "ada@lovelace.org")


def test_close_customer(rules: Rules) -> None:
    (event,) = events_of(
        rules, "u", "customers", before=customer(), after=customer(status="closed", updated_at=T1)
    )
    assert event == ev.CustomerClosed(customer_id=42, closed_at=WHEN1).stamped(event.metadata)  # type: ignore[arg-type]


def test_close_and_change_email_at_once(rules: Rules) -> None:
    events = events_of(
        rules,
        "u",
        "customers",
        before=customer(),
        after=customer(status="closed", email="gone@example.com"),
    )
    assert [type(e) for e in events] == [ev.CustomerEmailChanged, ev.CustomerClosed]


def test_other_customer_changes_are_skipped(rules: Rules) -> None:
    assert (
        skip_of(rules, "u", "customers", before=customer(), after=customer(full_name="A. L."))
        is SkipReason.NO_MATCHING_RULE
    )
    assert skip_of(rules, "d", "customers", before=customer()) is SkipReason.NO_MATCHING_RULE


# -- orders


def test_place_order_with_lines(rules: Rules) -> None:
    (placed,) = events_of(rules, "c", "orders", after=order(), tx_id=900, lsn=5000)
    assert placed == ev.OrderPlaced(
        order_id=ORDER,
        customer_id=42,
        total=Decimal("129.50"),
        currency="EUR",
        shipping_address=ev.ShippingAddress(street="12 Main St", city="Berlin", zip="10115"),
        placed_at=WHEN0,
    ).stamped(placed.metadata)  # type: ignore[arg-type]
    lines = [
        events_of(
            rules,
            "c",
            "order_lines",
            after={
                "order_id": str(ORDER),
                "line_no": n,
                "product_id": 9,
                "quantity": 2,
                "unit_price": dbz.dec("64.75", 2),
            },
            tx_id=900,
            lsn=5000 + n * 8,
        )[0]
        for n in (1, 2)
    ]
    assert all(isinstance(e, ev.OrderLineAdded) for e in lines)
    assert [e.line_no for e in lines] == [1, 2]  # type: ignore[attr-defined]
    assert lines[0].unit_price == Decimal("64.75")  # type: ignore[attr-defined]
    # one aggregate, one transaction: same key and correlation id
    metas = [e.metadata for e in (placed, *lines) if e.metadata]
    assert {m.aggregate_id for m in metas} == {str(ORDER)}
    assert {m.correlation_id for m in metas} == {"900"}
    assert len({m.event_id for m in metas}) == 3


def test_order_without_shipping_address(rules: Rules) -> None:
    (placed,) = events_of(rules, "c", "orders", after=order(shipping_address=None))
    assert isinstance(placed, ev.OrderPlaced) and placed.shipping_address is None


def test_pay_order_is_told_once(rules: Rules) -> None:
    payment = {
        "id": 7,
        "order_id": str(ORDER),
        "amount": dbz.dec("129.50", 2),
        "method": "paypal",
        "paid_at": T1,
    }
    (paid,) = events_of(rules, "c", "payments", after=payment)
    assert paid == ev.OrderPaid(
        order_id=ORDER, payment_id=7, amount=Decimal("129.50"), method="paypal", paid_at=WHEN1
    ).stamped(paid.metadata)  # type: ignore[arg-type]
    assert paid.metadata is not None and paid.metadata.aggregate_id == str(ORDER)
    # the status update of the same transaction yields nothing more
    reason = skip_of(rules, "u", "orders", before=order(), after=order(status="paid", paid_at=T1))
    assert reason is SkipReason.NO_MATCHING_RULE


def test_ship_order(rules: Rules) -> None:
    before = order(status="paid", paid_at=T0)
    after = {**before, "status": "shipped", "shipped_at": T1, "tracking_number": "TRK0000000001"}
    (event,) = events_of(rules, "u", "orders", before=before, after=after)
    assert event == ev.OrderShipped(
        order_id=ORDER, tracking_number="TRK0000000001", shipped_at=WHEN1
    ).stamped(
        event.metadata  # type: ignore[arg-type]
    )


def test_cancel_order(rules: Rules) -> None:
    after = order(status="cancelled", cancelled_at=T1, cancel_reason="out of stock")
    (event,) = events_of(rules, "u", "orders", before=order(), after=after)
    assert event == ev.OrderCancelled(
        order_id=ORDER, reason="out of stock", previous_status="placed", cancelled_at=WHEN1
    ).stamped(event.metadata)  # type: ignore[arg-type]


def test_shipped_timestamp_falls_back_to_commit_time(rules: Rules) -> None:
    before = order(status="paid")
    (event,) = events_of(
        rules,
        "u",
        "orders",
        before=before,
        after={**before, "status": "shipped"},
        ts_ms=1718000000123,
    )
    assert isinstance(event, ev.OrderShipped)
    assert event.shipped_at == datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC)


def test_unexpected_shipping_address_is_a_mapping_error(rules: Rules) -> None:
    with pytest.raises(MappingError, match="order_placed"):
        map_change(rules, change("c", "orders", after=order(shipping_address='{"planet": "Mars"}')))


# -- products


def test_add_product_from_yaml_rule(rules: Rules) -> None:
    (event,) = events_of(rules, "c", "products", after=product(description="conical burrs"))
    assert event == ev.ProductAdded(
        product_id=9,
        sku="SKU-00009",
        name="Burr grinder",
        description="conical burrs",
        price=Decimal("129.00"),
        currency="EUR",
        active=True,
    ).stamped(event.metadata)  # type: ignore[arg-type]
    assert "rules.yaml" in next(r for r in rules if r.name == "product_added").origin


def test_change_price(rules: Rules) -> None:
    after = product(price=dbz.dec("135.45", 2), updated_at=T1)
    (event,) = events_of(rules, "u", "products", before=product(), after=after)
    assert event == ev.ProductPriceChanged(
        product_id=9,
        old_price=Decimal("129.00"),
        new_price=Decimal("135.45"),
        currency="EUR",
        changed_at=WHEN1,
    ).stamped(event.metadata)  # type: ignore[arg-type]


def test_toasted_description_does_not_break_a_price_change(rules: Rules) -> None:
    before = product(description="x" * 10_000)
    after = product(description=dbz.PLACEHOLDER, price=dbz.dec("99.00", 2))
    (event,) = events_of(rules, "u", "products", before=before, after=after)
    assert isinstance(event, ev.ProductPriceChanged) and event.new_price == Decimal("99.00")


# -- tables and records around the rules


def test_heartbeat_table_is_ignored(rules: Rules) -> None:
    cols = [dbz.int32("id"), dbz.tstz("ts")]
    reason = skip_of(
        rules,
        "u",
        "cdcflow_heartbeat",
        after={"id": 1, "ts": T0},
        columns=cols,
        key_fields=cols[:1],
    )
    assert reason is SkipReason.IGNORED_TABLE


def test_truncate_of_a_shop_table_is_skipped(rules: Rules) -> None:
    assert skip_of(rules, "t", "orders") is SkipReason.TRUNCATE


def test_unknown_table_is_dead_lettered(rules: Rules) -> None:
    cols = [dbz.int64("id")]
    with pytest.raises(UnknownTable):
        map_change(rules, change("c", "coupons", after={"id": 1}, columns=cols, key_fields=cols))


def test_same_record_twice_gives_the_same_event_ids(rules: Rules) -> None:
    first = events_of(
        rules, "u", "customers", before=customer(), after=customer(status="closed", email="z@x")
    )
    again = events_of(
        rules, "u", "customers", before=customer(), after=customer(status="closed", email="z@x")
    )
    assert [e.metadata for e in first] == [e.metadata for e in again]
    assert first == again


def test_event_types_and_aggregates() -> None:
    expected: dict[type[DomainEvent], str] = {
        ev.CustomerRegistered: "customer",
        ev.CustomerEmailChanged: "customer",
        ev.CustomerClosed: "customer",
        ev.OrderPlaced: "order",
        ev.OrderLineAdded: "order",
        ev.OrderPaid: "order",
        ev.OrderShipped: "order",
        ev.OrderCancelled: "order",
        ev.ProductAdded: "product",
        ev.ProductPriceChanged: "product",
    }
    for cls, aggregate in expected.items():
        assert cls.aggregate_type() == aggregate
        assert cls.full_name() == f"shop.events.{cls.__name__}"
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"


def test_money_is_constrained() -> None:
    with pytest.raises(ValueError):
        ev.ProductPriceChanged(
            product_id=1,
            old_price=Decimal("1.001"),
            new_price=Decimal("1"),
            currency="EUR",
            changed_at=WHEN0,
        )


# -- loading domains


def test_load_domain_by_package_or_module(rules: Rules) -> None:
    shop = load_domain("pipeline.domains.shop")
    assert shop is load_domain("pipeline.domains.shop.mappings")
    assert shop is load_domain("pipeline.domains.shop.events")
    assert shop is load_domain("pipeline.domains.shop:domain")
    assert shop.rules is rules


def test_load_domain_wraps_errors_raised_while_registering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_domain.py").write_text("raise RuntimeError('typo in a rule')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="typo in a rule"):
        load_domain("broken_domain")


def test_load_domain_errors() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        load_domain("no_such_package.mappings")
    with pytest.raises(ConfigError, match="declares no domain"):
        load_domain("pipeline.cdc")
    with pytest.raises(ConfigError, match="has no Domain named 'rules'"):
        load_domain("pipeline.domains.shop:rules")
