"""The typed result of decoding one Debezium record: a :class:`Change` or a :class:`Skip`.

A :class:`Change` is one row change (or a table truncate) with its row images
decoded into Python values, its key, and its position in the source database's
history. A :class:`Skip` is a record that deliberately yields no domain event
(a tombstone, a heartbeat, ...); the daemon counts skips by :class:`SkipReason`
so that ``in = out + skipped + dead-lettered`` can be checked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from pipeline.errors import ColumnMissing, ColumnWithheld
from pipeline.events import SourcePosition

if TYPE_CHECKING:
    from pipeline.cdc.identity import ReplicaIdentity

__all__ = [
    "OPS",
    "UNCHANGED",
    "Change",
    "Op",
    "RecordRef",
    "Skip",
    "SkipReason",
    "TransactionBlock",
    "Unchanged",
]

Op = Literal["c", "u", "d", "r", "t"]
"""Debezium operation codes: create, update, delete, read (snapshot), truncate."""

OPS: Final[frozenset[str]] = frozenset({"c", "u", "d", "r", "t"})


class Unchanged(enum.Enum):
    """Type of :data:`UNCHANGED`; an enum so that type checkers know it has one value."""

    UNCHANGED = "UNCHANGED"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
"""A column whose value the source did not send because it did not change.

