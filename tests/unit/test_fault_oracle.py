"""The fault tests' oracle (tests/support/oracle.py) on hand-built audit rows and events.

The audit rows are written as the audit trigger stores them (``to_jsonb`` of
the row: timestamps as ISO text, numbers exact); the events as the Avro
deserializer returns them (UUIDs, aware datetimes, Decimals). Every expected
value is written out by hand. Each mutation of the events — one dropped, one
repeated under a new id, two of one type swapped, a wrong value, a re-snapshot,
an event without a position — must be reported.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from tests.support.oracle import Found, History, Snapshot, compare, found_event

ORDER = "3f2b8c1e-9d4a-4b6e-8f01-2a3b4c5d6e7f"
PLACED_AT = "2026-12-01T10:00:00.123456+00:00"
PAID_AT = "2026-12-01T10:05:00+00:00"
T_PLACED = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
T_PAID = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
TX_PLACE = (1 << 32) + 901  # txid_current() in epoch 1: the WAL's xid is 901
TX_PAY = (1 << 32) + 950

ORDER_ROW = {
    "id": ORDER,
    "customer_id": 7,
    "status": "placed",
    "total": Decimal("30.70"),
    "currency": "EUR",
    "shipping_address": {"street": "1 Canal St", "city": "Utrecht", "zip": "3511"},
    "placed_at": PLACED_AT,
    "paid_at": None,
    "shipped_at": None,
    "tracking_number": None,
    "cancelled_at": None,
    "cancel_reason": None,
    "updated_at": PLACED_AT,
}


def _line(no: int, product: int, qty: int, price: str) -> dict[str, Any]:
    return {
        "order_id": ORDER,
        "line_no": no,
        "product_id": product,
        "quantity": qty,
        "unit_price": Decimal(price),
    }


def history() -> History:
    """One order placed with two lines, then paid; a customer's email changed; a delete."""
    h = History()
    h.add(1, TX_PLACE, "orders", "INSERT", None, ORDER_ROW)
    h.add(2, TX_PLACE, "order_lines", "INSERT", None, _line(1, 11, 2, "12.25"))
    h.add(3, TX_PLACE, "order_lines", "INSERT", None, _line(2, 12, 2, "3.10"))
    payment = {
        "id": 501,
        "order_id": ORDER,
        "amount": Decimal("30.70"),
        "method": "card",
        "paid_at": PAID_AT,
    }
    h.add(4, TX_PAY, "payments", "INSERT", None, payment)
    paid = ORDER_ROW | {"status": "paid", "paid_at": PAID_AT, "updated_at": PAID_AT}
    h.add(5, TX_PAY, "orders", "UPDATE", ORDER_ROW, paid)  # no event: told by the payment
    customer = {
        "id": 7,
        "email": "ada@example.com",
        "full_name": "Ada L",
        "country": "DE",
        "status": "active",
        "created_at": PLACED_AT,
        "updated_at": PLACED_AT,
    }
    h.add(6, 960, "customers", "UPDATE", customer, customer | {"email": "ada@new.example"})
    h.add(7, 961, "customers", "DELETE", customer | {"email": "ada@new.example"}, None)
    return h


def _event(
    n: int, etype: str, agg: str, agg_id: str, table: str, tx: int, lsn: int, **payload: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "event_type": etype,
            "aggregate_type": agg,
            "aggregate_id": agg_id,
            "occurred_at": T_PLACED,
            "schema_version": 1,
            "correlation_id": str(tx),
            "source": {
                "connector": "shop",
                "table": table,
                "lsn": lsn,
                "commit_lsn": lsn - 8,
                "tx_id": tx,
                "commit_ts_ms": 1,
                "snapshot": False,
            },
        },
        **payload,
    }


def _line_event(n: int, no: int, product: int, price: str, lsn: int) -> dict[str, Any]:
    return _event(n, "OrderLineAdded", "order", ORDER, "public.order_lines", 901, lsn,
                  order_id=UUID(ORDER), line_no=no, product_id=product, quantity=2,
                  unit_price=Decimal(price))  # fmt: skip


def events() -> list[dict[str, Any]]:
    """What a correct pipeline writes for :func:`history`, in partition order."""
    oid = UUID(ORDER)
    address = {"street": "1 Canal St", "city": "Utrecht", "zip": "3511", "country": None}
    return [
        _event(
            1,
            "OrderPlaced",
            "order",
            ORDER,
            "public.orders",
            901,
            1000,
            order_id=oid,
            customer_id=7,
            total=Decimal("30.70"),
            currency="EUR",
            shipping_address=address,
            placed_at=T_PLACED,
        ),
        _line_event(2, 1, 11, "12.25", 1100),
        _line_event(3, 2, 12, "3.10", 1200),
        _event(
            4,
            "OrderPaid",
            "order",
            ORDER,
            "public.payments",
            950,
            2000,
            order_id=oid,
            payment_id=501,
            amount=Decimal("30.70"),
            method="card",
            paid_at=T_PAID,
        ),
        _event(
            5,
            "CustomerEmailChanged",
            "customer",
            "7",
            "public.customers",
            960,
            3000,
            customer_id=7,
            old_email="ada@example.com",
            new_email="ada@new.example",
        ),
    ]


def found(values: list[dict[str, Any]]) -> dict[tuple[str, str], list[Found]]:
    out: dict[tuple[str, str], list[Found]] = defaultdict(list)
    for value in values:
        key, event = found_event(value)
        out[key].append(event)
    return out


