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

from pipeline.errors import CdcflowError
from pipeline.transformer import BatchResult, TransformerFenced
from tests.unit.test_transformer import FakeSerializer, _msg, _transformer
from tests.unit.test_transformer_overlap import TOPIC, RecordingProducer, ScriptedConsumer

FENCED = "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id"


class ErrorMessage:
    def __init__(self, error: KafkaError) -> None:
        self._error = error

    def error(self) -> KafkaError:
        return self._error


class OneBatchConsumer:
    def __init__(self, *msgs: Any) -> None:
        self.msgs = list(msgs)

    def consume(self, num: int, timeout: float) -> list[Any]:
        out, self.msgs = self.msgs[:num], self.msgs[num:]
        return out


def test_a_fenced_group_instance_stops_the_transformer_as_fenced() -> None:
    t = _transformer(FakeSerializer())
    t._consumer = OneBatchConsumer(ErrorMessage(KafkaError(KafkaError._FATAL, FENCED)))  # type: ignore[assignment]
    with pytest.raises(TransformerFenced, match="same instance"):
        t.consume()
    assert t.metrics.totals()["transactions"] == {"fenced": 1.0}


def test_another_fatal_consumer_error_stops_it_as_an_error() -> None:
    t = _transformer(FakeSerializer())
    t._consumer = OneBatchConsumer(ErrorMessage(KafkaError(KafkaError._FATAL, "something else")))  # type: ignore[assignment]
    with pytest.raises(CdcflowError, match="fatal consumer error") as caught:
        t.consume()
    assert not isinstance(caught.value, TransformerFenced)


def test_a_transient_consumer_error_is_only_logged() -> None:
    t = _transformer(FakeSerializer())
    err = KafkaError(KafkaError._TRANSPORT, "broker down")
    t._consumer = OneBatchConsumer(ErrorMessage(err))  # type: ignore[assignment]
    assert t.consume() == []


class FencedProducer(RecordingProducer):
    """A producer whose transactional id a newer instance took over: fatal from the commit on."""

    def commit_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))

    def flush(self, timeout: float) -> int:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))


def test_a_fenced_commit_stops_the_run_as_fenced_and_closing_does_not_hide_it() -> None:
    t = _transformer(FakeSerializer())
    stop = threading.Event()
    producer = FencedProducer()
    t._consumer = ScriptedConsumer([[_msg(0, lsn=100), _msg(1, lsn=200)]], stop)  # type: ignore[assignment]
    t._producer = producer  # type: ignore[assignment]
    t._assigned = {(TOPIC, 0)}
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
    assert t._producer is None and t._consumer is None  # closed all the same


# -- a producer wedged in send_offsets_to_transaction (librdkafka #5511)


class WedgedProducer:
    """Begins and produces; never returns from send_offsets_to_transaction."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = False

    def begin_transaction(self) -> None:
        pass

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.release.wait(30)
        self.returned = True


class FreshProducer:
    made: list[FreshProducer] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.initialised = False
        FreshProducer.made.append(self)

    def init_transactions(self, timeout: float) -> None:
        self.initialised = True


class GroupConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def consumer_group_metadata(self) -> object:
        return object()

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def test_a_producer_wedged_in_send_offsets_is_replaced_and_the_batch_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = _transformer(FakeSerializer())
    wedged, consumer = WedgedProducer(), GroupConsumer()
    t._producer, t._consumer = wedged, consumer  # type: ignore[assignment]
    t._assigned = {("shop.public.customers", 0)}
    t.send_offsets_deadline_s = 0.2
    monkeypatch.setattr("pipeline.transformer.daemon.Producer", FreshProducer)
    res = BatchResult()
    res.first[("shop.public.customers", 0)] = 40
    res.next_offsets[("shop.public.customers", 0)] = 45
    assert t.commit(res) is False  # not committed: retried from its first offset
    assert not wedged.returned, "commit() waited for the wedged call instead of its deadline"
    fresh = FreshProducer.made[-1]
    assert t._producer is fresh and fresh.initialised  # its init fences the wedged one
    assert fresh.conf["transactional.id"] == t.transactional_id
    assert consumer.seeks == [("shop.public.customers", 0, 40)]
    assert t.metrics.totals()["transactions"] == {"aborted": 1.0}
    wedged.release.set()
