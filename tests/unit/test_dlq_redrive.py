"""A redrive's step 3 without Kafka: what each dead letter becomes, and the balance.

The records to produce are collected from the ``produce`` callback; the
serializer is a stand-in (its bytes name the event type).
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.cdc import Change, decode_record
from pipeline.dlq import REDRIVEN_FROM_HEADER, REDRIVEN_HEADER, DeadLetter, Redrive, Reprocessor
from pipeline.dlq.letters import REDRIVES_HEADER, Selection
from pipeline.errors import MappingError, SerializationError
from pipeline.events import DomainEvent
from pipeline.mapping import Rules, map_change
from pipeline.settings import load_settings
from pipeline.transformer.dlq import HEADER_PREFIX, OutRecord, dead_letter
from pipeline.transformer.identities import IdentityCatalog
from tests.domains.redrive.events import ItemRecorded
from tests.unit import debezium as dbz

ITEMS = "public.items"
COLUMNS = [dbz.int32("id"), dbz.text("label"), dbz.int32("quantity")]


class Serializer:
    """Stands in for the registry serializer; ``fail_label`` does not fit the schema."""

    def __init__(self, fail_label: str | None = None) -> None:
        self.fail_label = fail_label

    def serialize(self, event: DomainEvent, topic: str) -> bytes:
        if getattr(event, "label", None) == self.fail_label:
            raise SerializationError("does not fit")
        return f"avro:{type(event).event_type()}:{topic}".encode()


def rules(*, failing: tuple[str, ...] = (), skipping: tuple[str, ...] = ()) -> Rules:
    out = Rules("redrive")
    out.ignore("public.ignored")

    @out.on(ITEMS, ops="c", when=lambda c: c.new("label") not in skipping)
    def item_recorded(change: Change) -> ItemRecorded:
        if change.new("label") in failing:
            raise ValueError(f"label {change.new('label')}")
        return ItemRecorded(
            id=change.new("id"), label=change.new("label"), quantity=change.new("quantity")
        )

    return out


def source_record(item: int, label: str) -> tuple[bytes | None, bytes]:
    row = {"id": item, "label": label, "quantity": item * 10}
    return dbz.record(
        "c", "items", after=row, columns=COLUMNS, key_fields=[dbz.int32("id")], lsn=1000 + item
    )


def dead(item: int, label: str, *, offset: int, redrives: int = 0, ts: int = 5_000) -> DeadLetter:
    """The dead letter the first rules (every label fails) made of item ``item``."""
    key, value = source_record(item, label)
    change = decode_record(value, topic=dbz.topic("items"), key=key, partition=3, offset=100 + item)
    assert isinstance(change, Change)
    with pytest.raises(MappingError) as caught:
        map_change(rules(failing=(label,)), change)
    rec = dead_letter("app.dlq", caught.value, timestamp_ms=4_000, transformer="app-0")
    headers: list[tuple[str, Any]] = list(rec.headers)
    if redrives:
        headers.append((REDRIVES_HEADER, str(redrives).encode()))
    return DeadLetter.of(
        topic="app.dlq",
        partition=offset % 2,
        offset=offset,
        timestamp_ms=ts,
        key=rec.key,
        value=rec.value,
        headers=headers,
    )


class Msg:
    """The accessors of a consumed dead-letter record that a redrive reads."""

    def __init__(self, letter: DeadLetter) -> None:
        self.letter = letter

    def topic(self) -> str:
        return self.letter.topic

    def partition(self) -> int:
        return self.letter.partition

    def offset(self) -> int:
        return self.letter.offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self.letter.timestamp_ms)

    def key(self) -> bytes | None:
        return self.letter.key

    def value(self) -> bytes | None:
        return self.letter.value

    def headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.letter.headers.items()]


def reprocessor(fixed: Rules, serializer: Serializer | None = None) -> Reprocessor:
    return Reprocessor(
        fixed,
        serializer or Serializer(),  # type: ignore[arg-type]
        IdentityCatalog.record_only(),
        dead_letter_topic="app.dlq",
        transformer="app-redrive",
    )


def headers(rec: OutRecord) -> dict[str, str]:
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in rec.headers}


def test_a_fixed_mapping_gives_the_events_the_transformer_would_have_given() -> None:
    letter = dead(1, "bad", offset=7)
    outcome = reprocessor(rules())(letter)
    assert outcome.skipped is None
    (rec,) = outcome.events
    assert rec.topic == "redrive.item.events" and rec.key == b"1"
    assert rec.value == b"avro:ItemRecorded:redrive.item.events"
    h = headers(rec)
    assert h[REDRIVEN_HEADER] == "map:MappingError"
    assert h[REDRIVEN_FROM_HEADER] == "app.dlq[1]@7"
    # The id is the one mapping the source record gives, derived from its position.
    key, value = source_record(1, "bad")
    change = decode_record(value, topic=dbz.topic("items"), key=key, partition=3, offset=101)
    assert isinstance(change, Change)
    mapped = map_change(rules(), change)
    assert not isinstance(mapped, type(None))
    (event,) = mapped.events  # type: ignore[union-attr]
    assert event.metadata is not None
    assert h["cdcflow.event_id"] == str(event.metadata.event_id)
    assert h["cdcflow.source.lsn"] == "1001" and h["cdcflow.source.table"] == ITEMS


def test_what_still_fails_is_a_new_dead_letter_of_the_source_record() -> None:
    letter = dead(2, "worse", offset=8, redrives=1)
    outcome = reprocessor(rules(failing=("worse",)))(letter)
    assert outcome.events == () and outcome.reason == "map:MappingError"
    assert outcome.dead is not None
    h = headers(outcome.dead)
    assert outcome.dead.topic == "app.dlq"
    assert (outcome.dead.key, outcome.dead.value) == (letter.key, letter.value)
    assert h[HEADER_PREFIX + "original.topic"] == dbz.topic("items")
    assert (h[HEADER_PREFIX + "original.partition"], h[HEADER_PREFIX + "original.offset"]) == (
        "3",
        "102",
    )
    assert h[HEADER_PREFIX + "original.timestamp"] == "4000"
    assert h[HEADER_PREFIX + "transformer"] == "app-redrive"
    assert h[REDRIVES_HEADER] == "2"
    assert "label worse" in h[HEADER_PREFIX + "error.message"]
    # A serializer that refuses the event: a dead letter of stage serialize.
    refused = reprocessor(rules(), Serializer(fail_label="worse"))(letter)
    assert refused.reason == "serialize:SerializationError" and refused.dead is not None


def test_what_the_domain_now_skips_is_a_skip() -> None:
    outcome = reprocessor(rules(skipping=("meh",)))(dead(3, "meh", offset=9))
    assert outcome == type(outcome)(events=(), skipped="no_matching_rule")


def run_batch(
    letters: list[DeadLetter], fixed: Rules, selection: Selection, *, dry: bool = False
) -> tuple[Any, list[tuple[OutRecord, int | None]]]:
    settings = load_settings(transformer={"dead_letter_topic": "app.dlq"})
    job = Redrive(settings, reprocessor(fixed), selection)
    produced: list[tuple[OutRecord, int | None]] = []
    msgs: list[Any] = [Msg(letter) for letter in letters]
    balance = job._batch(msgs, produce=None if dry else lambda r, ts: produced.append((r, ts)))
    return balance, produced


def test_a_batch_redrives_skips_dead_letters_again_and_leaves_out_what_is_not_selected() -> None:
    letters = [
        dead(1, "bad", offset=1),
        dead(2, "worse", offset=2, redrives=1),
        dead(3, "meh", offset=3),
        dead(4, "bad", offset=4, ts=1_000),  # older than --since
    ]
    fixed = rules(failing=("worse",), skipping=("meh",))
    balance, produced = run_batch(letters, fixed, Selection(since_ms=2_000))
    assert balance.line() == (
        "dead-lettered 4 = redriven 1 + still dead 1 + skipped 1 + not selected 1"
    )
    assert balance.balanced and balance.as_dict()["balanced"]
    assert balance.events == {"ItemRecorded": 1}
    assert balance.still_dead == {"map:MappingError": 1}
    assert balance.skipped == {"no_matching_rule": 1}
    event, again, left_out = produced
    # item 1: its event
    assert event[0].topic == "redrive.item.events" and event[0].key == b"1"
    # item 2: dead-lettered again with the new reason, from the source position, counted
    assert again[0].topic == "app.dlq" and again[1] is None
    h = headers(again[0])
    assert h[REDRIVES_HEADER] == "2"
    assert h[HEADER_PREFIX + "original.offset"] == "102"
    assert h[HEADER_PREFIX + "original.timestamp"] == "4000"
    assert h[HEADER_PREFIX + "transformer"] == "app-redrive"
    assert "label worse" in h[HEADER_PREFIX + "error.message"]
    assert (again[0].key, again[0].value) == (letters[1].key, letters[1].value)
    # item 4: appended again unchanged, with its time
    assert left_out[1] == 1_000
    assert headers(left_out[0]) == letters[3].headers
    assert (left_out[0].key, left_out[0].value) == (letters[3].key, letters[3].value)


def test_a_dry_run_counts_the_same_and_produces_nothing() -> None:
    letters = [dead(1, "bad", offset=1), dead(2, "worse", offset=2)]
    fixed = rules(failing=("worse",))
    real, produced = run_batch(letters, fixed, Selection())
    dry, nothing = run_batch(letters, fixed, Selection(), dry=True)
    assert nothing == [] and len(produced) == 2
    assert dry.as_dict() == real.as_dict()
