"""Projections on the real Kafka, registry and PostgreSQL: exactly-once across SIGKILL,
rebuild-and-swap under load, and the correction scenario (a mistaken price, corrected at the
source, rebuilt from before it).

What feeds them is not the CDC chain: the events are hand-made
(:class:`EventProducer`, produced to a topic of the test's own) or, in the
correction scenario, made by :class:`ShopSource`, an in-process stand-in for
CDC that maps the rows an operation wrote with the shop's rules and produces
the events after the commit (tests/integration/replay_support.py). Neither
Debezium nor the transformer daemon runs here; they are tested end to end in
test_shop_pipeline.py, and test_replay.py folds orders the real chain made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.domains.shop.events import OrderCancelled, OrderLineAdded, OrderPaid, OrderPlaced
from pipeline.domains.shop.projections import orders_by_customer
from pipeline.events import DomainEvent
from pipeline.replay.errors import HandlerError
from pipeline.replay.projection import Projection, Tx
from pipeline.replay.rebuild import rebuild
from pipeline.replay.runner import run_projection, run_projections
from pipeline.replay.status import projection_status
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.integration.replay_projections import ledger
from tests.integration.replay_support import (
    REPO,
    EventProducer,
    Record,
    ShopSource,
    create_topics,
    delete_topics,
    drop_projections,
    read_topic,
    unique,
    with_settings,
)
from tests.integration.test_replay import order_events

CDCFLOW = str(Path(sys.executable).parent / "cdcflow")


@pytest.fixture
def names(stack: LocalStack, settings: Settings) -> Iterator[tuple[str, str]]:
    """A projection prefix and an order-events topic of this test's own; removed afterwards."""
    prefix = unique("t")
    topic = f"{prefix}.order.events"
    create_topics(settings, [topic], 4)
    yield prefix, topic
    drop_projections(settings, prefix)
    delete_topics(settings, [topic])


def cli_env(prefix: str, topic: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CDCFLOW_PROJECTIONS__MODULES": '["tests.integration.replay_projections"]',
        "CDCFLOW_TEST_PROJECTION": prefix,
        "CDCFLOW_TEST_TOPIC": topic,
        **extra,
    }


