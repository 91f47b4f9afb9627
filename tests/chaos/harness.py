"""Fault injection around the real shop pipeline, checked against the database's history.

A fault test:

1. installs the audit triggers (tests/support/oracle.py) and notes which
   transactions had committed (the run checks the changes of all others);
2. runs a workload of business operations in a thread
   (:class:`WorkloadThread`) that keeps writing until the test says the
   faults are over, plus a tail;
3. injects its faults when the workload has made a given number of changes
   (:meth:`FaultRun.wait_changes`), inside :meth:`FaultRun.fault`, which
   records how many changes were made while the fault lasted and whether the
   workload was still writing when it ended; the test asserts a floor on both;
4. waits until the pipeline is idle: the connector's committed source
   offset has passed the WAL position after the workload, and the
   transformer's group has committed offsets at the end of every CDC
   partition;
5. reads every event topic to its true end (read_committed, a plain
   AvroDeserializer), every event of the test's time window but those of
   transactions committed before it began, snapshot reads and events
   without an LSN included, and compares them, payload by payload
   and in order per aggregate, with what the database's history says they
   must be.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.connect import ConnectClient
from pipeline.domains.shop.workload import Workload, WorkloadReport
from pipeline.errors import CdcflowError
from pipeline.serde.avro import reader
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.support.oracle import (
    Found,
    History,
    Snapshot,
    Verdict,
    audit_seq,
    compare,
    expected_events,
    found_event,
    install_audit,
)
from tests.support.pipeline import wait_streaming

EVENT_TOPICS = ["shop.customer.events", "shop.order.events", "shop.product.events"]
# Answers to "the group's committed offsets" that mean "ask again" (see FaultRun.wait_idle).
_NOT_YET = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


def lsn_int(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class TransformerProcess:
    """``cdcflow run`` as a child process that can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path, instance: str) -> None:
        self.env, self.log, self.instance = env, log, instance
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_from = 0  # where this start's output begins in the (appended) log

    def start(self) -> None:
        self.log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "-v",
                    "run",
                    "--instance",
                    self.instance,
                    "--metrics-port",
                    "0",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What this start of the process has logged so far."""
        with self.log.open("rb") as f:
            f.seek(self.log_from)
            return f.read().decode(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 120.0) -> None:
        """Wait until this start of the process logs ``text``; fail when it dies first."""
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            assert self.alive(), f"transformer {self.instance} exited:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"transformer {self.instance} never logged {text!r}:\n{self.output()[-3000:]}"
            )
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM: the daemon finishes its batch and exits; returns its exit code."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(60)

    def story(self, limit: int = 80) -> str:
        """What a failed test needs of this process's log: its group and transaction events.

        Assignments, revocations, batches committed on revocation or dropped,
        aborts, fences, warnings and errors, the repeats it dropped per
        partition (debug lines, counted) and its exit code.
        """
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        keep, repeats = [], Counter[str]()
        for line in text.splitlines():
            if "dropped repeat " in line:
                repeats[line.split("dropped repeat ", 1)[1].split("@", 1)[0]] += 1
            elif any(word in line for word in _STORY_WORDS):
                keep.append(line[:1200])
        code = self.proc.poll() if self.proc is not None else None
        head = f"--- transformer {self.instance} ({self.log.name}), exit code {code}"
        shown = keep if len(keep) <= limit else [*keep[:20], "...", *keep[-(limit - 20) :]]
        dropped = f"repeats dropped: {dict(repeats)}" if repeats else "repeats dropped: none"
        return "\n".join([head, *shown, dropped])


# The log lines of a transformer that tell a failed test's story (TransformerProcess.story).
_STORY_WORDS = (
    "assigned ",
    "revoked ",
    "lost",
    "committing the processed",
    "aborted",
    "fenced",
    "WARNING",
    "ERROR",
    "error:",
    "SIGTERM",
    '{"transformer"',
)


def _latest(
    admin: AdminClient, parts: list[TopicPartition], level: IsolationLevel
) -> dict[tuple[str, int], int]:
    """Each partition's end as a reader of ``level`` sees it (the last stable offset, or the end)."""
    asked = admin.list_offsets(
        {tp: OffsetSpec.latest() for tp in parts}, isolation_level=level, request_timeout=30
    )
    return {(tp.topic, tp.partition): f.result().offset for tp, f in asked.items()}


