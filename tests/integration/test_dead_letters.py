"""Poison records, end to end: each lands in the dead-letter topic, and nothing stalls.

The real chain runs (PostgreSQL -> Debezium -> CDC topics -> the transformer in a
thread -> event and dead-letter topics) with the ``tests.domains.fidelity``
rules. Among good probe rows, the source holds one poison record of each kind:

============================  ==========  ==================================
poison                        stage       how it is made
============================  ==========  ==================================
bytes that are not JSON       decode      produced raw into the CDC topic
bytes that are not UTF-8      decode      produced raw into the CDC topic
JSON that is not Debezium's   decode      produced raw into the CDC topic
a table no rule knows         map         a row in fidelity.unmapped
a mapping that raises         map         a probe labelled ``boom``
a value that breaks the       serialize   a probe quantity of 10**20: the
schema                                    event's int field is an Avro long
============================  ==========  ==================================

Good records come before and after them in the same partition; every good
probe's event must arrive, each poison record must be in the dead-letter topic
with its original key and value and headers that say why and where from, and
the transformer's counters must add up: in = mapped + skipped + dead-lettered.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.transformer.dlq import HEADER_PREFIX
from tests.domains.fidelity.events import ProbeRecorded
from tests.domains.fidelity.mappings import BOOM
from tests.integration.harness import PipelineRun, Received, fidelity_run

PROBES = "fidelity.probes"
UNMAPPED = "fidelity.unmapped"
NOT_JSON = b'{"payload": {"op": "c", '
NOT_UTF8 = b"\xc3\x28\xa0\xa1"
NOT_DEBEZIUM = b'{"hello": "world"}'

GOOD_BEFORE = {1: ("first", 1, "1.50"), 2: ("second", 2, "-2.00"), 3: ("third", 0, "999999.99")}
GOOD_AFTER = {6: ("sixth", 6, "6.06"), 7: ("seventh", -7, "0.01"), 8: ("eighth", 8, "8.00")}


def insert_probes(run: PipelineRun, rows: dict[int, tuple[str, int, str]]) -> None:
    with run.db() as conn:
        for probe_id, row in rows.items():  # one transaction each
            conn.execute("INSERT INTO fidelity.probes VALUES (%s, %s, %s, %s)", (probe_id, *row))


def headers(record: Received) -> dict[str, str]:
    return {
        k.removeprefix(HEADER_PREFIX): v.decode()
        for k, v in record.headers.items()
        if k.startswith(HEADER_PREFIX)
    }


def test_poison_records_are_dead_lettered_and_the_rest_flows(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fidelity_run(stack, settings, tmp_path, monkeypatch, "dlq") as run:
        run.register_contracts()
        run.start_connector([PROBES, UNMAPPED])
        run.start_transformer()
        cdc = run.cdc_topic(PROBES)

        insert_probes(run, GOOD_BEFORE)
        with run.db() as conn:
            conn.execute("INSERT INTO fidelity.probes VALUES (4, %s, 4, 4.00)", (BOOM,))
            conn.execute(
                "INSERT INTO fidelity.probes VALUES (5, 'huge', 100000000000000000000, 5.00)"
            )
            conn.execute("INSERT INTO fidelity.unmapped VALUES (1, 'nobody maps me')")
        run.wait_for("Debezium's first five probe records", lambda: run.end_offsets(cdc) >= 5)
        for poison in (NOT_JSON, NOT_UTF8, NOT_DEBEZIUM):
            run.produce_raw(cdc, poison)
        insert_probes(run, GOOD_AFTER)
        with run.db() as conn:
            expected = {
                r["id"]: r for r in conn.execute("SELECT * FROM fidelity.probes WHERE id <> 4")
            }
            # Changes no rule matches: counted as skipped.
            conn.execute("UPDATE fidelity.probes SET label = 'renamed' WHERE id = 1")
            conn.execute("DELETE FROM fidelity.probes WHERE id = 2")

        # 5 + 3 raw + 3 + update + delete on probes; one row on unmapped.
        run.wait_for("every CDC record", lambda: run.end_offsets(cdc) >= 13)
        run.wait_for("the unmapped row", lambda: run.end_offsets(run.cdc_topic(UNMAPPED)) >= 1)
        source = run.read(cdc, 13) + run.read(run.cdc_topic(UNMAPPED), 1)
        run.wait_for(
            "the transformer to take in every CDC record",
            lambda: sum(run.totals()["consumed"].values()) >= len(source),
        )
        events = run.read(run.topic_of(ProbeRecorded), 6, avro=True)
        dead = run.read(run.settings.transformer.dead_letter_topic, 6)
        totals = run.totals()
        run.stop_transformer()

    assert len(source) == 14

    # -- the counts: in = mapped + skipped + dead-lettered
    consumed = sum(totals["consumed"].values())
    mapped = sum(totals["mapped"].values())
    skipped = sum(totals["skipped"].values())
    dead_lettered = sum(totals["dead_lettered"].values())
    assert consumed == len(source) == mapped + skipped + dead_lettered
    assert mapped == 6
    assert totals["skipped"] == {"no_matching_rule": 2}
    assert totals["dead_lettered"] == {"decode": 3, "map": 2, "serialize": 1}
    assert totals["produced"] == {"ProbeRecorded": 6}

    # -- every good probe's event arrived, values equal to the database's
    by_id = {e.value["id"]: e for e in events}
    assert len(events) == len(by_id) == 6
    assert set(by_id) == {*GOOD_BEFORE, *GOOD_AFTER}
    for probe_id, record in by_id.items():
        event, row = record.value, expected[probe_id]
        assert (event["label"], event["quantity"]) == (row["label"], int(row["quantity"]))
        assert event["amount"] == row["amount"] and isinstance(event["amount"], Decimal)
        assert record.key == str(probe_id).encode()
    # ... including those that came after the poison records in the same partition.
    offset_of = {
        probe_id: r.offset
        for r in source
        if r.topic == cdc and (probe_id := _probe_id(r)) is not None
    }
    raw_offsets = [r.offset for r in source if r.value in (NOT_JSON, NOT_UTF8, NOT_DEBEZIUM)]
    assert len(raw_offsets) == 3
    assert all(offset_of[p] > max(raw_offsets) for p in GOOD_AFTER)
    assert {r.partition for r in source if r.topic == cdc} == {0}

    # -- each poison record is dead-lettered once, with its evidence
    originals = {(r.topic, r.partition, r.offset): r for r in source}
    seen: list[tuple[str, str, Any]] = []
    for record in dead:
        h = headers(record)
        where = (h["original.topic"], int(h["original.partition"]), int(h["original.offset"]))
        original = originals[where]
        assert (record.key, record.value) == (original.key, original.value)
        assert int(h["original.timestamp"]) == original.timestamp_ms
        assert h["transformer"] == f"{run.settings.transformer.transactional_id}-0"
        assert h["error.message"]
        seen.append((h["stage"], h["error.class"], _what(original)))
        assert _expected_message_part(original) in h["error.message"], h["error.message"]
    assert sorted(seen) == sorted(
        [
            ("decode", "DecodeError", NOT_JSON),
            ("decode", "DecodeError", NOT_UTF8),
            ("decode", "DecodeError", NOT_DEBEZIUM),
            ("map", "UnknownTable", (UNMAPPED, 1)),
            ("map", "MappingError", (PROBES, 4)),
            ("serialize", "SerializationError", (PROBES, 5)),
        ]
    )


def _probe_id(record: Received) -> int | None:
    """The key of a Debezium record of fidelity.probes; None for the raw poison."""
    if record.key is None:
        return None
    key: int = json.loads(record.key)["payload"]["id"]
    return key


def _what(record: Received) -> Any:
    """A poison record as the test made it: raw bytes, or (table, key)."""
    if record.key is None:
        return record.value
    table = PROBES if record.topic.endswith(PROBES) else UNMAPPED
    return (table, _probe_id(record))


def _expected_message_part(record: Received) -> str:
    what = _what(record)
    return {
        NOT_JSON: "not JSON",
        NOT_UTF8: "not JSON",
        NOT_DEBEZIUM: "not a Debezium change event",
        (UNMAPPED, 1): f"no rule knows table {UNMAPPED}",
        (PROBES, 4): f"RuntimeError: probe 4 is labelled {BOOM!r}",
        (PROBES, 5): "OverflowError",
    }[what]
