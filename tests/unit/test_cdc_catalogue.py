"""Records without a schema, decoded with column types from the catalogue (transformer.cdc_types).

The catalogue's column types become the Connect schemas Debezium writes for
them, and a record without its schema then decodes to exactly what the same
record with its schema decodes to.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeline.cdc import Change, DecoderOptions, decode_record
from pipeline.cdc.catalogue import ColumnCatalogue, ColumnType, ValueModes, column_schema
from pipeline.cdc.values import UNSUPPORTED
from pipeline.errors import ConfigError, DecodeError
from pipeline.settings import load_settings
from pipeline.transformer.factory import decoder_options
from tests.unit import debezium as dbz
from tests.unit.test_cdc_identity import Clock


def numeric(name: str, precision: int, scale: int) -> ColumnType:
    """A numeric(precision, scale) column: PostgreSQL's typmod packs both."""
    return ColumnType(name, "numeric", (precision << 16 | scale) + 4)


# The shop's tables as the catalogue reads them (schema.sql of the example domain).
SHOP: dict[str, list[ColumnType]] = {
    "public.products": [
        ColumnType("id", "int8"),
        ColumnType("sku", "text"),
        ColumnType("name", "text"),
        ColumnType("description", "text"),
        numeric("price", 12, 2),
        ColumnType("currency", "bpchar", 7),
        ColumnType("active", "bool"),
        ColumnType("updated_at", "timestamptz"),
    ],
    "public.orders": [
        ColumnType("id", "uuid"),
        ColumnType("customer_id", "int8"),
        ColumnType("status", "order_status", enum=True),
        numeric("total", 12, 2),
        ColumnType("currency", "bpchar", 7),
        ColumnType("shipping_address", "jsonb"),
        ColumnType("placed_at", "timestamptz"),
        ColumnType("paid_at", "timestamptz"),
        ColumnType("shipped_at", "timestamptz"),
        ColumnType("tracking_number", "text"),
        ColumnType("cancelled_at", "timestamptz"),
        ColumnType("cancel_reason", "text"),
        ColumnType("updated_at", "timestamptz"),
    ],
    "public.order_lines": [
        ColumnType("order_id", "uuid"),
        ColumnType("line_no", "int4"),
        ColumnType("product_id", "int8"),
        ColumnType("quantity", "int4"),
        numeric("unit_price", 12, 2),
    ],
}


class Catalogue:
    """A column lookup over fixed tables that counts its reads (the tables may change)."""

    def __init__(self, tables: Mapping[str, list[ColumnType]]) -> None:
        self.tables = dict(tables)
        self.reads: list[tuple[str, list[str]]] = []

    def __call__(self, database: str, tables: Collection[str]) -> Mapping[str, list[ColumnType]]:
        self.reads.append((database, sorted(tables)))
        return {t: self.tables[t] for t in tables if t in self.tables}


def options(lookup: Catalogue, clock: Clock | None = None) -> DecoderOptions:
    return DecoderOptions(column_types=ColumnCatalogue(lookup, clock=clock or Clock()))


def decode(table: str, opts: DecoderOptions, *, with_schema: bool, **record: Any) -> Change:
    key, value = dbz.record(record.pop("op", "c"), table, with_schema=with_schema, **record)
    change = decode_record(value, topic=dbz.topic(table), key=key, options=opts)
    assert isinstance(change, Change)
    return change


def image(change: Change) -> tuple[Any, ...]:
    def plain(row: Any) -> Any:
        return None if row is None else dict(row)

    return plain(change.before), plain(change.after), dict(change.key), change.source


# -- the mapping, column type by column type

