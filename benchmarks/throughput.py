"""Transformer throughput against Debezium's capture rate and a raw passthrough; memory.

One run:

1. **pre-load** (:mod:`benchmarks.source`): the shop workload writes at least
   ``--records`` row changes while the bench connector is stopped; resumed, the
   connector emits them into ``cdcbench.public.*`` and is timed (Debezium's
   capture rate, measured here, in this run);
2. **transformer**: a new consumer group drains every record into the shop's
   domain events (``cdcbench-ev.*.events``), transactions on — the daemon of
   ``cdcflow run``, in a child process, with the time of each stage measured
   and its resident memory sampled every 10,000 records;
3. **passthrough**: a new group drains the same records with the same daemon,
   clients and transactions, copying the bytes to one topic (the ceiling of
   any consume-transform-produce in this process on this machine).

Reported: records/s and events/s of both, the ratios to the passthrough and to
Debezium, the seconds per stage, and the memory (start / peak / end, slope per
100k records).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

from benchmarks.common import (
    NAME,
    PASSTHROUGH_TOPIC,
    RESULTS,
    bench_settings,
    drain_command,
    ensure_topic,
    register_bench_subjects,
    say,
    table,
    write_result,
)
from benchmarks.source import BenchSource, Capture, cdc_topics
from pipeline.stack.scratch import delete_groups

PRELOAD_MARK = RESULTS / "preload.json"


def preload(records: int, *, reuse: bool) -> tuple[int, dict[str, Any]]:
    """At least ``records`` CDC records in the bench topics; returns their count and the capture."""
    settings = bench_settings(f"{NAME}-probe")
    source = BenchSource(settings)
    if reuse and PRELOAD_MARK.exists():
        mark = json.loads(PRELOAD_MARK.read_text())
        from benchmarks.common import record_count

        have = record_count(settings, cdc_topics(settings))
        if have >= mark["records"] >= records:
            say(f"reusing the pre-load: {have:,} CDC records (captured {mark['measured']})")
            return have, {**mark["capture"], "reused_from": mark["measured"]}
    say("pre-load: a fresh bench database and connector")
    source.remove()
    source.create()
    source.stop_connector()
    changes = source.write_backlog(records)
    say(f"  resuming the connector to emit {changes:,} changes")
    capture: Capture = source.capture(changes)
    have = capture.records
    from benchmarks.common import record_count

    have = record_count(settings, cdc_topics(settings))
    measured = capture.as_dict()
    say(
        f"  Debezium emitted {capture.records:,} records in {measured['seconds']}s: "
        f"{measured['records_per_second']:,} records/s"
    )
    PRELOAD_MARK.parent.mkdir(parents=True, exist_ok=True)
    PRELOAD_MARK.write_text(
        json.dumps(
            {"records": have, "capture": measured, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        )
    )
    return have, measured


def run_drain(
    mode: str, group: str, expect: int, *, stages: bool = True, instance: str = "0"
) -> dict[str, Any]:
    """One ``benchmarks.worker drain`` child process to the end; returns its report."""
    report = RESULTS / f".{group}-{instance}.json"
    command = drain_command(
        group, str(report), instance=instance, mode=mode, expect=expect, stages=stages
    )
    subprocess.run(command, check=True)
    out: dict[str, Any] = json.loads(report.read_text())
    report.unlink()
    return out


def rate(report: dict[str, Any], what: str = "records") -> float:
    seconds = (report["last_at"] or 0) - (report["first_at"] or 0)
    return float(report[what]) / seconds if seconds > 0 else 0.0


def memory(report: dict[str, Any]) -> dict[str, Any]:
    """Start / peak / end RSS (MiB) and the slope per 100k records past the first 50k."""
    samples = [(n, rss / 2**20) for n, rss in report["rss"]]
    steady = [(n, r) for n, r in samples if n >= 50_000] or samples
    slope = 0.0
    if len(steady) >= 2:
        mean_n = sum(n for n, _ in steady) / len(steady)
        mean_r = sum(r for _, r in steady) / len(steady)
        var = sum((n - mean_n) ** 2 for n, _ in steady)
        if var:
            slope = sum((n - mean_n) * (r - mean_r) for n, r in steady) / var * 100_000
    return {
        "start_mib": round(report["rss_start"] / 2**20, 1),
        "peak_mib": round(max([r for _, r in samples] + [report["rss_end"] / 2**20]), 1),
        "end_mib": round(report["rss_end"] / 2**20, 1),
        "slope_mib_per_100k_records": round(slope, 2),
        "samples": [[n, round(r, 1)] for n, r in samples],
    }


STAGE_ORDER = [
    "consume",
    "decode",
    "dedup",
    "map",
    "serialize",
    "produce",
    "commit",
    "produce+commit",
    "process",
]


def stage_rows(report: dict[str, Any]) -> list[list[Any]]:
    stages: dict[str, float] = report["stages"]
    if not stages:
        return []
    wall = (report["last_at"] or 0) - (report["first_at"] or 0)
    records = max(report["records"], 1)
    rows: list[list[Any]] = []
    process = stages.get("process", 0.0)
    inner = sum(stages.get(s, 0.0) for s in ("decode", "dedup", "map", "serialize"))
    pc = stages.get("produce+commit", 0.0)
    named = {
        "consume (poll)": stages.get("consume", 0.0),
        "decode": stages.get("decode", 0.0),
        "dedup": stages.get("dedup", 0.0),
        "map (rules + stamp)": stages.get("map", 0.0),
        "serialize (Avro)": stages.get("serialize", 0.0),
        "other processing": max(process - inner, 0.0) if inner else process,
        "begin transaction": stages.get("begin", 0.0),
        "produce (enqueue)": stages.get("produce", 0.0),
        "send offsets to transaction": stages.get("send offsets", 0.0),
        "commit (flush + commit)": stages.get("commit", 0.0),
        "metrics, other": max(
            pc - sum(stages.get(s, 0.0) for s in ("begin", "produce", "send offsets", "commit")),
            0.0,
        ),
    }
    for name, seconds in named.items():
        if seconds == 0.0 and name in (
            "decode",
            "dedup",
            "map (rules + stamp)",
            "serialize (Avro)",
        ):
            continue
        rows.append(
            [
                name,
                round(seconds, 2),
                round(100 * seconds / wall, 1) if wall else 0.0,
                round(seconds / records * 1e6, 1),
            ]
        )
    return rows


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of one transformer drain."""
    return {
        "records": report["records"],
        "events": report["events"],
        "seconds": round(report["last_at"] - report["first_at"], 2),
        "records_per_second": round(rate(report)),
        "events_per_second": round(rate(report, "events")),
        "cpu_seconds": round(report["cpu_seconds"], 1),
    }


