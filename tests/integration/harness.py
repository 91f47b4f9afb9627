"""One isolated run of the whole chain on the real stack, for the end-to-end tests.

PostgreSQL -> Debezium connector (Kafka Connect) -> CDC topics -> the transformer
(``build_transformer(...).run(stop)`` in a thread) -> event topics / dead-letter
topic, read back with a plain confluent-kafka ``AvroDeserializer``.

A :class:`PipelineRun` owns names no other run uses: a database created from the
domain's ``schema.sql``, a connector with its own ``topic.prefix``, replication
slot and publication, a consumer group, a transactional id, a dead-letter topic,
and event topics under a domain name of its own (``__domain__`` on the domain's
event base class). :meth:`PipelineRun.close` removes all of it; the replication
slot first, because a leftover slot retains WAL for every database on the server.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.cdc.column_types import ValueModes
from pipeline.connect import ConnectClient, deployed_configs, parse_connector_file, wait_for_state
from pipeline.connect.encoding import check_encoding, reading
from pipeline.connect.files import ConnectorSpec
from pipeline.contracts.catalog import discover_events
from pipeline.contracts.generate import render, schema_for
from pipeline.contracts.registry import ContractRegistry
from pipeline.errors import ConnectError, RegistryError
from pipeline.events import DomainEvent
from pipeline.events.naming import event_subject, event_topic, schema_path
from pipeline.serde.avro import reader
from pipeline.settings import Settings, load_settings
from pipeline.stack import LocalStack
from pipeline.stack.scratch import ScratchSource, delete_groups, delete_topics, repointed
from pipeline.transformer import Metrics, Transformer, build_transformer
from tests.domains.fidelity.events import _FidelityEvent
from tests.domains.library.events import _LibraryEvent

REPO = Path(__file__).resolve().parents[2]
SHOP_CONNECTOR = REPO / "connectors" / "shop-postgres.yaml"

# Keys of the shop connector that describe the shop's tables (and its signal table), not how
# values are encoded.
_SHOP_ONLY = re.compile(
    r"^(transforms|message\.key\.columns|heartbeat\.|table\.include\.list|signal\.|notification\.)"
)


@dataclass(frozen=True)
class Received:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: Any
    headers: dict[str, bytes]


# The connector keys of records without the Connect schema (transformer.cdc_types: catalogue).
WITHOUT_SCHEMAS = {
    "key.converter.schemas.enable": "false",
    "value.converter.schemas.enable": "false",
}


def connector_config(
    database: str, prefix: str, slot: str, tables: Iterable[str], *, schemas: bool = True
) -> dict[str, str]:
    """The shipped shop connector's config, pointed at ``database`` under names of a run's own.

    The value handling (precise decimals, microsecond times, ISO intervals, bytes,
    JSON with schemas) is what the transformer depends on, so it is taken from
    ``connectors/shop-postgres.yaml`` as it is; the shop's routing, key columns and
    heartbeat are left out. ``schemas=False``: the records leave the Connect schema
    out (:data:`WITHOUT_SCHEMAS`).
    """
    base = parse_connector_file(SHOP_CONNECTOR).config
    config = repointed(base, database=database, prefix=prefix, slot=slot, drop=_SHOP_ONLY)
    config.update(
        {
            "table.include.list": ",".join(re.escape(t) for t in tables),
            # One partition per CDC topic: the records of a table keep one order,
            # so "the records after a poison record" is well defined.
            "topic.creation.default.partitions": "1",
        }
    )
    if not schemas:
        config.update(WITHOUT_SCHEMAS)
    return config


class PipelineRun:
    """A database, a connector and a transformer of one test's own (see the module doc)."""

    def __init__(
        self,
        stack: LocalStack,
        base: Settings,
        *,
        domain: str,
        event_base: type[DomainEvent],
        schema_sql: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        label: str,
        cdc_types: str = "record",
    ) -> None:
        self.stack = stack
        self.cdc_types = cdc_types
        """``catalogue``: the connector leaves schemas out and the transformer reads column
        types from the run's database (``transformer.cdc_types``)."""
        self.token = uuid.uuid4().hex[:10]
        self.label = label
        self.domain = domain
        self.database = f"it_{label}_{self.token}"
        self.slot = f"it_{label}_{self.token}"
        self.prefix = f"it{label}{self.token}"
        self.connector = f"it-{label}-{self.token}"
        # Event topics <name>.<aggregate>.events and the dead-letter topic <name>.dlq;
        # unlike the CDC topics, they do not match the transformer's pattern.
        self.name = f"it-{label}-{self.token}"
        monkeypatch.setattr(event_base, "__domain__", self.name)
        self.schemas_dir = tmp_path / "schemas"
        self.settings = load_settings(
            kafka={
                "bootstrap_servers": base.kafka.bootstrap_servers,
                # New CDC topics join the transformer's pattern subscription within
                # seconds (librdkafka's default metadata refresh is five minutes).
                "consumer_properties": {"topic.metadata.refresh.interval.ms": "1000"},
            },
            transformer={
                "domain": domain,
                "group_id": self.name,
                "transactional_id": self.name,
                "dead_letter_topic": f"{self.name}.dlq",
                "topics": rf"^{re.escape(self.prefix)}\..*",
                "event_topic_partitions": 3,
                "batch_size": 50,
                "metrics_port": 0,
                "schemas_dir": str(self.schemas_dir),
                "cdc_types": cdc_types,
            },
        )
        self.events = discover_events([domain])
        self.metrics = Metrics()
        self.transformer: Transformer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._subjects: list[str] = []
        self._connect = ConnectClient.from_settings(self.settings.connect)
        self._admin = AdminClient(self.settings.kafka.client_config())
        self._registry = SchemaRegistryClient(self.settings.registry.client_config())
        self._deserialize = reader(self._registry)
        self._schema_sql = schema_sql
        self.source = ScratchSource(self.settings, self.database, self.slot)

    # ------------------------------------------------------------ the source

    def db(self, *, user: str = "cdcflow", database: str | None = None) -> psycopg.Connection[Any]:
        """An autocommit connection to this run's database (or ``database``), rows as dicts."""
        return self.source.db(database, user=user)

    def create_database(self) -> None:
        """Create the run's database and load the domain's ``schema.sql`` into it."""

        def load(conn: psycopg.Connection[Any]) -> None:
            conn.execute(self._schema_sql.read_text())

        self.source.create(load)

    # ------------------------------------------------------------ the connector

    def cdc_topic(self, table: str) -> str:
        """The CDC topic of ``schema.table``."""
        return f"{self.prefix}.{table}"

    def start_connector(self, tables: Iterable[str]) -> None:
        """Create the connector and wait until it and its task run."""
        schemas = self.cdc_types == "record"
        config = connector_config(self.database, self.prefix, self.slot, tables, schemas=schemas)
        self.deploy_connector(config)

    def connector_spec(self, path: Path, **overrides: str) -> ConnectorSpec:
        """A domain's own connector file, as written (plus ``overrides``), for this run.

        Named after the run's connector, pointed at its database, ``topic.prefix``,
        slot and publication; ``domain`` and ``routing`` stay as the file says.
        """
        spec = parse_connector_file(path)
        config = repointed(
            dict(spec.config), database=self.database, prefix=self.prefix, slot=self.slot
        )
        return replace(spec, name=self.connector, config=config | overrides)

    @property
    def connect(self) -> ConnectClient:
        """The Connect client the run deploys with (for ``pipeline.connect.apply``)."""
        return self._connect

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (0: it does not exist)."""
        meta = self._admin.list_topics(topic, timeout=10).topics.get(topic)
        return 0 if meta is None or meta.error is not None else len(meta.partitions)

    def cdc_topics(self) -> list[str]:
        """The run's CDC topics, whatever the connector's routing named them."""
        topics = self._admin.list_topics(timeout=10).topics
        return sorted(t for t in topics if t.startswith(f"{self.prefix}."))

    def deploy_connector(self, config: dict[str, str]) -> None:
        """Create the connector from ``config`` and wait until it and its task run."""
        self._connect.create_connector(self.connector, config)
        wait_for_state(self._connect, [self.connector], "RUNNING", timeout_s=120, poll_s=0.5)

    # ------------------------------------------------------------ contracts

    def register_contracts(self) -> None:
        """Generate each event type's .avsc into the run's schemas dir and register it.

        As in a deployment: ``cdcflow schemas generate`` writes the contracts,
        ``cdcflow schemas register`` registers them; the transformer does not.
        """
        registry = ContractRegistry(self.settings.registry)
        for event in self.events:
            path = schema_path(self.schemas_dir, event.namespace(), event.event_type())
            path.parent.mkdir(parents=True, exist_ok=True)
            text = render(schema_for(event))
            path.write_text(text)
            subject = event_subject(event)
            registry.register(subject, text)
            self._subjects.append(subject)

    def topic_of(self, event: type[DomainEvent]) -> str:
        return event_topic(event)

    # ------------------------------------------------------------ the transformer

    def value_modes(self) -> ValueModes:
        """The value handling the run's transformer decodes with, as ``cdcflow run`` takes it
        from the deployed connector (:func:`pipeline.connect.encoding.reading`)."""
        catalogue = self.settings.transformer.model_copy(update={"cdc_types": "catalogue"})
        modes = check_encoding(self._deployed(), catalogue)
        assert modes is not None
        return modes

    def _deployed(self) -> dict[str, dict[str, str]]:
        return {n: c for n, c in deployed_configs(self._connect).items() if n == self.connector}

    def start_transformer(self) -> None:
        """Build the transformer from the run's settings and run it in a thread.

        As ``cdcflow run`` does, the run's connector is checked against how the
        records are read, and its value handling taken for records without a schema.
        """
        # Replica identities are read from the run's own database.
        source = self.settings.source.model_copy(update={"database": self.database})
        settings = reading(self.settings.model_copy(update={"source": source}), self._deployed())
        self.transformer = build_transformer(settings, domain=self.domain, metrics=self.metrics)
        transformer = self.transformer
        self._stop.clear()  # a transformer started again after stop_transformer runs

        def run() -> None:
            try:
                transformer.run(self._stop)
            except BaseException as exc:
                self._failure = exc

        self._thread = threading.Thread(target=run, name=f"transformer-{self.token}", daemon=True)
        self._thread.start()

    def stop_transformer(self) -> None:
        """Stop the transformer; its batch in flight is committed or aborted first.

        Raises:
            AssertionError: the transformer's thread died with an error.
        """
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the transformer did not stop within 60 s"
        self._thread = None
        if self._failure is not None:
            raise AssertionError(f"the transformer failed: {self._failure!r}") from self._failure

    def check_transformer(self) -> None:
        if self._failure is not None:
            raise AssertionError(f"the transformer failed: {self._failure!r}") from self._failure

    def describe(self) -> str:
        """The connector's state and the transformer's counters, for a timeout's message."""
        try:
            status = self._connect.status(self.connector)
            tasks = [(t.get("state"), t.get("trace", "")[:2000]) for t in status.get("tasks", [])]
            connector = f"connector {status['connector']['state']}, tasks {tasks}"
        except ConnectError as exc:
            connector = f"connector status unknown ({exc})"
        return f"{connector}; transformer totals {self.totals()}"

    def totals(self) -> dict[str, dict[str, float]]:
        """The transformer's metrics counter totals (committed batches only)."""
        totals: dict[str, dict[str, float]] = self.metrics.totals()
        return totals

    def wait_for(
        self, what: str, done: Callable[[], bool], timeout_s: float = 120, poll_s: float = 0.5
    ) -> None:
        """Poll ``done`` until it holds; the transformer's own failure ends the wait early."""
        deadline = time.monotonic() + timeout_s
        while not done():
            self.check_transformer()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s:.0f}s waiting for {what}; {self.describe()}"
                )
            time.sleep(poll_s)

    # ------------------------------------------------------------ Kafka

    def produce_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        producer = Producer(self.settings.kafka.client_config("producer"))
        producer.produce(topic, value, key)
        assert producer.flush(30) == 0

    def end_offsets(self, topic: str) -> int:
        """How many offsets ``topic`` has (the sum of its partitions' high watermarks)."""
        meta = self._admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        consumer = Consumer(self._consumer_config())
        try:
            return sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions
            )
        finally:
            consumer.close()

    def _consumer_config(self) -> dict[str, Any]:
        return self.settings.kafka.client_config("consumer") | {
            "group.id": f"it-reader-{self.token}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }

    def read(
        self, topic: str, count: int, *, avro: bool = False, timeout_s: float = 120
    ) -> list[Received]:
        """The first ``count`` committed records of ``topic``, from the beginning.

        Avro values go through a plain ``AvroDeserializer`` pointed at the registry.
        Reads on for a second after the last expected record, so that one too many
        is seen.

        Raises:
            AssertionError: fewer than ``count`` records arrived in time.
        """
        consumer = Consumer(self._consumer_config())
        out: list[Received] = []
        try:
            deadline = time.monotonic() + timeout_s
            while not self._admin.list_topics(topic, timeout=10).topics[topic].partitions:
                if time.monotonic() > deadline:
                    raise AssertionError(f"topic {topic} has no partitions")
                time.sleep(0.5)
            partitions = self._admin.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            settle_until: float | None = None
            while settle_until is None or time.monotonic() < settle_until:
                self.check_transformer()
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{topic}: {len(out)} of {count} records after {timeout_s}s; "
                        f"{self.describe()}"
                    )
                for msg in consumer.consume(100, 0.5):
                    if msg.error() is not None:
                        continue
                    out.append(self._received(msg, avro))
                if len(out) >= count and settle_until is None:
                    settle_until = time.monotonic() + 1.0
        finally:
            consumer.close()
        return out

    def _received(self, msg: Message, avro: bool) -> Received:
        raw, topic, partition, offset = msg.value(), msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        value: Any = raw
        if avro and raw is not None:
            value = self._deserialize(raw, SerializationContext(topic, MessageField.VALUE))
        headers: dict[str, bytes] = {}
        raw_headers = msg.headers() or []  # a consumed record's headers are a list of pairs
        pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        for name, data in pairs:
            headers[name] = data if isinstance(data, bytes) else str(data or "").encode()
        return Received(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=msg.timestamp()[1],
            key=msg.key(),
            value=value,
            headers=headers,
        )

    # ------------------------------------------------------------ clean-up

    def close(self) -> None:
        """Remove everything this run made; the replication slot first (it retains WAL)."""
        errors: list[str] = []

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as exc:
                errors.append(f"{what}: {type(exc).__name__}: {exc}")

        attempt("stop the transformer", self.stop_transformer)
        attempt("delete the connector", self._delete_connector)
        attempt("drop the replication slot and the database", self._drop_source)
        attempt("delete the topics", self._delete_topics)
        attempt("delete the subjects", self._delete_subjects)
        attempt("delete the consumer groups", self._delete_groups)
        self._connect.close()
        assert not errors, "clean-up failed:\n" + "\n".join(errors)

    def _delete_connector(self) -> None:
        with contextlib.suppress(ConnectError):
            self._connect.delete(self.connector)
        deadline = time.monotonic() + 60
        while self.connector in self._connect.list_connectors():
            if time.monotonic() > deadline:
                raise TimeoutError(f"connector {self.connector} still listed after 60 s")
            time.sleep(0.5)

    def _drop_source(self) -> None:
        self.source.drop()

    def _delete_topics(self) -> None:
        mine = [
            t
            for t in self._admin.list_topics(timeout=10).topics
            if t.startswith((f"{self.prefix}.", f"{self.name}."))
        ]
        delete_topics(self.settings, mine)

    def _delete_subjects(self) -> None:
        registry = ContractRegistry(self.settings.registry)
        for subject in self._subjects:
            with contextlib.suppress(RegistryError):
                registry.delete_subject(subject, permanent=True)

    def _delete_groups(self) -> None:
        # The readers only assign partitions: their group never exists.
        delete_groups(self.settings, [self.settings.transformer.group_id])


