"""Dead letters read back: headers, reasons, the failed rule, selection, grouping, --since."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.cdc import Change, decode_record
from pipeline.dlq import DeadLetter, Selection, group, parse_since
from pipeline.dlq.letters import REDRIVES_HEADER
from pipeline.errors import ConfigError, DecodeError, MappingError, RecordError
from pipeline.mapping import Rules, map_change
from pipeline.transformer.dlq import dead_letter
from tests.unit import debezium as dbz

ITEM = {"id": 7, "label": "seven", "quantity": 70}
COLUMNS = [dbz.int32("id"), dbz.text("label"), dbz.int32("quantity")]


def item_record() -> tuple[bytes | None, bytes]:
    return dbz.record("c", "items", after=ITEM, columns=COLUMNS, key_fields=[dbz.int32("id")])


def letter_from(
    err: RecordError, *, partition: int = 0, offset: int = 0, ts: int = 1_000
) -> DeadLetter:
    """The dead letter the transformer writes for ``err``, as a consumer reads it back."""
    rec = dead_letter("app.dlq", err, timestamp_ms=500, transformer="t-0")
    return DeadLetter.of(
        topic="app.dlq",
        partition=partition,
        offset=offset,
        timestamp_ms=ts,
        key=rec.key,
        value=rec.value,
        headers=rec.headers,
    )


def mapping_error() -> MappingError:
    rules = Rules("t")

    @rules.on("public.items", ops="c")
    def item_recorded(change: Change) -> None:
        raise ValueError("no")

    key, value = item_record()
    change = decode_record(value, topic=dbz.topic("items"), key=key, partition=2, offset=41)
    assert isinstance(change, Change)
    with pytest.raises(MappingError) as caught:
        map_change(rules, change)
    return caught.value


def test_a_mapping_dead_letter_reads_back_with_reason_table_rule_and_origin() -> None:
    letter = letter_from(mapping_error(), partition=1, offset=9)
    assert letter.reason == "map:MappingError"
    assert (letter.stage, letter.error_class) == ("map", "MappingError")
    assert letter.table == "public.items"
    assert letter.rule == "item_recorded"
    assert letter.original == (dbz.topic("items"), 2, 41)
    assert letter.original_timestamp_ms == 500
    assert letter.redrives == 0
    assert letter.position == "app.dlq[1]@9"
    key, value = item_record()
    assert (letter.key, letter.value) == (key, value)
    shown = letter.describe()
    assert shown["original"]["partition"] == 2 and shown["rule"] == "item_recorded"
    assert shown["dead_lettered_at"] == "1970-01-01T00:00:01+00:00"


def test_a_decode_dead_letter_has_no_table_nor_rule() -> None:
    err = DecodeError("not JSON", topic="cdc.t", partition=0, offset=3, value=b"{")
    letter = letter_from(err)
    assert (letter.reason, letter.table, letter.rule) == ("decode:DecodeError", None, None)
    assert letter.original == ("cdc.t", 0, 3)
    assert letter.original_timestamp_ms == 500


def test_redrives_are_counted_from_their_header() -> None:
    letter = letter_from(mapping_error())
    again = DeadLetter.of(
        topic=letter.topic,
        partition=0,
        offset=1,
        timestamp_ms=1,
        key=None,
        value=None,
        headers=[*letter.headers.items(), (REDRIVES_HEADER, b"2")],
    )
    assert again.redrives == 2


def test_selection_by_reason_table_and_time() -> None:
    m = letter_from(mapping_error(), ts=2_000)
    d = letter_from(DecodeError("not JSON", topic="cdc.t", partition=0, offset=3), ts=1_000)
    assert Selection().everything and Selection().takes(m) and Selection().takes(d)
    assert all(
        Selection(reasons=(r,)).takes(m) for r in ("map", "MappingError", "map:MappingError")
    )
    assert [Selection(reasons=(r,)).takes(d) for r in ("map", "MappingError")] == [False, False]
    assert Selection(reasons=("decode", "map")).takes(d)
    assert Selection(tables=("public.items",)).takes(m)
    assert not Selection(tables=("public.items",)).takes(d)
    assert Selection(since_ms=2_000).takes(m) and not Selection(since_ms=2_000).takes(d)
    assert not Selection(reasons=("map",), tables=("public.orders",)).takes(m)


def test_since_reads_iso_times_and_ages() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == int(
        datetime(2026, 12, 3, 10, 30, tzinfo=UTC).timestamp() * 1000
    )
    assert parse_since("2d", now) == int(
        datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp() * 1000
    )
    assert parse_since("2026-12-01T08:00:00", now) == parse_since("2026-12-01T08:00:00Z", now)
    assert parse_since("2026-12-01T09:00:00+01:00", now) == parse_since("2026-12-01T08:00Z", now)
    with pytest.raises(ConfigError, match="yesterday"):
        parse_since("yesterday", now)


def test_groups_count_by_reason_table_and_rule_with_first_and_last_offsets() -> None:
    m = mapping_error()
    d = DecodeError("not JSON", topic="cdc.t", partition=0, offset=3)
    letters = [
        letter_from(m, partition=0, offset=1),
        letter_from(d, partition=0, offset=2),
        letter_from(m, partition=1, offset=5),
        letter_from(m, partition=0, offset=7),
    ]
    groups = [g.as_dict() for g in group(letters)]
    assert [(g["reason"], g["table"], g["rule"], g["count"]) for g in groups] == [
        ("map:MappingError", "public.items", "item_recorded", 3),
        ("decode:DecodeError", None, None, 1),
    ]
    assert (groups[0]["first"], groups[0]["last"]) == ("0@1,1@5", "0@7,1@5")
    assert (groups[1]["first"], groups[1]["last"]) == ("0@2", "0@2")
    assert "raised ValueError: no" in groups[0]["message"]
