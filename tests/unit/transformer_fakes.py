"""Fakes for the transformer's unit tests: records, a serializer, Kafka clients.

The clients are handed in through the transformer's client factories.

Each fake client does what the transformer asks of the real client and records it;
a consumer holds the rebalance callbacks it was subscribed with, so a test
assigns, revokes or loses partitions the way librdkafka would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.errors import SerializationError
from pipeline.events import DomainEvent
from pipeline.settings import Settings, load_settings
from pipeline.transformer import Clients, Transformer
from tests.unit import debezium as dbz

TOPIC = "shop.public.customers"
DOMAIN = "pipeline.domains.shop"
CUSTOMER = {
    "id": 7,
    "email": "ada@example.com",
    "full_name": "Ada L",
    "country": "DE",
    "status": "active",
    "created_at": "2026-11-01T10:00:00.123456Z",
    "updated_at": "2026-11-01T10:00:00.123456Z",
}


@dataclass
class FakeMessage:
    """The accessors of confluent_kafka.Message that the transformer reads."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1718000000999)

    def error(self) -> None:
        return None


class FakeSerializer:
    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.calls: list[str] = []

    def prepare(self, pairs: Any) -> None:
        pass

    def serialize(self, event: DomainEvent, topic: str) -> bytes:
        self.calls.append(type(event).event_type())
        if type(event).event_type() == self.fail_on:
            raise SerializationError(f"{type(event).event_type()} does not fit its schema")
        return b"\x00avro:" + type(event).event_type().encode()


def shop_transformer(serializer: FakeSerializer) -> Transformer:
    """A shop transformer that is not opened: its processing needs no client."""
    return Transformer(
        load_settings(),
        load_domain(DOMAIN).rules,
        discover_events([DOMAIN]),
        serializer,  # type: ignore[arg-type]
    )


def customer_msg(
    offset: int, op: str = "c", lsn: int = 1000, partition: int = 0, **row: Any
) -> FakeMessage:
    after = {**CUSTOMER, **row}
    before = {**CUSTOMER} if op == "u" else None
    key, value = dbz.record(op, "customers", before=before, after=after, lsn=lsn)
    return FakeMessage(dbz.topic("customers"), partition, offset, key, value)


class FakeAdmin:
    """Knows no topic; creates every topic asked for."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def list_topics(self, timeout: float) -> Any:
        return type("Metadata", (), {"topics": {}})()

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        futures = {}
        for new in topics:
            self.created.append(new.topic)
            futures[new.topic] = done = Future[None]()
            done.set_result(None)
        return futures


class FakeConsumer:
    """Subscribes, seeks, commits nothing; ``assign``/``revoke``/``lose`` run the callbacks."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        self.callbacks: dict[str, Callable[[Any, list[TopicPartition]], None]] = {}
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def assign(self, partitions: list[tuple[str, int]]) -> None:
        self.callbacks["on_assign"](self, [TopicPartition(t, p) for t, p in partitions])

    def revoke(self, partitions: list[tuple[str, int]]) -> None:
        self.callbacks["on_revoke"](self, [TopicPartition(t, p) for t, p in partitions])

    def lose(self, partitions: list[tuple[str, int]]) -> None:
        self.callbacks["on_lost"](self, [TopicPartition(t, p) for t, p in partitions])

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return partitions

    def consume(self, num: int, timeout: float) -> list[Any]:
        return []

    def consumer_group_metadata(self) -> object:
        return object()

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def position(self, tps: Any) -> list[TopicPartition]:
        return []

    def close(self) -> None:
        self.closed = True


