"""One dead letter through the current domain again: decode -> identity -> map -> serialize.

The same steps, in the same order, as the transformer's processing of a CDC
record (``pipeline/transformer/daemon.py``, step 2), on the source record the
dead letter kept (its key and value, its original topic, partition and offset):
the events it maps to get the ids they would have had (derived from the source
position), and carry the headers the transformer writes plus those that say
they were redriven. Source de-duplication is not applied: a dead letter was
never committed as events, so there is nothing to be a repeat of.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cdc import Change, DecoderOptions, Skip, decode_record
from pipeline.dlq.letters import DeadLetter
from pipeline.errors import RecordError
from pipeline.events import DomainEvent
from pipeline.events.naming import event_topic
from pipeline.mapping import Rules, map_change
from pipeline.serde import EventSerializer
from pipeline.transformer.dlq import OutRecord
from pipeline.transformer.identities import IdentityCatalog

__all__ = ["REDRIVEN_FROM_HEADER", "REDRIVEN_HEADER", "Outcome", "Reprocessor"]

REDRIVEN_HEADER = "cdcflow.redriven"
"""On every redriven event: the reason it had been dead-lettered for (``map:MappingError``)."""
REDRIVEN_FROM_HEADER = "cdcflow.redriven.from"
"""On every redriven event: the dead letter it came from (``<topic>[<partition>]@<offset>``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the current domain makes of a dead letter: events, or a skip (its reason)."""

    events: tuple[OutRecord, ...] = ()
    skipped: str | None = None


class Reprocessor:
    """The current domain's processing of one dead letter (see the module doc)."""

    def __init__(
        self,
        rules: Rules,
        serializer: EventSerializer,
        identities: IdentityCatalog,
        decoder: DecoderOptions | None = None,
    ) -> None:
        self.rules = rules
        self.serializer = serializer
        self.identities = identities
        self.decoder = decoder or DecoderOptions()

    def __call__(self, letter: DeadLetter) -> Outcome:
        """The events ``letter``'s source record maps to now, or the reason it is skipped.

        Raises:
            RecordError: it still fails (decode, map or serialize), with the new reason.
            RegistryUnavailable, SourceUnavailable: an outage; try again later.
        """
        topic, partition, offset = letter.original or (letter.topic, None, None)
        decoded = decode_record(
            letter.value,
            topic=topic,
            key=letter.key,
            partition=partition,
            offset=offset,
            options=self.decoder,
        )
        if isinstance(decoded, Skip):
            return Outcome(skipped=str(decoded.reason))
        change = self.identities.restrict(decoded)
        mapped = map_change(self.rules, change)
        if isinstance(mapped, Skip):
            return Outcome(skipped=str(mapped.reason))
        return Outcome(tuple(self._record(event, change, letter) for event in mapped.events))

    def _record(self, event: DomainEvent, change: Change, letter: DeadLetter) -> OutRecord:
        topic = event_topic(type(event))
        meta = event.metadata
        assert meta is not None  # stamped by map_change
        try:
            value = self.serializer.serialize(event, topic)
        except RecordError as err:
            ref = change.record
            if ref is not None:
                err.topic, err.partition, err.offset = ref.topic, ref.partition, ref.offset
            raise
        headers: list[tuple[str, str | bytes | None]] = [
            ("cdcflow.event_type", meta.event_type.encode()),
            ("cdcflow.event_id", str(meta.event_id).encode()),
            ("cdcflow.schema_version", str(meta.schema_version).encode()),
            ("cdcflow.source.table", change.table.encode()),
            ("cdcflow.source.lsn", str(change.source.lsn).encode()),
            (REDRIVEN_HEADER, letter.reason.encode()),
            (REDRIVEN_FROM_HEADER, letter.position.encode()),
        ]
        return OutRecord(topic, meta.aggregate_id.encode(), value, headers)
