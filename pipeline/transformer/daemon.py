"""The transformer daemon: CDC records in, domain events out, one Kafka transaction per batch.

Three rooms: :mod:`.batch` processes a batch (step 2, pure: no Kafka client),
:mod:`.checkpoint` commits it (steps 3-6, and the de-duplication marks), and
this module's :class:`Transformer` is the loop that coordinates them: it
polls, follows rebalances, stops on a signal, and overlaps a commit with the
next batch's processing. The commit protocol:

1. **consume** a batch: block (at most ``poll_timeout_s``) for the first
   record, then take only what is already fetched, up to ``batch_size``. A
   quiet pipeline commits small batches at once; a busy one, large batches.
2. **process** it without producing anything (:mod:`.batch`): decode, cut
   before images to what the table's replica identity sent (:mod:`.identities`),
   drop source repeats (:mod:`.dedup`), map, serialize. Each source record becomes its
   events, a counted skip, or one dead-letter record — all of its events or
   none. If the registry (or the source catalogue) does not answer, rewind to
   the batch's first offsets, wait and go back to 1: nothing is
   dead-lettered because of an outage (:mod:`pipeline.serde.backoff`).
3-6. **commit** it: begin a Kafka transaction, produce the output records,
   send the offsets (with the de-duplication marks) to the transaction,
   commit. An abortable error rewinds and retries the batch; a fence stops
   the run. Written out step by step, with every failure, in
   :mod:`.checkpoint`.

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

**Fenced instance id**: the group fences a static member whose
``group.instance.id`` a newer member took, and also, after the group
coordinator's broker was lost, a member that rejoined under a new member id
(librdkafka's own session timeout) and still holds its old one. A newer
instance fences the transactional producer before it joins, so the member
first commits its committed offsets again (:meth:`.Checkpoint.probe`, the
transaction coordinator refuses a fenced producer): a fenced producer stops
the run (exit 3); a producer still its own rejoins with a new consumer and
goes on.

**Rebalances inside a poll**: librdkafka runs the rebalance callbacks from
within ``consume()``, and step 1 is two calls (the first record, then the rest).
Records of a partition that was revoked, lost or assigned while step 1 ran
are not processed: some were fetched before the rebalance (the partition may
be another member's now, or restart from a committed offset before them, when
the batch held for commit was dropped), and processing them would commit a
partition that is not ours, or set its de-duplication mark past records not
yet turned into events, which would then be dropped as repeats. They are read
again: a partition still assigned is sought back to where its assignment
started (its committed offset).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pipeline.cdc import DecoderOptions
from pipeline.errors import (
    CdcflowError,
    InstanceFenced,
    RegistryUnavailable,
    SourceUnavailable,
)
from pipeline.events import DomainEvent
from pipeline.events.naming import event_topic
from pipeline.mapping import Rules
from pipeline.serde import EventSerializer
from pipeline.serde.backoff import retrying
from pipeline.settings import Settings
from pipeline.transformer.batch import BatchProcessor, BatchResult, first_offsets
from pipeline.transformer.checkpoint import Checkpoint, committed_offsets
from pipeline.transformer.clients import Clients, consumer_config, ensure_topics, producer_config
from pipeline.transformer.dedup import TP
from pipeline.transformer.identities import IdentityCatalog
from pipeline.transformer.metrics import Metrics

__all__ = ["Transformer"]

log = logging.getLogger("cdcflow.transformer")


class Transformer:
    """One member of the transformer consumer group: the loop (see the module doc).

    ``clients``: the Kafka client factories (default: the real clients).
    """

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
        clients: Clients | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.transformer
        self.event_types = list(event_types)
        self.topics = {et: event_topic(et) for et in self.event_types}
        self.serializer = serializer
        self.metrics = metrics or Metrics()
        self.poll_timeout_s = poll_timeout_s
        # Cuts before images to what the source sent; None: taken as decoded (tests).
        self.identities = identities
        self.clients = clients or Clients()
        self.transactional_id = f"{self.cfg.transactional_id}-{instance}"
        self.checkpoint = Checkpoint(
            lambda: self.clients.producer(producer_config(settings, self.transactional_id)),
            transactional_id=self.transactional_id,
            metrics=self.metrics,
        )
        self.dedup = self.checkpoint.dedup
        self.processor = BatchProcessor(
            rules,
            serializer,
            topics=self.topics,
            dead_letter_topic=self.cfg.dead_letter_topic,
            transformer=self.transactional_id,
            decoder=decoder,
            identities=identities,
            dedup=self.dedup,
        )
        self._consumer: Consumer | None = None
        # Partitions a rebalance callback touched during the poll in progress: where
        # each assigned one starts (its committed offset), None when it went.
        self._moved: dict[TP, int | None] = {}
        self._last_lag_check = 0.0
        # A batch processed whose transaction has not begun (overlap mode).
        self._held: BatchResult | None = None
        self._on_batch: Callable[[BatchResult], None] | None = None
        self._worker: ThreadPoolExecutor | None = None
        # Overlap only when the next batch is at least half full: the transformer is behind.
        self.overlap_from = max(1, self.cfg.batch_size // 2)
        # Rejoins after the group fenced this instance id (times), and whether the
        # next assignment checks the producer (see _rejoin).
        self._rejoins: list[float] = []
        self._probe = False

    # ------------------------------------------------------------------ set-up

    def open(self) -> None:
        """Create missing topics, connect, fence older instances of this transactional id, subscribe."""
        admin = self.clients.admin(self.settings.kafka.client_config())
        ensure_topics(admin, self.settings, [*self.topics.values(), self.cfg.dead_letter_topic])
        self.serializer.prepare((et, self.topics[et]) for et in self.event_types)
        consumer = self.clients.consumer(consumer_config(self.settings, self.transactional_id))
        try:
            self.checkpoint.start(consumer)
        except BaseException:
            consumer.close()
            raise
        self._subscribe(consumer)

    def _subscribe(self, consumer: Consumer) -> None:
        self._consumer = consumer
        consumer.subscribe(
            [self.cfg.topics],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("transformer %s subscribed to %s", self.transactional_id, self.cfg.topics)

    def _rejoin(self, fenced: InstanceFenced) -> None:
        """The group fenced this instance id: check the producer, then rejoin with a new consumer.

        A newer instance with this id has fenced the producer before joining:
        :meth:`Checkpoint.probe` stops this one then (exit 3), before it rejoins
        (or at its first assignment, when it knows no committed offset to check
        with). Otherwise the fence was the group fencing this member's own old
        member id (after its coordinator's broker was lost): it rejoins and goes
        on. A fourth rejoin within a minute stops it as fenced.
        """
        now = time.monotonic()
        self._rejoins = [t for t in self._rejoins if now - t < 60] + [now]
        if len(self._rejoins) > 3:
            self.metrics.transactions.labels("fenced").inc()
            raise fenced
        log.warning("%s; checking the producer", fenced)
        # A newer instance stops this one here (TransformerFenced); else the next
        # assignment checks, when no committed offset is known to check with.
        self._probe = not self.checkpoint.probe()
        log.warning(
            "rejoining the group with a new consumer (rejoin %d in a minute)", len(self._rejoins)
        )
        held, self._held = self._held, None
        if held is not None:
            self.checkpoint.drop(after={})  # read again from the committed offsets
        self._revoke([TopicPartition(t, p) for t, p in self.checkpoint.assigned])
        old, self._consumer = self._consumer, None
        if old is not None:
            try:
                old.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the fenced consumer: %s", exc)
        consumer = self.clients.consumer(consumer_config(self.settings, self.transactional_id))
        self.checkpoint.rebind(consumer)
        self._subscribe(consumer)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Each partition's de-duplication mark is rebuilt from its committed offset's metadata.
        committed = committed_offsets(consumer, partitions)
        self.checkpoint.assign(committed)
        if self._probe:  # the first assignment after a rejoin: is the producer still ours?
            self._probe = not self.checkpoint.probe()
        for tp in committed:
            self._moved[(tp.topic, tp.partition)] = (
                tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            )
        log.info(
            "assigned %s",
            ", ".join(f"{p.topic}[{p.partition}]@{p.offset}" for p in committed) or "nothing",
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A batch processed but not committed is committed while the partitions are
        # still ours (if that fails, it is rewound and the next owner redoes it).
        held, self._held = self._held, None
        if held is not None:
            log.info("committing the processed batch of %d records before revocation", held.records)
            self._commit_and_report(held)
        self._revoke(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The partitions are someone else's already: a batch not committed is dropped.
        held, self._held = self._held, None
        if held is not None:
            log.warning("partitions lost: dropping the processed batch of %d records", held.records)
            self.checkpoint.drop(after={})  # nothing to rewind: the partitions are not ours
        self._revoke(partitions)

    def _revoke(self, partitions: list[TopicPartition]) -> None:
        self.checkpoint.revoke(partitions)
        self._moved.update(((p.topic, p.partition), None) for p in partitions)
        self.metrics.forget_partitions((p.topic, p.partition) for p in partitions)
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
                try:
                    msgs = self.consume(wait=self._held is None)
                except InstanceFenced as fenced:
                    self._rejoin(fenced)
                    continue
                held, self._held = self._held, None  # (a revocation in consume committed it)
                if held is not None and len(msgs) >= self.overlap_from:
                    self._overlapped(held, msgs, stop)
                    msgs = []
                elif held is not None and not self._commit_and_report(held):
                    # (Keeping up: the next batch is small, and committing first is
                    # faster than sharing the interpreter with it.) ``held`` aborted
                    # and was rewound: the records consumed after it go too.
                    self.checkpoint.drop(first_offsets(msgs), held)
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
        self.checkpoint.drop(following.first if following is not None else {}, held)

    def _commit_and_report(self, res: BatchResult) -> bool:
        ok = self.commit(res)
        if ok and self._on_batch is not None:
            self._on_batch(res)
        return ok

    def consume(self, wait: bool = True) -> list[Message]:
        """Step 1 (``wait=False``: only records fetched already).

        Raises:
            TransformerFenced: another member took this group instance id.
            CdcflowError: another fatal consumer error.
        """
        assert self._consumer is not None
        self._moved = {}
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
                self._consumer_error(err)
        return self._after_rebalance(msgs) if self._moved else msgs

    def _after_rebalance(self, msgs: list[Message]) -> list[Message]:
        """Leave out the records of partitions moved during the poll; read them again (module doc)."""
        moved, self._moved = self._moved, {}
        kept = [m for m in msgs if (m.topic(), m.partition()) not in moved]
        if len(kept) == len(msgs):
            return msgs
        again = {
            tp: start
            for tp, start in moved.items()
            if start is not None and any((m.topic(), m.partition()) == tp for m in msgs)
        }
        log.info(
            "a rebalance came during the poll: %d record(s) of moved partitions left out, "
            "read again from %s",
            len(msgs) - len(kept),
            ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(again.items())) or "their new owners",
        )
        self.checkpoint.rewind(again)
        return kept

    def _consumer_error(self, err: KafkaError) -> None:
        # A fatal consumer error reaches a message as code _FATAL, whose
        # fatal() is False: librdkafka raises it when another member took
        # this group.instance.id, and this consumer will never fetch again.
        if err.code() == KafkaError._FATAL and "fenced" in err.str().lower():
            # Counted as a fence once it is one: the producer check, or too many rejoins.
            raise InstanceFenced(
                f"transformer {self.transactional_id} was fenced by a newer member "
                f"with the same instance: {err}"
            )
        if err.fatal() or err.code() == KafkaError._FATAL:
            raise CdcflowError(f"fatal consumer error: {err}")
        log.warning("consumer error: %s", err)

    def process_with_retry(self, msgs: list[Message], stop: threading.Event) -> BatchResult | None:
        """Step 2, waiting out registry and source outages. None when stopped while waiting."""

        def waiting(exc: BaseException, delay: float) -> None:
            log.warning("%s; retrying the batch of %d records in %.0fs", exc, len(msgs), delay)

        res = retrying(
            lambda: self.process(msgs),
            (RegistryUnavailable, SourceUnavailable),
            wait=stop.wait,
            on_retry=waiting,
        )
        if res is None:
            self.checkpoint.rewind(first_offsets(msgs))
        return res

    def process(self, msgs: list[Message]) -> BatchResult:
        """Step 2 (:class:`~pipeline.transformer.batch.BatchProcessor`)."""
        return self.processor.process(msgs)

    def commit(self, res: BatchResult) -> bool:
        """Steps 3-6 (:class:`~pipeline.transformer.checkpoint.Checkpoint`): True when committed."""
        return self.checkpoint.commit(res)

    def _update_lag(self) -> None:
        now = time.monotonic()
        if self._consumer is None or now - self._last_lag_check < 5:
            return
        self._last_lag_check = now
        try:
            positions = self._consumer.position(
                [TopicPartition(t, p) for t, p in self.checkpoint.assigned]
            )
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
        self.checkpoint.close()
