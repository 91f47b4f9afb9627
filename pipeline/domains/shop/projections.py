"""The shop's read models: orders by customer with totals, and each order's status timeline.

Both read ``shop.order.events``. Order events of one order arrive in order on
one partition, but a snapshot reads the ``payments`` table apart from
``orders``, so a payment can come before its order: the handlers keep such a
payment on a placeholder order row and settle it when OrderPlaced arrives.

``shop_orders_by_customer``::

    _customers  customer_id | orders (not cancelled) | cancelled | total (of orders
                not cancelled) | paid (all payments) | last_order_at
    _orders     order_id | customer_id | total | currency | status | paid | placed_at

``shop_order_timeline``::

    _steps      order_id | at | status | detail | event_id | position  (one row per step)
    _current    order_id | status | since | steps
"""

from __future__ import annotations

from typing import Any

from pipeline import Projection, Tx
from pipeline.domains.shop.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)

__all__ = ["order_timeline", "orders_by_customer"]

TOPIC = "shop.order.events"

# The tables of each projection: {table} is the table's name, {name} the projection's.
_CUSTOMERS = """
    CREATE TABLE {table} (
      customer_id   bigint        PRIMARY KEY,
      orders        integer       NOT NULL DEFAULT 0,
      cancelled     integer       NOT NULL DEFAULT 0,
      total         numeric(14,2) NOT NULL DEFAULT 0,
      paid          numeric(14,2) NOT NULL DEFAULT 0,
      last_order_at timestamptz
    )"""
_ORDERS = """
    CREATE TABLE {table} (
      order_id    uuid          PRIMARY KEY,
      customer_id bigint,
      total       numeric(12,2),
      currency    char(3),
      status      text          NOT NULL,
      paid        numeric(14,2) NOT NULL DEFAULT 0,
      placed_at   timestamptz
    );
    CREATE INDEX {name}_customer_idx ON {table} (customer_id)"""

orders_by_customer = Projection(
    "shop_orders_by_customer",
    topics=[TOPIC],
    description="per customer: orders, cancellations, order total and payments",
    tables={
        "customers": _CUSTOMERS,
        "orders": _ORDERS,
    },
)


@orders_by_customer.on(OrderPlaced)
def _placed(db: Tx, e: OrderPlaced) -> None:
    row = _record_placed(db, e)
    if row is None:
        return  # this order is known already
    status, paid = row
    live = status != "cancelled"
    db.execute(
        "INSERT INTO {customers} AS c (customer_id, orders, cancelled, total, paid, last_order_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (customer_id) DO UPDATE SET orders = c.orders + EXCLUDED.orders, "
        "cancelled = c.cancelled + EXCLUDED.cancelled, total = c.total + EXCLUDED.total, "
        "paid = c.paid + EXCLUDED.paid, "
        "last_order_at = GREATEST(c.last_order_at, EXCLUDED.last_order_at)",
        (e.customer_id, int(live), int(not live), e.total if live else 0, paid, e.placed_at),
    )


def _record_placed(db: Tx, e: OrderPlaced) -> tuple[Any, ...] | None:
    """Write a placed order's row: a new one, or the placeholder a payment that came first
    left behind, filled in. Its status and amount paid so far; None if it was known already."""
    return db.execute(
        "INSERT INTO {orders} AS o (order_id, customer_id, total, currency, status, placed_at) "
        "VALUES (%s, %s, %s, %s, 'placed', %s) "
        "ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
        "total = EXCLUDED.total, "
        "currency = EXCLUDED.currency, placed_at = EXCLUDED.placed_at WHERE o.customer_id IS NULL "
        "RETURNING status, paid",
        (e.order_id, e.customer_id, e.total, e.currency, e.placed_at),
    ).fetchone()


