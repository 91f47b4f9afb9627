"""Lazy row images (``decode_record(lazy=True)``, the transformer's way): a column is decoded
when it is first read, to exactly what decoding the whole record gives.

What changes is when a bad value is found: where it is read (a rule's read dead-letters
the record as a mapping error naming the column), and never in a column nothing reads.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest

from pipeline.cdc import UNCHANGED, Change, decode_record
from pipeline.cdc.rows import LazyRow
from pipeline.errors import DecodeError
from tests.unit import debezium as dbz
from tests.unit.test_cdc_toast import DOC_COLUMNS, FULL_ROW, PLACEHOLDERS
from tests.unit.test_cdc_values import CASES
from tests.unit.transformer_fakes import CUSTOMER, FakeSerializer, customer_msg, shop_transformer

TABLE = "lazy_things"


def _json(raw: Any) -> bool:
    try:
        json.dumps(raw)
    except TypeError:
        return False
    return True


# The raw values json.dumps can put in a record (a NUMERIC decimal's digits are tested in
# test_cdc_schema_cache).
RECORD_CASES = [c for c in CASES if _json(c[2])]


def _both(
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    columns: list[dict[str, Any]],
) -> tuple[Change, Change]:
    key, value = dbz.record(
        op, TABLE, before=before, after=after, columns=columns, key_fields=[dbz.int64("id")]
    )
    changes = [
        decode_record(value, key=key, topic=dbz.topic(TABLE), partition=0, offset=5, lazy=lazy)
        for lazy in (False, True)
    ]
    eager, lazy = changes
    assert isinstance(eager, Change) and isinstance(lazy, Change)
    return eager, lazy


@pytest.mark.parametrize(
    ("label", "schema", "raw", "expected"), RECORD_CASES, ids=[c[0] for c in RECORD_CASES]
)
def test_a_lazy_column_reads_as_the_eager_one(
    label: str, schema: dict[str, Any], raw: Any, expected: Any
) -> None:
    columns = [dbz.int64("id"), {**schema, "field": "v"}]
    eager, lazy = _both("u", {"id": 1, "v": raw}, {"id": 1, "v": raw}, columns)
    assert lazy.after is not None and eager.after is not None
    got = lazy.new("v")
    assert type(got) is type(eager.new("v")) and repr(got) == repr(eager.new("v"))
    assert repr(lazy.old("v")) == repr(eager.old("v"))
    if expected == "nan":
        assert math.isnan(got)
        return
    assert got == expected
    assert lazy == eager
    assert dict(lazy.after) == dict(eager.after)


def test_a_column_is_decoded_once_and_only_when_read() -> None:
    columns = [dbz.int64("id"), dbz.tstz("t"), dbz.uuid_col("u"), dbz.text("s")]
    row = {"id": 1, "t": "2024-06-10T06:13:20.123456Z", "u": str(uuid.UUID(int=5)), "s": "x"}
    _, lazy = _both("c", None, row, columns)
    after = lazy.after
    assert isinstance(after, LazyRow)
    assert after.pending == {"t", "u"}  # integers and text need no decoder
    assert after["t"] is after["t"]
    assert after.pending == {"u"}
    assert list(after) == ["id", "t", "u", "s"] and len(after) == 4 and "u" in after


def test_toasted_values_are_filled_and_listed_as_when_decoded_at_once() -> None:
    after = {**FULL_ROW, **PLACEHOLDERS}
    eager, lazy = _both("u", FULL_ROW, after, DOC_COLUMNS)
    assert lazy.toasted == eager.toasted == frozenset(PLACEHOLDERS)
    assert lazy == eager
    _, without_before = _both("u", None, after, DOC_COLUMNS)
    assert all(without_before.new(c) is UNCHANGED for c in PLACEHOLDERS)


def test_an_empty_string_stand_in_of_an_old_row_is_unchanged_when_read() -> None:
    columns = [dbz.int64("id"), dbz.uuid_col("u")]
    new = {"id": 1, "u": str(uuid.UUID(int=5))}
    eager, lazy = _both("u", {"id": 1, "u": ""}, new, columns)
    assert lazy.old("u") is UNCHANGED and eager.old("u") is UNCHANGED


def test_a_bad_value_is_a_decode_error_naming_table_and_column_where_it_is_read() -> None:
    columns = [dbz.int64("id"), dbz.uuid_col("u"), dbz.tstz("t")]
    row = {"id": 1, "u": "not-a-uuid", "t": "2024-06-10T06:13:20Z"}
    key, value = dbz.record("c", TABLE, after=row, columns=columns, key_fields=[dbz.int64("id")])
    with pytest.raises(DecodeError, match="'u'"):  # decoded at once: the record fails
        decode_record(value, key=key, topic=dbz.topic(TABLE), partition=0, offset=5)
    lazy = decode_record(value, key=key, topic=dbz.topic(TABLE), partition=0, offset=5, lazy=True)
    assert isinstance(lazy, Change)
    assert lazy.new("t").year == 2024  # the good columns read as ever
    for _ in range(2):  # and again: a bad value never becomes a value
        with pytest.raises(DecodeError) as caught:
            lazy.new("u")
        err = caught.value
        assert f"public.{TABLE}: column 'u'" in str(err) and "not a UUID" in str(err)
        assert (err.topic, err.partition, err.offset, err.value) == (
            dbz.topic(TABLE),
            0,
            5,
            value,
        )


def test_a_repr_shows_what_is_decoded_and_never_decodes_a_bad_value() -> None:
    columns = [dbz.int64("id"), dbz.uuid_col("u"), dbz.tstz("t"), dbz.text("s")]
    row = {"id": 7, "u": "not-a-uuid", "t": "2024-06-10T06:13:20Z", "s": "x"}
    key, value = dbz.record("c", TABLE, after=row, columns=columns, key_fields=[dbz.int64("id")])
    lazy = decode_record(value, key=key, topic=dbz.topic(TABLE), partition=0, offset=5, lazy=True)
    assert isinstance(lazy, Change) and isinstance(lazy.after, LazyRow)
    assert repr(lazy.after) == (
        "LazyRow({'id': 7, 'u': '<not decoded>', 't': '<not decoded>', 's': 'x'})"
    )
    when = lazy.new("t")
    assert (
        repr(lazy.after) == f"LazyRow({{'id': 7, 'u': '<not decoded>', 't': {when!r}, 's': 'x'}})"
    )
    assert lazy.after.pending == {"u"}  # a repr decoded nothing


def test_the_transformer_dead_letters_a_bad_value_a_rule_reads_and_maps_past_one_it_does_not() -> (
    None
):
    bad = {"created_at": "not a time"}
    t = shop_transformer(FakeSerializer())
    # customer_registered reads created_at; customer_email_changed reads id and email only.
    res = t.process(  # type: ignore[arg-type]
        [
            customer_msg(1, lsn=1000, **bad),
            customer_msg(2, op="u", lsn=1100, email="new@example.com", **bad),
        ]
    )
    assert res.dead_lettered == {"map": 1}
    assert res.produced == {"CustomerEmailChanged": 1}
    (dead,) = [r for r in res.out if r.topic == t.cfg.dead_letter_topic]
    headers = dict(dead.headers)
    assert headers["cdcflow.dlq.original.offset"] == b"1"
    message = headers["cdcflow.dlq.error.message"].decode()
    assert "column 'created_at'" in message and "public.customers" in message
    assert CUSTOMER["created_at"] != bad["created_at"]
