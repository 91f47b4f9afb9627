"""Type fidelity, end to end: a PostgreSQL value reaches the domain event unchanged.

The real chain runs: rows are written to PostgreSQL; the Debezium connector
(configured as connectors/shop-postgres.yaml is) writes them to a CDC topic;
the transformer (``build_transformer(...).run(stop)``) maps them with the
``tests.domains.fidelity`` rules and produces Avro events through the registry;
a plain confluent-kafka ``AvroDeserializer`` reads them back. Each value is then
compared with the row queried back from PostgreSQL with psycopg.

How each type is carried in the event, and why, is in
``tests/domains/fidelity/events.py``; the comparisons below say what "equal"
means where the representations differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
import string
import struct
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from pipeline.cdc import Interval
from pipeline.cdc.catalogue import ValueModes, column_schema, read_columns
from pipeline.cdc.column_types import DEBEZIUM_DEFAULTS
from pipeline.cdc.temporal import parse_interval
from pipeline.cdc.toast import DECLARED_PLACEHOLDER_PARAMETER
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.domains.fidelity.events import ProbeRecorded, ToastedRowChanged, TypedRowCaptured
from tests.integration.harness import PipelineRun, Received, connector_config, fidelity_run

PLACEHOLDER = "__debezium_unavailable_value"

# Rows of fidelity.typed as SQL literals, column by column (absent columns are NULL).
ROWS: dict[int, dict[str, str]] = {
    # Every column NULL.
    1: {},
    # Ordinary values.
    2: {
        "c_smallint": "42",
        "c_integer": "123456",
        "c_bigint": "9876543210",
        "c_numeric": "1234.5",
        "c_numeric_any": "3.14",
        "c_real": "1.1",
        "c_double": "0.1",
        "c_boolean": "true",
        "c_text": "'plain text'",
        "c_varchar": "'short'",
        "c_char": "'ab'",
        "c_uuid": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "c_date": "'2024-02-29'",
        "c_time": "'13:45:10.5'",
        "c_timetz": "'10:15:30.123456+05:30'",
        # A wall clock that does not exist in the transformer's local zone (a DST gap).
        "c_timestamp": "'2024-03-10 02:30:00.000001'",
        "c_timestamptz": "'2024-10-27 01:30:00.25+02'",
        "c_interval": "'1 year 2 mons 3 days 04:05:06.789'",
        "c_json": """'{"a": 1, "b": [true, null, "x"]}'""",
        "c_jsonb": """'{"k": "v", "n": 12.50}'""",
        "c_bytea": r"'\x0102'",
        "c_text_array": "ARRAY['a', 'b']",
        "c_int_array": "ARRAY[1, 2, 3]",
        "c_mood": "'ok'",
        "c_inet": "'192.168.0.1/24'",
        "c_money": "1234.56",
    },
    # Lowest and negative values, the far past.
    3: {
        "c_smallint": "-32768",
        "c_integer": "-2147483648",
        "c_bigint": "-9223372036854775808",
        "c_numeric": "-99999999999999.999999",
        "c_numeric_any": "-123456789012345678901234567890.123456789012345678901234567890",
        "c_real": "-3.4028235e38",
        "c_double": "-1.7976931348623157e308",
        "c_boolean": "false",
        "c_text": "''",
        "c_varchar": "''",
        "c_char": "''",
        "c_uuid": "'00000000-0000-0000-0000-000000000000'",
        "c_date": "'0001-01-01'",
        "c_time": "'00:00:00'",
        "c_timetz": "'00:00:00+15:59'",
        "c_timestamp": "'0001-01-01 00:00:00'",
        "c_timestamptz": "'0001-01-01 00:00:00+00'",
        "c_interval": "'-178000000 years -11 mons -3 days -04:05:06.5'",
        "c_json": "'[]'",
        "c_jsonb": "'{}'",
        "c_bytea": r"'\x'",
        "c_text_array": "ARRAY[]::text[]",
        "c_int_array": "ARRAY[]::integer[]",
        "c_mood": "'sad'",
        "c_inet": "'0.0.0.0'",
        "c_money": "-92233720368547758.08",
    },
    # Highest values, the far future, non-finite floats.
    4: {
        "c_smallint": "32767",
        "c_integer": "2147483647",
        "c_bigint": "9223372036854775807",
        "c_numeric": "99999999999999.999999",
        "c_numeric_any": "1e40",
        "c_real": "'NaN'",
        "c_double": "'Infinity'",
        "c_boolean": "true",
        "c_uuid": "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        "c_date": "'9999-12-31'",
        "c_time": "'23:59:59.999999'",
        "c_timetz": "'23:59:59.999999-15:59'",
        "c_timestamp": "'9999-12-31 23:59:59.999999'",
        "c_timestamptz": "'9999-12-31 23:59:59.999999+00'",
        "c_interval": "'178000000 years 11 mons 30 days 23:59:59.999999'",
        "c_bytea": "decode(repeat('ff', 70000), 'hex')",
        "c_text_array": "ARRAY[NULL, NULL]::text[]",
        "c_int_array": "ARRAY[-2147483648, 2147483647, NULL]",
        "c_mood": "'happy'",
        "c_inet": "'2001:db8::ff00:42:8329/128'",
        "c_money": "92233720368547758.07",
    },
    # Precise numbers, unicode, awkward text.
    5: {
        "c_numeric": "0.000001",
        "c_numeric_any": "0.000000000000000000000000000001",
        "c_real": "'-Infinity'",
        "c_double": "5e-324",
        "c_text": "'Grüße, 世界! 👩‍👩‍👧 שלום e\u0301 \"q\" \\ ''s'",
        "c_varchar": "'ünïcödé ✓'",
        "c_char": "'日本語'",
        "c_date": "'1969-12-31'",
        "c_timestamp": "'1969-12-31 23:59:59.999999'",
        "c_timestamptz": "'1969-12-31 23:59:59.999999-08'",
        "c_interval": "'0 seconds'",
        "c_json": """'{"a": 1.10, "a": "duplicate key", "deep": {"x": [1e400, -0.0]}}'""",
        "c_jsonb": """'{"pi": 3.141592653589793238462643383279, "u": "\\u00e9✓", "e": ""}'""",
        "c_bytea": "decode('00ff7f80', 'hex')",
        "c_text_array": """ARRAY['a,b', 'q"uote', '{brace}', 'back\\slash', '', 'NULL', '✓']""",
        "c_int_array": "ARRAY[0]",
        "c_inet": "'::1'",
        "c_money": "0.01",
    },
    # Trailing zeros, negative zero, small negatives, an interval of mixed signs.
    6: {
        "c_numeric": "-0.000001",
        "c_numeric_any": "1.500",
        "c_double": "-0.0",
        "c_interval": "'-1 mons 1 day'",
        "c_money": "-0.01",
    },
    # Beyond what Python represents: clamped as pipeline.cdc.temporal documents (CLAMPED).
    # Not date 'infinity': Debezium 3.6 writes it as a negative day count, like -infinity.
    7: {
        "c_date": "'-infinity'",
        "c_time": "'24:00:00'",
        "c_timestamp": "'infinity'",
        "c_timestamptz": "'-infinity'",
    },
}
CLAMPED = {
    "c_date": date.min,
    "c_time": dtime.max,  # 24:00:00 is one microsecond after it
    "c_timestamp": datetime.max.replace(tzinfo=UTC),
    "c_timestamptz": datetime.min.replace(tzinfo=UTC),
}
# Streamed copies of the rows (op c) get these ids; the originals are snapshot reads (op r).
STREAMED = 100

COLUMNS = tuple(n for n in TypedRowCaptured.model_fields if n not in ("metadata", "id"))

# The row as psycopg reads it, in forms that compare exactly (see compare_typed). inet is
# PostgreSQL's output text (what Debezium sends: no /32 on a host), not text(inet).
EXPECTED_SQL = """
SELECT id, c_smallint, c_integer, c_bigint, c_numeric,
       c_numeric_any::text AS c_numeric_any,
       c_real, c_double, c_boolean, c_text, c_varchar, c_char, c_uuid, c_date, c_time,
       c_timetz, c_timestamp, c_timestamptz,
       (extract(year FROM c_interval) * 12 + extract(month FROM c_interval))::bigint
           AS interval_months,
       extract(day FROM c_interval)::bigint AS interval_days,
       (extract(hour FROM c_interval) * 3600000000 + extract(minute FROM c_interval) * 60000000
           + extract(microseconds FROM c_interval))::bigint AS interval_micros,
       c_json::text AS c_json, c_jsonb::text AS c_jsonb, c_bytea, c_text_array, c_int_array,
       c_mood::text AS c_mood, nullif(format('%s', c_inet), '') AS c_inet,
       c_money::numeric AS c_money
  FROM fidelity.typed
 WHERE id % 100 <> 7 -- psycopg cannot read infinity into Python either
 ORDER BY id
