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

__all__ = [
    "COLUMN",
    "ERROR_CLASS",
    "ERROR_HINT",
    "ERROR_MESSAGE",
    "HEADER_PREFIX",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TIMESTAMP",
    "ORIGINAL_TOPIC",
    "STAGE",
    "TABLE",
    "TRANSFORMER",
    "OutRecord",
    "dead_letter",
]

# The header names of the table above: the one place they are spelled.
HEADER_PREFIX = "cdcflow.dlq."
STAGE = HEADER_PREFIX + "stage"
ERROR_CLASS = HEADER_PREFIX + "error.class"
ERROR_MESSAGE = HEADER_PREFIX + "error.message"
ERROR_HINT = HEADER_PREFIX + "error.hint"
TABLE = HEADER_PREFIX + "table"
COLUMN = HEADER_PREFIX + "column"
ORIGINAL_TOPIC = HEADER_PREFIX + "original.topic"
ORIGINAL_PARTITION = HEADER_PREFIX + "original.partition"
ORIGINAL_OFFSET = HEADER_PREFIX + "original.offset"
ORIGINAL_TIMESTAMP = HEADER_PREFIX + "original.timestamp"
TRANSFORMER = HEADER_PREFIX + "transformer"

_MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce inside the batch's transaction."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


def dead_letter(
    dlq_topic: str, error: RecordError, *, timestamp_ms: int | None, transformer: str
) -> OutRecord:
    """The dead-letter record of the source record that ``error`` stopped.

    Built from the error itself: its topic, partition, offset, key and value
    name the source record (:meth:`RecordError.found_at` fills them in where
    the raiser did not know them); ``timestamp_ms`` is the record's timestamp.
    """
    headers = {
        STAGE: error.stage,
        ERROR_CLASS: type(error).__name__,
        ERROR_MESSAGE: error.reason[:_MAX_MESSAGE],
        ORIGINAL_TOPIC: error.topic or "",
        ORIGINAL_PARTITION: str(error.partition if error.partition is not None else -1),
        ORIGINAL_OFFSET: str(error.offset if error.offset is not None else -1),
        ORIGINAL_TIMESTAMP: str(timestamp_ms if timestamp_ms is not None else -1),
        TRANSFORMER: transformer,
    }
    if error.hint:
        headers[ERROR_HINT] = error.hint[:_MAX_MESSAGE]
    if error.table:
        headers[TABLE] = error.table
    if error.column:
        headers[COLUMN] = error.column
    return OutRecord(
        topic=dlq_topic,
        key=error.key,
        value=error.value,
        headers=[(name, text.encode()) for name, text in headers.items()],
    )
