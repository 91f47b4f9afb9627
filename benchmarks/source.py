"""The benchmarks' own source: a shop database, its Debezium connector, and the pre-load.

The pre-load is made by the real connector from real business operations:

1. a database ``cdcbench`` with the shop's schema and seed rows, and a connector
   ``cdcbench-postgres`` configured as ``connectors/shop-postgres.yaml`` (same
   converters, value handling and routing: ``cdcbench.public.customers``,
   ``.products`` and ``.order_aggregate``, 4 partitions each), which snapshots
   the seed rows;
2. the connector is stopped, and the shop workload
   (:mod:`pipeline.domains.shop.workload`) runs unpaced until the database
   holds enough changes; the replication slot keeps them;
3. the connector is resumed and timed while it emits the backlog: that is
   Debezium's capture rate on this machine, the figure the transformer's
   throughput target is set against.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from benchmarks.common import CDC_PREFIX, NAME, record_count, say, topics_matching
from pipeline.connect import ConnectClient, parse_connector_file, wait_for_state
from pipeline.domains.shop.source import apply_schema, seed
from pipeline.domains.shop.workload import Workload
from pipeline.errors import ConnectError
from pipeline.settings import Settings
from pipeline.stack.scratch import ScratchSource, delete_groups, delete_topics, repointed

DATABASE = NAME
SLOT = NAME
CONNECTOR_PREFIX = f"{NAME}-postgres-"
SHOP_CONNECTOR_FILE = "connectors/shop-postgres.yaml"
# Records per business operation of the workload, for sizing only (counted exactly after).
RECORDS_PER_OPERATION = 2.0


def cdc_topics(settings: Settings) -> list[str]:
    """The bench connector's table topics (not its heartbeat topic)."""
    return topics_matching(settings, rf"^{re.escape(CDC_PREFIX)}\.public\.")


def connector_config(settings: Settings) -> dict[str, str]:
    """The shop connector's config as shipped, pointed at the bench database and names."""
    from benchmarks.common import REPO

    config = dict(parse_connector_file(REPO / SHOP_CONNECTOR_FILE).config)
    return repointed(config, database=DATABASE, prefix=CDC_PREFIX, slot=SLOT)


@dataclass
class Capture:
    """Debezium emitting the pre-load: records and timings (wall clock, seconds)."""

    records: int
    resumed_at: float
    first_at: float
    last_at: float

    @property
    def rate(self) -> float:
        """Records/s from the first new record to the last (the connector's steady rate)."""
        return self.records / max(self.last_at - self.first_at, 1e-9)

    @property
    def rate_with_start(self) -> float:
        """Records/s from the resume request (task start included)."""
        return self.records / max(self.last_at - self.resumed_at, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "seconds": round(self.last_at - self.first_at, 2),
            "seconds_with_task_start": round(self.last_at - self.resumed_at, 2),
            "records_per_second": round(self.rate),
            "records_per_second_with_task_start": round(self.rate_with_start),
        }


