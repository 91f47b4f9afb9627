"""Each captured table's replica identity, learned from the source database's catalogue.

The transformer cuts every UPDATE's and DELETE's before image to the columns
the table's replica identity made PostgreSQL write to the WAL
(:func:`pipeline.cdc.restrict`), so that no value Debezium filled in for a
column it was not sent (null, ``0``, ``""``) reaches a rule. The
:class:`IdentityCatalog` says which columns those are. It reads the catalogue
of the database each change was captured from (Debezium's ``source.db``), on
the server and with the login of the ``source.*`` settings:

1. **At start** (:meth:`IdentityCatalog.prepare`) the domain's tables are read
   from ``source.database`` in one query; a source database that cannot be
   reached stops the start with a :class:`~pipeline.errors.ConfigError` naming
   the ``source.*`` settings (exit 78).
2. **A table seen for the first time** is read then (lazily), and cached.
3. **After** ``transformer.identity_refresh_s`` a table's entry is read again
   the next time one of its changes arrives (with every other stale entry,
   in one query).
4. **A change that contradicts the cache** (an UPDATE without a before image
   on a table cached as FULL; an old row that lacks an identity column, or
   carries one on a table cached as NOTHING; an UPDATE that kept its key yet
   carried an old row) makes the table be read again at once (at most once a
   second per table).
5. **A table the catalogue does not have** (dropped since) is treated as with
   the lookup off, and warned about once: only the record's key columns of its
   before images are trusted.
6. **The source database gone later**: a cached entry is kept (re-read every
   few seconds until it answers); a table never read raises
   :class:`~pipeline.errors.SourceUnavailable`, and the daemon retries the
   batch as for a registry outage — nothing is dead-lettered for it.

With ``transformer.identity_lookup`` off (:meth:`IdentityCatalog.record_only`),
no database is asked: every table is taken to send only its record key's
columns (the primary key, or the connector's ``message.key.columns``) in old
rows. No filled-in value can reach a rule, but a rule that reads any other old
value is dead-lettered, whatever the table's real identity.

What the catalogue says is the identity *now*: a change written before an
``ALTER TABLE ... REPLICA IDENTITY`` and read after the catalogue learned the
new identity is judged by the new one (see docs/guarantees.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import psycopg

from pipeline.cdc import Change, ReplicaIdentity, contradicts, key_identity, restrict
from pipeline.cdc.identity import stale_full_identity
from pipeline.errors import ConfigError, SourceUnavailable
from pipeline.settings import SourceSettings

__all__ = ["IdentityCatalog", "IdentityLookup", "catalog_lookup"]

log = logging.getLogger("cdcflow.transformer.identities")

IdentityLookup = Callable[[str, Collection[str]], Mapping[str, ReplicaIdentity]]
"""Reads tables (``schema.table``) from the catalogue of a database (the first
argument); a table not found is left out.

Raises :class:`~pipeline.errors.SourceUnavailable` when the database does not answer.
"""

_IDENTITY_SQL: Final = """
SELECT n.nspname || '.' || c.relname AS qualified, c.relreplident::text AS ident,
       i.indexrelid::regclass::text AS index_name,
       ARRAY(SELECT a.attname::text
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              ORDER BY k.pos) AS columns
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indrelid = c.oid
       AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))
 WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = ANY(%s)
