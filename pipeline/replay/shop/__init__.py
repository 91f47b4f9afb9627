"""The shop's consumer side: the Order aggregate and the shop's two projections.

``projections`` is what ``cdcflow projections`` finds here (the default of
``projections.modules``).
"""

from pipeline.replay.shop.order import Order, OrderLine, apply, order_repository
from pipeline.replay.shop.projections import order_timeline, orders_by_customer

__all__ = [
    "Order",
    "OrderLine",
    "apply",
    "order_repository",
    "order_timeline",
    "orders_by_customer",
    "projections",
]

projections = [orders_by_customer, order_timeline]