def main(records: int, *, reuse: bool) -> dict[str, Any]:
    settings = bench_settings(f"{NAME}-probe")
    have, capture = preload(records, reuse=reuse)
    register_bench_subjects(settings)
    ensure_topic(settings, PASSTHROUGH_TOPIC, settings.transformer.event_topic_partitions)
    token = uuid.uuid4().hex[:6]
    groups = {
        "transformer": f"{NAME}-tx-{token}",
        "overlapped": f"{NAME}-ovl-{token}",
        "passthrough": f"{NAME}-raw-{token}",
    }
    reports: dict[str, dict[str, Any]] = {}
    for mode, group in groups.items():
        say(f"{mode}: draining {have:,} records (group {group})")
        reports[mode] = run_drain(mode, group, have)
        say(
            f"  {reports[mode]['records']:,} records in {reports[mode]['last_at'] - reports[mode]['first_at']:.1f}s = {rate(reports[mode]):,.0f} records/s"
        )
    delete_groups(settings, groups.values())
    tx, ovl, raw = reports["transformer"], reports["overlapped"], reports["passthrough"]
    debezium = float(capture["records_per_second"])
    figures = {
        "transformer": summary(tx)
        | {"gc_collections": tx["gc_collections"], "totals": tx["totals"]},
        "overlapped": summary(ovl),
        "overlap_gain": round(rate(ovl) / rate(tx), 3) if rate(tx) else None,
        "passthrough": {
            "records": raw["records"],
            "seconds": round(raw["last_at"] - raw["first_at"], 2),
            "records_per_second": round(rate(raw)),
            "cpu_seconds": round(raw["cpu_seconds"], 1),
        },
        "debezium_capture": capture,
        "ratio_to_passthrough": round(rate(tx) / rate(raw), 3) if rate(raw) else None,
        "ratio_to_debezium": round(rate(tx) / debezium, 2) if debezium else None,
        "stages_seconds": tx["stages"],
        "stage_calls": tx["stage_calls"],
        "passthrough_stages_seconds": raw["stages"],
        "memory": memory(tx),
    }
    print()
    print(
        table(
            f"Throughput: {have:,} CDC records (shop tables, JsonConverter with schemas), transactions on",
            [
                "pass",
                "records",
                "seconds",
                "records/s",
                "events/s",
                "vs passthrough",
                "vs Debezium",
            ],
            [
                [
                    "Debezium capture (connector emitting the pre-load)",
                    capture["records"],
                    capture["seconds"],
                    capture["records_per_second"],
                    "",
                    "",
                    "1.00x",
                ],
                [
                    "raw passthrough (same bytes, same clients)",
                    raw["records"],
                    figures["passthrough"]["seconds"],
                    figures["passthrough"]["records_per_second"],
                    "",
                    "1.00x",
                    f"{rate(raw) / debezium:.2f}x" if debezium else "",
                ],
                [
                    "transformer (decode, map, Avro)",
                    tx["records"],
                    figures["transformer"]["seconds"],
                    figures["transformer"]["records_per_second"],
                    figures["transformer"]["events_per_second"],
                    f"{figures['ratio_to_passthrough']:.2f}x",
                    f"{figures['ratio_to_debezium']:.2f}x",
                ],
                [
                    "transformer, commit overlapped (overlap_commit=true)",
                    ovl["records"],
                    figures["overlapped"]["seconds"],
                    figures["overlapped"]["records_per_second"],
                    figures["overlapped"]["events_per_second"],
                    f"{rate(ovl) / rate(raw):.2f}x" if rate(raw) else "",
                    f"{rate(ovl) / debezium:.2f}x" if debezium else "",
                ],
            ],
        )
    )
    print(
        f"commit overlapped with processing: {figures['overlap_gain']}x the records/s "
        "of the transformer without it"
    )
    print()
    print(
        table(
            "Transformer: time per stage (perf_counter around each call)",
            ["stage", "seconds", "% of wall", "us/record"],
            stage_rows(tx),
        )
    )
    print()
    print(
        table(
            "Passthrough: time per stage",
            ["stage", "seconds", "% of wall", "us/record"],
            stage_rows(raw),
        )
    )
    mem = figures["memory"]
    print()
    print(
        table(
            "Transformer memory (RSS)",
            ["start MiB", "peak MiB", "end MiB", "MiB per 100k records"],
            [
                [
                    mem["start_mib"],
                    mem["peak_mib"],
                    mem["end_mib"],
                    mem["slope_mib_per_100k_records"],
                ]
            ],
        )
    )
    path = write_result("throughput", figures)
    say(f"wrote {path}")
    return figures
