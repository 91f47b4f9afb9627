"""The four components of the local stack, each a plain process.

Every component knows how to prepare its state (render configs, initialise
data), start, probe readiness, describe itself and stop. ``LocalStack`` in
``pipeline.stack`` runs them in dependency order: PostgreSQL (also the
registry's storage), Kafka, then Connect and the registry.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import secrets
import string
import subprocess
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests

from pipeline.errors import ComponentStartError, PortInUseError, StackError
from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.process import ManagedProcess, tail, wait_until
from pipeline.stack.system import ensure_command, find_java, port_in_use, run_as
from pipeline.stack.versions import Versions, deploy_dir

__all__ = ["Component", "Connect", "Kafka", "Postgres", "Registry", "StackPaths"]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

DEBEZIUM_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
# Passwords the stack generates once per state directory (never in the repository).
LOCAL_USERS = ("postgres", "cdcflow", "debezium", "apicurio")


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    def password(self, user: str) -> str:
        """The generated password of a local user (created on first use, mode 0600)."""
        path = self.secrets / f"{user}.password"
        if not path.exists():
            self.secrets.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secrets, 0o700)
            path.write_text(secrets.token_urlsafe(18))
            os.chmod(path, 0o600)
        return path.read_text().strip()


def _render(template: str, target: Path, **values: object) -> None:
    text = (deploy_dir() / "templates" / template).read_text()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(string.Template(text).safe_substitute({k: str(v) for k, v in values.items()}))


class Component(ABC):
    name: str

    @property
    def port(self) -> int:
        """This component's port: the stack setting ``<name>_port``."""
        return int(getattr(self.stack, f"{self.name}_port"))

    @property
    def port_setting(self) -> str:
        """The environment variable that moves this component's port."""
        return f"CDCFLOW_STACK__{self.name.upper()}_PORT"

    def __init__(self, settings: Settings, paths: StackPaths, versions: Versions) -> None:
        self.settings = settings
        self.stack = settings.stack
        self.paths = paths
        self.versions = versions
        self.proc = ManagedProcess(
            self.name, paths.run / f"{self.name}.pid", paths.logs / f"{self.name}.log"
        )

    @property
    def version(self) -> str:
        return "?"

    @property
    def rest_auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials for the component's own HTTP probes (a secured stack's)."""
        return None

    @abstractmethod
    def check(self) -> str | None:
        """None when ready, else a short reason."""

    @abstractmethod
    def _launch(self, artifacts: Artifacts, progress: Progress) -> None: ...

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:  # noqa: B027 - optional hook
        """Render configs and initialise state; idempotent."""

    def after_ready(self, progress: Progress) -> None:  # noqa: B027 - optional hook
        """One-time set-up once the component answers; idempotent."""

    def start(self, artifacts: Artifacts, progress: Progress) -> bool:
        """Start unless already running and healthy. True when this call started it.

        Raises:
            PortInUseError: the port is held by a process that is not ours.
            ComponentStartError: the process exited or did not get ready in time.
        """
        if self.proc.running():
            if self.check() is None:
                progress(f"{self.name}: already running (pid {self.proc.pid})")
                return False
            progress(f"{self.name}: running but not answering yet")
        else:
            if port_in_use(self.port):
                raise PortInUseError(self.name, self.port, self.port_setting)
            self.prepare(artifacts, progress)
            self._launch(artifacts, progress)
            progress(f"{self.name}: started (pid {self.proc.pid}), waiting until ready ...")
        reason = wait_until(
            self.check,
            what=self.name,
            timeout=self.stack.start_timeout_s,
            progress=progress,
            alive=self.proc.running,
        )
        if reason is not None:
            raise ComponentStartError(
                self.name, reason, str(self.proc.log_file), tail(self.proc.log_file)
            )
        self.after_ready(progress)
        return True

    def stop(self) -> bool:
        return self.proc.stop()

    def info(self) -> dict[str, Any]:
        running = self.proc.running()
        reason = self.check() if running else "not running"
        rss = self.proc.rss_bytes()
        return {
            "component": self.name,
            "healthy": reason is None,
            "state": "healthy" if reason is None else reason,
            "version": self.version,
            "port": self.port,
            "pid": self.proc.pid,
            "rss_mib": round(rss / 2**20) if rss else None,
            "log": str(self.proc.log_file),
        }


# --------------------------------------------------------------------------- PostgreSQL


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


# --------------------------------------------------------------------------- Java processes


class _Jvm(Component):
    @property
    def heap(self) -> str:
        """Maximum heap: the stack setting ``<name>_heap``."""
        return str(getattr(self.stack, f"{self.name}_heap"))

    # Kafka and Connect log through log4j2 into <name>.app.log; the registry to stdout.
    app_log = True

    def java(self) -> Path:
        return find_java(17, self.stack.java_home)

    def jvm_options(self) -> list[str]:
        """System properties a variant of the component adds (a secured worker's JAAS file)."""
        return []

    def jvm_command(self, artifacts: Artifacts, main: str, *args: str) -> list[str]:
        return [
            str(self.java()),
            "-Xms64m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{deploy_dir() / 'templates' / 'log4j2.properties'}",
            f"-Dcdcflow.log.file={self.paths.logs / (self.name + '.app.log')}",
            f"-Dkafka.logs.dir={self.paths.logs}",
            *self.jvm_options(),
            "-cp",
            f"{artifacts.kafka_libs}/*",
            main,
            *args,
        ]

    def info(self) -> dict[str, Any]:
        data = super().info()
        if self.app_log:
            data["log"] = str(self.paths.logs / (self.name + ".app.log"))
        return data


class Kafka(_Jvm):
    name = "kafka"

    @property
    def version(self) -> str:
        return self.versions.kafka

    @property
    def config(self) -> Path:
        return self.paths.home / "kafka" / "server.properties"

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        if port_in_use(self.stack.controller_port):
            raise PortInUseError(
                "kafka controller", self.stack.controller_port, "CDCFLOW_STACK__CONTROLLER_PORT"
            )
        data = self.paths.home / "kafka" / "data"
        _render(
            "server.properties.tmpl",
            self.config,
            kafka_port=self.port,
            controller_port=self.stack.controller_port,
            data_dir=data,
        )
        if (data / "meta.properties").exists():
            return
        progress("kafka: formatting KRaft storage (first start) ...")
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.format_storage(artifacts, cluster_id)

    def format_storage(self, artifacts: Artifacts, cluster_id: str, *extra: str) -> None:
        """``StorageTool format`` the storage ``self.config`` names, before its first start.

        Raises:
            StackError: the tool failed (its output is in the message).
        """
        cmd = self.jvm_command(
            artifacts,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.config),
            *extra,
        )
        cmd = [c for c in cmd if not c.startswith(("-Xms", "-Xmx"))]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}\n{proc.stderr}")

    def _launch(self, artifacts: Artifacts, progress: Progress) -> None:
        self.proc.start(self.jvm_command(artifacts, "kafka.Kafka", str(self.config)))

    def check(self) -> str | None:
        if not port_in_use(self.port):
            return f"port {self.port} not open yet"
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"localhost:{self.port}", "log_level": 0})
        try:
            meta = admin.list_topics(timeout=3)
        except Exception as exc:  # KafkaException: not answering metadata yet
            return f"no metadata: {exc}"
        return None if meta.brokers else "no brokers in metadata"


