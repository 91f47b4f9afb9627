"""CDC record size: the shipped JSON with its embedded Connect schema against JSON without it.

``python -m benchmarks record-format [--format-records N]`` (part of ``make
bench``; or ``python -m benchmarks.record_format [--topics REGEX] [--records N]``
for other CDC topics) reads the
first N records of the CDC topics (default: the bench pre-load) and reports,
per record, the bytes Kafka stores and moves for the value (and key) as the
connector writes them (``value.converter.schemas.enable=true``) and as the
same converter writes them without the schema (``schemas.enable=false``: the
record's ``payload`` alone, compact as Connect's JsonConverter writes it), the
CPU time of ``json.loads`` of each (the first thing the transformer does with a
record), and how well each compresses (zlib level 1 over batches of 500, a
stand-in for the producer's batch compression).

Without the schema a record no longer says that a string is a decimal's
unscaled bytes or that a long is a MicroTimestamp: the column types would have
to be learned once per table (from the catalogue or one schema-carrying
record). docs/BENCHMARKS.md ("CDC record size") has the figures and what that
would take.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.common import CDC_TOPICS, NAME, NO_SOURCE, bench_settings, say, table, write_result
from pipeline.settings import Settings


def read_values(settings: Settings, pattern: str, count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of up to ``count`` records of the topics matching ``pattern``, oldest first."""
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {"group.id": f"{NAME}-format", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(timeout=30).topics
        topics = sorted(t for t in meta if re.match(pattern, t))
        consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in meta[t].partitions]
        )
        out: list[tuple[bytes, bytes]] = []
        idle = 0
        while len(out) < count and idle < 10:
            msgs = consumer.consume(1000, 1.0)
            idle = 0 if msgs else idle + 1
            for m in msgs:
                value = m.value()
                if m.error() is None and value:
                    out.append((m.key() or b"", value))
        return out[:count]
    finally:
        consumer.close()


def without_schema(raw: bytes) -> bytes:
    """What JsonConverter writes with ``schemas.enable=false``: the payload alone."""
    envelope = json.loads(raw)
    payload = (
        envelope["payload"] if isinstance(envelope, dict) and "payload" in envelope else envelope
    )
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def cpu_us(values: list[bytes], fn: Callable[[bytes], Any]) -> float:
    """CPU microseconds per value of ``fn``, best of three passes."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for v in values:
            fn(v)
        best = min(best, time.process_time() - start)
    return best / max(len(values), 1) * 1e6


def compressed(values: list[bytes], batch: int = 500) -> int:
    return sum(
        len(zlib.compress(b"".join(values[i : i + batch]), 1)) for i in range(0, len(values), batch)
    )


def measure(records: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    keys = [k for k, _ in records]
    values = [v for _, v in records]
    bare_values = [without_schema(v) for v in values]
    bare_keys = [without_schema(k) if k else k for k in keys]
    n = max(len(values), 1)

    def form(ks: list[bytes], vs: list[bytes]) -> dict[str, float]:
        return {
            "value_bytes": round(sum(map(len, vs)) / n, 1),
            "key_bytes": round(sum(map(len, ks)) / n, 1),
            "value_bytes_compressed": round(compressed(vs) / n, 1),
            "json_loads_us": round(cpu_us(vs, json.loads), 2),
        }

    shipped = form(keys, values)
    bare = form(bare_keys, bare_values)
    return {
        "records": len(values),
        "schemas_enable_true": shipped,
        "schemas_enable_false": bare,
        "schema_share_of_value": round(1 - bare["value_bytes"] / shipped["value_bytes"], 3),
    }


def run(count: int = 20_000, topics: str = CDC_TOPICS) -> dict[str, Any]:
    """Size and parse cost of ``count`` records of ``topics``; prints the table, writes the JSON."""
    settings = bench_settings(f"{NAME}-format")
    records = read_values(settings, topics, count)
    if not records:
        raise SystemExit(
            NO_SOURCE if topics == CDC_TOPICS else f"no records in topics matching {topics}"
        )
    result = measure(records)
    rows = [
        [
            label,
            f["value_bytes"],
            f["key_bytes"],
            f["value_bytes_compressed"],
            f["json_loads_us"],
        ]
        for label, f in (
            ("JSON + Connect schema (shipped)", result["schemas_enable_true"]),
            ("JSON, schemas.enable=false", result["schemas_enable_false"]),
        )
    ]
    print()
    print(
        table(
            f"CDC record size over {result['records']:,} records of {topics} "
            f"(schema: {result['schema_share_of_value']:.0%} of a value)",
            ["format", "value bytes", "key bytes", "value bytes zlib-1", "json.loads us"],
            rows,
        )
    )
    result["topics"] = topics
    path = write_result("record-format", result)
    say(f"wrote {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", default=CDC_TOPICS, help="regex of CDC topics to read")
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    run(args.records, args.topics)


if __name__ == "__main__":
    main()