SHIPPED = ValueModes()


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (ColumnType("c", "int2"), {"type": "int16"}),
        (ColumnType("c", "int4"), {"type": "int32"}),
        (ColumnType("c", "int8"), {"type": "int64"}),
        (ColumnType("c", "float4"), {"type": "float"}),
        (ColumnType("c", "float8"), {"type": "double"}),
        (ColumnType("c", "bool"), {"type": "boolean"}),
        (ColumnType("c", "varchar", 36), {"type": "string"}),
        (ColumnType("c", "inet"), {"type": "string"}),
        (ColumnType("c", "uuid"), {"type": "string", "name": "io.debezium.data.Uuid"}),
        (ColumnType("c", "jsonb"), {"type": "string", "name": "io.debezium.data.Json"}),
        (ColumnType("c", "mood", enum=True), {"type": "string", "name": "io.debezium.data.Enum"}),
        (
            ColumnType("c", "timestamptz", 3),
            {"type": "string", "name": "io.debezium.time.ZonedTimestamp"},
        ),
        (ColumnType("c", "timetz"), {"type": "string", "name": "io.debezium.time.ZonedTime"}),
        (ColumnType("c", "date"), {"type": "int32", "name": "io.debezium.time.Date"}),
        # adaptive_time_microseconds: every time in microseconds, timestamps as adaptive.
        (ColumnType("c", "time", 0), {"type": "int64", "name": "io.debezium.time.MicroTime"}),
        (ColumnType("c", "timestamp", 3), {"type": "int64", "name": "io.debezium.time.Timestamp"}),
        (
            ColumnType("c", "timestamp"),
            {"type": "int64", "name": "io.debezium.time.MicroTimestamp"},
        ),
        (ColumnType("c", "interval"), {"type": "string", "name": "io.debezium.time.Interval"}),
        (ColumnType("c", "bytea"), {"type": "bytes"}),
        (
            numeric("c", 20, 6),
            {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "6", "connect.decimal.precision": "20"},
            },
        ),
        (
            ColumnType("c", "money"),
            {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "2"},
            },
        ),
        (
            ColumnType("c", "text", array=True),
            {"type": "array", "items": {"type": "string", "optional": True}},
        ),
        (ColumnType("c", "bit", 1), {"type": "boolean"}),
        (ColumnType("c", "bit", 12), {"type": "bytes", "name": "io.debezium.data.Bits"}),
        (
            ColumnType("c", "point"),
            {"type": "string", "name": UNSUPPORTED, "parameters": {"type": "point"}},
        ),
    ],
)
def test_each_type_maps_to_the_schema_the_shipped_connector_writes(
    column: ColumnType, expected: dict[str, Any]
) -> None:
    assert column_schema(column, SHIPPED) == {**expected, "optional": True, "field": "c"}


def test_numeric_without_precision_is_a_variable_scale_decimal() -> None:
    schema = column_schema(ColumnType("n", "numeric"), SHIPPED)
    assert schema["name"] == "io.debezium.data.VariableScaleDecimal"
    assert [f["field"] for f in schema["fields"]] == ["scale", "value"]


def test_a_negative_numeric_scale_is_written_as_debezium_writes_it() -> None:
    # numeric(5, -2) (PostgreSQL 15+): the typmod holds the scale in 11 bits, and Debezium
    # writes those bits as the scale (2046), with the value's unscaled bytes scaled by it.
    typmod = (5 << 16 | (-2 & 0x7FF)) + 4
    schema = column_schema(ColumnType("n", "numeric", typmod), SHIPPED)
    assert schema["parameters"] == {"scale": "2046", "connect.decimal.precision": "5"}
    unscaled = 1200 * 10**2046
    raw = dbz.b64(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True))
    lookup = Catalogue({"public.t": [ColumnType("id", "int4"), ColumnType("n", "numeric", typmod)]})
    change = decode("t", options(lookup), with_schema=False, columns=[], after={"id": 1, "n": raw})
    assert change.after is not None and change.after["n"] == 1200


@pytest.mark.parametrize(
    ("modes", "column", "expected"),
    [
        ({"time.precision.mode": "adaptive"}, ColumnType("t", "time", 3), "io.debezium.time.Time"),
        (
            {"time.precision.mode": "adaptive"},
            ColumnType("t", "time"),
            "io.debezium.time.MicroTime",
        ),
        (
            {"time.precision.mode": "connect"},
            ColumnType("t", "timestamp"),
            "org.apache.kafka.connect.data.Timestamp",
        ),
        (
            {"time.precision.mode": "connect"},
            ColumnType("t", "date"),
            "org.apache.kafka.connect.data.Date",
        ),
        ({"time.precision.mode": "isostring"}, ColumnType("t", "date"), "io.debezium.time.IsoDate"),
        (
            {"interval.handling.mode": "numeric"},
            ColumnType("t", "interval"),
            "io.debezium.time.MicroDuration",
        ),
        ({"decimal.handling.mode": "string"}, numeric("t", 8, 2), None),
        ({"binary.handling.mode": "base64"}, ColumnType("t", "bytea"), None),
    ],
)
def test_the_connectors_value_handling_decides(
    modes: dict[str, str], column: ColumnType, expected: str | None
) -> None:
    schema = column_schema(column, ValueModes.from_connector(modes))
    assert schema.get("name") == expected


def test_value_modes_take_the_connectors_keys_and_refuse_others() -> None:
    assert ValueModes.from_connector({}) == SHIPPED
    assert SHIPPED.as_connector()["time.precision.mode"] == "adaptive_time_microseconds"
    assert ValueModes.from_connector({"money.fraction.digits": "4"}).money_fraction_digits == 4
    with pytest.raises(ValueError, match=r"decimal\.format"):
        ValueModes.from_connector({"decimal.format": "NUMERIC"})
    with pytest.raises(ValueError, match="expected one of"):
        ValueModes.from_connector({"decimal.handling.mode": "exact"})


