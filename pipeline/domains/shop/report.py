"""What the shop's read models hold, for the demo's summary.

``read_model_report(settings)`` reads back a few rows of each read model
and each projection's lag.
"""

from __future__ import annotations

from typing import Any

from pipeline.domains.shop.projections import order_timeline, orders_by_customer
from pipeline.replay.database import connect, read_model_dsn
from pipeline.replay.status import projection_status
from pipeline.settings import Settings

__all__ = ["read_model_report"]

projections = [orders_by_customer, order_timeline]


def read_model_report(settings: Settings, limit: int = 5) -> dict[str, Any]:
    """The projections' lag and a sample of each read model: top customers, the latest timelines.

    Raises:
        ProjectionError: the read-model database cannot be reached.
        ReplayError: Kafka did not answer.
    """
    schema = settings.projections.db_schema
    out: dict[str, Any] = {
        "status": [s.as_dict() for s in projection_status(settings, projections)]
    }
    with connect(read_model_dsn(settings)) as conn:
        customers = conn.execute(
            f"SELECT customer_id, orders, cancelled, total, paid, last_order_at "
            f"FROM {schema}.shop_orders_by_customer_customers "
            "ORDER BY total DESC, customer_id LIMIT %s",
            (limit,),
        )
        names = [d.name for d in customers.description or []]
        out["top_customers"] = [dict(zip(names, row, strict=True)) for row in customers.fetchall()]
        latest = conn.execute(
            f"SELECT order_id FROM {schema}.shop_order_timeline_current "
            "ORDER BY since DESC LIMIT %s",
            (limit,),
        ).fetchall()
        timelines: dict[str, list[dict[str, Any]]] = {}
        for (order_id,) in latest:
            steps = conn.execute(
                f"SELECT at, status, detail FROM {schema}.shop_order_timeline_steps "
                "WHERE order_id = %s ORDER BY at, position",
                (order_id,),
            ).fetchall()
            timelines[str(order_id)] = [
                {"at": at, "status": st, "detail": d} for at, st, d in steps
            ]
        out["latest_timelines"] = timelines
    return out
