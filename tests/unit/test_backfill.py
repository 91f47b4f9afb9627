"""A row read by an incremental snapshot (a backfill) is a Change that says so."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.cdc import Change, decode_record
from tests.unit import debezium as dbz


def _product(snapshot: Any, op: str = "r") -> Change:
    row = {
        "id": 7,
        "sku": "B-7",
        "name": "backfilled",
        "description": None,
        "price": dbz.dec("9.99", 2),
        "currency": "EUR",
        "active": True,
        "updated_at": "2024-06-10T08:00:00.000000Z",
    }
    key, value = dbz.record(op, "products", after=row, snapshot=snapshot)
    change = decode_record(value, key=key, topic=dbz.topic("products"))
    assert isinstance(change, Change), change
    return change


def test_an_incremental_snapshot_read_is_a_backfill() -> None:
    change = _product("incremental")
    assert change.op == "r"
    assert change.backfill is True
    assert change.snapshot is True
    assert change.after is not None and change.after["name"] == "backfilled"


@pytest.mark.parametrize("snapshot", ["true", "first", "last", "false", None, True])
def test_initial_snapshot_reads_and_streamed_changes_are_no_backfill(snapshot: Any) -> None:
    change = _product(snapshot, op="c" if snapshot in ("false", None) else "r")
    assert change.backfill is False
