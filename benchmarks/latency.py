"""Latency: from the commit in PostgreSQL to the record visible, under a steady workload.

For each rate (business operations per second):

1. a transformer (the daemon of ``cdcflow run``, a child process, a new group
   whose offsets start at the end of the bench CDC topics) is started and
   waits for records;
2. two ``read_committed`` consumers in this process start at the end of the CDC
   topics and of the event topics, and note the wall-clock time each record
   arrives;
3. the shop workload (a child process, :class:`benchmarks.worker.TimedWorkload`)
   runs at the rate and notes, for each operation, its transaction id and the
   time its commit returned.

An operation's CDC records are found by ``source.txId``; its events by the
source LSN they carry (header ``cdcflow.source.lsn``). Per operation:
Debezium = last CDC record visible - commit; end to end = last event visible -
commit; the transformer's added latency = last event - last CDC record. The
connector runs with the shop connector's settings (Debezium hands records to
Connect in batches: up to ``poll.interval.ms``, 500 ms, apart when quiet).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from benchmarks.common import (
    EVENT_DOMAIN,
    NAME,
    NO_SOURCE,
    RESULTS,
    bench_settings,
    commit_group_at_end,
    drain_command,
    percentiles,
    register_bench_subjects,
    say,
    table,
    topics_matching,
    write_result,
)
from benchmarks.cpu_share import CpuShare
from benchmarks.source import DATABASE, BenchSource, cdc_topics
from pipeline.settings import Settings
from pipeline.stack.scratch import delete_groups

_TX_ID = re.compile(rb'"txId":(\d+)')
_LSN = re.compile(rb'"lsn":(\d+)')
# One workload process keeps up with about this many operations/s on a small machine.
PER_PROCESS = 600.0


class Arrivals(threading.Thread):
    """A read_committed consumer from the end of ``topics``, noting when each record arrives."""

    def __init__(self, settings: Settings, topics: list[str], kind: str) -> None:
        super().__init__(daemon=True, name=f"arrivals-{kind}")
        self.kind = kind
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.seen: dict[int, float] = {}  # cdc: lsn -> time; events: lsn -> time
        self.tx_lsns: dict[int, list[int]] = defaultdict(list)  # cdc: txId -> lsns
        self.batches: list[tuple[float, int]] = []  # (arrival, records) of each non-empty fetch
        self.consumer = Consumer(
            settings.kafka.client_config("consumer")
            | {
                "group.id": f"{NAME}-arrivals-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        meta = self.consumer.list_topics(timeout=30).topics
        self.consumer.assign(
            [TopicPartition(t, p, OFFSET_END) for t in topics for p in meta[t].partitions]
        )

    def run(self) -> None:
        consumer = self.consumer
        started = time.monotonic()
        while not self.stop.is_set():
            msgs = consumer.consume(1000, 0.05)
            now = time.time()
            if not self.ready.is_set() and time.monotonic() - started > 2:
                self.ready.set()  # the end offsets are resolved by now
            if msgs:
                self.batches.append((now, len(msgs)))
            for msg in msgs:
                if msg.error():
                    continue
                if self.kind == "cdc":
                    value = msg.value() or b""
                    tx, lsn = _TX_ID.search(value), _LSN.search(value)
                    if tx is None or lsn is None:
                        continue
                    self.seen[int(lsn.group(1))] = now
                    self.tx_lsns[int(tx.group(1))].append(int(lsn.group(1)))
                else:
                    headers: list[tuple[str, bytes]] = list(msg.headers() or [])  # type: ignore[arg-type]
                    for name, data in headers:
                        if name == "cdcflow.source.lsn" and data:
                            self.seen[int(data)] = now
        consumer.close()


def _transformer(group: str, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    report = str(RESULTS / f".{group}.json")
    proc = subprocess.Popen(
        drain_command(group, report, idle=1e9, mode=mode),
        start_new_session=True,
    )
    return proc, report


def run_rate(
    settings: Settings,
    source: BenchSource,
    rate: float,
    duration: float,
    mode: str = "transformer",
) -> dict[str, Any]:
    group = f"{NAME}-lat-{uuid.uuid4().hex[:6]}"
    cdc = cdc_topics(settings)
    commit_group_at_end(settings, group, cdc)
    proc, report = _transformer(group, mode)
    events = topics_matching(settings, rf"^{re.escape(EVENT_DOMAIN)}\..*\.events$")
    cdc_arrivals = Arrivals(settings, cdc, "cdc")
    event_arrivals = Arrivals(settings, events, "events")
    cdc_arrivals.start()
    event_arrivals.start()
    cdc_arrivals.ready.wait(30)
    event_arrivals.ready.wait(30)
    time.sleep(8)  # the transformer joins its group and initialises its transactions
    processes = max(1, math.ceil(rate / PER_PROCESS))
    outs = [str(RESULTS / f".{group}-workload-{i}.json") for i in range(processes)]
    dsn = settings.source.dsn(DATABASE)
    say(f"latency: {rate:,.0f} operations/s for {duration:.0f}s ({processes} workload processes)")
    cpu = CpuShare()
    workloads = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.worker",
                "workload",
                "--dsn",
                dsn,
                "--rate",
                str(rate / processes),
                "--duration",
                str(duration),
                "--seed",
                str(100 + i),
                "--out",
                out,
            ]
        )
        for i, out in enumerate(outs)
    ]
    for w in workloads:
        w.wait()
    cpu_used = cpu.stop()
    commits: list[tuple[int, float, str]] = []
    achieved = 0.0
    for out in outs:
        data = json.loads(Path(out).read_text())
        os.unlink(out)
        commits.extend((int(x), float(t), str(n)) for x, t, n in data["commits"])
        achieved += float(data["report"]["rate"])

    def complete() -> bool:
        return all(x in cdc_arrivals.tx_lsns for x, _, _ in commits[-50:])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not complete():
        time.sleep(0.5)
    time.sleep(3)  # the last events' transaction
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    cdc_arrivals.stop.set()
    event_arrivals.stop.set()
    cdc_arrivals.join(10)
    event_arrivals.join(10)
    transformer: dict[str, Any] = {}
    if os.path.exists(report):
        transformer = json.loads(Path(report).read_text())
        os.unlink(report)
    delete_groups(settings, [group])

    debezium: list[float] = []
    end_to_end: list[float] = []
    added: list[float] = []
    missing = 0
    for xid, committed, _ in commits:
        lsns = cdc_arrivals.tx_lsns.get(xid)
        if not lsns:
            missing += 1
            continue
        cdc_at = max(cdc_arrivals.seen[lsn] for lsn in lsns)
        debezium.append((cdc_at - committed) * 1000)
        ev = [event_arrivals.seen[lsn] for lsn in lsns if lsn in event_arrivals.seen]
        if not ev:
            missing += 1
            continue
        end_to_end.append((max(ev) - committed) * 1000)
        added.append((max(ev) - cdc_at) * 1000)
    result: dict[str, Any] = {
        "target_rate": rate,
        "mode": mode,
        "achieved_rate": round(achieved, 1),
        "duration_s": duration,
        "operations": len(commits),
        "unmatched_operations": missing,
        "debezium_ms": percentiles(debezium),
        "end_to_end_ms": percentiles(end_to_end),
        "transformer_added_ms": percentiles(added),
    }
    result["p99_difference_ms"] = result["end_to_end_ms"]["p99"] - result["debezium_ms"]["p99"]
    result["cdc_bursts"] = bursts(cdc_arrivals.batches)
    if cpu_used is not None:
        result["cpu"] = cpu_used
    if transformer.get("batches"):
        # What the transformer did with the stream: its transactions and their cost.
        n = transformer["batches"]
        stages = transformer["stages"]
        result["transformer"] = {
            "transactions": n,
            "records_per_transaction": round(transformer["records"] / n, 1),
            "ms_per_transaction": {
                name: round(stages.get(name, 0.0) / n * 1000, 2)
                for name in ("process", "produce+commit", "begin", "send offsets", "commit")
            },
            "cpu_seconds": round(transformer["cpu_seconds"], 1),
        }
    return result


def bursts(batches: list[tuple[float, int]], gap_s: float = 0.02) -> dict[str, Any]:
    """How the CDC records arrive: records per burst (fetches less than ``gap_s`` apart)."""
    sizes: list[float] = []
    starts: list[float] = []
    last = -1.0
    for at, n in batches:
        if at - last > gap_s:
            sizes.append(0)
            starts.append(at)
        sizes[-1] += n
        last = at
    gaps = [(b - a) * 1000 for a, b in pairwise(starts)]
    return {
        "bursts": len(sizes),
        "records_per_burst": percentiles(sizes),
        "ms_between_bursts": percentiles(gaps),
    }


def main(
    rates: list[float],
    duration: float,
    debezium_poll_ms: int | None = None,
    modes: tuple[str, ...] = ("transformer",),
) -> dict[str, Any]:
    settings = bench_settings(f"{NAME}-probe")
    source = BenchSource(settings)
    if not cdc_topics(settings):
        raise SystemExit(NO_SOURCE)
    if not source.is_running():
        source.resume_connector()
        time.sleep(10)
    register_bench_subjects(settings)
    shipped = source.connect.get_config(source.connector)
    if debezium_poll_ms is not None:
        # Debezium hands records to Connect when max.batch.size is reached or
        # poll.interval.ms (500 ms) has passed: a variant with a shorter wait shows
        # what the transformer adds when records arrive in smaller bursts.
        source.set_config({**shipped, "poll.interval.ms": str(debezium_poll_ms)})
    try:
        runs = [
            run_rate(settings, source, rate, duration, mode) for mode in modes for rate in rates
        ]
    finally:
        if debezium_poll_ms is not None:
            source.set_config(shipped)
    poll = (
        debezium_poll_ms
        if debezium_poll_ms is not None
        else shipped.get("poll.interval.ms", "500 (default)")
    )
    for r in runs:
        r["debezium_poll_interval_ms"] = poll
    rows: list[list[Any]] = []
    for r in runs:
        for label, key in (
            ("Debezium (commit -> CDC record)", "debezium_ms"),
            ("end to end (commit -> event)", "end_to_end_ms"),
            ("transformer added (CDC -> event)", "transformer_added_ms"),
        ):
            p = r[key]
            rows.append(
                [
                    f"{r['target_rate']:,.0f}/s ({r['achieved_rate']:,.0f} reached)"
                    + ("" if r["mode"] == "transformer" else f", {r['mode']}"),
                    label,
                    p["n"],
                    round(p["p50"], 1),
                    round(p["p95"], 1),
                    round(p["p99"], 1),
                    round(p["max"], 1),
                ]
            )
    print()
    print(
        table(
            "Latency (ms) from the PostgreSQL commit to the record visible to a read_committed "
            f"consumer (Debezium poll.interval.ms {poll})",
            ["workload", "measured", "operations", "p50", "p95", "p99", "max"],
            rows,
        )
    )
    print()
    print(
        table(
            "How Debezium delivers: CDC records per burst (fetches < 20 ms apart) and time between bursts",
            ["workload", "bursts", "records p50", "records p95", "records max", "ms apart p50"],
            [
                [
                    f"{r['target_rate']:,.0f}/s",
                    r["cdc_bursts"]["bursts"],
                    r["cdc_bursts"]["records_per_burst"]["p50"],
                    r["cdc_bursts"]["records_per_burst"]["p95"],
                    r["cdc_bursts"]["records_per_burst"]["max"],
                    round(r["cdc_bursts"]["ms_between_bursts"]["p50"], 1),
                ]
                for r in runs
            ],
        )
    )
    with_tx = [r for r in runs if "transformer" in r]
    if with_tx:
        print()
        print(
            table(
                "The transformer's transactions meanwhile (ms per transaction)",
                [
                    "workload",
                    "transactions",
                    "records each",
                    "process",
                    "produce+commit",
                    "of it: begin",
                    "send offsets",
                    "commit",
                ],
                [
                    [
                        f"{r['target_rate']:,.0f}/s",
                        r["transformer"]["transactions"],
                        r["transformer"]["records_per_transaction"],
                        r["transformer"]["ms_per_transaction"]["process"],
                        r["transformer"]["ms_per_transaction"]["produce+commit"],
                        r["transformer"]["ms_per_transaction"]["begin"],
                        r["transformer"]["ms_per_transaction"]["send offsets"],
                        r["transformer"]["ms_per_transaction"]["commit"],
                    ]
                    for r in with_tx
                ],
            )
        )
    with_cpu = [r for r in runs if "cpu" in r]
    if with_cpu:
        parts = list(dict.fromkeys(p for r in with_cpu for p in r["cpu"]["cpu_seconds"]))
        print()
        print(
            table(
                "CPU while the workload ran: the machine's cores busy (100% = every core all the "
                "time) and CPU seconds of each part",
                ["workload", "seconds", "cores", "busy %", *parts],
                [
                    [
                        f"{r['target_rate']:,.0f}/s"
                        + ("" if r["mode"] == "transformer" else f", {r['mode']}"),
                        r["cpu"]["window_s"],
                        r["cpu"]["cores"],
                        r["cpu"]["machine_busy_pct"],
                        *(r["cpu"]["cpu_seconds"].get(p, 0.0) for p in parts),
                    ]
                    for r in with_cpu
                ],
            )
        )
    figures = {"debezium_poll_interval_ms": poll, "runs": runs}
    path = write_result(
        "latency" if debezium_poll_ms is None else f"latency-poll{debezium_poll_ms}ms", figures
    )
    say(f"wrote {path}")
    return figures
