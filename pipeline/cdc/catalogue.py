"""Column types from the source database's catalogue, for CDC records without a schema.

With ``value.converter.schemas.enable=false`` (and the key's) a record is only
its payload, about a fifth of the bytes, and says nothing of its columns' types:
a Decimal is base64 text, a timestamp a bare number. With
``transformer.cdc_types: catalogue`` the transformer reads each captured
table's columns once from the catalogue of the database the change came from
(``pg_attribute`` / ``pg_type``: domains resolved to their base type, typmods
for numeric scale and time precision, enums, arrays) and writes for each the
Connect field schema Debezium writes for that type under the connector's value
handling (:mod:`pipeline.cdc.column_types`). Records are then decoded by the same decoders,
from the same kind of schema, as records that carry theirs: every value exact.

What is checked, and what cannot be:

* A row column the cached types do not know makes the table be read again
  (a column the last read, less than a second ago, did not find: not again);
  still unknown, the record fails with a DecodeError naming table and column
  (the dead-letter topic). So does a key column that is not the table's, and
  a table the catalogue does not have (asked again at most once a second).
* A value whose JSON form does not fit its column's type (text for an
  integer, a number for a date, base64 that is not base64) fails its record
  when the column is decoded, as with a schema.
* The types are the catalogue's when it was read. A column whose type changed
  (``ALTER COLUMN ... TYPE``) while records written before the change are
  still unread is read with the new type. Where both types have the same
  JSON form (``numeric(10,2)`` to ``numeric(10,4)``: base64 either way,
  ``timestamp(3)`` to ``timestamp(6)``: a number either way) the value is
  misread, and nothing in the record can tell. Change a captured column's
  type only once the transformer has read every record before the change, or
  keep schemas in the records of that connector.
* The value handling is the connector's, given in settings (the connector's
  keys, default those of the connector files cdcflow writes); a connector configured
  otherwise is misread the same way.
* A type without an exact mapping here (geometric types, ``tsvector``, ...)
  fails its record when a rule reads the column.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import psycopg
from psycopg.rows import tuple_row

from pipeline.cdc.column_types import ColumnType, ValueModes, column_schema
from pipeline.cdc.model import RecordRef
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.schema_cache import KnownSchema
from pipeline.errors import DecodeError, SourceUnavailable

__all__ = [
    "ColumnCatalogue",
    "ColumnType",
    "TableTypes",
    "ValueModes",
    "catalogue_lookup",
    "column_schema",
    "read_columns",
]


class TableTypes:
    """One table's columns as Connect schemas, with the decoding plans of a schema'd record."""

    __slots__ = ("absent", "envelope", "key_schema", "names", "read_at", "table")

    def __init__(self, table: str, columns: Mapping[str, dict[str, Any]], read_at: float) -> None:
        self.table = table
        self.names = frozenset(columns)
        self.read_at = read_at
        self.absent: frozenset[str] = frozenset()
        """Columns of records that this read was made for and did not find."""
        image = {"type": "struct", "optional": True, "fields": list(columns.values())}
        self.envelope = KnownSchema(
            {
                "type": "struct",
                "fields": [{**image, "field": "before"}, {**image, "field": "after"}],
            }
        )
        self.key_schema = KnownSchema({"type": "struct", "fields": list(columns.values())})

    def unknown(self, *rows: Any) -> list[str]:
        """Columns of ``rows`` (JSON objects; others are left to the decoder) not in the table."""
        names = self.names
        return sorted(
            {c for row in rows if isinstance(row, dict) and not row.keys() <= names for c in row}
            - names
        )

    def key(self, payload: dict[str, Any]) -> Any:
        """A key payload decoded with its columns' types.

        Raises:
            ValueDecodeError: a key column is not one of the table's, or does not decode.
        """
        if not payload.keys() <= self.names:
            missing = self.unknown(payload)
            raise ValueDecodeError(
                f"column {', '.join(map(repr, missing))} is not in {self.table}",
                table=self.table,
                column=missing[0],
            )
        return self.key_schema.key(payload)


ColumnLookup = Callable[[str, Collection[str]], Mapping[str, list[ColumnType]]]
"""Reads tables (``schema.table``) from the catalogue of a database (the first argument):
their columns in order; a table not found is left out.

Raises :class:`~pipeline.errors.SourceUnavailable` when the database does not answer."""

_COLUMNS_SQL: Final = """
SELECT n.nspname || '.' || c.relname AS qualified, a.attname::text AS name,
       a.atttypid::int AS type_oid, a.atttypmod AS typmod, a.attndims AS dims
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname || '.' || c.relname = ANY(%s)
   AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY qualified, a.attnum
"""
_TYPES_SQL: Final = """
SELECT oid::int, typname::text, typtype::text, typbasetype::int, typtypmod, typelem::int,
       typcategory::text
  FROM pg_type WHERE oid = ANY(%s)
"""
_TypeRow = tuple[int, str, str, int, int, int, str]


def read_columns(
    conn: psycopg.Connection[Any], tables: Collection[str]
) -> dict[str, list[ColumnType]]:
    """The columns of ``tables`` (``schema.table``) as the connection's catalogue has them."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever the connection's rows are
    rows = cur.execute(_COLUMNS_SQL, (sorted(tables),)).fetchall()
    types: dict[int, _TypeRow] = {}
    wanted = {int(r[2]) for r in rows}
    while wanted:  # domains and arrays name further types: read until none is new
        found = cur.execute(_TYPES_SQL, (sorted(wanted),)).fetchall()
        types.update({int(t[0]): tuple(t) for t in found})
        wanted = {o for t in found for o in (t[3], t[5]) if o and o not in types}
    out: dict[str, list[ColumnType]] = {}
    for qualified, name, oid, typmod, _dims in rows:
        out.setdefault(str(qualified), []).append(_resolve(str(name), int(oid), int(typmod), types))
    return out