def offsets_at(
    consumer: Consumer, parts: list[TopicPartition], timeout_s: float = 120.0
) -> dict[tuple[str, int], int]:
    """Each partition's first offset at or after the time in its ``TopicPartition``.

    -1 (the end) where no record is that recent. A partition that answers
    with an error (its leader moving, as after a broker came back) is asked
    again: taken as "no record", the error would leave every event of the
    partition unread, and the run would count them missing.
    """
    out: dict[tuple[str, int], int] = {}
    todo = list(parts)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answers = consumer.offsets_for_times(todo, timeout=30)
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() not in _NOT_YET:
                raise
            answers = []
        for tp in answers:
            if tp.error is None:
                out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else -1
        todo = [tp for tp in parts if (tp.topic, tp.partition) not in out]
        if not todo:
            return out
        assert time.monotonic() < deadline, (
            f"offsets_for_times still failing after {timeout_s}s: "
            + ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in answers if tp.error)
        )
        time.sleep(1)


def _listener(port: int) -> int | None:
    """The pid of the process listening on ``port``, if any."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def bring_back(stack: LocalStack, component: Any, attempts: int = 3) -> None:
    """Start a component of the local stack that a fault test stopped or killed.

    Returns once it answers. The stack is shared: another session's ``stack``
    fixture may have seen the component down and started it meanwhile. Its
    process is then adopted (recorded as the component's), so that ``cdcflow
    stack status`` and the next fault see it.
    """
    for attempt in range(1, attempts + 1):
        if not component.proc.running() and (pid := _listener(component.port)) is not None:
            component.proc.record(pid)
            print(f"[chaos] {component.name} was started by another session: pid {pid} adopted")
        try:
            component.start(stack.artifacts(), progress=print)  # waits until it answers
            return
        except CdcflowError as exc:
            if attempt == attempts:
                raise
            print(f"[chaos] {component.name}: {exc}; trying again")
            time.sleep(5)


class WorkloadThread:
    """Shop business operations in a thread, until the test's faults are over.

    It runs at least ``min_ops`` operations, and after :meth:`finish` a tail
    of operations more, so that every fault lands while it writes. At most
    ``max_ops``: a test that never calls :meth:`finish` does not run forever.
    Its error, if any, is raised by :meth:`join`.
    """

    def __init__(
        self, dsn: str, *, rate: float, seed: int, min_ops: int, max_ops: int, name: str
    ) -> None:
        self.dsn, self.rate, self.seed = dsn, rate, seed
        self.min_ops, self.max_ops = min_ops, max_ops
        self.report: WorkloadReport | None = None
        self.error: BaseException | None = None
        self.trace = ""
        self.deadlocks = 0
        self._attempts = 0
        self._stop_at: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"workload-{name}", daemon=True)

    def start(self) -> WorkloadThread:
        self._thread.start()
        return self

    def _should_stop(self) -> bool:
        # Called once before each operation (and once more before the loop ends).
        self._attempts += 1
        if self._attempts > self.max_ops:
            return True
        return self._stop_at is not None and self._attempts > self._stop_at

    def _run(self) -> None:
        # A deadlock (another session's fixture altering the shared shop tables)
        # aborts one operation's transaction whole: the workload goes on, as an
        # application would; the operations of the interrupted run go uncounted.
        try:
            while True:
                try:
                    with psycopg.connect(self.dsn, autocommit=True) as conn:
                        seed = self.seed + self.deadlocks
                        report = Workload(conn, seed).run(self.rate, should_stop=self._should_stop)
                    break
                except psycopg.errors.DeadlockDetected as exc:
                    self.deadlocks += 1
                    print(f"[workload] deadlock victim, going on: {exc.diag.message_detail}")
                    if self.deadlocks > 20:
                        raise
            self.report = report
        except BaseException as exc:
            self.error = exc
            self.trace = traceback.format_exc()

    def finish(self, tail_ops: int = 0) -> None:
        """The faults are over: run ``tail_ops`` more operations (at least ``min_ops`` in all)."""
        self._stop_at = max(self.min_ops, self._attempts + tail_ops)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> WorkloadThread:
        return self

    def __exit__(self, *exc: object) -> None:
        # However the test ends, the workload stops writing before the next test.
        self._stop_at = 0
        self._thread.join(60)

    def check(self) -> None:
        """Fail the test if the workload failed."""
        if self.error is not None:
            raise AssertionError(f"the workload failed: {self.error!r}\n{self.trace}")

    def join(self, timeout_s: float = 600.0) -> WorkloadReport:
        """Wait for the end; the workload's own error fails the test."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the workload still runs after {timeout_s}s"
        self.check()
        assert self.report is not None
        return self.report


@dataclass(frozen=True)
class Fault:
    """One injected fault: changes made before it began and when it ended."""

    label: str
    at: int
    until: int
    writing: bool  # the workload was still writing when the fault ended

    @property
    def during(self) -> int:
        return self.until - self.at


class FaultRun:
    def __init__(self, settings: Settings, name: str, tmp: Path) -> None:
        self.settings = settings
        self.name = name
        self.group = settings.transformer.group_id  # whose committed offsets mean "idle"
        self.connector = "shop-postgres"
        self.dlq = f"cdcflow.dlq.chaos-{name}-{uuid.uuid4().hex[:6]}"
        env = dict(os.environ)
        env["CDCFLOW_TRANSFORMER__DEAD_LETTER_TOPIC"] = self.dlq
        env["CDCFLOW_STACK__HOME"] = str(settings.stack.home.resolve())
        env["PYTHONUNBUFFERED"] = "1"
        self.transformer = TransformerProcess(
            env, tmp / f"transformer-{name}.log", instance=f"chaos-{name}"
        )
        self.faults: list[Fault] = []
        self._conn = psycopg.connect(settings.source.dsn(), autocommit=True)
        self.audit_from = install_audit(self._conn)  # (for counting changes as they are made)
        self.since = Snapshot.now(self._conn)  # what the run checks: changes after this
        self.verified: tuple[Snapshot, History] | None = None  # (until, history) of verify()
        self.started_ms = int(time.time() * 1000) - 5000

    # ------------------------------------------------------------ the workload and faults

    def workload(
        self, *, rate: float, seed: int, min_ops: int, max_ops: int | None = None
    ) -> WorkloadThread:
        """Start a :class:`WorkloadThread` (``max_ops``: 10 x ``min_ops`` unless given)."""
        return WorkloadThread(
            self.settings.source.dsn(),
            rate=rate,
            seed=seed,
            min_ops=min_ops,
            max_ops=max_ops or 10 * min_ops,
            name=self.name,
        ).start()

    def changes(self) -> int:
        """Row changes made since the run began (the audit's count)."""
        return audit_seq(self._conn) - self.audit_from

    def wait_changes(self, n: int, workload: WorkloadThread, timeout_s: float = 600.0) -> int:
        """Wait until ``n`` changes were made; fail if the workload stops first."""
        deadline = time.monotonic() + timeout_s
        while (made := self.changes()) < n:
            workload.check()
            assert workload.alive(), f"the workload ended after {made} of {n} changes"
            assert time.monotonic() < deadline, f"{made} of {n} changes after {timeout_s}s"
            time.sleep(0.1)
        return made

    @contextmanager
    def fault(self, label: str, workload: WorkloadThread) -> Iterator[None]:
        """Record the changes made while the body (the fault, until it is over) runs."""
        at = self.changes()
        yield
        workload.check()
        fault = Fault(label, at, self.changes(), workload.alive())
        self.faults.append(fault)
        print(
            f"[{self.name}] {label}: from change {fault.at} to {fault.until} "
            f"({fault.during} during it){'' if fault.writing else ', AFTER the workload ended'}",
            flush=True,
        )

    def assert_faults_inside(self, count: int, floor_each: int) -> None:
        """``count`` faults, each ended while the workload wrote, ``floor_each`` changes during each."""
        assert len(self.faults) == count, [f.label for f in self.faults]
        late = [f.label for f in self.faults if not f.writing]
        assert not late, f"faults that ended after the workload: {late}"
        short = [(f.label, f.during) for f in self.faults if f.during < floor_each]
        assert not short, f"faults with fewer than {floor_each} changes made during them: {short}"

    # ------------------------------------------------------------ the verdict

    def history(self) -> History:
        """What the changes made since the run began must yield (all of them, when idle)."""
        return expected_events(self._conn, self.since, Snapshot.now(self._conn))

    def wait_idle(self, timeout_s: float = 600.0) -> None:
        """Wait until the pipeline has turned every change made so far into events.

        First the connector: the source offset Connect committed for it must
        reach the WAL position of now. Connect commits a source offset only
        once every record before it was written to Kafka (a record seen on one
        CDC partition says nothing of another partition's, which the producer
        may still retry after a broker came back). A marker written now
        moves the connector past that position. Then the transformer's group
        must have committed offsets (each in the transaction of its events) at
        the end of every CDC partition as it is then. Last, no transaction may
        be open on an event partition (:meth:`_wait_transactions_ended`).
        """
        row = self._conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        end_lsn = lsn_int(row[0])
        wait_streaming(self.settings, timeout_s)
        self._wait_connector_offset(end_lsn, timeout_s)
        pattern = re.compile(self.settings.transformer.topics)
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {"group.id": self.group, "enable.auto.commit": False}
        )
        try:
            topics = consumer.list_topics(timeout=30).topics
            ends = {
                (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
                for t in sorted(topics)
                if pattern.match(t)
                for p in topics[t].partitions
            }
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    committed = consumer.committed(
                        [TopicPartition(t, p) for t, p in ends], timeout=30
                    )
                except KafkaException as exc:
                    # A read_committed consumer asks for stable offsets: while a killed or
                    # fenced member's transaction still holds offsets of this group (until
                    # the coordinator aborts it, transaction.timeout.ms), the answer is
                    # "unstable" and librdkafka asks again until its timeout. And after a
                    # broker came back, the group's coordinator moves (not coordinator,
                    # loading). Not yet idle.
                    if exc.args[0].code() not in _NOT_YET:
                        raise
                    self._check_transformer()
                    assert time.monotonic() < deadline, (
                        f"group {self.group}: no stable committed offsets after {timeout_s}s"
                    )
                    continue
                behind = {
                    (tp.topic, tp.partition): ends[(tp.topic, tp.partition)] - tp.offset
                    for tp in committed
                    if tp.offset < ends[(tp.topic, tp.partition)]
                    and ends[(tp.topic, tp.partition)] > 0
                }
                if not behind:
                    break
                self._check_transformer()
                assert time.monotonic() < deadline, (
                    f"group {self.group} still behind after {timeout_s}s: {behind}"
                )
                time.sleep(0.5)
        finally:
            consumer.close()
        self._wait_transactions_ended(timeout_s)

    def _wait_transactions_ended(self, timeout_s: float) -> None:
        """Wait until no transaction is open on an event partition.

        A ``read_committed`` reader reads a partition only up to its first open
        transaction (its last stable offset). A SIGKILLed transformer's stays
        open until the coordinator aborts it (``transaction.timeout.ms``), and
        one that sent no offsets holds back no committed offset: read before it
        ends, every event after it would be counted missing.
        """
        admin = AdminClient(self.settings.kafka.client_config())
        meta = admin.list_topics(timeout=30)
        parts = [TopicPartition(t, p) for t in EVENT_TOPICS for p in meta.topics[t].partitions]
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        said = False
        while True:
            try:
                stable = _latest(admin, parts, IsolationLevel.READ_COMMITTED)
                high = _latest(admin, parts, IsolationLevel.READ_UNCOMMITTED)
            except KafkaException as exc:
                stable, high = {}, {(tp.topic, tp.partition): 1 for tp in parts}
                print(f"[{self.name}] listing offsets: {exc}; asking again", flush=True)
            open_ = {
                tp: (stable.get(tp, -1), end)
                for tp, end in high.items()
                if stable.get(tp, -1) < end
            }
            if not open_:
                if said:
                    print(
                        f"[{self.name}] ... ended after {time.monotonic() - started:.0f}s",
                        flush=True,
                    )
                return
            if not said:
                print(
                    f"[{self.name}] a transaction is open on {len(open_)} event partition(s) "
                    f"(last stable offset, end): {open_}; waiting until it ends",
                    flush=True,
                )
                said = True
            assert time.monotonic() < deadline, (
                f"transactions still open after {timeout_s}s: {open_}"
            )
            time.sleep(1)

    def _check_transformer(self) -> None:
        """A transformer this run started and did not stop must still run: nothing restarts it."""
        proc = self.transformer
        if proc.starts and not proc.alive():
            raise AssertionError(
                f"transformer {proc.instance} exited ({proc.proc.returncode if proc.proc else '?'}) "
                f"before the pipeline was idle:\n{proc.output()[-3000:]}"
            )

    def _wait_connector_offset(self, lsn: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with ConnectClient.from_settings(self.settings.connect) as connect:
            while True:
                offsets = connect.offsets(self.connector).get("offsets", [])
                done = [int(o["offset"]["lsn"]) for o in offsets if o["offset"].get("lsn")]
                if done and max(done) >= lsn:
                    return
                self._check_transformer()
                assert time.monotonic() < deadline, (
                    f"connector {self.connector}: offsets {offsets} still before LSN {lsn} "
                    f"after {timeout_s}s"
                )
                time.sleep(0.5)

    def collect(
        self, until: Snapshot, timeout_s: float = 300.0, isolation: str = "read_committed"
    ) -> dict[tuple[str, str], list[Found]]:
        """Every event of the run's time window, per aggregate, in partition order.

        Call it once the pipeline is idle: it reads each event partition to the
        high watermark it has now (an open transaction of a killed producer is
        waited for until it is aborted), so a duplicate written after the
        expected events is seen too. Only events of transactions that had
        committed when the run began, or had not by ``until``, are left out.
        ``isolation``: ``read_uncommitted`` reads aborted transactions' events too
        (for a failed run: is a missing event in the log at all?).
        """
        found: dict[tuple[str, str], list[Found]] = defaultdict(list)
        deserializer = reader(SchemaRegistryClient(self.settings.registry.client_config()))
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": f"chaos-read-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
                # Never move a position silently: librdkafka's default (the end)
                # would skip the rest of a partition whose position a broker
                # refused once (a leader moving), and count its events missing.
                "auto.offset.reset": "error",
            }
        )
        try:
            meta = consumer.list_topics(timeout=30)
            parts = [
                TopicPartition(t, p, self.started_ms)
                for t in EVENT_TOPICS
                for p in meta.topics[t].partitions
            ]
            ends = {
                (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
                for tp in parts
            }
            start = offsets_at(consumer, parts)
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in start.items()])
            reached: dict[tuple[str, int], int] = {}
            deadline = time.monotonic() + timeout_s
            while any(reached.get(tp, -1) < end for tp, end in ends.items()):
                assert time.monotonic() < deadline, (
                    f"event partitions not read to their end after {timeout_s}s: "
                    f"{ {tp: (reached.get(tp), end) for tp, end in ends.items()} }"
                )
                for msg in consumer.consume(1000, 0.5):
                    tp = (msg.topic(), msg.partition())
                    if msg.error():
                        code = msg.error().code()
                        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                            again = reached.get(tp, start[tp])
                            print(f"[{self.name}] reading {tp[0]}[{tp[1]}]: {msg.error().str()};"
                                  f" reading on from {again}", flush=True)  # fmt: skip
                            time.sleep(1)
                            consumer.seek(TopicPartition(tp[0], tp[1], again))
                            continue
                        assert code == KafkaError._PARTITION_EOF, msg.error()
                        reached[tp] = msg.offset()
                        continue
                    reached[tp] = msg.offset() + 1
                    value = deserializer(
                        msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)
                    )
                    tx = value["metadata"]["source"]["tx_id"]
                    if tx is not None and (self.since.before(tx) or not until.before(tx)):
                        continue  # committed before the run, or after its end
                    key, event = found_event(value, f"{tp[0]}[{tp[1]}]@{msg.offset()}")
                    found[key].append(event)
        finally:
            consumer.close()
        return found

    def in_the_log(self) -> str:
        """For a failed run (after :meth:`verify`): the comparison with every event in the log,
        aborted transactions' too, and where the events a ``read_committed`` reader missed are."""
        assert self.verified is not None, "verify() first"
        until, history = self.verified
        committed = self.collect(until)
        everything = self.collect(until, isolation="read_uncommitted")
        seen = {f.event_id for evs in committed.values() for f in evs}
        only = [f for evs in everything.values() for f in evs if f.event_id not in seen]
        where: dict[str, list[int]] = defaultdict(list)
        for f in only:
            topic, _, offset = f.where.rpartition("@")
            where[topic].append(int(offset))
        lines = [
            f"read_uncommitted: {compare(history, everything).line()}",
            f"events only a read_uncommitted reader sees: {len(only)}",
            *(
                f"  {part}: {len(offs)} event(s), offsets {min(offs)}-{max(offs)}"
                for part, offs in sorted(where.items())
            ),
        ]
        return "\n".join(lines)

    def whereabouts(self, changes: set[tuple[str, int]], timeout_s: float = 120.0) -> str:
        """Where the CDC records of ``changes`` (table, source transaction) are, by partition.

        For a failed run: a missing event whose change is in a CDC topic was
        lost by the transformer (the offsets name the member that owned it
        then); one whose change is in none was never captured.
        """
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": f"chaos-cdc-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "error",  # a refused position ends the partition's reading
            }
        )
        pattern = re.compile(self.settings.transformer.topics)
        where: dict[str, list[int]] = defaultdict(list)
        seen: set[tuple[str, int]] = set()
        try:
            topics = consumer.list_topics(timeout=30).topics
            parts = [
                TopicPartition(t, p, self.started_ms)
                for t in sorted(topics)
                if pattern.match(t)
                for p in topics[t].partitions
            ]
            ends = {
                (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
                for tp in parts
            }
            starts = offsets_at(consumer, parts)
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items() if o >= 0])
            todo = {tp for tp, offset in starts.items() if 0 <= offset < ends[tp]}
            deadline = time.monotonic() + timeout_s
            while todo and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    if msg.error() or msg.value() is None:
                        continue
                    tp = (msg.topic(), msg.partition())
                    if msg.offset() + 1 >= ends[tp]:
                        todo.discard(tp)
                    source = json.loads(msg.value()).get("payload", {}).get("source", {})
                    change = (f"{source.get('schema')}.{source.get('table')}", source.get("txId"))
                    if change in changes:
                        seen.add(change)
                        where[f"{tp[0]}[{tp[1]}]"].append(msg.offset())
        finally:
            consumer.close()
        lines = [
            f"changes of missing events: {len(changes)}; found in CDC topics {len(seen)}, "
            f"in none {len(changes - seen)}"
            + (f" (partitions not read to the end: {sorted(todo)})" if todo else "")
        ]
        lines += [
            f"  {part}: {len(offsets)} record(s), offsets {min(offsets)}-{max(offsets)}"
            for part, offsets in sorted(where.items())
        ]
        return "\n".join(lines)

    def dead_letters(self) -> int:
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {"group.id": f"chaos-dlq-{uuid.uuid4().hex[:6]}", "isolation.level": "read_committed"}
        )
        try:
            topics = consumer.list_topics(timeout=30).topics
            if self.dlq not in topics:
                return 0
            total = 0
            for p in topics[self.dlq].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.dlq, p), timeout=30)
                total += high - low
            return total
        finally:
            consumer.close()

    def verify(self, timeout_s: float = 300.0) -> Verdict:
        """Wait until idle, read everything, compare; prints the counts."""
        # The run's end: other sessions' changes after it are not its own.
        until = Snapshot.now(self._conn)
        self.wait_idle()
        history = expected_events(self._conn, self.since, until)
        self.verified = (until, history)  # for :meth:`in_the_log`
        verdict = compare(history, self.collect(until, timeout_s))
        print(
            f"[{self.name}] {verdict.line()}, dead letters {self.dead_letters()}, "
            f"transformer starts {self.transformer.starts}",
            flush=True,
        )
        return verdict

    def assert_exact(self, timeout_s: float = 300.0) -> Verdict:
        """Every change's events exactly once, payloads equal, in order, nothing dead-lettered."""
        verdict = self.verify(timeout_s)
        assert verdict.expected > 0
        assert verdict.exact, verdict.report()
        assert self.dead_letters() == 0
        return verdict

    def __enter__(self) -> FaultRun:
        return self

    def __exit__(self, *exc: object) -> None:
        # A transformer left running would go on producing the same events.
        if self.transformer.alive():
            self.transformer.kill()
        self._conn.close()
