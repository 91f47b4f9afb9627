"""What every benchmark shares: names, settings, Kafka helpers, tables and result files.

Everything a benchmark creates is named from :data:`NAME` (``cdcbench``): the
source database, its connector, slot and publication, the CDC topics
(``cdcbench.public.*``), the event topics (``cdcbench-ev.<aggregate>.events``,
the shop's event types under a domain name of their own), consumer groups and
transactional ids. Nothing of the shop's own pipeline is read or written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.contracts.catalog import discover_events
from pipeline.contracts.registry import ContractRegistry
from pipeline.events.naming import schema_path, subject_name
from pipeline.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
# Where the JSON results go; CDCFLOW_BENCH_RESULTS moves them (the test suite's
# small run must not overwrite a developer's figures).
RESULTS = Path(os.environ.get("CDCFLOW_BENCH_RESULTS") or REPO / "benchmarks" / "results")

NAME = "cdcbench"
"""Prefix of everything the benchmarks create."""
CDC_PREFIX = NAME
"""The bench connector's topic.prefix: CDC topics are cdcbench.public.<table>."""
CDC_TOPICS = rf"^{NAME}\.public\..*"
EVENT_DOMAIN = f"{NAME}-ev"
"""Domain name the shop's event types are produced under: cdcbench-ev.<aggregate>.events."""
PASSTHROUGH_TOPIC = f"{NAME}-raw.passthrough"
DOMAIN = "pipeline.domains.shop"
NO_SOURCE = (
    "no bench source: run 'python -m benchmarks throughput --keep' first "
    "(it makes the pre-load, and --keep leaves it for the others)"
)


def bench_settings(group: str, *, instance_prefix: str | None = None) -> Settings:
    """The transformer settings of ``cdcflow run``, with the bench's own names.

    Batch size, partitions of the event topics and client settings are the
    defaults a deployment starts from; only the names differ.
    """
    return load_settings(
        transformer={
            "domain": DOMAIN,
            "group_id": group,
            "transactional_id": instance_prefix or group,
            "dead_letter_topic": f"{NAME}-dlq",
            "topics": CDC_TOPICS,
            "metrics_port": 0,
            "schemas_dir": str(REPO / "schemas"),
        },
    )


def use_event_domain() -> None:
    """Produce the shop's event types to the bench's own topics (see :data:`EVENT_DOMAIN`)."""
    from pipeline.domains.shop.events import _ShopEvent

    _ShopEvent.__domain__ = EVENT_DOMAIN  # type: ignore[attr-defined]


def register_bench_subjects(settings: Settings) -> int:
    """Register the committed shop contracts under the bench topics' subjects (idempotent)."""
    use_event_domain()
    from pipeline.events.naming import event_topic

    registry = ContractRegistry(settings.registry)
    events = discover_events([DOMAIN])
    for event in events:
        text = schema_path(REPO / "schemas", event.namespace(), event.event_type()).read_text()
        registry.register(subject_name(event_topic(event), event.full_name()), text)
    return len(events)


def drain_command(
    group: str,
    report: str,
    *,
    instance: str = "0",
    mode: str = "transformer",
    expect: int = 0,
    idle: float | None = None,
    stages: bool = True,
    until: str | None = None,
) -> list[str]:
    """The command line of one ``benchmarks.worker drain`` child process."""
    command = [sys.executable, "-m", "benchmarks.worker", "drain", "--mode", mode]
    command += ["--group", group, "--instance", instance, "--report", report]
    command += ["--expect", str(expect)]
    if idle is not None:
        command += ["--idle", str(idle)]
    if not stages:
        command.append("--no-stages")
    if until is not None:
        command += ["--until", until]
    return command


def delete_bench_subjects(settings: Settings) -> None:
    """Remove the subjects :func:`register_bench_subjects` made."""
    use_event_domain()
    from pipeline.errors import RegistryError
    from pipeline.events.naming import event_topic

    registry = ContractRegistry(settings.registry)
    for event in discover_events([DOMAIN]):
        subject = subject_name(event_topic(event), event.full_name())
        for permanent in (False, True):  # a permanent delete needs a soft one first
            try:
                registry.delete_subject(subject, permanent=permanent)
            except RegistryError:
                break


