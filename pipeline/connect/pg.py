"""The source database as a Debezium Postgres connector sees it (psycopg).

Used by preflight, ``status`` (the slot's retained WAL) and ``delete
--drop-slot``. cdcflow logs in with the connector's own credentials when its
placeholders resolve on this machine; otherwise with cdcflow's settings
(``source.user`` / ``source.password``) at the connector's host, port and
database, since catalog questions about another role can be asked by any login.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.connect.secrets import has_placeholder, resolve_locally
from pipeline.errors import ConfigError
from pipeline.settings import SourceSettings

__all__ = [
    "POSTGRES_CONNECTOR",
    "TABLES_SQL",
    "ConnParams",
    "ConnectorParams",
    "SlotInfo",
    "connector_params",
    "drop_slot",
    "is_postgres_connector",
    "open_source",
    "slot_info",
    "slot_name",
]

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
# Debezium's defaults, used when the config does not set them.
DEFAULT_SLOT = "debezium"
DEFAULT_PUBLICATION = "dbz_publication"
DEFAULT_PORT = "5432"

Conn = psycopg.Connection[dict[str, Any]]

# Every table of the database with what preflight asks of it: replica identity,
# the login's privileges, ownership, key and identity columns, TOAST-able columns.
TABLES_SQL = """
SELECT n.nspname || '.' || c.relname AS qualified, c.relreplident AS identity,
       has_table_privilege(%(user)s, c.oid, 'SELECT') AS can_select,
       has_table_privilege(%(user)s, c.oid, 'INSERT') AS can_insert,
       has_table_privilege(%(user)s, c.oid, 'UPDATE') AS can_update,
       has_schema_privilege(%(user)s, n.oid, 'USAGE') AS schema_usage,
       pg_has_role(%(user)s, c.relowner, 'USAGE') AS owns,
       pg_get_userbyid(c.relowner) AS owner,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       ARRAY(SELECT a.attname::text FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = c.oid AND i.indisprimary
              ORDER BY array_position(i.indkey::int2[], a.attnum)) AS key_columns,
       ARRAY(SELECT a.attname::text FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = c.oid AND i.indisreplident
              ORDER BY array_position(i.indkey::int2[], a.attnum)) AS index_identity_columns,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attstorage IN ('x', 'e')
              ORDER BY a.attnum) AS toastable
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
 ORDER BY 1
"""


def is_postgres_connector(config: Mapping[str, str]) -> bool:
    """True for Debezium's PostgreSQL connector (full class name or its alias)."""
    cls = config.get("connector.class", "")
    return cls == POSTGRES_CONNECTOR or cls in {"PostgresConnector", "Postgres"}


def slot_name(config: Mapping[str, str]) -> str:
    return config.get("slot.name") or DEFAULT_SLOT


@dataclass(frozen=True)
class ConnParams:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None
    # Whose credentials these are: "connector" or "cdcflow" (settings.source).
    login: str

    def describe(self) -> str:
        """Where and as whom, never the password."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def kwargs(self, connect_timeout: int) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "connect_timeout": connect_timeout,
            "application_name": "cdcflow",
        }


@dataclass(frozen=True)
class ConnectorParams:
    """How to reach the connector's database, and what could not be resolved here."""

    own: ConnParams | None  # the connector's own login, if resolvable here
    fallback: ConnParams | None  # cdcflow's login at the connector's database
    unresolved: dict[str, str]  # key -> raw value (placeholders) that did not resolve
    user: str | None  # the connector's database.user, resolved


def connector_params(
    config: Mapping[str, str], source: SourceSettings, env: Mapping[str, str] | None = None
) -> ConnectorParams:
    """Connection parameters for the connector's database; never raises."""
    resolved: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for key in (
        "database.hostname",
        "database.port",
        "database.dbname",
        "database.user",
        "database.password",
    ):
        raw = config.get(key)
        if raw is None:
            continue
        value = resolve_locally(raw, env) if has_placeholder(raw) else raw
        if value is None:
            unresolved[key] = raw
        else:
            resolved[key] = value
    host = resolved.get("database.hostname")
    dbname = resolved.get("database.dbname")
    try:
        port = int(resolved.get("database.port", DEFAULT_PORT))
    except ValueError:
        port = -1
    own = fallback = None
    user = resolved.get("database.user")
    if host and dbname and port > 0:
        if user and "database.password" in resolved:
            own = ConnParams(host, port, dbname, user, resolved["database.password"], "connector")
        try:
            secret: str | None = source.secret()
        except ConfigError:
            secret = None  # no password of cdcflow's own: libpq may still find one (.pgpass)
        fallback = ConnParams(host, port, dbname, source.user, secret, "cdcflow")
    return ConnectorParams(own, fallback, unresolved, user)


def open_source(params: ConnParams, connect_timeout: int = 5) -> Conn:
    """Open an autocommit connection.

    Raises:
        psycopg.OperationalError: the server refused or could not be reached.
    """
    return psycopg.connect(autocommit=True, row_factory=dict_row, **params.kwargs(connect_timeout))


@dataclass(frozen=True)
class SlotInfo:
    slot_name: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    # WAL the server keeps for this slot: current position minus restart_lsn.
    retained_wal_bytes: int | None
    # How far the connector's confirmed position is behind the server.
    confirmed_lag_bytes: int | None
    wal_status: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def slot_info(conn: Conn, name: str) -> SlotInfo | None:
    """The replication slot ``name`` from ``pg_replication_slots``, or None."""
    row = conn.execute(
        """
        SELECT slot_name, plugin, database, active, active_pid, wal_status,
               pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained,
               pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag
          FROM pg_replication_slots
         WHERE slot_name = %s
        """,
        (name,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(
        slot_name=row["slot_name"],
        plugin=row["plugin"],
        database=row["database"],
        active=bool(row["active"]),
        active_pid=row["active_pid"],
        retained_wal_bytes=row["retained"],
        confirmed_lag_bytes=row["lag"],
        wal_status=row["wal_status"],
    )


def drop_slot(conn: Conn, name: str, *, wait_s: float = 30.0, poll_s: float = 0.5) -> bool:
    """Drop a replication slot once no stream holds it; False if there was none.

    After a connector is deleted, its task may hold the slot for a moment.

    Raises:
        TimeoutError: the slot is still active after ``wait_s``.
        psycopg.Error: the login may not drop slots (needs REPLICATION).
    """
    deadline = time.monotonic() + wait_s
    while True:
        info = slot_info(conn, name)
        if info is None:
            return False
        if not info.active:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                return True
            except psycopg.errors.UndefinedObject:
                return False  # dropped by someone else meanwhile
            except psycopg.errors.ObjectInUse:
                pass  # a stream took it between the check and the drop
        if time.monotonic() >= deadline:
            raise TimeoutError(f"replication slot {name!r} is still in use (pid {info.active_pid})")
        time.sleep(poll_s)
