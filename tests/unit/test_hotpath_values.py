"""The hot path's shortcuts give exactly what the general code gives: ids, keys, positions, stamps."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from pipeline.cdc import UNCHANGED, Change, decode_record
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.rows import decode_planned, row_plan
from pipeline.cdc.toast import matcher
from pipeline.cdc.values import decode_value, plain_type
from pipeline.errors import DecodeError
from pipeline.events import DomainEvent, EventMetadata, SourcePosition, derive_event_id
from pipeline.events.base import EVENT_ID_NAMESPACE
from pipeline.mapping import Mapped, Rules, map_change, row_key
from tests.unit import debezium as dbz
from tests.unit.changes import make_change


class Thing(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "thing_id"
    __namespace__: ClassVar[str] = "test.events"
    thing_id: int


class Versioned(Thing):
    __version__: ClassVar[Any] = "2"  # not an int: validated as before (lax: "2" -> 2)


@pytest.mark.parametrize(
    "name",
    ["", 'shop|1|2|public.t|{"id":1}|Thing|0|', "ünïcödé|€", "x" * 10_000],
)
def test_event_ids_are_uuid5_of_the_name(name: str) -> None:
    position = SourcePosition(connector=name, table="public.t", commit_ts_ms=1)
    got = derive_event_id(position, "k", "Thing", 3)
    expected = uuid.uuid5(
        EVENT_ID_NAMESPACE, "|".join([name, "None", "None", "public.t", "k", "Thing", "3", ""])
    )
    assert got == expected
    assert str(got) == str(expected)
    assert hash(got) == hash(expected)
    assert got.version == 5 and got.variant == uuid.RFC_4122
    assert got.is_safe is uuid.SafeUUID.unknown


def _dumps(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "key",
    [
        {"id": 5},
        {"id": -(2**70)},
        {'naïve "col"': 7},
        {"id": uuid.UUID("0b0e9e0c-7c2e-4a43-9d4b-2f8a3c1d9e11")},
        {"id": True},
        {"id": "text"},
        {"b": 1, "a": 2},
    ],
)
def test_row_keys_are_the_canonical_json_of_the_key(key: dict[str, Any]) -> None:
    plain = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in key.items()}
    assert row_key(make_change("c", after={"x": 1}, key=key)) == _dumps(plain)


def test_a_keyless_row_key_is_the_whole_row() -> None:
    change = make_change("c", after={"b": Decimal("1.50"), "a": None}, key={})
    assert row_key(change) == '{"a":null,"b":"1.50"}'


def test_a_position_of_exact_types_equals_the_validated_one() -> None:
    args: dict[str, Any] = dict(
        connector="shop", table="public.t", lsn=10, commit_lsn=None, tx_id=None,
        commit_ts_ms=1, snapshot=False,
    )  # fmt: skip
    fast = SourcePosition.of(**args)
    assert fast == SourcePosition(**args)
    assert fast.model_dump() == SourcePosition(**args).model_dump()


def test_a_position_of_other_types_is_validated_as_before() -> None:
    converted = SourcePosition.of("shop", "public.t", "10", None, 7.0, 1, False)
    assert converted.lsn == 10 and type(converted.lsn) is int
    assert converted.tx_id == 7 and type(converted.tx_id) is int
    with pytest.raises(ValidationError):
        SourcePosition.of("shop", "public.t", "ten", None, None, 1, False)


def test_a_source_block_with_a_wrong_type_is_still_a_decode_error() -> None:
    key, value = dbz.record(
        "c",
        "t",
        after={"id": 1},
        columns=[dbz.int32("id")],
        key_fields=[dbz.int32("id")],
        tx_id="not a number",
    )
    with pytest.raises(DecodeError, match="source block is invalid"):
        decode_record(value, topic=dbz.topic("t"), key=key, partition=0, offset=1)


def test_a_decoded_position_takes_debezium_values_as_they_are() -> None:
    key, value = dbz.record(
        "c", "t", after={"id": 1}, columns=[dbz.int32("id")], key_fields=[dbz.int32("id")]
    )
    change = decode_record(value, topic=dbz.topic("t"), key=key, partition=0, offset=1)
    assert isinstance(change, Change)
    assert change.source == SourcePosition(
        connector=dbz.PREFIX, table="public.t", lsn=24023128, commit_lsn=24023120,
        tx_id=555, commit_ts_ms=1718000000123, snapshot=False,
    )  # fmt: skip


def _one_rule(fn: Any) -> Rules:
    rules = Rules("test")
    rules.on("public.t", ops="c")(fn)
    return rules


def test_an_event_is_stamped_in_place_once() -> None:
    made: list[Thing] = []

    def rule(change: Change) -> Thing:
        made.append(Thing(thing_id=change.new("id")))
        return made[-1]

    result = map_change(_one_rule(rule), make_change("c", after={"id": 5}))
    assert isinstance(result, Mapped)
    (event,) = result.events
    assert event is made[0]  # no copy
    assert event.metadata is not None and event.metadata.aggregate_id == "5"
    assert "metadata" in event.model_fields_set
    assert event == event.model_copy()


def test_an_event_returned_twice_gets_two_stamps_and_the_first_does_not_change() -> None:
    kept = Thing(thing_id=5)
    rules = _one_rule(lambda change: [kept, kept])
    first = map_change(rules, make_change("c", after={"id": 5}, lsn=1))
    assert isinstance(first, Mapped)
    a, b = first.events
    assert a is kept and b is not kept
    assert a.metadata is not None and b.metadata is not None
    assert a.metadata.event_id != b.metadata.event_id  # the 0th and 1st Thing of the change
    id_of_a = a.metadata.event_id
    second = map_change(rules, make_change("c", after={"id": 5}, lsn=2))
    assert isinstance(second, Mapped)
    assert kept.metadata is not None and kept.metadata.event_id == id_of_a
    assert all(e is not kept for e in second.events)
    assert len({e.metadata.event_id for e in second.events if e.metadata}) == 2


def test_metadata_equals_the_validated_model() -> None:
    result = map_change(
        _one_rule(lambda c: Thing(thing_id=c.new("id"))), make_change("c", after={"id": 5})
    )
    assert isinstance(result, Mapped)
    meta = result.events[0].metadata
    assert meta is not None
    assert meta == EventMetadata.model_validate(meta.model_dump())


def test_a_version_that_is_not_an_int_is_validated_as_before() -> None:
    result = map_change(
        _one_rule(lambda c: Versioned(thing_id=c.new("id"))), make_change("c", after={"id": 5})
    )
    assert isinstance(result, Mapped)
    meta = result.events[0].metadata
    assert meta is not None and meta.schema_version == 2


# -- row images: values of a plain type are taken as they are, everything else decoded


PLACEHOLDER = "__debezium_unavailable_value"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (dbz.int32("c"), int),
        (dbz.int64("c"), int),
        (dbz.text("c"), str),
        (dbz.boolean("c"), bool),
        (dbz.enum_col("c", "a,b"), str),
        (dbz.named("c", "int32", "io.debezium.time.Date"), None),
        (dbz.uuid_col("c"), None),
        (dbz.tstz("c"), None),
        (dbz.decimal("c", 2), None),
        (dbz.json_col("c"), None),
        (None, None),
    ],
)
def test_plain_types(schema: dict[str, Any] | None, expected: type | None) -> None:
    assert plain_type(schema) is expected


def test_a_row_decodes_as_each_value_alone() -> None:
    columns = [
        dbz.int32("i"), dbz.int64("l"), dbz.text("s"), dbz.boolean("b"), dbz.enum_col("e", "x,y"),
        dbz.named("d", "int32", "io.debezium.time.Date"), dbz.tstz("t"), dbz.uuid_col("u"),
    ]  # fmt: skip
    fields = {c["field"]: c for c in columns}
    raw = {
        "i": 7, "l": 2**40, "s": "text", "b": False, "e": "y", "d": 19000,
        "t": "2024-06-10T06:13:20.123456Z", "u": "0b0e9e0c-7c2e-4a43-9d4b-2f8a3c1d9e11",
    }  # fmt: skip
    row, toasted = decode_planned(raw, row_plan(fields), matcher(PLACEHOLDER))
    assert row == {name: decode_value(fields[name], value) for name, value in raw.items()}
    assert [type(v) for v in row.values()] == [
        type(decode_value(fields[n], v)) for n, v in raw.items()
    ]
    assert toasted == set()


def test_the_placeholder_in_a_text_column_is_still_unchanged() -> None:
    fields = {"s": dbz.text("s"), "i": dbz.int32("i")}
    row, toasted = decode_planned(
        {"s": PLACEHOLDER, "i": 1}, row_plan(fields), matcher(PLACEHOLDER)
    )
    assert row == {"s": UNCHANGED, "i": 1}
    assert toasted == {"s"}


@pytest.mark.parametrize(
    ("schema", "value"),
    [(dbz.int32("c"), True), (dbz.int32("c"), "7"), (dbz.text("c"), 7), (dbz.boolean("c"), 1)],
)
def test_a_value_of_another_type_still_fails(schema: dict[str, Any], value: Any) -> None:
    with pytest.raises(ValueDecodeError, match="column 'c'"):
        decode_planned({"c": value}, row_plan({"c": schema}), matcher(PLACEHOLDER))
