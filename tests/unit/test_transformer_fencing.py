"""A transformer whose group instance was taken over stops as fenced (exit 3), not as a zombie.

librdkafka hands the consumer's fatal error to the application as a message
whose error code is ``_FATAL`` and whose ``fatal()`` is False; the consumer
never fetches again. A process that only logged it would sit idle forever
while its partitions are processed by the newer member.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.errors import CdcflowError
from pipeline.transformer import TransformerFenced
from tests.unit.test_transformer import FakeSerializer, _transformer

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


class FencedProducer:
    def flush(self, timeout: float) -> int:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance"))


def test_closing_a_fenced_producer_does_not_hide_the_fence() -> None:
    t = _transformer(FakeSerializer())
    t._producer = FencedProducer()  # type: ignore[assignment]
    t.close()  # the flush's fatal error is logged; TransformerFenced stays the reason to exit
    assert t._producer is None
