"""Where a replay starts and ends: timestamps, offsets specs (pure).

Timestamps are Kafka record timestamps: the time the transformer produced the
event, which is never before the source commit it tells of (``occurred_at``).
So "from a time before the mistake" includes the mistake's events, whatever
the pipeline's latency was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.replay.errors import BadPosition

__all__ = [
    "TP",
    "EndAt",
    "StartAt",
    "format_ms",
    "ms_to_datetime",
    "parse_offsets",
    "parse_timestamp",
]

TP = tuple[str, int]
"""A topic partition: (topic, partition)."""

_EPOCH_MS = re.compile(r"^\d{10,}$")


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time (``2026-11-01T12:00:00Z``) or of epoch ms digits.

    A time without an offset is taken as UTC.

    Raises:
        BadPosition: the text is neither.
    """
    raw = text.strip()
    if _EPOCH_MS.match(raw):
        return int(raw)
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise BadPosition(
            f"not a timestamp: {text!r}",
            hint="use ISO 8601 such as 2026-11-01T12:00:00Z, or epoch milliseconds",
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Epoch ms as an aware UTC datetime; None for None or a negative (unknown) time."""
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_ms(ms: int | None) -> str:
    """An epoch-ms timestamp as ISO 8601 UTC with milliseconds; ``-`` for None."""
    if ms is None or ms < 0:
        return "-"
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_offsets(spec: str, topics: Sequence[str]) -> dict[TP, int]:
    """Offsets from ``PARTITION:OFFSET,...`` (one topic) or ``TOPIC:PARTITION:OFFSET,...``.

    Raises:
        BadPosition: an item is malformed, names a topic not being read, gives a
            negative number, or leaves the topic ambiguous (several topics read).
    """
    out: dict[TP, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        parts = item.split(":")
        if len(parts) == 2:
            if len(topics) != 1:
                raise BadPosition(
                    f"--from-offsets item {item!r} names no topic, "
                    f"and {len(topics)} topics are read",
                    hint="write TOPIC:PARTITION:OFFSET",
                )
            topic, p, o = topics[0], parts[0], parts[1]
        elif len(parts) == 3:
            topic, p, o = parts
            if topic not in topics:
                raise BadPosition(f"--from-offsets names topic {topic!r}, which is not being read")
        else:
            raise BadPosition(
                f"--from-offsets item {item!r} is not PARTITION:OFFSET or TOPIC:PARTITION:OFFSET"
            )
        try:
            partition, offset = int(p), int(o)
        except ValueError as exc:
            raise BadPosition(
                f"--from-offsets item {item!r}: partition and offset must be integers"
            ) from exc
        if partition < 0 or offset < 0:
            raise BadPosition(
                f"--from-offsets item {item!r}: partition and offset must not be negative"
            )
        out[(topic, partition)] = offset
    if not out:
        raise BadPosition("--from-offsets is empty")
    return out


@dataclass(frozen=True)
class StartAt:
    """Where each partition starts.

    In order: an explicit offset for the partition; else the first record at
    or after ``timestamp_ms``; else the partition's beginning (``default``
    "beginning") or its end ("end").
    """

    offsets: Mapping[TP, int] = field(default_factory=dict)
    timestamp_ms: int | None = None
    default: str = "beginning"

    @classmethod
    def beginning(cls) -> StartAt:
        return cls()

    @classmethod
    def at(cls, timestamp_ms: int) -> StartAt:
        return cls(timestamp_ms=timestamp_ms)


@dataclass(frozen=True)
class EndAt:
    """Where a bounded read ends (exclusive), per partition.

    ``offsets`` fixes the end of the partitions it names; ``timestamp_ms``
    ends before the first record at or after that time; otherwise a partition
    ends at its end when the read started (its high watermark then).
    """

    offsets: Mapping[TP, int] = field(default_factory=dict)
    timestamp_ms: int | None = None
