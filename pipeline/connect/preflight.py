"""Preflight: is the source database ready for a Debezium Postgres connector?

Run by ``cdcflow connectors preflight`` and by ``apply`` before it deploys.
Each check ends ``ok``, ``warn`` (it works, but something will hurt later),
``fail`` (the connector would fail or break the application) or ``skip`` (it
could not be checked from here); every warning and failure says how to fix it.

The checks, in order: the config names a database; the connector's own login
works (its placeholders resolved locally, when they can be); ``wal_level`` is
logical; the user may replicate; a replication slot and a WAL sender are free
(or the slot exists, made by the same plugin in the same database); every
captured table exists and is readable; each table's REPLICA IDENTITY (a warning
for TOAST-able columns without FULL); with a domain, what its rules need of the
captured tables (:func:`pipeline.connect.domain.domain_checks`); the
publication exists or can be created; heartbeats are configured and their
table is writable and captured (:mod:`pipeline.connect.heartbeat`). The report
(:class:`~pipeline.connect.checks.PreflightReport`) is in :mod:`pipeline.connect.checks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pipeline.connect.capture import captured_tables, fullmatch, names
from pipeline.connect.checks import Check, Level, PreflightReport
from pipeline.connect.domain import DomainCheck, domain_checks
from pipeline.connect.heartbeat import heartbeat_checks
from pipeline.connect.pg import (
    DEFAULT_PUBLICATION,
    TABLES_SQL,
    Conn,
    ConnParams,
    connector_params,
    open_source,
    slot_info,
    slot_name,
)
from pipeline.connect.secrets import placeholders
from pipeline.settings import SourceSettings

__all__ = ["run_preflight"]


# ---------------------------------------------------------------------------


@dataclass
class _Run:
    name: str
    config: Mapping[str, str]
    deployed: bool
    domain: DomainCheck | None = None  # what the domain the connector feeds needs of it
    user: str | None = None  # the connector's database.user, resolved
    checks: list[Check] = field(default_factory=list)
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)  # every table, by name

    def add(self, name: str, level: Level, detail: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, level, detail, fix))

    # -- connection ------------------------------------------------------------

    def connect(
        self, source: SourceSettings, env: Mapping[str, str] | None, timeout: int
    ) -> tuple[Conn | None, str | None]:
        missing = [
            k
            for k in ("database.hostname", "database.dbname", "database.user")
            if not self.config.get(k)
        ]
        if missing:
            self.add(
                "config",
                Level.FAIL,
                f"not set: {', '.join(missing)}",
                "set them in the connector file",
            )
            return None, None
        params = connector_params(self.config, source, env)
        self.user = params.user
        if params.own is not None:
            try:
                conn = open_source(params.own, timeout)
            except psycopg.Error as exc:
                self.add(
                    "login",
                    Level.FAIL,
                    f"cannot log in as {params.own.describe()}: {_first_line(exc)}",
                    "check that the host is reachable, that pg_hba.conf admits this user, "
                    "and that the password the placeholder resolves to is the user's password",
                )
            else:
                self.add(
                    "login",
                    Level.OK,
                    f"logged in as {params.own.describe()} (the connector's credentials)",
                )
                return conn, params.own.describe()
        else:
            names = sorted(
                {key for raw in params.unresolved.values() for _, _, key in placeholders(raw)}
            )
            self.add(
                "login",
                Level.SKIP,
                f"{', '.join(sorted(params.unresolved)) or 'a database setting'} "
                "does not resolve on this machine",
                f"set {', '.join(names)} here to check the connector's own login"
                if names
                else None,
            )
        return self._fallback(params.fallback, timeout)

    def _fallback(self, params: ConnParams | None, timeout: int) -> tuple[Conn | None, str | None]:
        if params is None:
            self.add(
                "reachable",
                Level.SKIP,
                "the database host, port or name does not resolve here; "
                "no other check was possible",
            )
            return None, None
        try:
            conn = open_source(params, timeout)
        except psycopg.Error as exc:
            self.add(
                "reachable",
                Level.FAIL,
                f"cannot reach the database as {params.describe()}: {_first_line(exc)}",
                "check database.hostname / database.port, that PostgreSQL runs, and cdcflow's "
                "own login (settings source.user / source.password)",
            )
            return None, None
        self.add(
            "reachable", Level.OK, f"checked the catalog as {params.describe()} (cdcflow's login)"
        )
        return conn, params.describe()

    # -- the checks --------------------------------------------------------------

    def run(self, conn: Conn) -> None:
        wal_level = _scalar(conn, "SELECT current_setting('wal_level')")
        if wal_level == "logical":
            self.add("wal_level", Level.OK, "logical")
        else:
            self.add(
                "wal_level",
                Level.FAIL,
                f"is {wal_level!r}; logical decoding needs 'logical'",
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
            )
        user = self.user
        if user is None:
            # database.user is a placeholder that does not resolve here: ask
            # about the login in use instead, and say so.
            user = str(_scalar(conn, "SELECT current_user"))
            self.add(
                "role",
                Level.SKIP,
                f"database.user does not resolve here; privileges checked for {user}",
            )
        role = conn.execute(
            "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s", (user,)
        ).fetchone()
        if role is None:
            self.add(
                "role",
                Level.FAIL,
                f"role {user!r} does not exist",
                f"CREATE ROLE {user} WITH LOGIN REPLICATION PASSWORD '...'",
            )
            user = str(_scalar(conn, "SELECT current_user"))
            superuser = False
        else:
            superuser = bool(role["rolsuper"])
            self._role(user, role)
        slot = self._slot(conn)
        self._senders(conn, slot_active=slot)
        tables = self._tables(conn, user)
        if tables is not None and self.domain is not None:
            for found in domain_checks(self.domain, tables, self.existing):
                self.add(found.subject, Level(found.level), found.detail, found.fix)
        if tables is not None:
            self._publication(conn, user, tables, superuser)
            self.checks += heartbeat_checks(self.config, self.user, tables, self.existing)

    def _role(self, user: str, role: Mapping[str, Any]) -> None:
        if not role["rolcanlogin"]:
            self.add("role", Level.FAIL, f"{user} may not log in", f"ALTER ROLE {user} WITH LOGIN")
        elif role["rolreplication"] or role["rolsuper"]:
            self.add(
                "role",
                Level.OK,
                f"{user} has REPLICATION" + (" (superuser)" if role["rolsuper"] else ""),
            )
        else:
            self.add(
                "role",
                Level.FAIL,
                f"{user} lacks the REPLICATION attribute",
                f"ALTER ROLE {user} WITH REPLICATION",
            )

    def _slot(self, conn: Conn) -> bool:
        """Returns whether the slot exists and is streaming."""
        name = slot_name(self.config)
        plugin = self.config.get("plugin.name") or "decoderbufs"
        info = slot_info(conn, name)
        database = _scalar(conn, "SELECT current_database()")
        if info is not None:
            if info.plugin != plugin:
                self.add(
                    "replication slot",
                    Level.FAIL,
                    f"slot {name!r} exists but was made with plugin {info.plugin!r}, "
                    f"not {plugin!r}",
                    f"SELECT pg_drop_replication_slot('{name}'); or choose another slot.name",
                )
            elif info.database != database:
                self.add(
                    "replication slot",
                    Level.FAIL,
                    f"slot {name!r} belongs to database {info.database!r}, not {database!r}",
                    "choose another slot.name: a slot decodes one database",
                )
            elif info.active and not self.deployed:
                self.add(
                    "replication slot",
                    Level.FAIL,
                    f"slot {name!r} is already streaming to another client (pid {info.active_pid})",
                    "each connector needs its own slot.name",
                )
            else:
                state = "streaming" if info.active else "idle"
                self.add(
                    "replication slot", Level.OK, f"slot {name!r} exists ({state}), and is reused"
                )
            return info.active
        most, free = _capacity(conn, "max_replication_slots", "pg_replication_slots")
        if free > 0:
            self.add(
                "replication slot",
                Level.OK,
                f"slot {name!r} will be created; {free} of {most} free",
            )
        else:
            idle = [
                r["slot_name"]
                for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE NOT active")
            ]
            drop = f"; idle slots that may be left over: {', '.join(idle)}" if idle else ""
            self.add(
                "replication slot",
                Level.FAIL,
                f"all {most} replication slots are taken",
                "raise max_replication_slots in postgresql.conf (restart), "
                "or drop unused slots with "
                f"SELECT pg_drop_replication_slot('<name>'){drop}",
            )
        return False

    def _senders(self, conn: Conn, *, slot_active: bool) -> None:
        most, free = _capacity(conn, "max_wal_senders", "pg_stat_replication")
        if slot_active or free > 0:
            self.add("wal senders", Level.OK, f"{free} of {most} free")
        else:
            self.add(
                "wal senders",
                Level.FAIL,
                f"all {most} WAL senders are busy",
                "raise max_wal_senders in postgresql.conf (restart), "
                "or stop an unused replication client",
            )

    def _captured(self, all_tables: list[str]) -> tuple[list[str], list[str]]:
        """The captured tables and the include patterns that match nothing."""
        include = names(self.config.get("table.include.list"))
        unmatched = [
            p for p in include if not any(fullmatch(p, t, re.IGNORECASE) for t in all_tables)
        ]
        return captured_tables(self.config, all_tables), unmatched

    def _tables(self, conn: Conn, user: str) -> dict[str, dict[str, Any]] | None:
        rows = {r["qualified"]: r for r in conn.execute(TABLES_SQL, {"user": user})}
        self.existing = rows
        captured, unmatched = self._captured(list(rows))
        for pattern in unmatched:
            self.add(
                "tables",
                Level.FAIL,
                f"table.include.list entry {pattern!r} matches no table",
                "create the table, or correct the entry (schema.table, a regular expression)",
            )
        if not captured:
            if not unmatched:
                self.add("tables", Level.FAIL, "no table is captured", "set table.include.list")
            return None
        if not self.config.get("table.include.list"):
            self.add(
                "tables",
                Level.WARN,
                f"no table.include.list: all {len(captured)} tables are captured",
                "list the tables the domain needs in table.include.list",
            )
        unreadable = [
            t for t in captured if not (rows[t]["can_select"] and rows[t]["schema_usage"])
        ]
        if unreadable:
            self.add(
                "tables",
                Level.FAIL,
                f"{user} cannot read {', '.join(unreadable)} (the snapshot selects from them)",
                "; ".join(f"GRANT SELECT ON {t} TO {user}" for t in unreadable)
                + f" (and GRANT USAGE ON SCHEMA <schema> TO {user})",
            )
        elif not unmatched:
            self.add("tables", Level.OK, f"{len(captured)} captured tables exist and are readable")
        captured_rows = {t: rows[t] for t in captured}
        for table, row in captured_rows.items():
            self._identity(table, row)
        return captured_rows

    def _identity(self, table: str, row: Mapping[str, Any]) -> None:
        name = f"replica identity {table}"
        identity = row["identity"]
        if identity == "f":
            self.add(name, Level.OK, "FULL")
            return
        if identity == "n" or (identity == "d" and not row["has_pk"]):
            self.add(
                name,
                Level.FAIL,
                ("NOTHING" if identity == "n" else "DEFAULT without a primary key")
                + ": UPDATE and DELETE on it fail once it is published",
                f"add a primary key, or ALTER TABLE {table} REPLICA IDENTITY FULL",
            )
            return
        kind = "DEFAULT (primary key)" if identity == "d" else "USING INDEX"
        toastable = list(row["toastable"] or [])
        if toastable:
            placeholder = self.config.get(
                "unavailable.value.placeholder", "__debezium_unavailable_value"
            )
            self.add(
                name,
                Level.WARN,
                f"{kind}; TOAST-able columns {', '.join(toastable)} arrive as {placeholder!r} "
                "when an UPDATE leaves a large value unchanged, and deletes carry only the key",
                f"ALTER TABLE {table} REPLICA IDENTITY FULL",
            )
        else:
            self.add(name, Level.OK, f"{kind}; no TOAST-able columns")

    def _publication(
        self, conn: Conn, user: str, tables: Mapping[str, Mapping[str, Any]], superuser: bool
    ) -> None:
        if (self.config.get("plugin.name") or "decoderbufs") != "pgoutput":
            self.add("publication", Level.SKIP, "only pgoutput uses a publication")
            return
        pub = self.config.get("publication.name") or DEFAULT_PUBLICATION
        mode = (self.config.get("publication.autocreate.mode") or "all_tables").lower()
        row = conn.execute(
            "SELECT puballtables, pg_has_role(%s, pubowner, 'USAGE') AS owns "
            "FROM pg_publication WHERE pubname = %s",
            (user, pub),
        ).fetchone()
        not_owned = [t for t, r in tables.items() if not r["owns"]]
        table_list = ", ".join(tables)
        ownership_fix = (
            "CREATE ROLE <group>; GRANT <group> TO <table owner>, "
            + user
            + "; ALTER TABLE <table> OWNER TO <group> "
            "(or create the publication as the tables' owner: "
            f"CREATE PUBLICATION {pub} FOR TABLE {table_list})"
        )
        if row is not None:
            published = {
                r["t"]
                for r in conn.execute(
                    "SELECT schemaname || '.' || tablename AS t "
                    "FROM pg_publication_tables WHERE pubname = %s",
                    (pub,),
                )
            }
            missing = [t for t in tables if t not in published and not row["puballtables"]]
            if not missing:
                self.add("publication", Level.OK, f"{pub!r} publishes every captured table")
            elif mode == "filtered" and row["owns"] and not [t for t in missing if t in not_owned]:
                self.add(
                    "publication",
                    Level.OK,
                    f"{pub!r} lacks {', '.join(missing)}; the connector adds them",
                )
            else:
                self.add(
                    "publication",
                    Level.FAIL,
                    f"{pub!r} does not publish {', '.join(missing)}, and {user} cannot change it",
                    f"ALTER PUBLICATION {pub} ADD TABLE {', '.join(missing)} (as its owner)",
                )
            return
        if mode == "disabled":
            self.add(
                "publication",
                Level.FAIL,
                f"{pub!r} does not exist and publication.autocreate.mode is disabled",
                f"CREATE PUBLICATION {pub} FOR TABLE {table_list}",
            )
        elif mode == "all_tables" and not superuser:
            self.add(
                "publication",
                Level.FAIL,
                f"{pub!r} does not exist; creating it FOR ALL TABLES needs a superuser",
                "set publication.autocreate.mode: filtered, or create it as a superuser",
            )
        elif (
            mode == "filtered" and not superuser and (not_owned or not self._can_create(conn, user))
        ):
            problem = (
                f"{user} does not own {', '.join(not_owned)}"
                if not_owned
                else f"{user} lacks CREATE on the database"
            )
            fix = (
                ownership_fix
                if not_owned
                else f"GRANT CREATE ON DATABASE {_scalar(conn, 'SELECT current_database()')} "
                f"TO {user}"
            )
            self.add(
                "publication",
                Level.FAIL,
                f"{pub!r} does not exist and cannot be created: {problem}",
                fix,
            )
        else:
            self.add("publication", Level.OK, f"{pub!r} will be created ({mode})")

    @staticmethod
    def _can_create(conn: Conn, user: str) -> bool:
        return bool(
            _scalar(
                conn, "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (user,)
            )
        )


def _capacity(conn: Conn, setting: str, in_use_view: str) -> tuple[int, int]:
    """``(maximum, free)`` of a server limit, counting the rows of a view as in use."""
    row = conn.execute(
        f"SELECT current_setting('{setting}')::int AS most, "
        f"(SELECT count(*) FROM {in_use_view}) AS used"
    ).fetchone()
    assert row is not None
    return int(row["most"]), int(row["most"]) - int(row["used"])


def _scalar(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else next(iter(row.values()))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_preflight(
    name: str,
    config: Mapping[str, str],
    source: SourceSettings,
    *,
    env: Mapping[str, str] | None = None,
    deployed: bool = False,
    connect_timeout: int = 5,
    domain: DomainCheck | None = None,
) -> PreflightReport:
    """Check the source database of one Debezium Postgres connector.

    ``deployed`` says the connector already runs, so its slot may be streaming.
    With ``domain``, the captured tables are also checked against what the
    domain's rules need (see :func:`pipeline.connect.domain.domain_checks`).
    Never raises for what it finds; see :func:`raise_for_failures`.

    Raises:
        psycopg.Error: only for an unexpected database error during the checks.
    """
    run = _Run(name, config, deployed, domain)
    conn, checked_as = run.connect(source, env, connect_timeout)
    if conn is not None:
        with conn:
            run.run(conn)
    return PreflightReport(name, tuple(run.checks), checked_as)
