"""Replay throughput over a million events, against a raw consume of the same topic.

    .venv/bin/python benchmarks/replay_bench.py [--events 1000000] [--topic NAME]

The first run fills a topic of its own (``bench-replay.order.events``, 6
partitions) with shop order events shaped like the demo's (an order placed,
1-3 lines, paid, then shipped or cancelled), produced as the transformer
produces them: Avro through the registry, key = order id, one Kafka
transaction per 500 events. Later runs reuse the topic when it holds enough.

Then every pass reads the whole topic, all partitions, from the beginning to
the end (manual assignment, read_committed), and reports events/s:

    raw consume          records fetched and their values touched, no decoding (the baseline)
    fastavro dicts       + Avro decoding with the cached writer schemas (EventDecoder.record)
    replay (models)      + upcasting and validation into the pydantic event classes: the
                         library's replay()
    replay (gc tuned)    the same inside gc_tuned() (fewer cyclic-GC passes), as the CLI runs it
    cdcflow replay       the command itself, in a subprocess (process start included)
    confluent + models   confluent-kafka's AvroDeserializer instead of the fastavro decoder,
                         then the same model validation (the alternative, for comparison)
    replay + fold        replay() (gc tuned) folding every event into its Order aggregate

Run it on the local stack (``cdcflow stack up``); figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.domains.shop.events import (
    OrderCancelled,
    OrderLineAdded,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)
from pipeline.domains.shop.order import Order, apply
from pipeline.events import DomainEvent, EventMetadata, SourcePosition, derive_event_id
from pipeline.replay import EndAt, EventStream, make_decoder, replay
from pipeline.replay.replay import gc_tuned
from pipeline.serde import EventSerializer
from pipeline.serde.avro import reader
from pipeline.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
CDCFLOW = str(Path(sys.executable).parent / "cdcflow")
PARTITIONS = 6
T0 = datetime(2026, 11, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- generating


def _stamped(event: DomainEvent, n: int) -> DomainEvent:
    cls = type(event)
    source = SourcePosition(
        connector="bench", table="public.orders", lsn=n, tx_id=n // 5, commit_ts_ms=n
    )
    return event.stamped(
        EventMetadata(
            event_id=derive_event_id(source, str(n), cls.event_type()),
            event_type=cls.event_type(),
            aggregate_type=cls.aggregate_type(),
            aggregate_id=event.aggregate_id(),
            occurred_at=T0 + timedelta(milliseconds=n),
            correlation_id=str(n // 5),
            source=source,
        )
    )


def _order(rng: random.Random, n: int) -> list[DomainEvent]:
    oid = uuid.UUID(int=rng.getrandbits(128), version=4)
    lines = [
        OrderLineAdded(
            order_id=oid,
            line_no=i + 1,
            product_id=rng.randint(1, 500),
            quantity=rng.randint(1, 3),
            unit_price=Decimal(rng.randint(100, 20000)) / 100,
        )
        for i in range(rng.randint(1, 3))
    ]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    when = T0 + timedelta(seconds=n)
    events: list[DomainEvent] = [
        OrderPlaced(
            order_id=oid,
            customer_id=rng.randint(1, 50_000),
            total=total,
            currency="EUR",
            placed_at=when,
        ),
        *lines,
        OrderPaid(
            order_id=oid,
            payment_id=n,
            amount=total,
            method=rng.choice(["card", "paypal", "invoice"]),
            paid_at=when,
        ),
    ]
    if rng.random() < 0.85:
        events.append(OrderShipped(order_id=oid, tracking_number=f"TRK{n:010d}", shipped_at=when))
    else:
        events.append(
            OrderCancelled(
                order_id=oid, reason="customer request", previous_status="paid", cancelled_at=when
            )
        )
    return [_stamped(e, n * 10 + i) for i, e in enumerate(events)]


def _count(settings: Settings, topic: str) -> int:
    stream = EventStream(settings.kafka.client_config("consumer"), [topic], end=EndAt())
    with stream:
        return sum(
            end - start
            for tp, end in stream.end_offsets.items()
            for start in [stream.start_offsets[tp]]
        )


def ensure_topic(settings: Settings, topic: str, events: int) -> int:
    """Create and fill ``topic`` unless it already holds ``events`` (offsets count markers too)."""
    admin = AdminClient(settings.kafka.client_config())
    if topic in admin.list_topics(timeout=30).topics:
        have = _count(settings, topic)
        if have >= events:
            print(f"reusing {topic}: {have:,} offsets", file=sys.stderr)
            return have
        admin.delete_topics([topic])[topic].result(60)
        time.sleep(2)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[
        topic
    ].result(60)
    serializer = EventSerializer(
        SchemaRegistryClient(settings.registry.client_config()),
        REPO / "schemas",
        auto_register=True,
    )
    producer = Producer(
        {
            **settings.kafka.client_config("producer"),
            "transactional.id": f"{topic}-filler",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(60)
    rng = random.Random(7)
    started = time.monotonic()
    produced = n = 0
    batch: list[DomainEvent] = []
    while produced < events:
        batch.extend(_order(rng, n))
        n += 1
        if len(batch) >= 500 or produced + len(batch) >= events:
            batch = batch[: events - produced]
            producer.begin_transaction()
            for event in batch:
                meta = event.metadata
                assert meta is not None
                value = serializer.serialize(event, topic)
                headers: list[tuple[str, str | bytes | None]] = [
                    ("cdcflow.event_type", meta.event_type.encode()),
                    ("cdcflow.event_id", str(meta.event_id).encode()),
                    ("cdcflow.schema_version", b"1"),
                ]
                while True:
                    try:
                        producer.produce(topic, value, meta.aggregate_id.encode(), headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.commit_transaction(120)
            produced += len(batch)
            batch = []
            if produced % 100_000 < 500:
                print(
                    f"  generated {produced:,} events "
                    f"({produced / (time.monotonic() - started):,.0f}/s)",
                    file=sys.stderr,
                )
    print(
        f"generated {produced:,} events into {topic} in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
    )
    return _count(settings, topic)


# --------------------------------------------------------------------------- the passes


def _stream(settings: Settings, topic: str, batch_size: int) -> EventStream:
    return EventStream(
        settings.kafka.client_config("consumer"), [topic], end=EndAt(), batch_size=batch_size
    )


def raw_consume(settings: Settings, topic: str, batch_size: int) -> int:
    n = size = 0
    with _stream(settings, topic, batch_size) as stream:
        for batch in stream.batches():
            n += len(batch)
            size += sum(len(m.value() or b"") for m in batch)
    return n


def fastavro_dicts(settings: Settings, topic: str, batch_size: int) -> int:
    decoder = make_decoder(settings)
    n = 0
    with _stream(settings, topic, batch_size) as stream:
        for batch in stream.batches():
            for msg in batch:
                decoder.record(msg.value())
            n += len(batch)
    return n


def replay_models(settings: Settings, topic: str, batch_size: int) -> int:
    summary = replay(
        settings.kafka.client_config("consumer"),
        [topic],
        make_decoder(settings),
        batch_size=batch_size,
    )
    return summary.events


def replay_models_gc_tuned(settings: Settings, topic: str, batch_size: int) -> int:
    with gc_tuned():
        return replay_models(settings, topic, batch_size)


def confluent_models(settings: Settings, topic: str, batch_size: int) -> int:
    decoder = make_decoder(settings)  # only for its name -> class map
    deserialize = reader(SchemaRegistryClient(settings.registry.client_config()))
    ctx = SerializationContext(topic, MessageField.VALUE)
    classes = {cls.event_type(): cls for cls in decoder.classes.values()}
    n = 0
    with _stream(settings, topic, batch_size) as stream:
        for batch in stream.batches():
            for msg in batch:
                record = cast(dict[str, Any], deserialize(msg.value(), ctx))
                classes[record["metadata"]["event_type"]].model_validate(record)
            n += len(batch)
    return n


def replay_fold(settings: Settings, topic: str, batch_size: int) -> int:
    orders: dict[str, Order] = {}

    def fold_in(delivered: list[Any]) -> None:
        for d in delivered:
            key = d.key.decode()
            state = apply(orders.get(key), d.event)
            if state is not None:
                orders[key] = state

    with gc_tuned():
        summary = replay(
            settings.kafka.client_config("consumer"),
            [topic],
            make_decoder(settings),
            batch_size=batch_size,
            on_events=fold_in,
        )
    print(f"  folded {len(orders):,} orders", file=sys.stderr)
    return summary.events


def cli_replay(settings: Settings, topic: str, batch_size: int) -> int:
    command = [CDCFLOW, "-o", "json", "replay", "--topic", topic, "--no-progress"]
    out = subprocess.run(
        [*command, "--batch-size", str(batch_size)],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    if out.returncode != 0:
        raise SystemExit(f"cdcflow replay failed ({out.returncode}):\n{out.stderr}")
    return int(json.loads(out.stdout)["events"])


PASSES: dict[str, Callable[[Settings, str, int], int]] = {
    "raw consume": raw_consume,
    "fastavro dicts": fastavro_dicts,
    "replay (models)": replay_models,
    "replay (gc tuned)": replay_models_gc_tuned,
    "cdcflow replay": cli_replay,
    "confluent + models": confluent_models,
    "replay + fold": replay_fold,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--topic", default="bench-replay.order.events")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument(
        "--passes", default=",".join(PASSES), help="comma-separated, from: " + ", ".join(PASSES)
    )
    args = parser.parse_args()
    settings = load_settings()
    offsets = ensure_topic(settings, args.topic, args.events)
    results = []
    for name in [p.strip() for p in args.passes.split(",") if p.strip()]:
        started = time.monotonic()
        events = PASSES[name](settings, args.topic, args.batch_size)
        seconds = time.monotonic() - started
        results.append(
            {
                "pass": name,
                "events": events,
                "seconds": round(seconds, 2),
                "events_per_second": round(events / seconds),
            }
        )
        print(
            f"  {name}: {events:,} events in {seconds:.1f}s = {events / seconds:,.0f} events/s",
            file=sys.stderr,
        )
    baseline = (
        results[0]["events_per_second"] if results and results[0]["pass"] == "raw consume" else None
    )
    print(
        f"\ntopic {args.topic}: {offsets:,} offsets, {PARTITIONS} partitions; "
        f"cpus: {os.cpu_count()}"
    )
    print(f"{'pass':<20} {'events':>10} {'seconds':>8} {'events/s':>10} {'of raw':>7}")
    for r in results:
        share = f"{r['events_per_second'] / baseline:.0%}" if baseline else ""
        print(
            f"{r['pass']:<20} {r['events']:>10,} {r['seconds']:>8.1f} "
            f"{r['events_per_second']:>10,} {share:>7}"
        )
    print(json.dumps({"topic": args.topic, "offsets": offsets, "results": results}))


if __name__ == "__main__":
    main()
