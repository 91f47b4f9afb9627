"""Scaling: 1, 2 and 4 transformer processes in one consumer group over the pre-load.

Each configuration is a new consumer group with transactional ids of its own
(``<group>-<i>``: nothing an earlier configuration left open is waited on);
its N processes (``benchmarks.worker drain --instance i``, the daemon of
``cdcflow run``) start together and drain the bench CDC records
(``cdcbench.public.*``) up to the end offsets read once before the first
configuration. Every configuration handles the same records: what the bench
connector writes meanwhile (its heartbeat table, a record every
``heartbeat.interval.ms``) is past those ends, counted apart and never keeps a
process from going idle. Throughput is those records over the time from the
first record any process received to the last transaction committing one of
them, so the group's rebalances as members join are counted in and the idle
wait that ends each process is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    NAME,
    NO_SOURCE,
    RESULTS,
    bench_settings,
    drain_command,
    end_offsets,
    register_bench_subjects,
    say,
    table,
    write_result,
)
from benchmarks.source import cdc_topics
from pipeline.stack.scratch import delete_groups

TIMELINE = ("started", "opened", "assigned", "first", "last", "stopped", "exited")
"""What :func:`timeline` gives of each process: seconds after the configuration started it."""


def timeline(part: dict[str, Any], spawned: float) -> dict[str, Any]:
    """One process's timeline (:data:`TIMELINE`), in seconds after ``spawned``."""
    tl = part["timeline"]
    assigned = [at for at, n in tl["assignments"] if n]

    def after(at: float | None) -> float | None:
        return None if at is None else round(at - spawned, 2)

    return {
        "started": after(tl["started_at"]),
        "opened": after(tl["opened_at"]),
        "assigned": after(assigned[0] if assigned else None),
        "first": after(part["first_at"]),
        "last": after(part["last_at"]),
        "stopped": after(tl["stopped_at"]),
        "exited": after(tl["exited_at"]),
        "init_transactions_seconds": round(tl["init_transactions_seconds"], 3),
        "assignments": len(tl["assignments"]),
        "stop_reason": tl["stop_reason"],
        "records_past_end": part["records_past_end"],
        "last_past_end": after(part["last_past_end_at"]),
    }


def summarize(processes: int, parts: Sequence[dict[str, Any]], spawned: float) -> dict[str, Any]:
    """One configuration's figures from its processes' reports (``spawned``: when they started)."""
    active = [p for p in parts if p["first_at"] is not None and p["last_at"] is not None]
    if not active:
        raise SystemExit(f"no process of the {processes}-process configuration drained a record")
    first = min(p["first_at"] for p in active)
    last = max(p["last_at"] for p in active)
    seconds = max(last - first, 1e-9)
    records = sum(p["records"] for p in parts)
    events = sum(p["events"] for p in parts)
    cpu = sum(p["cpu_seconds"] for p in parts)
    return {
        "processes": processes,
        "records": records,
        "events": events,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
        "events_per_second": round(events / seconds),
        "per_process_records": [p["records"] for p in parts],
        # What the connector wrote after the drain's end (not counted above).
        "records_past_end": sum(p["records_past_end"] for p in parts),
        "cpu_seconds": round(cpu, 1),
        # All processes' CPU (user + system) per record: flat when adding processes
        # costs nothing but the group's coordination.
        "cpu_us_per_record": round(cpu / max(records, 1) * 1e6, 1),
        # From the start of the processes to their first record: the group forming.
        "seconds_to_first_record": round(first - spawned, 2),
        "timelines": [timeline(p, spawned) for p in parts],
    }


def run_group(processes: int, ends: Path, idle: float = 10.0) -> dict[str, Any]:
    """``processes`` drains in a new group up to the offsets in ``ends``; their figures."""
    group = f"{NAME}-scale{processes}-{uuid.uuid4().hex[:6]}"
    reports = [RESULTS / f".{group}-{i}.json" for i in range(processes)]
    spawned = time.time()
    children = [
        subprocess.Popen(
            drain_command(
                group, str(report), instance=str(i), idle=idle, stages=False, until=str(ends)
            )
        )
        for i, report in enumerate(reports)
    ]
    for child in children:
        if child.wait() != 0:
            raise SystemExit(f"a transformer process of {group} exited {child.returncode}")
    parts = []
    for report in reports:
        parts.append(json.loads(report.read_text()))
        report.unlink()
    delete_groups(bench_settings(group), [group])
    return summarize(processes, parts, spawned)


def main(process_counts: list[int]) -> dict[str, Any]:
    settings = bench_settings(f"{NAME}-probe")
    topics = cdc_topics(settings)
    if not topics:
        raise SystemExit(NO_SOURCE)
    register_bench_subjects(settings)
    # The same records for every configuration: the topics' ends now.
    offsets = end_offsets(settings, topics)
    have, partitions = sum(offsets.values()), len(offsets)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ends = RESULTS / f".{NAME}-scaling-ends.json"
    ends.write_text(json.dumps([[t, p, o] for (t, p), o in sorted(offsets.items())]))
    runs = []
    try:
        for n in process_counts:
            say(f"scaling: {n} process(es) draining {have:,} records")
            runs.append(run_group(n, ends))
            r = runs[-1]
            say(
                f"  {r['records']:,} records in {r['seconds']}s = {r['records_per_second']:,} "
                f"records/s; first record {r['seconds_to_first_record']}s after the start, "
                f"init_transactions at most "
                f"{max(t['init_transactions_seconds'] for t in r['timelines'])}s, "
                f"{r['records_past_end']} record(s) past the end"
            )
    finally:
        ends.unlink()
    base = runs[0]["records_per_second"] if runs else 0
    rows = [
        [
            r["processes"],
            r["records"],
            r["seconds"],
            r["records_per_second"],
            r["events_per_second"],
            f"{r['records_per_second'] / base:.2f}x" if base else "",
            r["cpu_us_per_record"],
            r["seconds_to_first_record"],
            " / ".join(f"{n:,}" for n in r["per_process_records"]),
        ]
        for r in runs
    ]
    print()
    print(
        table(
            f"Scaling: transformer processes in one group over {len(topics)} CDC topics, "
            f"{partitions} partitions ({os.cpu_count()} CPUs); seconds and rates from the "
            "first record any process received to the last one committed",
            [
                "processes",
                "records",
                "seconds",
                "records/s",
                "events/s",
                "vs 1",
                "CPU us/record",
                "s to first record",
                "records per process",
            ],
            rows,
        )
    )
    figures = {
        "cpus": os.cpu_count(),
        "topics": topics,
        "partitions": partitions,
        "records": have,
        "runs": runs,
    }
    path = write_result("scaling", figures)
    say(f"wrote {path}")
    return figures
