"""changed / changed_to / changed_from / equals on every operation, and their combinations."""

from __future__ import annotations

import pytest

from pipeline.cdc import UNCHANGED, Change
from pipeline.mapping import BeforeImageMissing, changed, changed_from, changed_to, equals, where
from tests.unit.changes import make_change

OLD = {"id": 1, "status": "placed", "email": "a@x", "note": "n"}


def update(**new: object) -> Change:
    return make_change("u", before=OLD, after={**OLD, **new})


def test_changed_on_update() -> None:
    assert changed("email")(update(email="b@x"))
    assert not changed("email")(update(status="paid"))
    assert changed("email", "status")(update(status="paid"))


def test_changed_on_other_operations() -> None:
    assert changed("email")(make_change("c", after=OLD))
    assert changed("email")(make_change("r", after=OLD))
    assert changed("email")(make_change("d", before=OLD))
    assert not changed("email")(make_change("t"))


def test_unchanged_toast_is_not_a_change() -> None:
    assert not changed("note")(update(note=UNCHANGED))


def test_update_without_before_image_raises_with_a_hint() -> None:
    change = make_change("u", after=OLD)
    with pytest.raises(BeforeImageMissing) as info:
        changed("email")(change)
    assert "REPLICA IDENTITY FULL" in info.value.hint


def test_changed_needs_a_column() -> None:
    with pytest.raises(ValueError):
        changed()


def test_changed_to() -> None:
    p = changed_to("status", "shipped")
    assert p(update(status="shipped"))
    assert not p(update(status="paid"))
    assert not p(
        make_change("u", before={**OLD, "status": "shipped"}, after={**OLD, "status": "shipped"})
    )
    assert p(make_change("c", after={**OLD, "status": "shipped"}))
    assert not p(make_change("d", before={**OLD, "status": "shipped"}))
    assert not p(update(status=UNCHANGED))


def test_changed_from() -> None:
    p = changed_from("status", "placed")
    assert p(update(status="paid"))
    assert not p(update(email="b@x"))
    assert not p(update(status=UNCHANGED))
    assert p(make_change("d", before=OLD))
    assert not p(make_change("c", after=OLD))


def test_equals_reads_the_row() -> None:
    assert equals("status", "placed")(make_change("c", after=OLD))
    assert equals("status", "placed")(make_change("d", before=OLD))
    assert not equals("status", "paid")(make_change("c", after=OLD))


def test_combinators_and_descriptions() -> None:
    p = changed_to("status", "paid") & ~changed("email") | where(lambda c: c.op == "d", "deleted")
    assert p(update(status="paid"))
    assert not p(update(status="paid", email="b@x"))
    assert p(make_change("d", before=OLD))
    assert repr(p) == "((changed_to(status='paid') & ~changed(email)) | deleted)"
    assert repr(changed("a") & (lambda c: True)).startswith("(changed(a) & ")
