"""Step 2 of the commit protocol: a batch of CDC records to the records to produce.

Pure processing, no Kafka client: records in (anything with the accessors of
``confluent_kafka.Message``), a :class:`BatchResult` out — the output records
and what became of each input record. Each record is

decoded → cut to what its table's replica identity sent (:mod:`.identities`)
→ dropped if the source sent it before (:mod:`.dedup`) → mapped → serialized,

and becomes its events, a counted skip, or one dead-letter record built from
the :class:`~pipeline.errors.RecordError` that stopped it — all of its events
or none. The daemon runs it on each consumed batch; a redrive of dead letters
can run it on the dead letters' original bytes.

An outage is not a record's fault: when the schema registry
(:class:`~pipeline.serde.RegistryUnavailable`) or the source catalogue
(:class:`~pipeline.errors.SourceUnavailable`) does not answer, the error
propagates, the batch's de-duplication marks are discarded, and the caller
waits and processes the batch again: nothing is dead-lettered because of it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Message

from pipeline.cdc import Change, DecoderOptions, Skip, decode_record
from pipeline.errors import RecordError
from pipeline.events import DomainEvent
from pipeline.events.naming import event_topic
from pipeline.mapping import Rules, map_change
from pipeline.serde import EventSerializer
from pipeline.transformer.dedup import TP, Position, SourceDedup
from pipeline.transformer.dlq import OutRecord, dead_letter
from pipeline.transformer.identities import IdentityCatalog

__all__ = [
    "DUPLICATE",
    "EVENT_ID",
    "EVENT_TYPE",
    "SCHEMA_VERSION",
    "SOURCE_LSN",
    "SOURCE_TABLE",
    "BatchProcessor",
    "BatchResult",
    "first_offsets",
    "where",
]

log = logging.getLogger("cdcflow.transformer")

DUPLICATE = "duplicate"
"""The skip reason of a change the source sent again."""

# The headers of every event record (the dead letters' are in :mod:`.dlq`).
EVENT_TYPE = "cdcflow.event_type"
EVENT_ID = "cdcflow.event_id"
SCHEMA_VERSION = "cdcflow.schema_version"
SOURCE_TABLE = "cdcflow.source.table"
SOURCE_LSN = "cdcflow.source.lsn"


def where(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record (which always has all three)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def first_offsets(msgs: Iterable[Message]) -> dict[TP, int]:
    """Each partition's first offset among ``msgs``: where to rewind to consume them again."""
    first: dict[TP, int] = {}
    for msg in msgs:
        topic, partition, offset = where(msg)
        first.setdefault((topic, partition), offset)
    return first


Header = tuple[str, str | bytes | None]


@dataclass(frozen=True, slots=True)
class _EventKind:
    """What the records of one event type share, worked out once per type."""

    topic: str
    event_type: str
    version: int
    type_header: Header
    version_header: Header


@dataclass
class BatchResult:
    """What one batch produced; counted only once its transaction commits."""

    out: list[OutRecord] = field(default_factory=list)
    consumed: Counter[str] = field(default_factory=Counter)
    mapped: Counter[str] = field(default_factory=Counter)
    produced: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    first: dict[TP, int] = field(default_factory=dict)
    next_offsets: dict[TP, int] = field(default_factory=dict)
    commit_ts_ms: list[int] = field(default_factory=list)
    marks: dict[TP, Position] | None = None
    """The batch's de-duplication marks (sealed when processing ends); None: not de-duplicated."""

    @property
    def records(self) -> int:
        return sum(self.consumed.values())

    def take(self, msg: Message) -> TP:
        """Count ``msg`` into the batch (its partition's first and next offsets); its partition."""
        topic, partition, offset = where(msg)
        tp = (topic, partition)
        self.first.setdefault(tp, offset)
        self.next_offsets[tp] = offset + 1
        self.consumed[topic] += 1
        return tp


