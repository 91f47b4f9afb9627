"""The transformer's processing step alone: CPU per record, and where it goes (cProfile).

Reads ``--sample`` records of the bench CDC topics into memory (the pre-load
of the throughput benchmark; ``--hotpath-topics`` reads other CDC topics, e.g.
the shop's own), then runs ``Transformer.process`` over them in batches of the
configured size: decode, de-duplicate, map, serialize, with nothing consumed
or produced. The figure is CPU time (``time.process_time``), so other
processes on the machine disturb it less than wall time: the least of three
timed passes, after one that warms up. A second pass times
each stage (CPU time around each call, which adds the clock's own cost to
every stage), a third hands its events to :mod:`benchmarks.floor` (what the
libraries alone cost per record: the floor under the figure), and a fourth
runs under cProfile and prints the functions that cost most.

``--sample-file PATH`` keeps the sample: written on the first run, read on
the next ones, so that two versions of the code are measured on the same
records. ``--baseline REV`` measures revision REV's transformer on the same
records in the same run (:mod:`benchmarks.baseline`) and reports
``ratio_to_baseline``: REV's CPU per record over the working tree's.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from benchmarks.baseline import measure_baseline
from benchmarks.common import (
    NAME,
    NO_SOURCE,
    REPO,
    bench_settings,
    register_bench_subjects,
    say,
    table,
    topics_matching,
    use_event_domain,
    write_result,
)
from benchmarks.floor import floor_table, measure_floor
from benchmarks.held import Held, keep_held, read_held
from benchmarks.source import cdc_topics
from benchmarks.worker import Stages, instrument_processing
from pipeline.transformer import Transformer, build_transformer


def sample(count: int, topics: str | None = None) -> list[Held]:
    """Up to ``count`` records, spread over every partition of the bench CDC topics.

    ``topics``: a regular expression of other CDC topics to read instead (read only).
    """
    settings = bench_settings(f"{NAME}-hotpath")
    names = cdc_topics(settings) if topics is None else topics_matching(settings, topics)
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {"group.id": f"{NAME}-hotpath", "enable.auto.commit": False}
    )
    out: list[Held] = []
    try:
        meta = consumer.list_topics(timeout=30).topics
        parts = [TopicPartition(t, p) for t in names for p in meta[t].partitions]
        per = count // max(len(parts), 1) + 1
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            want = min(per, high - low)
            consumer.assign([TopicPartition(tp.topic, tp.partition, max(low, high - want))])
            got = 0
            while got < want:
                msgs = consumer.consume(1000, 5)
                if not msgs:
                    break
                for m in msgs:
                    if m.error() is None:
                        out.append(
                            Held(tp.topic, tp.partition, m.offset() or 0, m.key(), m.value())
                        )
                        got += 1
    finally:
        consumer.close()
    return out[:count]


def held_sample(count: int, topics: str | None, path: Path | None) -> list[Held]:
    """The records to run on: read from ``path`` when it exists, else sampled (and kept there)."""
    if path is not None and path.exists():
        held = read_held(path, count)
        say(f"read {len(held):,} records from {path}")
        return held
    records = sample(count, topics)
    if path is not None and records:
        keep_held(path, records)
        say(f"kept {len(records):,} records in {path}")
    return records


TIMED_PASSES = 3
"""Timed passes over the records; the figure is the least CPU of them (the baseline's too)."""


def _measure(t: Transformer, records: list[Held], size: int) -> dict[str, Any]:
    """CPU per record of ``t.process`` over ``records``, per stage, its floor and a profile."""
    t.serializer.prepare((et, t.topics[et]) for et in t.event_types)
    batches = [records[i : i + size] for i in range(0, len(records), size)]

    def run() -> int:
        events = 0
        for batch in batches:
            t.dedup.rollback()  # every pass sees the records as new
            events += len(t.process(batch).out)  # type: ignore[arg-type]
        return events

    run()  # warm: schemas parsed, registry ids looked up
    passes = []
    for _ in range(TIMED_PASSES):
        started = time.process_time()
        events = run()
        passes.append(time.process_time() - started)
    cpu = min(passes)  # the least disturbed by the other processes on the machine
    stages = Stages(clock=time.process_time)
    undo = instrument_processing(t, stages)
    staged_started = time.process_time()
    run()
    staged = time.process_time() - staged_started
    undo()
    per_stage = {
        name: round(seconds / len(records) * 1e6, 1) for name, seconds in stages.seconds.items()
    }
    per_stage["other"] = round((staged - sum(stages.seconds.values())) / len(records) * 1e6, 1)
    floor = measure_floor(t, run, records, REPO / "schemas")
    profile = cProfile.Profile()
    profile.runcall(run)
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(15)
    return {
        "records": len(records),
        "events": events,
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_passes": [round(p, 3) for p in passes],
        "records_per_cpu_second": round(len(records) / cpu),
        "us_per_record": round(cpu / len(records) * 1e6, 1),
        "stage_us_per_record": per_stage,
        "staged_us_per_record": round(staged / len(records) * 1e6, 1),
        "floor": floor,
        "profile_top": text.getvalue(),
    }


def main(
    count: int,
    topics: str | None = None,
    sample_file: Path | None = None,
    baseline: str | None = None,
) -> dict[str, Any]:
    """Measure the working tree's hot path, its floor, and (with ``baseline``) an earlier revision's."""
    use_event_domain()
    settings = bench_settings(f"{NAME}-hotpath")
    if topics is not None:
        re.compile(topics)  # a bad pattern fails before any record is read
    records = held_sample(count, topics, sample_file)
    if not records:
        raise SystemExit(NO_SOURCE)
    register_bench_subjects(settings)  # idempotent: the serializer looks the ids up
    t = build_transformer(settings, instance="hotpath")
    try:
        figures = _measure(t, records, settings.transformer.batch_size)
    finally:
        t.close()  # its clients, before the bench topics they know of are removed
    figures["topics"] = topics or "bench"
    figures["sample_file"] = str(sample_file) if sample_file else None
    events, per_stage, floor = figures["events"], figures["stage_us_per_record"], figures["floor"]
    rows = [["working tree", len(records), events, figures["cpu_seconds"]]]
    rows[0] += [figures["records_per_cpu_second"], figures["us_per_record"]]
    if baseline is not None:
        base = measure_baseline(baseline, records, TIMED_PASSES)
        figures["baseline"] = base
        figures["ratio_to_baseline"] = round(base["us_per_record"] / figures["us_per_record"], 2)
        figures["events_match_baseline"] = base["events"] == events
        rows.append([f"{baseline} ({base['commit']})", base["records"], base["events"]])
        rows[1] += [base["cpu_seconds"], base["records_per_cpu_second"], base["us_per_record"]]
    print()
    print(
        table(
            "Hot path: Transformer.process on records held in memory "
            f"(CPU time, no Kafka; best of {TIMED_PASSES} passes)",
            ["code", "records", "events", "CPU s", "records per CPU s", "us per record"],
            rows,
        )
    )
    if baseline is not None:
        print(
            f"ratio_to_baseline (baseline us / working tree us): {figures['ratio_to_baseline']}x; "
            f"events: {events:,} now, {figures['baseline']['events']:,} at {baseline}"
            + ("" if figures["events_match_baseline"] else "  ** NOT THE SAME COUNT **")
        )
    print()
    print(
        table(
            "CPU per stage (a pass with every stage timed; 'other' is the rest of process())",
            ["stage", "us per record"],
            [[name, value] for name, value in per_stage.items()],
        )
    )
    print()
    print(floor_table(floor, figures["us_per_record"]))
    print()
    print("cProfile, by own time (a further pass):")
    profile = figures["profile_top"].splitlines()
    print("\n".join(line for line in profile if line.strip())[:6000])
    path = write_result("hotpath", figures)
    say(f"wrote {path}")
    return figures
