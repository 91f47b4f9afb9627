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

import pytest

from pipeline.settings import load_settings
from pipeline.transformer import Transformer
from tests.unit.transformer_fakes import (
    TOPIC,
    FakeMessage,
    FakeSerializer,
    RecordingProducer,
    ScriptedConsumer,
    customer_msg,
    on_fakes,
    shop_transformer,
)


def _wired(
    batches: list[list[FakeMessage]], producer: RecordingProducer, overlap_from: int = 1
) -> tuple[Transformer, ScriptedConsumer, threading.Event]:
    """A transformer on fake clients; batches of ``overlap_from`` records or more overlap."""
    assert not shop_transformer(FakeSerializer()).cfg.overlap_commit  # off by default
    settings = load_settings(transformer={"overlap_commit": True})
    stop = threading.Event()
    consumer = ScriptedConsumer(batches, stop)  # assigns partitions 0 and 1 on its first poll
    t = on_fakes(consumer, lambda conf: producer, settings)
    assert t.overlap_from == t.cfg.batch_size // 2  # behind: a next batch half full or more
    t.overlap_from = overlap_from
    return t, consumer, stop


def _hw(metadata: str | None) -> int | None:
    return None if metadata is None else json.loads(metadata)["hw"][1]


# overlap_from=1: every next batch is processed beside the commit (the transformer is
# behind); 1000: none is (it keeps up: the held batch is committed first).
BOTH_PATHS = pytest.mark.parametrize("overlap_from", [1, 1000], ids=["behind", "keeping-up"])


@BOTH_PATHS
def test_each_transaction_carries_its_own_batch_marks_in_order(overlap_from: int) -> None:
    batches = [
        [customer_msg(0, lsn=100), customer_msg(1, lsn=200)],
        [customer_msg(2, lsn=300), customer_msg(3, lsn=200)],  # offset 3 repeats lsn 200: dropped
        [customer_msg(4, lsn=400)],
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
        [customer_msg(0, lsn=100)],
        [customer_msg(1, lsn=200), customer_msg(7, lsn=250, partition=1)],
        [customer_msg(2, lsn=300)],
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
    t, consumer, stop = _wired([[customer_msg(0, lsn=100)], [customer_msg(1, lsn=200)]], producer)
    revoked: list[int] = []

    def revoke_once() -> None:
        # The third poll (the first assigned): batch 1 is processed and held
        # (overlap mode), its commit next.
        if consumer.polls == 3 and not revoked:
            revoked.append(producer.commits)
            consumer.revoke([(TOPIC, 0)])

    consumer.on_consume = revoke_once
    t.run(stop)
    assert revoked == [0]  # the held batch was not committed yet when revocation came
    # Committed in the callback, with the held batch's own mark (commit LSN, LSN).
    assert producer.offsets[0] == [(0, 1, '{"hw":[92,100,1]}')]
    assert (TOPIC, 0) not in t.checkpoint.assigned

    lost = RecordingProducer()
    t2, consumer2, stop2 = _wired([[customer_msg(0, lsn=100)], [customer_msg(1, lsn=200)]], lost)

    def lose_once() -> None:
        if consumer2.polls == 3 and not lost.log:  # batch 1 held, as above
            consumer2.lose([(TOPIC, 0), (TOPIC, 1)])
            consumer2.batches.clear()  # nothing more comes from lost partitions

    consumer2.on_consume = lose_once
    t2.run(stop2)
    assert lost.log == []  # nothing of the lost partitions' batch was committed
    assert t2.dedup.mark((TOPIC, 0)) is None
