"""The checkpoint: steps 3-6 of the commit protocol, and the de-duplication marks they commit.

One :class:`Checkpoint` per transformer owns the transactional producer, the
partitions assigned and their de-duplication marks (:mod:`.dedup`). A batch
processed (step 2, :mod:`.batch`) is committed so:

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

Every way a batch fails to commit goes through :meth:`Checkpoint._abort`, the
abort path in one place. The marks: a partition's mark is restored from its
committed offset's metadata when it is assigned, advanced by the batches
processed (sealed per batch), committed with its batch's transaction,
rolled back when a transaction aborts, and forgotten when the partition goes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipeline.errors import CallHung, CdcflowError, TransformerFenced
from pipeline.serde.backoff import delays
from pipeline.transformer.batch import BatchResult
from pipeline.transformer.clients import init_transactions
from pipeline.transformer.dedup import TP, SourceDedup
from pipeline.transformer.dlq import OutRecord
from pipeline.transformer.metrics import Metrics
from pipeline.transformer.watchdog import bounded

__all__ = ["Checkpoint", "committed_offsets"]

log = logging.getLogger("cdcflow.transformer")

_FENCE_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.PRODUCER_FENCED}
)


def _fenced(err: KafkaError) -> bool:
    """True when a newer instance with this transactional id took over."""
    return err.code() in _FENCE_CODES


def committed_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
    """The committed offsets (with their marks), asked again while the coordinator is busy.

    Without them the de-duplication marks would be unknown, so there is no
    going on without: after the last attempt the error stops the process.

    Raises:
        CdcflowError: five attempts failed.
    """
    waits = delays(2.0, 10.0)
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
            time.sleep(next(waits))
    raise AssertionError("unreachable")


class Checkpoint:
    """Steps 3-6 for one transactional id, and the marks they commit (see the module doc).

    ``new_producer()`` makes a transactional producer for this transactional
    id (a client factory: tests hand in fakes). :meth:`start` makes the first.
    """

    def __init__(
        self,
        new_producer: Callable[[], Producer],
        *,
        transactional_id: str,
        metrics: Metrics,
        send_offsets_deadline_s: float = 45.0,
        max_replacements: int = 5,
    ) -> None:
        self.transactional_id = transactional_id
        self.metrics = metrics
        # Step 5's own timeout (30 s) plus a margin, after which the producer is
        # given up as wedged (see pipeline/transformer/watchdog.py).
        self.send_offsets_deadline_s = send_offsets_deadline_s
        # A producer replaced this many times in a row without a commit: stop, and say so.
        self.max_replacements = max_replacements
        self.dedup = SourceDedup()
        self._new_producer = new_producer
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._assigned: set[TP] = set()
        # The last committed offset (with its mark) of each owned partition, as known here.
        self._committed: dict[TP, TopicPartition] = {}
        self._replaced = 0  # producers replaced since the last commit

    @property
    def producer(self) -> Producer | None:
        """The transactional producer in use (None before :meth:`start` and after :meth:`close`)."""
        return self._producer

    @property
    def assigned(self) -> frozenset[TP]:
        """The partitions this member owns."""
        return frozenset(self._assigned)

    def start(self, consumer: Consumer) -> None:
        """Make the producer (fencing older ones of this transactional id); offsets go with ``consumer``.

        Raises:
            CdcflowError: transactions cannot be initialised.
        """
        self._consumer = consumer
        self._producer = self._init_producer()

    def rebind(self, consumer: Consumer) -> None:
        """Send offsets with ``consumer`` from now on (a new consumer; the producer is kept)."""
        self._consumer = consumer

    def probe(self) -> bool:
        """Is this transactional id still this instance's? Commit the committed offsets again.

        A transaction of the owned partitions' committed offsets and marks as
        they are (nothing changes) goes to the transaction coordinator first,
        which refuses a producer that a newer instance fenced. What the group
        coordinator then says of the offsets (a fenced member's are refused)
        does not matter: the producer was accepted. False when no committed
        offset is known to send (nothing assigned yet): ask again later.

        Raises:
            TransformerFenced: a newer instance took over this transactional id.
        """
        assert self._producer is not None and self._consumer is not None
        offsets = [self._committed[tp] for tp in sorted(self._assigned) if tp in self._committed]
        if not offsets:
            return False
        try:
            self._producer.begin_transaction()
            self._send_offsets(self._producer, self._consumer, offsets)
            self._commit_transaction()
        except CallHung as exc:
            # Wedged (watchdog.py), as librdkafka is on a group coordinator that left,
            # i.e. after the transaction coordinator accepted the producer. A new one
            # fences the wedged one.
            log.warning("checking the producer: %s; replacing it", exc)
            self._producer = None
            self._producer = self._init_producer()
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            self._stop_if_fenced(err, exc, f"transformer {self.transactional_id} was fenced")
            log.info("the producer is this instance's; the group refused its offsets: %s", err)
            if err.fatal():
                self._producer = self._init_producer()  # fences nobody but its own old self
            else:
                self._abort_transaction_quietly()
        return True

    def _send_offsets(
        self, producer: Producer, consumer: Consumer, offsets: list[TopicPartition]
    ) -> None:
        """Step 5, under its deadline (a call wedged on a gone coordinator raises CallHung)."""
        group = consumer.consumer_group_metadata()
        bounded(
            lambda: producer.send_offsets_to_transaction(offsets, group, 30),
            seconds=self.send_offsets_deadline_s,
            what="send_offsets_to_transaction",
        )

    def _abort_transaction_quietly(self) -> None:
        assert self._producer is not None
        try:
            self._producer.abort_transaction(60)
        except KafkaException as exc:
            log.warning("abort_transaction: %s", exc)

    def _init_producer(self) -> Producer:
        return init_transactions(self._new_producer())

    # ------------------------------------------------------------ the partitions

    def assign(self, committed: list[TopicPartition]) -> None:
        """Partitions assigned, at their committed offsets: their marks are rebuilt from those."""
        for tp in committed:
            self.dedup.restore((tp.topic, tp.partition), getattr(tp, "metadata", None))
            self._assigned.add((tp.topic, tp.partition))
            if tp.offset >= 0:  # as committed: offset and mark
                self._committed[(tp.topic, tp.partition)] = tp
        self.metrics.assigned.set(len(self._assigned))

    def revoke(self, partitions: list[TopicPartition]) -> None:
        """Partitions gone (revoked or lost): their marks go with them."""
        for tp in partitions:
            self.dedup.forget((tp.topic, tp.partition))
            self._assigned.discard((tp.topic, tp.partition))
            self._committed.pop((tp.topic, tp.partition), None)
        self.metrics.assigned.set(len(self._assigned))

    def rewind(self, first: dict[TP, int]) -> None:
        """Seek the partitions still owned back to ``first``: their records are consumed again."""
        assert self._consumer is not None
        for (topic, partition), offset in first.items():
            if (topic, partition) not in self._assigned:
                continue
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, exc)

    def drop(self, after: dict[TP, int], aborted: BatchResult | None = None) -> None:
        """Throw away batches processed and not committed; they are consumed again.

        ``after``: their first offsets. Partitions ``aborted`` (rewound already,
        to its own first offsets) touched are left where they are.
        """
        self.rewind(
            {tp: o for tp, o in after.items() if aborted is None or tp not in aborted.first}
        )
        self.dedup.rollback()

    # ------------------------------------------------------------ steps 3-6

    def commit(self, res: BatchResult) -> bool:
        """Steps 3-6. True when the batch is committed; False when it was aborted and rewound.

        Raises:
            TransformerFenced: a newer instance took over this transactional id.
            CdcflowError: the producer was replaced ``max_replacements`` times in a
                row without a commit.
        """
        assert self._producer is not None and self._consumer is not None
        started = time.monotonic()
        producer, consumer = self._producer, self._consumer
        try:
            producer.begin_transaction()  # 3
            for rec in res.out:  # 4
                self._produce(rec)
            offsets = [self._offset(tp, offset, res) for tp, offset in res.next_offsets.items()]
            self._send_offsets(producer, consumer, offsets)  # 5
            self._commit_transaction()  # 6
        except (CallHung, KafkaException) as exc:
            self._abort(res, exc)
            return False
        self._committed.update(((tp.topic, tp.partition), tp) for tp in offsets)
        if res.marks is not None:
            self.dedup.commit(res.marks)
        self._replaced = 0
        self._count(res, time.monotonic() - started)
        return True

    def _abort(self, res: BatchResult, exc: CallHung | KafkaException) -> None:
        """The abort path, whole: end the transaction, forget the batch's marks, rewind it.

        - a fence stops the run (:class:`TransformerFenced`): the batch is the
          newer instance's now, nothing is rewound;
        - an abortable error: ``abort_transaction``; should the abort itself
          fail fatally, as below;
        - a call that hung (the group coordinator's broker left and librdkafka
          waits for it for good, see watchdog.py) or a fatal error: a new
          producer with this transactional id fences this one, and its
          ``init_transactions`` aborts the open transaction.
        """
        if isinstance(exc, CallHung):
            self._replace_producer(res, str(exc))
        else:
            err: KafkaError = exc.args[0]
            self._stop_if_fenced(err, exc, f"transformer {self.transactional_id} was fenced")
            if err.fatal():
                self._replace_producer(res, f"fatal producer error {err}")
            else:
                log.warning(
                    "transaction aborted (%s); retrying the batch of %d records", err, res.records
                )
                self._count_abort()
                self._abort_transaction(res)
        self.dedup.rollback()
        self.rewind(res.first)

    def _abort_transaction(self, res: BatchResult) -> None:
        assert self._producer is not None
        try:
            self._producer.abort_transaction(60)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            self._stop_if_fenced(err, exc, "abort failed, fenced")
            if not err.fatal():
                log.warning("abort_transaction: %s", exc)
                return
            # e.g. INVALID_TXN_STATE after the transaction coordinator's broker
            # restarted: this producer cannot go on, but nothing took its place.
            self._replace_producer(res, f"abort failed fatally ({err})")

    def _stop_if_fenced(self, err: KafkaError, exc: KafkaException, what: str) -> None:
        if _fenced(err):
            self.metrics.transactions.labels("fenced").inc()
            raise TransformerFenced(f"{what}: {err}") from exc

    def _replace_producer(self, res: BatchResult, why: str) -> None:
        """Give up a producer that cannot go on; a new one with this transactional id fences it.

        Only for errors that are not a fence: a newer instance's fence stops
        this one (:class:`TransformerFenced`), never the other way round.

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
        self._count_abort()
        self._producer = None  # a wedged call's thread may still hold it
        self._producer = self._init_producer()

    def _offset(self, tp: TP, offset: int, res: BatchResult) -> TopicPartition:
        mark = self.dedup.metadata(tp, res.marks)
        if mark is None:
            return TopicPartition(tp[0], tp[1], offset)
        return TopicPartition(tp[0], tp[1], offset, metadata=mark)

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

    # ------------------------------------------------------------ counting

    def _count_abort(self) -> None:
        self.metrics.transactions.labels("aborted").inc()
        self.metrics.last_commit_ok = False

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

    def close(self) -> None:
        """Release the producer (idempotent)."""
        producer, self._producer = self._producer, None
        self._consumer = None
        if producer is None:
            return
        try:
            producer.flush(10)
        except KafkaException as exc:
            # A fenced producer is in a fatal state and refuses even a flush;
            # nothing of its open transaction may be written anyway.
            log.warning("closing the producer: %s", exc)
