"""Fenced and wedged transformers: a taken-over instance stops as fenced (exit 3), a wedged
producer is replaced.

librdkafka hands the consumer's fatal error to the application as a message
whose error code is ``_FATAL`` and whose ``fatal()`` is False; the consumer
never fetches again. A process that only logged it would sit idle forever
while its partitions are processed by the newer member.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.errors import CdcflowError, InstanceFenced, TransformerFenced
from pipeline.transformer import BatchResult, Clients, Transformer
from tests.unit.transformer_fakes import (
    TOPIC,
    FakeConsumer,
    FreshProducer,
    RecordingProducer,
    ScriptedConsumer,
    committing,
    customer_msg,
    on_fakes,
)

FENCED = "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id"


class ErrorMessage:
    def __init__(self, error: KafkaError) -> None:
        self._error = error

    def error(self) -> KafkaError:
        return self._error


class OneBatchConsumer(FakeConsumer):
    def __init__(self, *msgs: Any) -> None:
        super().__init__()
        self.msgs = list(msgs)

    def consume(self, num: int, timeout: float) -> list[Any]:
        out, self.msgs = self.msgs[:num], self.msgs[num:]
        return out


def _consuming(*msgs: Any) -> Transformer:
    return on_fakes(OneBatchConsumer(*msgs), RecordingProducer)


def test_a_fenced_group_instance_stops_the_transformer_as_fenced() -> None:
    t = _consuming(ErrorMessage(KafkaError(KafkaError._FATAL, FENCED)))
    with pytest.raises(InstanceFenced, match="same instance"):
        t.consume()
    # Not counted yet: the run checks the producer first (see the tests below).
    assert t.metrics.totals()["transactions"] == {}


def test_another_fatal_consumer_error_stops_it_as_an_error() -> None:
    t = _consuming(ErrorMessage(KafkaError(KafkaError._FATAL, "something else")))
    with pytest.raises(CdcflowError, match="fatal consumer error") as caught:
        t.consume()
    assert not isinstance(caught.value, TransformerFenced)


def test_a_transient_consumer_error_is_only_logged() -> None:
    t = _consuming(ErrorMessage(KafkaError(KafkaError._TRANSPORT, "broker down")))
    assert t.consume() == []


class FencedProducer(RecordingProducer):
    """A producer whose transactional id a newer instance took over: fatal from the commit on."""

    def commit_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))

    def flush(self, timeout: float) -> int:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))


def test_a_fenced_commit_stops_the_run_as_fenced_and_closing_does_not_hide_it() -> None:
    stop = threading.Event()
    producer = FencedProducer()
    batch = [customer_msg(0, lsn=100), customer_msg(1, lsn=200)]
    consumer = ScriptedConsumer([batch], stop, partitions=[(TOPIC, 0)])
    t = on_fakes(consumer, lambda conf: producer)
    # run() closes the clients on its way out; the producer's flush fails there too,
    # and the fence must stay the reason the run ends.
    with pytest.raises(TransformerFenced, match=r"was fenced: .*fenced by a newer instance"):
        t.run(stop)
    assert not stop.is_set(), "the run ended on the fence, not for want of records"
    # The batch was produced in a transaction that never committed nor aborted:
    # the newer instance owns it now, and its offsets were never committed here.
    assert producer.log == ["begin"]
    assert len(producer.offsets) == 1 and len(producer.produced) == 2
    assert t.metrics.totals()["transactions"] == {"fenced": 1.0}
    assert sum(t.metrics.totals()["produced"].values()) == 0
    assert t.checkpoint.producer is None and consumer.closed  # closed all the same


# -- a producer wedged in send_offsets_to_transaction (librdkafka #5511)


class WedgedProducer:
    """Begins and produces; never returns from send_offsets_to_transaction."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = False

    def init_transactions(self, timeout: float) -> None:
        pass

    def begin_transaction(self) -> None:
        pass

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.release.wait(30)
        self.returned = True


def test_a_producer_wedged_in_send_offsets_is_replaced_and_the_batch_retried() -> None:
    wedged = WedgedProducer()
    t, consumer = committing(wedged)
    t.checkpoint.send_offsets_deadline_s = 0.2
    res = BatchResult()
    res.first[("shop.public.customers", 0)] = 40
    res.next_offsets[("shop.public.customers", 0)] = 45
    assert t.commit(res) is False  # not committed: retried from its first offset
    assert not wedged.returned, "commit() waited for the wedged call instead of its deadline"
    fresh = FreshProducer.made[-1]
    assert t.checkpoint.producer is fresh and fresh.initialised  # its init fences the wedged one
    assert fresh.conf["transactional.id"] == t.transactional_id
    assert consumer.seeks == [("shop.public.customers", 0, 40)]
    assert t.metrics.totals()["transactions"] == {"aborted": 1.0}
    wedged.release.set()


