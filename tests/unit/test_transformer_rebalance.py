"""A rebalance that comes while the transformer polls (fake clients).

librdkafka runs the rebalance callbacks from within ``consume()``, and the
transformer's poll is two calls: the first record, then the rest. A record
the first call returned may have been fetched before a rebalance the second
call ran. What must hold: such a record is not processed — its partition may
be another member's now (committing it would duplicate the new owner's
events), or restart from a committed offset before it (its mark would make
the records in between look like repeats, and they would be lost). Records of
partitions a rebalance did not touch are processed as usual; a partition still
assigned is read again from where its assignment started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING

from pipeline.settings import load_settings
from pipeline.transformer import Transformer
from tests.unit.transformer_fakes import (
    TOPIC,
    FakeMessage,
    RecordingProducer,
    ScriptedConsumer,
    customer_msg,
    on_fakes,
)


class RebalancingConsumer(ScriptedConsumer):
    """A :class:`ScriptedConsumer` whose poll number N runs a rebalance inside its second call.

    ``during_rest[N] = (rebalance, moved)``: after ``rebalance()`` the records
    of the ``moved`` partitions not handed out yet are gone, as librdkafka
    drops what it fetched for them before the rebalance. Poll 1 assigns
    partitions 0 and 1; the batches come from poll 2 on.
    """

    def __init__(self, batches: list[list[FakeMessage]], stop: threading.Event) -> None:
        super().__init__(batches, stop)
        self.during_rest: dict[int, tuple[Callable[[], None], list[tuple[str, int]]]] = {}
        self.on_rest = self._rebalance

    def _rebalance(self) -> None:
        if self.polls in self.during_rest:
            rebalance, moved = self.during_rest.pop(self.polls)
            rebalance()
            self.current = [m for m in self.current if (m.topic(), m.partition()) not in moved]

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        for tp in partitions:
            tp.offset = -1001  # nothing committed yet: the partitions start at the beginning
        return partitions


class CommittedProducer(RecordingProducer):
    """Also keeps what each committed transaction carried (aborted ones leave nothing)."""

    def __init__(self, abort_on: int | None = None) -> None:
        super().__init__(abort_on)
        self.visible: list[bytes] = []
        self._txn: list[bytes] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any = None) -> None:
        super().produce(topic, value, key, headers)
        self._txn.append(key)

    def commit_transaction(self, timeout: float) -> None:
        super().commit_transaction(timeout)
        self.visible.extend(self._txn)
        self._txn = []

    def abort_transaction(self, timeout: float) -> None:
        super().abort_transaction(timeout)
        self._txn = []


def _wired(
    batches: list[list[FakeMessage]], producer: RecordingProducer, overlap: bool
) -> tuple[Transformer, RebalancingConsumer, threading.Event]:
    stop = threading.Event()
    consumer = RebalancingConsumer(batches, stop)
    settings = load_settings(transformer={"overlap_commit": overlap})
    t = on_fakes(consumer, lambda conf: producer, settings)
    t.overlap_from = 1
    return t, consumer, stop


def _customer(offset: int) -> FakeMessage:
    # One customer per change: each committed event's key names its change.
    return customer_msg(offset, lsn=100 * (offset + 1), id=offset + 1)


def _keys(producer: CommittedProducer) -> list[int]:
    return sorted(int(key) for key in producer.visible)


def test_a_record_fetched_before_the_held_batch_was_dropped_is_not_processed() -> None:
    # Batch 1 is held (overlap); the next poll's first record is fetched; then the
    # rebalance: batch 1's commit in the revocation callback aborts, the partition
    # comes back at its committed offset 0, and records 0-3 are fetched again.
    batches = [
        [_customer(0), _customer(1)],
        [_customer(2), _customer(3)],
        [_customer(0), _customer(1), _customer(2), _customer(3)],
    ]
    producer = CommittedProducer(abort_on=1)
    t, consumer, stop = _wired(batches, producer, overlap=True)

    def rebalance() -> None:
        consumer.revoke([(TOPIC, 0), (TOPIC, 1)])
        consumer.assign([(TOPIC, 0), (TOPIC, 1)])

    consumer.during_rest[3] = (rebalance, [(TOPIC, 0), (TOPIC, 1)])
    t.run(stop)
    assert producer.log[:2] == ["begin", "abort"]  # batch 1, in the revocation callback
    # Every change's event once; before, record 2's mark made 0 and 1 look like repeats.
    assert _keys(producer) == [1, 2, 3, 4]
    # [0] is read again from where its new assignment starts (nothing committed: the beginning).
    assert consumer.seeks[-1] == (TOPIC, 0, OFFSET_BEGINNING)
    assert producer.offsets[-1] == [(0, 4, '{"hw":[392,400,1]}')]


@pytest.mark.parametrize("overlap", [False, True], ids=["serial", "overlapped"])
def test_a_record_of_a_partition_revoked_during_the_poll_is_left_to_its_new_owner(
    overlap: bool,
) -> None:
    batches = [
        [_customer(0)],
        [_customer(1), customer_msg(5, lsn=900, partition=1, id=50)],
    ]
    producer = CommittedProducer()
    t, consumer, stop = _wired(batches, producer, overlap)
    # [0] goes to another member during the second poll; [1] stays.
    consumer.during_rest[3] = (lambda: consumer.revoke([(TOPIC, 0)]), [(TOPIC, 0)])
    t.run(stop)
    assert _keys(producer) == [1, 50]  # record 1 of [0] is the new owner's to turn into events
    assert all(p != 0 for offsets in producer.offsets[1:] for p, _, _ in offsets)
    assert (TOPIC, 0) not in t.checkpoint.assigned


def test_records_of_partitions_no_rebalance_touched_are_processed() -> None:
    batches = [[_customer(0)], [customer_msg(5, lsn=900, partition=1, id=50), _customer(1)]]
    producer = CommittedProducer()
    t, consumer, stop = _wired(batches, producer, overlap=False)
    consumer.during_rest[3] = (lambda: None, [])  # a poll without a rebalance
    t.run(stop)
    assert _keys(producer) == [1, 2, 50]
    assert consumer.seeks == []
