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
unscaled bytes or that a long is a MicroTimestamp: ``transformer.cdc_types:
catalogue`` learns the column types once per table from the source database's
catalogue (:mod:`pipeline.cdc.catalogue`). So the benchmark also times the
transformer's own decoder (``decode_record``) on both forms: as the transformer
calls it (columns decoded when a rule reads them) and with every column
decoded, and checks that both forms decode to the same changes. The types are
read from the database each record names (``--types-from`` another of the same
tables when that one is gone); without it the decode figures are left out.
docs/BENCHMARKS.md ("CDC record size") has the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.common import CDC_TOPICS, NAME, NO_SOURCE, bench_settings, say, table, write_result
from pipeline.cdc import Change, DecoderOptions, Skip, decode_record
from pipeline.cdc.catalogue import ColumnCatalogue, catalogue_lookup
from pipeline.errors import CdcflowError
from pipeline.settings import Settings

T = TypeVar("T")
Record = tuple[str, bytes, bytes]
"""(topic, key, value)"""


def read_values(settings: Settings, pattern: str, count: int) -> list[Record]:
    """(topic, key, value) of up to ``count`` records of the topics matching ``pattern``."""
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
        out: list[Record] = []
        idle = 0
        while len(out) < count and idle < 10:
            msgs = consumer.consume(1000, 1.0)
            idle = 0 if msgs else idle + 1
            for m in msgs:
                value = m.value()
                if m.error() is None and value:
                    out.append((str(m.topic()), m.key() or b"", value))
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


def cpu_us(values: Sequence[T], fn: Callable[[T], Any]) -> float:
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


def decode_us(records: list[Record], options: DecoderOptions, *, lazy: bool) -> float:
    """CPU microseconds per record of ``decode_record`` (the transformer's decoder)."""
    return cpu_us(
        records,
        lambda r: decode_record(r[2], topic=r[0], key=r[1] or None, options=options, lazy=lazy),
    )


def _decoded(records: list[Record], options: DecoderOptions) -> list[Any]:
    """Every record decoded whole, in a form two decodings compare by (the record bytes aside)."""
    out: list[Any] = []
    for topic, key, value in records:
        got: Change | Skip = decode_record(value, topic=topic, key=key or None, options=options)
        if isinstance(got, Skip):
            out.append(got.reason)
            continue
        rows = [None if r is None else dict(r) for r in (got.before, got.after)]
        out.append((got.op, got.table, dict(got.key), *rows, got.source, got.toasted))
    return out


def decode_figures(records: list[Record], catalogue: DecoderOptions) -> dict[str, Any]:
    """The decoder's CPU on the shipped records and, typed from the catalogue, without schemas."""
    bare = [(t, without_schema(k) if k else k, without_schema(v)) for t, k, v in records]
    shipped = DecoderOptions()
    return {
        "schemas_enable_true": {
            "decode_us": round(decode_us(records, shipped, lazy=True), 2),
            "decode_all_us": round(decode_us(records, shipped, lazy=False), 2),
        },
        "catalogue": {
            "decode_us": round(decode_us(bare, catalogue, lazy=True), 2),
            "decode_all_us": round(decode_us(bare, catalogue, lazy=False), 2),
        },
        "same_changes": _decoded(records, shipped) == _decoded(bare, catalogue),
    }


def measure(records: list[Record], catalogue: DecoderOptions | None = None) -> dict[str, Any]:
    keys = [k for _, k, _ in records]
    values = [v for _, _, v in records]
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
    result: dict[str, Any] = {
        "records": len(values),
        "schemas_enable_true": shipped,
        "schemas_enable_false": bare,
        "schema_share_of_value": round(1 - bare["value_bytes"] / shipped["value_bytes"], 3),
    }
    if catalogue is not None:
        try:
            result["decode"] = decode_figures(records, catalogue)
        except CdcflowError as exc:  # the source database is gone: sizes only
            say(f"decode figures left out: {exc}")
    return result


def catalogue_options(settings: Settings, types_from: str | None) -> DecoderOptions:
    """Decoder options typing records without a schema from the catalogue (``transformer.cdc_types:
    catalogue``); ``types_from``: the database whose catalogue stands for every record's."""
    lookup = catalogue_lookup(settings.source.dsn)
    if types_from:
        fixed = types_from
        return DecoderOptions(column_types=ColumnCatalogue(lambda _db, t: lookup(fixed, t)))
    return DecoderOptions(column_types=ColumnCatalogue(lookup))


def run(
    count: int = 20_000, topics: str = CDC_TOPICS, types_from: str | None = None
) -> dict[str, Any]:
    """Size and parse cost of ``count`` records of ``topics``; prints the table, writes the JSON."""
    settings = bench_settings(f"{NAME}-format")
    records = read_values(settings, topics, count)
    if not records:
        raise SystemExit(
            NO_SOURCE if topics == CDC_TOPICS else f"no records in topics matching {topics}"
        )
    result = measure(records, catalogue_options(settings, types_from))
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
    decode = result.get("decode")
    if decode is not None:
        print()
        print(
            table(
                "The transformer's decoder (decode_record), CPU per record"
                + ("" if decode["same_changes"] else " -- THE TWO FORMS DECODED DIFFERENTLY"),
                ["format", "as the transformer us", "every column us"],
                [
                    [label, f["decode_us"], f["decode_all_us"]]
                    for label, f in (
                        ("JSON + Connect schema (shipped)", decode["schemas_enable_true"]),
                        ("schemas.enable=false + catalogue types", decode["catalogue"]),
                    )
                ],
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
    parser.add_argument(
        "--types-from",
        default=None,
        help="database whose catalogue types the records without schema (default: each "
        "record's own source database)",
    )
    args = parser.parse_args()
    run(args.records, args.topics, args.types_from)


if __name__ == "__main__":
    main()
