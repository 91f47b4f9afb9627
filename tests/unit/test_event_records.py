"""The event records a batch produces, pinned: ids, headers, keys and Avro bytes (no services).

Events already written carry these ids and bytes; a change delivered again
must give the same ones, whatever the hot path does to produce them. The
bytes are also compared with fastavro's reference writer.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.events import DomainEvent
from pipeline.serde import EventSerializer, event_to_record
from pipeline.serde.wire import HEADER_SIZE, header
from pipeline.settings import load_settings
from pipeline.transformer import Transformer
from pipeline.transformer.dlq import OutRecord
from tests.unit import debezium as dbz
from tests.unit.serde_fakes import SCHEMA_ID, FixedIdRegistry
from tests.unit.transformer_fakes import DOMAIN, FakeMessage, customer_msg

SCHEMAS = Path("schemas")


def _transformer() -> Transformer:
    return Transformer(
        load_settings(),
        load_domain(DOMAIN).rules,
        discover_events([DOMAIN]),
        EventSerializer(FixedIdRegistry(), SCHEMAS),  # type: ignore[arg-type]
    )


PRODUCT = {
    "id": 42,
    "sku": "SKU-42",
    "name": "Kettle",
    "description": None,
    "price": dbz.dec("19.90", 2),
    "currency": "EUR",
    "active": True,
    "updated_at": "2026-11-01T10:00:00.5Z",
}


def _messages() -> list[FakeMessage]:
    price_key, price_value = dbz.record(
        "u",
        "products",
        before=PRODUCT,
        after={**PRODUCT, "price": dbz.dec("24.50", 2)},
        lsn=2000,
        tx_id=None,
    )
    snap_key, snap_value = dbz.record(
        "r", "products", after=PRODUCT, lsn=3000, snapshot="true", tx_id=None
    )
    return [
        customer_msg(10, lsn=1000),  # CustomerRegistered
        customer_msg(11, op="u", lsn=1100, email="new@example.com"),  # CustomerEmailChanged
        FakeMessage(dbz.topic("products"), 0, 12, price_key, price_value),  # ProductPriceChanged
        FakeMessage(dbz.topic("products"), 0, 13, snap_key, snap_value),  # ProductAdded
    ]


# (topic, key, headers, sha-256 of the value) of each event record, as cdcflow writes them.
PINNED: list[tuple[str, bytes, list[tuple[str, bytes]], str]] = [
    (
        "shop.customer.events",
        b"7",
        [
            ("cdcflow.event_type", b"CustomerRegistered"),
            ("cdcflow.event_id", b"08ebf235-38c1-58e7-a594-776489b4ee98"),
            ("cdcflow.schema_version", b"1"),
            ("cdcflow.source.table", b"public.customers"),
            ("cdcflow.source.lsn", b"1000"),
        ],
        "a5edb2123c88dbec5f0cd6a3c64b80beb5d1a27edb28699e0e44a7dba3e31408",
    ),
    (
        "shop.customer.events",
        b"7",
        [
            ("cdcflow.event_type", b"CustomerEmailChanged"),
            ("cdcflow.event_id", b"0e54f761-526a-5876-bab5-ca0cf9c4e0fd"),
            ("cdcflow.schema_version", b"1"),
            ("cdcflow.source.table", b"public.customers"),
            ("cdcflow.source.lsn", b"1100"),
        ],
        "215220fcc57760a3de6f5486f6ae582af945a031b0d2c0585cce5045da850ffc",
    ),
    (
        "shop.product.events",
        b"42",
        [
            ("cdcflow.event_type", b"ProductPriceChanged"),
            ("cdcflow.event_id", b"7b455767-2a1f-56c4-8e22-19d995ee63bf"),
            ("cdcflow.schema_version", b"1"),
            ("cdcflow.source.table", b"public.products"),
            ("cdcflow.source.lsn", b"2000"),
        ],
        "dca4d4a39268cf991a36fb6303e93625c0ed5e5d1db97d3e51d2dc0d4310e1df",
    ),
    (
        "shop.product.events",
        b"42",
        [
            ("cdcflow.event_type", b"ProductAdded"),
            ("cdcflow.event_id", b"37cf79b3-4ba3-54b2-aa7b-86e1e0d1e78c"),
            ("cdcflow.schema_version", b"1"),
            ("cdcflow.source.table", b"public.products"),
            ("cdcflow.source.lsn", b"3000"),
        ],
        "3e05b4b69b7dc9c152ffbde9fb83525245d4623301451a3ad91d29f09d307da0",
    ),
]


def _records() -> list[OutRecord]:
    res = _transformer().process(_messages())  # type: ignore[arg-type]
    assert res.dead_lettered == {}
    return res.out


def _summary(record: OutRecord) -> tuple[str, bytes | None, list[Any], str]:
    assert record.value is not None
    return (
        record.topic,
        record.key,
        list(record.headers),
        hashlib.sha256(record.value).hexdigest(),
    )


def test_event_records_are_what_cdcflow_has_always_written() -> None:
    assert [_summary(r) for r in _records()] == PINNED


def _parsed(event_type: str) -> Any:
    return fastavro.parse_schema(
        json.loads((SCHEMAS / "shop.events" / f"{event_type}.avsc").read_text())
    )


@pytest.mark.parametrize("index", range(4))
def test_each_event_record_is_fastavros_bytes_of_the_event(index: int) -> None:
    record = _records()[index]
    headers = dict(record.headers)
    event_type = headers["cdcflow.event_type"]
    assert isinstance(event_type, bytes)
    parsed = _parsed(event_type.decode())
    assert record.value is not None and record.value[:HEADER_SIZE] == header(SCHEMA_ID)
    decoded = fastavro.schemaless_reader(io.BytesIO(record.value[HEADER_SIZE:]), parsed, None)
    assert isinstance(decoded, dict)
    assert str(decoded["metadata"]["event_id"]) == headers["cdcflow.event_id"].decode()  # type: ignore[union-attr]
    events = [e for e in discover_events([DOMAIN]) if e.event_type() == event_type.decode()]
    event: DomainEvent = events[0].model_validate(decoded)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, event_to_record(event))
    assert record.value[HEADER_SIZE:] == buf.getvalue()
