"""Child processes of the benchmarks: a transformer (or the raw passthrough), and a timed workload.

    python -m benchmarks.worker drain --mode transformer|passthrough --group G --instance I --report FILE
        [--expect N] [--idle S] [--until ENDS.json]
    python -m benchmarks.worker workload --rate R --duration S --out FILE

``drain`` builds the transformer exactly as ``cdcflow run`` does
(:func:`pipeline.transformer.build_transformer` from the settings, then
``Transformer.run``), with the bench's names, and reports what it measured:
the time from the first record received to the last transaction committed,
records and events, the time spent in each stage (``time.perf_counter``
around consume, decode, de-duplication, map, serialize, produce, commit), and
its resident memory sampled as the records go by, and its timeline (start,
``init_transactions``, partitions assigned, first and last record, stop,
exit). With ``--until`` only the records below the given end offsets count: a
record written after them (the bench connector's heartbeat) is counted apart
and does not keep the drain from going idle. The passthrough mode is the
same daemon with the processing step replaced by copying each record's key
and value to one topic: same consumer, same producer, same transactions.

``workload`` runs the shop's business operations at a steady rate and notes,
for each, the source transaction id and the wall-clock time its commit
returned, for the latency benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import psutil
import psycopg
from confluent_kafka import Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from benchmarks.common import DOMAIN, PASSTHROUGH_TOPIC, bench_settings, use_event_domain
from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.domains.shop.workload import Workload
from pipeline.serde import EventSerializer
from pipeline.settings import Settings
from pipeline.transformer import BatchResult, Metrics, OutRecord, Transformer, build_transformer
from pipeline.transformer import batch as batch_module

F = TypeVar("F", bound=Callable[..., Any])
RSS_EVERY = 10_000


class Passthrough(Transformer):
    """The daemon with step 2 replaced by a copy: the bytes in are the bytes out."""

    def process(self, msgs: list[Message]) -> BatchResult:
        res = BatchResult()
        out = res.out
        for msg in msgs:
            res.take(msg)
            out.append(OutRecord(PASSTHROUGH_TOPIC, msg.key(), msg.value(), []))
        return res


def build(mode: str, settings: Settings, instance: str) -> Transformer:
    if mode in ("transformer", "overlapped"):
        return build_transformer(settings, instance=instance, metrics=Metrics())
    serializer = EventSerializer(
        SchemaRegistryClient(settings.registry.client_config()), settings.transformer.schemas_dir
    )
    return Passthrough(
        settings,
        load_domain(DOMAIN).rules,
        discover_events([DOMAIN]),
        serializer,
        instance=instance,
        metrics=Metrics(),
    )


class Stages:
    """Seconds spent in each stage, summed (``clock`` around each call: wall time by default)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.clock = clock

    def timed(self, name: str, fn: F) -> F:
        seconds, calls, clock = self.seconds, self.calls, self.clock
        seconds.setdefault(name, 0.0)
        calls.setdefault(name, 0)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += clock() - started
                calls[name] += 1

        return wrapper  # type: ignore[return-value]


