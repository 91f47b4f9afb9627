"""Reading the dead-letter topic, and redriving it exactly once.

Where a redrive stands is the offsets of the **redrive group**
(``<transformer.group_id>-redrive``) on the dead-letter topic: every record
before them is handled; the records from them to the end are the dead letters
still waiting (what ``cdcflow dlq list`` shows).

The redrive protocol — one Kafka transaction per batch, transactional id
``<transformer.transactional_id>-redrive``:

0. **open**: a transactional producer, whose ``init_transactions`` fences an
   earlier redrive of this topic (a live one stops; a killed one's open
   transaction is aborted); a consumer *assigned* (not subscribed: a killed
   redrive leaves no member behind to wait for) to every partition of the
   dead-letter topic at the redrive group's committed offsets (none: the
   beginning), ``read_committed``. **The end** is each partition's high
   watermark now: dead letters written later — by the transformer, or by this
   redrive — wait for the next redrive, so a redrive always ends.
1. **consume** a batch of at most ``batch_size`` records before the end.
2. **begin** a transaction.
3. **produce**, record by record: a dead letter the selection leaves out is
   appended again unchanged (key, value, headers, timestamp); a selected one
   goes through the current domain (:class:`~pipeline.dlq.reprocess.Reprocessor`):
   its events are produced (headers ``cdcflow.redriven``,
   ``cdcflow.redriven.from``), or it is skipped as the domain says, or it
   still fails and a new dead letter with the new reason is produced
   (``cdcflow.dlq.redrives`` counts how many redrives it failed). A registry
   or source outage aborts the transaction; the batch is retried after a wait.
4. **send the offsets** after the batch's last records to the transaction,
   under the redrive group.
5. **commit**. Only now does the batch count in the balance.

A kill at any step leaves the batch either committed whole (events, dead
letters, offsets) or invisible to ``read_committed`` consumers; the next
redrive aborts what was left open and starts at the committed offsets. So each
dead letter is handled by exactly one committed transaction: its events are
written once, and what still fails is dead-lettered once more, after the end,
where the next redrive finds it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from pipeline.dlq.letters import DeadLetter, Selection
from pipeline.dlq.reprocess import Reprocessor
from pipeline.errors import CdcflowError, SourceUnavailable
from pipeline.replay.stream import AssignedReader
from pipeline.serde import RegistryUnavailable
from pipeline.serde.backoff import delays
from pipeline.settings import Settings
from pipeline.transformer.clients import init_transactions, producer_config
from pipeline.transformer.dlq import OutRecord

__all__ = [
    "Balance",
    "DeadLetterReader",
    "Redrive",
    "RedriveFenced",
    "letter_of",
    "redrive_group",
    "redrive_transactional_id",
]

log = logging.getLogger("cdcflow.dlq")

_FENCE_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.PRODUCER_FENCED}
)


class RedriveFenced(CdcflowError):
    """A newer redrive of the same dead-letter topic took over (exit 3, as a fenced transformer)."""

    exit_code = 3


def where(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record (which always has all three)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def redrive_group(settings: Settings) -> str:
    """The consumer group whose offsets on the dead-letter topic say what is handled."""
    return f"{settings.transformer.group_id}-redrive"


def redrive_transactional_id(settings: Settings) -> str:
    """The transactional id of every redrive of the dead-letter topic (one at a time)."""
    return f"{settings.transformer.transactional_id}-redrive"


@dataclass
class Balance:
    """What a redrive did: ``dead_lettered = redriven + skipped + still_dead + not_selected``."""

    dead_lettered: int = 0
    """Dead letters taken (up to the end)."""
    redriven: int = 0
    """... that became events."""
    skipped: Counter[str] = field(default_factory=Counter)
    """... that the current domain skips (by skip reason): handled, no events."""
    still_dead: Counter[str] = field(default_factory=Counter)
    """... that still fail (by the new reason): dead-lettered again."""
    not_selected: int = 0
    """... left out by --reason/--table/--since: appended again unchanged."""
    events: Counter[str] = field(default_factory=Counter)
    """Events produced, by event type."""
    transactions: int = 0

    def add(self, other: Balance) -> None:
        self.dead_lettered += other.dead_lettered
        self.redriven += other.redriven
        self.skipped.update(other.skipped)
        self.still_dead.update(other.still_dead)
        self.not_selected += other.not_selected
        self.events.update(other.events)
        self.transactions += other.transactions

    @property
    def balanced(self) -> bool:
        return self.dead_lettered == (
            self.redriven
            + sum(self.skipped.values())
            + sum(self.still_dead.values())
            + self.not_selected
        )

    def line(self) -> str:
        return (
            f"dead-lettered {self.dead_lettered} = redriven {self.redriven}"
            f" + still dead {sum(self.still_dead.values())}"
            f" + skipped {sum(self.skipped.values())}"
            f" + not selected {self.not_selected}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "dead_lettered": self.dead_lettered,
            "redriven": self.redriven,
            "still_dead": sum(self.still_dead.values()),
            "skipped": sum(self.skipped.values()),
            "not_selected": self.not_selected,
            "still_dead_by_reason": dict(self.still_dead),
            "skipped_by_reason": dict(self.skipped),
            "events": dict(self.events),
            "transactions": self.transactions,
            "balanced": self.balanced,
        }


def letter_of(msg: Message) -> DeadLetter:
    """A consumed dead-letter record, its headers read."""
    topic, partition, offset = where(msg)
    _, ts = msg.timestamp()
    headers: Any = msg.headers() or []
    return DeadLetter.of(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=ts,
        key=msg.key(),
        value=msg.value(),
        headers=headers,
    )


class DeadLetterReader(AssignedReader):
    """The dead-letter topic from the redrive group's offsets (or ``start``) to the end.

    Use as a context manager; :meth:`batches` reads what was there when it was
    opened, in batches, and ends.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = 100,
        start: dict[int, int] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.transformer.dead_letter_topic
        self.batch_size = batch_size
        self._start = start
        self.begin: dict[int, int] = {}
        self.end: dict[int, int] = {}

    def open(self) -> None:
        """Assign every partition at its committed offset; note the end.

        Raises:
            CdcflowError: the dead-letter topic does not exist, or Kafka does not answer.
        """
        admin = AdminClient(self.settings.kafka.client_config())
        try:
            meta = admin.list_topics(self.topic, timeout=30).topics.get(self.topic)
        except KafkaException as exc:
            raise CdcflowError(f"cannot read the metadata of {self.topic}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise CdcflowError(
                f"dead-letter topic {self.topic} does not exist",
                hint="the transformer creates it at start (transformer.dead_letter_topic)",
            )
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": redrive_group(self.settings),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer = consumer
        partitions = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
        try:
            committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, 30)}
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(tp, timeout=30)
                start = (self._start or committed).get(tp.partition, -1)
                self.begin[tp.partition] = start if start >= 0 else low
                self.end[tp.partition] = high
        except KafkaException as exc:
            raise CdcflowError(f"cannot read the offsets of {self.topic}: {exc}") from exc
        consumer.assign(
            [
                TopicPartition(self.topic, p, o if o > 0 else OFFSET_BEGINNING)
                for p, o in self.begin.items()
            ]
        )

    @property
    def waiting(self) -> int:
        """How many offsets lie between the committed offsets and the end (an upper bound)."""
        return sum(max(0, self.end[p] - self.begin[p]) for p in self.end)

    def batches(self) -> Iterator[list[Message]]:
        """Batches of records before the end, in offset order per partition; then stop.

        Raises:
            CdcflowError: Kafka reports an error that is not the end of a partition.
        """
        remaining = {p for p in self.end if self.begin[p] < self.end[p]}
        while remaining:
            batch: list[Message] = []
            for msg in self.consumer.consume(self.batch_size, 1.0):
                partition = msg.partition()
                assert partition is not None
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(partition)
                        continue
                    if err.fatal():
                        raise CdcflowError(f"reading {self.topic}: {err}")
                    log.warning("reading %s: %s", self.topic, err)
                    continue
                offset = msg.offset()
                assert offset is not None
                if partition not in remaining or offset >= self.end[partition]:
                    remaining.discard(partition)
                    continue
                batch.append(msg)
                if offset + 1 >= self.end[partition]:
                    remaining.discard(partition)
            if batch:
                yield batch

    def letters(self) -> Iterator[DeadLetter]:
        for batch in self.batches():
            yield from (letter_of(m) for m in batch)


