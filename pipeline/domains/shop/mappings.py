"""How the shop's row changes become its domain events.

Most rules are plain field mappings, declared in rules.yaml; the one with logic
a YAML rule cannot say (OrderPlaced builds the nested shipping address) is
written here in Python. Both end up in the same registry.

=============================  ========================================  ====================
row change                     condition                                 event
=============================  ========================================  ====================
customers insert / snapshot    (rules.yaml)                              CustomerRegistered
customers update               email changed (rules.yaml)                CustomerEmailChanged
customers update               status changed to closed (rules.yaml)     CustomerClosed
orders insert / snapshot                                                 OrderPlaced
order_lines insert / snapshot  (rules.yaml)                              OrderLineAdded
payments insert / snapshot     (rules.yaml)                              OrderPaid
orders update                  status changed to shipped (rules.yaml)    OrderShipped
orders update                  status changed to cancelled (rules.yaml)  OrderCancelled
products insert / snapshot     (rules.yaml)                              ProductAdded
products update                price changed (rules.yaml)                ProductPriceChanged
=============================  ========================================  ====================

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
- Business timestamps (``created_at``, ``paid_at``, ``shipped_at`` ...) the
  application may leave NULL fall back to the commit time: ``{first_of:
  [new.<col>, committed_at]}`` in rules.yaml, ``_when`` here.
- Every other change on these tables (deletes, updates of other columns) is
  skipped and counted; ``cdcflow_heartbeat`` is written by the connector's
  heartbeat query and ignored.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import Change, Rules
from pipeline.domains.shop import events
from pipeline.domains.shop.events import OrderPlaced, ShippingAddress

__all__ = ["rules"]

rules = Rules("shop")
rules.ignore("public.cdcflow_heartbeat")


def _when(change: Change, column: str) -> datetime:
    """A business timestamp column, or the commit time where the application left it NULL."""
    value: Any = change.new(column, None)
    return value if isinstance(value, datetime) else change.committed_at


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


# The plain field-by-field rules: customers, order lines, payments, order
# status changes and products.
rules.load_yaml(Path(__file__).with_name("rules.yaml"), events=events)
