"""One dead letter through the current domain again, as the transformer processes a record.

The dead letter kept its source record unchanged (key, value, original topic,
partition, offset and timestamp); that record goes through the transformer's
own step 2 (:class:`~pipeline.transformer.batch.BatchProcessor`: decode, cut
to the replica identity, map, serialize) with the current domain's rules. So
its events get the ids they would have had (derived from the source
position) and the transformer's headers, plus two that say they were
redriven; what still fails becomes a dead letter with the new reason, exactly
as the transformer writes one, plus the count of redrives it failed. Source
de-duplication is not applied: a dead letter never became events, so there is
nothing for it to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cdc import DecoderOptions
from pipeline.dlq.letters import REDRIVES_HEADER, DeadLetter
from pipeline.mapping import Rules
from pipeline.serde import EventSerializer
from pipeline.transformer.batch import BatchProcessor
from pipeline.transformer.dlq import ERROR_CLASS, STAGE, OutRecord
from pipeline.transformer.identities import IdentityCatalog

__all__ = ["REDRIVEN_FROM_HEADER", "REDRIVEN_HEADER", "Outcome", "Reprocessor"]

REDRIVEN_HEADER = "cdcflow.redriven"
"""On every redriven event: the reason it had been dead-lettered for (``map:MappingError``)."""
REDRIVEN_FROM_HEADER = "cdcflow.redriven.from"
"""On every redriven event: the dead letter it came from (``<topic>[<partition>]@<offset>``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the current domain makes of a dead letter: events, a skip, or a new dead letter."""

    events: tuple[OutRecord, ...] = ()
    skipped: str | None = None
    """The skip reason, when the domain skips the change."""
    dead: OutRecord | None = None
    """The new dead letter, when it still fails."""
    reason: str | None = None
    """Why it still fails: ``<stage>:<error class>``."""


class _SourceRecord:
    """A dead letter's source record, with the accessors of a consumed record."""

    def __init__(self, letter: DeadLetter) -> None:
        self._letter = letter
        self._where = letter.original or (letter.topic, letter.partition, letter.offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]

    def key(self) -> bytes | None:
        return self._letter.key

    def value(self) -> bytes | None:
        return self._letter.value

    def timestamp(self) -> tuple[int, int]:
        ts = self._letter.original_timestamp_ms
        return (0, -1) if ts is None else (1, ts)  # (TIMESTAMP_CREATE_TIME, ms)

    def error(self) -> None:
        return None


class Reprocessor:
    """The current domain's processing of one dead letter (see the module doc)."""

    def __init__(
        self,
        rules: Rules,
        serializer: EventSerializer,
        identities: IdentityCatalog,
        *,
        dead_letter_topic: str,
        transformer: str,
        decoder: DecoderOptions | None = None,
    ) -> None:
        self._processor = BatchProcessor(
            rules,
            serializer,
            topics={},
            dead_letter_topic=dead_letter_topic,
            transformer=transformer,
            decoder=decoder,
            identities=identities,
        )

    def __call__(self, letter: DeadLetter) -> Outcome:
        """The events ``letter``'s source record maps to now, its skip, or its new dead letter.

        Raises:
            RegistryUnavailable, SourceUnavailable: an outage; try again later.
        """
        res = self._processor.process([_SourceRecord(letter)])  # type: ignore[list-item]
        if res.dead_lettered:
            (dead,) = res.out
            found = dict(dead.headers)
            reason = f"{_text(found.get(STAGE))}:{_text(found.get(ERROR_CLASS))}"
            redrives = (REDRIVES_HEADER, str(letter.redrives + 1).encode())
            again = OutRecord(dead.topic, dead.key, dead.value, [*dead.headers, redrives])
            return Outcome(dead=again, reason=reason)
        if res.skipped:
            return Outcome(skipped=next(iter(res.skipped)))
        marks = [
            (REDRIVEN_HEADER, letter.reason.encode()),
            (REDRIVEN_FROM_HEADER, letter.position.encode()),
        ]
        return Outcome(
            tuple(OutRecord(r.topic, r.key, r.value, [*r.headers, *marks]) for r in res.out)
        )


def _text(data: str | bytes | None) -> str:
    if data is None:
        return "unknown"
    return data if isinstance(data, str) else data.decode(errors="replace")
