"""Aggregates folded from their events, and a repository that loads them from the log.

An aggregate's state is a pure function of its events::

    state = fold(apply, events)            # apply(state, event) -> state

``apply`` takes ``None`` as the state before the first event, returns the
new state (or the state unchanged for events it does not care about), and
does no I/O; it is tested without services. :class:`AggregateRepository`
reads the events: every event of one aggregate is on one partition (the
transformer keys them by aggregate id with Kafka's murmur2 partitioner), so
loading one aggregate reads one partition, not the topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from pipeline.events import DomainEvent
from pipeline.replay.decode import EventDecoder
from pipeline.replay.positions import EndAt
from pipeline.replay.stream import EventStream, decode_batch

__all__ = ["AggregateRepository", "Apply", "fold", "murmur2", "partition_for_key"]

S = TypeVar("S")
Apply = Callable[[S | None, DomainEvent], S | None]
"""``apply(state, event) -> state``: one step of a fold; ``None`` is "no aggregate yet"."""

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def fold(apply: Apply[S], events: Iterable[DomainEvent], state: S | None = None) -> S | None:
    """``state`` carried through ``apply`` for each event, in order."""
    for event in events:
        state = apply(state, event)
    return state


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``o.a.k.common.utils.Utils.murmur2``), as a signed 32-bit int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & ~3
    extra = length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a non-null key.

    Raises:
        ValueError: ``partitions`` is below 1.
    """
    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class AggregateRepository(Generic[S]):
    """Loads aggregates of one type by reading their events from the topic and folding them.

    ``load`` reads the one partition that holds the aggregate, up to that
    partition's end when it is called: the state of everything committed so
    far. For many aggregates at once, ``load_all`` reads the topic once.
    """

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        topic: str,
        decoder: EventDecoder,
        apply: Apply[S],
        *,
        batch_size: int = 5000,
    ) -> None:
        self.kafka_config = dict(kafka_config)
        self.topic = topic
        self.decoder = decoder
        self.apply = apply
        self.batch_size = batch_size

    def _stream(self, key: bytes | None = None) -> EventStream:
        def only_the_keys(topic: str, count: int) -> list[int]:
            return [partition_for_key(key, count)] if key is not None else list(range(count))

        return EventStream(
            self.kafka_config,
            [self.topic],
            end=EndAt(),
            batch_size=self.batch_size,
            partitions=only_the_keys,
        )

    def load(self, aggregate_id: str) -> S | None:
        """The aggregate's current state; ``None`` when it has no events.

        Raises:
            TopicNotFound: the topic does not exist.
            EventDecodeError: an event of the partition does not decode.
            ReplayError: the cluster did not answer.
        """
        key = aggregate_id.encode()
        state: S | None = None
        with self._stream(key) as stream:
            for batch in stream.batches():
                mine = [m for m in batch if m.key() == key]
                for delivered in decode_batch(self.decoder, mine):
                    state = self.apply(state, delivered.event)
        return state

    def load_all(self) -> dict[str, S]:
        """Every aggregate of the topic, by id (the record key).

        Raises:
            TopicNotFound: the topic does not exist.
            EventDecodeError: an event does not decode.
            ReplayError: the cluster did not answer.
        """
        states: dict[str, S] = {}
        with self._stream() as stream:
            for batch in stream.batches():
                for delivered in decode_batch(self.decoder, batch):
                    aggregate_id = delivered.key.decode() if delivered.key else ""
                    new = self.apply(states.get(aggregate_id), delivered.event)
                    if new is None:
                        states.pop(aggregate_id, None)
                    else:
                        states[aggregate_id] = new
        return states
