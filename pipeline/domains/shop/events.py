"""The shop's domain events: what happened to customers, orders and products.

Three aggregates, one topic each (``shop.customer.events``,
``shop.order.events``, ``shop.product.events``); every event names its
aggregate's id, so the events of one customer, order or product stay in order
on one partition. Money is exact (``Decimal``, 12 digits, 2 decimals, as in
the source tables); times are UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pipeline import DomainEvent

__all__ = [
    "CustomerClosed",
    "CustomerEmailChanged",
    "CustomerRegistered",
    "Money",
    "OrderCancelled",
    "OrderLineAdded",
    "OrderPaid",
    "OrderPlaced",
    "OrderShipped",
    "OrderStatus",
    "PaymentMethod",
    "ProductAdded",
    "ProductPriceChanged",
    "ShippingAddress",
]

Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
PaymentMethod = Literal["card", "paypal", "invoice"]
OrderStatus = Literal["placed", "paid", "shipped", "cancelled"]


class _ShopEvent(DomainEvent):
    __namespace__: ClassVar[str] = "shop.events"


class _CustomerEvent(_ShopEvent):
    __aggregate__: ClassVar[str] = "customer"
    __aggregate_id__: ClassVar[str] = "customer_id"


class _OrderEvent(_ShopEvent):
    __aggregate__: ClassVar[str] = "order"
    __aggregate_id__: ClassVar[str] = "order_id"


class _ProductEvent(_ShopEvent):
    __aggregate__: ClassVar[str] = "product"
    __aggregate_id__: ClassVar[str] = "product_id"


# -- customer


class CustomerRegistered(_CustomerEvent):
    """A customer signed up."""

    customer_id: int = Field(description="the customer's id")
    email: str = Field(description="the email address the customer registered with")
    # Not "full_name": a field of that name would hide the classmethod DomainEvent.full_name().
    name: str = Field(description="the customer's full name")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 country code")
    registered_at: datetime = Field(description="when the customer registered (UTC)")


class CustomerEmailChanged(_CustomerEvent):
    """A customer changed their email address."""

    customer_id: int = Field(description="the customer's id")
    old_email: str = Field(description="the address before the change")
    new_email: str = Field(description="the address after the change")


class CustomerClosed(_CustomerEvent):
    """A customer's account was closed."""

    customer_id: int = Field(description="the customer's id")
    closed_at: datetime = Field(description="when the account was closed (UTC)")


# -- order


class ShippingAddress(BaseModel):
    """Where an order is shipped to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: str = Field(description="street and house number")
    city: str = Field(description="city")
    zip: str = Field(description="postal code")
    country: str | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country code, if given"
    )


class OrderPlaced(_OrderEvent):
    """A customer placed an order; its lines follow as OrderLineAdded events."""

    order_id: UUID = Field(description="the order's id")
    customer_id: int = Field(description="the customer who placed the order")
    total: Money = Field(description="the order total")
    currency: str = Field(
        min_length=3, max_length=3, description="ISO 4217 currency code of the total"
    )
    shipping_address: ShippingAddress | None = Field(
        default=None, description="where to ship, if given"
    )
    placed_at: datetime = Field(description="when the order was placed (UTC)")


class OrderLineAdded(_OrderEvent):
    """A line of a placed order: a product, a quantity and its unit price."""

    order_id: UUID = Field(description="the order the line belongs to")
    line_no: int = Field(ge=1, description="the line's number within the order, from 1")
    product_id: int = Field(description="the ordered product")
    quantity: int = Field(gt=0, description="how many units")
    unit_price: Money = Field(description="the price of one unit when the order was placed")


class OrderPaid(_OrderEvent):
    """A payment for an order was received."""

    order_id: UUID = Field(description="the paid order")
    payment_id: int = Field(description="the payment's id")
    amount: Money = Field(description="the amount paid")
    method: PaymentMethod = Field(description="how the customer paid")
    paid_at: datetime = Field(description="when the payment was received (UTC)")


class OrderShipped(_OrderEvent):
    """An order left the warehouse."""

    order_id: UUID = Field(description="the shipped order")
    tracking_number: str | None = Field(
        default=None, description="the carrier's tracking number, if any"
    )
    shipped_at: datetime = Field(description="when the order was shipped (UTC)")


class OrderCancelled(_OrderEvent):
    """An order was cancelled before it shipped."""

    order_id: UUID = Field(description="the cancelled order")
    reason: str | None = Field(default=None, description="why the order was cancelled, if recorded")
    previous_status: OrderStatus = Field(description="the order's status before it was cancelled")
    cancelled_at: datetime = Field(description="when the order was cancelled (UTC)")


# -- product


class ProductAdded(_ProductEvent):
    """A product was added to the catalogue."""

    product_id: int = Field(description="the product's id")
    sku: str = Field(description="the stock keeping unit, unique per product")
    name: str = Field(description="the product's name")
    description: str | None = Field(default=None, description="the product's description, if any")
    price: Money = Field(description="the product's price")
    currency: str = Field(
        min_length=3, max_length=3, description="ISO 4217 currency code of the price"
    )
    active: bool = Field(description="whether the product can be ordered")


class ProductPriceChanged(_ProductEvent):
    """A product's price changed."""

    product_id: int = Field(description="the product's id")
    old_price: Money = Field(description="the price before the change")
    new_price: Money = Field(description="the price after the change")
    currency: str = Field(
        min_length=3, max_length=3, description="ISO 4217 currency code of both prices"
    )
    changed_at: datetime = Field(description="when the price changed (UTC)")
