"""Events for the consumer-side tests, in topics and a source database of each test's own.

:class:`EventProducer` produces domain events the way the transformer does
(key = aggregate id, the cdcflow headers, one Kafka transaction per batch,
Avro through the registry, subjects ``<topic>-<record>`` auto-registered).

:class:`ShopSource` is an in-process stand-in for CDC — neither Debezium
nor the transformer daemon runs: the shop's tables (``schema.sql``) in a
PostgreSQL schema of the test's own, and for each business operation, the
row changes it made (read back with ``RETURNING``/``SELECT``, not from the
WAL) turned into events by the shop's real mapping rules (``map_change``) and
produced to the test's topics once the database transaction has committed.
It tests the consumer side (replay, projections) on realistic events; that
the real chain yields such events is tested in ``test_shop_pipeline.py``, and
``test_replay.py`` folds orders from events of the real chain too. Nothing
another engineer's workload does can touch these tables.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from psycopg.rows import dict_row

from pipeline.cdc import Change
from pipeline.contracts.catalog import discover_events
from pipeline.domains.shop.mappings import rules
from pipeline.events import DomainEvent, SourcePosition
from pipeline.mapping import Mapped, map_change
from pipeline.replay.decode import EventDecoder
from pipeline.serde import EventSerializer
from pipeline.serde.reader import registry_lookup
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA_SQL = REPO / "pipeline" / "domains" / "shop" / "schema.sql"


def unique(prefix: str = "t") -> str:
    """A short name no other test (or engineer) uses: ``<prefix><8 hex>``."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_topics(settings: Settings, names: Iterable[str], partitions: int = 4) -> None:
    admin = AdminClient(settings.kafka.client_config())
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    )
    for future in futures.values():
        future.result(30)


def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    admin = AdminClient(settings.kafka.client_config())
    for future in admin.delete_topics(list(names)).values():
        with contextlib.suppress(KafkaException):  # already gone
            future.result(30)


def decoder_for(settings: Settings) -> EventDecoder:
    client = SchemaRegistryClient(settings.registry.client_config())
    return EventDecoder(discover_events(["pipeline.domains.shop"]), registry_lookup(client))


class EventProducer:
    """Produces domain events like the transformer: one transaction per :meth:`send`."""

    def __init__(self, settings: Settings) -> None:
        client = SchemaRegistryClient(settings.registry.client_config())
        self.serializer = EventSerializer(client, REPO / "schemas", auto_register=True)
        self.producer = Producer(
            {
                **settings.kafka.client_config("producer"),
                "transactional.id": unique("replay-test-"),
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
            }
        )
        self.producer.init_transactions(30)

    def send(self, records: Sequence[tuple[str, DomainEvent]]) -> None:
        """Produce ``(topic, event)`` pairs in one committed transaction."""
        self.producer.begin_transaction()
        for topic, event in records:
            meta = event.metadata
            assert meta is not None, "events are produced stamped"
            value = self.serializer.serialize(event, topic)
            headers: list[tuple[str, str | bytes | None]] = [
                ("cdcflow.event_type", meta.event_type.encode()),
                ("cdcflow.event_id", str(meta.event_id).encode()),
                ("cdcflow.schema_version", str(meta.schema_version).encode()),
            ]
            while True:
                try:
                    self.producer.produce(topic, value, meta.aggregate_id.encode(), headers=headers)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        self.producer.commit_transaction(60)


@dataclass(frozen=True)
class Record:
    """One record read back: where it is, when, and the event."""

    partition: int
    offset: int
    timestamp_ms: int
    event: DomainEvent