def cli_json(env: dict[str, str], *args: str) -> Any:
    """What ``cdcflow -o json <args>`` prints, parsed."""
    out = subprocess.run(
        [CDCFLOW, "-o", "json", *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def db(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.source.dsn(), autocommit=True)


def ledger_rows(settings: Settings, prefix: str) -> list[tuple[int, int, uuid.UUID, int]]:
    schema = settings.projections.db_schema
    with db(settings) as conn:
        return conn.execute(
            f'SELECT partition, "offset", event_id, pid FROM {schema}.{prefix}_ledger_applied'
        ).fetchall()


def count(settings: Settings, table: str) -> int:
    with db(settings) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {settings.projections.db_schema}.{table}"
        ).fetchone()
        return int(row[0]) if row else 0


def expected_customers(records: list[Record]) -> dict[int, tuple[int, int, Decimal, Decimal]]:
    """(orders, cancelled, total, paid) per customer, computed from the topic's events."""
    placed: dict[uuid.UUID, OrderPlaced] = {}
    cancelled: set[uuid.UUID] = set()
    paid: Counter[uuid.UUID] = Counter()
    for r in records:
        e = r.event
        if isinstance(e, OrderPlaced):
            placed[e.order_id] = e
        elif isinstance(e, OrderCancelled):
            cancelled.add(e.order_id)
        elif isinstance(e, OrderPaid):
            paid[e.order_id] += e.amount  # type: ignore[assignment]
    out: dict[int, list[Any]] = {}
    for oid, e in placed.items():
        row = out.setdefault(e.customer_id, [0, 0, Decimal("0"), Decimal("0")])
        if oid in cancelled:
            row[1] += 1
        else:
            row[0] += 1
            row[2] += e.total
        row[3] += paid[oid]
    return {c: (r[0], r[1], r[2], r[3]) for c, r in out.items()}


def read_customers(
    settings: Settings, projection: str
) -> dict[int, tuple[int, int, Decimal, Decimal]]:
    with db(settings) as conn:
        rows = conn.execute(
            f"SELECT customer_id, orders, cancelled, total, paid "
            f"FROM {settings.projections.db_schema}.{projection}_customers"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def assert_each_event_applied_once(settings: Settings, prefix: str, records: list[Record]) -> None:
    rows = ledger_rows(settings, prefix)
    applied = Counter((p, o) for p, o, _, _ in rows)
    twice = {k: n for k, n in applied.items() if n > 1}
    assert not twice, f"applied more than once: {sorted(twice)[:10]}"
    expected = {(r.partition, r.offset) for r in records}
    missing = expected - set(applied)
    assert not missing, f"never applied: {sorted(missing)[:10]}"
    assert set(applied) == expected
    ids = {(p, o): e for p, o, e, _ in rows}
    assert all(
        ids[(r.partition, r.offset)] == r.event.metadata.event_id
        for r in records
        if r.event.metadata
    )


def produce_orders(
    producer: EventProducer, topic: str, n: int, start: int, batch: int = 30
) -> None:
    events = [e for i in range(n) for e in order_events(uuid.uuid4(), start + 10 * i)]
    for i in range(0, len(events), batch):
        producer.send([(topic, e) for e in events[i : i + batch]])


# --------------------------------------------------------------------------- SIGKILL


def test_sigkill_of_a_runner_mid_stream_then_restart_applies_every_event_once(
    settings: Settings, names: tuple[str, str]
) -> None:
    prefix, topic = names
    producer = EventProducer(settings)
    produce_orders(producer, topic, 400, 0)  # 1,200 events
    env = cli_env(prefix, topic, CDCFLOW_PROJECTIONS__BATCH_SIZE="20")

    keep_producing = threading.Event()
    keep_producing.set()

    def more() -> None:
        n = 100_000
        while keep_producing.is_set():
            produce_orders(producer, topic, 5, n)
            n += 100
            time.sleep(0.05)

    feeder = threading.Thread(target=more, daemon=True)
    feeder.start()
    runner = subprocess.Popen(
        [CDCFLOW, "projections", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                if count(settings, f"{prefix}_ledger_applied") >= 400:
                    break
            except psycopg.errors.UndefinedTable:
                continue
        runner.send_signal(signal.SIGKILL)
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == -signal.SIGKILL
    applied_at_kill = count(settings, f"{prefix}_ledger_applied")
    time.sleep(0.5)
    keep_producing.clear()
    feeder.join(30)
    total_now = len(read_topic(settings, topic))
    assert 0 < applied_at_kill < total_now, "the kill must land mid-stream"

    # While stopped, status shows the lag in events and seconds.
    lag = {s["projection"]: s for s in cli_json(env, "projections", "status")}
    assert lag[f"{prefix}_ledger"]["events_behind"] >= total_now - applied_at_kill
    assert lag[f"{prefix}_ledger"]["seconds_behind"] > 0
    assert lag[f"{prefix}_ledger"]["running_pid"] is None

    produce_orders(producer, topic, 50, 500_000)  # more while it is down
    restarted = subprocess.run(
        [CDCFLOW, "-o", "json", "projections", "run", "--stop-when-idle", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restarted.returncode == 0, restarted.stderr

    records = read_topic(settings, topic)
    assert_each_event_applied_once(settings, prefix, records)
    assert len({pid for *_, pid in ledger_rows(settings, prefix)}) == 2  # both runs applied events
    assert read_customers(settings, f"{prefix}_obc") == expected_customers(records)
    steps = sum(isinstance(r.event, OrderPlaced | OrderPaid) for r in records)
    assert count(settings, f"{prefix}_tl_steps") == steps

    status = cli_json(env, "projections", "status")
    assert all(s["events_behind"] == 0 and s["seconds_behind"] == 0 for s in status)


# --------------------------------------------------------------------------- rebuild and swap


def test_rebuild_and_swap_while_queries_run_and_the_runner_applies(
    settings: Settings, names: tuple[str, str]
) -> None:
    prefix, topic = names
    settings = with_settings(settings, batch_size=50, swap_lock_timeout_s=2.0, checkpoint_every_s=0)
    obc = orders_by_customer.variant(name=f"{prefix}_obc", topics=[topic])
    led = ledger(f"{prefix}_ledger", topic)
    producer = EventProducer(settings)
    produce_orders(producer, topic, 600, 0)  # 1,800 events
    stop_runner, stop_load, stop_queries = threading.Event(), threading.Event(), threading.Event()
    runners = threading.Thread(
        target=run_projections, args=(settings, [obc, led], stop_runner), daemon=True
    )
    runners.start()
    schema = settings.projections.db_schema
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (
                count(settings, f"{prefix}_obc_customers") > 0
                and count(settings, f"{prefix}_ledger_applied") > 0
            ):
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.1)

    answers: list[tuple[float, int, int]] = []
    errors: list[str] = []

    def query() -> None:
        with db(settings) as conn:
            while not stop_queries.is_set():
                try:
                    row = conn.execute(
                        f"SELECT (SELECT count(*) FROM {schema}.{prefix}_obc_customers), "
                        f"(SELECT count(*) FROM {schema}.{prefix}_ledger_applied)"
                    ).fetchone()
                    assert row is not None
                    answers.append((time.monotonic(), int(row[0]), int(row[1])))
                except psycopg.Error as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

    def load() -> None:
        n = 100_000
        while not stop_load.is_set():
            produce_orders(producer, topic, 10, n)
            n += 1000
            time.sleep(0.02)

    readers = [threading.Thread(target=query, daemon=True) for _ in range(3)]
    feeder = threading.Thread(target=load, daemon=True)
    for t in [*readers, feeder]:
        t.start()
    try:
        reports = []
        with db(settings) as probe:
            for projection in (obc, led, obc):
                # Between the rebuild's batches, the live read model answers too: a
                # query from its progress callback, so that some query surely falls
                # inside each rebuild, however fast it runs.
                inside: list[tuple[bool, bool]] = []

                def ask(
                    *_: object, conn: Any = probe, inside: list[tuple[bool, bool]] = inside
                ) -> None:
                    # EXISTS, not count(*): one query per batch must not slow the
                    # rebuild below the rate the load produces at.
                    row = conn.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {schema}.{prefix}_obc_customers), "
                        f"EXISTS (SELECT 1 FROM {schema}.{prefix}_ledger_applied)"
                    ).fetchone()
                    inside.append((bool(row[0]), bool(row[1])))

                report = rebuild(settings, projection, progress=ask)
                reports.append((inside, report))
        stop_load.set()
        feeder.join(30)
        # Let the runners catch up with the last events, then stop them (a wait, not
        # a bound: on a loaded machine the backlog of the load takes minutes).
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if all(s.behind == 0 for s in projection_status(settings, [obc, led])):
                break
            time.sleep(0.2)
    finally:
        stop_load.set()
        stop_queries.set()
        stop_runner.set()
        for t in readers:
            t.join(30)
        runners.join(60)

    assert errors == []
    assert answers and min(a[1] for a in answers) > 0 and min(a[2] for a in answers) > 0, (
        "never empty"
    )
    for inside, report in reports:
        assert inside, f"no batch of the rebuild of {report.projection}"
        assert all(all(a) for a in inside), f"empty during the rebuild of {report.projection}"
        assert report.swap_attempts >= 1 and report.retired
    assert [r.generation for *_, r in reports] == [1, 1, 2]
    # The live runner applied events during the rebuilds; the swaps took them over exactly.
    records = read_topic(settings, topic)
    assert_each_event_applied_once(settings, prefix, records)
    assert read_customers(settings, f"{prefix}_obc") == expected_customers(records)
    with db(settings) as conn:
        leftovers = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s "
            "AND (tablename LIKE %s OR tablename LIKE %s)",
            (schema, prefix + "%", "%\\_\\_g%", "%\\_\\_old%"),
        ).fetchall()
    assert leftovers == []


# ----------------------------------------------------------------------- the correction scenario


def test_a_mistaken_price_corrected_at_the_source_and_rebuilt_from_before_it(
    settings: Settings, names: tuple[str, str]
) -> None:
    prefix, _ = names
    source = ShopSource(settings, prefix)
    topics = list(source.topics.values())
    create_topics(settings, [t for t in topics if t != f"{prefix}.order.events"], 4)
    order_topic = source.topics["order"]
    env = cli_env(prefix, order_topic)
    obc = orders_by_customer.variant(name=f"{prefix}_obc", topics=[order_topic])
    settings = with_settings(settings, checkpoint_every_s=0)
    try:
        ann, bob, cid = (source.register_customer(n) for n in ("ann", "bob", "cid"))
        lamp = source.add_product(f"{prefix}-lamp", Decimal("19.99"))
        bulb = source.add_product(f"{prefix}-bulb", Decimal("5.00"))
        first = source.place_order(ann, [(lamp, 2)])
        paid = source.place_order(bob, [(lamp, 1), (bulb, 3)])
        source.pay(paid)
        source.ship(paid)
        source.place_order(cid, [(bulb, 1)])
        source.pay(first)

        # The read model runs; a checkpoint is taken (runners take them periodically).
        run_projection(settings, obc, threading.Event(), stop_when_idle_s=2)
        subprocess.run(
            [CDCFLOW, "projections", "checkpoint", f"{prefix}_obc"],
            env=env,
            check=True,
            capture_output=True,
        )
        time.sleep(0.5)
        before_the_mistake = time.time()
        time.sleep(0.5)

        # The mistake: 1999.00 typed for 19.99; two customers order at it.
        source.change_price(lamp, Decimal("1999.00"))
        wrong_ann = source.place_order(ann, [(lamp, 1)])
        wrong_cid = source.place_order(cid, [(lamp, 2), (bulb, 1)])
        run_projection(settings, obc, threading.Event(), stop_when_idle_s=2)
        noticed = read_customers(settings, f"{prefix}_obc")
        assert noticed[cid][2] == Decimal("4008.00")  # 5.00, then 2 x 1999.00 + 5.00: noticed

        # Corrected at the source: the price is restored, the mispriced orders are
        # cancelled and placed again at the right price.
        source.change_price(lamp, Decimal("19.99"))
        for oid in (wrong_ann, wrong_cid):
            source.cancel(oid, "mispriced")
        source.place_order(ann, [(lamp, 1)])
        source.place_order(cid, [(lamp, 2), (bulb, 1)])

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before_the_mistake))
        stamp += f".{int(before_the_mistake * 1000) % 1000:03d}Z"
        rebuilt = subprocess.run(
            [CDCFLOW, "-o", "json", "projections", "rebuild", f"{prefix}_obc", "--from", stamp],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        report = json.loads(rebuilt.stdout)
        events = read_topic(settings, order_topic)
        # Replayed on top of the checkpoint from before the mistake: the events the
        # projection handles since then, not the whole topic.
        handled = [r for r in events if type(r.event) in obc.event_types]
        since = sum(1 for r in handled if r.timestamp_ms >= before_the_mistake * 1000)
        assert report["checkpoint"] is not None
        assert since == report["events_applied"] < len(handled)

        with db(settings) as conn:
            rows = conn.execute(
                f"SELECT customer_id, orders, cancelled, total, paid, last_order_at "
                f"FROM {settings.projections.db_schema}.{prefix}_obc_customers"
            ).fetchall()
        read_model = {
            r[0]: dict(
                zip(("orders", "cancelled", "total", "paid", "last_order_at"), r[1:], strict=True)
            )
            for r in rows
        }
        from_the_database = source.orders_by_customer()
        assert read_model == from_the_database
        assert read_model[cid]["total"] == Decimal("5.00") + 2 * Decimal("19.99") + Decimal("5.00")
        assert read_model[cid]["cancelled"] == 1
    finally:
        source.close()
        delete_topics(settings, [t for t in topics if t != f"{prefix}.order.events"])


def test_a_second_runner_of_the_same_projection_is_refused(
    settings: Settings, names: tuple[str, str]
) -> None:
    prefix, topic = names
    env = cli_env(prefix, topic)
    first = subprocess.Popen(
        [CDCFLOW, "projections", "run", f"{prefix}_ledger"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            status = cli_json(env, "projections", "status", f"{prefix}_ledger")
            if status[0]["running_pid"]:
                break
            time.sleep(0.2)
        assert status and status[0]["running_pid"]
        second = subprocess.run(
            [CDCFLOW, "projections", "run", f"{prefix}_ledger"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    assert first.returncode == 0


def test_a_failing_handler_stops_the_runner_at_that_event_and_a_restart_resumes_there(
    settings: Settings, names: tuple[str, str]
) -> None:
    prefix, topic = names
    produce_orders(EventProducer(settings), topic, 100, 0)
    records = read_topic(settings, topic)
    poison = records[len(records) // 2]
    broken = {"on": True}
    strict = ledger(f"{prefix}_ledger", topic)
    recording = strict.handler(OrderPlaced)
    assert recording is not None
    # The same ledger table, with a handler that fails on one event.
    flaky = Projection(strict.name, topics=strict.topics, tables=strict.tables)

    @flaky.on(OrderPlaced, OrderLineAdded, OrderPaid)
    def _maybe(db: Tx, event: DomainEvent) -> None:
        if broken["on"] and event.metadata == poison.event.metadata:
            raise RuntimeError("a bug in the handler")
        recording(db, event)

    settings = with_settings(settings, batch_size=25)
    with pytest.raises(HandlerError) as info:
        run_projection(settings, flaky, threading.Event(), stop_when_idle_s=2)
    assert (info.value.partition, info.value.offset) == (poison.partition, poison.offset)
    applied = {(p, o) for p, o, *_ in ledger_rows(settings, prefix)}
    assert (poison.partition, poison.offset) not in applied
    assert all(o < poison.offset for p, o in applied if p == poison.partition)

    broken["on"] = False  # the fix is deployed
    run_projection(settings, flaky, threading.Event(), stop_when_idle_s=2)
    assert_each_event_applied_once(settings, prefix, records)
