"""Avro serialization of domain events: values and failures (no services)."""

from __future__ import annotations

import io
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from pydantic import Field

from pipeline.contracts import render, schema_for
from pipeline.events import DomainEvent, EventMetadata, SourcePosition
from pipeline.events.naming import schema_path
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


def _round_trip(record: dict[str, Any], event: type[DomainEvent] = Clocked) -> dict[str, Any]:
    schema = schema_for(event)
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


# -- a Decimal wider in scale than its Avro decimal --------------------------------
# A numeric column whose scale grew (numeric(10,2) -> numeric(12,4)) sends every
# value with the new scale (5.5 arrives as 5.5000). An event field declared
# Decimal(10, 2) holds 5.50 exactly, so it is written; 5.1234 would be rounded,
# so it is not (fastavro refuses it, and the record is dead-lettered).


class Priced(DomainEvent):
    __aggregate__: ClassVar[str] = "priced"
    __aggregate_id__: ClassVar[str] = "id"

    id: int
    price: Annotated[Decimal, Field(max_digits=10, decimal_places=2)]
    discount: Annotated[Decimal, Field(max_digits=6, decimal_places=3)] | None = None


@pytest.mark.parametrize(
    ("price", "written"),
    [
        ("5.5000", "5.50"),
        ("12345678.9000", "12345678.90"),
        ("-0.1000", "-0.10"),
        ("7", "7"),  # fewer decimals: fastavro scales it up itself
        ("7.25", "7.25"),
    ],
)
def test_trailing_zeros_beyond_the_scale_are_dropped(price: str, written: str) -> None:
    record = event_to_record(Priced(id=1, price=Decimal(price)))
    assert str(record["price"]) == written
    assert _round_trip(record, Priced)["price"] == Decimal(price)


def test_an_optional_decimal_is_scaled_too_and_none_stays_none() -> None:
    record = event_to_record(Priced(id=1, price=Decimal("1.00"), discount=Decimal("0.250000")))
    assert str(record["discount"]) == "0.250"
    assert event_to_record(Priced(id=1, price=Decimal("1")))["discount"] is None


def test_a_value_that_would_be_rounded_is_left_for_the_schema_to_refuse() -> None:
    # The model's own validation refuses it; a rule may still build one unvalidated.
    event = Priced.model_construct(id=1, price=Decimal("5.1234"))
    record = event_to_record(event)
    assert record["price"] == Decimal("5.1234")
    assert str(record["price"]) == "5.1234"
    with pytest.raises(ValueError, match="Scale"):
        _round_trip(record, Priced)
