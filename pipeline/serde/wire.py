"""The Confluent wire format: magic byte 0, the schema id (4 bytes, big-endian), the Avro body.

Written by the serializer, read by every reader; the only place that knows the layout.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "header", "split_header"]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def header(schema_id: int) -> bytes:
    """The 5 bytes that precede an Avro body written with schema ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def split_header(value: bytes | None) -> int:
    """The schema id of a framed value (its body starts at :data:`HEADER_SIZE`).

    Raises:
        ValueError: the value is empty, too short, or does not start with the magic byte.
    """
    if not value or len(value) < HEADER_SIZE:
        raise ValueError("value is empty or shorter than the 5-byte Confluent header")
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise ValueError(f"unknown magic byte {magic} (not Confluent-framed Avro)")
    return int(schema_id)
