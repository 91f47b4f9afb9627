"""The commit overlapped with processing (transformer.overlap_commit, off by default), with fake clients.

Batch n+1 is processed while batch n's transaction commits. What must hold:
transactions begin and commit one at a time, in order; each transaction's
offsets carry the de-duplication marks of its own batch, never the next
one's; when a transaction aborts, the batch processed meanwhile is thrown
away and both are consumed again from the aborted batch's first offsets; a
batch processed but not committed is committed before its partitions are
revoked, and dropped when they are lost.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.settings import load_settings
from pipeline.transformer import Transformer
from tests.unit.test_transformer import FakeMessage, FakeSerializer, _msg, _transformer

TOPIC = "shop.public.customers"


class ScriptedConsumer:
    """Hands out the scripted batches, one per ``consume(1, ...)`` call plus its rest."""

    def __init__(self, batches: list[list[FakeMessage]], stop: threading.Event) -> None:
        self.batches = batches
        self.stop = stop
        self.current: list[FakeMessage] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.on_consume: Any = None

    def consume(self, num: int, timeout: float) -> list[FakeMessage]:
        if num == 1:
            if self.on_consume is not None:
                self.on_consume()
            if not self.batches:
                self.stop.set()
                return []
            self.current = self.batches.pop(0)
            first, self.current = self.current[:1], self.current[1:]
            return first
        out, self.current = self.current, []
        return out

    def consumer_group_metadata(self) -> object:
        return object()

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def position(self, tps: Any) -> list[TopicPartition]:
        return []

    def close(self) -> None:
        pass


class RecordingProducer:
    """Records the transactions; the commit number ``abort_on`` fails abortably."""

    def __init__(self, abort_on: int | None = None) -> None:
        self.abort_on = abort_on
        self.log: list[str] = []
        self.open = False
        self.produced: list[bytes] = []
        self.offsets: list[list[tuple[int, int, str | None]]] = []
        self.commits = 0

    def begin_transaction(self) -> None:
        assert not self.open, "a transaction began before the previous one ended"
        self.open = True
        self.log.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any = None) -> None:
        assert self.open
        self.produced.append(key)

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.offsets.append([(tp.partition, tp.offset, tp.metadata) for tp in offsets])

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1
        if self.commits == self.abort_on:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "abortable", txn_requires_abort=True)
            )
        self.open = False
        self.log.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.open = False
        self.log.append("abort")

    def flush(self, timeout: float) -> int:
        return 0


def _wired(
    batches: list[list[FakeMessage]], producer: RecordingProducer, overlap_from: int = 1
) -> tuple[Transformer, ScriptedConsumer, threading.Event]:
    """A transformer on fake clients; batches of ``overlap_from`` records or more overlap."""
    assert not _transformer(FakeSerializer()).cfg.overlap_commit  # off by default
    domain = "pipeline.domains.shop"
    settings = load_settings(transformer={"overlap_commit": True})
    t = Transformer(
        settings,
        load_domain(domain).rules,
        discover_events([domain]),
        FakeSerializer(),  # type: ignore[arg-type]
    )
    assert t._overlap_from == t.cfg.batch_size // 2  # behind: a next batch half full or more
    t._overlap_from = overlap_from
    stop = threading.Event()
    consumer = ScriptedConsumer(batches, stop)
    t._consumer, t._producer = consumer, producer  # type: ignore[assignment]
    t._assigned = {(TOPIC, 0), (TOPIC, 1)}
    return t, consumer, stop


def _hw(metadata: str | None) -> int | None:
    return None if metadata is None else json.loads(metadata)["hw"][1]


# overlap_from=1: every next batch is processed beside the commit (the transformer is
# behind); 1000: none is (it keeps up: the held batch is committed first).
BOTH_PATHS = pytest.mark.parametrize("overlap_from", [1, 1000], ids=["behind", "keeping-up"])


@BOTH_PATHS
def test_each_transaction_carries_its_own_batch_marks_in_order(overlap_from: int) -> None:
    batches = [
        [_msg(0, lsn=100), _msg(1, lsn=200)],
        [_msg(2, lsn=300), _msg(3, lsn=200)],  # offset 3 repeats lsn 200: dropped
        [_msg(4, lsn=400)],
    ]
    producer = RecordingProducer()
    t, _, stop = _wired(batches, producer, overlap_from)
    t.run(stop)
    assert producer.log == ["begin", "commit"] * 3
    assert [[(p, o, _hw(m)) for p, o, m in offs] for offs in producer.offsets] == [
        [(0, 2, 200)],
        [(0, 4, 300)],
        [(0, 5, 400)],
    ]
    assert len(producer.produced) == 4  # one event per change, the repeat dropped
    assert t.dedup.uncommitted == 0


@BOTH_PATHS
def test_an_aborted_batch_takes_the_one_processed_meanwhile_with_it(overlap_from: int) -> None:
    batches = [
        [_msg(0, lsn=100)],
        [_msg(1, lsn=200), _msg(7, lsn=250, partition=1)],
        [_msg(2, lsn=300)],
    ]
    producer = RecordingProducer(abort_on=1)  # the first batch's commit aborts
    t, consumer, stop = _wired(batches, producer, overlap_from)
    t.run(stop)
    # Batch 1 rewound to its first offset; batch 2's partition 1 to its own first.
    assert (TOPIC, 0, 0) in consumer.seeks and (TOPIC, 1, 7) in consumer.seeks
    assert (TOPIC, 0, 1) not in consumer.seeks
    assert producer.log[:2] == ["begin", "abort"]
    # Everything processed after the abort is de-duplicated from the committed
    # marks only: nothing of the thrown-away batch 2 leaks into a later mark.
    assert t.dedup.mark((TOPIC, 1)) is None
    assert t.dedup.uncommitted == 0


def test_a_held_batch_is_committed_before_revocation_and_dropped_when_lost() -> None:
    producer = RecordingProducer()
    t, consumer, stop = _wired([[_msg(0, lsn=100)], [_msg(1, lsn=200)]], producer)
    revoked: list[int] = []

    def revoke_once() -> None:
        if t._held is not None and not revoked:
            revoked.append(producer.commits)
            t._on_revoke(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]

    consumer.on_consume = revoke_once
    t.run(stop)
    assert revoked == [0]  # the held batch was not committed yet when revocation came
    # Committed in the callback, with the held batch's own mark (commit LSN, LSN).
    assert producer.offsets[0] == [(0, 1, '{"hw":[92,100,1]}')]
    assert (TOPIC, 0) not in t._assigned

    lost = RecordingProducer()
    t2, consumer2, stop2 = _wired([[_msg(0, lsn=100)], [_msg(1, lsn=200)]], lost)

    def lose_once() -> None:
        if t2._held is not None and not lost.log:
            t2._on_lost(consumer2, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])  # type: ignore[arg-type]
            consumer2.batches.clear()  # nothing more comes from lost partitions

    consumer2.on_consume = lose_once
    t2.run(stop2)
    assert lost.log == []  # nothing of the lost partitions' batch was committed
    assert t2.dedup.mark((TOPIC, 0)) is None
