"""How the shop's row changes become its domain events.

============================  ==============================  =====================
row change                    condition                        event
============================  ==============================  =====================
customers insert / snapshot                                    CustomerRegistered
customers update              email changed                    CustomerEmailChanged
customers update              status changed to closed         CustomerClosed
orders insert / snapshot                                       OrderPlaced
order_lines insert / snapshot                                  OrderLineAdded
payments insert / snapshot                                     OrderPaid
orders update                 status changed to shipped        OrderShipped
orders update                 status changed to cancelled      OrderCancelled
products insert / snapshot    (rules.yaml)                     ProductAdded
products update               price changed                    ProductPriceChanged
============================  ==============================  =====================

Design notes:

- An order and its lines are written in one transaction but arrive as
  separate changes, one topic per table. A rule sees one change at a time, so
  the order is told in two steps: OrderPlaced (with the total) and one
  OrderLineAdded per line, all keyed by the order id, so that they land on
  the order's partition; a consumer folds them into the order.
- Paying writes a payment row and sets the order's status to ``paid`` in the
  same transaction. OrderPaid comes from the payment (it has amount and
  method); the status update is skipped as "no matching rule", so a payment
  is told once.
- A snapshot read counts as a creation: bootstrapping from a snapshot yields
  the Registered / Placed / Added events of the rows that exist; it does not
  invent the history (a shipped order read by a snapshot yields OrderPlaced).
- A backfill (``cdcflow connectors snapshot shop-postgres --table T``) is a
  snapshot read too (``change.backfill`` is true): it yields the same events,
  marked ``metadata.source.snapshot``: the aggregate's state as read, for a
  consumer an upsert, not a second creation (docs/guarantees.md, "Backfills").
- Every other change on these tables (deletes, updates of other columns) is
  skipped and counted; ``cdcflow_heartbeat`` is written by the connector's
  heartbeat query and ignored.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import Change, Rules, changed, changed_to
from pipeline.domains.shop import events
from pipeline.domains.shop.events import (
    CustomerClosed,
    CustomerEmailChanged,
    CustomerRegistered,
    OrderCancelled,
    OrderLineAdded,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductPriceChanged,
    ShippingAddress,
)

__all__ = ["rules"]

rules = Rules("shop")
rules.ignore("public.cdcflow_heartbeat")


def _when(change: Change, column: str) -> datetime:
    """A business timestamp column, or the commit time where the application left it NULL."""
    value: Any = change.new(column, None)
    return value if isinstance(value, datetime) else change.committed_at


# -- customers


@rules.on("public.customers", ops="cr", reads=("id", "email", "full_name", "country", "created_at"))
def customer_registered(change: Change) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=change.new("id"),
        email=change.new("email"),
        name=change.new("full_name"),
        country=change.new("country"),
        registered_at=_when(change, "created_at"),
    )


@rules.on("public.customers", ops="u", when=changed("email"), reads=("id", "email"))
def customer_email_changed(change: Change) -> CustomerEmailChanged:
    return CustomerEmailChanged(
        customer_id=change.new("id"),
        old_email=change.old("email"),
        new_email=change.new("email"),
    )


@rules.on(
    "public.customers",
    ops="u",
    when=changed_to("status", "closed"),
    reads=("id", "status", "updated_at"),
)
def customer_closed(change: Change) -> CustomerClosed:
    return CustomerClosed(customer_id=change.new("id"), closed_at=_when(change, "updated_at"))


# -- orders


@rules.on(
    "public.orders",
    ops="cr",
    reads=("id", "customer_id", "total", "currency", "shipping_address", "placed_at"),
)
def order_placed(change: Change) -> OrderPlaced:
    address = change.new("shipping_address")
    return OrderPlaced(
        order_id=change.new("id"),
        customer_id=change.new("customer_id"),
        total=change.new("total"),
        currency=change.new("currency"),
        shipping_address=ShippingAddress.model_validate(address) if address is not None else None,
        placed_at=_when(change, "placed_at"),
    )


@rules.on(
    "public.order_lines",
    ops="cr",
    reads=("order_id", "line_no", "product_id", "quantity", "unit_price"),
)
def order_line_added(change: Change) -> OrderLineAdded:
    return OrderLineAdded(
        order_id=change.new("order_id"),
        line_no=change.new("line_no"),
        product_id=change.new("product_id"),
        quantity=change.new("quantity"),
        unit_price=change.new("unit_price"),
    )


@rules.on("public.payments", ops="cr", reads=("id", "order_id", "amount", "method", "paid_at"))
def order_paid(change: Change) -> OrderPaid:
    return OrderPaid(
        order_id=change.new("order_id"),
        payment_id=change.new("id"),
        amount=change.new("amount"),
        method=change.new("method"),
        paid_at=_when(change, "paid_at"),
    )


@rules.on(
    "public.orders",
    ops="u",
    when=changed_to("status", "shipped"),
    reads=("id", "status", "tracking_number", "shipped_at"),
)
def order_shipped(change: Change) -> OrderShipped:
    return OrderShipped(
        order_id=change.new("id"),
        tracking_number=change.new("tracking_number"),
        shipped_at=_when(change, "shipped_at"),
    )


@rules.on(
    "public.orders",
    ops="u",
    when=changed_to("status", "cancelled"),
    reads=("id", "status", "cancel_reason", "cancelled_at"),
)
def order_cancelled(change: Change) -> OrderCancelled:
    return OrderCancelled(
        order_id=change.new("id"),
        reason=change.new("cancel_reason"),
        previous_status=change.old("status"),
        cancelled_at=_when(change, "cancelled_at"),
    )


# -- products (ProductAdded is declared in rules.yaml)


@rules.on(
    "public.products",
    ops="u",
    when=changed("price"),
    reads=("id", "price", "currency", "updated_at"),
)
def product_price_changed(change: Change) -> ProductPriceChanged:
    return ProductPriceChanged(
        product_id=change.new("id"),
        old_price=change.old("price"),
        new_price=change.new("price"),
        currency=change.new("currency"),
        changed_at=_when(change, "updated_at"),
    )


rules.load_yaml(Path(__file__).with_name("rules.yaml"), events=events)
