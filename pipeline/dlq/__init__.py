"""Dead letters: read them, show them, and redrive them through the current domain exactly once.

:mod:`.letters` reads a dead letter's headers (pure), :mod:`.reprocess` runs
one through the current domain, :mod:`.redrive` reads the dead-letter topic and
holds the redrive's transaction protocol.
"""

from pipeline.dlq.letters import DeadLetter, Group, Selection, group, parse_since
from pipeline.dlq.redrive import (
    Balance,
    DeadLetterReader,
    Redrive,
    letter_of,
    redrive_group,
    redrive_transactional_id,
)
from pipeline.dlq.reprocess import REDRIVEN_FROM_HEADER, REDRIVEN_HEADER, Outcome, Reprocessor

__all__ = [
    "REDRIVEN_FROM_HEADER",
    "REDRIVEN_HEADER",
    "Balance",
    "DeadLetter",
    "DeadLetterReader",
    "Group",
    "Outcome",
    "Redrive",
    "Reprocessor",
    "Selection",
    "group",
    "letter_of",
    "parse_since",
    "redrive_group",
    "redrive_transactional_id",
]
