"""The redrive domain's rules as first deployed: items labelled ``bad…`` or ``worse…`` fail.

``redrive.notes`` is declared by neither version: its changes are dead-lettered
as an unknown table, before and after the fix.
"""

from __future__ import annotations

from pipeline.cdc import Change
from pipeline.mapping import Rules
from tests.domains.redrive.events import ItemRecorded

__all__ = ["BAD", "WORSE", "rules"]

rules = Rules("redrive")

BAD = "bad"
"""Items labelled so fail here and map once fixed."""
WORSE = "worse"
"""Items labelled so fail here and in the fixed rules."""


@rules.on("redrive.items", ops="cr")
def item_recorded(change: Change) -> ItemRecorded:
    label = change.new("label")
    if label.startswith((BAD, WORSE)):
        raise ValueError(f"item {change.new('id')} is labelled {label!r}")
    return ItemRecorded(id=change.new("id"), label=label, quantity=change.new("quantity"))
