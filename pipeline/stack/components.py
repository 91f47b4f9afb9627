"""The components of the local stack, each a plain process: the base and the JVMs.

Every component knows how to prepare its state (render configs, initialise
data), start, probe readiness, describe itself and stop. ``LocalStack`` in
``pipeline.stack`` runs them in dependency order: PostgreSQL
(:mod:`pipeline.stack.postgres`, also the registry's storage), Kafka, then
Connect, the registry and Prometheus (:mod:`pipeline.stack.prometheus`).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import string
import subprocess
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from pipeline.errors import ComponentStartError, PortInUseError, StackError
from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.process import ManagedProcess, tail, wait_until
from pipeline.stack.system import find_java, port_in_use
from pipeline.stack.versions import Versions, deploy_dir

__all__ = ["Component", "Connect", "Kafka", "Registry", "StackPaths"]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

DEBEZIUM_CLASS = "io.debezium.connector.postgresql.PostgresConnector"


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
                self.name,
                reason,
                log_path=str(self.proc.log_file),
                log_tail=tail(self.proc.log_file),
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


class _RestJvm(_Jvm):
    """A JVM component with a REST API on ``localhost:<port>`` (Connect, the registry)."""

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def get(self, path: str, timeout: float = 2) -> requests.Response:
        """``GET <url><path>`` with the stack's REST credentials."""
        return requests.get(self.url + path, timeout=timeout, auth=self.rest_auth)


class Connect(_RestJvm):
    name = "connect"

    @property
    def version(self) -> str:
        try:
            worker = self.get("/").json().get("version", "?")
            plugins = self.get("/connector-plugins").json()
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
            resp = self.get("/connector-plugins", timeout=3)
        except requests.RequestException:
            return f"REST API on port {self.port} not answering yet"
        if resp.status_code != 200:
            return f"GET /connector-plugins answered {resp.status_code}"
        classes = {p.get("class") for p in resp.json()}
        return None if DEBEZIUM_CLASS in classes else "Debezium Postgres plugin not listed"


class Registry(_RestJvm):
    name = "registry"
    app_log = False

    @property
    def version(self) -> str:
        try:
            info = self.get("/apis/registry/v3/system/info").json()
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
            resp = self.get("/apis/ccompat/v7/subjects", timeout=3)
        except requests.RequestException:
            return f"HTTP on port {self.port} not answering yet"
        return (
            None
            if resp.status_code == 200
            else f"GET /apis/ccompat/v7/subjects answered {resp.status_code}"
        )