"""


def insert_typed(run: PipelineRun, offset: int = 0) -> None:
    with run.db() as conn:
        for row_id, values in ROWS.items():
            columns = ", ".join(["id", *values])
            literals = ", ".join([str(row_id + offset), *values.values()])
            conn.execute(f"INSERT INTO fidelity.typed ({columns}) VALUES ({literals})")


def as_float32(value: float) -> bytes:
    return struct.pack("<f", value)


def utc_time_of_day(value: dtime) -> dtime:
    """A timetz as the UTC time of day (what Debezium's ZonedTime carries)."""
    offset = value.utcoffset() or timedelta(0)
    moment = datetime.combine(date(2000, 1, 1), value.replace(tzinfo=None)) - offset
    return moment.time()


def same_float(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    if math.isnan(expected):
        return math.isnan(actual)
    # -0.0 == 0.0 in Python; the sign is part of the value.
    return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)


def compare_typed(event: dict[str, Any], db: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Columns whose event value differs from the database's: {column: (event, db)}."""
    diff: dict[str, tuple[Any, Any]] = {}

    def check(column: str, ok: bool, expected: Any) -> None:
        if not ok:
            diff[column] = (event[column], expected)

    for column in COLUMNS:
        got, want = event[column], db.get(column)
        if column == "c_interval":
            # ISO 8601 text; compared as PostgreSQL's three parts (months, days,
            # microseconds), which are never mixed (a month has no fixed length).
            parts = (db["interval_months"], db["interval_days"], db["interval_micros"])
            want_iv = None if parts[0] is None else Interval(*parts)
            check(column, (None if got is None else parse_interval(got)) == want_iv, want_iv)
        elif got is None or want is None:
            check(column, got is None and want is None, want)
        elif column == "c_real":
            # A real is a float32. Debezium writes the shortest decimal that reads back
            # as that float32 (1.1, not 1.10000002384...), and the event's double is
            # that decimal: narrowed to float32 it is exactly what PostgreSQL stores.
            check(column, as_float32(got) == as_float32(want) or same_float(got, want), want)
        elif column == "c_double":
            check(column, same_float(got, want), want)
        elif column == "c_numeric":
            check(column, got == want, want)  # Avro decimal(20, 6): the same number
        elif column == "c_money":
            # Debezium sends money as a decimal of scale 2 (money.fraction.digits), exact.
            check(column, got == want and got.as_tuple().exponent == -2, want)
        elif column == "c_numeric_any":
            # No Avro decimal fits a numeric without scale: the number as positional text.
            # The same number, every digit of it; not always PostgreSQL's text, because
            # Debezium drops trailing fraction zeros (1.500 arrives as scale 1: 1.5).
            check(column, Decimal(got) == Decimal(want) and "E" not in got.upper(), want)
        elif column in ("c_json", "c_jsonb"):
            # JSON text; equal as JSON, numbers compared with every digit (Decimal).
            # Whitespace and (json) key order are not carried: the value is.
            same = json.loads(got, parse_float=Decimal) == json.loads(want, parse_float=Decimal)
            check(column, same, want)
        elif column == "c_timetz":
            # time-micros, the time of day in UTC; the original offset is not sent by Debezium.
            check(column, got == utc_time_of_day(want), utc_time_of_day(want))
        elif column == "c_timestamp":
            # timestamp-micros of the wall clock read as UTC; reads back tz-aware.
            check(column, got.tzinfo is not None and got.replace(tzinfo=None) == want, want)
        elif column == "c_timestamptz":
            check(column, got == want, want)  # the same instant
        else:
            check(column, got == want and type(got) is type(want), want)
    return diff


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    """Run with a local time zone far from UTC (and with a half-hour offset and DST).

    The transformer must not depend on the zone of the host it runs on: a
    ``timestamp`` (no time zone) must reach the event as the wall clock it is.
    """
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/St_Johns"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


# Where the transformer takes column types from (transformer.cdc_types): "record", the
# Connect schema in every record (the shipped connector); "catalogue", records without it
# (key/value.converter.schemas.enable=false) and the types read from the database's catalogue.
CDC_TYPES = ["record", "catalogue"]


def decoding_view(schema: Any) -> Any:
    """What of a Connect schema the decoder reads: type, name, scale, placeholder form, parts."""
    if not isinstance(schema, dict):
        return schema
    view = {k: schema[k] for k in ("field", "type", "name") if k in schema}
    params = schema.get("parameters") or {}
    view |= {k: params[k] for k in ("scale", DECLARED_PLACEHOLDER_PARAMETER) if k in params}
    view |= {k: decoding_view(schema[k]) for k in ("items", "keys", "values") if k in schema}
    if "fields" in schema:
        view["fields"] = [decoding_view(f) for f in schema["fields"]]
    return view


def assert_catalogue_is_the_connectors(
    run: PipelineRun, table: str, record: Received, modes: ValueModes | None = None
) -> None:
    """The schemas ``transformer.cdc_types: catalogue`` makes of the table's catalogue are
    what the shipped connector wrote in ``record`` (its value and key), as the decoder reads them.
    """
    with run.db() as conn:
        columns = read_columns(conn, [table])[table]
    made = {c.name: decoding_view(column_schema(c, modes or ValueModes())) for c in columns}
    value = json.loads(record.value)["schema"]
    after = next(f for f in value["fields"] if f["field"] == "after")
    written = {f["field"]: decoding_view(f) for f in after["fields"]}
    assert made == written
    assert record.key is not None
    key = json.loads(record.key)["schema"]
    assert {f["field"]: made[f["field"]] for f in key["fields"]} == {
        f["field"]: decoding_view(f) for f in key["fields"]
    }


@pytest.mark.parametrize("cdc_types", CDC_TYPES)
def test_every_column_type_reaches_the_event_exactly(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_time_not_utc: None,
    cdc_types: str,
) -> None:
    label = "types" if cdc_types == "record" else "typescat"
    with fidelity_run(stack, settings, tmp_path, monkeypatch, label, cdc_types) as run:
        run.register_contracts()
        insert_typed(run)  # before the connector: read by its snapshot (op r)
        run.start_connector(["fidelity.typed"])
        cdc = run.cdc_topic("fidelity.typed")
        run.wait_for("the snapshot", lambda: run.end_offsets(cdc) >= len(ROWS))
        first = run.read(cdc, 1)[0]
        if cdc_types == "record":
            assert_catalogue_is_the_connectors(run, "fidelity.typed", first)
        else:  # the premise: the records carry no schema, the catalogue's types are needed
            assert set(json.loads(first.value)) >= {"before", "after", "source", "op"}
        insert_typed(run, STREAMED)  # after it: streamed from the WAL (op c)
        run.start_transformer()

        topic = run.topic_of(TypedRowCaptured)
        received = run.read(topic, 2 * len(ROWS), avro=True)
        with run.db() as conn:
            db_rows = {row["id"]: row for row in conn.execute(EXPECTED_SQL)}
        run.stop_transformer()

    by_id = {r.value["id"]: r for r in received}
    assert len(received) == len(by_id) == 2 * len(ROWS)
    assert set(by_id) == set(db_rows) | {7, 7 + STREAMED}
    for row_id in (7, 7 + STREAMED):
        clamped = by_id.pop(row_id).value
        assert {c: clamped[c] for c in CLAMPED} == CLAMPED
        assert all(clamped[c] is None for c in COLUMNS if c not in CLAMPED)
    diffs = {i: compare_typed(r.value, db_rows[i]) for i, r in sorted(by_id.items())}
    assert {i: d for i, d in diffs.items() if d} == {}
    for row_id, rec in sorted(by_id.items()):
        meta = rec.value["metadata"]
        assert meta["event_type"] == "TypedRowCaptured"
        assert meta["aggregate_id"] == str(row_id) and rec.key == str(row_id).encode()
        assert meta["source"]["snapshot"] is (row_id < STREAMED)
        assert meta["source"]["table"] == "fidelity.typed"
        assert rec.headers["cdcflow.event_type"] == b"TypedRowCaptured"
    # The all-NULL rows: every field null, not a default or an empty value.
    for row_id in (1, 1 + STREAMED):
        assert all(by_id[row_id].value[c] is None for c in COLUMNS)
    # Empty arrays stay empty arrays, distinct from NULL.
    assert by_id[3].value["c_text_array"] == [] and by_id[3].value["c_int_array"] == []


TOASTED = ("body", "doc", "blob", "tags", "nums", "ids")


def large_values(seed: int) -> dict[str, Any]:
    """One large value of each kind; random, so that they barely compress and are TOASTed."""
    rng = random.Random(seed)

    def text(size: int) -> str:
        return "".join(rng.choices(string.ascii_letters + string.digits, k=size))

    return {
        "body": text(100_000),
        "doc": {text(12): text(100) for _ in range(300)},
        "blob": rng.randbytes(40_000),
        "tags": [text(40) for _ in range(500)],
        "nums": [rng.randint(-(2**31), 2**31 - 1) for _ in range(5000)],
        "ids": [uuid.UUID(int=rng.getrandbits(128)) for _ in range(500)],
    }


def insert_large(conn: Any, table: str, row_id: int, values: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO {table} (id, counter, body, doc, blob, tags, nums, ids)"
        " VALUES (%s, 0, %s, %s, %s, %s, %s::integer[], %s)",
        (row_id, values["body"], Jsonb(values["doc"]), values["blob"], values["tags"],
         values["nums"], values["ids"]),
    )  # fmt: skip


@pytest.mark.parametrize("cdc_types", CDC_TYPES)
def test_toasted_values_never_surface_the_placeholder(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cdc_types: str,
) -> None:
    tables = ("fidelity.toast_default", "fidelity.toast_full")
    first, second = large_values(1), large_values(2)
    label = "toast" if cdc_types == "record" else "toastcat"
    with fidelity_run(stack, settings, tmp_path, monkeypatch, label, cdc_types) as run:
        run.register_contracts()
        run.start_connector(tables)
        run.start_transformer()
        with run.db() as conn:
            # id 1 under REPLICA IDENTITY DEFAULT, id 2 under FULL; each statement commits.
            insert_large(conn, "fidelity.toast_default", 1, first)
            insert_large(conn, "fidelity.toast_full", 2, first)
            for table in tables:
                toast_bytes = conn.execute(
                    "SELECT pg_relation_size(reltoastrelid) AS n FROM pg_class"
                    " WHERE oid = %s::regclass",
                    (table,),
                ).fetchone()
                assert toast_bytes and toast_bytes["n"] > 200_000, f"{table}: nothing TOASTed"
            conn.execute("UPDATE fidelity.toast_default SET counter = 1 WHERE id = 1")
            conn.execute("UPDATE fidelity.toast_full SET counter = 1 WHERE id = 2")
            # Changing a large value itself sends it, under either identity.
            conn.execute(
                "UPDATE fidelity.toast_default SET counter = 2, body = %s", (second["body"],)
            )
            conn.execute("UPDATE fidelity.toast_default SET counter = 3 WHERE id = 1")
            rows = {
                r["id"]: r
                for table in tables
                for r in conn.execute(f"SELECT * FROM {table}")  # the final rows
            }
        received = run.read(run.topic_of(ToastedRowChanged), 6, avro=True)
        raw_default = run.read(run.cdc_topic("fidelity.toast_default"), 4)
        raw_full = run.read(run.cdc_topic("fidelity.toast_full"), 2)
        run.stop_transformer()
        if cdc_types == "record":
            assert_catalogue_is_the_connectors(run, "fidelity.toast_default", raw_default[0])
            assert_catalogue_is_the_connectors(run, "fidelity.toast_full", raw_full[0])

    assert rows[1]["counter"] == 3 and rows[1]["body"] == second["body"]
    assert rows[2]["counter"] == 1 and rows[2]["body"] == first["body"]

    # The premise, as Debezium wrote it: under DEFAULT an update that leaves the large
    # values alone sends the placeholder for each (in the shape of its type: text,
    # base64, a list, a list of its bytes, a name UUID) and no before image; under
    # FULL it sends them whole.
    def placeholders(record: Received) -> list[str]:
        doc = json.loads(record.value)
        after = doc["payload"]["after"] if cdc_types == "record" else doc["after"]
        return [c for c in TOASTED if PLACEHOLDER in json.dumps(after[c]) or _encoded(after[c])]

    assert [placeholders(r) for r in raw_default] == [
        [], list(TOASTED), [c for c in TOASTED if c != "body"], list(TOASTED),
    ]  # fmt: skip
    assert [placeholders(r) for r in raw_full] == [[], []]

    assert len(received) == 6
    events = sorted((r.value for r in received), key=lambda e: (e["id"], e["counter"]))
    assert all(PLACEHOLDER not in json.dumps(e, default=str) for e in events)
    final = {"body": second["body"]}
    expected = [
        # (id, counter, values carried, columns named unchanged)
        (1, 0, first, []),
        # DEFAULT: the update leaves the TOASTed values out and there is no before image
        # to fill them from, so the event names them as unchanged instead of a value.
        (1, 1, {}, list(TOASTED)),
        (1, 2, final, [c for c in TOASTED if c != "body"]),
        (1, 3, {}, list(TOASTED)),
        (2, 0, first, []),
        (2, 1, first, []),  # FULL: the values arrive whole
    ]
    assert [(e["id"], e["counter"], e["unchanged"]) for e in events] == [
        (i, n, unchanged) for i, n, _, unchanged in expected
    ]
    for event, (_, _, carried, _) in zip(events, expected, strict=True):
        got = {c: event[c] for c in TOASTED if c not in event["unchanged"]}
        want = {c: carried[c] for c in got}
        if "doc" in got:
            got["doc"] = json.loads(got["doc"])
        assert got == want, f"row {event['id']} counter {event['counter']}"
        assert all(event[c] is None for c in event["unchanged"])


def _encoded(raw: Any) -> bool:
    """The placeholder as Debezium encodes it for bytea, integer[] and uuid[] columns."""
    marker = PLACEHOLDER.encode()
    name_uuid = str(uuid.UUID(bytes=hashlib.md5(marker).digest(), version=3))
    return raw in (base64.b64encode(marker).decode(), list(marker), [name_uuid])


def test_catalogue_types_follow_an_added_column_and_dead_letter_a_dropped_one(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without schemas in the records, the types are the catalogue's when it is read.

    A column added while the transformer runs is read again from its first
    record on; a column dropped while a record that has it is still unread
    cannot be typed, and that record (only) is dead-lettered, naming both.
    """
    probes = "fidelity.probes"

    def insert(conn: Any, probe_id: int, column: str | None = None) -> None:
        row = {"id": probe_id, "label": f"p{probe_id}", "quantity": probe_id}
        row |= {"amount": Decimal(f"{probe_id}.25")} | ({column: Decimal("1.5")} if column else {})
        marks = ", ".join(["%s"] * len(row))
        conn.execute(
            f"INSERT INTO {probes} ({', '.join(row)}) VALUES ({marks})", list(row.values())
        )

    with fidelity_run(stack, settings, tmp_path, monkeypatch, "catcols", "catalogue") as run:
        run.register_contracts()
        run.start_connector([probes])
        run.start_transformer()
        topic = run.topic_of(ProbeRecorded)
        with run.db() as conn:
            insert(conn, 1)
        run.read(topic, 1, avro=True)  # the table's types are read, and cached
        with run.db() as conn:
            conn.execute(f"ALTER TABLE {probes} ADD COLUMN added numeric(6, 3)")
            insert(conn, 2, "added")
        run.read(topic, 2, avro=True)
        run.stop_transformer()
        # A record with a column that is dropped before the transformer reads it.
        with run.db() as conn:
            conn.execute(f"ALTER TABLE {probes} ADD COLUMN gone numeric(6, 3)")
            insert(conn, 3, "gone")
        cdc = run.cdc_topic(probes)
        run.wait_for("the record of probe 3", lambda: run.end_offsets(cdc) >= 3)
        with run.db() as conn:
            conn.execute(f"ALTER TABLE {probes} DROP COLUMN gone")
            insert(conn, 4)
        run.start_transformer()
        events = run.read(topic, 3, avro=True)
        dead = run.read(run.settings.transformer.dead_letter_topic, 1)
        run.stop_transformer()

    assert sorted(e.value["id"] for e in events) == [1, 2, 4]
    assert {e.value["id"]: e.value["amount"] for e in events} == {
        1: Decimal("1.25"), 2: Decimal("2.25"), 4: Decimal("4.25"),
    }  # fmt: skip
    assert len(dead) == 1
    letter = {k: v.decode() for k, v in dead[0].headers.items() if k.startswith("cdcflow.dlq.")}
    assert letter["cdcflow.dlq.stage"] == "decode"
    assert (letter["cdcflow.dlq.table"], letter["cdcflow.dlq.column"]) == (probes, "gone")
    assert json.loads(dead[0].value)["after"]["id"] == 3


# More types than the fidelity domain's events carry, for the catalogue's mapping alone:
# domains, precisions, bit strings, arrays of enums, numerics and dates, network and range
# types. Only the connector's schemas are compared (no rule reads this table).
MORE_TYPES = """
CREATE DOMAIN fidelity.amount AS numeric(8, 3);
CREATE DOMAIN fidelity.label AS varchar(12);
CREATE TABLE fidelity.more (
    id          serial PRIMARY KEY,
    c_small     smallserial,
    c_amount    fidelity.amount,
    c_label     fidelity.label,
    c_scale     numeric(5, -2),
    c_time3     time(3),
    c_ts0       timestamp(0),
    c_ts3       timestamp(3),
    c_tstz3     timestamptz(3),
    c_bit1      bit(1),
    c_bit5      bit(5),
    c_varbit    varbit(10),
    c_moods     fidelity.mood[],
    c_nums      numeric(6, 2)[],
    c_dates     date[],
    c_uuids     uuid[],
    c_cidr      cidr,
    c_mac       macaddr,
    c_range     int4range,
    c_xml       xml,
    c_oid       oid
)
"""


# The shipped connector's value handling, and others a connector may have; None: a
# connector that sets no value handling key (Debezium's defaults, as a user may leave it).
VALUE_MODES: dict[str, dict[str, str] | None] = {
    "shipped": {},
    "debezium-defaults": None,
    "adaptive": {
        "time.precision.mode": "adaptive",
        "interval.handling.mode": "numeric",
        "binary.handling.mode": "base64",
        "decimal.handling.mode": "string",
    },
    "connect": {
        "time.precision.mode": "connect",
        "decimal.handling.mode": "double",
        "binary.handling.mode": "hex",
    },
    "isostring": {"time.precision.mode": "isostring", "money.fraction.digits": "3"},
}


@pytest.mark.parametrize("modes", list(VALUE_MODES))
def test_catalogue_schemas_of_more_types_are_the_connectors(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    modes: str,
) -> None:
    tables = ("fidelity.typed", "fidelity.more")
    with fidelity_run(stack, settings, tmp_path, monkeypatch, "moretypes") as run:
        insert_typed(run)
        with run.db() as conn:
            conn.execute(MORE_TYPES)
            conn.execute("INSERT INTO fidelity.more DEFAULT VALUES")
        config = connector_config(run.database, run.prefix, run.slot, tables)
        keys = VALUE_MODES[modes]
        if keys is None:
            config = {k: v for k, v in config.items() if k not in DEBEZIUM_DEFAULTS}
        run.deploy_connector(config | (keys or {}))
        # The modes as `cdcflow run` takes them: from the deployed connector's config.
        value_modes = run.value_modes()
        if keys is None:
            assert value_modes.time_precision == "adaptive"  # time(3) in milliseconds
        for table in tables:
            cdc = run.cdc_topic(table)
            run.wait_for(f"the snapshot of {table}", lambda: run.end_offsets(cdc) >= 1)  # noqa: B023
            record = run.read(cdc, 1)[0]
            assert_catalogue_is_the_connectors(run, table, record, value_modes)