@contextlib.contextmanager
def pipeline_run(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    domain: str,
    event_base: type[DomainEvent],
    schema_sql: Path,
    label: str,
    cdc_types: str = "record",
) -> Iterator[PipelineRun]:
    """A :class:`PipelineRun`, closed (everything removed) however the test ends."""
    run = PipelineRun(
        stack,
        settings,
        domain=domain,
        event_base=event_base,
        schema_sql=schema_sql,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        label=label,
        cdc_types=cdc_types,
    )
    try:
        run.create_database()
        yield run
    finally:
        run.close()


FIDELITY_SCHEMA = REPO / "tests" / "domains" / "fidelity" / "schema.sql"


def fidelity_run(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    label: str,
    cdc_types: str = "record",
) -> contextlib.AbstractContextManager[PipelineRun]:
    """A :func:`pipeline_run` of the ``tests.domains.fidelity`` domain (``cdc_types``: see
    :class:`PipelineRun`)."""
    return pipeline_run(
        stack,
        settings,
        tmp_path,
        monkeypatch,
        domain="tests.domains.fidelity",
        event_base=_FidelityEvent,
        schema_sql=FIDELITY_SCHEMA,
        label=label,
        cdc_types=cdc_types,
    )


LIBRARY = REPO / "tests" / "domains" / "library"

library_run = functools.partial(
    pipeline_run,
    domain="tests.domains.library",
    event_base=_LibraryEvent,
    schema_sql=LIBRARY / "schema.sql",
)
"""A :func:`pipeline_run` of the ``tests.domains.library`` domain (give ``label=``)."""
