"""Folding the shop's order events into the Order aggregate; Kafka's key partitioning."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.domains.shop.events import (
    CustomerRegistered,
    OrderCancelled,
    OrderLineAdded,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)
from pipeline.domains.shop.order import Order, apply
from pipeline.events import DomainEvent
from pipeline.replay.aggregate import fold, murmur2, partition_for_key

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OID = uuid.UUID("2937d90e-3b17-41a4-b576-52ceb018ace5")


def placed(total: str = "30.00") -> OrderPlaced:
    return OrderPlaced(
        order_id=OID, customer_id=7, total=Decimal(total), currency="EUR", placed_at=T0
    )


def line(no: int, qty: int, price: str) -> OrderLineAdded:
    return OrderLineAdded(
        order_id=OID, line_no=no, product_id=100 + no, quantity=qty, unit_price=Decimal(price)
    )


def paid(payment_id: int = 1, amount: str = "30.00") -> OrderPaid:
    return OrderPaid(
        order_id=OID,
        payment_id=payment_id,
        amount=Decimal(amount),
        method="card",
        paid_at=T0 + timedelta(minutes=1),
    )


def test_an_order_folds_from_placed_to_shipped() -> None:
    shipped = OrderShipped(order_id=OID, tracking_number="TRK1", shipped_at=T0 + timedelta(hours=1))
    order = fold(apply, [placed(), line(1, 2, "10.00"), line(2, 1, "10.00"), paid(), shipped])

    assert order is not None
    assert (order.status, order.customer_id, order.total, order.paid) == (
        "shipped",
        7,
        Decimal("30.00"),
        Decimal("30.00"),
    )
    assert order.lines_total == Decimal("30.00") and order.balance == 0
    assert [ln.line_no for ln in order.lines] == [1, 2]
    assert (order.tracking_number, order.version) == ("TRK1", 5)


def test_fold_starts_from_a_given_state_and_is_pure() -> None:
    first = fold(apply, [placed()])
    assert first is not None
    later = fold(apply, [paid()], first)
    assert later is not None and later.status == "paid"
    assert first.status == "placed"  # the earlier state is untouched (frozen)


def test_a_payment_before_its_order_is_kept_and_completed() -> None:
    order = fold(apply, [paid(), line(1, 3, "10.00"), placed()])
    assert order is not None and order.placed
    assert (order.status, order.customer_id, order.paid, order.lines_total) == (
        "paid",
        7,
        Decimal("30.00"),
        Decimal("30.00"),
    )


def test_the_same_payment_twice_counts_once_and_a_line_told_twice_is_one_line() -> None:
    order = fold(apply, [placed(), paid(1), paid(1), line(1, 1, "30.00"), line(1, 1, "30.00")])
    assert order is not None
    assert order.paid == Decimal("30.00")
    assert len(order.lines) == 1


def test_a_cancelled_order_keeps_its_reason_and_stays_cancelled_when_paid_late() -> None:
    cancelled = OrderCancelled(
        order_id=OID, reason="mispriced", previous_status="placed", cancelled_at=T0
    )
    order = fold(apply, [placed(), cancelled, paid()])
    assert order is not None
    assert (order.status, order.cancel_reason, order.paid) == (
        "cancelled",
        "mispriced",
        Decimal("30.00"),
    )


def test_events_of_other_aggregates_leave_the_state_alone() -> None:
    other: DomainEvent = CustomerRegistered(
        customer_id=1, email="a@b", name="A", country="DE", registered_at=T0
    )
    assert apply(None, other) is None
    order = Order(order_id=OID)
    assert apply(order, other) is order


# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_for_key() -> None:
    assert partition_for_key(b"21", 6) == (-973932308 & 0x7FFFFFFF) % 6
    assert all(0 <= partition_for_key(str(i).encode(), 4) < 4 for i in range(100))
    with pytest.raises(ValueError):
        partition_for_key(b"x", 0)