class BenchSource:
    """The bench database and connector (see the module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scratch = ScratchSource(settings, DATABASE, SLOT)
        self.connect = ConnectClient.from_settings(settings.connect)
        # Connect keeps a source connector's offsets under its name after it is deleted:
        # each pre-load's connector has a name of its own, so it starts with a snapshot.
        mine = [c for c in self.connect.list_connectors() if c.startswith(CONNECTOR_PREFIX)]
        self.connector = mine[0] if mine else f"{CONNECTOR_PREFIX}{uuid.uuid4().hex[:6]}"

    # ------------------------------------------------------------ connections

    def db(
        self, database: str = DATABASE, user: str = "cdcflow", rows: Any = tuple_row
    ) -> psycopg.Connection[Any]:
        return self.scratch.db(database, user=user, rows=rows)

    # ------------------------------------------------------------ life cycle

    def remove(self) -> None:
        """Delete the connector, its slot, the database and the CDC topics, if there."""
        for name in [c for c in self.connect.list_connectors() if c.startswith(CONNECTOR_PREFIX)]:
            with contextlib.suppress(ConnectError):
                self.connect.stop(name)
                wait_for_state(self.connect, [name], "STOPPED", timeout_s=60, poll_s=0.5)
                self.connect.reset_offsets(name)
            with contextlib.suppress(ConnectError):
                self.connect.delete(name)
            deadline = time.monotonic() + 60
            while name in self.connect.list_connectors():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"connector {name} still listed after 60 s")
                time.sleep(0.5)
        self.connector = f"{CONNECTOR_PREFIX}{uuid.uuid4().hex[:6]}"
        self.scratch.drop()
        delete_topics(
            self.settings,
            topics_matching(
                self.settings,
                rf"^({re.escape(CDC_PREFIX)}\.|__debezium-heartbeat\.{re.escape(CDC_PREFIX)}$)",
            ),
        )

    def remove_all(self) -> None:
        """Everything the benchmarks made: the source (slot first), topics, subjects, groups."""
        from benchmarks.common import (
            bench_groups,
            delete_bench_subjects,
        )

        self.remove()
        delete_topics(self.settings, topics_matching(self.settings, rf"^{re.escape(NAME)}[-.]"))
        delete_bench_subjects(self.settings)
        delete_groups(self.settings, bench_groups(self.settings))

    def create(self) -> None:
        """The database with the shop's schema and seed rows; the connector, snapshot done."""

        def load(conn: psycopg.Connection[Any]) -> None:
            apply_schema(conn)
            seed(conn)

        self.scratch.create(load)
        with self.db() as conn:
            seeded = sum(
                int(row[0])
                for row in conn.execute(
                    "SELECT count(*) FROM customers UNION ALL SELECT count(*) FROM products"
                )
            )
        self.connect.create_connector(self.connector, connector_config(self.settings))
        wait_for_state(self.connect, [self.connector], "RUNNING", timeout_s=180, poll_s=0.5)
        self.wait_for_records(seeded, timeout_s=180)

    def wait_for_records(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (have := record_count(self.settings, cdc_topics(self.settings))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{have} of {count} CDC records after {timeout_s:.0f}s")
            time.sleep(0.5)

    def stop_connector(self) -> None:
        self.connect.stop(self.connector)
        wait_for_state(self.connect, [self.connector], "STOPPED", timeout_s=120, poll_s=0.5)

    def resume_connector(self) -> float:
        started = time.time()
        self.connect.resume(self.connector)
        return started

    def set_config(self, config: dict[str, str]) -> None:
        """Replace the connector's config and wait until it runs with it."""
        self.connect.put_config(self.connector, config)
        wait_for_state(
            self.connect, [self.connector], "RUNNING", timeout_s=120, poll_s=0.5, settle_s=3
        )

    def is_running(self) -> bool:
        try:
            state = self.connect.status(self.connector)["connector"]["state"]
        except ConnectError:
            return False
        return bool(state == "RUNNING")

    # ------------------------------------------------------------ the pre-load

    def write_backlog(self, records: int, processes: int = 2) -> int:
        """Run the shop workload unpaced until about ``records`` changes; returns the changes made."""
        operations = int(records / RECORDS_PER_OPERATION * 1.04) + 1
        per = operations // processes + 1
        dsn = self.settings.source.dsn(DATABASE)
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            reports = pool.starmap(_run_workload, [(dsn, per, 1000 + i) for i in range(processes)])
        ops: dict[str, int] = {}
        for report in reports:
            for name, n in report.items():
                ops[name] = ops.get(name, 0) + n
        with self.db() as conn:
            row = conn.execute("SELECT count(*) FROM order_lines").fetchone()
            lines = int(row[0]) if row else 0
        # Changes per operation: one row each, an order with its lines, a payment with the
        # order's status update.
        changes = sum(ops.values()) + lines + ops.get("pay_order", 0)
        seconds = time.monotonic() - started
        say(
            f"  workload: {sum(ops.values()):,} operations, {changes:,} row changes in "
            f"{seconds:.0f}s ({sum(ops.values()) / seconds:,.0f} operations/s)"
        )
        return changes

    def capture(self, expected: int, timeout_s: float = 1800) -> Capture:
        """Resume the connector and time it until the CDC topics hold ``expected`` records."""
        topics = cdc_topics(self.settings)
        before = record_count(self.settings, topics)
        target = before + expected
        resumed = self.resume_connector()
        first = last = 0.0
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.time()
            have = record_count(self.settings, cdc_topics(self.settings))
            if have > before and not first:
                first = now
            if have >= target:
                last = now
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the connector emitted {have - before} of {expected} records")
            time.sleep(0.2)
        return Capture(records=expected, resumed_at=resumed, first_at=first, last_at=last)


def _run_workload(dsn: str, operations: int, seed_: int) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        report = Workload(conn, rng_seed=seed_).run(rate=0, count=operations)
    return dict(report.operations)