class BatchProcessor:
    """CDC records to event records and dead letters, producing nothing (see the module doc).

    ``dedup``: the de-duplication marks to check and advance (the checkpoint
    owns them and commits them with the batch); None: nothing is dropped as a
    repeat. ``identities``: None takes before images as decoded.
    """

    def __init__(
        self,
        rules: Rules,
        serializer: EventSerializer,
        *,
        topics: Mapping[type[DomainEvent], str],
        dead_letter_topic: str,
        transformer: str,
        decoder: DecoderOptions | None = None,
        identities: IdentityCatalog | None = None,
        dedup: SourceDedup | None = None,
    ) -> None:
        self.rules = rules
        self.serializer = serializer
        self.topics = topics
        self.dead_letter_topic = dead_letter_topic
        self.transformer = transformer
        self.decoder = decoder or DecoderOptions()
        self.identities = identities
        self.dedup = dedup
        self._kinds: dict[type[DomainEvent], _EventKind] = {}
        self._tables: dict[str, Header] = {}

    def process(self, msgs: Iterable[Message]) -> BatchResult:
        """Every record to its events, a skip, or a dead letter.

        Raises:
            RegistryUnavailable: the schema registry did not answer.
            SourceUnavailable: the source catalogue did not answer.
        """
        res = BatchResult()
        try:
            for msg in msgs:
                tp = res.take(msg)
                try:
                    self._one(msg, tp, res)
                except RecordError as err:
                    self._dead_letter(msg, err, res)
        except BaseException:
            if self.dedup is not None:
                self.dedup.discard_pending()  # the batch starts over
            raise
        if self.dedup is not None:
            res.marks = self.dedup.seal()
        return res

    def _one(self, msg: Message, tp: TP, res: BatchResult) -> None:
        change = self._decode(msg, tp)
        if isinstance(change, Skip):
            res.skipped[str(change.reason)] += 1
            return
        if self.identities is not None:
            change = self.identities.restrict(change)
        if self.dedup is not None and self.dedup.is_repeat(tp, change):
            res.skipped[DUPLICATE] += 1
            log.debug(
                "dropped repeat %s[%d]@%d lsn=%s", tp[0], tp[1], msg.offset(), change.source.lsn
            )
            return
        mapped = map_change(self.rules, change)
        if isinstance(mapped, Skip):
            res.skipped[str(mapped.reason)] += 1
            return
        source = change.source
        # The headers every event of the change shares, made once for all of them.
        table = self._tables.get(change.table) or self._table_header(change.table)
        lsn = (SOURCE_LSN, str(source.lsn).encode())
        # All of the change's events or none: counted once every one is serialized.
        res.out += [self._event_record(event, table, lsn) for event in mapped.events]
        res.mapped[tp[0]] += 1
        kinds = self._kinds
        for event in mapped.events:
            res.produced[kinds[type(event)].event_type] += 1
        res.commit_ts_ms.append(source.commit_ts_ms)

    def _decode(self, msg: Message, tp: TP) -> Change | Skip:
        return decode_record(
            msg.value(),
            topic=tp[0],
            key=msg.key(),
            partition=tp[1],
            offset=msg.offset(),
            options=self.decoder,
            lazy=True,  # a column is decoded when a rule (or the identity check) reads it
        )

    def _event_record(self, event: DomainEvent, table: Header, lsn: Header) -> OutRecord:
        meta = event.metadata
        assert meta is not None
        kind = self._kinds.get(type(event))
        if kind is None or kind.version != meta.schema_version:
            kind = self._kind(type(event), meta.schema_version)
        headers: list[Header] = [
            kind.type_header,
            (EVENT_ID, str(meta.event_id).encode()),
            kind.version_header,
            table,
            lsn,
        ]
        value = self.serializer.serialize(event, kind.topic)
        return OutRecord(kind.topic, meta.aggregate_id.encode(), value, headers)

    def _kind(self, cls: type[DomainEvent], version: int) -> _EventKind:
        """What every record of an event type shares: its topic, name and constant headers."""
        kind = _EventKind(
            self.topics.get(cls) or event_topic(cls),
            cls.event_type(),
            version,
            (EVENT_TYPE, cls.event_type().encode()),
            (SCHEMA_VERSION, str(version).encode()),
        )
        self._kinds[cls] = kind
        return kind

    def _table_header(self, table: str) -> Header:
        header = self._tables[table] = (SOURCE_TABLE, table.encode())
        return header

    def _dead_letter(self, msg: Message, err: RecordError, res: BatchResult) -> None:
        topic, partition, offset = where(msg)
        err.found_at(topic, partition, offset, key=msg.key(), value=msg.value())
        ts_type, ts = msg.timestamp()
        res.out.append(
            dead_letter(
                self.dead_letter_topic,
                err,
                timestamp_ms=ts if ts_type else None,
                transformer=self.transformer,
            )
        )
        res.dead_lettered[err.stage] += 1
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s", topic, partition, offset, err.stage, err.reason
        )
