"""The shop's rules, change by change: every event in full (fields, key, id, headers) or the skip.

Whether a rule is written in Python (mappings.py) or declared in rules.yaml,
the same row change must give the same events: each case below is one
change and what the shop's domain makes of it, down to the event id, the
aggregate id (the record key) and the metadata the record headers are made
from. NULL business timestamps fall back to the commit time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from pipeline.cdc import SkipReason
from pipeline.domain import load_domain
from pipeline.domains.shop import events as ev
from pipeline.mapping import Mapped, Rules, map_change
from tests.unit import debezium as dbz
from tests.unit.test_shop_mappings import ORDER, T0, T1, WHEN0, WHEN1, change, customer, order
from tests.unit.test_shop_mappings import product as product_row

LSN = 24023128
TS_MS = 1718000000123  # the commit time of every case but those that say otherwise
COMMITTED = datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC)
LATER_MS = 1718200000000
LATER = datetime(2024, 6, 12, 13, 46, 40, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_domain("pipeline.domains.shop").rules


@dataclass(frozen=True)
class Expect:
    """One event: its type, aggregate id (the record key), event id and fields."""

    event_type: str
    aggregate_id: str
    event_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Case:
    op: str
    table: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    expect: tuple[Expect, ...] | SkipReason = SkipReason.NO_MATCHING_RULE


def line(n: int = 1) -> dict[str, Any]:
    return {
        "order_id": str(ORDER),
        "line_no": n,
        "product_id": 9,
        "quantity": 2,
        "unit_price": dbz.dec("64.75", 2),
    }


def payment(**over: Any) -> dict[str, Any]:
    row = {
        "id": 7,
        "order_id": str(ORDER),
        "amount": dbz.dec("129.50", 2),
        "method": "paypal",
        "paid_at": T1,
    }
    return {**row, **over}


def registered(event_id: str, when: datetime) -> Expect:
    fields = {
        "customer_id": 42,
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "country": "DE",
        "registered_at": when,
    }
    return Expect("CustomerRegistered", "42", event_id, fields)


def line_added(event_id: str) -> Expect:
    fields = {
        "order_id": ORDER,
        "line_no": 1,
        "product_id": 9,
        "quantity": 2,
        "unit_price": Decimal("64.75"),
    }
    return Expect("OrderLineAdded", str(ORDER), event_id, fields)


def paid(event_id: str, when: datetime) -> Expect:
    fields = {
        "order_id": ORDER,
        "payment_id": 7,
        "amount": Decimal("129.50"),
        "method": "paypal",
        "paid_at": when,
    }
    return Expect("OrderPaid", str(ORDER), event_id, fields)


def price_changed(event_id: str, when: datetime) -> Expect:
    fields = {
        "product_id": 9,
        "old_price": Decimal("129.00"),
        "new_price": Decimal("135.45"),
        "currency": "EUR",
        "changed_at": when,
    }
    return Expect("ProductPriceChanged", "9", event_id, fields)


PAID = order(status="paid", paid_at=T0)
CLOSED = customer(status="closed")
DEARER = product_row(price=dbz.dec("135.45", 2), updated_at=T1)

CASES: dict[str, Case] = {
    # -- customers
    "customer inserted": Case(
        "c",
        "customers",
        after=customer(),
        expect=(registered("36026d4b-ae4c-5231-9cee-9285a730dc52", WHEN0),),
    ),
    "customer read by a snapshot": Case(
        "r",
        "customers",
        after=customer(),
        source={"snapshot": "true"},
        expect=(registered("70b1bdfd-b0ee-5bec-89e6-edc621956e7c", WHEN0),),
    ),
    "customer inserted without created_at": Case(
        "c",
        "customers",
        after=customer(created_at=None),
        expect=(registered("36026d4b-ae4c-5231-9cee-9285a730dc52", COMMITTED),),
    ),
    "customer email changed": Case(
        "u",
        "customers",
        before=customer(),
        after=customer(email="ada@lovelace.org", updated_at=T1),
        expect=(
            Expect(
                "CustomerEmailChanged",
                "42",
                "5865f52d-13a2-5de1-9f79-a10ff07c3341",
                {
                    "customer_id": 42,
                    "old_email": "ada@example.com",
                    "new_email": "ada@lovelace.org",
                },
            ),
        ),
    ),
    "customer closed": Case(
        "u",
        "customers",
        before=customer(),
        after=customer(status="closed", updated_at=T1),
        expect=(
            Expect(
                "CustomerClosed",
                "42",
                "6a4bba07-91c0-5641-ab85-afc691325ca7",
                {"customer_id": 42, "closed_at": WHEN1},
            ),
        ),
    ),
    "customer closed without updated_at": Case(
        "u",
        "customers",
        before=customer(),
        after=customer(status="closed", updated_at=None),
        source={"ts_ms": LATER_MS},
        expect=(
            Expect(
                "CustomerClosed",
                "42",
                "6a4bba07-91c0-5641-ab85-afc691325ca7",
                {"customer_id": 42, "closed_at": LATER},
            ),
        ),
    ),
    "customer closed and email changed at once": Case(
        "u",
        "customers",
        before=customer(),
        after=customer(status="closed", email="gone@example.com"),
        expect=(
            Expect(
                "CustomerEmailChanged",
                "42",
                "5865f52d-13a2-5de1-9f79-a10ff07c3341",
                {
                    "customer_id": 42,
                    "old_email": "ada@example.com",
                    "new_email": "gone@example.com",
                },
            ),
            Expect(
                "CustomerClosed",
                "42",
                "6a4bba07-91c0-5641-ab85-afc691325ca7",
                {"customer_id": 42, "closed_at": WHEN0},
            ),
        ),
    ),
    "closed customer renamed": Case(
        "u", "customers", before=CLOSED, after={**CLOSED, "full_name": "A. L."}
    ),
    "customer reopened": Case("u", "customers", before=CLOSED, after=customer()),
    "customer deleted": Case("d", "customers", before=customer()),
    # -- orders
    "order placed": Case(
        "c",
        "orders",
        after=order(),
        expect=(
            Expect(
                "OrderPlaced",
                str(ORDER),
                "0352a8a3-7b5d-5251-84e6-99da1bc6f3eb",
                {
                    "order_id": ORDER,
                    "customer_id": 42,
                    "total": Decimal("129.50"),
                    "currency": "EUR",
                    "shipping_address": {
                        "street": "12 Main St",
                        "city": "Berlin",
                        "zip": "10115",
                        "country": None,
                    },
                    "placed_at": WHEN0,
                },
            ),
        ),
    ),
    "order cancelled": Case(
        "u",
        "orders",
        before=order(),
        after=order(status="cancelled", cancel_reason="out of stock"),
        source={"ts_ms": LATER_MS},
        expect=(
            Expect(
                "OrderCancelled",
                str(ORDER),
                "97b76ec0-d36d-5f16-bdaa-4cb5bd09ae78",
                {
                    "order_id": ORDER,
                    "reason": "out of stock",
                    "previous_status": "placed",
                    "cancelled_at": LATER,
                },
            ),
        ),
    ),
    "order shipped": Case(
        "u",
        "orders",
        before=PAID,
        after={**PAID, "status": "shipped", "shipped_at": T1, "tracking_number": "TRK1"},
        expect=(
            Expect(
                "OrderShipped",
                str(ORDER),
                "f5c0bc86-9840-53c9-b632-c3fca514b7da",
                {"order_id": ORDER, "tracking_number": "TRK1", "shipped_at": WHEN1},
            ),
        ),
    ),
    "order shipped without shipped_at": Case(
        "u",
        "orders",
        before=PAID,
        after={**PAID, "status": "shipped"},
        source={"ts_ms": LATER_MS},
        expect=(
            Expect(
                "OrderShipped",
                str(ORDER),
                "f5c0bc86-9840-53c9-b632-c3fca514b7da",
                {"order_id": ORDER, "tracking_number": None, "shipped_at": LATER},
            ),
        ),
    ),
    "shipped order updated again": Case(
        "u",
        "orders",
        before={**PAID, "status": "shipped"},
        after={**PAID, "status": "shipped", "tracking_number": "TRK2"},
    ),
    "order paid (told by the payment)": Case("u", "orders", before=order(), after=PAID),
    "order deleted": Case("d", "orders", before=order()),
    "order truncated": Case("t", "orders", expect=SkipReason.TRUNCATE),
    # -- order lines
    "order line inserted": Case(
        "c",
        "order_lines",
        after=line(),
        expect=(line_added("3476a68f-1458-5952-bacd-f38cc5776bb3"),),
    ),
    "order line read by a snapshot": Case(
        "r",
        "order_lines",
        after=line(),
        source={"snapshot": "last"},
        expect=(line_added("42494555-4d3b-572f-821b-9f36cb77d38f"),),
    ),
    "order line updated": Case("u", "order_lines", before=line(), after={**line(), "quantity": 3}),
    # -- payments
    "payment inserted": Case(
        "c",
        "payments",
        after=payment(),
        expect=(paid("2bffe802-0a54-54bc-904e-97697844de37", WHEN1),),
    ),
    "payment read by a snapshot": Case(
        "r",
        "payments",
        after=payment(),
        source={"snapshot": "true"},
        expect=(paid("858119c7-24b3-5d32-a37e-c6e9e089f20b", WHEN1),),
    ),
    "payment inserted without paid_at": Case(
        "c",
        "payments",
        after=payment(paid_at=None),
        source={"ts_ms": LATER_MS},
        expect=(paid("2bffe802-0a54-54bc-904e-97697844de37", LATER),),
    ),
    "payment deleted": Case("d", "payments", before=payment()),
    # -- products
    "product inserted": Case(
        "c",
        "products",
        after=product_row(),
        expect=(
            Expect(
                "ProductAdded",
                "9",
                "be968396-f551-5a20-8ac2-cecb0bd78978",
                {
                    "product_id": 9,
                    "sku": "SKU-00009",
                    "name": "Burr grinder",
                    "description": None,
                    "price": Decimal("129.00"),
                    "currency": "EUR",
                    "active": True,
                },
            ),
        ),
    ),
    "product price changed": Case(
        "u",
        "products",
        before=product_row(),
        after=DEARER,
        expect=(price_changed("22f48ee6-6738-5236-941f-7391b3d04b07", WHEN1),),
    ),
    "product price changed without updated_at": Case(
        "u",
        "products",
        before=product_row(),
        after={**DEARER, "updated_at": None},
        source={"ts_ms": LATER_MS},
        expect=(price_changed("22f48ee6-6738-5236-941f-7391b3d04b07", LATER),),
    ),
    "product renamed": Case(
        "u", "products", before=product_row(), after=product_row(name="Grinder", updated_at=T1)
    ),
}


def _metadata(case: Case, expect: Expect) -> dict[str, Any]:
    ts_ms = case.source.get("ts_ms", TS_MS)
    snapshot = case.source.get("snapshot", "false") != "false"
    return {
        "event_id": UUID(expect.event_id),
        "event_type": expect.event_type,
        "aggregate_type": getattr(ev, expect.event_type).aggregate_type(),
        "aggregate_id": expect.aggregate_id,
        "occurred_at": datetime.fromtimestamp(ts_ms / 1000, tz=UTC),
        "schema_version": 1,
        "correlation_id": "555",
        "source": {
            "connector": "shop",
            "table": f"public.{case.table}",
            "lsn": LSN,
            "commit_lsn": LSN - 8,
            "tx_id": 555,
            "commit_ts_ms": ts_ms,
            "snapshot": snapshot,
        },
    }


@pytest.mark.parametrize("name", list(CASES))
def test_shop_change_gives_these_events(rules: Rules, name: str) -> None:
    case = CASES[name]
    result = map_change(
        rules, change(case.op, case.table, before=case.before, after=case.after, **case.source)
    )
    if isinstance(case.expect, SkipReason):
        assert not isinstance(result, Mapped), result.events
        assert result.reason is case.expect
        return
    assert isinstance(result, Mapped), result
    got = [(type(e).__name__, e.model_dump()) for e in result.events]
    assert got == [
        (e.event_type, {"metadata": _metadata(case, e), **e.fields}) for e in case.expect
    ]
