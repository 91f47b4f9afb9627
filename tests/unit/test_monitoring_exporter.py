"""The exporter's collector on plain functions standing in for PostgreSQL and Connect;
the transformer's lag gauge as the alerts need it."""

from __future__ import annotations

from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.errors import ConnectUnreachable
from pipeline.monitoring import Slot, StackCollector
from pipeline.transformer.metrics import Metrics

SLOTS = [
    Slot("shop", "shop", "pgoutput", True, 4096, 192),
    Slot("stale", "shop", "pgoutput", False, 3 * 2**30, None),
]
STATUSES: dict[str, dict[str, Any]] = {
    "shop-source": {
        "connector": {"state": "RUNNING", "worker_id": "w1:8083"},
        "tasks": [
            {"id": 0, "state": "RUNNING", "worker_id": "w1:8083"},
            {"id": 1, "state": "FAILED", "worker_id": "w2:8083", "trace": "boom"},
        ],
    },
    "paused": {"connector": {"state": "PAUSED", "worker_id": "w1:8083"}, "tasks": []},
}


def scrape(collector: StackCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_slots_and_connectors_become_series() -> None:
    got = scrape(StackCollector(lambda: SLOTS, lambda: STATUSES))
    slot = (("database", "shop"), ("plugin", "pgoutput"))
    assert got[("cdcflow_replication_slot_wal_retained_bytes", (*slot, ("slot", "shop")))] == 4096
    assert (
        got[("cdcflow_replication_slot_wal_retained_bytes", (*slot, ("slot", "stale")))]
        == 3 * 2**30
    )
    assert got[("cdcflow_replication_slot_confirmed_lag_bytes", (*slot, ("slot", "shop")))] == 192
    # A slot that never confirmed has no confirmed lag, rather than a made-up 0.
    assert ("cdcflow_replication_slot_confirmed_lag_bytes", (*slot, ("slot", "stale"))) not in got
    assert got[("cdcflow_replication_slot_active", (*slot, ("slot", "shop")))] == 1
    assert got[("cdcflow_replication_slot_active", (*slot, ("slot", "stale")))] == 0
    failed = (
        ("connector", "shop-source"),
        ("state", "FAILED"),
        ("task", "1"),
        ("worker", "w2:8083"),
    )
    assert got[("cdcflow_connect_task_state", failed)] == 1
    tasks = [k for k in got if k[0] == "cdcflow_connect_task_state"]
    assert len(tasks) == 2  # one series per task, at its current state only
    paused = (("connector", "paused"), ("state", "PAUSED"), ("worker", "w1:8083"))
    assert got[("cdcflow_connect_connector_state", paused)] == 1
    assert got[("cdcflow_exporter_source_up", (("source", "postgres"),))] == 1
    assert got[("cdcflow_exporter_source_up", (("source", "connect"),))] == 1


def test_a_source_that_cannot_be_read_is_reported_down_and_the_other_still_is() -> None:
    def no_postgres() -> list[Slot]:
        raise psycopg.OperationalError("connection refused")

    def no_connect() -> dict[str, dict[str, Any]]:
        raise ConnectUnreachable("refused", method="GET", url="http://localhost:1/connectors")

    got = scrape(StackCollector(no_postgres, lambda: STATUSES))
    assert got[("cdcflow_exporter_source_up", (("source", "postgres"),))] == 0
    assert got[("cdcflow_exporter_source_up", (("source", "connect"),))] == 1
    assert not [k for k in got if k[0].startswith("cdcflow_replication_slot")]
    assert [k for k in got if k[0] == "cdcflow_connect_task_state"]

    got = scrape(StackCollector(lambda: SLOTS, no_connect))
    assert got[("cdcflow_exporter_source_up", (("source", "connect"),))] == 0
    assert got[("cdcflow_exporter_source_up", (("source", "postgres"),))] == 1
    assert not [k for k in got if k[0].startswith("cdcflow_connect")]


def test_a_revoked_partition_leaves_no_stale_lag() -> None:
    """The lag alerts read cdcflow_consumer_lag: a partition revoked in a rebalance must
    not keep its last value on the process that gave it up."""
    metrics = Metrics()
    metrics.consumer_lag.labels("cdc.a", "0").set(500)
    metrics.consumer_lag.labels("cdc.a", "1").set(7)
    metrics.forget_partitions([("cdc.a", 0), ("cdc.b", 3)])  # cdc.b[3] never had a value
    text = generate_latest(metrics.registry).decode()
    lags = {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cdcflow_consumer_lag"
    }
    assert lags == {("cdc.a", "1"): 7}