# -- decoding: without the schema, exactly what the schema'd record decodes to

ROWS: dict[str, dict[str, Any]] = {
    "products": {
        "id": 7,
        "sku": "SKU-7",
        "name": "Lamp",
        "description": None,
        "price": dbz.dec("1234.50", 2),
        "currency": "EUR",
        "active": True,
        "updated_at": "2024-10-27T01:30:00.25Z",
    },
    "orders": {
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "customer_id": 9223372036854775807,
        "status": "paid",
        "total": dbz.dec("-0.01", 2),
        "currency": "EUR",
        "shipping_address": json.dumps({"city": "Zürich", "n": 12.50}),
        "placed_at": "0001-01-01T00:00:00Z",
        "paid_at": None,
        "shipped_at": None,
        "tracking_number": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "updated_at": "9999-12-31T23:59:59.999999Z",
    },
    "order_lines": {
        "order_id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "line_no": 2,
        "product_id": 7,
        "quantity": 3,
        "unit_price": dbz.dec("99999999.99", 2),
    },
}


@pytest.mark.parametrize("table", sorted(ROWS))
@pytest.mark.parametrize("op", ["c", "u", "d"])
def test_a_record_without_schema_decodes_as_with_it(table: str, op: str) -> None:
    lookup = Catalogue(SHOP)
    row = ROWS[table]
    images = {"c": {"after": row}, "u": {"before": row, "after": row}, "d": {"before": row}}[op]
    with_schema = decode(table, DecoderOptions(), with_schema=True, op=op, **images)
    without = decode(table, options(lookup), with_schema=False, op=op, **images)
    assert image(without) == image(with_schema)
    assert without.key_only_shape == with_schema.key_only_shape
    assert lookup.reads == [("shop", [f"public.{table}"])]


def test_without_the_catalogue_the_same_record_is_not_exact() -> None:
    # The premise: without types, a Decimal stays base64 text and a timestamptz stays text.
    change = decode("products", DecoderOptions(), with_schema=False, after=ROWS["products"])
    assert change.after is not None
    assert change.after["price"] == dbz.dec("1234.50", 2)
    assert change.after["updated_at"] == "2024-10-27T01:30:00.25Z"


def test_each_table_is_read_once() -> None:
    lookup = Catalogue(SHOP)
    opts = options(lookup)
    for table in [*ROWS, *ROWS]:
        decode(table, opts, with_schema=False, after=ROWS[table])
    assert sorted(t for _, (t,) in lookup.reads) == sorted(f"public.{t}" for t in ROWS)


def test_a_fraction_keeps_every_digit() -> None:
    # A numeric column under decimal.format=NUMERIC is a JSON number: never a float's digits.
    lookup = Catalogue({"public.m": [ColumnType("id", "int4"), numeric("v", 40, 30)]})
    digits = "0.123456789012345678901234567890"
    value = f'{{"before":null,"after":{{"id":1,"v":{digits}}},"source":{json.dumps(dbz.source("m"))},"op":"c"}}'
    change = decode_record(value.encode(), topic=dbz.topic("m"), options=options(lookup))
    assert isinstance(change, Change) and change.after is not None
    assert change.after["v"] == Decimal(digits) and str(change.after["v"]) == digits


TEMPORAL = [
    ColumnType("id", "int4"),
    ColumnType("d", "date"),
    ColumnType("ts", "timestamp"),
    ColumnType("tags", "text", array=True),
]


def test_temporal_columns_and_arrays_decode_by_their_types() -> None:
    lookup = Catalogue({"public.t": TEMPORAL})
    row = {"id": 1, "d": -1, "ts": 1_000_001, "tags": ["a", None]}
    change = decode("t", options(lookup), with_schema=False, columns=[], after=row, key={"id": 1})
    assert dict(change.after or {}) == {
        "id": 1,
        "d": date(1969, 12, 31),
        "ts": datetime(1970, 1, 1, 0, 0, 1, 1),
        "tags": ["a", None],
    }