class Connect(_Jvm):
    name = "connect"

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def version(self) -> str:
        try:
            worker = (
                requests.get(self.url + "/", timeout=2, auth=self.rest_auth)
                .json()
                .get("version", "?")
            )
            plugins = requests.get(
                self.url + "/connector-plugins", timeout=2, auth=self.rest_auth
            ).json()
            dbz = next((p.get("version") for p in plugins if p.get("class") == DEBEZIUM_CLASS), "?")
            return f"{worker} (debezium {dbz})"
        except (requests.RequestException, ValueError):
            return f"{self.versions.kafka} (debezium {self.versions.debezium})"

    @property
    def config(self) -> Path:
        return self.paths.home / "connect" / "worker.properties"

    def worker_values(self, artifacts: Artifacts, progress: Progress) -> dict[str, object]:
        """Values of the worker's config template: every Kafka node, its replication."""
        return {
            "bootstrap": ",".join(f"localhost:{p}" for p in self.stack.broker_ports),
            "replication_factor": self.stack.replication[0],
            "connect_port": self.port,
            "plugin_path": artifacts.plugin_path,
            "secrets_dir": self.paths.secrets.resolve(),
        }

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        self.paths.secrets.mkdir(parents=True, exist_ok=True)
        _render(
            "connect-distributed.properties.tmpl",
            self.config,
            **self.worker_values(artifacts, progress),
        )

    def _launch(self, artifacts: Artifacts, progress: Progress) -> None:
        env = dict(os.environ)
        # Resolved by the worker's EnvVarConfigProvider: ${env:CDCFLOW_SOURCE_DEBEZIUM_PASSWORD}
        env["CDCFLOW_SOURCE_DEBEZIUM_PASSWORD"] = self.paths.password("debezium")
        cmd = self.jvm_command(
            artifacts, "org.apache.kafka.connect.cli.ConnectDistributed", str(self.config)
        )
        self.proc.start(cmd, env=env)

    def check(self) -> str | None:
        try:
            resp = requests.get(self.url + "/connector-plugins", timeout=3, auth=self.rest_auth)
        except requests.RequestException:
            return f"REST API on port {self.port} not answering yet"
        if resp.status_code != 200:
            return f"GET /connector-plugins answered {resp.status_code}"
        classes = {p.get("class") for p in resp.json()}
        return None if DEBEZIUM_CLASS in classes else "Debezium Postgres plugin not listed"


