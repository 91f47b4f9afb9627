"""The floor under the hot path: what the libraries alone cost per record, on the same records.

The transformer's own rules map the held records once (one pass of
``Transformer.process`` with the serializer's input kept); then only the
library calls every record or event needs are timed, on inputs prepared
beforehand, in CPU time (``time.process_time``, best of three passes):

* ``orjson.loads`` of the record's key and value;
* ``model_validate`` of the mapped event type (pydantic) with a dict of the
  event's fields (its metadata passed as the model it is);
* fastavro's ``schemaless_writer`` of the event's Avro record
  (:func:`pipeline.serde.avro.event_to_record`) with its parsed contract;
* one ``uuid.uuid5`` per event, of a name like the one its id is derived from.

Each is divided by the records (not the events), so the rows add up to a
floor per record beside the hot path's figure: what is left above it is
cdcflow's own Python.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import orjson

from benchmarks.common import table
from benchmarks.held import Held
from pipeline.events import DomainEvent
from pipeline.events.base import EVENT_ID_NAMESPACE
from pipeline.events.naming import schema_path
from pipeline.serde.avro import event_to_record
from pipeline.transformer import Transformer

STEPS = {
    "orjson_loads": "orjson.loads of key and value",
    "pydantic_model_validate": "pydantic model_validate of the event",
    "fastavro_schemaless_writer": "fastavro schemaless_writer of its record",
    "uuid5": "uuid.uuid5 of its id's name",
}
"""The floor's entries (keys of its JSON) and how the table names them."""


def _mapped(t: Transformer, run: Callable[[], int]) -> list[DomainEvent]:
    """The events one pass of ``run`` hands to the transformer's serializer, in order."""
    kept: list[DomainEvent] = []
    serialize = t.serializer.serialize

    def keep(event: DomainEvent, *args: Any, **kwargs: Any) -> bytes:
        kept.append(event)
        return serialize(event, *args, **kwargs)

    t.serializer.serialize = keep  # type: ignore[method-assign]
    try:
        events = run()
    finally:
        t.serializer.serialize = serialize  # type: ignore[method-assign]
    if events and not kept:
        raise SystemExit(
            "floor: the transformer made events without calling its serializer's serialize; "
            "benchmarks/floor.py must take the events where it now serializes them"
        )
    return kept


def _id_name(event: DomainEvent) -> str:
    meta = event.metadata
    assert meta is not None
    src = meta.source
    parts = [src.connector, str(src.lsn), str(src.tx_id), src.table, meta.aggregate_id]
    return "|".join([*parts, meta.event_type, "0", "s" if src.snapshot else ""])


def _cpu_us(records: int, fn: Callable[[], None]) -> float:
    """CPU microseconds per record of ``fn`` (one pass over every input), best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return round(best / max(records, 1) * 1e6, 2)


def measure_floor(
    t: Transformer, run: Callable[[], int], records: list[Held], schemas_dir: Path
) -> dict[str, Any]:
    """Each library call's CPU per record over ``records``, and their sum (see the module doc)."""
    events = _mapped(t, run)
    raw = [part for h in records for part in (h.k, h.v) if part]
    parsed: dict[type[DomainEvent], Any] = {}
    for cls in {type(e) for e in events}:
        text = schema_path(schemas_dir, cls.namespace(), cls.event_type()).read_text()
        parsed[cls] = fastavro.parse_schema(json.loads(text))
    fields = [(type(e), {name: getattr(e, name) for name in type(e).model_fields}) for e in events]
    avro = [(parsed[type(e)], event_to_record(e)) for e in events]
    names = [_id_name(e) for e in events]

    def loads() -> None:
        for part in raw:
            orjson.loads(part)

    def validate() -> None:
        for cls, values in fields:
            cls.model_validate(values)

    def write() -> None:
        for schema, record in avro:
            fastavro.schemaless_writer(io.BytesIO(), schema, record)

    def ids() -> None:
        for name in names:
            uuid.uuid5(EVENT_ID_NAMESPACE, name)

    n = len(records)
    per_record = {
        "orjson_loads": _cpu_us(n, loads),
        "pydantic_model_validate": _cpu_us(n, validate),
        "fastavro_schemaless_writer": _cpu_us(n, write),
        "uuid5": _cpu_us(n, ids),
    }
    return {
        "records": n,
        "events": len(events),
        "us_per_record": per_record,
        "sum_us_per_record": round(sum(per_record.values()), 1),
    }


def floor_table(floor: dict[str, Any], hot_path_us: float) -> str:
    """The floor's rows, their sum and the hot path's figure beside them."""
    rows: list[list[Any]] = [
        [STEPS[key], round(us, 1), f"{us / hot_path_us:.0%}"]
        for key, us in floor["us_per_record"].items()
    ]
    total = floor["sum_us_per_record"]
    rows.append(["floor (the sum)", total, f"{total / hot_path_us:.0%}"])
    rows.append(["hot path (Transformer.process)", hot_path_us, "100%"])
    rows.append(["above the floor (cdcflow's own Python)", round(hot_path_us - total, 1), ""])
    return table(
        f"Floor: the libraries alone on the same {floor['records']:,} records "
        f"({floor['events']:,} events), CPU us per record",
        ["step", "us per record", "of hot path"],
        rows,
    )
