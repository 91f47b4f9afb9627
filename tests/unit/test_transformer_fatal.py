"""A producer that fails fatally without being fenced is replaced; a fenced one stops the run.

After the transaction coordinator's broker restarts, ``abort_transaction`` can
fail with a fatal ``INVALID_TXN_STATE``: this producer cannot go on, but no
newer instance took its transactional id. The transformer replaces it (the new
producer's ``init_transactions`` aborts what was open), rewinds the batch and
retries it. A fence (``_FENCED``, ``PRODUCER_FENCED``, ``INVALID_PRODUCER_EPOCH``)
still stops it with exit code 3, and a producer replaced again and again without
a commit in between stops it as an error.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.errors import CdcflowError, TransformerFenced
from pipeline.transformer import BatchResult, Transformer
from tests.unit.transformer_fakes import (
    FakeConsumer,
    FreshProducer,
    RecordingProducer,
    committing,
    first_then,
    on_fakes,
)

TP = ("shop.public.customers", 0)


def _fatal(code: int, text: str) -> KafkaException:
    return KafkaException(KafkaError(code, text, fatal=True))


class AbortFailsProducer(RecordingProducer):
    """The commit fails abortably; then the abort fails with ``error``."""

    def __init__(self, error: KafkaException) -> None:
        super().__init__(abort_on=1)
        self.error = error

    def abort_transaction(self, timeout: float) -> None:
        raise self.error


class FatalCommitProducer(RecordingProducer):
    def commit_transaction(self, timeout: float) -> None:
        raise _fatal(KafkaError.INVALID_TXN_STATE, "coordinator lost the transaction")


def _batch() -> BatchResult:
    res = BatchResult()
    res.first[TP] = 40
    res.next_offsets[TP] = 45
    return res


def _wired(producer: Any) -> tuple[Transformer, FakeConsumer]:
    return committing(producer, TP)


def test_a_fatal_abort_that_is_no_fence_replaces_the_producer_and_retries() -> None:
    old = AbortFailsProducer(_fatal(KafkaError.INVALID_TXN_STATE, "invalid txn state"))
    t, consumer = _wired(old)
    assert t.commit(_batch()) is False  # not committed, and not the end of the run
    fresh = FreshProducer.made[-1]
    assert t.checkpoint.producer is fresh and fresh.initialised
    assert fresh.conf["transactional.id"] == t.transactional_id
    assert consumer.seeks == [(TP[0], TP[1], 40)]  # retried from the batch's first offset
    assert t.metrics.totals()["transactions"] == {"aborted": 2.0}  # the abort, the replacement


def test_a_fatal_commit_that_is_no_fence_replaces_the_producer() -> None:
    t, consumer = _wired(FatalCommitProducer())
    assert t.commit(_batch()) is False
    assert isinstance(t.checkpoint.producer, FreshProducer)
    assert consumer.seeks == [(TP[0], TP[1], 40)]


@pytest.mark.parametrize(
    "code", [KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH]
)
def test_a_fenced_abort_stops_the_run_as_fenced(code: int) -> None:
    t, consumer = _wired(AbortFailsProducer(_fatal(code, "fenced")))
    made = len(FreshProducer.made)
    with pytest.raises(TransformerFenced, match="fenced"):
        t.commit(_batch())
    assert len(FreshProducer.made) == made, "a fenced instance must not fence the newer one back"
    assert consumer.seeks == []


def test_producers_replaced_again_and_again_stop_the_run_as_an_error() -> None:
    class AlwaysFatal(FreshProducer, FatalCommitProducer):
        def __init__(self, conf: dict[str, Any]) -> None:
            FreshProducer.__init__(self, conf)
            FatalCommitProducer.__init__(self)

    consumer = FakeConsumer()
    t = on_fakes(consumer, first_then(FatalCommitProducer(), AlwaysFatal))
    consumer.assign([TP])
    for _ in range(t.checkpoint.max_replacements):
        assert t.commit(_batch()) is False
    with pytest.raises(CdcflowError, match="new producers in a row committed nothing") as caught:
        t.commit(_batch())
    assert not isinstance(caught.value, TransformerFenced)