class ScriptedConsumer(FakeConsumer):
    """Hands out the scripted batches, one per ``consume(1, ...)`` call plus its rest.

    The first call assigns ``partitions`` and returns nothing, as librdkafka
    does: the assignment comes from within a poll, and the partitions'
    records are fetched after it (a record a poll returns together with a
    rebalance is not processed, see the daemon's module doc). With no batch
    left, a call sets ``stop``.
    """

    def __init__(
        self,
        batches: list[list[FakeMessage]],
        stop: threading.Event,
        partitions: list[tuple[str, int]] | None = None,
    ) -> None:
        super().__init__()
        self.batches = batches
        self.stop = stop
        self.partitions = [(TOPIC, 0), (TOPIC, 1)] if partitions is None else partitions
        self.current: list[FakeMessage] = []
        self.polls = 0
        self.on_consume: Any = None  # called at the start of each poll's first call
        self.on_rest: Any = None  # called in each poll's second call, before the rest is handed out

    def consume(self, num: int, timeout: float) -> list[Any]:
        if num == 1:
            self.polls += 1
            if self.polls == 1:
                self.assign(self.partitions)
                return []
            if self.on_consume is not None:
                self.on_consume()
            if not self.batches:
                self.stop.set()
                return []
            self.current = self.batches.pop(0)
            first, self.current = self.current[:1], self.current[1:]
            return first
        if self.on_rest is not None:
            self.on_rest()
        out, self.current = self.current, []
        return out


class RecordingProducer:
    """Records the transactions; the commit number ``abort_on`` fails abortably."""

    def __init__(self, abort_on: int | None = None) -> None:
        self.abort_on = abort_on
        self.log: list[str] = []
        self.open = False
        self.produced: list[bytes] = []
        self.offsets: list[list[tuple[int, int, str | None]]] = []
        self.commits = 0

    def init_transactions(self, timeout: float) -> None:
        pass

    def begin_transaction(self) -> None:
        assert not self.open, "a transaction began before the previous one ended"
        self.open = True
        self.log.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any = None) -> None:
        assert self.open
        self.produced.append(key)

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.offsets.append([(tp.partition, tp.offset, tp.metadata) for tp in offsets])

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1
        if self.commits == self.abort_on:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "abortable", txn_requires_abort=True)
            )
        self.open = False
        self.log.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.open = False
        self.log.append("abort")

    def flush(self, timeout: float) -> int:
        return 0


class FreshProducer:
    """A producer made by the transformer's factory (a replacement), with the config it got."""

    made: list[FreshProducer] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.initialised = False
        FreshProducer.made.append(self)

    def init_transactions(self, timeout: float) -> None:
        self.initialised = True


def first_then(
    first: Any, then: Callable[[dict[str, Any]], Any]
) -> Callable[[dict[str, Any]], Any]:
    """A producer factory: ``first`` (whatever the config), then ``then(conf)`` for each later one."""
    made: list[Any] = []

    def make(conf: dict[str, Any]) -> Any:
        made.append(conf)
        return first if len(made) == 1 else then(conf)

    return make


def on_fakes(
    consumer: FakeConsumer,
    producer: Callable[[dict[str, Any]], Any],
    settings: Settings | None = None,
    *,
    instance: str = "0",
    configs: dict[str, dict[str, Any]] | None = None,
    admin: FakeAdmin | None = None,
    open_: bool = True,
) -> Transformer:
    """A shop transformer whose clients are the fakes given; opened unless ``open_`` is False.

    ``configs``: filled with the config each client was made with, by client.
    """
    seen = configs if configs is not None else {}

    def make_consumer(conf: dict[str, Any]) -> Any:
        seen["consumer"] = conf
        return consumer

    def make_producer(conf: dict[str, Any]) -> Any:
        seen["producer"] = conf
        return producer(conf)

    t = Transformer(
        settings or load_settings(),
        load_domain(DOMAIN).rules,
        discover_events([DOMAIN]),
        FakeSerializer(),  # type: ignore[arg-type]
        instance=instance,
        clients=Clients(
            consumer=make_consumer,
            producer=make_producer,
            admin=lambda conf: admin or FakeAdmin(),
        ),
    )
    if open_:
        t.open()
    return t


def committing(first: Any, tp: tuple[str, int] = (TOPIC, 0)) -> tuple[Transformer, FakeConsumer]:
    """A transformer opened with ``first`` as its producer, owning ``tp``.

    Each producer made after the first (a replacement) is a :class:`FreshProducer`.
    """
    consumer = FakeConsumer()
    t = on_fakes(consumer, first_then(first, FreshProducer))
    consumer.assign([tp])
    return t, consumer
