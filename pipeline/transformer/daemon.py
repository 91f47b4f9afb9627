"""The transformer daemon: CDC records in, domain events out, one Kafka transaction per batch.

The commit protocol — each step is a method below, named after it:

1. **consume** a batch: block (at most ``poll_timeout_s``) for the first
   record, then take only what is already fetched, up to ``batch_size``. A
   quiet pipeline commits small batches at once; a busy one, large batches.
2. **process** it without producing anything: decode, cut before images to
   what the table's replica identity sent (:mod:`.identities`), drop source
   repeats (:mod:`.dedup`), map, serialize. Each source record becomes its
   events, a counted skip, or one dead-letter record — all of its events or
   none. If the registry (or the source catalogue) does not answer, rewind to
   the batch's first offsets, wait and go back to 1: nothing is
   dead-lettered because of an outage.
3. **begin** a Kafka transaction.
4. **produce** every output record of the batch (events and dead letters).
5. **send the offsets** after the batch's last records to the transaction,
   each carrying its partition's de-duplication mark as offset metadata,
   with the consumer's group metadata (so a zombie whose generation is gone
   cannot commit). Under a deadline: a producer wedged here (its group
   coordinator's broker gone, :mod:`.watchdog`) is replaced by a new one,
   which fences it, and the batch is retried.
6. **commit** the transaction. Only now do the batch's counters and
   de-duplication marks count as done. On an abortable error in 3-6: abort,
   rewind, forget the batch's marks, retry the batch. On a fence (this
   transactional id was taken over by a newer instance): stop, and leave the
   batch to whoever owns the partitions now. On another fatal error (e.g. the
   abort refused with ``INVALID_TXN_STATE`` after the transaction
   coordinator's broker restarted): replace the producer — the new one's
   ``init_transactions`` aborts the open transaction — rewind and retry; five
   replacements in a row without a commit stop the run as an error.

A crash at any point leaves the batch either entirely committed (events,
dead letters and offsets) or entirely invisible to ``read_committed``
consumers, and the next owner starts from the last committed offsets.

**Overlap** (``transformer.overlap_commit``, off by default): steps 3-6 of
batch *n* wait mostly on the brokers (the transaction and group
coordinators' round trips), so batch *n+1* is consumed first and, when the
transformer is behind (batch *n+1* at least half of ``batch_size``),
processed (step 2, which produces nothing) in a worker thread meanwhile.
When it keeps up, batch *n* is committed first: sharing the interpreter would
slow the commit more than the overlap saves. Batch *n+1*'s
de-duplication marks are kept apart from batch *n*'s (:mod:`.dedup`, sealed
per batch), so batch *n*'s offsets carry only its own marks. If batch *n*
aborts, batch *n+1* is thrown away with it and both are consumed again from
batch *n*'s first offsets. Transactions still begin and commit one at a
time, in order. Before partitions are revoked, a batch processed but not
yet committed is committed in the revocation callback; when partitions are
lost (the member was dropped from the group) it is thrown away.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.cdc import Change, DecoderOptions, Skip, decode_record
from pipeline.errors import CdcflowError, RecordError, SourceUnavailable
from pipeline.events import DomainEvent
from pipeline.events.naming import event_topic
from pipeline.mapping import Rules, map_change
from pipeline.serde import EventSerializer, RegistryUnavailable
from pipeline.settings import Settings
from pipeline.transformer.dedup import TP, Position, SourceDedup
from pipeline.transformer.dlq import OutRecord, dead_letter
from pipeline.transformer.identities import IdentityCatalog
from pipeline.transformer.metrics import Metrics
from pipeline.transformer.watchdog import CallHung, bounded

__all__ = ["BatchResult", "Transformer", "TransformerFenced"]

log = logging.getLogger("cdcflow.transformer")

DUPLICATE = "duplicate"


_FENCE_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.PRODUCER_FENCED}
)


def _fenced(err: KafkaError) -> bool:
    """True when a newer instance with this transactional id took over."""
    return err.code() in _FENCE_CODES


def where(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record (which always has all three)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class TransformerFenced(CdcflowError):
    """Another instance with this transactional id, or a newer group generation, took over."""


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


class Transformer:
    """One member of the transformer consumer group."""

    # Step 5's deadline: its own timeout (30 s) plus a margin, after which the
    # producer is given up as wedged (see pipeline/transformer/watchdog.py).
    send_offsets_deadline_s = 45.0
    # A producer replaced this many times in a row without a commit: stop, and say so.
    max_replacements = 5

    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        event_types: Iterable[type[DomainEvent]],
        serializer: EventSerializer,
        *,
        instance: str = "0",
        metrics: Metrics | None = None,
        decoder: DecoderOptions | None = None,
        poll_timeout_s: float = 0.5,
        identities: IdentityCatalog | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.transformer
        self.rules = rules
        self.event_types = list(event_types)
        self.topics = {et: event_topic(et) for et in self.event_types}
        self.serializer = serializer
        self.metrics = metrics or Metrics()
        self.decoder = decoder or DecoderOptions()
        self.poll_timeout_s = poll_timeout_s
        # Cuts before images to what the source sent; None: taken as decoded (tests).
        self.identities = identities
        self.transactional_id = f"{self.cfg.transactional_id}-{instance}"
        self.dedup = SourceDedup()
        self._assigned: set[TP] = set()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_lag_check = 0.0
        self._replaced = 0  # producers replaced since the last commit
        # A batch processed whose transaction has not begun (overlap mode).
        self._held: BatchResult | None = None
        self._on_batch: Callable[[BatchResult], None] | None = None
        self._worker: ThreadPoolExecutor | None = None
        # Overlap only when the next batch is at least half full: the transformer is behind.
        self._overlap_from = max(1, self.cfg.batch_size // 2)

    # ------------------------------------------------------------------ set-up

    def ensure_topics(self) -> None:
        """Create the event topics and the dead-letter topic when missing."""
        admin = AdminClient(self.settings.kafka.client_config())
        kafka = self.settings.kafka
        config = {"min.insync.replicas": str(kafka.min_insync_replicas)}
        wanted = sorted(set(self.topics.values()) | {self.cfg.dead_letter_topic})
        existing = set(admin.list_topics(timeout=30).topics)
        new = [
            NewTopic(
                t,
                num_partitions=self.cfg.event_topic_partitions,
                replication_factor=kafka.replication_factor,
                config=config,
            )
            for t in wanted
            if t not in existing
        ]
        if not new:
            return
        for topic, future in admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result(60)
                log.info("created topic %s (%d partitions)", topic, self.cfg.event_topic_partitions)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise CdcflowError(f"cannot create topic {topic}: {exc}") from exc

    def _consumer_config(self) -> dict[str, Any]:
        conf = self.settings.kafka.client_config("consumer")
        conf.update(
            {
                "group.id": self.cfg.group_id,
                # Static membership: a restarted instance takes its partitions back
                # at once instead of waiting out the dead member's session.
                "group.instance.id": self.transactional_id,
                "session.timeout.ms": 15000,
                # New CDC topics (a table added to the connector) join the pattern
                # subscription within 10 s, not librdkafka's default 5 minutes.
                "topic.metadata.refresh.interval.ms": 10000,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # Low latency when quiet: the broker answers a fetch within 10 ms.
                "fetch.wait.max.ms": 10,
            }
        )
        return conf

    def _producer_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "linger.ms": 5,
            "compression.type": "lz4",
            # The Java clients' partitioner: the same key lands on the same
            # partition whichever client produces it.
            "partitioner": "murmur2_random",
            "transaction.timeout.ms": 60000,
        }
        conf.update(self.settings.kafka.client_config("producer"))
        conf["transactional.id"] = self.transactional_id
        conf["enable.idempotence"] = True
        return conf

    def open(self) -> None:
        """Connect, fence older instances of this transactional id, subscribe."""
        self.ensure_topics()
        self.serializer.prepare((et, self.topics[et]) for et in self.event_types)
        self._start_producer()
        self._consumer = Consumer(self._consumer_config())
        self._consumer.subscribe(
            [self.cfg.topics],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("transformer %s subscribed to %s", self.transactional_id, self.cfg.topics)

    def _start_producer(self) -> None:
        """A transactional producer; its init fences older ones with this transactional id.

        Raises:
            CdcflowError: transactions cannot be initialised.
        """
        producer = Producer(self._producer_config())
        try:
            # Aborts whatever a previous instance with this id left open.
            producer.init_transactions(60)
        except KafkaException as exc:
            raise CdcflowError(
                f"cannot initialise Kafka transactions: {exc}",
                hint="check the broker's transaction.state.log.* settings",
            ) from exc
        self._producer = producer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Rebuild each partition's de-duplication mark from its committed offset's metadata.
        committed = self._committed(consumer, partitions)
        for tp in committed:
            self.dedup.restore((tp.topic, tp.partition), getattr(tp, "metadata", None))
            self._assigned.add((tp.topic, tp.partition))
        self.metrics.assigned.set(len(self._assigned))
        log.info(
            "assigned %s",
            ", ".join(f"{p.topic}[{p.partition}]@{p.offset}" for p in committed) or "nothing",
        )

    @staticmethod
    def _committed(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The committed offsets (with their marks), asked again while the coordinator is busy.

        Without them the de-duplication marks would be unknown, so there is no
        going on without: after the last attempt the error stops the process.
        """
        for attempt in range(1, 6):
            try:
                return list(consumer.committed(partitions, timeout=30))
            except KafkaException as exc:
                if attempt == 5:
                    raise CdcflowError(
                        f"cannot read the committed offsets of {len(partitions)} partition(s): {exc}",
                        hint="check the group coordinator (broker logs); restart the transformer",
                    ) from exc
                log.warning("reading committed offsets (attempt %d of 5): %s", attempt, exc)
                time.sleep(min(2.0 * attempt, 10.0))
        raise AssertionError("unreachable")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A batch processed but not committed is committed while the partitions are
        # still ours (if that fails, it is rewound and the next owner redoes it).
        held, self._held = self._held, None
        if held is not None:
            log.info("committing the processed batch of %d records before revocation", held.records)
            self._commit_and_report(held)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The partitions are someone else's already: a batch not committed is dropped.
        held, self._held = self._held, None
        if held is not None:
            log.warning("partitions lost: dropping the processed batch of %d records", held.records)
            self.dedup.rollback()
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.dedup.forget((tp.topic, tp.partition))
            self._assigned.discard((tp.topic, tp.partition))
        self.metrics.assigned.set(len(self._assigned))
        log.info(
            "revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
        )

    # ------------------------------------------------------------------ the loop

    def run(
        self, stop: threading.Event, on_batch: Callable[[BatchResult], None] | None = None
    ) -> None:
        """Run until ``stop`` is set; the batch in flight is committed or aborted, never half-written.

        Raises:
            TransformerFenced: a newer instance took over this transactional id or
                this group instance id.
            SchemaContractError: an event type has no contract or is not registered.
        """
        if self._consumer is None:
            self.open()
        self._on_batch = on_batch
        if self.cfg.overlap_commit and self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="cdcflow-process")
            # The main thread's transaction calls wait on the brokers in short
            # steps, each needing the interpreter back from the busy worker;
            # Python hands it over once per switch interval (5 ms by default).
            sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        try:
            while not stop.is_set():
                self.metrics.last_loop = time.monotonic()
                # With a batch held, take only what is fetched already: the held
                # batch must not wait for new records.
                msgs = self.consume(wait=self._held is None)
                held, self._held = self._held, None  # (a revocation in consume committed it)
                if held is not None and len(msgs) >= self._overlap_from:
                    self._overlapped(held, msgs, stop)
                    msgs = []
                elif held is not None and not self._commit_and_report(held):
                    # (Keeping up: the next batch is small, and committing first is
                    # faster than sharing the interpreter with it.) ``held`` aborted
                    # and was rewound: the records consumed after it go too.
                    self._drop_after_abort(held, self._first_offsets(msgs))
                    msgs = []
                if msgs:
                    result = self.process_with_retry(msgs, stop)
                    if result is not None:
                        if self._worker is not None:
                            self._held = result  # committed next turn, overlapped
                        else:
                            self._commit_and_report(result)
                self._update_lag()
            held, self._held = self._held, None
            if held is not None:  # stopping: what is processed is committed
                self._commit_and_report(held)
        finally:
            self.close()

    def _overlapped(self, held: BatchResult, msgs: list[Message], stop: threading.Event) -> None:
        """Steps 3-6 of ``held`` here, step 2 of ``msgs`` in the worker thread meanwhile."""
        assert self._worker is not None
        future: Future[BatchResult | None] | None = None
        if msgs:
            future = self._worker.submit(self.process_with_retry, msgs, stop)
        try:
            committed = self._commit_and_report(held)
        except BaseException:
            if future is not None:
                future.exception()  # wait for the worker; the commit's error goes on
            raise
        following = future.result() if future is not None else None
        if committed:
            self._held = following
            return
        # ``held`` aborted and was rewound: what was processed after it goes too.
        self._drop_after_abort(held, following.first if following is not None else {})

    def _drop_after_abort(self, aborted: BatchResult, after: dict[TP, int]) -> None:
        """Throw away what was consumed after an aborted batch; it is consumed again.

        ``aborted`` was rewound to its first offsets; partitions only ``after``
        touched are rewound to their own first offsets here.
        """
        self._rewind({tp: o for tp, o in after.items() if tp not in aborted.first})
        self.dedup.rollback()

    def _commit_and_report(self, res: BatchResult) -> bool:
        ok = self.commit(res)
        if ok and self._on_batch is not None:
            self._on_batch(res)
        return ok

    def consume(self, wait: bool = True) -> list[Message]:
        """Step 1 (``wait=False``: only records fetched already)."""
        assert self._consumer is not None
        first = self._consumer.consume(1, self.poll_timeout_s if wait else 0)
        if not first:
            return []
        rest = self._consumer.consume(self.cfg.batch_size - 1, 0) if self.cfg.batch_size > 1 else []
        msgs = []
        for msg in [*first, *rest]:
            err = msg.error()
            if err is None:
                msgs.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                # A fatal consumer error reaches a message as code _FATAL, whose
                # fatal() is False: librdkafka raises it when another member took
                # this group.instance.id, and this consumer will never fetch again.
                if err.code() == KafkaError._FATAL and "fenced" in err.str().lower():
                    self.metrics.transactions.labels("fenced").inc()
                    raise TransformerFenced(
                        f"transformer {self.transactional_id} was fenced by a newer member "
                        f"with the same instance: {err}"
                    )
                if err.fatal() or err.code() == KafkaError._FATAL:
                    raise CdcflowError(f"fatal consumer error: {err}")
                log.warning("consumer error: %s", err)
        return msgs

    def process_with_retry(self, msgs: list[Message], stop: threading.Event) -> BatchResult | None:
        """Step 2, waiting out registry outages. None when stopped while waiting."""
        delay = 1.0
        while True:
            try:
                return self.process(msgs)
            except (RegistryUnavailable, SourceUnavailable) as exc:
                self.dedup.discard_pending()
                log.warning("%s; retrying the batch of %d records in %.0fs", exc, len(msgs), delay)
                if stop.wait(delay):
                    self._rewind(self._first_offsets(msgs))
                    return None
                delay = min(delay * 2, 15.0)

    @staticmethod
    def _first_offsets(msgs: list[Message]) -> dict[TP, int]:
        first: dict[TP, int] = {}
        for msg in msgs:
            topic, partition, offset = where(msg)
            first.setdefault((topic, partition), offset)
        return first

    def process(self, msgs: list[Message]) -> BatchResult:
        """Step 2: every record to its events, a skip, or a dead letter (nothing produced yet)."""
        res = BatchResult()
        for msg in msgs:
            tp = res.take(msg)
            try:
                self._one(msg, tp, res)
            except RecordError as err:
                topic, partition, offset = where(msg)
                ts_type, ts = msg.timestamp()
                res.out.append(
                    dead_letter(
                        self.cfg.dead_letter_topic,
                        err,
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        timestamp_ms=ts if ts_type else None,
                        key=msg.key(),
                        value=msg.value(),
                        transformer=self.transactional_id,
                    )
                )
                res.dead_lettered[err.stage] += 1
                log.warning(
                    "dead-lettered %s[%d]@%d (%s): %s",
                    topic,
                    partition,
                    offset,
                    err.stage,
                    err.reason,
                )
        res.marks = self.dedup.seal()
        return res

    def _one(self, msg: Message, tp: TP, res: BatchResult) -> None:
        decoded = decode_record(
            msg.value(),
            topic=tp[0],
            key=msg.key(),
            partition=tp[1],
            offset=msg.offset(),
            options=self.decoder,
        )
        if isinstance(decoded, Skip):
            res.skipped[str(decoded.reason)] += 1
            return
        if self.identities is not None:
            decoded = self.identities.restrict(decoded)
        if self.dedup.is_repeat(tp, decoded):
            res.skipped[DUPLICATE] += 1
            log.debug(
                "dropped repeat %s[%d]@%d lsn=%s", tp[0], tp[1], msg.offset(), decoded.source.lsn
            )
            return
        mapped = map_change(self.rules, decoded)
        if isinstance(mapped, Skip):
            res.skipped[str(mapped.reason)] += 1
            return
        out = [self._event_record(event, decoded) for event in mapped.events]
        res.out.extend(out)
        res.mapped[tp[0]] += 1
        for event in mapped.events:
            res.produced[type(event).event_type()] += 1
        res.commit_ts_ms.append(decoded.source.commit_ts_ms)

    def _event_record(self, event: DomainEvent, change: Change) -> OutRecord:
        topic = self.topics.get(type(event)) or event_topic(type(event))
        meta = event.metadata
        assert meta is not None
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
        ]
        return OutRecord(topic, meta.aggregate_id.encode(), value, headers)

    def commit(self, res: BatchResult) -> bool:
        """Steps 3-6. True when the batch is committed; False when it was aborted and rewound."""
        assert self._producer is not None and self._consumer is not None
        started = time.monotonic()
        producer = self._producer
        try:
            producer.begin_transaction()  # 3
            for rec in res.out:  # 4
                self._produce(rec)
            offsets = [
                self._offset(t, p, off, res.marks) for (t, p), off in res.next_offsets.items()
            ]
            group = self._consumer.consumer_group_metadata()
            bounded(
                lambda: producer.send_offsets_to_transaction(offsets, group, 30),
                seconds=self.send_offsets_deadline_s,
                what="send_offsets_to_transaction",
            )  # 5
            self._commit_transaction()  # 6
        except CallHung as exc:
            # The group coordinator's broker left and librdkafka waits for it for
            # good (see watchdog.py). A new producer with this transactional id
            # fences the wedged one and aborts its transaction; the batch is retried.
            self._replace_producer(res, str(exc))
            return False
        except KafkaException as exc:
            err = exc.args[0]
            if _fenced(err):
                self.metrics.transactions.labels("fenced").inc()
                raise TransformerFenced(
                    f"transformer {self.transactional_id} was fenced: {err}"
                ) from exc
            if err.fatal():
                self._replace_producer(res, f"fatal producer error {err}")
                return False
            log.warning(
                "transaction aborted (%s); retrying the batch of %d records", err, res.records
            )
            self._abort(res)
            return False
        if res.marks is not None:
            self.dedup.commit(res.marks)
        self._replaced = 0
        self._count(res, time.monotonic() - started)
        return True

    def _replace_producer(self, res: BatchResult, why: str) -> None:
        """Give up a producer that cannot go on; a new one with this transactional id fences it.

        The new producer's ``init_transactions`` aborts the open transaction, so the
        batch is rewound and retried. Only for errors that are not a fence: a
        newer instance's fence stops this one (:class:`TransformerFenced`), never
        the other way round.

        Raises:
            CdcflowError: the producer was replaced ``max_replacements`` times in a
                row without a transaction committing in between.
        """
        self._replaced += 1
        if self._replaced > self.max_replacements:
            raise CdcflowError(
                f"transformer {self.transactional_id}: {why}, and {self.max_replacements} new "
                "producers in a row committed nothing",
                hint="check the brokers' transaction coordinator (kafka logs) and restart",
            )
        log.warning(
            "%s; replacing the producer, retrying the batch of %d records", why, res.records
        )
        self.metrics.transactions.labels("aborted").inc()
        self.metrics.last_commit_ok = False
        self._producer = None  # a wedged call's thread may still hold it
        self.dedup.rollback()
        self._rewind(res.first)
        self._start_producer()

    def _offset(
        self, topic: str, partition: int, offset: int, marks: dict[TP, Position] | None
    ) -> TopicPartition:
        mark = self.dedup.metadata((topic, partition), marks)
        if mark is None:
            return TopicPartition(topic, partition, offset)
        return TopicPartition(topic, partition, offset, metadata=mark)

    def _produce(self, rec: OutRecord) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(rec.topic, rec.value, rec.key, headers=rec.headers)
                return
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let deliveries drain

    def _commit_transaction(self) -> None:
        assert self._producer is not None
        for attempt in range(5):
            try:
                self._producer.commit_transaction(60)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 4:
                    raise
                log.warning("commit_transaction: %s; retrying", exc.args[0])

    def _abort(self, res: BatchResult) -> None:
        assert self._producer is not None
        self.metrics.transactions.labels("aborted").inc()
        self.metrics.last_commit_ok = False
        try:
            self._producer.abort_transaction(60)
        except KafkaException as exc:
            err = exc.args[0]
            if _fenced(err):
                self.metrics.transactions.labels("fenced").inc()
                raise TransformerFenced(f"abort failed, fenced: {err}") from exc
            if err.fatal():
                # e.g. INVALID_TXN_STATE after the transaction coordinator's broker
                # restarted: this producer cannot go on, but nothing took its place.
                self._replace_producer(res, f"abort failed fatally ({err})")
                return
            log.warning("abort_transaction: %s", exc)
        self.dedup.rollback()
        self._rewind(res.first)

    def _rewind(self, first: dict[TP, int]) -> None:
        assert self._consumer is not None
        for (topic, partition), offset in first.items():
            if (topic, partition) not in self._assigned:
                continue
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, exc)

    def _count(self, res: BatchResult, seconds: float) -> None:
        m = self.metrics
        m.transactions.labels("committed").inc()
        m.last_commit_ok = True
        m.batch_seconds.observe(seconds)
        m.batch_records.observe(res.records)
        for topic, n in res.consumed.items():
            m.consumed.labels(topic).inc(n)
        for topic, n in res.mapped.items():
            m.mapped.labels(topic).inc(n)
        for etype, n in res.produced.items():
            m.produced.labels(etype).inc(n)
        for reason, n in res.skipped.items():
            m.skipped.labels(reason).inc(n)
        for stage, n in res.dead_lettered.items():
            m.dead_lettered.labels(stage).inc(n)
        now_ms = time.time() * 1000
        for ts in res.commit_ts_ms:
            m.lag_seconds.observe(max(0.0, (now_ms - ts) / 1000))

    def _update_lag(self) -> None:
        now = time.monotonic()
        if self._consumer is None or now - self._last_lag_check < 5:
            return
        self._last_lag_check = now
        try:
            positions = self._consumer.position([TopicPartition(t, p) for t, p in self._assigned])
            for tp in positions:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                        max(0, high - tp.offset)
                    )
        except KafkaException:
            pass

    def close(self) -> None:
        """Leave the group and release the clients (idempotent)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._held = None
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
            self._consumer = None
        if self._producer is not None:
            try:
                self._producer.flush(10)
            except KafkaException as exc:
                # A fenced producer is in a fatal state and refuses even a flush;
                # nothing of its open transaction may be written anyway.
                log.warning("closing the producer: %s", exc)
            self._producer = None
