"""The scaling benchmark's arithmetic: records up to the drain's end, and one configuration's figures.

The benchmark itself runs on the stack (tests/integration/test_benchmarks.py);
here its pieces are checked on made-up batches and process reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scaling import TIMELINE, summarize
from benchmarks.worker import any_before, idle_since, read_ends, records_before
from pipeline.transformer import BatchResult
from tests.unit.transformer_fakes import FakeMessage


def batch(*ranges: tuple[str, int, range]) -> BatchResult:
    res = BatchResult()
    for topic, partition, offsets in ranges:
        for offset in offsets:
            res.take(FakeMessage(topic, partition, offset, b"k", b"v"))  # type: ignore[arg-type]
    return res


def test_records_before_counts_each_partition_up_to_its_end() -> None:
    res = batch(("a", 0, range(5, 10)), ("a", 1, range(0, 3)), ("b", 0, range(0, 4)))
    ends = {("a", 0): 8, ("a", 1): 10}
    # a[0]: 5, 6, 7 of 5..9; a[1]: all three; b[0]: no end given, none.
    assert records_before(res, ends) == 6
    assert res.records == 12


def test_records_before_is_zero_for_a_batch_past_the_end() -> None:
    # The connector's heartbeat, written after the ends were read.
    assert records_before(batch(("a", 0, range(8, 9))), {("a", 0): 8}) == 0
    assert records_before(batch(("a", 0, range(7, 9))), {("a", 0): 8}) == 1


def test_read_ends_reads_what_the_scaling_benchmark_writes(tmp_path: Path) -> None:
    path = tmp_path / "ends.json"
    path.write_text(json.dumps([["a", 0, 8], ["a", 1, 10]]))
    assert read_ends(str(path)) == {("a", 0): 8, ("a", 1): 10}


def report(
    records: int, first_at: float | None, last_at: float | None, **timeline: Any
) -> dict[str, Any]:
    return {
        "records": records,
        "events": records // 2,
        "first_at": first_at,
        "last_at": last_at,
        "records_past_end": timeline.pop("past_end", 0),
        "last_past_end_at": timeline.pop("last_past_end_at", None),
        "cpu_seconds": records * 100e-6,
        "timeline": {
            "started_at": 1000.0,
            "opened_at": 1002.0,
            "init_transactions_seconds": 0.1,
            "assignments": timeline.pop("assignments", [(1005.0, 0), (1008.0, 6)]),
            "revocations": [],
            "stopped_at": 1050.0,
            "stop_reason": "idle",
            "exited_at": 1051.0,
        },
    }


def test_a_configuration_is_timed_from_its_first_record_to_its_last() -> None:
    parts = [
        report(600, 1010.0, 1030.0, past_end=2, last_past_end_at=1045.0),
        report(400, 1009.0, 1025.0),
    ]
    run = summarize(2, parts, spawned=999.0)
    # The first record of any process to the last one committed: 1009 to 1030,
    # not to the heartbeats past the end (1045) nor to the exits (1051).
    assert run["seconds"] == 21.0
    assert run["records"] == 1000 and run["per_process_records"] == [600, 400]
    assert run["records_per_second"] == round(1000 / 21)
    assert run["events_per_second"] == round(500 / 21)
    assert run["records_past_end"] == 2
    assert run["cpu_us_per_record"] == 100.0
    assert run["seconds_to_first_record"] == 10.0
    first = run["timelines"][0]
    assert set(TIMELINE) <= set(first)
    # The first assignment that gave partitions, not the empty one before it.
    assert first["assigned"] == 9.0 and first["assignments"] == 2
    assert (first["started"], first["opened"], first["first"], first["last"]) == (
        1.0,
        3.0,
        11.0,
        31.0,
    )
    assert first["last_past_end"] == 46.0 and first["stop_reason"] == "idle"


def test_an_idle_process_is_counted_but_not_timed() -> None:
    # Four processes over fewer partitions than them: one got none.
    parts = [report(1000, 1010.0, 1020.0), report(0, None, None, assignments=[(1005.0, 0)])]
    run = summarize(2, parts, spawned=1000.0)
    assert run["seconds"] == 10.0 and run["records"] == 1000
    assert run["per_process_records"] == [1000, 0]
    assert run["timelines"][1]["assigned"] is None


def test_a_configuration_without_records_stops_the_benchmark() -> None:
    with pytest.raises(SystemExit, match="no process of the 1-process configuration"):
        summarize(1, [report(0, None, None)], spawned=1000.0)


def test_any_before_finds_a_record_below_its_partitions_end() -> None:
    ends = {("a", 0): 8}
    past: list[Any] = [FakeMessage("a", 0, 8, b"k", b"v"), FakeMessage("b", 0, 0, b"k", b"v")]
    assert any_before(past, ends) is False
    below: Any = FakeMessage("a", 0, 7, b"k", b"v")
    assert any_before([*past, below], ends) is True


def test_a_drain_without_ends_is_idle_only_after_a_record() -> None:
    assert idle_since(None, None) is None
    assert idle_since(1010.0, None) == 1010.0


def test_a_drain_with_ends_is_idle_from_its_last_record_or_assignment() -> None:
    # Not before partitions are assigned (an empty assignment is not one).
    assert idle_since(None, [(1005.0, 0)]) is None
    # Assigned partitions another member had drained: idle from the assignment.
    assert idle_since(None, [(1005.0, 0), (1008.0, 6)]) == 1008.0
    assert idle_since(1020.0, [(1008.0, 6)]) == 1020.0
    # A rebalance after the last record restarts the clock.
    assert idle_since(1020.0, [(1008.0, 6), (1025.0, 3)]) == 1025.0