@orders_by_customer.on(OrderPaid)
def _paid(db: Tx, e: OrderPaid) -> None:
    row = db.execute(
        "INSERT INTO {orders} AS o (order_id, status, paid) VALUES (%s, 'paid', %s) "
        "ON CONFLICT (order_id) DO UPDATE SET paid = o.paid + EXCLUDED.paid, "
        "status = CASE WHEN o.status = 'placed' THEN 'paid' ELSE o.status END "
        "RETURNING customer_id",
        (e.order_id, e.amount),
    ).fetchone()
    if row is not None and row[0] is not None:
        db.execute(
            "UPDATE {customers} SET paid = paid + %s WHERE customer_id = %s", (e.amount, row[0])
        )


@orders_by_customer.on(OrderShipped)
def _shipped(db: Tx, e: OrderShipped) -> None:
    db.execute("UPDATE {orders} SET status = 'shipped' WHERE order_id = %s", (e.order_id,))


@orders_by_customer.on(OrderCancelled)
def _cancelled(db: Tx, e: OrderCancelled) -> None:
    row = db.execute(
        "UPDATE {orders} SET status = 'cancelled' WHERE order_id = %s AND status <> 'cancelled' "
        "RETURNING customer_id, total",
        (e.order_id,),
    ).fetchone()
    if row is not None and row[0] is not None:
        db.execute(
            "UPDATE {customers} SET orders = orders - 1, cancelled = cancelled + 1, "
            "total = total - %s "
            "WHERE customer_id = %s",
            (row[1], row[0]),
        )


_STEPS = """
    CREATE TABLE {table} (
      order_id uuid        NOT NULL,
      at       timestamptz NOT NULL,
      status   text        NOT NULL,
      detail   text,
      event_id uuid        NOT NULL,
      position bigint      NOT NULL,
      PRIMARY KEY (order_id, event_id)
    );
    CREATE INDEX {name}_order_at_idx ON {table} (order_id, at, position)"""
_CURRENT = """
    CREATE TABLE {table} (
      order_id uuid        PRIMARY KEY,
      status   text        NOT NULL,
      since    timestamptz NOT NULL,
      steps    integer     NOT NULL
    )"""


order_timeline = Projection(
    "shop_order_timeline",
    topics=[TOPIC],
    description="each order's status changes, in order, and its current status",
    tables={
        "steps": _STEPS,
        "current": _CURRENT,
    },
)


def _step(
    db: Tx, order_id: object, status: str, at: object, detail: str | None, event_id: object
) -> None:
    position = db.delivered.offset if db.delivered is not None else 0
    inserted = db.execute(
        "INSERT INTO {steps} (order_id, at, status, detail, event_id, position) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (order_id, event_id) DO NOTHING RETURNING 1",
        (order_id, at, status, detail, event_id, position),
    ).fetchone()
    if inserted is None:
        return  # the same event (by id) told twice is one step
    # The current status is the latest by business time, whatever order the events came in.
    db.execute(
        "INSERT INTO {current} AS c (order_id, status, since, steps) VALUES (%s, %s, %s, 1) "
        "ON CONFLICT (order_id) DO UPDATE SET steps = c.steps + 1, "
        "status = CASE WHEN EXCLUDED.since >= c.since THEN EXCLUDED.status ELSE c.status END, "
        "since = GREATEST(c.since, EXCLUDED.since)",
        (order_id, status, at),
    )


def _event_id(e: OrderPlaced | OrderPaid | OrderShipped | OrderCancelled) -> object:
    return e.metadata.event_id if e.metadata is not None else None


@order_timeline.on(OrderPlaced)
def _t_placed(db: Tx, e: OrderPlaced) -> None:
    _step(db, e.order_id, "placed", e.placed_at, f"{e.total} {e.currency}", _event_id(e))


@order_timeline.on(OrderPaid)
def _t_paid(db: Tx, e: OrderPaid) -> None:
    _step(db, e.order_id, "paid", e.paid_at, f"{e.amount} by {e.method}", _event_id(e))


@order_timeline.on(OrderShipped)
def _t_shipped(db: Tx, e: OrderShipped) -> None:
    _step(db, e.order_id, "shipped", e.shipped_at, e.tracking_number, _event_id(e))


@order_timeline.on(OrderCancelled)
def _t_cancelled(db: Tx, e: OrderCancelled) -> None:
    _step(db, e.order_id, "cancelled", e.cancelled_at, e.reason, _event_id(e))
