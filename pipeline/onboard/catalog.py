"""What ``cdcflow init`` reads of a live PostgreSQL database: its tables, columns and keys.

One query per concern against ``pg_catalog`` (not ``information_schema``, which
hides tables the login does not own and knows neither enum labels nor replica
identities). The result is plain data (:class:`Table`, :class:`Column`) that
the rest of :mod:`pipeline.onboard` turns into files without further I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pipeline.errors import CdcflowError, SourceUnavailable

__all__ = ["Column", "Table", "connect", "identifier", "read_tables"]

# Schemas that belong to PostgreSQL itself, never the user's.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class Column:
    """One column as the catalogue describes it."""

    name: str
    type_name: str
    """The base type's name (``int8``, ``numeric``, ``timestamptz``, an enum's name ...)."""
    sql_type: str
    """``format_type``: ``numeric(10,2)``, ``text[]``, ``public.mood`` ..."""
    nullable: bool
    type_kind: str
    """``pg_type.typtype``: ``b`` base, ``e`` enum, ``d`` domain, ``c`` composite, ``r`` range."""
    precision: int | None = None
    scale: int | None = None
    element: str | None = None
    """For an array, its element type's name."""
    labels: tuple[str, ...] = ()
    """For an enum (or an array of one), its labels in order."""


@dataclass(frozen=True)
class Table:
    """One table: its columns in order, its primary key and replica identity."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    identity: str
    """``pg_class.relreplident``: ``d`` default, ``f`` full, ``i`` index, ``n`` nothing."""
    references: tuple[tuple[tuple[str, ...], str], ...] = field(default=())
    """Foreign keys: (the columns, the referenced ``schema.table``)."""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def connect(dsn: str) -> psycopg.Connection[Any]:
    """A read-only connection to the source database.

    Raises:
        SourceUnavailable: the database cannot be reached or refuses the login (exit 1).
    """
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise SourceUnavailable(
            f"cannot connect to the source database: {_first_line(exc)}",
            hint="check --dsn (host, port, dbname, user; the password from the DSN, PGPASSWORD "
            "or the source settings CDCFLOW_SOURCE__*) and that PostgreSQL is running",
        ) from exc
    conn.read_only = True
    return conn


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_TABLES = """
SELECT n.nspname, c.relname, c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg_temp%%'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s))
ORDER BY 1, 2
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       base.typname, base.typtype, a.atttypmod,
       elem.typname, elem.typtype,
       (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
         WHERE e.enumtypid = CASE WHEN elem.oid IS NULL THEN base.oid ELSE elem.oid END)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type elem ON elem.oid = base.typelem AND base.typcategory = 'A'
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY k.pos
"""

_REFERENCES = """
SELECT array_agg(a.attname ORDER BY k.pos), rn.nspname || '.' || r.relname
FROM pg_constraint con
JOIN pg_class r ON r.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos) ON true
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = %s::regclass AND con.contype = 'f'
GROUP BY con.oid, rn.nspname, r.relname
ORDER BY 2
"""


def _numeric_typmod(typmod: int) -> tuple[int | None, int | None]:
    if typmod < 4:
        return None, None
    value = typmod - 4
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def read_tables(
    conn: psycopg.Connection[Any],
    *,
    schemas: Sequence[str] = (),
    tables: Sequence[str] = (),
) -> list[Table]:
    """The tables of ``schemas`` (default: every user schema), or only ``tables``.

    ``tables`` entries are ``schema.table`` or a bare ``table`` (in any of
    ``schemas``, else in ``public``).

    Raises:
        CdcflowError: a named table does not exist, or nothing is left to capture
            (the message lists the tables that were found).
    """
    rows = conn.execute(
        _TABLES, {"system": list(_SYSTEM_SCHEMAS), "schemas": list(schemas) or None}
    ).fetchall()
    found = {f"{schema}.{name}": (schema, name, identity) for schema, name, identity in rows}
    if tables:
        default_schemas = list(schemas) or ["public"]
        wanted: list[str] = []
        for entry in tables:
            candidates = [entry] if "." in entry else [f"{s}.{entry}" for s in default_schemas]
            match = next((c for c in candidates if c in found), None)
            if match is None:
                raise CdcflowError(
                    f"table {entry!r} is not in the database",
                    hint=_found_hint(found),
                )
            wanted.append(match)
        selected = [found[t] for t in dict.fromkeys(wanted)]
    else:
        selected = list(found.values())
    if not selected:
        where = f"schema(s) {', '.join(schemas)}" if schemas else "any user schema"
        raise CdcflowError(
            f"no tables in {where} of the database",
            hint="create the tables first, or name the schema with --schema",
        )
    return [_table(conn, schema, name, identity) for schema, name, identity in selected]


def _found_hint(found: dict[str, Any]) -> str:
    names = sorted(found)
    if not names:
        return "the database has no tables in the schemas searched"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"tables found: {shown}"


def _quoted(schema: str, name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name))


def _table(conn: psycopg.Connection[Any], schema: str, name: str, identity: str) -> Table:
    regclass = _quoted(schema, name)
    columns = []
    for row in conn.execute(_COLUMNS, (regclass,)).fetchall():
        col, sql_type, nullable, type_name, kind, typmod, elem, elem_kind, labels = row
        precision, scale = _numeric_typmod(typmod) if type_name == "numeric" else (None, None)
        if elem_kind == "e" and elem is not None:
            kind = "e"  # an array of an enum: its labels are the element's
        columns.append(
            Column(
                name=col,
                type_name=type_name,
                sql_type=sql_type,
                nullable=bool(nullable),
                type_kind=kind,
                precision=precision,
                scale=scale,
                element=elem,
                labels=tuple(labels or ()),
            )
        )
    key = tuple(r[0] for r in conn.execute(_PRIMARY_KEY, (regclass,)).fetchall())
    refs = tuple(
        (tuple(cols), target) for cols, target in conn.execute(_REFERENCES, (regclass,)).fetchall()
    )
    return Table(schema, name, tuple(columns), key, identity, refs)


def identifier(name: str) -> str:
    """``name`` made a valid lower-case identifier (letters, digits, underscores)."""
    cleaned = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower() or "x"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned
