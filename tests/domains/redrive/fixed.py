"""The redrive domain's rules after the fix: ``bad…`` items map, ``worse…`` items still fail.

``HOLD`` is a test seam: when a test sets it to a path, the rule, at its
``HOLD_AT``-th call, creates that file and waits there for good, so the test
can kill a redrive inside a transaction after the ones before it committed.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.cdc import Change
from pipeline.mapping import Rules
from tests.domains.redrive.events import ItemRecorded
from tests.domains.redrive.mappings import WORSE

__all__ = ["HOLD", "HOLD_AT", "rules"]

rules = Rules("redrive")

HOLD: Path | None = None
HOLD_AT = 0
_calls = 0


@rules.on("redrive.items", ops="cr")
def item_recorded(change: Change) -> ItemRecorded:
    global _calls
    _calls += 1
    label = change.new("label")
    if HOLD is not None and _calls == HOLD_AT:
        HOLD.touch()
        while True:
            time.sleep(60)
    if label.startswith(WORSE):
        raise ValueError(f"item {change.new('id')} is labelled {label!r}, still")
    return ItemRecorded(id=change.new("id"), label=label, quantity=change.new("quantity"))
