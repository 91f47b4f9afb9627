"""Helpers for tests that run the real shop pipeline on the local stack.

Nothing here fakes a component: the database, Connect with Debezium, Kafka and
the registry are the stack's; the transformer is cdcflow's own, in a thread.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.cli import cli
from pipeline.domains.shop.source import apply_schema, seed
from pipeline.serde.avro import reader
from pipeline.settings import Settings
from pipeline.transformer import Metrics, Transformer, build_transformer
from tests.support.db import retry_on_deadlock


def run_cli(*args: str) -> None:
    """Run a cdcflow command in this process; fail the test on a non-zero exit."""
    try:
        cli.main(args=list(args), prog_name="cdcflow", standalone_mode=False)
    except SystemExit as exc:
        assert exc.code in (0, None), f"cdcflow {' '.join(args)} exited {exc.code}"


def prepare_shop(settings: Settings) -> None:
    """Shop schema + seed, contracts registered, connector applied and streaming."""
    with psycopg.connect(settings.source.dsn(), autocommit=True) as conn:
        retry_on_deadlock(lambda: apply_schema(conn))
        retry_on_deadlock(lambda: seed(conn))
    run_cli("schemas", "register")
    run_cli("connectors", "apply", "--wait")
    wait_streaming(settings)


def wait_streaming(settings: Settings, timeout_s: float = 180.0) -> None:
    """Wait until the shop connector streams: its initial snapshot is over.

    A connector reports RUNNING while it still snapshots; a row a test changes
    then may be read by the snapshot (one op=r record of its latest state)
    instead of streamed change by change. A marker written now and seen as a
    streamed change proves the snapshot is behind us.
    """
    marker = int(time.time() * 1000) % 1_000_000_000 + 10
    topic = "shop.public.cdcflow_heartbeat"
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {
            "group.id": f"it-wait-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            # On a new cluster the topic appears with the first change; a pattern
            # subscription sees it at the next metadata refresh (default: 5 min).
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([f"^{topic.replace('.', '[.]')}$"])
    deadline = time.monotonic() + timeout_s
    next_write = 0.0
    try:
        while time.monotonic() < deadline:
            if time.monotonic() >= next_write:
                with psycopg.connect(settings.source.dsn(), autocommit=True) as conn:
                    conn.execute(
                        "INSERT INTO cdcflow_heartbeat (id, ts) VALUES (%s, now())"
                        " ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts",
                        (marker,),
                    )
                next_write = time.monotonic() + 5
            for msg in consumer.consume(100, 0.5):
                if msg.error() or not msg.value():
                    continue
                payload = json.loads(msg.value() or b"{}").get("payload") or {}
                after = payload.get("after") or {}
                if after.get("id") == marker and payload.get("op") in ("c", "u"):
                    return
        raise AssertionError(f"the shop connector did not stream a change within {timeout_s}s")
    finally:
        consumer.close()


@dataclass
class RunningTransformer:
    transformer: Transformer
    metrics: Metrics
    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]

    def totals(self) -> dict[str, Any]:
        return self.metrics.totals()

    def consumed(self) -> int:
        return int(sum(self.totals()["consumed"].values()))

    def wait_idle(self, quiet_s: float = 3.0, timeout_s: float = 120.0) -> None:
        """Wait until nothing was consumed for ``quiet_s`` (the backlog is drained)."""
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            assert not self.errors, f"transformer failed: {self.errors[0]!r}"
            now = self.consumed()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.25)
        raise AssertionError(f"transformer still busy after {timeout_s}s")


@contextmanager
def transformer_thread(settings: Settings, instance: str = "test") -> Iterator[RunningTransformer]:
    metrics = Metrics()
    transformer = build_transformer(settings, instance=instance, metrics=metrics)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            transformer.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"transformer-{instance}", daemon=True)
    thread.start()
    running = RunningTransformer(transformer, metrics, thread, stop, errors)
    try:
        yield running
    finally:
        stop.set()
        thread.join(60)
    assert not errors, f"transformer failed: {errors[0]!r}"


@dataclass(frozen=True)
class ReadEvent:
    topic: str
    partition: int
    offset: int
    key: str
    value: dict[str, Any]
    headers: dict[str, str]

    @property
    def type(self) -> str:
        return str(self.value["metadata"]["event_type"])

    @property
    def event_id(self) -> str:
        return str(self.value["metadata"]["event_id"])


def read_events(
    settings: Settings,
    topics: Iterable[str],
    *,
    keep: Callable[[ReadEvent], bool] = lambda e: True,
    until: Callable[[list[ReadEvent]], bool] = lambda found: False,
    timeout_s: float = 60.0,
) -> list[ReadEvent]:
    """Every committed event of ``topics`` that ``keep`` accepts, read with a plain
    confluent-kafka AvroDeserializer from the beginning, until ``until`` holds and
    every partition has been read to its end (or the timeout passes)."""
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {
            "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    deserializer = reader(SchemaRegistryClient(settings.registry.client_config()))
    consumer.subscribe(list(topics))
    found: list[ReadEvent] = []
    at_end: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    code = msg.error().code()
                    if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        continue  # the transformer creates the event topics as it starts
                    assert code == KafkaError._PARTITION_EOF, msg.error()
                    at_end.add((msg.topic(), msg.partition()))
                    continue
                at_end.discard((msg.topic(), msg.partition()))
                value = deserializer(
                    msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)
                )
                event = ReadEvent(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key().decode(),
                    value,
                    {k: v.decode() for k, v in (msg.headers() or [])},
                )
                if keep(event):
                    found.append(event)
            assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            # Done when the wanted events are there and every partition was read to
            # its end, so a duplicate produced after them would have been seen too.
            if assigned and assigned <= at_end and until(found):
                break
    finally:
        consumer.close()
    return found
