"""Column values in every form the Debezium PostgreSQL connector writes through JsonConverter."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from pipeline.cdc import Change, Interval, decode_record
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.values import decode_value
from tests.unit import debezium as dbz


def schema(type_: str, name: str | None = None, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "optional": True}
    if name:
        out["name"] = name
    if params:
        out["parameters"] = {k: str(v) for k, v in params.items()}
    return out


DECIMAL = "org.apache.kafka.connect.data.Decimal"
DBZ = "io.debezium.time."

CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    # numeric(12,2) in decimal.handling.mode=precise, JsonConverter decimal.format=BASE64
    ("decimal", schema("bytes", DECIMAL, scale=2), dbz.dec("129.50", 2), Decimal("129.50")),
    ("decimal negative", schema("bytes", DECIMAL, scale=2), dbz.dec("-0.01", 2), Decimal("-0.01")),
    ("decimal zero", schema("bytes", DECIMAL, scale=2), "AA==", Decimal("0.00")),
    ("decimal 128 boundary", schema("bytes", DECIMAL, scale=0), dbz.dec("128", 0), Decimal("128")),
    ("decimal -128", schema("bytes", DECIMAL, scale=0), dbz.dec("-128", 0), Decimal("-128")),
    (
        "decimal 40 digits exact",
        schema("bytes", DECIMAL, scale=10),
        dbz.dec("123456789012345678901234567890.1234567891", 10),
        Decimal("123456789012345678901234567890.1234567891"),
    ),
    # JsonConverter decimal.format=NUMERIC writes the number
    (
        "decimal numeric format",
        schema("bytes", DECIMAL, scale=2),
        Decimal("12.30"),
        Decimal("12.30"),
    ),
    # money in precise mode: a Decimal with scale money.fraction.digits
    ("money", schema("bytes", DECIMAL, scale=2), dbz.dec("1234.56", 2), Decimal("1234.56")),
    # numeric without scale
    (
        "variable scale decimal",
        schema("struct", "io.debezium.data.VariableScaleDecimal"),
        {"scale": 3, "value": dbz.dec("-12.345", 3)},
        Decimal("-12.345"),
    ),
    # decimal.handling.mode=double / string
    ("decimal as double", schema("double"), Decimal("12.5"), 12.5),
    ("decimal as string", schema("string"), "12.50", "12.50"),
    ("double NaN", schema("double"), "NaN", "nan"),
    ("float infinity", schema("float"), "-Infinity", -math.inf),
    ("int16", schema("int16"), -7, -7),
    ("int64", schema("int64"), 9007199254740993, 9007199254740993),
    ("boolean", schema("boolean"), True, True),
    ("text", schema("string"), "héllo", "héllo"),
    ("null", schema("string"), None, None),
    # temporal, adaptive / adaptive_time_microseconds
    ("date", schema("int32", DBZ + "Date"), 19884, date(2024, 6, 10)),
    ("date before epoch", schema("int32", DBZ + "Date"), -1, date(1969, 12, 31)),
    ("time ms", schema("int32", DBZ + "Time"), 45296789, time(12, 34, 56, 789000)),
    ("micro time", schema("int64", DBZ + "MicroTime"), 45296789012, time(12, 34, 56, 789012)),
    ("nano time", schema("int64", DBZ + "NanoTime"), 45296789012345, time(12, 34, 56, 789012)),
    ("time 24:00", schema("int64", DBZ + "MicroTime"), 86_400_000_000, time.max),
    (
        "timestamp ms",
        schema("int64", DBZ + "Timestamp"),
        1718000000123,
        datetime(2024, 6, 10, 6, 13, 20, 123000),
    ),
    (
        "micro timestamp",
        schema("int64", DBZ + "MicroTimestamp"),
        1529507596945104,
        datetime(2018, 6, 20, 15, 13, 16, 945104),
    ),
    (
        "nano timestamp",
        schema("int64", DBZ + "NanoTimestamp"),
        1529507596945104123,
        datetime(2018, 6, 20, 15, 13, 16, 945104),
    ),
    (
        "timestamp +infinity",
        schema("int64", DBZ + "MicroTimestamp"),
        9223372036825200000,
        datetime.max,
    ),
    (
        "timestamp -infinity",
        schema("int64", DBZ + "MicroTimestamp"),
        -9223372036832400000,
        datetime.min,
    ),
    (
        "zoned timestamp",
        schema("string", DBZ + "ZonedTimestamp"),
        "2024-06-10T06:13:20.123456Z",
        datetime(2024, 6, 10, 6, 13, 20, 123456, tzinfo=UTC),
    ),
    (
        "zoned timestamp with offset becomes UTC",
        schema("string", DBZ + "ZonedTimestamp"),
        "2024-06-10T08:13:20+02:00",
        datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC),
    ),
    (
        "timestamptz infinity",
        schema("string", DBZ + "ZonedTimestamp"),
        "infinity",
        datetime.max.replace(tzinfo=UTC),
    ),
    (
        "timestamptz -infinity",
        schema("string", DBZ + "ZonedTimestamp"),
        "-infinity",
        datetime.min.replace(tzinfo=UTC),
    ),
    (
        "zoned time",
        schema("string", DBZ + "ZonedTime"),
        "06:13:20.5Z",
        time(6, 13, 20, 500000, tzinfo=UTC),
    ),
    # time.precision.mode=connect
    (
        "connect date",
        schema("int32", "org.apache.kafka.connect.data.Date"),
        19884,
        date(2024, 6, 10),
    ),
    (
        "connect time",
        schema("int32", "org.apache.kafka.connect.data.Time"),
        3723004,
        time(1, 2, 3, 4000),
    ),
    (
        "connect timestamp",
        schema("int64", "org.apache.kafka.connect.data.Timestamp"),
        1718000000123,
        datetime(2024, 6, 10, 6, 13, 20, 123000),
    ),
    # time.precision.mode=isostring
    ("iso date", schema("string", DBZ + "IsoDate"), "2024-06-10Z", date(2024, 6, 10)),
    ("iso time", schema("string", DBZ + "IsoTime"), "01:02:03.123456Z", time(1, 2, 3, 123456)),
    (
        "iso timestamp",
        schema("string", DBZ + "IsoTimestamp"),
        "1969-12-31T23:59:59.123456Z",
        datetime(1969, 12, 31, 23, 59, 59, 123456),
    ),
    # intervals
    (
        "micro duration",
        schema("int64", DBZ + "MicroDuration"),
        90_061_000_001,
        timedelta(days=1, seconds=3661, microseconds=1),
    ),
    (
        "interval string",
        schema("string", DBZ + "Interval"),
        "P1Y2M3DT4H5M6.78S",
        Interval(months=14, days=3, microseconds=(4 * 3600 + 5 * 60 + 6) * 1_000_000 + 780_000),
    ),
    (
        "negative interval",
        schema("string", DBZ + "Interval"),
        "P0Y0M-3DT-4H0M-1.5S",
        Interval(days=-3, microseconds=-(4 * 3600 * 1_000_000 + 1_500_000)),
    ),
    # other semantic types
    (
        "uuid",
        schema("string", "io.debezium.data.Uuid"),
        "0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e",
        UUID("0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e"),
    ),
    (
        "jsonb",
        schema("string", "io.debezium.data.Json"),
        '{"a": [1, 2.50, null, true], "b": {"c": "d"}}',
        {"a": [1, Decimal("2.50"), None, True], "b": {"c": "d"}},
    ),
    ("json scalar", schema("string", "io.debezium.data.Json"), '"just text"', "just text"),
    ("hstore as json", schema("string", "io.debezium.data.Json"), '{"key": "val"}', {"key": "val"}),
    (
        "hstore as map",
        schema("map") | {"keys": {"type": "string"}, "values": {"type": "string"}},
        {"k": "v"},
        {"k": "v"},
    ),
    ("enum", schema("string", "io.debezium.data.Enum", allowed="placed,paid"), "paid", "paid"),
    ("xml", schema("string", "io.debezium.data.Xml"), "<a/>", "<a/>"),
    # BIT(3) b'101' -> little-endian bytes [0b101]
    ("bits", schema("bytes", "io.debezium.data.Bits", length=3), dbz.b64(bytes([0b101])), 0b101),
    (
        "bits two bytes",
        schema("bytes", "io.debezium.data.Bits", length=10),
        dbz.b64(bytes([0x01, 0x02])),
        0x0201,
    ),
    ("bytea", schema("bytes"), dbz.b64(b"\x00\xffbin"), b"\x00\xffbin"),
    # arrays
    (
        "int array",
        schema("array") | {"items": {"type": "int32", "optional": True}},
        [1, None, 3],
        [1, None, 3],
    ),
    (
        "numeric array",
        schema("array") | {"items": schema("bytes", DECIMAL, scale=2)},
        [dbz.dec("1.10", 2), dbz.dec("2.20", 2)],
        [Decimal("1.10"), Decimal("2.20")],
    ),
    (
        "uuid array",
        schema("array") | {"items": schema("string", "io.debezium.data.Uuid")},
        ["0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e"],
        [UUID("0b7f3c2e-8a44-4c1e-9d55-3f2a1b6c7d8e")],
    ),
    ("text array", schema("array") | {"items": {"type": "string"}}, ["a", "b"], ["a", "b"]),
    (
        "point struct",
        schema("struct", "io.debezium.data.geometry.Point")
        | {
            "fields": [
                {"type": "double", "field": "x"},
                {"type": "double", "field": "y"},
                {"type": "bytes", "field": "wkb", "optional": True},
            ]
        },
        {"x": Decimal("1.5"), "y": 2, "wkb": None},
        {"x": 1.5, "y": 2.0, "wkb": None},
    ),
    # an unknown semantic name falls back to its literal type
    ("unknown semantic", schema("string", "io.debezium.data.SomethingNew"), "x", "x"),
]


@pytest.mark.parametrize(("label", "schema_", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decode_value(label: str, schema_: dict[str, Any], raw: Any, expected: Any) -> None:
    value = decode_value(schema_, raw)
    if expected == "nan":
        assert math.isnan(value)
        return
    assert value == expected
    assert type(value) is type(expected)


def test_decimal_keeps_its_scale() -> None:
    assert str(decode_value(schema("bytes", DECIMAL, scale=2), dbz.dec("10", 2))) == "10.00"


def test_map_with_non_string_keys_arrives_as_pairs() -> None:
    s = schema("map") | {"keys": {"type": "int32"}, "values": {"type": "string"}}
    assert decode_value(s, [[1, "a"], [2, "b"]]) == {1: "a", 2: "b"}


def test_interval_iso_round_trip_and_timedelta() -> None:
    interval = decode_value(schema("string", DBZ + "Interval"), "P0Y0M3DT4H5M6.78S")
    assert str(interval) == "P0Y0M3DT4H5M6.78S"
    assert interval.to_timedelta() == timedelta(days=3, hours=4, minutes=5, seconds=6.78)
    with pytest.raises(ValueError, match="months"):
        Interval(months=1).to_timedelta()
    assert Interval(months=1).to_timedelta(days_per_month=30) == timedelta(days=30)


BAD: list[tuple[str, dict[str, Any], Any]] = [
    ("bad base64", schema("bytes", DECIMAL, scale=2), "***"),
    ("decimal without scale", schema("bytes", DECIMAL), dbz.dec("1", 0)),
    ("bad uuid", schema("string", "io.debezium.data.Uuid"), "nope"),
    ("bad json", schema("string", "io.debezium.data.Json"), "{nope"),
    ("json not text", schema("string", "io.debezium.data.Json"), 5),
    ("bad timestamptz", schema("string", DBZ + "ZonedTimestamp"), "yesterday"),
    ("timestamptz without offset", schema("string", DBZ + "ZonedTimestamp"), "2024-06-10T06:13:20"),
    ("time out of range", schema("int64", DBZ + "MicroTime"), -1),
    ("date not int", schema("int32", DBZ + "Date"), "2024-06-10"),
    ("bad interval", schema("string", DBZ + "Interval"), "1 day"),
    ("int not int", schema("int32"), "7"),
    ("bool not bool", schema("boolean"), 1),
    ("text not text", schema("string"), 7),
    ("array not array", schema("array") | {"items": {"type": "int32"}}, 7),
    ("struct not object", schema("struct") | {"fields": []}, 7),
    ("double not a number", schema("double"), "seven"),
]


@pytest.mark.parametrize(("label", "schema_", "raw"), BAD, ids=[c[0] for c in BAD])
def test_decode_value_rejects(label: str, schema_: dict[str, Any], raw: Any) -> None:
    with pytest.raises(ValueDecodeError):
        decode_value(schema_, raw)


SCHEMALESS: list[tuple[str, Any, Any]] = [
    ("int", 7, 7),
    ("fraction becomes exact Decimal", Decimal("12.50"), Decimal("12.50")),
    ("text", "2024-06-10T06:13:20Z", "2024-06-10T06:13:20Z"),
    ("variable scale decimal shape", {"scale": 2, "value": dbz.dec("3.14", 2)}, Decimal("3.14")),
    ("other objects recurse", {"x": [1, {"scale": 0, "value": "AQ=="}]}, {"x": [1, Decimal(1)]}),
    ("list", [1, "a", None], [1, "a", None]),
]


@pytest.mark.parametrize(("label", "raw", "expected"), SCHEMALESS, ids=[c[0] for c in SCHEMALESS])
def test_schemaless(label: str, raw: Any, expected: Any) -> None:
    assert decode_value(None, raw) == expected


def test_numbers_in_a_schemaless_record_keep_every_digit() -> None:
    key, value = dbz.record("c", "payments", after={"id": 1, "amount": 0}, with_schema=False)
    doc = json.loads(value)
    doc["after"]["amount"] = "__amount__"
    raw = json.dumps(doc).replace('"__amount__"', "12345678901234567890.12").encode()
    change = decode_record(raw, key=key, topic=dbz.topic("payments"))
    assert isinstance(change, Change) and change.after is not None
    assert change.after["amount"] == Decimal("12345678901234567890.12")


def test_every_column_type_through_a_record() -> None:
    columns = [
        dbz.int64("id"),
        dbz.decimal("price", 2),
        dbz.named("born", "int32", DBZ + "Date"),
        dbz.named("at", "int64", DBZ + "MicroTimestamp"),
        dbz.tstz("seen"),
        dbz.uuid_col("ref"),
        dbz.json_col("doc"),
        dbz.col("photo", "bytes", True),
        dbz.col("tags", "array", True) | {"items": {"type": "string", "optional": True}},
        dbz.boolean("ok"),
    ]
    after = {
        "id": 1,
        "price": dbz.dec("9.99", 2),
        "born": 0,
        "at": 0,
        "seen": "1970-01-01T00:00:00Z",
        "ref": "00000000-0000-0000-0000-000000000001",
        "doc": "[]",
        "photo": dbz.b64(b"\x89PNG"),
        "tags": ["a"],
        "ok": False,
    }
    key, value = dbz.record(
        "c", "things", after=after, columns=columns, key_fields=[dbz.int64("id")]
    )
    change = decode_record(value, key=key, topic=dbz.topic("things"))
    assert isinstance(change, Change)
    assert change.after == {
        "id": 1,
        "price": Decimal("9.99"),
        "born": date(1970, 1, 1),
        "at": datetime(1970, 1, 1),
        "seen": datetime(1970, 1, 1, tzinfo=UTC),
        "ref": UUID(int=1),
        "doc": [],
        "photo": b"\x89PNG",
        "tags": ["a"],
        "ok": False,
    }