class TimedProducer:
    """The daemon's producer, with its blocking transaction calls timed."""

    def __init__(self, inner: Any, stages: Stages) -> None:
        self._inner = inner
        self.begin_transaction = stages.timed("begin", inner.begin_transaction)
        self.send_offsets_to_transaction = stages.timed(
            "send offsets", inner.send_offsets_to_transaction
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def instrument(t: Transformer, stages: Stages) -> None:
    """Time the daemon's stages where they are called, without changing what they do."""
    make_producer = t.clients.producer
    t.clients = dataclasses.replace(
        t.clients, producer=lambda conf: cast(Producer, TimedProducer(make_producer(conf), stages))
    )
    t.consume = stages.timed("consume", t.consume)  # type: ignore[method-assign]
    t.process = stages.timed("process", t.process)  # type: ignore[method-assign]
    t.commit = stages.timed("produce+commit", t.commit)  # type: ignore[method-assign]
    cp = t.checkpoint
    cp._produce = stages.timed("produce", cp._produce)  # type: ignore[method-assign]
    cp._commit_transaction = stages.timed("commit", cp._commit_transaction)  # type: ignore[method-assign]
    if isinstance(t, Passthrough):
        return
    instrument_processing(t, stages)


def instrument_processing(t: Transformer, stages: Stages) -> Callable[[], None]:
    """Time decode, de-duplication, map and serialize; returns what undoes it."""
    decode, map_change = batch_module.decode_record, batch_module.map_change  # type: ignore[attr-defined]
    is_repeat, serialize = t.dedup.is_repeat, t.serializer.serialize
    batch_module.decode_record = stages.timed("decode", decode)  # type: ignore[attr-defined]
    batch_module.map_change = stages.timed("map", map_change)  # type: ignore[attr-defined]
    t.dedup.is_repeat = stages.timed("dedup", is_repeat)  # type: ignore[method-assign]
    t.serializer.serialize = stages.timed("serialize", serialize)  # type: ignore[method-assign]

    def undo() -> None:
        batch_module.decode_record = decode  # type: ignore[attr-defined]
        batch_module.map_change = map_change  # type: ignore[attr-defined]
        t.dedup.is_repeat = is_repeat  # type: ignore[method-assign]
        t.serializer.serialize = serialize  # type: ignore[method-assign]

    return undo


class Timeline:
    """When a drain started, set up, got its partitions and stopped (``time.time``).

    ``init_transactions`` (fencing its transactional id, aborting what an
    earlier producer of it left open) and the group's assignments are timed
    where the daemon calls them, without changing what they do.
    """

    def __init__(self, t: Transformer, started_at: float) -> None:
        self.started_at = started_at
        self.init_transactions_seconds = 0.0
        self.assignments: list[tuple[float, int]] = []  # (when, partitions assigned then)
        self.revocations: list[tuple[float, int]] = []
        self.opened_at: float | None = None
        self.stopped_at: float | None = None
        self.stop_reason = ""
        cp = t.checkpoint
        init = cp._init_producer

        def timed_init() -> Any:
            started = time.perf_counter()
            try:
                return init()
            finally:
                self.init_transactions_seconds += time.perf_counter() - started

        cp._init_producer = timed_init  # type: ignore[method-assign]
        assign, revoke = t._on_assign, t._on_revoke

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            self.assignments.append((time.time(), len(partitions)))
            assign(consumer, partitions)

        def on_revoke(consumer: Any, partitions: list[Any]) -> None:
            self.revocations.append((time.time(), len(partitions)))
            revoke(consumer, partitions)

        # Set before open(): subscribe() takes the callbacks from the instance.
        t._on_assign = on_assign  # type: ignore[method-assign]
        t._on_revoke = on_revoke  # type: ignore[method-assign]

    def stop(self, stop: threading.Event, reason: str) -> None:
        if not stop.is_set():
            self.stopped_at, self.stop_reason = time.time(), reason
        stop.set()

    FIELDS = (
        "started_at",
        "opened_at",
        "init_transactions_seconds",
        "assignments",
        "revocations",
        "stopped_at",
        "stop_reason",
    )

    def as_dict(self) -> dict[str, Any]:
        """The timeline so far; ``exited_at`` is now."""
        return {name: getattr(self, name) for name in self.FIELDS} | {"exited_at": time.time()}


def read_ends(path: str) -> dict[tuple[str, int], int]:
    """The end offsets a drain counts records up to (see :func:`records_before`)."""
    return {
        (topic, partition): offset
        for topic, partition, offset in json.loads(Path(path).read_text())
    }


def records_before(res: BatchResult, ends: dict[tuple[str, int], int]) -> int:
    """The records of ``res`` at offsets below ``ends`` (none of a partition not in ``ends``).

    A batch holds consecutive offsets of each partition, from ``first`` to ``next_offsets``.
    """
    return sum(
        max(0, min(following, ends.get(tp, 0)) - res.first[tp])
        for tp, following in res.next_offsets.items()
    )


def idle_since(last_at: float | None, assignments: list[tuple[float, int]] | None) -> float | None:
    """Since when a drain has been idle: its last record counted, or None before the first.

    ``assignments`` (when, partitions), given when the drain has ends: every
    record it counts is written already, so partitions assigned with nothing
    below the ends (another member drained them) start the idle clock too.
    """
    since = [at for at, n in assignments or () if n]
    if last_at is not None:
        since.append(last_at)
    return max(since) if since else None


def any_before(msgs: list[Message], ends: dict[tuple[str, int], int]) -> bool:
    """Whether one of ``msgs`` is below the end of its partition."""
    for msg in msgs:
        topic, partition, offset = batch_module.where(msg)
        if offset < ends.get((topic, partition), 0):
            return True
    return False


def drain(args: argparse.Namespace) -> None:
    started_at = time.time()  # the interpreter and the imports are ready
    use_event_domain()
    if args.mode == "overlapped":  # the transformer with its commit overlapped
        os.environ["CDCFLOW_TRANSFORMER__OVERLAP_COMMIT"] = "true"
    settings = bench_settings(args.group, instance_prefix=args.group)
    t = build(args.mode, settings, args.instance)
    timeline = Timeline(t, started_at)
    stages = Stages()
    if not args.no_stages:
        instrument(t, stages)
    me = psutil.Process()
    stop = threading.Event()
    ends = read_ends(args.until) if args.until else None
    state: dict[str, Any] = {
        "records": 0,
        "records_past_end": 0,
        "last_past_end_at": None,
        "events": 0,
        "batches": 0,
        "first_at": None,
        "last_at": None,
        "rss": [],
    }
    next_sample = 0
    consume = t.consume

    def consume_and_note(*args: Any, **kwargs: Any) -> list[Message]:
        msgs = consume(*args, **kwargs)
        if msgs and state["first_at"] is None and (ends is None or any_before(msgs, ends)):
            state["first_at"] = time.time()
        return msgs

    t.consume = consume_and_note  # type: ignore[method-assign]

    def on_batch(res: BatchResult) -> None:
        nonlocal next_sample
        records = res.records if ends is None else records_before(res, ends)
        if records < res.records:  # written after the drain's end (the connector's heartbeats)
            state["records_past_end"] += res.records - records
            state["last_past_end_at"] = time.time()
            if not records:
                return
        state["records"] += records
        state["events"] += (
            sum(res.produced.values()) if args.mode != "passthrough" else len(res.out)
        )
        state["batches"] += 1
        state["last_at"] = time.time()
        if state["records"] >= next_sample:
            state["rss"].append((state["records"], me.memory_info().rss))
            next_sample += RSS_EVERY
        if args.expect and state["records"] >= args.expect:
            timeline.stop(stop, "expected records")

    def watch() -> None:
        started = time.monotonic()
        while not stop.wait(0.25):
            last = idle_since(state["last_at"], timeline.assignments if ends else None)
            if last is None:
                if time.monotonic() - started > args.start_timeout:
                    timeline.stop(stop, "start timeout")
            elif time.time() - last > args.idle:
                timeline.stop(stop, "idle")

    def on_term(signum: int, _frame: Any) -> None:
        timeline.stop(stop, "SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    t.open()
    timeline.opened_at = time.time()
    rss_start = me.memory_info().rss
    threading.Thread(target=watch, daemon=True).start()
    gc_before = sum(s["collections"] for s in gc.get_stats())
    t.run(stop, on_batch=on_batch)
    report = {
        "mode": args.mode,
        "instance": args.instance,
        "records": state["records"],
        "records_past_end": state["records_past_end"],
        "last_past_end_at": state["last_past_end_at"],
        "events": state["events"],
        "batches": state["batches"],
        "first_at": state["first_at"],
        "last_at": state["last_at"],
        "stages": stages.seconds,
        "stage_calls": stages.calls,
        "rss_start": rss_start,
        "rss": state["rss"],
        "rss_end": me.memory_info().rss,
        "gc_collections": sum(s["collections"] for s in gc.get_stats()) - gc_before,
        "cpu_seconds": sum(me.cpu_times()[:2]),
        "totals": t.metrics.totals(),
        "timeline": timeline.as_dict(),
    }
    Path(args.report).write_text(json.dumps(report))


class TimedWorkload(Workload):
    """The shop workload, noting each operation's transaction id and commit time."""

    def __init__(self, conn: psycopg.Connection[Any], rng_seed: int | None = None) -> None:
        super().__init__(conn, rng_seed)
        self.commits: list[tuple[int, float, str]] = []

    def step(self, name: str) -> bool:
        op: Callable[[], bool] = getattr(self, name)
        with self.conn.transaction():
            done = op()
            row = (
                self.conn.execute("SELECT pg_current_xact_id()::text").fetchone() if done else None
            )
        committed = time.time()
        if row is not None:
            # Debezium's source.txId is the 32-bit xid; pg_current_xact_id() adds the epoch.
            self.commits.append((int(row[0]) & 0xFFFFFFFF, committed, name))
        return done


def workload(args: argparse.Namespace) -> None:
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        w = TimedWorkload(conn, rng_seed=args.seed)
        report = w.run(args.rate, duration=args.duration)
    Path(args.out).write_text(json.dumps({"report": report.as_dict(), "commits": w.commits}))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drain")
    d.add_argument(
        "--mode",
        choices=["transformer", "overlapped", "passthrough"],
        default="transformer",
        help="overlapped: the transformer with transformer.overlap_commit on",
    )
    d.add_argument("--group", required=True)
    d.add_argument("--instance", default="0")
    d.add_argument("--report", required=True)
    d.add_argument(
        "--expect", type=int, default=0, help="stop once this many records are committed"
    )
    d.add_argument("--idle", type=float, default=10.0, help="stop after this long without records")
    d.add_argument(
        "--until",
        default=None,
        metavar="FILE",
        help="JSON [[topic, partition, offset], ...]: only records below these offsets count "
        "(records written after them neither count nor keep the drain from going idle)",
    )
    d.add_argument("--start-timeout", type=float, default=180.0)
    d.add_argument("--no-stages", action="store_true", help="no stage timing")
    w = sub.add_parser("workload")
    w.add_argument("--dsn", required=True)
    w.add_argument("--rate", type=float, required=True)
    w.add_argument("--duration", type=float, required=True)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.command == "drain":
        drain(args)
    else:
        workload(args)


if __name__ == "__main__":
    main()