PostgreSQL leaves unchanged TOASTed values (large text, bytea, arrays, jsonb)
out of the WAL unless the table has ``REPLICA IDENTITY FULL``; Debezium puts a
placeholder there. cdcflow never passes the placeholder on: it fills the value
from the before image where there is one, and otherwise puts ``UNCHANGED``,
so a mapping can tell "not sent, not changed" from any real value.
"""


class SkipReason(enum.StrEnum):
    """Why a record deliberately produced no domain event (a metrics label)."""

    TOMBSTONE = "tombstone"
    """Kafka record with a null value, written after a delete for log compaction."""
    HEARTBEAT = "heartbeat"
    """Debezium heartbeat record (``__debezium-heartbeat.<prefix>``)."""
    TRANSACTION = "transaction"
    """Transaction metadata record (BEGIN / END, ``<prefix>.transaction``)."""
    MESSAGE = "message"
    """Logical decoding message (``pg_logical_emit_message``), op ``m``."""
    TRUNCATE = "truncate"
    """A table truncate that no rule handles."""
    IGNORED_TABLE = "ignored_table"
    """A change on a table the domain declares as ignored."""
    NO_MATCHING_RULE = "no_matching_rule"
    """A change on a known table that no rule's table, ops and predicate matched."""
    NO_EVENTS = "no_events"
    """Rules matched but returned no events (a deliberate decision of the rule)."""


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where a record came from, and its raw bytes: the evidence an error or a skip carries."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    value: bytes | None = None

    def error_fields(self) -> dict[str, Any]:
        """Keyword arguments for :class:`pipeline.errors.RecordError` and its subclasses.

        Its fields are named as those arguments: topic, partition, offset, key, value.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Skip:
    """A record that yields no domain event, on purpose."""

    reason: SkipReason
    detail: str = ""
    record: RecordRef | None = None


@dataclass(frozen=True, slots=True)
class TransactionBlock:
    """The ``transaction`` block of a change event (``provide.transaction.metadata=true``)."""

    id: str
    total_order: int | None = None
    data_collection_order: int | None = None


_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One decoded row change.

    ``before`` and ``after`` map column names to decoded values (``None`` is
    SQL NULL, :data:`UNCHANGED` a TOASTed value that was not sent). ``before``
    is ``None`` for creates and snapshot reads, and for updates of tables
    without ``REPLICA IDENTITY FULL``; ``after`` is ``None`` for deletes.
    Truncates (op ``t``) have neither.

    ``before`` holds only what the source sent: the transformer removes the
    columns the table's replica identity leaves out of old rows (see
    :mod:`pipeline.cdc.identity`) and lists them in ``withheld``.
    """

    op: Op
    table: str
    connector: str
    key: Mapping[str, Any]
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    source: SourcePosition
    transaction: TransactionBlock | None = None
    toasted: frozenset[str] = frozenset()
    """Columns that arrived as the unavailable-value placeholder (filled or UNCHANGED)."""
    record: RecordRef | None = field(default=None, compare=False)
    withheld: frozenset[str] = frozenset()
    """Columns of the before image the source did not send (its replica identity leaves them out)."""
    identity: ReplicaIdentity | None = None
    """The replica identity ``before`` was cut to; None: not cut (FULL, or not checked)."""
    database: str | None = field(default=None, compare=False)
    """The source database the change was captured from (Debezium's ``source.db``)."""
    key_only_shape: bool = field(default=False, compare=False)
    """The before image has the shape of a key-only old row: every column outside the
    record key null or what Debezium puts for a column the WAL did not carry."""

    backfill: bool = field(default=False, compare=False)
    """A row read by an incremental snapshot (``cdcflow connectors snapshot``, Debezium's
    ``source.snapshot = "incremental"``): op ``r`` while the table streams on. A rule may
    emit a different event for it, or skip an aggregate it already told; see
    docs/guarantees.md, "Backfills"."""

    @property
    def committed_at(self) -> datetime:
        """Commit time of the source transaction, UTC (snapshot reads: the read time)."""
        return datetime.fromtimestamp(self.source.commit_ts_ms / 1000, tz=UTC)

    @property
    def snapshot(self) -> bool:
        return self.source.snapshot

    @property
    def row(self) -> Mapping[str, Any]:
        """The after image, or the before image of a delete; empty for a truncate."""
        return self.after if self.after is not None else (self.before or {})

    def new(self, column: str, default: Any = _MISSING) -> Any:
        """The column's value in the after image.

        Raises:
            ColumnMissing: the after image lacks the column (dropped or renamed
                in the source?) and no ``default`` was given; a ``KeyError``.
            KeyError: the after image is absent, and no ``default`` was given
                (the message names table, op and column).
        """
        return self._get(self.after, "after", column, default)

    def old(self, column: str, default: Any = _MISSING) -> Any:
        """The column's value in the before image.

        Raises:
            ColumnWithheld: the source did not send the column (the table's
                replica identity leaves it out of old rows) and no ``default``
                was given; a ``KeyError``, whose ``hint`` says how to fix the table.
            KeyError: the before image is absent (a create, or an update of a
                table without ``REPLICA IDENTITY FULL``) or lacks the column,
                and no ``default`` was given.
        """
        before = self.before
        if before is not None:
            try:
                return before[column]
            except KeyError:
                pass
        if default is _MISSING:
            withheld = self.withheld_error(column)
            if withheld is not None:
                raise withheld
        return self._get(before, "before", column, default)

    def withheld_error(self, column: str) -> ColumnWithheld | None:
        """The error that says why ``column`` is not in the before image, if the source withheld it."""
        if column not in self.withheld:
            return None
        identity = self.identity
        described = identity.describe() if identity is not None else "replica identity not FULL"
        return ColumnWithheld(
            f"{self.table} op {self.op!r}: column {column!r} was not sent in the before image "
            f"({described}; the source sent {_sent(self.before)})",
            identity=described,
            hint=identity.hint(self.table, column) if identity is not None else None,
            **self._naming(column),
        )

    def _naming(self, column: str) -> dict[str, Any]:
        """What a column error of this change carries besides its message and hint."""
        return {"table": self.table, "op": self.op, "column": column}

    def _get(self, image: Mapping[str, Any] | None, which: str, column: str, default: Any) -> Any:
        if image is not None:
            # One lookup, not 'in' and then '[]': a LazyRow answers each in Python.
            try:
                return image[column]
            except KeyError:
                pass
        if default is not _MISSING:
            return default
        if image is None:
            raise KeyError(f"{self.table} op {self.op!r} has no {which} image (column {column!r})")
        raise ColumnMissing(
            f"{self.table} op {self.op!r}: no column {column!r} in the {which} image (the "
            f"source sent {_sent(image)}); was it dropped or renamed in the source table?",
            **self._naming(column),
            hint=f"'cdcflow schemas check --source' lists the columns rules read that the "
            f"source tables lack; restore {self.table}.{column} or change the rule "
            f"(change.{'new' if which == 'after' else 'old'}({column!r}, default) where it "
            "may be absent), then replay these dead letters",
        )


def _sent(image: Mapping[str, Any] | None) -> str:
    """The columns an image holds, for an error's message."""
    return ", ".join(sorted(image or ())) or "no column"
