"""Fault injection around the real shop pipeline, checked against the database's history.

A fault test: install the audit triggers (tests/support/oracle.py), note the
WAL position, run a workload of business operations while a fault is
injected, let the pipeline catch up, then read every event produced for
changes after that position (read_committed, plain AvroDeserializer) and
compare them with what the database's history says they must be.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.domains.shop.workload import Workload, WorkloadReport
from pipeline.serde.avro import reader
from pipeline.settings import Settings
from tests.support.oracle import History, Verdict, compare, expected_events, install_audit

EVENT_TOPICS = ["shop.customer.events", "shop.order.events", "shop.product.events"]


def lsn_int(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class TransformerProcess:
    """``cdcflow run`` as a child process that can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path, instance: str) -> None:
        self.env, self.log, self.instance = env, log, instance
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
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

    def stop(self) -> int:
        """SIGTERM: the daemon finishes its batch and exits; returns its exit code."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(60)


class FaultRun:
    def __init__(self, settings: Settings, name: str, tmp: Path) -> None:
        self.settings = settings
        self.name = name
        self.dlq = f"cdcflow.dlq.chaos-{name}-{uuid.uuid4().hex[:6]}"
        env = dict(os.environ)
        env["CDCFLOW_TRANSFORMER__DEAD_LETTER_TOPIC"] = self.dlq
        env["CDCFLOW_STACK__HOME"] = str(settings.stack.home.resolve())
        env["PYTHONUNBUFFERED"] = "1"
        self.transformer = TransformerProcess(
            env, tmp / f"transformer-{name}.log", instance=f"chaos-{name}"
        )
        with psycopg.connect(settings.source.dsn(), autocommit=True) as conn:
            self.audit_from = install_audit(conn)
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            self.start_lsn = lsn_int(row[0])
        self.started_ms = int(time.time() * 1000) - 5000

    def workload(
        self, count: int, rate: float, seed: int
    ) -> tuple[threading.Thread, list[WorkloadReport]]:
        reports: list[WorkloadReport] = []

        def run() -> None:
            with psycopg.connect(self.settings.source.dsn(), autocommit=True) as conn:
                reports.append(Workload(conn, seed).run(rate, count=count))

        thread = threading.Thread(target=run, name=f"workload-{self.name}", daemon=True)
        thread.start()
        return thread, reports

    def history(self) -> History:
        with psycopg.connect(self.settings.source.dsn(), autocommit=True) as conn:
            return expected_events(conn, self.audit_from)

    def collect(
        self, history: History, timeout_s: float = 300.0
    ) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """Events for changes after the start position, per aggregate, in partition order.

        Reads until every expected event is there (and each partition to its
        end), or the timeout passes: the pipeline may still be catching up.
        """
        deadline = time.monotonic() + timeout_s
        found: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        deserializer = reader(SchemaRegistryClient(self.settings.registry.client_config()))
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": f"chaos-read-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            meta = consumer.list_topics(timeout=30)
            parts = [
                TopicPartition(t, p, self.started_ms)
                for t in EVENT_TOPICS
                for p in meta.topics[t].partitions
            ]
            start = consumer.offsets_for_times(parts, timeout=30)
            consumer.assign(
                [
                    TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -1)
                    for tp in start
                ]
            )
            at_end: set[tuple[str, int]] = set()
            total = 0
            while time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    tp = (msg.topic(), msg.partition())
                    if msg.error():
                        assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                        at_end.add(tp)
                        continue
                    at_end.discard(tp)
                    value = deserializer(
                        msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)
                    )
                    meta_ = value["metadata"]
                    lsn = meta_["source"]["lsn"]
                    if lsn is None or lsn < self.start_lsn or meta_["source"]["snapshot"]:
                        continue
                    found[(meta_["aggregate_type"], meta_["aggregate_id"])].append(
                        (str(meta_["event_id"]), meta_["event_type"])
                    )
                    total += 1
                if len(at_end) == len(start) and total >= history.events:
                    break
        finally:
            consumer.close()
        return found

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
        history = self.history()
        found = self.collect(history, timeout_s)
        verdict = compare(history, found)
        print(
            f"[{self.name}] {verdict.line()}, dead letters {self.dead_letters()}, "
            f"transformer starts {self.transformer.starts}",
            flush=True,
        )
        return verdict


def at_random_times(
    n: int,
    between: tuple[float, float],
    action: Callable[[int], Any],
    rng: random.Random,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    for i in range(n):
        if stop():
            return
        time.sleep(rng.uniform(*between))
        action(i)
