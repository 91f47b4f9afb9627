"""Helpers of the scaling and cluster fault tests, beside :mod:`tests.chaos.harness`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from pipeline.settings import Settings
from tests.chaos.harness import FaultRun, TransformerProcess
from tests.support.oracle import Verdict


def start_group_at_end(settings: Settings, group: str) -> int:
    """Commit ``group``'s offsets at the end of every CDC topic; return the partitions.

    A new group would otherwise start at the topics' beginning and work
    through every change earlier tests made before reaching this test's. A CDC
    topic that does not exist yet (the cluster's connector takes no snapshot,
    so Connect creates a table's topic with its first change) needs nothing:
    the transformer reads a new topic from its beginning (auto.offset.reset
    earliest), and everything in it comes after this call.
    """
    pattern = re.compile(settings.transformer.topics)
    consumer = Consumer(
        settings.kafka.client_config("consumer") | {"group.id": group, "enable.auto.commit": False}
    )
    try:
        topics = consumer.list_topics(timeout=30).topics
        ends = []
        for topic in sorted(t for t in topics if pattern.match(t)):
            for partition in topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                ends.append(TopicPartition(topic, partition, high))
        if ends:
            consumer.commit(offsets=ends, asynchronous=False)
        return len(ends)
    finally:
        consumer.close()


def assert_exact(run: FaultRun, timeout_s: float = 300.0) -> Verdict:
    """Every change's events exactly once, payloads equal, in order, nothing dead-lettered."""
    return run.assert_exact(timeout_s)


def wait_for_log(proc: TransformerProcess, text: str, timeout_s: float = 60.0) -> None:
    """Wait until the process's log shows ``text`` (it fails the test when the process dies)."""
    proc.wait_for_log(text, timeout_s)


def wait_exit(proc: TransformerProcess, timeout_s: float = 60.0) -> int:
    assert proc.proc is not None
    return proc.proc.wait(timeout_s)


def totals(log: Path) -> dict[str, Any]:
    """The counters a transformer prints as its last JSON line when it exits."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith('{"transformer"'):
            return dict(json.loads(line))
    return {}


def consumed(log: Path) -> int:
    return int(sum(totals(log).get("consumed", {}).values()))


@contextmanager
def transformers() -> Iterator[list[TransformerProcess]]:
    """Track the transformer processes a test starts; SIGKILL those still alive at the end.

    A process left running after a failed test would go on producing the same
    events (their ids are deterministic) and every later check would count
    them as duplicates.
    """
    started: list[TransformerProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.alive():
                proc.kill()


def start(
    started: list[TransformerProcess], env: dict[str, str], logs: Path, instance: str, log: str
) -> TransformerProcess:
    """``cdcflow run --instance <instance>``, logging to ``<logs>/transformer-<log>.log``."""
    proc = TransformerProcess(env, logs / f"transformer-{log}.log", instance=instance)
    proc.start()
    started.append(proc)
    return proc
