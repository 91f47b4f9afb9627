"""Monitoring: the exporter of slots and connectors, the shipped rules and dashboard.

:mod:`pipeline.monitoring.exporter` serves what the transformer cannot see
(replication slots, Connect states); :mod:`pipeline.monitoring.prometheus`
reads ``deploy/monitoring`` and asks a Prometheus server. The server itself is
a part of the local stack (:mod:`pipeline.stack.prometheus`).
"""

from pipeline.monitoring.exporter import (
    Slot,
    StackCollector,
    connect_statuses,
    exporter_registry,
    read_slots,
    serve,
)
from pipeline.monitoring.prometheus import (
    DashboardQuery,
    PrometheusApi,
    PrometheusError,
    alert_rules,
    dashboard_queries,
    with_for,
)

__all__ = [
    "DashboardQuery",
    "PrometheusApi",
    "PrometheusError",
    "Slot",
    "StackCollector",
    "alert_rules",
    "connect_statuses",
    "dashboard_queries",
    "exporter_registry",
    "read_slots",
    "serve",
    "with_for",
]