def counts(values: list[dict[str, Any]]) -> dict[str, int]:
    v = compare(history(), found(values))
    return {
        "found": v.found,
        "duplicates": v.duplicates,
        "missing": v.missing,
        "unexpected": v.unexpected,
        "out_of_order": v.out_of_order,
        "positions_back": v.positions_back,
        "snapshot": v.snapshot,
        "without_lsn": v.without_lsn,
    }


EXACT = {
    "found": 5,
    "duplicates": 0,
    "missing": 0,
    "unexpected": 0,
    "out_of_order": 0,
    "positions_back": 0,
    "snapshot": 0,
    "without_lsn": 0,
}


def test_the_correct_events_are_exact() -> None:
    v = compare(history(), found(events()))
    assert (v.changes, v.expected) == (7, 5)
    assert v.exact, v.report()
    assert counts(events()) == EXACT


def dropped(evs: list[dict[str, Any]]) -> None:
    del evs[2]  # line 2


def repeated_under_a_new_id(evs: list[dict[str, Any]]) -> None:
    again = copy.deepcopy(evs[1])  # line 1 again, as a re-snapshot or a lost dedup would
    again["metadata"]["event_id"] = "00000000-0000-4000-8000-000000000099"
    evs.insert(2, again)


def lost_line_1_and_line_2_twice(evs: list[dict[str, Any]]) -> None:
    # The case a count per event type cannot see: the same types, the same number.
    twice = copy.deepcopy(evs[2])
    twice["metadata"]["event_id"] = "00000000-0000-4000-8000-000000000098"
    evs[1] = twice


def swapped(evs: list[dict[str, Any]]) -> None:
    evs[1], evs[2] = evs[2], evs[1]  # the two lines, positions as written


def wrong_value(evs: list[dict[str, Any]]) -> None:
    evs[3]["amount"] = Decimal("30.07")


def wrong_transaction(evs: list[dict[str, Any]]) -> None:
    evs[3]["metadata"]["source"]["tx_id"] = 951


def same_id_twice(evs: list[dict[str, Any]]) -> None:
    evs.append(copy.deepcopy(evs[4]))


def snapshot_repeat(evs: list[dict[str, Any]]) -> None:
    again = copy.deepcopy(evs[0])
    again["metadata"]["event_id"] = "00000000-0000-4000-8000-000000000097"
    again["metadata"]["source"] |= {"snapshot": True, "lsn": 5000, "commit_lsn": None}
    evs.append(again)


def without_lsn(evs: list[dict[str, Any]]) -> None:
    evs[4]["metadata"]["source"]["lsn"] = None


def position_back(evs: list[dict[str, Any]]) -> None:
    evs[3]["metadata"]["source"] |= {"lsn": 1050, "commit_lsn": 1042}


@pytest.mark.parametrize(
    ("mutate", "changed"),
    [
        (dropped, {"found": 4, "missing": 1}),
        (repeated_under_a_new_id, {"found": 6, "unexpected": 1}),
        (lost_line_1_and_line_2_twice, {"missing": 1, "unexpected": 1}),
        (swapped, {"out_of_order": 1, "positions_back": 1}),
        (wrong_value, {"missing": 1, "unexpected": 1}),
        (wrong_transaction, {"missing": 1, "unexpected": 1}),
        (same_id_twice, {"found": 6, "duplicates": 1}),
        (snapshot_repeat, {"found": 6, "unexpected": 1, "snapshot": 1}),
        (without_lsn, {"without_lsn": 1}),
        (position_back, {"positions_back": 1}),
    ],
    ids=lambda x: x.__name__ if callable(x) else "",
)
def test_each_fault_is_reported(mutate: Any, changed: dict[str, int]) -> None:
    evs = events()
    mutate(evs)
    assert counts(evs) == EXACT | changed
    v = compare(history(), found(evs))
    assert not v.exact
    assert v.examples, "the report names the differing events"


def test_a_wrong_value_is_named_in_the_report() -> None:
    evs = events()
    wrong_value(evs)
    report = compare(history(), found(evs)).report()
    assert f"order {ORDER}: missing OrderPaid(tx 950, public.payments)" in report
    assert "amount=30.70" in report and "amount=30.07" in report


def test_a_business_time_left_null_is_not_compared() -> None:
    h = History()
    shipped = {**ORDER_ROW, "status": "shipped", "tracking_number": None, "shipped_at": None}
    h.add(1, 5, "orders", "UPDATE", ORDER_ROW | {"status": "paid"}, shipped)
    value = _event(
        1,
        "OrderShipped",
        "order",
        ORDER,
        "public.orders",
        5,
        10,
        order_id=UUID(ORDER),
        tracking_number=None,
        shipped_at=T_PAID,
    )
    assert compare(h, found([value])).exact
    value["tracking_number"] = "TRK1"
    assert compare(h, found([value])).unexpected == 1


def test_the_run_begins_with_the_transactions_not_yet_committed() -> None:
    # xmin 100, xmax 105, 101 and 103 still open when the run began; in epoch 1.
    since = Snapshot(f"{(1 << 32) + 100}:{(1 << 32) + 105}:{(1 << 32) + 101},{(1 << 32) + 103}")
    assert [tx for tx in range(98, 108) if since.before(tx)] == [98, 99, 100, 102, 104]