# ----------------------------------------------------------------------------- Kafka


def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.client_config())


def topics_matching(settings: Settings, pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return sorted(t for t in admin(settings).list_topics(timeout=30).topics if regex.search(t))


def ensure_topic(settings: Settings, topic: str, partitions: int) -> None:
    client = admin(settings)  # held: its futures fail once the client is collected
    if topic in client.list_topics(timeout=30).topics:
        return
    future = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )[topic]
    try:
        future.result(60)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def _consumer(settings: Settings, group: str = f"{NAME}-probe") -> Consumer:
    return Consumer(
        settings.kafka.client_config("consumer")
        | {"group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed"}
    )


def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """High watermarks of every partition of ``topics``."""
    out: dict[tuple[str, int], int] = {}
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(timeout=30).topics
        for topic in topics:
            if topic not in meta:
                continue
            for p in meta[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                out[(topic, p)] = high
    finally:
        consumer.close()
    return out


def record_count(settings: Settings, topics: Sequence[str]) -> int:
    """Records in ``topics`` (non-transactional producers: offsets are records)."""
    return sum(end_offsets(settings, topics).values())


def commit_group_at_end(settings: Settings, group: str, topics: Sequence[str]) -> None:
    """Set ``group``'s committed offsets to the end of ``topics``: it reads only what comes next."""
    ends = end_offsets(settings, topics)
    consumer = _consumer(settings, group)
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, off) for (t, p), off in ends.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


def bench_groups(settings: Settings) -> list[str]:
    """Every consumer group the benchmarks made (a static member's outlives its run a while)."""
    listed = admin(settings).list_consumer_groups(request_timeout=30).result()
    return sorted(g.group_id for g in listed.valid if g.group_id.startswith(NAME))


# ----------------------------------------------------------------------------- output


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max (and the count) of ``values``."""
    if not values:
        return {
            "n": 0,
            "p50": float("nan"),
            "p95": float("nan"),
            "p99": float("nan"),
            "max": float("nan"),
        }
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
    }


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned with thousands separators."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = [
        title,
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        ),
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> dict[str, Any]:
    """The machine and the versions a figure was measured with."""
    import confluent_kafka
    import fastavro
    import psutil
    import pydantic

    from pipeline.stack.versions import load_versions

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = load_versions()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "fastavro": fastavro.__version__,
        "pydantic": pydantic.__version__,
        "kafka": versions.kafka,
        "debezium": versions.debezium,
        "registry": f"apicurio {versions.registry}",
        "postgresql": versions.postgresql_major,
        "commit": _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>.json``, with the machine and the command line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    command = " ".join(["python -m benchmarks", *sys.argv[1:]])
    document = {"benchmark": name, "command": command, "machine": machine(), **result}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


class BenchBusy(RuntimeError):
    """Another benchmark run uses the bench names on the same stack."""


@contextmanager
def bench_lock(settings: Settings) -> Iterator[None]:
    """Hold the bench names of this stack (its Kafka) for one run.

    Every run creates, reads and removes the same names (:data:`NAME`): two
    at once on one stack would read each other's records, and one's cleanup
    would remove the other's pre-load. The lock is a file in the system's
    temporary directory per Kafka cluster, held with ``flock`` (released when
    the process ends, however it ends).

    Raises:
        BenchBusy: another run holds it (its pid and start are in the message).
    """
    key = hashlib.sha1(settings.kafka.bootstrap_servers.encode()).hexdigest()[:10]
    path = Path(tempfile.gettempdir()) / f"cdcflow-bench-{key}.lock"
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise BenchBusy(
                f"another benchmark run uses the bench names on {settings.kafka.bootstrap_servers}"
                f" ({f.read().strip() or 'pid unknown'}, lock {path}): wait until it ends"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def say(text: str) -> None:
    """Progress on stderr; tables go to stdout."""
    print(text, file=sys.stderr, flush=True)
