"""PostgreSQL of the local stack, from Debian's packages: the source and the registry's storage."""

from __future__ import annotations

import os
import pwd
import uuid
from pathlib import Path
from typing import Any

import psycopg

from pipeline.errors import StackError
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.components import Component, Progress
from pipeline.stack.system import ensure_command, run_as

__all__ = ["LOCAL_USERS", "Postgres"]

# Passwords the stack generates once per state directory (never in the repository).
LOCAL_USERS = ("postgres", "cdcflow", "debezium", "apicurio")


class Postgres(Component):
    name = "postgres"

    @property
    def version(self) -> str:
        try:
            with self._connect("postgres") as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return str(row[0]).split()[0] if row else "?"
        except psycopg.Error:
            return self.versions.postgresql_major

    @property
    def bin(self) -> Path:
        return Path(f"/usr/lib/postgresql/{self.versions.postgresql_major}/bin")

    @property
    def user(self) -> str | None:
        """PostgreSQL refuses to run as root: as root, the server runs as 'postgres'."""
        return "postgres" if os.geteuid() == 0 else None

    @property
    def root(self) -> Path:
        return self.paths.home / "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _connect(self, database: str, user: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="localhost",
            port=self.port,
            dbname=database,
            user=user,
            password=self.paths.password(user),
            connect_timeout=3,
            autocommit=True,
        )

    def _place_root(self) -> None:
        """Make the cluster's directory reachable by the server's user.

        As root, the state directory may sit below a path the 'postgres' user
        cannot traverse (a home directory with mode 0700); then the cluster
        lives under /var/lib/cdcflow and the state directory links to it.
        """
        if self.root.exists() or self.user is None:
            self.root.mkdir(parents=True, exist_ok=True)
            return
        self.paths.home.mkdir(parents=True, exist_ok=True)
        probe = run_as(self.user, ["test", "-x", str(self.paths.home.resolve())])
        if probe.returncode == 0:
            self.root.mkdir(parents=True)
        else:
            key = uuid.uuid5(uuid.NAMESPACE_URL, str(self.paths.home.resolve())).hex[:12]
            real = Path("/var/lib/cdcflow") / f"postgres-{key}"
            real.mkdir(parents=True, exist_ok=True)
            self.root.symlink_to(real)

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        ensure_command(
            "initdb", f"postgresql-{self.versions.postgresql_major}", progress, self.bin / "initdb"
        )
        self._place_root()
        (self.root / "run").mkdir(exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            for path in [self.root, self.root / "run"]:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        if (self.data / "PG_VERSION").exists():
            return
        progress("postgres: initdb (first start) ...")
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.paths.password("postgres"))
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        proc = run_as(
            self.user,
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise StackError(
                f"initdb failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# cdcflow local stack\n"
                "wal_level = logical\n"
                "max_wal_senders = 20\n"
                "max_replication_slots = 20\n"
                "max_connections = 200\n"
                "listen_addresses = 'localhost'\n"
                f"unix_socket_directories = '{self.root / 'run'}'\n"
                "logging_collector = off\n"
            )

    def _launch(self, artifacts: Artifacts, progress: Progress) -> None:
        cmd = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        self.proc.start(cmd, user=self.user)

    def check(self) -> str | None:
        try:
            with self._connect("postgres") as conn:
                conn.execute("SELECT 1")
            return None
        except psycopg.OperationalError as exc:
            return str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"

    def after_ready(self, progress: Progress) -> None:
        """Roles and databases: the domain's owner, Debezium's user, the registry's storage."""
        pw = {user: self.paths.password(user) for user in LOCAL_USERS}
        with self._connect("postgres") as conn:
            roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
            dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
            for role, attrs in [
                ("cdcflow", "LOGIN CREATEDB"),
                ("debezium", "LOGIN REPLICATION"),
                ("apicurio", "LOGIN"),
            ]:
                verb = "ALTER" if role in roles else "CREATE"
                conn.execute(f"{verb} ROLE {role} WITH {attrs} PASSWORD '{pw[role]}'")
            # Debezium's user acts as owner of the domain's tables (a filtered
            # publication is created by the table owner) and reads them in snapshots.
            conn.execute("GRANT cdcflow TO debezium")
            for db, owner in [(self.settings.source.database, "cdcflow"), ("registry", "apicurio")]:
                if db not in dbs:
                    conn.execute(f'CREATE DATABASE "{db}" OWNER {owner}')
        with self._connect(self.settings.source.database) as conn:
            conn.execute(f'GRANT CREATE ON DATABASE "{self.settings.source.database}" TO debezium')

    def stop(self) -> bool:
        if not self.proc.running():
            return self.proc.stop()
        run_as(
            self.user, [str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
        )
        self.proc.stop(timeout=20)
        return True
