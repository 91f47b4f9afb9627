"""Reading event topics by manual assignment: every partition, from a chosen start, to an end.

No consumer group: a replay, a projection or a rebuild decides for itself
where each partition starts (from the beginning, a timestamp through
``offsets_for_times``, explicit offsets, or positions kept in a database) and
assigns the partitions itself. Nothing is committed to Kafka; whoever needs
to remember a position keeps it (a projection, in the same database
transaction as its read model).

Reads are ``read_committed``, so events of aborted transformer transactions
are never seen. A partition's position is the offset of the next record to
read; the end-of-partition signal moves it past trailing transaction markers,
so a reader that is caught up sits exactly at the end offset and its lag reads 0.

A bounded read stops each partition at its end (exclusive): the end offset
given, the first record at or after an end timestamp, or the high watermark
when the read started. An unbounded read (``end=None``) follows the topics
and picks up partitions and topics created later.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Self, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.events import DomainEvent
from pipeline.replay.decode import EventDecoder, located
from pipeline.replay.errors import EventDecodeError, ReplayError, TopicNotFound
from pipeline.replay.positions import TP, EndAt, StartAt
from pipeline.serde import RegistryUnavailable
from pipeline.serde.backoff import delays, polling, retrying

__all__ = ["AssignedReader", "Delivered", "EventStream", "decode_batch", "decode_patiently"]

log = logging.getLogger("cdcflow.replay")

_OFFSET_END = -1  # what offsets_for_times answers when no record is at or after the time
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._WAIT_COORD,
    KafkaError.NOT_COORDINATOR,
}
T = TypeVar("T")


class Delivered(NamedTuple):
    """One decoded event and where it was read.

    A named tuple, not a frozen dataclass: a replay makes one per event, and a
    tuple is built in about a third of the time.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    event: DomainEvent

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)


def decode_batch(decoder: EventDecoder, msgs: Sequence[Message]) -> list[Delivered]:
    """Decode a batch of records; records of unknown types are left out when the decoder skips them.

    Raises:
        EventDecodeError: a record is not a decodable event (it names the record).
        RegistryUnavailable / RegistryError: a writer schema could not be fetched.
    """
    out: list[Delivered] = []
    decode = decoder.decode
    for msg in msgs:
        value = msg.value()
        try:
            event = decode(value)
        except EventDecodeError as exc:
            raise located(
                exc, msg.topic(), msg.partition(), msg.offset(), msg.key(), value
            ) from exc.__cause__
        if event is not None:
            # A record without an error always has its topic, partition and offset.
            where = cast(tuple[str, int, int], (msg.topic(), msg.partition(), msg.offset()))
            out.append(Delivered(*where, msg.timestamp()[1], msg.key(), event))
    return out


def decode_patiently(
    decoder: EventDecoder, msgs: Sequence[Message], should_stop: Callable[[], bool]
) -> list[Delivered] | None:
    """Decode a batch, waiting out registry outages; None when stopped while waiting.

    Raises:
        EventDecodeError: a record is not a decodable event.
    """

    def warn(exc: BaseException, delay: float) -> None:
        log.warning("%s; decoding the batch again in %.0fs", exc, delay)

    return retrying(
        lambda: decode_batch(decoder, msgs),
        RegistryUnavailable,
        wait=polling(should_stop),
        on_retry=warn,
    )


class AssignedReader:
    """A reader that owns one consumer while it is open, as a context manager.

    Entering a with-block calls :meth:`open`, where a subclass creates the
    consumer and assigns its partitions (manual assignment: no group
    membership to wait for); leaving it closes the consumer.
    """

    _consumer: Consumer | None = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    @property
    def consumer(self) -> Consumer:
        """The open consumer.

        Raises:
            ReplayError: the reader is not open.
        """
        if self._consumer is None:
            raise ReplayError(f"{type(self).__name__} is not open")
        return self._consumer


