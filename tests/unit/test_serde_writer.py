"""The compiled writer writes the bytes fastavro writes for event_to_record's dict (no services)."""

from __future__ import annotations

import enum
import io
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import fastavro
import pytest
from pydantic import BaseModel, Field

from pipeline.contracts import render, schema_for
from pipeline.domains.shop.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    ShippingAddress,
)
from pipeline.events import DomainEvent, EventMetadata, SourcePosition
from pipeline.events.naming import schema_path
from pipeline.serde import EventSerializer, event_to_record
from pipeline.serde.generated import generate_writer
from pipeline.serde.wire import header
from pipeline.serde.writer import compile_writer
from tests.unit.serde_fakes import SCHEMA_ID, FixedIdRegistry


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Part(BaseModel):
    name: str
    weight: Annotated[Decimal, Field(max_digits=8, decimal_places=3)]
    note: str | None = None


class Everything(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "id"
    __namespace__: ClassVar[str] = "test.events"

    id: int
    ratio: float
    flag: bool
    label: str
    blob: bytes
    price: Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
    discount: Annotated[Decimal, Field(max_digits=6, decimal_places=3)] | None = None
    at: datetime
    on: date
    clock: time
    ref: uuid.UUID
    colour: Colour
    mode: Literal["a", "b"]
    numbers: list[int]
    parts: list[Part]
    counts: dict[str, int]
    best: Part | None = None
    tags: tuple[str, ...] = ()
    maybe: int | None = None


def _meta(n: int = 1) -> EventMetadata:
    return EventMetadata(
        event_id=uuid.UUID(int=n),
        event_type="Everything",
        aggregate_type="thing",
        aggregate_id=str(n),
        occurred_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        correlation_id=None if n % 2 else "tx-9",
        source=SourcePosition(
            connector="c",
            table="public.t",
            lsn=None if n % 3 else 2**40 + n,
            commit_lsn=2**33,
            tx_id=n,
            commit_ts_ms=1_700_000_000_000,
            snapshot=bool(n % 2),
        ),
    )


def _everything(n: int, **changes: Any) -> Everything:
    values: dict[str, Any] = {
        "id": n * 7919 - 2**40,
        "ratio": 1.0 / (n + 3),
        "flag": bool(n % 2),
        "label": "zoë ✓ " * n,
        "blob": bytes(range(n % 256)),
        "price": Decimal("5.5000") if n % 2 else Decimal("-123456.7"),
        "discount": None if n % 3 else Decimal("0.250000"),
        "at": datetime(2024, 3, 10, 2, 30, 0, n) if n % 2 else datetime(1, 1, 1, tzinfo=UTC),
        "on": date(1969, 12, 31) if n % 2 else date(9999, 12, 31),
        "clock": time(23, 59, 59, 999999) if n % 2 else time(0, 0),
        "ref": uuid.UUID(int=n * 2**100),
        "colour": Colour.GREEN if n % 2 else Colour.RED,
        "mode": "b" if n % 2 else "a",
        "numbers": [0, -1, 63, 64, -64, -65, 2**31, -(2**31), 2**63 - 1, -(2**63)][: n % 11],
        "parts": [
            Part(name=f"p{i}", weight=Decimal("1.5"), note=None if i else "x") for i in range(n % 3)
        ],
        "counts": {f"k{i}": i - 2 for i in range(n % 4)},
        "best": Part(name="b", weight=Decimal("0.125000")) if n % 2 else None,
        "tags": tuple(f"t{i}" for i in range(n % 3)),
        "maybe": None if n % 2 else -n,
        "metadata": _meta(n),
    }
    values.update(changes)
    return Everything(**values)


def _fastavro(parsed: Any, event: DomainEvent) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, event_to_record(event))
    return buf.getvalue()


def _compiled(parsed: Any, event: DomainEvent) -> bytes:
    """The event written by the generated writer, after checking the encoders' tree agrees."""
    encode = compile_writer(parsed)
    write = generate_writer(parsed)
    assert encode is not None and write is not None
    tree = bytearray()
    encode(event, tree)
    generated = bytearray()
    write(event.__dict__, generated)
    assert generated == tree
    return bytes(generated)


@pytest.mark.parametrize("n", range(12))
def test_every_kind_of_field_is_written_as_fastavro_writes_it(n: int) -> None:
    parsed = fastavro.parse_schema(schema_for(Everything))
    event = _everything(n)
    written = _compiled(parsed, event)
    assert written == _fastavro(parsed, event)
    back = fastavro.schemaless_reader(io.BytesIO(written), parsed, None)
    assert isinstance(back, dict)
    assert back["price"] == event.price and back["ref"] == event.ref
    assert back["metadata"]["event_id"] == event.metadata.event_id  # type: ignore[union-attr]


