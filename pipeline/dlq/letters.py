"""Dead letters as data: the why-headers read back, which ones a redrive takes, and groups.

Pure: no Kafka here. A :class:`DeadLetter` is built from what a consumer gave
(topic, partition, offset, timestamp, key, value, headers); the headers are
those :func:`pipeline.transformer.dlq.dead_letter` wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import ConfigError
from pipeline.replay.errors import BadPosition
from pipeline.replay.positions import parse_timestamp
from pipeline.transformer.dlq import HEADER_PREFIX

__all__ = [
    "REDRIVES_HEADER",
    "DeadLetter",
    "Group",
    "Selection",
    "group",
    "parse_since",
]

REDRIVES_HEADER = HEADER_PREFIX + "redrives"
"""How many redrives a dead letter has been through and still failed (absent: none)."""

# "... of rule <name> [<table> <ops>] (<origin>) raised ..." / "rule <name> [...] returned ...":
# how pipeline.mapping.runtime names the rule that failed.
_RULE = re.compile(r"\brule (\S+) [\[(]")


def _text(data: str | bytes | None) -> str | None:
    if data is None:
        return None
    return data if isinstance(data, str) else data.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, its headers read."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, str | bytes | None]] | None,
    ) -> DeadLetter:
        read = {name: _text(data) or "" for name, data in headers or []}
        return cls(topic, partition, offset, timestamp_ms, key, value, read)

    def header(self, name: str) -> str | None:
        """The ``cdcflow.dlq.<name>`` header, None when absent."""
        return self.headers.get(HEADER_PREFIX + name)

    @property
    def stage(self) -> str:
        return self.header("stage") or "unknown"

    @property
    def error_class(self) -> str:
        return self.header("error.class") or "unknown"

    @property
    def reason(self) -> str:
        """``<stage>:<error class>``, e.g. ``map:UnknownTable``."""
        return f"{self.stage}:{self.error_class}"

    @property
    def message(self) -> str:
        return self.header("error.message") or ""

    @property
    def table(self) -> str | None:
        return self.header("table")

    @property
    def rule(self) -> str | None:
        """The mapping rule that failed, where the message names one."""
        found = _RULE.search(self.message)
        return found.group(1) if found else None

    @property
    def original(self) -> tuple[str, int, int] | None:
        """Topic, partition and offset of the source record; None when the headers lack them."""
        topic = self.header("original.topic")
        partition, offset = self.header("original.partition"), self.header("original.offset")
        if topic is None or partition is None or offset is None:
            return None
        try:
            return topic, int(partition), int(offset)
        except ValueError:
            return None

    @property
    def original_timestamp_ms(self) -> int | None:
        raw = self.header("original.timestamp")
        try:
            ts = int(raw) if raw is not None else -1
        except ValueError:
            return None
        return ts if ts >= 0 else None

    @property
    def redrives(self) -> int:
        """How many redrives this dead letter already failed."""
        raw = self.headers.get(REDRIVES_HEADER)
        return int(raw) if raw is not None and raw.isdigit() else 0

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def describe(self) -> dict[str, Any]:
        """Everything about it that a person or a script wants, JSON-ready (bytes as text)."""
        original = self.original
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "dead_lettered_at": _iso(self.timestamp_ms),
            "reason": self.reason,
            "table": self.table,
            "rule": self.rule,
            "message": self.message,
            "hint": self.header("error.hint"),
            "column": self.header("column"),
            "redrives": self.redrives,
            "original": None
            if original is None
            else {
                "topic": original[0],
                "partition": original[1],
                "offset": original[2],
                "timestamp": _iso(self.original_timestamp_ms),
            },
            "headers": dict(self.headers),
            "key": _text(self.key),
            "value": _text(self.value),
        }


def _iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a redrive takes: every given criterion must hold (none given: all).

    ``reasons`` match a dead letter's stage (``map``), error class
    (``UnknownTable``) or both (``map:UnknownTable``); ``tables`` its source
    table (``schema.table``); ``since_ms`` keeps those dead-lettered at or after
    that time (the dead-letter record's timestamp, epoch ms).
    """

    reasons: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    since_ms: int | None = None

    def takes(self, letter: DeadLetter) -> bool:
        if self.reasons and not any(
            r in (letter.stage, letter.error_class, letter.reason) for r in self.reasons
        ):
            return False
        if self.tables and letter.table not in self.tables:
            return False
        return self.since_ms is None or letter.timestamp_ms >= self.since_ms

    @property
    def everything(self) -> bool:
        return not self.reasons and not self.tables and self.since_ms is None


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> int:
    """Epoch ms of ``text``: an age (``90m``, ``2d``), else a time as ``replay --from`` takes it.

    Raises:
        ConfigError: ``text`` is neither.
    """
    found = _DURATION.match(text.strip())
    if found:
        when = (now or datetime.now(UTC)) - timedelta(
            **{_UNITS[found.group(2)]: int(found.group(1))}
        )
        return int(when.timestamp() * 1000)
    try:
        return parse_timestamp(text)
    except BadPosition as exc:
        raise ConfigError(
            f"--since {text!r} is neither an age nor a time",
            hint="e.g. --since 90m (s, m, h, d), --since 2026-01-31T12:00:00Z, or epoch ms",
        ) from exc


@dataclass
class Group:
    """Dead letters of one reason, table and rule."""

    reason: str
    table: str | None
    rule: str | None
    count: int = 0
    first: dict[int, int] = field(default_factory=dict)
    """Per dead-letter partition, the first offset of the group."""
    last: dict[int, int] = field(default_factory=dict)
    message: str = ""
    """The message of the group's first dead letter."""

    def add(self, letter: DeadLetter) -> None:
        self.count += 1
        self.first.setdefault(letter.partition, letter.offset)
        self.last[letter.partition] = letter.offset
        if not self.message:
            self.message = letter.message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"first": _offsets(self.first), "last": _offsets(self.last)}


def _offsets(by_partition: dict[int, int]) -> str:
    return ",".join(f"{p}@{o}" for p, o in sorted(by_partition.items()))


def group(letters: Sequence[DeadLetter]) -> list[Group]:
    """Dead letters grouped by reason, table and rule; the largest group first."""
    groups: dict[tuple[str, str | None, str | None], Group] = {}
    for letter in letters:
        key = (letter.reason, letter.table, letter.rule)
        if key not in groups:
            groups[key] = Group(*key)
        groups[key].add(letter)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason, g.table or "", g.rule or ""))