def _resolve(name: str, oid: int, typmod: int, types: Mapping[int, _TypeRow]) -> ColumnType:
    array = False
    for _ in range(16):  # a domain over a domain over an array ...: a few steps at most
        row = types.get(oid)
        if row is None:
            break
        _, typname, typtype, basetype, domain_typmod, element, category = row
        if typtype == "d":
            typmod = domain_typmod if typmod < 0 else typmod
            oid = basetype
            continue
        if category == "A" and element and not array:
            array, oid = True, element
            continue
        return ColumnType(name, typname, typmod, enum=typtype == "e", array=array)
    return ColumnType(name, f"oid {oid}", typmod, array=array)


_SOURCE_HINT: Final = (
    "check that the source database is up and the source.* settings (CDCFLOW_SOURCE__HOST, "
    "..., CDCFLOW_SOURCE__PASSWORD); or give the connector schemas "
    "(value.converter.schemas.enable=true) and set transformer.cdc_types=record"
)


def catalogue_lookup(dsn: Callable[[str], str], where: str = "") -> ColumnLookup:
    """A lookup that opens one short connection to ``dsn(database)`` per call (rare: once per table)."""

    def lookup(database: str, tables: Collection[str]) -> Mapping[str, list[ColumnType]]:
        try:
            with psycopg.connect(dsn(database), autocommit=True) as conn:
                return read_columns(conn, tables)
        except psycopg.Error as exc:
            raise SourceUnavailable(
                f"cannot read column types from the source database {database}{where}: {exc}",
                hint=_SOURCE_HINT,
            ) from exc

    return lookup


_RECHECK_S: Final = 1.0
"""A table is read again for a column (or a table) it lacked at most this often."""


class ColumnCatalogue:
    """Each captured table's column types, read once and cached (see the module doc).

    Used by one thread at a time (the batch being decoded).
    """

    def __init__(
        self,
        lookup: ColumnLookup,
        modes: ValueModes | None = None,
        *,
        database: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self.modes = modes or ValueModes()
        self.database = database
        """The database of changes that do not name theirs."""
        self._clock = clock
        self._tables: dict[tuple[str, str, str], TableTypes] = {}
        """By (database, schema, table)."""
        self._missing: dict[tuple[str, str, str], float] = {}
        """Tables the catalogue did not have, and when it was asked."""
        self.lookups = 0
        """How many times the catalogue was read (for tests and logs)."""

    def types(
        self,
        database: str | None,
        schema: str,
        table: str,
        rows: tuple[Any, Any],
        ref: RecordRef,
    ) -> TableTypes:
        """The types of ``schema.table``, knowing every column of ``rows`` (the before and after
        images; read again if needed).

        Raises:
            DecodeError: (with ``ref``'s record, naming table and column) the table is not in the
                catalogue, or a column of ``rows`` is still unknown after reading it again.
            SourceUnavailable: the catalogue could not be read.
        """
        known = self._tables.get((database or self.database, schema, table))
        if known is not None:  # the usual case, kept short: every column known
            names = known.names
            before, after = rows
            if (type(before) is not dict or before.keys() <= names) and (
                type(after) is not dict or after.keys() <= names
            ):
                return known
        return self._types_again(known, (database or self.database, schema, table), rows, ref)

    def _types_again(
        self,
        known: TableTypes | None,
        where: tuple[str, str, str],
        rows: tuple[Any, Any],
        ref: RecordRef,
    ) -> TableTypes:
        """The table read (again): it was not cached, or a column of ``rows`` is not known."""
        table = f"{where[1]}.{where[2]}"

        def fail(message: str, column: str | None = None) -> DecodeError:
            return DecodeError(message, **ref.error_fields(), table=table, column=column)

        if known is not None:
            missing = known.unknown(*rows)
            if known.absent.issuperset(missing) and self._clock() - known.read_at < _RECHECK_S:
                # Read for these very columns a moment ago: a record's column not there.
                raise fail(self._unknown(table, missing), missing[0])
        absent = f"table {table} is not in the catalogue of database {where[0]}"
        asked = self._missing.get(where)
        if known is None and asked is not None and self._clock() - asked < _RECHECK_S:
            raise fail(absent)  # asked a moment ago
        self.lookups += 1
        found = self._lookup(where[0], [table]).get(table)
        if found is None:
            self._tables.pop(where, None)
            self._missing[where] = self._clock()
            raise fail(absent)
        self._missing.pop(where, None)
        columns = {c.name: column_schema(c, self.modes) for c in found}
        known = self._tables[where] = TableTypes(table, columns, self._clock())
        missing = known.unknown(*rows)
        if missing:
            known.absent = frozenset(missing)
            raise fail(self._unknown(table, missing), missing[0])
        return known

    @staticmethod
    def _unknown(table: str, columns: list[str]) -> str:
        return (
            f"{table}: column {', '.join(repr(c) for c in columns)} is not in the table's "
            "catalogue (dropped or renamed since the change was written?); its type is unknown"
        )
