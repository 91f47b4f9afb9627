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
    "CurrencyCode",
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
CurrencyCode = Annotated[str, Field(min_length=3, max_length=3)]  # ISO 4217
PaymentMethod = Literal["card", "paypal", "invoice"]
OrderStatus = Literal["placed", "paid", "shipped", "cancelled"]


class _ShopEvent(DomainEvent):
    # A field's docstring is its description, the "doc" of its Avro field.
    model_config = ConfigDict(use_attribute_docstrings=True)

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

    customer_id: int
    """the customer's id"""
    email: str
    """the email address the customer registered with"""
    # Not "full_name": a field of that name would hide the classmethod DomainEvent.full_name().
    name: str
    """the customer's full name"""
    country: str = Field(min_length=2, max_length=2)
    """ISO 3166-1 alpha-2 country code"""
    registered_at: datetime
    """when the customer registered (UTC)"""


class CustomerEmailChanged(_CustomerEvent):
    """A customer changed their email address."""

    customer_id: int
    """the customer's id"""
    old_email: str
    """the address before the change"""
    new_email: str
    """the address after the change"""


class CustomerClosed(_CustomerEvent):
    """A customer's account was closed."""

    customer_id: int
    """the customer's id"""
    closed_at: datetime
    """when the account was closed (UTC)"""


# -- order


class ShippingAddress(BaseModel):
    """Where an order is shipped to."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    street: str
    """street and house number"""
    city: str
    """city"""
    zip: str
    """postal code"""
    country: str | None = None
    """ISO 3166-1 alpha-2 country code, if given"""


class OrderPlaced(_OrderEvent):
    """A customer placed an order; its lines follow as OrderLineAdded events."""

    order_id: UUID
    """the order's id"""
    customer_id: int
    """the customer who placed the order"""
    total: Money
    """the order total"""
    currency: CurrencyCode
    """ISO 4217 currency code of the total"""
    shipping_address: ShippingAddress | None = None
    """where to ship, if given"""
    placed_at: datetime
    """when the order was placed (UTC)"""


class OrderLineAdded(_OrderEvent):
    """A line of a placed order: a product, a quantity and its unit price."""

    order_id: UUID
    """the order the line belongs to"""
    line_no: int = Field(ge=1)
    """the line's number within the order, from 1"""
    product_id: int
    """the ordered product"""
    quantity: int = Field(gt=0)
    """how many units"""
    unit_price: Money
    """the price of one unit when the order was placed"""


class OrderPaid(_OrderEvent):
    """A payment for an order was received."""

    order_id: UUID
    """the paid order"""
    payment_id: int
    """the payment's id"""
    amount: Money
    """the amount paid"""
    method: PaymentMethod
    """how the customer paid"""
    paid_at: datetime
    """when the payment was received (UTC)"""


class OrderShipped(_OrderEvent):
    """An order left the warehouse."""

    order_id: UUID
    """the shipped order"""
    tracking_number: str | None = None
    """the carrier's tracking number, if any"""
    shipped_at: datetime
    """when the order was shipped (UTC)"""


class OrderCancelled(_OrderEvent):
    """An order was cancelled before it shipped."""

    order_id: UUID
    """the cancelled order"""
    reason: str | None = None
    """why the order was cancelled, if recorded"""
    previous_status: OrderStatus
    """the order's status before it was cancelled"""
    cancelled_at: datetime
    """when the order was cancelled (UTC)"""


# -- product


class ProductAdded(_ProductEvent):
    """A product was added to the catalogue."""

    product_id: int
    """the product's id"""
    sku: str
    """the stock keeping unit, unique per product"""
    name: str
    """the product's name"""
    description: str | None = None
    """the product's description, if any"""
    price: Money
    """the product's price"""
    currency: CurrencyCode
    """ISO 4217 currency code of the price"""
    active: bool
    """whether the product can be ordered"""


class ProductPriceChanged(_ProductEvent):
    """A product's price changed."""

    product_id: int
    """the product's id"""
    old_price: Money
    """the price before the change"""
    new_price: Money
    """the price after the change"""
    currency: CurrencyCode
    """ISO 4217 currency code of both prices"""
    changed_at: datetime
    """when the price changed (UTC)"""
