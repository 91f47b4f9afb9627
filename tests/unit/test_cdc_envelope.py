"""Decoding whole Debezium records: change events, skips, and errors with their evidence."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from pipeline.cdc import Change, DecoderOptions, Skip, SkipReason, TransactionBlock, decode_record
from pipeline.errors import DecodeError
from pipeline.events import SourcePosition
from tests.unit import debezium as dbz

FIXTURES = Path(__file__).parent / "fixtures" / "debezium"
ORDER_ID = UUID("0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_change(key: bytes | None, value: bytes, table: str = "orders", **kw: object) -> Change:
    result = decode_record(value, key=key, topic=dbz.topic(table), partition=3, offset=17, **kw)  # type: ignore[arg-type]
    assert isinstance(result, Change), result
    return result


# -- change events


def test_insert_with_schema_decodes_every_column_and_the_position() -> None:
    change = decode_change(fixture("orders_insert.key.json"), fixture("orders_insert.value.json"))

    assert change.op == "c"
    assert change.table == "public.orders"
    assert change.connector == "shop"
    assert change.key == {"id": ORDER_ID}
    assert change.before is None
    assert change.after is not None
    assert change.after["id"] == ORDER_ID
    assert change.after["total"] == Decimal("129.50")
    assert change.after["status"] == "placed"
    assert change.after["shipping_address"] == {
        "zip": "10115",
        "city": "Berlin",
        "street": "12 Main St",
    }
    assert change.after["placed_at"] == datetime(2024, 6, 10, 6, 13, 20, 123456, tzinfo=UTC)
    assert change.after["paid_at"] is None
    assert change.source == SourcePosition(
        connector="shop",
        table="public.orders",
        lsn=24023128,
        commit_lsn=24023040,
        tx_id=571,
        commit_ts_ms=1718000000123,
        snapshot=False,
    )
    assert change.committed_at == datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC)
    assert change.transaction == TransactionBlock("571:24023128", 1, 1)
    assert change.toasted == frozenset()


@pytest.mark.parametrize(
    ("sequence", "commit_lsn"),
    [('["100","108"]', 100), ('[null,"108"]', None), (None, None), (["100", "108"], 100)],
)
def test_commit_lsn_comes_from_the_sequence(sequence: object, commit_lsn: int | None) -> None:
    _, value = dbz.record("c", "customers", after=_customer())
    doc = json.loads(value)
    doc["payload"]["source"]["sequence"] = sequence
    change = decode_change(b'{"id": 1}', json.dumps(doc).encode(), table="customers")
    assert change.source.commit_lsn == commit_lsn


def test_malformed_sequence_is_a_decode_error() -> None:
    _, value = dbz.record("c", "customers", after=_customer())
    doc = json.loads(value)
    doc["payload"]["source"]["sequence"] = "not json"
    assert "sequence" in str(_decode_error(json.dumps(doc).encode()))


def test_record_ref_keeps_the_raw_bytes() -> None:
    key, value = fixture("orders_insert.key.json"), fixture("orders_insert.value.json")
    change = decode_change(key, value)
    assert change.record is not None
    assert (change.record.topic, change.record.partition, change.record.offset) == (
        "shop.public.orders",
        3,
        17,
    )
    assert (change.record.key, change.record.value) == (key, value)


def test_bare_payload_decodes_with_the_best_safe_reading() -> None:
    doc = json.loads(fixture("orders_insert.value.json"))
    key = json.dumps(json.loads(fixture("orders_insert.key.json"))["payload"]).encode()
    change = decode_change(key, json.dumps(doc["payload"]).encode())

    assert change.source.lsn == 24023128 and change.source.tx_id == 571
    assert change.key == {"id": str(ORDER_ID)}
    assert change.after is not None
    # Without a schema a Decimal is base64 text and a uuid / timestamptz / json stay text.
    assert change.after["total"] == "MpY="
    assert change.after["id"] == str(ORDER_ID)
    assert change.after["placed_at"] == "2024-06-10T06:13:20.123456Z"
    assert isinstance(change.after["shipping_address"], str)


def test_str_input_is_accepted() -> None:
    key, value = dbz.record("c", "payments", after=_payment())
    change = decode_change(key.decode() if key else None, value.decode(), table="payments")  # type: ignore[arg-type]
    assert change.after is not None and change.after["amount"] == Decimal("59.90")


def _payment() -> dict[str, object]:
    return {
        "id": 7,
        "order_id": str(ORDER_ID),
        "amount": dbz.dec("59.90", 2),
        "method": "card",
        "paid_at": "2024-06-10T06:14:00Z",
    }


def _customer(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 1,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "country": "DE",
        "status": "active",
        "created_at": "2024-06-01T10:00:00Z",
        "updated_at": "2024-06-01T10:00:00Z",
    }
    row.update(over)
    return row


def test_update_carries_both_images() -> None:
    before, after = _customer(), _customer(email="ada@lovelace.org")
    key, value = dbz.record("u", "customers", before=before, after=after)
    change = decode_change(key, value, table="customers")
    assert change.op == "u"
    assert change.old("email") == "ada@example.com"
    assert change.new("email") == "ada@lovelace.org"
    assert change.key == {"id": 1}


def test_delete_with_before_image() -> None:
    key, value = dbz.record("d", "customers", before=_customer())
    change = decode_change(key, value, table="customers")
    assert change.op == "d" and change.after is None
    assert change.row["email"] == "ada@example.com"


def test_delete_with_only_a_key() -> None:
    key, value = dbz.record("d", "customers", before=None, key={"id": 1})
    change = decode_change(key, value, table="customers")
    assert change.before is None and change.key == {"id": 1}


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        ("true", True),
        ("first", True),
        ("last", True),
        ("incremental", True),
        (True, True),
        ("false", False),
        (False, False),
        (None, False),
    ],
)
def test_snapshot_flag_in_every_form(snapshot: object, expected: bool) -> None:
    key, value = dbz.record("r", "customers", after=_customer(), snapshot=snapshot)
    change = decode_change(key, value, table="customers")
    assert change.op == "r"
    assert change.snapshot is expected


def test_truncate_is_a_change_without_images() -> None:
    change = decode_change(None, fixture("truncate.value.json"), table="customers")
    assert change.op == "t"
    assert change.table == "public.customers"
    assert change.before is None and change.after is None and change.key == {}
    assert change.source.tx_id == 580 and change.source.lsn == 24023300


def test_missing_column_access_names_the_table() -> None:
    key, value = dbz.record("c", "customers", after=_customer())
    change = decode_change(key, value, table="customers")
    with pytest.raises(KeyError, match="no before image"):
        change.old("email")
    with pytest.raises(KeyError, match="no column 'nope'"):
        change.new("nope")
    assert change.new("nope", None) is None


def test_change_images_are_read_only() -> None:
    key, value = dbz.record("c", "customers", after=_customer())
    change = decode_change(key, value, table="customers")
    with pytest.raises(TypeError):
        change.after["email"] = "x"  # type: ignore[index]


# -- skips


@pytest.mark.parametrize("value", [None, b""])
def test_tombstone(value: bytes | None) -> None:
    result = decode_record(value, key=b'{"id": 1}', topic=dbz.topic("customers"))
    assert isinstance(result, Skip) and result.reason is SkipReason.TOMBSTONE
    assert result.record is not None and result.record.key == b'{"id": 1}'


def test_heartbeat_with_schema() -> None:
    result = decode_record(
        fixture("heartbeat.value.json"),
        key=fixture("heartbeat.key.json"),
        topic="__debezium-heartbeat.shop",
    )
    assert isinstance(result, Skip) and result.reason is SkipReason.HEARTBEAT


def test_heartbeat_schemaless_is_known_by_its_topic() -> None:
    result = decode_record(
        b'{"ts_ms": 1718000000999}',
        key=b'{"serverName": "shop"}',
        topic="__debezium-heartbeat.shop",
    )
    assert isinstance(result, Skip) and result.reason is SkipReason.HEARTBEAT


def test_heartbeat_topic_prefix_is_configurable() -> None:
    options = DecoderOptions(heartbeat_topic_prefix="hb")
    result = decode_record(b'{"ts_ms": 1}', topic="hb.shop", options=options)
    assert isinstance(result, Skip) and result.reason is SkipReason.HEARTBEAT


@pytest.mark.parametrize("name", ["transaction_begin.value.json", "transaction_end.value.json"])
def test_transaction_metadata(name: str) -> None:
    key = b'{"id": "571:24023128"}'
    result = decode_record(fixture(name), key=key, topic="shop.transaction")
    assert isinstance(result, Skip) and result.reason is SkipReason.TRANSACTION
    assert "571:24023128" in result.detail


def test_logical_decoding_message() -> None:
    result = decode_record(
        fixture("message.value.json"), key=b'{"prefix": "audit"}', topic="shop.message"
    )
    assert isinstance(result, Skip) and result.reason is SkipReason.MESSAGE


def test_null_payload_in_a_schema_envelope_is_a_tombstone() -> None:
    result = decode_record(b'{"schema": null, "payload": null}', topic=dbz.topic("customers"))
    assert isinstance(result, Skip) and result.reason is SkipReason.TOMBSTONE


# -- errors carry the record


def _decode_error(value: bytes, key: bytes | None = b'{"id": 1}') -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_record(value, key=key, topic="shop.public.customers", partition=2, offset=99)
    err = info.value
    assert (err.topic, err.partition, err.offset, err.key, err.value) == (
        "shop.public.customers",
        2,
        99,
        key,
        value,
    )
    assert err.stage == "decode"
    return err


def test_not_json() -> None:
    err = _decode_error(b"\x00\x00\x00\x00\x01avro")
    assert "not JSON" in str(err) and err.hint


def test_payload_not_an_object() -> None:
    assert "JSON object" in str(_decode_error(b"[1, 2]"))


def test_not_a_change_event() -> None:
    assert "op=None" in str(_decode_error(b'{"hello": "world"}'))


def test_source_block_missing() -> None:
    assert "source" in str(_decode_error(b'{"op": "c", "after": {"id": 1}}'))


def test_source_block_incomplete() -> None:
    _, value = dbz.record("c", "customers", after=_customer())
    doc = json.loads(value)
    del doc["payload"]["source"]["ts_ms"]
    assert "'ts_ms'" in str(_decode_error(json.dumps(doc).encode()))


def test_create_without_after_image() -> None:
    _, value = dbz.record("c", "customers", after=None, before=None, key={"id": 1})
    assert "without an after image" in str(_decode_error(value))


def test_bad_column_value_names_table_and_column() -> None:
    _, value = dbz.record(
        "c", "orders", after={**_order_row(), "id": "not-a-uuid"}, key={"id": str(ORDER_ID)}
    )
    err = _decode_error(value)
    assert "public.orders" in str(err) and "'id'" in str(err)


def test_bad_key() -> None:
    _, value = dbz.record("c", "customers", after=_customer())
    assert "record key" in str(_decode_error(value, key=b'"just a string"'))


def _order_row() -> dict[str, object]:
    doc = json.loads(fixture("orders_insert.value.json"))
    return dict(doc["payload"]["after"])


def _mangled(mangle: Callable[[dict[str, Any]], None]) -> bytes:
    _, value = dbz.record("u", "customers", before=_customer(), after=_customer(email="b@x"))
    doc = json.loads(value)
    mangle(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda doc: doc["schema"]["fields"][0].update(fields=["not a field"]),
            "malformed Debezium record: TypeError",
        ),
        (
            lambda doc: doc["schema"].update(fields="nonsense"),
            "malformed Debezium record: AttributeError",
        ),
        (
            lambda doc: doc["payload"]["source"].update(name=None),
            "source block is invalid",
        ),
    ],
    ids=["field-not-an-object", "fields-not-a-list", "source-name-null"],
)
def test_malformed_records_are_decode_errors(
    mangle: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = _mangled(mangle)
    with pytest.raises(DecodeError) as caught:
        decode_record(raw, key=b'{"id": 1}', topic="shop.public.customers", partition=2, offset=99)
    err = caught.value
    assert str(err).startswith(f"shop.public.customers[2]@99: {message}")
    assert (err.topic, err.partition, err.offset, err.value) == (
        "shop.public.customers",
        2,
        99,
        raw,
    )


def test_a_transaction_block_that_is_not_an_object_is_taken_as_absent() -> None:
    # Debezium writes an object or null; anything else carries no transaction to use.
    raw = _mangled(lambda doc: doc["payload"].update(transaction="tx"))
    change = decode_record(
        raw, key=b'{"id": 1}', topic="shop.public.customers", partition=2, offset=99
    )
    assert isinstance(change, Change)
    assert change.transaction is None
    assert (change.op, change.table, change.old("email"), change.new("email")) == (
        "u",
        "public.customers",
        "ada@example.com",
        "b@x",
    )