@dataclass(eq=False)
class Redrive:
    """One redrive of the dead-letter topic (the protocol is in the module doc)."""

    settings: Settings
    reprocess: Reprocessor
    selection: Selection
    _: KW_ONLY
    batch_size: int = 100
    on_commit: Callable[[Balance, Balance], None] | None = None
    """Called after each commit with that batch's balance and the running total."""
    balance: Balance = field(default_factory=Balance, init=False)
    """What the committed batches did (a dry run: what they would do)."""

    @property
    def transactional_id(self) -> str:
        return redrive_transactional_id(self.settings)

    @property
    def topic(self) -> str:
        return self.settings.transformer.dead_letter_topic

    def dry_run(self) -> Balance:
        """What a redrive would do now; nothing is produced, nothing committed.

        Raises:
            RegistryUnavailable, SourceUnavailable: an outage (a dry run does not wait).
        """
        with DeadLetterReader(self.settings, batch_size=self.batch_size) as reader:
            for batch in reader.batches():
                self.balance.add(self._batch(batch, produce=None))
        return self.balance

    def run(self, stop: threading.Event | None = None) -> Balance:
        """Redrive every dead letter up to the end, one transaction per batch.

        ``stop`` (SIGTERM) ends it after the batch in flight commits.

        Raises:
            RedriveFenced: another redrive of this topic took over.
            CdcflowError: Kafka transactions cannot be initialised or fail for good.
        """
        stop = stop or threading.Event()
        producer = self._producer()
        with DeadLetterReader(self.settings, batch_size=self.batch_size) as reader:
            for batch in reader.batches():
                self._commit_batch(producer, reader.consumer, batch, stop)
                if stop.is_set():
                    break
        producer.flush(30)
        return self.balance

    def _producer(self) -> Producer:
        # The transformer's producer config (partitioner, transaction timeout), this id.
        # Initialising fences an earlier redrive and aborts its open transaction.
        return init_transactions(Producer(producer_config(self.settings, self.transactional_id)))

    def _commit_batch(
        self, producer: Producer, consumer: Consumer, batch: list[Message], stop: threading.Event
    ) -> None:
        waits = delays()
        while True:
            try:
                producer.begin_transaction()  # 2
                done = self._batch(batch, produce=lambda rec, ts: _produce(producer, rec, ts))  # 3
                next_offsets: dict[int, int] = {}
                for msg in batch:
                    _, partition, offset = where(msg)
                    next_offsets[partition] = offset + 1
                offsets = [TopicPartition(self.topic, p, o) for p, o in next_offsets.items()]
                producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), 30
                )  # 4
                _commit(producer)  # 5
            except (RegistryUnavailable, SourceUnavailable) as exc:
                self._abort(producer)
                delay = next(waits)
                log.warning("%s; retrying the batch of %d in %.0fs", exc, len(batch), delay)
                if stop.wait(delay):
                    raise CdcflowError(f"stopped while waiting: {exc}") from exc
                continue
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() in _FENCE_CODES:
                    raise RedriveFenced(
                        f"redrive {self.transactional_id} was fenced by a newer redrive: {err}"
                    ) from exc
                if err.fatal() or not err.txn_requires_abort():
                    raise CdcflowError(f"redrive transaction failed: {err}") from exc
                self._abort(producer)
                log.warning("transaction aborted (%s); retrying the batch of %d", err, len(batch))
                continue
            done.transactions = 1
            self.balance.add(done)
            if self.on_commit is not None:
                self.on_commit(done, self.balance)
            return

    @staticmethod
    def _abort(producer: Producer) -> None:
        try:
            producer.abort_transaction(60)
        except KafkaException as exc:
            raise CdcflowError(f"cannot abort the redrive transaction: {exc}") from exc

    def _batch(
        self, batch: list[Message], produce: Callable[[OutRecord, int | None], None] | None
    ) -> Balance:
        """Step 3 for every record of ``batch`` (``produce`` None: count only, a dry run)."""
        tally = Balance()
        for msg in batch:
            letter = letter_of(msg)
            tally.dead_lettered += 1
            if not self.selection.takes(letter):
                tally.not_selected += 1
                if produce is not None:
                    produce(_again(letter), letter.timestamp_ms)
                continue
            outcome = self.reprocess(letter)
            if outcome.dead is not None:
                tally.still_dead[outcome.reason or "unknown"] += 1
                if produce is not None:
                    produce(outcome.dead, None)
                continue
            if outcome.skipped is not None:
                tally.skipped[outcome.skipped] += 1
                continue
            tally.redriven += 1
            for rec in outcome.events:
                tally.events[_header(rec, "cdcflow.event_type")] += 1
                if produce is not None:
                    produce(rec, None)
        return tally


def _commit(producer: Producer) -> None:
    """Commit the transaction, asking again while the error says a retry may succeed."""
    for attempt in range(5):
        try:
            producer.commit_transaction(60)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable() or attempt == 4:
                raise
            log.warning("commit_transaction: %s; retrying", exc.args[0])


def _again(letter: DeadLetter) -> OutRecord:
    headers: list[tuple[str, str | bytes | None]] = [
        (k, v.encode()) for k, v in letter.headers.items()
    ]
    return OutRecord(letter.topic, letter.key, letter.value, headers)


def _header(rec: OutRecord, name: str) -> str:
    for key, value in rec.headers:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return "?"


def _produce(producer: Producer, rec: OutRecord, timestamp_ms: int | None) -> None:
    extra: dict[str, Any] = (
        {} if timestamp_ms is None or timestamp_ms < 0 else {"timestamp": timestamp_ms}
    )
    while True:
        try:
            producer.produce(rec.topic, rec.value, rec.key, headers=rec.headers, **extra)
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain
