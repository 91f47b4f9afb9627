"""The read-model database: tables, tracking positions, checkpoints, locks.

Everything lives in one PostgreSQL schema (``settings.projections.db_schema``,
default ``readmodel``): the projections' own tables, named
``<projection>_<table>``, and three tables of cdcflow's::

    projections            one row per projection: its generation (bumped by each
                           rebuild's swap) and when it was last rebuilt. Its row is
                           the projection's write lock (see below).
    projection_positions   (projection, slot, topic, partition) -> the next offset to
                           apply, the last offset applied and its timestamp, a count.
                           Slot "live" is the read model people query; slot "g<N>"
                           belongs to the shadow tables a rebuild is filling.
    projection_checkpoints copies of a projection's tables with the positions they
                           were taken at (tables <projection>_<table>__ck<id>).

**The apply protocol** (:meth:`ReadModelStore.apply`), one database transaction
per batch of events:

1. lock the projection's row in ``projections`` (``FOR UPDATE``; live slot
   only), so a rebuild's swap and a checkpoint see either all of a batch or
   none of it;
2. read the slot's positions;
3. for each event in partition order: if its offset is below the partition's
   next offset it was applied before -> pass over it; else run its handler;
4. write the new positions (next offset = after the last event, or the
   end-of-partition offset past trailing transaction markers);
5. commit. A crash before 5 leaves neither the events' effects nor the new
   positions; a restart resumes at the positions of 4, so no event is applied
   twice and none is skipped.

A runner also holds a session advisory lock per projection for its lifetime,
so two runners never interleave; the lock dies with the connection, so a
killed runner does not block its successor.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg

from pipeline.replay.database import connect, read_model_dsn
from pipeline.replay.errors import HandlerError, ProjectionBusy, ProjectionError
from pipeline.replay.positions import TP, ms_to_datetime
from pipeline.replay.projection import Projection, Tx
from pipeline.replay.stream import Delivered
from pipeline.settings import Settings

__all__ = [
    "LIVE",
    "Applied",
    "Checkpoint",
    "ReadModelStore",
    "open_store",
]

LIVE = "live"
_META_LOCK = 0x0CDCF100  # serializes the first CREATE SCHEMA / TABLE of concurrent starters
_LOCK_SPACE = {"run": 0x0CDCF101, "rebuild": 0x0CDCF102}

_META_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.projections (
  name           text PRIMARY KEY,
  generation     integer     NOT NULL DEFAULT 0,
  topics         text[]      NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  rebuilt_at     timestamptz,
  rebuilt_from   timestamptz,
  rebuilt_events bigint
);
CREATE TABLE IF NOT EXISTS {s}.projection_positions (
  projection     text        NOT NULL,
  slot           text        NOT NULL,
  topic          text        NOT NULL,
  partition      integer     NOT NULL,
  next_offset    bigint      NOT NULL,
  last_offset    bigint,
  last_timestamp timestamptz,
  applied        bigint      NOT NULL DEFAULT 0,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (projection, slot, topic, partition)
);
CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
  projection     text        NOT NULL,
  id             bigserial,
  taken_at       timestamptz NOT NULL DEFAULT now(),
  generation     integer     NOT NULL,
  positions      jsonb       NOT NULL,
  PRIMARY KEY (projection, id)
);
"""


@contextmanager
def open_store(
    settings: Settings, projection: Projection, role: Literal["run", "rebuild"]
) -> Iterator[ReadModelStore]:
    """A set-up store holding the projection's ``role`` lock; the connection closes at the end.

    Raises:
        ProjectionError: the database cannot be reached or refused the set-up.
        ProjectionBusy: another process holds the ``role`` lock.
    """
    conn = connect(read_model_dsn(settings))
    try:
        store = ReadModelStore(conn, settings.projections.db_schema, projection)
        store.ensure()
        if not store.try_lock(role):
            doing = "running" if role == "run" else "being rebuilt"
            raise ProjectionBusy(
                f"projection {projection.name} is already {doing} "
                f"(backend pid {store.holder(role)})",
                hint="stop the other process first: one at a time keeps the projection consistent",
            )
        yield store
    finally:
        conn.close()  # also releases the session lock


def _key(name: str) -> int:
    """A stable signed 32-bit key for a projection name (advisory locks take int4 pairs)."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass
class Applied:
    """What one :meth:`ReadModelStore.apply` did."""

    applied: int = 0
    repeated: int = 0
    positions: dict[TP, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """A copy of a projection's tables and the positions it was taken at."""

    id: int
    """Its row in ``projection_checkpoints``; its tables are ``<projection>_<table>__ck<id>``."""
    taken_at: datetime
    generation: int
    """The projection's generation when it was taken (each rebuild's swap bumps it)."""
    positions: dict[TP, int]
    """Per partition, the next offset to apply from this copy on."""
    last_timestamps: dict[TP, datetime | None]
    """Per partition, the timestamp of the last event in the copy (None: none applied yet)."""

    def precedes(self, starts: Mapping[TP, int]) -> bool:
        """True when the copy holds no event at or after ``starts`` (per partition)."""
        return all(self.positions.get(tp, 0) <= offset for tp, offset in starts.items())


class ReadModelStore:
    """One projection's side of the read-model database, over one connection."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, projection: Projection) -> None:
        self.conn = conn
        self.schema = schema
        self.projection = projection
        self.name = projection.name

    # ------------------------------------------------------------------ names

    def execute(self, query: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        """Run one statement on the store's connection (names in the text are validated)."""
        return self.conn.execute(query, params)

    def q(self, bare: str) -> str:
        """A bare table name qualified with the schema."""
        return f"{self.schema}.{bare}"

    def tables(self, suffix: str = "") -> dict[str, str]:
        """Each declared table's qualified name (with ``suffix``)."""
        return {t: self.q(bare) for t, bare in self.projection.table_names(suffix).items()}

    def exists(self, bare: str) -> bool:
        row = self.execute("SELECT to_regclass(%s)", (self.q(bare),)).fetchone()
        return row is not None and row[0] is not None

    # ------------------------------------------------------------------ set-up

    def ensure(self) -> None:
        """Create the schema, cdcflow's tables, the projection's row and its live tables if missing.

        Raises:
            ProjectionError: the database refused (the message says what).
        """
        try:
            with self.conn.transaction():
                self.ensure_meta()
                self.execute(
                    f"INSERT INTO {self.schema}.projections (name, topics) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET topics = EXCLUDED.topics",
                    (self.name, list(self.projection.topics)),
                )
                self.create_tables("", if_missing=True)
        except psycopg.Error as exc:
            raise ProjectionError(f"cannot set up projection {self.name}: {exc}") from exc

    def ensure_meta(self) -> None:
        """Create the schema and cdcflow's own tables if missing (inside the caller's transaction).

        Raises:
            psycopg.Error: the database refused.
        """
        # Concurrent starters would race on CREATE ... IF NOT EXISTS (a unique
        # violation in the catalog); one at a time.
        self.execute("SELECT pg_advisory_xact_lock(%s)", (_META_LOCK,))
        self.execute(_META_DDL.format(s=self.schema))

    def create_tables(self, suffix: str, *, if_missing: bool = False) -> None:
        """Run the projection's DDL for the tables with ``suffix`` (in the caller's transaction)."""
        for (_, bare), ddl in zip(
            self.projection.table_names(suffix).items(),
            self.projection.ddl(self.schema, suffix),
            strict=True,
        ):
            if if_missing and self.exists(bare):
                continue
            self.execute(ddl)

    def drop_tables(self, suffix: str) -> None:
        for bare in self.projection.table_names(suffix).values():
            self.execute(f"DROP TABLE IF EXISTS {self.q(bare)}")

    def generation(self) -> int:
        row = self.execute(
            f"SELECT generation FROM {self.schema}.projections WHERE name = %s",
            (self.name,),
        ).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ locks

    def try_lock(self, role: Literal["run", "rebuild"]) -> bool:
        """Take the session lock of ``role`` for this projection; False when someone holds it."""
        row = self.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_SPACE[role], _key(self.name))
        ).fetchone()
        return bool(row and row[0])

    def unlock(self, role: Literal["run", "rebuild"]) -> None:
        self.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_SPACE[role], _key(self.name)))

    def holder(self, role: Literal["run", "rebuild"]) -> int | None:
        """The backend pid holding the ``role`` lock of this projection, if any."""
        row = self.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 2",
            (_LOCK_SPACE[role] & 0xFFFFFFFF, _key(self.name) & 0xFFFFFFFF),
        ).fetchone()
        return int(row[0]) if row else None

    def lock_row(self, mode: Literal["UPDATE", "SHARE"]) -> None:
        """Lock the projection's row until the end of the current transaction."""
        self.execute(
            f"SELECT 1 FROM {self.schema}.projections WHERE name = %s FOR {mode}",
            (self.name,),
        )

    # ------------------------------------------------------------------ positions

    def positions(self, slot: str = LIVE) -> dict[TP, int]:
        """The next offset to apply, per partition, of ``slot``."""
        rows = self.execute(
            f"SELECT topic, partition, next_offset FROM {self.schema}.projection_positions "
            "WHERE projection = %s AND slot = %s",
            (self.name, slot),
        ).fetchall()
        return {(t, p): int(o) for t, p, o in rows}

    def position_rows(self, slot: str = LIVE) -> list[dict[str, Any]]:
        """The slot's tracking rows as dicts (for status)."""
        cur = self.execute(
            "SELECT topic, partition, next_offset, last_offset, last_timestamp, applied, "
            "updated_at "
            f"FROM {self.schema}.projection_positions WHERE projection = %s AND slot = %s "
            "ORDER BY topic, partition",
            (self.name, slot),
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def set_positions(self, slot: str, positions: Mapping[TP, int]) -> None:
        """Replace ``slot``'s positions (inside the caller's transaction)."""
        self.execute(
            f"DELETE FROM {self.schema}.projection_positions WHERE projection = %s AND slot = %s",
            (self.name, slot),
        )
        self._upsert(slot, {tp: (off, None, None, 0) for tp, off in positions.items()})

    def copy_positions(self, from_slot: str, to_slot: str) -> None:
        """Make ``to_slot``'s rows a copy of ``from_slot``'s (inside the caller's transaction)."""
        s = self.schema
        self.execute(
            f"DELETE FROM {s}.projection_positions WHERE projection = %s AND slot = %s",
            (self.name, to_slot),
        )
        self.execute(
            f"INSERT INTO {s}.projection_positions "
            "(projection, slot, topic, partition, next_offset, "
            "last_offset, last_timestamp, applied, updated_at) "
            "SELECT projection, %s, topic, partition, next_offset, last_offset, last_timestamp, "
            "applied, now() "
            f"FROM {s}.projection_positions WHERE projection = %s AND slot = %s",
            (to_slot, self.name, from_slot),
        )

    def delete_slot(self, slot: str) -> None:
        self.execute(
            f"DELETE FROM {self.schema}.projection_positions WHERE projection = %s AND slot = %s",
            (self.name, slot),
        )

    def _upsert(
        self, slot: str, rows: Mapping[TP, tuple[int, int | None, datetime | None, int]]
    ) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                (
                    f"INSERT INTO {self.schema}.projection_positions AS p "
                    "(projection, slot, topic, partition, next_offset, last_offset, "
                    "last_timestamp, applied) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (projection, slot, topic, partition) DO UPDATE SET "
                    "next_offset = EXCLUDED.next_offset, "
                    "last_offset = COALESCE(EXCLUDED.last_offset, p.last_offset), "
                    "last_timestamp = COALESCE(EXCLUDED.last_timestamp, p.last_timestamp), "
                    "applied = p.applied + EXCLUDED.applied, updated_at = now()"
                ),
                [(self.name, slot, t, p, *vals) for (t, p), vals in rows.items()],
            )

    # ------------------------------------------------------------------ applying events

    def apply(
        self,
        delivered: Sequence[Delivered],
        advanced: Mapping[TP, int],
        *,
        slot: str = LIVE,
        suffix: str = "",
    ) -> Applied:
        """Apply a batch of events and move the positions in one transaction (module docstring).

        ``advanced`` are positions the reader reached without an event to show
        for it (records of unknown types, transaction markers at the end).
        Inside an open transaction (a rebuild's swap) this runs as a savepoint.

        Raises:
            HandlerError: a handler raised; nothing of the batch is kept.
            ProjectionError: the database failed (nothing of the batch is kept).
        """
        result = Applied()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                if slot == LIVE:
                    self.lock_row("UPDATE")  # 1
                tracked = self.positions(slot)  # 2
                tx = Tx(cur, self.tables(suffix))
                changed: dict[TP, tuple[int, int | None, datetime | None, int]] = {}
                handler_of = self.projection.handler
                for d in delivered:  # 3
                    tp = d.tp
                    if d.offset < tracked.get(tp, 0):
                        result.repeated += 1
                        continue
                    handler = handler_of(type(d.event))
                    if handler is not None:
                        tx.delivered = d
                        try:
                            handler(tx, d.event)
                        except Exception as exc:
                            raise HandlerError(
                                f"projection {self.name}: handler "
                                f"{getattr(handler, '__name__', handler)} "
                                f"failed on {type(d.event).__name__}: {type(exc).__name__}: {exc}",
                                topic=d.topic,
                                partition=d.partition,
                                offset=d.offset,
                                key=d.key,
                            ) from exc
                    tracked[tp] = d.offset + 1
                    prev = changed.get(tp)
                    changed[tp] = (
                        d.offset + 1,
                        d.offset,
                        ms_to_datetime(d.timestamp_ms),
                        (prev[3] if prev else 0) + 1,
                    )
                    result.applied += 1
                for tp, offset in advanced.items():
                    if offset > tracked.get(tp, -1):
                        tracked[tp] = offset
                        prev = changed.get(tp)
                        changed[tp] = (offset, *prev[1:]) if prev else (offset, None, None, 0)
                self._upsert(slot, changed)  # 4
                result.positions = tracked
        except HandlerError:
            raise
        except psycopg.Error as exc:
            raise ProjectionError(f"projection {self.name}: the database failed: {exc}") from exc
        return result  # 5: the transaction committed when the block closed

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, keep: int) -> Checkpoint:
        """Copy the live tables and positions as a new checkpoint; keep the newest ``keep``.

        Holds the projection's row lock (shared) while copying, so the copy
        and its positions agree: the runner's next batch waits for it.

        Raises:
            ProjectionError: the database failed.
        """
        s = self.schema
        try:
            with self.conn.transaction():
                self.lock_row("SHARE")
                rows = self.position_rows(LIVE)
                positions = [
                    [r["topic"], r["partition"], r["next_offset"], _iso(r["last_timestamp"])]
                    for r in rows
                ]
                row = self.execute(
                    f"INSERT INTO {s}.projection_checkpoints (projection, generation, positions) "
                    "VALUES (%s, %s, %s) RETURNING id, taken_at",
                    (self.name, self.generation(), json.dumps(positions)),
                ).fetchone()
                assert row is not None
                ck_id = int(row[0])
                for bare_live, bare_ck in zip(
                    self.projection.table_names().values(),
                    self.projection.table_names(f"__ck{ck_id}").values(),
                    strict=True,
                ):
                    self.execute(f"CREATE TABLE {self.q(bare_ck)} AS TABLE {self.q(bare_live)}")
                for old in self.checkpoints()[keep:]:
                    self.drop_checkpoint(old.id)
        except psycopg.Error as exc:
            raise ProjectionError(f"projection {self.name}: checkpoint failed: {exc}") from exc
        return self._checkpoint(ck_id)

    def drop_checkpoint(self, ck_id: int) -> None:
        self.drop_tables(f"__ck{ck_id}")
        self.execute(
            f"DELETE FROM {self.schema}.projection_checkpoints WHERE projection = %s AND id = %s",
            (self.name, ck_id),
        )

    def checkpoints(self) -> list[Checkpoint]:
        """This projection's checkpoints, newest first."""
        rows = self.execute(
            f"SELECT id, taken_at, generation, positions FROM {self.schema}.projection_checkpoints "
            "WHERE projection = %s ORDER BY id DESC",
            (self.name,),
        ).fetchall()
        return [_checkpoint(*row) for row in rows]

    def _checkpoint(self, ck_id: int) -> Checkpoint:
        for ck in self.checkpoints():
            if ck.id == ck_id:
                return ck
        raise ProjectionError(f"projection {self.name}: checkpoint {ck_id} is gone")


def _checkpoint(ck_id: int, taken_at: datetime, generation: int, positions: Any) -> Checkpoint:
    data = positions if isinstance(positions, list) else json.loads(positions)
    return Checkpoint(
        id=int(ck_id),
        taken_at=taken_at,
        generation=int(generation),
        positions={(t, int(p)): int(o) for t, p, o, _ in data},
        last_timestamps={
            (t, int(p)): datetime.fromisoformat(ts) if ts else None for t, p, _, ts in data
        },
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
