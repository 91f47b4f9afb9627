"""Replay on the real Kafka and registry: from a timestamp on every partition, offsets, until,
aggregates.

Most tests here produce hand-made events (:class:`EventProducer`, stamped
with made-up source positions) straight to a topic of their own: they test
the consumer side, not CDC. Expected positions come from a plain
confluent-kafka consumer (:func:`read_topic`), expected states are written
out by hand. The last test folds orders from events the real chain made:
PostgreSQL -> Debezium -> the transformer (tests/integration/harness.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.domains.shop.events import OrderLineAdded, OrderPaid, OrderPlaced, _ShopEvent
from pipeline.domains.shop.order import Order, OrderLine, order_repository
from pipeline.events import DomainEvent, EventMetadata, SourcePosition, derive_event_id
from pipeline.replay.positions import EndAt, StartAt, format_ms
from pipeline.replay.replay import replay
from pipeline.replay.stream import Delivered
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.integration.harness import REPO, pipeline_run
from tests.integration.replay_support import (
    EventProducer,
    Record,
    create_topics,
    decoder_for,
    delete_topics,
    read_topic,
    unique,
)

PARTITIONS = 4
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CDCFLOW = str(Path(sys.executable).parent / "cdcflow")
SHOP_SCHEMA = REPO / "pipeline" / "domains" / "shop" / "schema.sql"


def stamp(event: DomainEvent, n: int) -> DomainEvent:
    source = SourcePosition(connector="replay-test", table="public.orders", lsn=n, commit_ts_ms=n)
    cls = type(event)
    return event.stamped(
        EventMetadata(
            event_id=derive_event_id(source, str(n), cls.event_type()),
            event_type=cls.event_type(),
            aggregate_type=cls.aggregate_type(),
            aggregate_id=event.aggregate_id(),
            occurred_at=T0 + timedelta(seconds=n),
            source=source,
        )
    )


def order_events(order_id: uuid.UUID, n: int) -> list[DomainEvent]:
    """Placed, one line, paid: three events of one order (numbers from ``n`` keep ids apart)."""
    return [
        stamp(
            OrderPlaced(
                order_id=order_id,
                customer_id=n % 7,
                total=Decimal("12.50"),
                currency="EUR",
                placed_at=T0,
            ),
            n,
        ),
        stamp(
            OrderLineAdded(
                order_id=order_id, line_no=1, product_id=3, quantity=5, unit_price=Decimal("2.50")
            ),
            n + 1,
        ),
        stamp(
            OrderPaid(
                order_id=order_id, payment_id=n, amount=Decimal("12.50"), method="card", paid_at=T0
            ),
            n + 2,
        ),
    ]


@pytest.fixture
def topic(stack: LocalStack, settings: Settings) -> Iterator[str]:
    name = f"{unique('replay')}.order.events"
    create_topics(settings, [name], PARTITIONS)
    yield name
    delete_topics(settings, [name])


def produce_orders(
    producer: EventProducer, topic: str, orders: list[uuid.UUID], start: int
) -> None:
    # A few transactions, as the transformer writes batches.
    events = [e for i, oid in enumerate(orders) for e in order_events(oid, start + 10 * i)]
    for i in range(0, len(events), 25):
        producer.send([(topic, e) for e in events[i : i + 25]])


def first_at_or_after(records: list[Record], ts: int) -> dict[int, int]:
    first: dict[int, int] = {}
    for r in records:
        if r.timestamp_ms >= ts and r.partition not in first:
            first[r.partition] = r.offset
    return first


def test_replay_from_a_timestamp_starts_at_the_right_event_on_every_partition(
    settings: Settings, topic: str
) -> None:
    producer = EventProducer(settings)
    before = [uuid.uuid4() for _ in range(40)]
    after = [uuid.uuid4() for _ in range(40)]
    produce_orders(producer, topic, before, 0)
    time.sleep(0.3)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.3)
    produce_orders(producer, topic, after, 10_000)

    records = read_topic(settings, topic)
    expected_first = first_at_or_after(records, cut_ms)
    # The cut must fall inside every partition, or the test proves nothing.
    assert sorted(expected_first) == list(range(PARTITIONS))
    assert all(
        any(r.partition == p and r.timestamp_ms < cut_ms for r in records)
        for p in range(PARTITIONS)
    )
    expected = [r for r in records if r.timestamp_ms >= cut_ms]
    assert {r.event.aggregate_id() for r in expected} == {str(o) for o in after}

    got: list[Delivered] = []
    summary = replay(
        settings.kafka.client_config("consumer"),
        [topic],
        decoder_for(settings),
        start=StartAt.at(cut_ms),
        on_events=got.extend,
    )

    first_seen: dict[int, int] = {}
    for d in got:
        first_seen.setdefault(d.partition, d.offset)
    assert first_seen == expected_first
    assert [
        (d.partition, d.offset) for d in sorted(got, key=lambda d: (d.partition, d.offset))
    ] == [(r.partition, r.offset) for r in expected]
    assert summary.events == len(expected) == 120
    assert summary.per_type == Counter({"OrderPlaced": 40, "OrderLineAdded": 40, "OrderPaid": 40})


def test_replay_until_a_timestamp_and_from_offsets(settings: Settings, topic: str) -> None:
    producer = EventProducer(settings)
    produce_orders(producer, topic, [uuid.uuid4() for _ in range(30)], 0)
    time.sleep(0.3)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.3)
    produce_orders(producer, topic, [uuid.uuid4() for _ in range(30)], 10_000)
    records = read_topic(settings, topic)
    kafka = settings.kafka.client_config("consumer")

    until: list[Delivered] = []
    replay(
        kafka,
        [topic],
        decoder_for(settings),
        end=EndAt(timestamp_ms=cut_ms),
        on_events=until.extend,
    )
    assert sorted((d.partition, d.offset) for d in until) == [
        (r.partition, r.offset) for r in records if r.timestamp_ms < cut_ms
    ]

    # From offsets: partition 0 from its 4th event, the others from their beginning.
    p0 = [r for r in records if r.partition == 0]
    offsets: list[Delivered] = []
    replay(
        kafka,
        [topic],
        decoder_for(settings),
        start=StartAt(offsets={(topic, 0): p0[3].offset}),
        on_events=offsets.extend,
    )
    assert sorted((d.partition, d.offset) for d in offsets) == [
        (r.partition, r.offset) for r in records if r.partition != 0 or r.offset >= p0[3].offset
    ]


def test_cdcflow_replay_command(settings: Settings, topic: str) -> None:
    producer = EventProducer(settings)
    produce_orders(producer, topic, [uuid.uuid4() for _ in range(20)], 0)
    time.sleep(0.3)
    cut = datetime.now(UTC)
    time.sleep(0.3)
    produce_orders(producer, topic, [uuid.uuid4() for _ in range(10)], 10_000)
    records = read_topic(settings, topic)
    cut_ms = int(cut.timestamp() * 1000)

    out = subprocess.run(
        [
            CDCFLOW,
            "-o",
            "json",
            "replay",
            "--topic",
            topic,
            "--from",
            cut.isoformat().replace("+00:00", "Z"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=True,
    )
    summary = json.loads(out.stdout)
    assert summary["events"] == 30 == sum(1 for r in records if r.timestamp_ms >= cut_ms)
    assert summary["per_type"] == {"OrderLineAdded": 10, "OrderPaid": 10, "OrderPlaced": 10}
    assert summary["first_timestamp_ms"] >= cut_ms

    text = subprocess.run(
        [
            CDCFLOW,
            "replay",
            "--topic",
            topic,
            "--from-offsets",
            "0:0",
            "--until",
            format_ms(cut_ms),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "60 events in" in text.stdout
    assert "OrderPlaced     20" in text.stdout
    assert "events" in text.stderr  # the progress line


def test_the_order_repository_loads_one_order_from_its_partition(
    settings: Settings, topic: str
) -> None:
    producer = EventProducer(settings)
    orders = [uuid.uuid4() for _ in range(12)]
    produce_orders(producer, topic, orders, 0)
    records = read_topic(settings, topic)
    repo = order_repository(settings.kafka.client_config("consumer"), decoder_for(settings), topic)

    wanted = orders[5]  # its events are numbered from 50 (order_events(wanted, 50))
    assert sum(r.event.aggregate_id() == str(wanted) for r in records) == 3
    order = repo.load(str(wanted))
    expected = Order(
        order_id=wanted,
        status="paid",
        customer_id=50 % 7,
        total=Decimal("12.50"),
        currency="EUR",
        placed_at=T0,
        lines=(OrderLine(line_no=1, product_id=3, quantity=5, unit_price=Decimal("2.50")),),
        paid=Decimal("12.50"),
        payment_ids=(50,),
        version=3,
    )
    assert order == expected
    assert repo.load(str(uuid.uuid4())) is None

    everything = repo.load_all()
    assert set(everything) == {str(o) for o in orders}
    assert everything[str(wanted)] == expected


SHOP_TABLES = [
    f"public.{t}" for t in ("customers", "products", "orders", "order_lines", "payments")
]


def test_the_order_repository_folds_an_order_the_real_pipeline_made(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop's rows through Debezium and the transformer, folded back into the order."""
    # The run names the event topics after itself through __domain__, which the
    # shop's events take from their package unless it is set.
    monkeypatch.setattr(_ShopEvent, "__domain__", "shop", raising=False)
    with pipeline_run(
        stack,
        settings,
        tmp_path,
        monkeypatch,
        domain="pipeline.domains.shop",
        event_base=_ShopEvent,
        schema_sql=SHOP_SCHEMA,
        label="fold",
    ) as run:
        run.register_contracts()
        run.start_connector(SHOP_TABLES)
        run.start_transformer()
        topic = run.topic_of(OrderPlaced)
        with run.db() as conn:
            cid = conn.execute(
                "INSERT INTO customers (email, full_name) VALUES ('fold@example.com', 'F')"
                " RETURNING id"
            ).fetchone()["id"]  # type: ignore[index]
            p1, p2 = (
                conn.execute(
                    "INSERT INTO products (sku, name, price) VALUES (%s, %s, %s) RETURNING id",
                    (sku, sku, price),
                ).fetchone()["id"]  # type: ignore[index]
                for sku, price in (("K", "12.25"), ("F", "3.10"))
            )
            with conn.transaction():
                order = conn.execute(
                    "INSERT INTO orders (customer_id, total) VALUES (%s, 30.70)"
                    " RETURNING id, placed_at",
                    (cid,),
                ).fetchone()
                assert order is not None
                o1 = order["id"]
                conn.execute(
                    "INSERT INTO order_lines VALUES (%s, 1, %s, 2, 12.25), (%s, 2, %s, 2, 3.10)",
                    (o1, p1, o1, p2),
                )
            with conn.transaction():
                pay = conn.execute(
                    "INSERT INTO payments (order_id, amount, method) VALUES (%s, 30.70, 'card')"
                    " RETURNING id",
                    (o1,),
                ).fetchone()["id"]  # type: ignore[index]
                conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (o1,))
            # Placed, two lines, paid. Once they are out, the connector's snapshot
            # (if it read them) is over: the shipping is streamed as an update.
            run.read(topic, 4, avro=True)
            shipped_at = conn.execute(
                "UPDATE orders SET status = 'shipped', shipped_at = now(),"
                " tracking_number = 'TRK-FOLD' WHERE id = %s RETURNING shipped_at",
                (o1,),
            ).fetchone()["shipped_at"]  # type: ignore[index]
        events = run.read(topic, 5, avro=True)
        assert sorted(e.value["metadata"]["event_type"] for e in events) == [
            "OrderLineAdded",
            "OrderLineAdded",
            "OrderPaid",
            "OrderPlaced",
            "OrderShipped",
        ]

        repo = order_repository(
            run.settings.kafka.client_config("consumer"), decoder_for(run.settings), topic
        )
        assert repo.load(str(o1)) == Order(
            order_id=o1,
            status="shipped",
            customer_id=cid,
            total=Decimal("30.70"),
            currency="EUR",
            placed_at=order["placed_at"],
            lines=(
                OrderLine(line_no=1, product_id=p1, quantity=2, unit_price=Decimal("12.25")),
                OrderLine(line_no=2, product_id=p2, quantity=2, unit_price=Decimal("3.10")),
            ),
            paid=Decimal("30.70"),
            payment_ids=(pay,),
            shipped_at=shipped_at,
            tracking_number="TRK-FOLD",
            version=5,
        )
