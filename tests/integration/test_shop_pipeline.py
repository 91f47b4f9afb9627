"""Every shop business operation yields exactly its domain events, with the database's values.

The real chain: PostgreSQL -> Debezium (Connect) -> CDC topics -> cdcflow's
transformer -> Avro events through the registry. Events are read back with a
plain confluent-kafka AvroDeserializer, not with cdcflow's own code.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.support.pipeline import ReadEvent, prepare_shop, read_events, transformer_thread

EVENT_TOPICS = ["shop.customer.events", "shop.order.events", "shop.product.events"]


@pytest.fixture(scope="module")
def shop(stack: LocalStack, settings: Settings) -> Iterator[Settings]:
    prepare_shop(settings)
    yield settings


def _one(conn: psycopg.Connection[Any], sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row


def test_every_business_operation_yields_its_events(shop: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(shop.source.dsn(), autocommit=True) as conn:
        # register a customer
        (cid,) = _one(
            conn,
            "INSERT INTO customers (email, full_name, country) VALUES (%s, 'Eve Example', 'NL')"
            " RETURNING id",
            f"eve.{tag}@example.com",
        )
        # change the email
        conn.execute(
            "UPDATE customers SET email = %s WHERE id = %s", (f"eve.new.{tag}@example.com", cid)
        )
        # add a product, change its price
        (p1,) = _one(
            conn,
            # Not orderable (active = false): a workload running beside this test
            # (another session's) only changes prices of active products.
            "INSERT INTO products (sku, name, price, active) VALUES (%s, 'Kettle', 10.50, false)"
            " RETURNING id",
            f"A-{tag}",
        )
        (p2,) = _one(
            conn,
            "INSERT INTO products (sku, name, description, price, active)"
            " VALUES (%s, 'Filter', 'paper', 3.10, false)"
            " RETURNING id",
            f"B-{tag}",
        )
        conn.execute("UPDATE products SET price = 12.25 WHERE id = %s", (p1,))
        # place an order with two lines (one transaction)
        with conn.transaction():
            (o1,) = _one(
                conn,
                "INSERT INTO orders (customer_id, total, shipping_address) VALUES (%s, 30.70, %s)"
                " RETURNING id",
                cid,
                json.dumps({"street": "1 Canal St", "city": "Utrecht", "zip": "3511"}),
            )
            conn.execute(
                "INSERT INTO order_lines VALUES (%s, 1, %s, 2, 12.25), (%s, 2, %s, 2, 3.10)",
                (o1, p1, o1, p2),
            )
        # A time after that transaction committed, on the database's clock (the next
        # statement is a transaction of its own): its commit time lies before it.
        (after_o1,) = _one(conn, "SELECT clock_timestamp()")
        # pay it (payment + status, one transaction), ship it
        with conn.transaction():
            (pay,) = _one(
                conn,
                "INSERT INTO payments (order_id, amount, method) VALUES (%s, 30.70, 'paypal')"
                " RETURNING id",
                o1,
            )
            conn.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = %s", (o1,))
        conn.execute(
            "UPDATE orders SET status = 'shipped', shipped_at = now(), tracking_number = %s WHERE id = %s",
            (f"TRK-{tag}", o1),
        )
        # a second order, cancelled
        with conn.transaction():
            (o2,) = _one(
                conn, "INSERT INTO orders (customer_id, total) VALUES (%s, 3.10) RETURNING id", cid
            )
            conn.execute("INSERT INTO order_lines VALUES (%s, 1, %s, 1, 3.10)", (o2, p2))
        conn.execute(
            "UPDATE orders SET status = 'cancelled', cancelled_at = now(), cancel_reason = 'changed mind'"
            " WHERE id = %s",
            (o2,),
        )
        # close the customer
        conn.execute(
            "UPDATE customers SET status = 'closed', updated_at = now() WHERE id = %s", (cid,)
        )

        customer = _one(
            conn,
            "SELECT email, full_name, country, created_at, updated_at FROM customers WHERE id = %s",
            cid,
        )
        prod = {
            r[0]: r
            for r in conn.execute(
                "SELECT id, sku, name, description, price, currency, active, updated_at"
                " FROM products WHERE id IN (%s, %s)",
                (p1, p2),
            )
        }
        orders = {
            r[0]: r
            for r in conn.execute(
                "SELECT id, total, currency, placed_at, paid_at, shipped_at,"
                " tracking_number, cancelled_at FROM orders WHERE id IN (%s, %s)",
                (o1, o2),
            )
        }
        payment = _one(conn, "SELECT amount, method, paid_at FROM payments WHERE id = %s", pay)

    expected = {
        str(cid): ["CustomerRegistered", "CustomerEmailChanged", "CustomerClosed"],
        str(p1): ["ProductAdded", "ProductPriceChanged"],
        str(p2): ["ProductAdded"],
        str(o1): ["OrderPlaced", "OrderLineAdded", "OrderLineAdded", "OrderPaid", "OrderShipped"],
        str(o2): ["OrderPlaced", "OrderLineAdded", "OrderCancelled"],
    }
    want = sum(len(v) for v in expected.values())
    keys = set(expected)

    def mine(e: ReadEvent) -> bool:
        agg = e.value["metadata"]["aggregate_type"]
        return e.key in keys and (agg, e.key) in {
            ("customer", str(cid)),
            ("product", str(p1)),
            ("product", str(p2)),
            ("order", str(o1)),
            ("order", str(o2)),
        }

    with transformer_thread(shop):
        events = read_events(
            shop, EVENT_TOPICS, keep=mine, until=lambda f: len(f) >= want, timeout_s=120
        )

    by_key: dict[str, list[ReadEvent]] = defaultdict(list)
    for e in events:
        by_key[e.key].append(e)
    # exactly the expected events, in commit order per aggregate, once each
    assert {k: [e.type for e in v] for k, v in by_key.items()} == expected
    assert len({e.event_id for e in events}) == len(events)
    for key, evs in by_key.items():
        assert len({(e.topic, e.partition) for e in evs}) == 1, (
            f"{key}: events of one aggregate on several partitions"
        )
        assert [e.offset for e in evs] == sorted(e.offset for e in evs)
        for e in evs:
            assert e.headers["cdcflow.event_type"] == e.type
            assert e.headers["cdcflow.event_id"] == e.event_id

    # values equal to the database's
    c = by_key[str(cid)]
    assert c[0].value | {"metadata": None} == {
        "metadata": None,
        "customer_id": cid,
        "email": f"eve.{tag}@example.com",
        "name": "Eve Example",
        "country": "NL",
        "registered_at": customer[3],
    }
    assert (c[1].value["old_email"], c[1].value["new_email"]) == (
        f"eve.{tag}@example.com",
        customer[0],
    )
    assert c[2].value["closed_at"] == customer[4]

    added, changed = by_key[str(p1)]
    _, sku, name, _description, price, currency, active, updated_at = prod[p1]
    assert (
        added.value["sku"],
        added.value["name"],
        added.value["price"],
        added.value["active"],
    ) == (sku, name, Decimal("10.50"), active)
    assert (changed.value["old_price"], changed.value["new_price"], changed.value["currency"]) == (
        Decimal("10.50"),
        price,
        currency,
    )
    # The price update left updated_at as it was: the rule reads the column as it is.
    assert changed.value["changed_at"] == updated_at
    assert by_key[str(p2)][0].value["description"] == "paper"

    placed, line1, line2, paid, shipped = by_key[str(o1)]
    o1_row = orders[o1]
    assert placed.value["order_id"] == o1
    assert placed.value["customer_id"] == cid
    assert placed.value["total"] == o1_row[1] == Decimal("30.70")
    assert placed.value["currency"] == o1_row[2]
    assert placed.value["placed_at"] == o1_row[3]
    assert placed.value["shipping_address"] == {
        "street": "1 Canal St",
        "city": "Utrecht",
        "zip": "3511",
        "country": None,
    }
    assert [
        (ln.value["line_no"], ln.value["product_id"], ln.value["quantity"], ln.value["unit_price"])
        for ln in (line1, line2)
    ] == [(1, p1, 2, Decimal("12.25")), (2, p2, 2, Decimal("3.10"))]
    assert (
        paid.value["payment_id"],
        paid.value["amount"],
        paid.value["method"],
        paid.value["paid_at"],
    ) == (pay, payment[0], payment[1], payment[2])
    assert (shipped.value["tracking_number"], shipped.value["shipped_at"]) == (o1_row[6], o1_row[5])

    _, _, cancelled = by_key[str(o2)]
    assert cancelled.value["reason"] == "changed mind"
    assert cancelled.value["previous_status"] == "placed"
    assert cancelled.value["cancelled_at"] == orders[o2][7]

    # one source transaction: one correlation id for the order and its lines
    assert placed.value["metadata"]["correlation_id"] == line1.value["metadata"]["correlation_id"]
    # occurred_at is the commit time (in ms): after the transaction's now(), before
    # the next statement's clock
    occurred = placed.value["metadata"]["occurred_at"]
    assert o1_row[3] - timedelta(milliseconds=1) <= occurred <= after_o1
    assert Counter(e.value["metadata"]["source"]["table"] for e in by_key[str(o1)]) == Counter(
        {"public.orders": 2, "public.order_lines": 2, "public.payments": 1}
    )
