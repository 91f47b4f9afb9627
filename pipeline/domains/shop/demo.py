"""What ``cdcflow demo`` runs for the shop: its tables and seed, its workload, its read models.

:class:`ShopDemo` is the shop's :class:`~pipeline.domain.Demo`; the shop's
:class:`~pipeline.domain.Domain` carries it (``demo=``), and the generic
``cdcflow demo`` drives it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pipeline.domain import WorkloadRun
from pipeline.domains.shop.report import read_model_report
from pipeline.domains.shop.source import apply_schema, seed
from pipeline.domains.shop.workload import OPERATIONS, Workload, WorkloadReport
from pipeline.settings import Settings

__all__ = ["ShopDemo"]


class ShopDemo:
    """The shop's schema and seed, business operations, and a look at both read models."""

    title = "shop"
    operations = tuple(OPERATIONS)

    def setup(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        """Create the shop schema and seed customers and products (idempotent)."""
        apply_schema(conn)
        return seed(conn)

    def run_workload(self, conn: psycopg.Connection[Any], run: WorkloadRun) -> WorkloadReport:
        """Register customers, change emails, place, pay, ship and cancel orders, change prices."""
        return Workload(conn, run.rng_seed).run(
            run.rate, run.duration, run.count, progress=run.progress, should_stop=run.should_stop
        )

    def read_models(self, settings: Settings) -> dict[str, Any]:
        """Top customers, the latest order timelines, and each projection's lag."""
        return read_model_report(settings)

    def render(self, report: dict[str, Any]) -> list[str]:
        """The read-model report as text lines (after a table of the top customers)."""
        from pipeline.cli._context import table

        lines = [
            table(report["top_customers"], ["customer_id", "orders", "cancelled", "total", "paid"])
        ]
        for order_id, steps in list(report["latest_timelines"].items())[:3]:
            lines.append(f"order {order_id}: " + " -> ".join(f"{s['status']}" for s in steps))
        for st in report["status"]:
            lines.append(
                f"projection {st['projection']}: {st['applied']} events applied, "
                f"{st['events_behind']} behind ({st['seconds_behind']}s)"
            )
        return lines
