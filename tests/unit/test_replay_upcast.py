"""Decoding Avro event values into the current event models, with upcasting of old versions."""

from __future__ import annotations

import io
import json
import struct
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from fastavro import parse_schema, schemaless_writer
from pydantic import Field

from pipeline.contracts.generate import schema_for
from pipeline.events import DomainEvent, EventMetadata, SourcePosition
from pipeline.replay.decode import EventDecoder
from pipeline.replay.errors import EventDecodeError, UnknownEventType, UpcastError
from pipeline.replay.upcast import Upcasters
from pipeline.serde import event_to_record

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _v1() -> type[DomainEvent]:
    class ParcelShipped(DomainEvent):
        """Version 1: the weight in kilograms, no carrier."""

        __aggregate__: ClassVar[str] = "parcel"
        __aggregate_id__: ClassVar[str] = "parcel_id"
        __namespace__: ClassVar[str] = "test.events"
        __version__: ClassVar[int] = 1

        parcel_id: str
        weight_kg: Decimal = Field(max_digits=8, decimal_places=3)

    return ParcelShipped


def _v2() -> type[DomainEvent]:
    class ParcelShipped(DomainEvent):
        """Version 2: the weight in grams, as an integer."""

        __aggregate__: ClassVar[str] = "parcel"
        __aggregate_id__: ClassVar[str] = "parcel_id"
        __namespace__: ClassVar[str] = "test.events"
        __version__: ClassVar[int] = 2

        parcel_id: str
        weight_grams: int

    return ParcelShipped


def _v3() -> type[DomainEvent]:
    class ParcelShipped(DomainEvent):
        """Version 3: the carrier is named (required)."""

        __aggregate__: ClassVar[str] = "parcel"
        __aggregate_id__: ClassVar[str] = "parcel_id"
        __namespace__: ClassVar[str] = "test.events"
        __version__: ClassVar[int] = 3

        parcel_id: str
        weight_grams: int
        carrier: str

    return ParcelShipped


V1, V2, V3 = _v1(), _v2(), _v3()


def _metadata(cls: type[DomainEvent], aggregate_id: str) -> EventMetadata:
    return EventMetadata(
        event_id=uuid.uuid4(),
        event_type=cls.event_type(),
        aggregate_type=cls.aggregate_type(),
        aggregate_id=aggregate_id,
        occurred_at=WHEN,
        schema_version=cls.__version__,
        source=SourcePosition(connector="t", table="public.parcels", lsn=1, commit_ts_ms=1),
    )


def _encode(event: DomainEvent, schema_id: int) -> tuple[bytes, str]:
    """Confluent-framed Avro of ``event``, written with its own class's schema."""
    schema = schema_for(type(event))
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, schema_id))
    schemaless_writer(buf, parse_schema(schema), event_to_record(event))
    return buf.getvalue(), json.dumps(schema)


def _old_record() -> tuple[bytes, dict[int, str]]:
    old = V1(parcel_id="p-1", weight_kg=Decimal("1.250"))  # type: ignore[call-arg]
    old = old.stamped(_metadata(V1, "p-1"))
    value, schema = _encode(old, 7)
    return value, {7: schema}


def _kg_to_grams(record: dict[str, Any]) -> dict[str, Any]:
    kg = record.pop("weight_kg")
    return {**record, "weight_grams": int(kg * 1000)}


def test_an_old_version_is_upcast_to_the_current_model() -> None:
    value, schemas = _old_record()
    upcasters = Upcasters()
    upcasters.add("ParcelShipped", 1, _kg_to_grams)
    decoder = EventDecoder([V2], schemas.__getitem__, upcasters)

    event = decoder.decode(value, topic="t", partition=0, offset=5)

    assert isinstance(event, V2)
    assert event.model_dump(exclude={"metadata"}) == {"parcel_id": "p-1", "weight_grams": 1250}
    assert event.metadata is not None and event.metadata.schema_version == 2


def test_upcasters_chain_over_several_versions() -> None:
    value, schemas = _old_record()
    upcasters = Upcasters()

    @upcasters.register(V2, from_version=2)
    def _name_the_carrier(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "carrier": "unknown"}

    upcasters.register("ParcelShipped", from_version=1)(_kg_to_grams)
    event = EventDecoder([V3], schemas.__getitem__, upcasters).decode(value)

    assert isinstance(event, V3)
    assert (event.weight_grams, event.carrier) == (1250, "unknown")  # type: ignore[attr-defined]
    assert event.metadata is not None and event.metadata.schema_version == 3


