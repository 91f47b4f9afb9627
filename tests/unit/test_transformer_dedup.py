"""Source de-duplication when one WAL record becomes two change events.

An UPDATE that changes a row's primary key reaches cdcflow as a delete of the
old key and a create of the new key, both at the update's source position
(``source.sequence``), the delete first. Both must map; a re-send of either
must not.
"""

from __future__ import annotations

from typing import Any

from pipeline.cdc import Change, decode_record
from pipeline.transformer import SourceDedup
from tests.unit import debezium as dbz

ROW = {"id": 3, "email": "c@example.com", "name": "C", "tier": "standard"}
TP = ("shop.public.customers", 0)


def _change(op: str, row: dict[str, Any], lsn: int = 5000) -> Change:
    before = row if op == "d" else None
    after = None if op == "d" else row
    key, value = dbz.record(op, "customers", before=before, after=after, lsn=lsn)
    change = decode_record(value, key=key, topic=dbz.topic("customers"))
    assert isinstance(change, Change)
    return change


def test_both_halves_of_a_changed_key_are_kept_and_their_resends_dropped() -> None:
    dedup = SourceDedup()
    delete_old = _change("d", ROW)
    create_new = _change("c", {**ROW, "id": 14})
    assert delete_old.source.lsn == create_new.source.lsn  # one WAL record, two events
    assert not dedup.is_repeat(TP, delete_old)
    assert not dedup.is_repeat(TP, create_new)  # the create is not a repeat of the delete
    assert dedup.is_repeat(TP, _change("d", ROW))  # Debezium re-sends both halves
    assert dedup.is_repeat(TP, _change("c", {**ROW, "id": 14}))
    assert not dedup.is_repeat(TP, _change("u", ROW, lsn=5100))


def test_the_mark_between_the_halves_survives_a_restart() -> None:
    dedup = SourceDedup()
    assert not dedup.is_repeat(TP, _change("d", ROW))
    batch = dedup.seal()  # the batch ended between the delete and the create
    metadata = dedup.metadata(TP, batch)
    assert metadata == '{"hw":[4992,5000,0]}'
    restored = SourceDedup()
    restored.restore(TP, metadata)
    assert restored.is_repeat(TP, _change("d", ROW))
    assert not restored.is_repeat(TP, _change("c", {**ROW, "id": 14}))


def test_a_mark_of_two_entries_is_read_as_a_delete_s() -> None:
    """Offsets committed before the halves were told apart: keep a create at that position."""
    restored = SourceDedup()
    restored.restore(TP, '{"hw":[4992,5000]}')
    assert restored.mark(TP) == (4992, 5000, 0)
    assert restored.is_repeat(TP, _change("d", ROW))
    assert not restored.is_repeat(TP, _change("c", {**ROW, "id": 14}))
    assert restored.is_repeat(TP, _change("c", {**ROW, "id": 14}))  # now marked