def _shop(schema: str) -> Any:
    return fastavro.parse_schema(json.loads(Path(f"schemas/shop.events/{schema}.avsc").read_text()))


@pytest.mark.parametrize(
    "event",
    [
        OrderPlaced(
            order_id=uuid.UUID(int=5),
            customer_id=42,
            total=Decimal("12.5000"),
            currency="EUR",
            shipping_address=ShippingAddress(
                street="Main 1", city="Köln", zip="50667", country=None
            ),
            placed_at=datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            metadata=_meta(2),
        ),
        OrderPlaced(
            order_id=uuid.UUID(int=6),
            customer_id=-1,
            total=Decimal("0"),
            currency="USD",
            placed_at=datetime(2024, 1, 1),
            metadata=_meta(3),
        ),
        OrderPaid(
            order_id=uuid.UUID(int=7),
            payment_id=9,
            amount=Decimal("99.99"),
            method="paypal",
            paid_at=datetime(2024, 1, 1, tzinfo=UTC),
            metadata=_meta(4),
        ),
        OrderCancelled(
            order_id=uuid.UUID(int=8),
            previous_status="shipped",
            cancelled_at=datetime(2024, 1, 1, tzinfo=UTC),
            metadata=_meta(5),
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_the_shop_contracts_are_written_as_fastavro_writes_them(event: DomainEvent) -> None:
    parsed = _shop(type(event).__name__)
    assert _compiled(parsed, event) == _fastavro(parsed, event)


@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]
    + [
        sign * (2**bits + delta)
        for bits in range(6, 63, 7)
        for delta in (-1, 0)
        for sign in (1, -1)
    ],
)
def test_longs_at_every_varint_boundary(value: int) -> None:
    encode = compile_writer("long")
    assert encode is not None
    out = bytearray()
    encode(value, out)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", value)
    assert bytes(out) == buf.getvalue()


def test_a_long_outside_64_bits_is_refused() -> None:
    encode = compile_writer("long")
    assert encode is not None
    with pytest.raises(OverflowError):
        encode(2**63, bytearray())


def test_a_decimal_that_would_be_rounded_is_refused() -> None:
    parsed = fastavro.parse_schema(schema_for(Everything))
    event = Everything.model_construct(**{**_everything(1).__dict__, "price": Decimal("5.1234")})
    with pytest.raises(ValueError, match="Scale"):
        _compiled(parsed, event)


def test_a_symbol_outside_the_enum_is_refused() -> None:
    encode = compile_writer({"type": "enum", "name": "E", "symbols": ["a", "b"]})
    assert encode is not None
    with pytest.raises(ValueError, match="not a symbol of enum E"):
        encode("c", bytearray())


def test_shapes_the_compiler_does_not_know_are_left_to_fastavro() -> None:
    assert compile_writer(["null", "long", "string"]) is None
    assert compile_writer({"type": "fixed", "name": "F", "size": 4}) is None
    odd = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "x", "type": ["null", "long", "string"]}],
    }
    assert generate_writer(fastavro.parse_schema(odd)) is None
    assert generate_writer(fastavro.parse_schema("long")) is None


def test_the_serializer_frames_the_compiled_bytes_and_takes_metadata_apart(tmp_path: Path) -> None:
    path = schema_path(tmp_path, Everything.namespace(), Everything.event_type())
    path.parent.mkdir(parents=True)
    path.write_text(render(schema_for(Everything)))
    serializer = EventSerializer(FixedIdRegistry(), tmp_path)  # type: ignore[arg-type]
    parsed = fastavro.parse_schema(schema_for(Everything))
    event = _everything(4)
    expected = header(SCHEMA_ID) + _fastavro(parsed, event)
    assert expected[:5] == b"\x00\x00\x00\x00\x4d"
    assert serializer.serialize(event, "thing.events") == expected
    bare = event.model_copy(update={"metadata": None})
    assert serializer.serialize(bare, "thing.events", metadata=event.metadata) == expected


class Either(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "id"
    __namespace__: ClassVar[str] = "test.events"

    id: int
    value: int | str


def test_a_contract_the_compiler_leaves_alone_is_written_by_fastavro(tmp_path: Path) -> None:
    path = schema_path(tmp_path, Either.namespace(), Either.event_type())
    path.parent.mkdir(parents=True)
    path.write_text(render(schema_for(Either)))
    parsed = fastavro.parse_schema(schema_for(Either))
    assert generate_writer(parsed) is None
    serializer = EventSerializer(FixedIdRegistry(), tmp_path)  # type: ignore[arg-type]
    for event in (
        Either(id=1, value=5, metadata=_meta(1)),
        Either(id=2, value="x", metadata=_meta(2)),
    ):
        assert serializer.serialize(event, "thing.events") == header(SCHEMA_ID) + _fastavro(
            parsed, event
        )