class EventStream(AssignedReader):
    """Manually assigned, read-committed reader of whole topics, in batches.

    Use as a context manager; :meth:`batches` yields the records of each
    batch (errors and end-of-partition signals already handled). After each
    batch, :attr:`positions` holds the next offset of every partition.
    ``end=None`` follows the topics instead of stopping at their ends.
    ``partitions(topic, count)`` narrows a topic to the partitions it returns.
    """

    poll_timeout_s: float = 0.5
    """How long one poll waits for records when none are fetched yet."""
    metadata_timeout_s: float = 15.0
    """How long a metadata or offsets request may take, transient errors retried."""
    refresh_s: float = 10.0
    """Following (``end=None``): how often the topics are asked for new partitions."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        topics: Sequence[str],
        *,
        start: StartAt | None = None,
        end: EndAt | None = EndAt(),  # noqa: B008 - frozen, shared safely
        batch_size: int = 5000,
        group_id: str | None = None,
        partitions: Callable[[str, int], Iterable[int]] | None = None,
    ) -> None:
        if not topics:
            raise ReplayError("no topics to read")
        self.topics = list(dict.fromkeys(topics))
        self.start = start or StartAt.beginning()
        self.end = end
        self.batch_size = batch_size
        self.select = partitions
        conf = dict(kafka_config)
        conf.update(
            {
                # Never joins: assign() only. librdkafka still wants a group id.
                "group.id": group_id or f"cdcflow-replay-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # A position below the log start (deleted by retention) must
                # stop the reader, not silently jump: skipping events would be
                # the one thing a replay may never do.
                "auto.offset.reset": "error",
            }
        )
        conf.setdefault("fetch.max.bytes", 64 * 1024 * 1024)
        conf.setdefault("max.partition.fetch.bytes", 8 * 1024 * 1024)
        self._conf = conf
        self.start_offsets: dict[TP, int] = {}
        self.end_offsets: dict[TP, int] = {}
        self.positions: dict[TP, int] = {}
        self._done: set[TP] = set()
        self._last_refresh = 0.0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Resolve every partition's start (and end) offsets and assign them.

        Raises:
            TopicNotFound: a topic does not exist (bounded reads; an unbounded
                read waits for it).
            ReplayError: the cluster did not answer.
        """
        self._consumer = Consumer(self._conf)
        self._assign_new(initial=True)

    # ------------------------------------------------------------------ offsets

    def _ask(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, tried again while the cluster answers with a transient error.

        A broker restart or a leader election makes metadata and offset
        requests fail for a few seconds; a replay should ride that out, not die.
        """
        deadline = time.monotonic() + self.metadata_timeout_s
        for delay in delays(first=0.2, cap=2.0):
            try:
                return call()
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                transient = isinstance(err, KafkaError) and (
                    err.retriable() or err.code() in _TRANSIENT
                )
                if not transient or time.monotonic() + delay > deadline:
                    raise ReplayError(f"{what}: {exc}") from exc
                log.info("%s: %s; asking again", what, err)
            time.sleep(delay)
        raise AssertionError("delays() never ends")

    def _partitions(self, topic: str) -> list[int] | None:
        md = self._ask(
            f"cannot read the metadata of {topic}",
            lambda: self.consumer.list_topics(topic, timeout=self.metadata_timeout_s),
        )
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None:
            return None
        return sorted(tmd.partitions)

    def watermarks(self, tp: TP) -> tuple[int, int]:
        """(low, high) offsets of a partition, asked of the broker (not cached).

        Raises:
            ReplayError: the broker did not answer (after retries of transient errors).
        """
        low, high = self._ask(
            f"cannot read the offsets of {tp[0]}[{tp[1]}]",
            lambda: self.consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=self.metadata_timeout_s, cached=False
            ),
        )
        return int(low), int(high)

    def _times(self, tps: list[TP], timestamp_ms: int) -> dict[TP, int]:
        """The first offset at or after ``timestamp_ms`` per partition; the end if none."""
        query = [TopicPartition(t, p, timestamp_ms) for t, p in tps]
        found = self._ask(
            "offsets_for_times failed",
            lambda: self.consumer.offsets_for_times(query, timeout=self.metadata_timeout_s),
        )
        out: dict[TP, int] = {}
        for tp in found:
            if tp.error is not None:
                raise ReplayError(
                    f"offsets_for_times failed for {tp.topic}[{tp.partition}]: {tp.error}"
                )
            key = (tp.topic, tp.partition)
            out[key] = self.watermarks(key)[1] if tp.offset == _OFFSET_END else tp.offset
        return out

    def _resolve_start(self, tps: list[TP], new_partitions: bool) -> dict[TP, int]:
        marks = {tp: self.watermarks(tp) for tp in tps}
        start = self.start
        explicit = {tp: start.offsets[tp] for tp in tps if tp in start.offsets}
        rest = [tp for tp in tps if tp not in explicit]
        # A partition that appears while following started empty after the
        # read began: it is read from its beginning whatever the start rule.
        by_time = (
            self._times(rest, start.timestamp_ms)
            if start.timestamp_ms is not None and rest and not new_partitions
            else {}
        )
        out: dict[TP, int] = {}
        for tp in tps:
            low, high = marks[tp]
            if tp in explicit:
                out[tp] = explicit[tp]
            elif tp in by_time:
                out[tp] = by_time[tp]
            elif start.default == "end" and not new_partitions:
                out[tp] = high
            else:
                out[tp] = low
        return out

    def _resolve_end(self, tps: list[TP]) -> dict[TP, int]:
        assert self.end is not None
        explicit = {tp: self.end.offsets[tp] for tp in tps if tp in self.end.offsets}
        rest = [tp for tp in tps if tp not in explicit]
        if self.end.timestamp_ms is not None and rest:
            explicit.update(self._times(rest, self.end.timestamp_ms))
        else:
            explicit.update({tp: self.watermarks(tp)[1] for tp in rest})
        return explicit

    def _assign_new(self, initial: bool = False) -> None:
        self._last_refresh = time.monotonic()
        new: list[TP] = []
        for topic in self.topics:
            parts = self._partitions(topic)
            if parts is None:
                if self.end is not None:
                    raise TopicNotFound(
                        f"topic {topic} does not exist",
                        hint="check the name with 'cdcflow events tail'",
                    )
                if initial:
                    log.warning("topic %s does not exist yet; waiting for it", topic)
                continue
            if self.select is not None:
                parts = sorted(set(parts) & set(self.select(topic, len(parts))))
            new.extend((topic, p) for p in parts if (topic, p) not in self.start_offsets)
        if not new:
            return
        starts = self._resolve_start(new, new_partitions=not initial)
        self.start_offsets.update(starts)
        self.positions.update(starts)
        if self.end is not None:
            ends = self._resolve_end(new)
            self.end_offsets.update(ends)
            self._done.update(tp for tp in new if starts[tp] >= ends[tp])
        assign = [TopicPartition(t, p, starts[(t, p)]) for t, p in new if (t, p) not in self._done]
        if assign:
            self.consumer.incremental_assign(assign)
        if not initial:
            log.info("now reading %s", ", ".join(f"{t}[{p}]" for t, p in new))

    # ------------------------------------------------------------------ reading

    @property
    def done(self) -> bool:
        """A bounded read has reached the end of every partition."""
        return self.end is not None and len(self._done) == len(self.start_offsets)

    def remaining(self) -> int | None:
        """Offsets left to read (bounded reads); None when following."""
        if self.end is None:
            return None
        return sum(
            max(0, end - self.positions.get(tp, end))
            for tp, end in self.end_offsets.items()
            if tp not in self._done
        )

    def finish(self, tp: TP) -> None:
        """Stop reading partition ``tp`` (bounded reads): it counts as done from now on."""
        if tp not in self._done:
            self._done.add(tp)
            self.consumer.incremental_unassign([TopicPartition(*tp)])

    def batches(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[list[Message]]:
        """Batches of records in partition order, until done (bounded) or ``should_stop()``.

        Yields empty batches while following and idle, so the caller gets to
        do its housekeeping (and to check its stop flag) regularly.

        Raises:
            ReplayError: a position fell below the log start (events were
                deleted by retention), or the consumer failed fatally.
        """
        consumer = self.consumer
        ends = self.end_offsets
        bounded = self.end is not None
        while not self.done and not should_stop():
            if not bounded and time.monotonic() - self._last_refresh >= self.refresh_s:
                self._assign_new()
            msgs = consumer.consume(self.batch_size, self.poll_timeout_s)
            out: list[Message] = []
            positions = self.positions
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    self._on_error(msg, err)
                    continue
                tp = cast(TP, (msg.topic(), msg.partition()))
                offset = cast(int, msg.offset())
                if bounded:
                    if tp in self._done:
                        continue
                    if offset >= ends[tp]:
                        self.finish(tp)
                        continue
                out.append(msg)
                positions[tp] = offset + 1
                if bounded and offset + 1 >= ends[tp]:
                    self.finish(tp)
            yield out

    def _on_error(self, msg: Message, err: KafkaError) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            tp = cast(TP, (msg.topic(), msg.partition()))
            if tp in self._done:
                return
            # The end signal's offset is past any trailing transaction markers:
            # every record before it has been delivered. A bounded read has
            # dropped the records at or after its end, so it moves no further
            # than its end, or the position would claim records never handed on.
            at = msg.offset()
            if at is None or at < 0:
                return
            if self.end is not None:
                at = min(at, self.end_offsets[tp])
            if at > self.positions.get(tp, -1):
                self.positions[tp] = at
            if self.end is not None and self.positions[tp] >= self.end_offsets[tp]:
                self.finish(tp)
            return
        where = f"{msg.topic()}[{msg.partition()}]" if msg.topic() else "consumer"
        if code in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
            raise ReplayError(
                f"{where}: the position is outside the log ({err.str()}); "
                "events before the log start "
                "were deleted by retention",
                hint="replay from the beginning of what is kept; older events are gone",
            )
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART and self.end is None:
            log.warning("%s: %s", where, err.str())
            return
        if err.fatal() or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ReplayError(f"{where}: {err.str()}")
        log.warning("%s: %s", where, err.str())