class Registry(_Jvm):
    name = "registry"
    app_log = False

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def version(self) -> str:
        try:
            info = requests.get(
                self.url + "/apis/registry/v3/system/info", timeout=2, auth=self.rest_auth
            ).json()
            return str(info.get("version", self.versions.registry))
        except (requests.RequestException, ValueError):
            return self.versions.registry

    def java(self) -> Path:
        return find_java(
            self.versions.registry_java_min, self.stack.registry_java_home, newest=True
        )

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        port = self.stack.registry_management_port
        if port_in_use(port):
            raise PortInUseError(
                "registry management interface", port, "CDCFLOW_STACK__REGISTRY_MANAGEMENT_PORT"
            )

    def _launch(self, artifacts: Artifacts, progress: Progress) -> None:
        pg = self.stack.postgres_port
        env = dict(os.environ)
        # Schemas are stored in the stack's PostgreSQL so they survive a restart.
        env.update(
            {
                "APICURIO_STORAGE_KIND": "sql",
                "APICURIO_STORAGE_SQL_KIND": "postgresql",
                "APICURIO_DATASOURCE_URL": f"jdbc:postgresql://localhost:{pg}/registry",
                "APICURIO_DATASOURCE_USERNAME": "apicurio",
                "APICURIO_DATASOURCE_PASSWORD": self.paths.password("apicurio"),
            }
        )
        cmd = [
            str(self.java()),
            "-Xms64m",
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.http.host=localhost",
            f"-Dquarkus.management.port={self.stack.registry_management_port}",
            "-Dquarkus.management.host=localhost",
            "-Dquarkus.log.console.json=false",
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            "-Dapicurio.datasource.jdbc.max-size=10",
            *self.jvm_options(),
            "-jar",
            str(artifacts.registry_home / "quarkus-run.jar"),
        ]
        self.proc.start(cmd, env=env, cwd=artifacts.registry_home)

    def check(self) -> str | None:
        try:
            resp = requests.get(
                self.url + "/apis/ccompat/v7/subjects", timeout=3, auth=self.rest_auth
            )
        except requests.RequestException:
            return f"HTTP on port {self.port} not answering yet"
        return (
            None
            if resp.status_code == 200
            else f"GET /apis/ccompat/v7/subjects answered {resp.status_code}"
        )
