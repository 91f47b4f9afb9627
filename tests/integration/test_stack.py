"""Each component of the local stack is the real thing and answers."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from pipeline.errors import PortInUseError
from pipeline.settings import Settings, load_settings
from pipeline.stack import LocalStack, StackPaths
from pipeline.stack.components import Kafka


def test_status_reports_five_healthy_components(stack: LocalStack) -> None:
    rows = {row["component"]: row for row in stack.status()}
    assert set(rows) == {"postgres", "kafka", "connect", "registry", "prometheus"}
    for name, row in rows.items():
        assert row["healthy"], f"{name}: {row['state']}"
        assert isinstance(row["pid"], int)
        assert row["rss_mib"] and row["rss_mib"] > 10
    assert rows["kafka"]["version"] == stack.versions.kafka
    assert stack.versions.debezium in rows["connect"]["version"]
    assert rows["registry"]["version"] == stack.versions.registry
    assert rows["postgres"]["version"].startswith(stack.versions.postgresql_major + ".")
    assert rows["prometheus"]["version"].startswith("2.")  # Debian's package


def test_kafka_create_produce_consume(stack: LocalStack, settings: Settings) -> None:
    topic = f"it-stack-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    producer = Producer(settings.kafka.client_config("producer"))
    for i in range(30):
        producer.produce(topic, key=f"k{i % 3}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {"group.id": topic, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(100, 1.0):
                assert msg.error() is None
                seen.append(msg.value())
            if len(seen) == 30:
                break
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(30))
    assert admin.list_topics(topic, timeout=10).topics[topic].partitions.keys() == {0, 1, 2}


def test_registry_register_and_read_back(stack: LocalStack, settings: Settings) -> None:
    client = SchemaRegistryClient(settings.registry.client_config())
    subject = f"it-stack-{uuid.uuid4().hex[:8]}-value"
    text = '{"type":"record","name":"Probe","namespace":"cdcflow.test","fields":[{"name":"n","type":"long"}]}'
    schema_id = client.register_schema(subject, Schema(text, "AVRO"))
    back = client.get_schema(schema_id)
    assert back.schema_type == "AVRO"
    assert '"Probe"' in back.schema_str
    assert client.get_latest_version(subject).schema_id == schema_id


def test_connect_lists_the_debezium_postgres_plugin(stack: LocalStack) -> None:
    import requests

    plugins = requests.get(stack.connect.url + "/connector-plugins", timeout=10).json()
    classes = {p["class"]: p.get("version") for p in plugins}
    assert (
        classes.get("io.debezium.connector.postgresql.PostgresConnector") == stack.versions.debezium
    )


def test_broker_and_worker_write_their_own_logs(stack: LocalStack) -> None:
    """The JVMs' log4j2 output reaches <name>.app.log (`cdcflow stack logs` shows it).

    A mismatched SLF4J API and binding on the fetched classpath once made both
    silent: the files existed and stayed empty.
    """
    started = {"kafka": "Kafka Server started", "connect": "Kafka Connect started"}
    for name, line in started.items():
        log = stack.paths.logs / f"{name}.app.log"
        text = "".join(
            p.read_text(errors="replace") for p in sorted(log.parent.glob(log.name + "*"))
        )
        assert line in text, f"{log} lacks {line!r}; it holds {len(text)} characters"


def test_postgres_is_ready_for_logical_decoding(stack: LocalStack, settings: Settings) -> None:
    with psycopg.connect(settings.source.dsn()) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert int(conn.execute("SHOW max_replication_slots").fetchone()[0]) >= 10
        can_replicate = conn.execute(
            "SELECT rolreplication FROM pg_roles WHERE rolname = 'debezium'"
        ).fetchone()
        assert can_replicate == (True,)


def test_registry_schemas_survive_a_registry_restart(stack: LocalStack, settings: Settings) -> None:
    client = SchemaRegistryClient(settings.registry.client_config())
    subject = f"it-persist-{uuid.uuid4().hex[:8]}-value"
    text = '{"type":"record","name":"Kept","namespace":"cdcflow.test","fields":[{"name":"n","type":"int"}]}'
    schema_id = client.register_schema(subject, Schema(text, "AVRO"))
    assert stack.registry.stop()
    assert not stack.registry.proc.running()
    assert stack.registry.start(stack.artifacts(), progress=print)
    fresh = SchemaRegistryClient(settings.registry.client_config())
    assert subject in fresh.get_subjects()
    assert '"Kept"' in fresh.get_schema(schema_id).schema_str


def test_a_taken_port_is_named_with_its_setting(stack: LocalStack, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        other = load_settings(
            stack={"home": tmp_path, "kafka_port": port, "controller_port": port + 1}
        )
        kafka = Kafka(other, StackPaths(tmp_path), stack.versions)
        with pytest.raises(PortInUseError) as info:
            kafka.start(stack.artifacts(), progress=print)
    assert info.value.port == port
    assert "CDCFLOW_STACK__KAFKA_PORT" in str(info.value)
    assert not kafka.proc.running()
