"""Dead-letter records: the original bytes, and headers that say why.

The dead-letter record keeps the source record's key and value unchanged (so
it can be replayed once the cause is fixed) and adds headers:

=================================  =============================================
``cdcflow.dlq.stage``              decode | map | serialize
``cdcflow.dlq.error.class``        the error's class, e.g. ``MappingError``
``cdcflow.dlq.error.message``      what went wrong (truncated to 4 KiB)
``cdcflow.dlq.error.hint``         what to do about it, where known, e.g.
                                   ``run 'ALTER TABLE public.accounts REPLICA
                                   IDENTITY FULL' so old rows carry every column``
``cdcflow.dlq.table``              the source table (``schema.table``), where known
``cdcflow.dlq.column``             the column concerned, where known: e.g. an old
                                   value a rule read that the table's replica
                                   identity kept out of the WAL
``cdcflow.dlq.original.topic``     where the record came from ...
``cdcflow.dlq.original.partition``
``cdcflow.dlq.original.offset``
``cdcflow.dlq.original.timestamp`` ... and its timestamp (epoch ms)
``cdcflow.dlq.transformer``        the transformer's transactional id
=================================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import RecordError

__all__ = ["HEADER_PREFIX", "OutRecord", "dead_letter"]

HEADER_PREFIX = "cdcflow.dlq."
_MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce inside the batch's transaction."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


def dead_letter(
    dlq_topic: str,
    error: RecordError,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    transformer: str,
) -> OutRecord:
    """The dead-letter record for a source record that ``error`` stopped."""
    headers = {
        "stage": error.stage,
        "error.class": type(error).__name__,
        "error.message": (error.reason if hasattr(error, "reason") else str(error))[:_MAX_MESSAGE],
        "original.topic": topic,
        "original.partition": str(partition),
        "original.offset": str(offset),
        "original.timestamp": str(timestamp_ms if timestamp_ms is not None else -1),
        "transformer": transformer,
    }
    if error.hint:
        headers["error.hint"] = error.hint[:_MAX_MESSAGE]
    if error.table:
        headers["table"] = error.table
    if error.column:
        headers["column"] = error.column
    return OutRecord(
        topic=dlq_topic,
        key=key,
        value=value,
        headers=[(HEADER_PREFIX + name, text.encode()) for name, text in headers.items()],
    )