# -- the group fences this member's own instance id (after its coordinator's broker was lost)


class FencedOnce(ScriptedConsumer):
    """Hands out its batches, then the fatal "static consumer fenced" error, then nothing."""

    def consume(self, num: int, timeout: float) -> list[Any]:
        if num == 1 and not self.batches and self.polls >= 1:
            return [ErrorMessage(KafkaError(KafkaError._FATAL, FENCED))]
        return super().consume(num, timeout)


class CommittedAt(ScriptedConsumer):
    """A consumer whose partitions have committed offsets (with marks) to probe with."""

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        mark = '{"hw":[192,200,1]}'
        return [TopicPartition(tp.topic, tp.partition, 2, metadata=mark) for tp in partitions]


class ProbedProducer(RecordingProducer):
    """``fenced``: a newer instance took the transactional id (from the probe on)."""

    def __init__(self, fenced: bool = False) -> None:
        super().__init__()
        self.fenced = fenced

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        if self.fenced and len(self.offsets) >= 1:
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))
        super().send_offsets_to_transaction(offsets, group, timeout)


def _fenced_then_rejoined(
    producer: ProbedProducer, then: list[list[Any]]
) -> tuple[Transformer, list[Any], threading.Event]:
    stop = threading.Event()
    first = FencedOnce([[customer_msg(0, lsn=100), customer_msg(1, lsn=200)]], stop, [(TOPIC, 0)])
    second = CommittedAt(then, stop, [(TOPIC, 0)])
    made: list[Any] = []

    def consumers(conf: dict[str, Any]) -> Any:
        made.append(first if not made else second)
        return made[-1]

    t = on_fakes(first, lambda conf: producer, open_=False)
    t.clients = Clients(consumer=consumers, producer=lambda conf: producer, admin=t.clients.admin)
    t.open()
    return t, made, stop


def test_the_group_fencing_the_member_itself_is_rejoined_when_the_producer_is_still_ours() -> None:
    producer = ProbedProducer()
    t, made, stop = _fenced_then_rejoined(producer, [[customer_msg(2, lsn=300)]])
    t.run(stop)
    assert len(made) == 2 and made[0].closed  # a new consumer joined in the fenced one's place
    # Batch 1, the probe (the committed offset and mark again, nothing else), batch 2.
    assert producer.offsets == [
        [(0, 2, '{"hw":[192,200,1]}')],
        [(0, 2, '{"hw":[192,200,1]}')],
        [(0, 3, '{"hw":[292,300,1]}')],
    ]
    assert producer.log == ["begin", "commit"] * 3 and len(producer.produced) == 3


def test_a_newer_instance_fences_the_producer_and_the_probe_stops_the_run() -> None:
    producer = ProbedProducer(fenced=True)
    t, _, stop = _fenced_then_rejoined(producer, [[customer_msg(2, lsn=300)]])
    with pytest.raises(TransformerFenced, match="was fenced") as raised:
        t.run(stop)
    assert raised.value.exit_code == 3
    assert t.metrics.totals()["transactions"]["fenced"] == 1  # one fence, counted once
    assert len(producer.produced) == 2  # batch 1 only: batch 2 was never processed


def test_a_member_fenced_again_and_again_stops_as_fenced() -> None:
    stop = threading.Event()
    t = on_fakes(FakeConsumer(), RecordingProducer)
    fenced = InstanceFenced("fenced by a newer member with the same instance")
    for _ in range(3):
        t._rejoin(fenced)
    with pytest.raises(InstanceFenced):
        t._rejoin(fenced)
    assert not stop.is_set()
    assert t.metrics.totals()["transactions"] == {"fenced": 1.0}


def test_without_a_committed_offset_known_the_producer_is_checked_at_the_next_assignment() -> None:
    stop = threading.Event()
    producer = ProbedProducer()
    first = FencedOnce([], stop, [(TOPIC, 0)])  # fenced before it committed anything
    second = CommittedAt([[customer_msg(2, lsn=300)]], stop, [(TOPIC, 0)])
    consumers = iter([first, second])
    t = on_fakes(first, lambda conf: producer, open_=False)
    t.clients = Clients(
        consumer=lambda conf: next(consumers), producer=lambda conf: producer, admin=t.clients.admin
    )
    t.open()
    t.run(stop)
    # The check at the new consumer's first assignment, then the batch.
    assert producer.offsets == [[(0, 2, '{"hw":[192,200,1]}')], [(0, 3, '{"hw":[292,300,1]}')]]
