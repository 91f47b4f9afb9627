"""``cdcflow exporter``: replication slots and Connect states as Prometheus metrics.

What the transformer cannot see about the pipeline's ends, read at each scrape:

==================================================  =========================================
metric                                              from
==================================================  =========================================
``cdcflow_replication_slot_wal_retained_bytes``     ``pg_replication_slots``: WAL the slot
                                                    keeps (current LSN - ``restart_lsn``)
``cdcflow_replication_slot_confirmed_lag_bytes``    current LSN - ``confirmed_flush_lsn``
``cdcflow_replication_slot_active``                 1 while a client streams from the slot
``cdcflow_connect_connector_state``                 Connect ``GET /connectors?expand=status``:
                                                    1 at the connector's current state
``cdcflow_connect_task_state``                      the same, one series per task
``cdcflow_exporter_source_up``                      1 when the last read of ``postgres`` /
                                                    ``connect`` worked, else 0
==================================================  =========================================

A source that cannot be read reports ``cdcflow_exporter_source_up 0`` and no
other series of its own: the scrape itself succeeds, so the alert says which
end is blind instead of a bare "target down".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector

from pipeline.connect.client import ConnectClient
from pipeline.errors import CdcflowError
from pipeline.settings import Settings

__all__ = ["Slot", "StackCollector", "connect_statuses", "exporter_registry", "read_slots", "serve"]

log = logging.getLogger(__name__)

SLOTS_SQL = """
SELECT slot_name, coalesce(database, ''), coalesce(plugin, ''), active,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
FROM pg_replication_slots
ORDER BY slot_name
"""


@dataclass(frozen=True)
class Slot:
    """One row of ``pg_replication_slots``; byte counts are None where the LSN is unset."""

    name: str
    database: str
    plugin: str
    active: bool
    retained_bytes: int | None
    confirmed_lag_bytes: int | None


def read_slots(dsn: str) -> list[Slot]:
    """Every replication slot of the server ``dsn`` points at.

    Raises:
        psycopg.Error: the server cannot be reached or read.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [Slot(*row) for row in conn.execute(SLOTS_SQL).fetchall()]


def connect_statuses(client: ConnectClient) -> dict[str, dict[str, Any]]:
    """``{connector: status}`` of every connector, in one request.

    Raises:
        ConnectError: the worker cannot be reached or answered an error.
    """
    return {
        name: body.get("status", {})
        for name, body in client.list_connectors_expanded("status").items()
    }


class StackCollector(Collector):
    """Reads the slots and the connectors' states at each collection.

    ``slots`` and ``statuses`` are the two reads (:func:`read_slots` and
    :func:`connect_statuses` bound to their clients); a test hands in plain
    functions. An exception from either marks that source down.
    """

    def __init__(
        self,
        slots: Callable[[], list[Slot]],
        statuses: Callable[[], dict[str, dict[str, Any]]],
    ) -> None:
        self._slots = slots
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "cdcflow_exporter_source_up",
            "1 when the exporter's last read of this source worked",
            labels=["source"],
        )
        try:
            yield from self._slot_metrics(self._slots())
            up.add_metric(["postgres"], 1)
        except (psycopg.Error, CdcflowError) as exc:
            log.warning("reading pg_replication_slots: %s", exc)
            up.add_metric(["postgres"], 0)
        try:
            yield from self._connect_metrics(self._statuses())
            up.add_metric(["connect"], 1)
        except CdcflowError as exc:
            log.warning("reading the connectors' status: %s", exc)
            up.add_metric(["connect"], 0)
        yield up

    @staticmethod
    def _slot_metrics(slots: Iterable[Slot]) -> Iterator[Metric]:
        labels = ["slot", "database", "plugin"]
        retained = GaugeMetricFamily(
            "cdcflow_replication_slot_wal_retained_bytes",
            "WAL the slot keeps on the server's disk (current LSN - restart_lsn)",
            labels=labels,
        )
        confirmed = GaugeMetricFamily(
            "cdcflow_replication_slot_confirmed_lag_bytes",
            "WAL the slot's client has not confirmed (current LSN - confirmed_flush_lsn)",
            labels=labels,
        )
        active = GaugeMetricFamily(
            "cdcflow_replication_slot_active",
            "1 while a client streams from the slot",
            labels=labels,
        )
        for slot in slots:
            values = [slot.name, slot.database, slot.plugin]
            if slot.retained_bytes is not None:
                retained.add_metric(values, slot.retained_bytes)
            if slot.confirmed_lag_bytes is not None:
                confirmed.add_metric(values, slot.confirmed_lag_bytes)
            active.add_metric(values, 1 if slot.active else 0)
        yield from (retained, confirmed, active)

    @staticmethod
    def _connect_metrics(statuses: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        connectors = GaugeMetricFamily(
            "cdcflow_connect_connector_state",
            "1 at the connector's current state (RUNNING, PAUSED, STOPPED, FAILED, ...)",
            labels=["connector", "state", "worker"],
        )
        tasks = GaugeMetricFamily(
            "cdcflow_connect_task_state",
            "1 at the task's current state (RUNNING, PAUSED, FAILED, UNASSIGNED, ...)",
            labels=["connector", "task", "state", "worker"],
        )
        for name, status in sorted(statuses.items()):
            conn = status.get("connector", {})
            connectors.add_metric(
                [name, str(conn.get("state", "UNKNOWN")), str(conn.get("worker_id", ""))], 1
            )
            for task in status.get("tasks", []):
                tasks.add_metric(
                    [
                        name,
                        str(task.get("id", "")),
                        str(task.get("state", "UNKNOWN")),
                        str(task.get("worker_id", "")),
                    ],
                    1,
                )
        yield from (connectors, tasks)


def exporter_registry(settings: Settings) -> CollectorRegistry:
    """A registry whose collector reads the source server and Connect of ``settings``.

    Connect is asked once per scrape, without retries and within 5 s: a scrape
    answers before Prometheus's timeout, and a worker that does not answer
    shows as ``cdcflow_exporter_source_up{source="connect"} 0``.
    """
    quick = settings.connect.model_copy(update={"timeout_s": 5.0, "retries": 0})
    client = ConnectClient.from_settings(quick)
    registry = CollectorRegistry()
    registry.register(
        StackCollector(
            slots=lambda: read_slots(settings.source.dsn()),
            statuses=lambda: connect_statuses(client),
        )
    )
    return registry


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``registry`` on ``GET /metrics`` in a daemon thread (port 0 picks one).

    Raises:
        OSError: the port cannot be bound.
    """
    server = ThreadingHTTPServer((host, port), MetricsHandler.factory(registry))
    threading.Thread(target=server.serve_forever, name="exporter-http", daemon=True).start()
    return server
