"""Avro serialization of domain events: values and failures (no services)."""

from __future__ import annotations

import io
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.contracts import render, schema_for
from pipeline.contracts.naming import schema_path
from pipeline.events import DomainEvent, EventMetadata, SourcePosition
from pipeline.serde import EventSerializer, RegistryUnavailable
from pipeline.serde.avro import event_to_record


class Clocked(DomainEvent):
    __aggregate__: ClassVar[str] = "clock"
    __aggregate_id__: ClassVar[str] = "id"

    id: int
    wall: datetime  # a PostgreSQL timestamp without time zone arrives naive


@pytest.fixture
def local_zone_st_johns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host whose local zone is far from UTC, with a half-hour offset and DST."""
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _round_trip(record: dict[str, Any]) -> dict[str, Any]:
    schema = schema_for(Clocked)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "metadata"]
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, {k: v for k, v in record.items() if k != "metadata"})
    buf.seek(0)
    out = fastavro.schemaless_reader(buf, parsed, None)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize(
    "wall",
    [
        datetime(2024, 3, 10, 2, 30, 0, 1),  # in St John's DST gap: no such local time
        datetime(2024, 7, 1, 12, 0),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ],
)
def test_a_naive_datetime_is_the_wall_clock_in_utc_whatever_the_local_zone(
    local_zone_st_johns: None, wall: datetime
) -> None:
    record = event_to_record(Clocked(id=1, wall=wall))
    assert record["wall"] == wall.replace(tzinfo=UTC)
    # fastavro reads a naive datetime in the host's zone (time.mktime); an aware one it does not.
    assert _round_trip(record)["wall"] == wall.replace(tzinfo=UTC)


def test_an_aware_datetime_is_left_as_it_is() -> None:
    moment = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert event_to_record(Clocked(id=1, wall=moment))["wall"] is moment


def _registry_down_serializer(tmp_path: Path) -> tuple[EventSerializer, Clocked]:
    path = schema_path(tmp_path, Clocked.namespace(), Clocked.event_type())
    path.parent.mkdir(parents=True)
    path.write_text(render(schema_for(Clocked)))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "max.retries": 0})
    source = SourcePosition(connector="c", table="s.t", commit_ts_ms=0)
    meta = EventMetadata(
        event_id=uuid.uuid4(),
        event_type="Clocked",
        aggregate_type="clock",
        aggregate_id="1",
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        source=source,
    )
    return EventSerializer(client, tmp_path), Clocked(
        id=1, wall=datetime(2024, 1, 1), metadata=meta
    )


def test_a_registry_that_refuses_connections_is_unavailable_not_a_bad_event(
    tmp_path: Path,
) -> None:
    # The daemon waits and retries the batch on RegistryUnavailable; a SerializationError
    # would dead-letter every record of the outage.
    serializer, event = _registry_down_serializer(tmp_path)
    with pytest.raises(RegistryUnavailable):
        serializer.serialize(event, "clock.events")