def test_an_unknown_column_reads_the_table_again_then_dead_letters() -> None:
    lookup, clock = Catalogue({"public.t": TEMPORAL[:2]}), Clock()
    opts = options(lookup, clock)
    decode("t", opts, with_schema=False, columns=[], after={"id": 1, "d": 0}, key={"id": 1})
    # A column added since the table was read: read again at once, and known.
    lookup.tables["public.t"] = TEMPORAL
    later = {"id": 2, "d": 0, "ts": 0, "tags": []}
    decode("t", opts, with_schema=False, columns=[], after=later, key={"id": 2})
    assert len(lookup.reads) == 2
    # A column the catalogue does not have even when read again.
    with pytest.raises(DecodeError, match=r"public\.t: column 'gone' is not in the table") as err:
        decode("t", opts, with_schema=False, columns=[], after={**later, "gone": 1}, key={"id": 2})
    assert (err.value.topic, err.value.table, err.value.column) == (
        dbz.topic("t"),
        "public.t",
        "gone",
    )
    assert len(lookup.reads) == 3
    # Again within a second: not read again for it; a second later, read again.
    with pytest.raises(DecodeError, match="'gone'"):
        decode("t", opts, with_schema=False, columns=[], after={**later, "gone": 1}, key={"id": 2})
    assert len(lookup.reads) == 3
    clock.now += 1
    with pytest.raises(DecodeError, match="'gone'"):
        decode("t", opts, with_schema=False, columns=[], after={**later, "gone": 1}, key={"id": 2})
    assert len(lookup.reads) == 4


def test_a_table_the_catalogue_lacks_dead_letters() -> None:
    lookup, clock = Catalogue({}), Clock()
    opts = options(lookup, clock)
    for _ in range(3):  # asked once a second at most
        with pytest.raises(DecodeError, match=r"table public\.t is not in the catalogue") as err:
            decode("t", opts, with_schema=False, columns=[], after={"id": 1})
    assert (err.value.table, err.value.column) == ("public.t", None)
    assert len(lookup.reads) == 1
    clock.now += 1
    lookup.tables["public.t"] = TEMPORAL  # created since
    decode("t", opts, with_schema=False, columns=[], after={"id": 1}, key={"id": 1})
    assert len(lookup.reads) == 2


def test_a_value_of_the_wrong_json_kind_dead_letters_naming_the_column() -> None:
    lookup = Catalogue({"public.t": TEMPORAL})
    row = {"id": 1, "d": "2024-01-01", "ts": 0, "tags": []}
    with pytest.raises(DecodeError, match=r"public\.t: column 'd': date: expected an integer"):
        decode("t", options(lookup), with_schema=False, columns=[], after=row, key={"id": 1})


def test_a_key_column_the_table_lacks_dead_letters() -> None:
    lookup = Catalogue({"public.t": TEMPORAL})
    row = {"id": 1, "d": 0, "ts": 0, "tags": []}
    with pytest.raises(DecodeError, match=r"record key: column 'nope' is not in public\.t") as e:
        decode("t", options(lookup), with_schema=False, columns=[], after=row, key={"nope": 1})
    # The dead letter's cdcflow.dlq.table / cdcflow.dlq.column headers come from these.
    assert (e.value.table, e.value.column) == ("public.t", "nope")


def test_a_type_without_an_exact_reading_fails_when_read() -> None:
    lookup = Catalogue({"public.t": [ColumnType("id", "int4"), ColumnType("p", "point")]})
    row = {"id": 1, "p": {"x": 1.0, "y": 2.0}}
    with pytest.raises(DecodeError, match="type point has no exact reading"):
        decode("t", options(lookup), with_schema=False, columns=[], after=row, key={"id": 1})


def test_records_with_a_schema_ignore_the_catalogue() -> None:
    lookup = Catalogue({})
    change = decode("products", options(lookup), with_schema=True, after=ROWS["products"])
    assert change.after is not None and change.after["price"] == Decimal("1234.50")
    assert lookup.reads == []


# -- the setting


def test_the_setting_chooses_the_decoders_types_without_reaching_the_database() -> None:
    assert decoder_options(load_settings()).column_types is None  # "record", the default
    # catalogue: nothing is read until a record without a schema arrives (no database here).
    transformer = {"cdc_types": "catalogue", "cdc_value_modes": {"time.precision.mode": "connect"}}
    source = {"host": "db.invalid", "password": "unused"}
    types = decoder_options(load_settings(transformer=transformer, source=source)).column_types
    assert types is not None and types.lookups == 0
    assert types.modes == ValueModes(time_precision="connect")
    assert types.database == "shop"


def test_value_modes_the_connector_lacks_stop_the_start() -> None:
    transformer = {"cdc_types": "catalogue", "cdc_value_modes": {"decimal.handling.mode": "x"}}
    with pytest.raises(ConfigError, match=r"transformer\.cdc_value_modes: decimal\.handling"):
        decoder_options(load_settings(transformer=transformer))