"""

# A contradicted entry is read again at most this often; a source that does not
# answer is asked again after this long while its stale entries are used.
_RECHECK_S: Final = 1.0
_RETRY_S: Final = 5.0
_OLD_IMAGE_OPS: Final = frozenset({"u", "d"})
_Table = tuple[str, str]  # (database, schema.table)
_SOURCE_HINT: Final = (
    "check that the source database is up and the source.* settings (CDCFLOW_SOURCE__HOST, "
    "CDCFLOW_SOURCE__PORT, CDCFLOW_SOURCE__DATABASE, CDCFLOW_SOURCE__USER, "
    "CDCFLOW_SOURCE__PASSWORD)"
)


def catalog_lookup(source: SourceSettings) -> IdentityLookup:
    """A lookup that reads ``pg_class`` / ``pg_index`` / ``pg_attribute`` of the source database.

    Each call opens one short connection to ``database`` (lookups are rare:
    once per table and refresh period).
    """

    def lookup(database: str, tables: Collection[str]) -> Mapping[str, ReplicaIdentity]:
        try:
            with psycopg.connect(source.dsn(database), autocommit=True) as conn:
                rows = conn.execute(_IDENTITY_SQL, (sorted(tables),)).fetchall()
        except psycopg.Error as exc:
            raise SourceUnavailable(
                f"cannot read replica identities from the source database {database} "
                f"at {source.host}:{source.port}: {exc}".strip(),
                hint=_SOURCE_HINT,
            ) from exc
        return {
            str(qualified): ReplicaIdentity.from_catalog(str(ident), columns or (), index_name)
            for qualified, ident, index_name, columns in rows
        }

    return lookup


@dataclass(slots=True)
class _Entry:
    identity: ReplicaIdentity | None  # None: not in the catalogue
    read_at: float
    checked_at: float


class IdentityCatalog:
    """The replica identity of each table, cached (see the module doc).

    Used by one thread at a time (the batch being processed).
    """

    def __init__(
        self,
        lookup: IdentityLookup | None,
        *,
        refresh_s: float = 60.0,
        database: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self.refresh_s = refresh_s
        self.database = database
        """The database of the domain's tables, and of changes that do not name theirs."""
        self._clock = clock
        self._entries: dict[_Table, _Entry] = {}
        self._warned: set[_Table] = set()
        self.lookups = 0
        """How many times the catalogue was read (for tests and logs)."""

    @classmethod
    def record_only(cls) -> IdentityCatalog:
        """No lookup: only the record key's columns of a before image are trusted."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._lookup is not None

    def prepare(self, tables: Iterable[str]) -> None:
        """Read ``tables`` (the domain's) at start; warn about those the catalogue lacks.

        Raises:
            ConfigError: the source database cannot be reached (exit 78).
        """
        wanted = [(self.database, t) for t in sorted(set(tables))]
        if self._lookup is None or not wanted:
            return
        try:
            self._read(wanted, self._clock())
        except SourceUnavailable as exc:
            raise ConfigError(
                f"{exc.message} (the transformer reads each captured table's replica identity "
                "at start)",
                hint=f"{_SOURCE_HINT}, or turn the lookup off with "
                "CDCFLOW_TRANSFORMER__IDENTITY_LOOKUP=false (then only the record key's "
                "columns of before images are trusted)",
            ) from exc
        for table in wanted:
            entry = self._entries.get(table)
            if entry is not None and entry.identity is None:
                self._warn_missing(table)

    def identity(self, table: str, database: str | None = None) -> ReplicaIdentity | None:
        """The cached identity of ``table`` (in ``database``, default :attr:`database`), read
        when missing or stale; None: not in the catalogue.

        Raises:
            SourceUnavailable: the table was never read and the database does not answer.
        """
        return self._entry((database or self.database, table)).identity

    def _entry(self, table: _Table) -> _Entry:
        now = self._clock()
        entry = self._entries.get(table)
        if entry is None or now - entry.read_at >= self.refresh_s:
            entry = self._refresh(table, now, entry)
        return entry

    def restrict(self, change: Change) -> Change:
        """``change`` with its before image cut to what its table's identity carries.

        Creates, reads and truncates come back untouched, without a lookup.

        Raises:
            SourceUnavailable: as :meth:`identity`.
        """
        if change.op not in _OLD_IMAGE_OPS:
            return change
        if self._lookup is None:
            return restrict(change, key_identity(change, "transformer.identity_lookup is off"))
        table = (change.database or self.database, change.table)
        identity = self._entry(table).identity
        if identity is not None and contradicts(identity, change):
            identity = self._recheck(table, change, identity)
        if identity is None:
            self._warn_missing(table)
            reason = f"not found in database {table[0]}"
            return restrict(change, key_identity(change, reason))
        if identity.full and change.key_only_shape:
            # FULL now, but the old row looks key-only: written before the table became
            # FULL (a backlog, a redrive). Trusting FULL would pass Debezium's fill-ins on.
            return restrict(change, stale_full_identity(change))
        return restrict(change, identity)

    # ------------------------------------------------------------------ internals

    def _recheck(
        self, table: _Table, change: Change, cached: ReplicaIdentity
    ) -> ReplicaIdentity | None:
        now = self._clock()
        entry = self._entries[table]
        if now - entry.checked_at < _RECHECK_S:
            return entry.identity
        log.info(
            "%s op %s contradicts its cached replica identity (%s): reading it again",
            change.table,
            change.op,
            cached.describe(),
        )
        return self._refresh(table, now, entry, force=True).identity

    def _refresh(
        self, table: _Table, now: float, entry: _Entry | None, *, force: bool = False
    ) -> _Entry:
        stale = [
            t
            for t, e in self._entries.items()
            if t != table and t[0] == table[0] and now - e.read_at >= self.refresh_s
        ]
        try:
            self._read([table, *stale], now)
        except SourceUnavailable as exc:
            if entry is None:
                raise
            # Keep what is known; ask again in a few seconds, not for every change.
            log.warning("%s; keeping the cached identity of %s", exc.message, table[1])
            entry.read_at = now - self.refresh_s + _RETRY_S
            if force:
                entry.checked_at = now
            return entry
        return self._entries[table]

    def _read(self, tables: list[_Table], now: float) -> None:
        """Read ``tables``, all of one database, in one query."""
        assert self._lookup is not None
        found = self._lookup(tables[0][0], [name for _, name in tables])
        self.lookups += 1
        for table in tables:
            identity = found.get(table[1])
            previous = self._entries.get(table)
            if previous is not None and previous.identity != identity:
                log.info(
                    "replica identity of %s: %s -> %s",
                    table[1],
                    _text(previous.identity),
                    _text(identity),
                )
            self._entries[table] = _Entry(identity, now, now)

    def _warn_missing(self, table: _Table) -> None:
        if table in self._warned:
            return
        self._warned.add(table)
        log.warning(
            "%s is not a table of database %s: only the record key's columns of its before "
            "images are trusted",
            table[1],
            table[0],
        )


def _text(identity: ReplicaIdentity | None) -> str:
    return identity.describe() if identity is not None else "not in the catalogue"
