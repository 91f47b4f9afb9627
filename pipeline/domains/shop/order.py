"""The shop's Order aggregate, folded from the events of ``shop.order.events`` (pure).

Events of one order arrive in commit order on one partition, but a snapshot
reads the ``orders``, ``order_lines`` and ``payments`` tables one after the
other, so a line or a payment can come before its OrderPlaced. The fold
accepts that: an order first seen through a line or a payment is kept with
what is known so far and completed when OrderPlaced arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pipeline import AggregateRepository, DomainEvent
from pipeline.domains.shop.events import (
    OrderCancelled,
    OrderLineAdded,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from pipeline.replay.decode import EventDecoder

__all__ = ["Order", "OrderLine", "apply", "order_repository"]

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_no: int
    product_id: int
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Order:
    """An order as its events tell it; ``version`` counts the events applied."""

    order_id: UUID
    status: OrderStatus = "placed"
    customer_id: int | None = None
    total: Decimal | None = None
    currency: str | None = None
    placed_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()
    paid: Decimal = ZERO
    payment_ids: tuple[int, ...] = ()
    shipped_at: datetime | None = None
    tracking_number: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    version: int = 0

    @property
    def placed(self) -> bool:
        """OrderPlaced has been applied (not only lines or payments)."""
        return self.placed_at is not None

    @property
    def lines_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def balance(self) -> Decimal:
        """What is still to pay (negative: overpaid); ``None`` total counts as nothing ordered."""
        return (self.total or ZERO) - self.paid


def apply(state: Order | None, event: DomainEvent) -> Order | None:
    """One step of the Order fold. Events of other aggregates leave the state as it is."""
    if not isinstance(
        event, OrderPlaced | OrderLineAdded | OrderPaid | OrderShipped | OrderCancelled
    ):
        return state
    order = state if state is not None else Order(order_id=event.order_id)
    changes: dict[str, Any] = {"version": order.version + 1}
    match event:
        case OrderPlaced():
            changes |= {
                "customer_id": event.customer_id,
                "total": event.total,
                "currency": event.currency,
                "placed_at": event.placed_at,
            }
        case OrderLineAdded():
            line = OrderLine(event.line_no, event.product_id, event.quantity, event.unit_price)
            others = tuple(x for x in order.lines if x.line_no != line.line_no)
            changes["lines"] = tuple(sorted((*others, line), key=lambda x: x.line_no))
        case OrderPaid():
            if event.payment_id in order.payment_ids:
                return order  # the same payment told twice changes nothing
            changes |= {
                "paid": order.paid + event.amount,
                "payment_ids": (*order.payment_ids, event.payment_id),
                "status": order.status if order.status in ("shipped", "cancelled") else "paid",
            }
        case OrderShipped():
            changes |= {
                "status": "shipped",
                "shipped_at": event.shipped_at,
                "tracking_number": event.tracking_number,
            }
        case OrderCancelled():
            changes |= {
                "status": "cancelled",
                "cancelled_at": event.cancelled_at,
                "cancel_reason": event.reason,
            }
    return replace(order, **changes)


def order_repository(
    kafka_config: Mapping[str, Any], decoder: EventDecoder, topic: str = "shop.order.events"
) -> AggregateRepository[Order]:
    """The repository of Orders: ``order_repository(...).load(str(order_id))``."""
    return AggregateRepository(kafka_config, topic, decoder, apply)
