"""How the ddl tables' row changes become events.

=====================  ==================  =========================================
table                  rule                event
=====================  ==================  =========================================
ddl.steady insert      rules.yaml          SteadyRecorded
ddl.added insert /     added_recorded      AddedRecorded; ``note`` and ``tier`` are
update                                     read only if the row has them (null before
                                           the columns are added)
ddl.dropped insert     dropped_recorded    DroppedRecorded; reads ``extra``, which is
                                           dropped: later rows fail the rule
ddl.renamed insert     rules.yaml          RenamedRecorded; reads ``code``, which is
                                           renamed: later rows fail the rule
ddl.widened insert     rules.yaml          WidenedRecorded
ddl.priced insert      rules.yaml          PricedRecorded; a price with more than
                                           two decimals does not fit the event
=====================  ==================  =========================================
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cdc import Change
from pipeline.mapping import Rules
from tests.domains.ddl import events
from tests.domains.ddl.events import AddedRecorded, DroppedRecorded

__all__ = ["rules"]

rules = Rules("ddl")


# Only the columns it cannot do without: note and tier are added while it runs.
@rules.on("ddl.added", ops="cu", reads=("id", "label"))
def added_recorded(change: Change) -> AddedRecorded:
    return AddedRecorded(
        id=change.new("id"),
        label=change.new("label"),
        note=change.new("note", None),
        tier=change.new("tier", None),
    )


@rules.on("ddl.dropped", ops="c", reads=("id", "label", "extra"))
def dropped_recorded(change: Change) -> DroppedRecorded:
    return DroppedRecorded(
        id=change.new("id"), label=change.new("label"), extra=change.new("extra")
    )


rules.load_yaml(Path(__file__).with_name("rules.yaml"), events=events)
