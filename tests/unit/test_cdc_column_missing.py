"""A rule reads a column the row does not have (dropped or renamed in the source).

The error names the table, the op and the column, lists what the source sent,
and carries a hint; the mapping error built from it carries the column, and
so does its dead-letter record.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from pipeline.cdc import Change
from pipeline.errors import ColumnMissing, MappingError
from pipeline.events import DomainEvent
from pipeline.mapping import Rules, map_change
from pipeline.transformer.dlq import HEADER_PREFIX, dead_letter
from tests.unit.changes import make_change

AFTER = {"id": 5, "label": "five"}  # 'extra' was dropped from the table


class Noted(DomainEvent):
    __aggregate__: ClassVar[str] = "noted"
    __aggregate_id__: ClassVar[str] = "id"
    __namespace__: ClassVar[str] = "test.events"

    id: int
    extra: str | None


def test_a_missing_column_names_itself_and_what_the_source_sent() -> None:
    change = make_change("c", "ddl.dropped", after=AFTER)
    with pytest.raises(ColumnMissing) as caught:
        change.new("extra")
    error = caught.value
    assert isinstance(error, KeyError)  # 'except KeyError' in rules still works
    assert (error.table, error.op, error.column) == ("ddl.dropped", "c", "extra")
    assert error.message == (
        "ddl.dropped op 'c': no column 'extra' in the after image (the source sent id, "
        "label); was it dropped or renamed in the source table?"
    )
    assert error.hint is not None
    assert "cdcflow schemas check --source" in error.hint
    assert "ddl.dropped.extra" in error.hint
    assert "change.new('extra', default)" in error.hint


def test_a_default_still_wins_and_an_absent_image_stays_a_plain_key_error() -> None:
    change = make_change("c", "ddl.dropped", after=AFTER)
    assert change.new("extra", None) is None
    with pytest.raises(KeyError) as caught:
        change.old("extra")  # a create has no before image: not a vanished column
    assert not isinstance(caught.value, ColumnMissing)


def test_the_dead_letter_of_a_rule_that_reads_it_names_the_column() -> None:
    rules = Rules("test")

    @rules.on("ddl.dropped", ops="c", reads=("id", "extra"))
    def noted(change: Change) -> Noted:
        return Noted(id=change.new("id"), extra=change.new("extra"))

    change = make_change("c", "ddl.dropped", after=AFTER)
    with pytest.raises(MappingError) as caught:
        map_change(rules, change)
    error = caught.value
    assert (error.table, error.column) == ("ddl.dropped", "extra")
    assert "raised ColumnMissing: ddl.dropped op 'c': no column 'extra'" in error.reason
    error.found_at("t", 0, 1, key=None, value=b"{}")
    record = dead_letter("dlq", error, timestamp_ms=None, transformer="x")
    headers = {k.removeprefix(HEADER_PREFIX): v for k, v in record.headers}
    assert headers["column"] == b"extra"
    assert headers["table"] == b"ddl.dropped"
    hint = headers["error.hint"]
    assert isinstance(hint, bytes) and b"schemas check --source" in hint
