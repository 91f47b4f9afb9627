"""Projections of one test, for a ``cdcflow projections`` subprocess (projections.modules).

The test names them and their topic through the environment:
``CDCFLOW_TEST_PROJECTION`` (a prefix of the projection names) and
``CDCFLOW_TEST_TOPIC`` (the order events topic). ``<prefix>_ledger`` writes one
row per event it applies, with no key: an event applied twice shows as two
rows, a skipped one as none.
"""

from __future__ import annotations

import os

from pipeline.domains.shop.events import (
    OrderCancelled,
    OrderLineAdded,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)
from pipeline.domains.shop.projections import order_timeline, orders_by_customer
from pipeline.events import DomainEvent
from pipeline.replay.projection import Projection, Tx


def ledger(name: str, topic: str) -> Projection:
    projection = Projection(
        name,
        topics=[topic],
        tables={
            "applied": """
                CREATE TABLE {table} (
                  partition integer NOT NULL,
                  "offset"  bigint  NOT NULL,
                  event_id  uuid    NOT NULL,
                  pid       integer NOT NULL DEFAULT pg_backend_pid()
                )"""
        },
    )

    @projection.on(OrderPlaced, OrderLineAdded, OrderPaid, OrderShipped, OrderCancelled)
    def _applied(db: Tx, event: DomainEvent) -> None:
        assert db.delivered is not None and event.metadata is not None
        db.execute(
            'INSERT INTO {applied} (partition, "offset", event_id) VALUES (%s, %s, %s)',
            (db.delivered.partition, db.delivered.offset, event.metadata.event_id),
        )

    return projection


PREFIX = os.environ.get("CDCFLOW_TEST_PROJECTION", "t_unset")
TOPIC = os.environ.get("CDCFLOW_TEST_TOPIC", "t_unset.order.events")

projections = [
    ledger(f"{PREFIX}_ledger", TOPIC),
    orders_by_customer.variant(name=f"{PREFIX}_obc", topics=[TOPIC]),
    order_timeline.variant(name=f"{PREFIX}_tl", topics=[TOPIC]),
]