def test_an_old_version_without_upcaster_that_does_not_fit_names_the_missing_step() -> None:
    value, schemas = _old_record()
    decoder = EventDecoder([V2], schemas.__getitem__)

    with pytest.raises(UpcastError) as info:
        decoder.decode(value, topic="parcels", partition=3, offset=42)

    err = info.value
    assert (err.topic, err.partition, err.offset) == ("parcels", 3, 42)
    assert err.value == value
    assert "register an upcaster for (ParcelShipped, 1)" in str(err)


def test_a_change_pydantic_absorbs_needs_no_upcaster() -> None:
    class Widened(DomainEvent):
        __aggregate__: ClassVar[str] = "parcel"
        __aggregate_id__: ClassVar[str] = "parcel_id"
        __namespace__: ClassVar[str] = "test.events"
        __version__: ClassVar[int] = 2

        parcel_id: str
        weight_kg: Decimal = Field(max_digits=8, decimal_places=3)
        fragile: bool = False

    Widened.__name__ = "ParcelShipped"  # the same record name, one version on
    value, schemas = _old_record()
    event = EventDecoder([Widened], schemas.__getitem__).decode(value)

    assert isinstance(event, Widened)
    assert (event.weight_kg, event.fragile) == (Decimal("1.250"), False)


def test_an_upcaster_that_raises_is_an_upcast_error() -> None:
    value, schemas = _old_record()
    upcasters = Upcasters()

    def broken(record: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("weight")

    upcasters.add("ParcelShipped", 1, broken)
    with pytest.raises(UpcastError, match="KeyError"):
        EventDecoder([V2], schemas.__getitem__, upcasters).decode(value)


def test_the_current_version_decodes_as_it_is() -> None:
    event = V2(parcel_id="p-2", weight_grams=10).stamped(_metadata(V2, "p-2"))  # type: ignore[call-arg]
    value, schema = _encode(event, 9)
    decoded = EventDecoder([V2], {9: schema}.__getitem__).decode(value)
    assert decoded == event


def test_unknown_types_raise_or_are_skipped() -> None:
    value, schemas = _old_record()
    with pytest.raises(UnknownEventType, match=r"test\.events\.ParcelShipped"):
        EventDecoder([], schemas.__getitem__).decode(value)
    assert EventDecoder([], schemas.__getitem__, skip_unknown=True).decode(value) is None


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"", "empty"),
        (b"\x01\x00\x00\x00\x07abc", "magic byte 1"),
        (b"\x00\x00\x00\x00\x07", "does not decode"),
    ],
)
def test_values_that_are_not_events(value: bytes, match: str) -> None:
    _, schemas = _old_record()
    with pytest.raises(EventDecodeError, match=match):
        EventDecoder([V1], schemas.__getitem__).decode(value, topic="t", partition=0, offset=1)


def test_the_writer_schema_is_looked_up_once_per_id() -> None:
    value, schemas = _old_record()
    calls: list[int] = []

    def lookup(schema_id: int) -> str:
        calls.append(schema_id)
        return schemas[schema_id]

    decoder = EventDecoder([V1], lookup)
    for _ in range(3):
        decoder.decode(value)
    assert calls == [7]
    assert decoder.schema_ids() == {7: "test.events.ParcelShipped"}


def test_registering_a_step_twice_is_refused() -> None:
    upcasters = Upcasters()
    upcasters.add("ParcelShipped", 1, _kg_to_grams)
    with pytest.raises(ValueError, match="already registered"):
        upcasters.add(V2, 1, _kg_to_grams)
    with pytest.raises(ValueError, match="1 or more"):
        upcasters.add("ParcelShipped", 0, _kg_to_grams)
    with pytest.raises(LookupError, match="v2 -> v3"):
        upcasters.upcast("ParcelShipped", 1, {"metadata": {}, "weight_kg": Decimal(1)}, 3)


def test_upcasters_of_several_modules_merge_and_a_clash_is_refused() -> None:
    first, second = Upcasters(), Upcasters()
    first.add("ParcelShipped", 1, _kg_to_grams)
    second.add("ParcelShipped", 2, lambda r: {**r, "carrier": "x"})
    merged = Upcasters()
    merged.update(first)
    merged.update(second)
    assert len(merged) == 2 and merged.has_path("ParcelShipped", 1, 3)
    with pytest.raises(ValueError, match="already registered"):
        merged.update(first)
