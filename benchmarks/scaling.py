"""Scaling: 1, 2 and 4 transformer processes in one consumer group over the pre-load.

Each configuration is a new consumer group; its N processes
(``benchmarks.worker drain --instance i``, the daemon of ``cdcflow run``) start
together and drain every bench CDC record (``cdcbench.public.*``: three topics
of 4 partitions each). Throughput is all records over the time from the first
record any process received to the last transaction any process committed, so
the group's rebalances as members join are counted in.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import (
    NAME,
    NO_SOURCE,
    RESULTS,
    bench_settings,
    drain_command,
    end_offsets,
    record_count,
    register_bench_subjects,
    say,
    table,
    write_result,
)
from benchmarks.source import cdc_topics
from pipeline.stack.scratch import delete_groups


def run_group(processes: int, idle: float = 10.0) -> dict[str, Any]:
    group = f"{NAME}-scale{processes}-{uuid.uuid4().hex[:6]}"
    reports = [str(RESULTS / f".{group}-{i}.json") for i in range(processes)]
    children = [
        subprocess.Popen(drain_command(group, report, instance=str(i), idle=idle, stages=False))
        for i, report in enumerate(reports)
    ]
    for child in children:
        if child.wait() != 0:
            raise SystemExit(f"a transformer process of {group} exited {child.returncode}")
    parts = []
    for report in reports:
        parts.append(json.loads(Path(report).read_text()))
        os.unlink(report)
    delete_groups(bench_settings(group), [group])
    active = [p for p in parts if p["first_at"] is not None]
    first = min(p["first_at"] for p in active)
    last = max(p["last_at"] for p in active)
    records = sum(p["records"] for p in parts)
    events = sum(p["events"] for p in parts)
    return {
        "processes": processes,
        "records": records,
        "events": events,
        "seconds": round(last - first, 2),
        "records_per_second": round(records / (last - first)),
        "events_per_second": round(events / (last - first)),
        "per_process_records": [p["records"] for p in parts],
        "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts), 1),
        # All processes' CPU (user + system) per record: flat when adding processes
        # costs nothing but the group's coordination.
        "cpu_us_per_record": round(sum(p["cpu_seconds"] for p in parts) / max(records, 1) * 1e6, 1),
    }


def main(process_counts: list[int]) -> dict[str, Any]:
    settings = bench_settings(f"{NAME}-probe")
    topics = cdc_topics(settings)
    if not topics:
        raise SystemExit(NO_SOURCE)
    register_bench_subjects(settings)
    have = record_count(settings, topics)
    partitions = len(end_offsets(settings, topics))
    runs = []
    for n in process_counts:
        say(f"scaling: {n} process(es) draining {have:,} records")
        runs.append(run_group(n))
        say(f"  {runs[-1]['records_per_second']:,} records/s")
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
            " / ".join(f"{n:,}" for n in r["per_process_records"]),
        ]
        for r in runs
    ]
    print()
    print(
        table(
            f"Scaling: transformer processes in one group over {len(topics)} CDC topics, "
            f"{partitions} partitions ({os.cpu_count()} CPUs)",
            [
                "processes",
                "records",
                "seconds",
                "records/s",
                "events/s",
                "vs 1",
                "CPU us/record",
                "records per process",
            ],
            rows,
        )
    )
    figures = {"cpus": os.cpu_count(), "topics": topics, "partitions": partitions, "runs": runs}
    path = write_result("scaling", figures)
    say(f"wrote {path}")
    return figures
