"""Debezium change records -> typed :class:`Change` values (pure: no I/O).

``decode_record`` reads one Kafka record of a Debezium PostgreSQL topic, as
written by JsonConverter with or without schemas, and returns a
:class:`Change` (row images decoded with full fidelity, TOAST placeholders
replaced) or a :class:`Skip` that says why the record yields nothing.
"""

from pipeline.cdc.envelope import DEFAULT_OPTIONS, DecoderOptions, decode_record
from pipeline.cdc.model import (
    OPS,
    UNCHANGED,
    Change,
    Op,
    RecordRef,
    Skip,
    SkipReason,
    TransactionBlock,
    Unchanged,
)
from pipeline.cdc.temporal import Interval

__all__ = [
    "DEFAULT_OPTIONS",
    "OPS",
    "UNCHANGED",
    "Change",
    "DecoderOptions",
    "Interval",
    "Op",
    "RecordRef",
    "Skip",
    "SkipReason",
    "TransactionBlock",
    "Unchanged",
    "decode_record",
]
