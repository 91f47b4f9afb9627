"""The decoder's fast path (schema parsed once, payload by orjson) reads what the full parse reads."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pipeline.cdc import Change, decode_record
from pipeline.cdc import schema_cache as envelope_module

SOURCE = {
    "type": "struct",
    "field": "source",
    "fields": [
        {"type": "string", "field": "name"},
        {"type": "string", "field": "schema"},
        {"type": "string", "field": "table"},
        {"type": "int64", "field": "ts_ms"},
        {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "string", "optional": True, "field": "sequence"},
    ],
}
DECIMAL = "org.apache.kafka.connect.data.Decimal"


def _columns(series: bool) -> list[dict[str, Any]]:
    columns = [
        {"type": "int64", "field": "id"},
        # decimal.format=NUMERIC: the converter writes the number itself; every digit counts.
        {"type": "bytes", "name": DECIMAL, "parameters": {"scale": "30"}, "field": "exact"},
        {"type": "double", "optional": True, "field": "ratio"},
        # A parameter named like the envelope's payload key must not split the record.
        {"type": "string", "parameters": {"payload": "x"}, "field": "note"},
    ]
    if series:  # a fraction nested in an array: orjson is never used for such a schema
        columns.append(
            {"type": "array", "items": {"type": "double"}, "optional": True, "field": "series"}
        )
    return columns


def _record(row: dict[str, Any], *, compact: bool = True) -> bytes:
    image = {"type": "struct", "optional": True, "fields": _columns("series" in row)}
    schema = {
        "type": "struct",
        "name": "t.public.things.Envelope",
        "fields": [
            {**image, "field": "before"},
            {**image, "field": "after"},
            SOURCE,
            {"type": "string", "field": "op"},
        ],
    }
    payload = {
        "before": None,
        "after": row,
        "source": {
            "name": "t",
            "schema": "public",
            "table": "things",
            "ts_ms": 1,
            "lsn": 10,
            "sequence": '["9","10"]',
        },
        "op": "c",
    }
    text = json.dumps(
        {"schema": schema, "payload": payload}, separators=(",", ":") if compact else None
    )
    # json.dumps writes Decimals as text otherwise; the converter writes numbers.
    return text.replace('"@', "").replace('@"', "").encode()


ROWS = [
    {
        "id": 1,
        "exact": "@0.123456789012345678901234567890@",
        "ratio": "@0.1@",
        "note": "a",
        "series": None,
    },
    {"id": 2, "exact": 7, "ratio": None, "note": ',"payload":', "series": ["@1.5@", 2]},
    {"id": 3, "exact": "@-12345678901234567890.5@", "ratio": "@1e300@", "note": "", "series": []},
    {"id": 9223372036854775808, "exact": 1, "ratio": 2, "note": "beyond int64", "series": None},
]


@pytest.mark.parametrize("series", [True, False], ids=["nested-fractions", "flat"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: str(r["id"]))
def test_the_fast_path_reads_what_the_full_parse_reads(row: dict[str, Any], series: bool) -> None:
    if not series:
        row = {k: v for k, v in row.items() if k != "series"}
    envelope_module._SCHEMAS.clear()
    full = decode_record(_record(row, compact=False), topic="t.public.things")
    first = decode_record(_record(row), topic="t.public.things")  # learns the schema
    cached = decode_record(_record(row), topic="t.public.things")  # the fast path
    [known] = envelope_module._SCHEMAS.values()
    assert (known.fractions is None) is series
    for change in (first, cached):
        assert isinstance(change, Change) and isinstance(full, Change)
        assert dict(change.after or {}) == dict(full.after or {})
        for column in ("exact", "ratio"):
            assert type((change.after or {})[column]) is type((full.after or {})[column])


def test_a_numeric_decimal_keeps_every_digit_on_the_fast_path() -> None:
    envelope_module._SCHEMAS.clear()
    row = ROWS[0]
    for _ in range(2):
        change = decode_record(_record(row), topic="t.public.things")
        assert isinstance(change, Change)
        assert (change.after or {})["exact"] == Decimal("0.123456789012345678901234567890")
