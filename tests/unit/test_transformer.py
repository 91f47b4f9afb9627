"""The transformer's pure parts: source de-duplication, dead letters, batch processing.

Kafka is not involved: consumed records are plain objects with the
confluent-kafka Message accessors, and the serializer is a function.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.cdc import decode_record
from pipeline.errors import CdcflowError, SerializationError
from pipeline.settings import load_settings
from pipeline.transformer import SourceDedup, dead_letter
from pipeline.transformer.checkpoint import committed_offsets
from pipeline.transformer.dedup import position_of
from tests.unit import debezium as dbz
from tests.unit.transformer_fakes import (
    CUSTOMER,
    FakeAdmin,
    FakeConsumer,
    FakeMessage,
    FakeSerializer,
    RecordingProducer,
    customer_msg,
    on_fakes,
    shop_transformer,
)

# -- source de-duplication


def test_a_streamed_change_at_or_below_the_mark_is_a_repeat() -> None:
    dedup = SourceDedup()
    tp = ("t", 0)
    first = decode_record(customer_msg(0, lsn=1000).value(), topic="shop.public.customers")
    again = decode_record(customer_msg(5, lsn=1000).value(), topic="shop.public.customers")
    later = decode_record(customer_msg(6, lsn=2000).value(), topic="shop.public.customers")
    assert not dedup.is_repeat(tp, first)  # type: ignore[arg-type]
    assert dedup.is_repeat(tp, again)  # type: ignore[arg-type]
    assert not dedup.is_repeat(tp, later)  # type: ignore[arg-type]


def test_marks_survive_through_offset_metadata_and_roll_back() -> None:
    dedup = SourceDedup()
    tp = ("t", 3)
    change = decode_record(customer_msg(0, lsn=5000).value(), topic="shop.public.customers")
    assert not dedup.is_repeat(tp, change)  # type: ignore[arg-type]
    batch = dedup.seal()
    metadata = dedup.metadata(tp, batch)
    dedup.rollback()  # the transaction aborted: the mark is forgotten
    assert dedup.mark(tp) is None
    assert not dedup.is_repeat(tp, change)  # type: ignore[arg-type]
    dedup.commit(dedup.seal())
    restored = SourceDedup()
    restored.restore(tp, metadata)
    assert restored.is_repeat(tp, change)  # type: ignore[arg-type]
    restored.restore(tp, "written by another tool")
    assert restored.mark(tp) is None


def _change(lsn: int) -> Any:
    return decode_record(customer_msg(0, lsn=lsn).value(), topic="shop.public.customers")


def test_the_next_batch_is_deduplicated_while_the_previous_one_commits() -> None:
    """Commit overlapped with processing: batch 2 is processed before batch 1 commits."""
    dedup = SourceDedup()
    tp, other = ("t", 0), ("t", 1)
    assert not dedup.is_repeat(tp, _change(1000))
    assert not dedup.is_repeat(other, _change(1500))
    first = dedup.seal()  # batch 1 processed; its transaction is in flight
    assert dedup.is_repeat(tp, _change(1000))  # a re-send of batch 1's change
    assert not dedup.is_repeat(tp, _change(2000))
    second = dedup.seal()

    # Batch 1's offsets carry batch 1's marks, not batch 2's: (commit LSN, LSN, half), where
    # the test records' commit LSN (source.sequence[0]) is 8 below their own.
    assert dedup.metadata(tp, first) == '{"hw":[992,1000,1]}'
    assert dedup.metadata(tp, second) == '{"hw":[1992,2000,1]}'
    assert dedup.metadata(other, second) == '{"hw":[1492,1500,1]}'  # from the batch before
    with pytest.raises(AssertionError):
        dedup.commit(second)  # out of order
    dedup.commit(first)
    assert dedup.uncommitted == 1
    dedup.rollback()  # batch 2 aborted: back to batch 1's marks
    assert dedup.mark(tp) == (992, 1000, 1)
    assert not dedup.is_repeat(tp, _change(2000))
    dedup.discard_pending()  # the registry did not answer: batch 2 starts over
    assert dedup.mark(tp) == (992, 1000, 1)


def test_snapshot_rows_are_never_dropped_by_position() -> None:
    key, value = dbz.record("r", "customers", after=CUSTOMER, lsn=900, snapshot="true")
    change = decode_record(value, topic="shop.public.customers", key=key)
    assert position_of(change) is None  # type: ignore[arg-type]
    dedup = SourceDedup()
    assert not dedup.is_repeat(("t", 0), change)  # type: ignore[arg-type]
    assert not dedup.is_repeat(("t", 0), change)  # type: ignore[arg-type]


# -- batches


def test_a_batch_maps_skips_and_dead_letters_and_balances() -> None:
    ser = FakeSerializer(fail_on="CustomerEmailChanged")
    t = shop_transformer(ser)
    heartbeat = FakeMessage("__debezium-heartbeat.shop", 0, 0, None, b'{"payload": {"ts_ms": 1}}')
    msgs = [
        customer_msg(10, lsn=1000),  # CustomerRegistered
        FakeMessage(dbz.topic("customers"), 0, 11, None, b"{not json"),  # decode error
        customer_msg(12, op="u", lsn=1100, email="new@example.com"),  # serialize error
        customer_msg(13, lsn=1000),  # a repeat of offset 10 (same position)
        customer_msg(14, op="u", lsn=1200, country="FR"),  # no matching rule
        heartbeat,
    ]
    res = t.process(msgs)  # type: ignore[arg-type]
    assert res.records == 6
    assert (
        sum(res.mapped.values()) + sum(res.skipped.values()) + sum(res.dead_lettered.values()) == 6
    )
    assert res.produced == {"CustomerRegistered": 1}
    assert res.dead_lettered == {"decode": 1, "serialize": 1}
    assert res.skipped["duplicate"] == 1
    assert res.next_offsets[(dbz.topic("customers"), 0)] == 15
    assert res.first[(dbz.topic("customers"), 0)] == 10
    events = [r for r in res.out if r.topic == "shop.customer.events"]
    assert [(r.key, r.value) for r in events] == [(b"7", b"\x00avro:CustomerRegistered")]
    headers = dict(events[0].headers)
    assert headers["cdcflow.event_type"] == b"CustomerRegistered"
    dead = [r for r in res.out if r.topic == t.cfg.dead_letter_topic]
    assert [dict(r.headers)["cdcflow.dlq.original.offset"] for r in dead] == [b"11", b"12"]
    assert dead[0].value == b"{not json"  # the original bytes, for a replay once fixed


def test_dead_letter_headers_say_why() -> None:
    err = SerializationError("OrderPaid does not fit its schema", hint="check the contract")
    err.found_at("cdc", 2, 41, key=b"k", value=b"v")  # where the record came from, its bytes
    rec = dead_letter("dlq", err, timestamp_ms=1718000000999, transformer="cdcflow-transformer-0")
    headers = {k: v for k, v in rec.headers}
    assert (rec.topic, rec.key, rec.value) == ("dlq", b"k", b"v")
    assert headers == {
        "cdcflow.dlq.stage": b"serialize",
        "cdcflow.dlq.error.class": b"SerializationError",
        "cdcflow.dlq.error.message": b"OrderPaid does not fit its schema",
        "cdcflow.dlq.original.topic": b"cdc",
        "cdcflow.dlq.original.partition": b"2",
        "cdcflow.dlq.original.offset": b"41",
        "cdcflow.dlq.original.timestamp": b"1718000000999",
        "cdcflow.dlq.transformer": b"cdcflow-transformer-0",
        "cdcflow.dlq.error.hint": b"check the contract",
    }


@pytest.mark.parametrize(
    ("instance", "prefix", "expected"),
    [
        ("0", None, "cdcflow-transformer-0"),
        ("b", None, "cdcflow-transformer-b"),
        ("b", "shop-prod", "shop-prod-b"),
    ],
)
def test_transactional_id_and_static_membership_follow_the_instance(
    instance: str, prefix: str | None, expected: str
) -> None:
    settings = load_settings(transformer={"transactional_id": prefix} if prefix else {})
    configs: dict[str, dict[str, Any]] = {}
    on_fakes(FakeConsumer(), RecordingProducer, settings, instance=instance, configs=configs)
    consumer = configs["consumer"]
    assert consumer["group.instance.id"] == expected
    assert consumer["group.id"] == "cdcflow-transformer"
    producer = configs["producer"]
    assert producer["transactional.id"] == expected
    assert producer["enable.idempotence"] is True
    assert producer["partitioner"] == "murmur2_random"


def test_committed_offsets_are_asked_again_when_the_coordinator_times_out() -> None:
    class SlowCoordinator:
        calls = 0

        def committed(
            self, partitions: list[TopicPartition], timeout: float
        ) -> list[TopicPartition]:
            self.calls += 1
            if self.calls == 1:
                raise KafkaException(
                    KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets")
                )
            return [TopicPartition(p.topic, p.partition, 42) for p in partitions]

    consumer = SlowCoordinator()
    got = committed_offsets(consumer, [TopicPartition("t", 0)])  # type: ignore[arg-type]
    assert [(tp.topic, tp.partition, tp.offset) for tp in got] == [("t", 0, 42)]
    assert consumer.calls == 2


def test_opening_creates_the_event_and_dead_letter_topics_through_the_admin_factory() -> None:
    admin = FakeAdmin()
    t = on_fakes(FakeConsumer(), RecordingProducer, admin=admin)
    assert t.cfg.dead_letter_topic in admin.created
    assert "shop.customer.events" in admin.created
    assert sorted(admin.created) == sorted({*t.topics.values(), t.cfg.dead_letter_topic})


def test_a_producer_that_cannot_begin_transactions_leaves_no_consumer_open() -> None:
    class NoTransactions(RecordingProducer):
        def init_transactions(self, timeout: float) -> None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no coordinator"))

    consumer = FakeConsumer()
    with pytest.raises(CdcflowError, match="cannot initialise Kafka transactions"):
        on_fakes(consumer, lambda conf: NoTransactions())
    assert consumer.closed
