"""Debezium change records -> typed :class:`Change` values (pure: no I/O).

``decode_record`` reads one Kafka record of a Debezium PostgreSQL topic, as
written by JsonConverter with or without schemas, and returns a
:class:`Change` (row images decoded with full fidelity, TOAST placeholders
replaced) or a :class:`Skip` that says why the record yields nothing.
:func:`restrict` cuts a Change's before image to what the table's
:class:`ReplicaIdentity` made the source send.
"""

from pipeline.cdc.envelope import DEFAULT_OPTIONS, DecoderOptions, decode_record
from pipeline.cdc.identity import IdentityMode, ReplicaIdentity, contradicts, key_identity, restrict
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
    "IdentityMode",
    "Interval",
    "Op",
    "RecordRef",
    "ReplicaIdentity",
    "Skip",
    "SkipReason",
    "TransactionBlock",
    "Unchanged",
    "contradicts",
    "decode_record",
    "key_identity",
    "restrict",
]