def read_topic(settings: Settings, topic: str, timeout_s: float = 120.0) -> list[Record]:
    """Every committed event of ``topic``, in partition and offset order.

    Read with a plain confluent-kafka consumer (read_committed, each partition
    from its beginning to its high watermark), not with the EventStream that
    replay and the projections read with: positions and timestamps the tests
    expect come from Kafka itself.
    """
    decoder = decoder_for(settings)
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {
            "group.id": unique("read-"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    out: list[Record] = []
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        reached: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while any(reached.get(p, -1) < end for p, end in ends.items()):
            assert time.monotonic() < deadline, f"{topic} not read to its end: {reached} {ends}"
            for msg in consumer.consume(500, 0.5):
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    reached[partition] = offset
                    continue
                reached[partition] = offset + 1
                event = decoder.decode(msg.value())  # type: ignore[arg-type]
                assert event is not None
                out.append(Record(partition, offset, msg.timestamp()[1], event))
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


class ShopSource:
    """The shop's tables in a schema of one test's own, and the events their changes make."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self.schema = f"{prefix}_shop"
        self.topics = {a: f"{prefix}.{a}.events" for a in ("customer", "order", "product")}
        self.conn = psycopg.connect(settings.source.dsn(), autocommit=True, row_factory=dict_row)
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        self.conn.execute(f"SET search_path TO {self.schema}, public")
        self.conn.execute(SCHEMA_SQL.read_text())
        self.producer = EventProducer(settings)
        self._changes: list[tuple[str, str, dict[str, Any], Any, Any]] | None = None
        self._lsn = 0

    def close(self) -> None:
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.conn.close()

    # ------------------------------------------------------------------ the CDC stand-in

    @contextmanager
    def operation(self) -> Iterator[None]:
        """One business operation: one database transaction, then its events in one Kafka one."""
        self._changes = []
        with self.conn.transaction():
            yield
            row = self.conn.execute("SELECT txid_current() AS tx").fetchone()
            assert row is not None
            tx_id = int(row["tx"])
        changes, self._changes = self._changes, None
        commit_ms = int(time.time() * 1000)
        records: list[tuple[str, DomainEvent]] = []
        for op, table, key, before, after in changes:
            self._lsn += 1
            # The shop's mapping rules name the tables of the public schema.
            change = Change(
                op=op,  # type: ignore[arg-type]
                table=f"public.{table}",
                connector=self.prefix,
                key=key,
                before=before,
                after=after,
                source=SourcePosition(
                    connector=self.prefix,
                    table=f"public.{table}",
                    lsn=self._lsn,
                    tx_id=tx_id,
                    commit_ts_ms=commit_ms,
                ),
            )
            mapped = map_change(rules, change)
            if isinstance(mapped, Mapped):
                records.extend((self.topics[e.aggregate_type()], e) for e in mapped.events)
        if records:
            self.producer.send(records)

    def _write(
        self, table: str, op: str, sql: str, params: Sequence[Any], before_sql: str | None = None
    ) -> dict[str, Any]:
        before = None
        if before_sql is not None:
            before = self.conn.execute(before_sql, params[-1:]).fetchone()
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None and self._changes is not None, "writes happen inside operation()"
        key = (
            {"order_id": row["order_id"], "line_no": row["line_no"]}
            if table == "order_lines"
            else {"id": row["id"]}
        )
        self._changes.append((op, table, key, before, row))
        return row

    # ------------------------------------------------------------------ business operations

    def register_customer(self, name: str) -> int:
        with self.operation():
            row = self._write(
                "customers",
                "c",
                "INSERT INTO customers (email, full_name) VALUES (%s, %s) RETURNING *",
                (f"{name}.{uuid.uuid4().hex[:6]}@example.com", name),
            )
        return int(row["id"])

    def add_product(self, sku: str, price: Decimal) -> int:
        with self.operation():
            row = self._write(
                "products",
                "c",
                "INSERT INTO products (sku, name, price) VALUES (%s, %s, %s) RETURNING *",
                (sku, f"Product {sku}", price),
            )
        return int(row["id"])

    def change_price(self, product_id: int, price: Decimal) -> None:
        with self.operation():
            self._write(
                "products",
                "u",
                "UPDATE products SET price = %s, updated_at = now() WHERE id = %s RETURNING *",
                (price, product_id),
                before_sql="SELECT * FROM products WHERE id = %s FOR UPDATE",
            )

    def place_order(self, customer_id: int, lines: Sequence[tuple[int, int]]) -> uuid.UUID:
        """An order of ``(product_id, quantity)`` lines at the products' current prices."""
        with self.operation():
            prices = {
                r["id"]: r["price"]
                for r in self.conn.execute(
                    "SELECT id, price FROM products WHERE id = ANY(%s)", ([p for p, _ in lines],)
                )
            }
            total = sum((prices[p] * q for p, q in lines), Decimal("0"))
            order = self._write(
                "orders",
                "c",
                "INSERT INTO orders (customer_id, total) VALUES (%s, %s) RETURNING *",
                (customer_id, total),
            )
            for no, (product_id, qty) in enumerate(lines, start=1):
                self._write(
                    "order_lines",
                    "c",
                    "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING *",
                    (order["id"], no, product_id, qty, prices[product_id]),
                )
        return uuid.UUID(str(order["id"]))

    def pay(self, order_id: uuid.UUID) -> None:
        with self.operation():
            row = self.conn.execute(
                "SELECT total FROM orders WHERE id = %s", (order_id,)
            ).fetchone()
            assert row is not None
            self._write(
                "payments",
                "c",
                "INSERT INTO payments (order_id, amount, method) VALUES (%s, %s, 'card') "
                "RETURNING *",
                (order_id, row["total"]),
            )
            self._write(
                "orders",
                "u",
                "UPDATE orders SET status = 'paid', paid_at = now(), updated_at = now() "
                "WHERE id = %s RETURNING *",
                (order_id,),
                before_sql="SELECT * FROM orders WHERE id = %s FOR UPDATE",
            )

    def cancel(self, order_id: uuid.UUID, reason: str) -> None:
        with self.operation():
            self._write(
                "orders",
                "u",
                "UPDATE orders SET status = 'cancelled', cancelled_at = now(), cancel_reason = %s, "
                "updated_at = now() WHERE id = %s RETURNING *",
                (reason, order_id),
                before_sql="SELECT * FROM orders WHERE id = %s FOR UPDATE",
            )

    def ship(self, order_id: uuid.UUID) -> None:
        with self.operation():
            self._write(
                "orders",
                "u",
                "UPDATE orders SET status = 'shipped', shipped_at = now(), "
                "tracking_number = 'TRK1', "
                "updated_at = now() WHERE id = %s RETURNING *",
                (order_id,),
                before_sql="SELECT * FROM orders WHERE id = %s FOR UPDATE",
            )

    def orders_by_customer(self) -> dict[int, dict[str, Any]]:
        """The read model computed directly from the source tables."""
        rows = self.conn.execute(
            """
            SELECT o.customer_id,
                   count(*) FILTER (WHERE o.status <> 'cancelled')::int AS orders,
                   count(*) FILTER (WHERE o.status = 'cancelled')::int AS cancelled,
                   coalesce(sum(o.total) FILTER (WHERE o.status <> 'cancelled'), 0) AS total,
                   coalesce(sum(p.amount), 0) AS paid,
                   max(o.placed_at) AS last_order_at
              FROM orders o
              LEFT JOIN (SELECT order_id, sum(amount) AS amount FROM payments GROUP BY order_id) p
                     ON p.order_id = o.id
             GROUP BY o.customer_id
            """
        ).fetchall()
        return {r["customer_id"]: {k: v for k, v in r.items() if k != "customer_id"} for r in rows}


def drop_projections(settings: Settings, prefix: str) -> None:
    """Remove every table and tracking row of the projections named ``<prefix>...``."""
    schema = settings.projections.db_schema
    with psycopg.connect(settings.source.dsn(), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{schema}.projections",)).fetchone() == (None,):
            return
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
            (schema, prefix.replace("_", "\\_") + "%"),
        ).fetchall()
        for (table,) in tables:
            conn.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
        for meta in ("projections", "projection_positions", "projection_checkpoints"):
            column = "name" if meta == "projections" else "projection"
            conn.execute(f"DELETE FROM {schema}.{meta} WHERE {column} LIKE %s", (prefix + "%",))


def with_settings(settings: Settings, **projections: Any) -> Settings:
    """``settings`` with some ``projections.*`` values changed."""
    changed = settings.projections.model_copy(update=projections)
    return settings.model_copy(update={"projections": changed})
