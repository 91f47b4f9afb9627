"""The local stack: PostgreSQL, Kafka (KRaft), Connect + Debezium, Apicurio Registry, Prometheus.

Plain processes under one state directory (``CDCFLOW_STACK__HOME``, default
``.cdcflow``), fetched from Maven Central and Debian's packages by
:mod:`pipeline.stack.artifacts` at the versions pinned in ``deploy/local/pom.xml``.

Kafka is one node by default; ``stack.brokers=3`` makes it a KRaft cluster
(:mod:`pipeline.stack.cluster`) and ``stack.security=sasl_ssl`` secures Kafka,
Connect and the registry (:mod:`pipeline.stack.security`). A stack started
so records its layout in ``<home>/run/topology.json``; :meth:`LocalStack.in_home`
finds it again for ``status`` and ``down`` without the settings repeated.
Prometheus (:mod:`pipeline.stack.prometheus`) comes last and evaluates the
alert rules of ``deploy/monitoring``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts, ensure_artifacts
from pipeline.stack.cluster import kafka_nodes, launch_together, stop_together
from pipeline.stack.components import Component, Connect, Registry, StackPaths
from pipeline.stack.postgres import Postgres
from pipeline.stack.process import ManagedProcess
from pipeline.stack.prometheus import Prometheus
from pipeline.stack.security import SecureConnect, SecureRegistry, StackSecurity
from pipeline.stack.versions import Versions, load_versions

__all__ = ["LocalStack", "StackPaths"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class LocalStack:
    """Bring the local stack up, down, and report on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.stack.home.resolve())
        self.versions: Versions = load_versions()
        self.security = StackSecurity(self.paths, settings.stack)
        self.postgres = Postgres(settings, self.paths, self.versions)
        self.brokers = kafka_nodes(settings, self.paths, self.versions, self.security)
        self.kafka = self.brokers[0]
        self.connect: Connect = Connect(settings, self.paths, self.versions)
        self.registry: Registry = Registry(settings, self.paths, self.versions)
        if self.security.enabled:
            self.connect = SecureConnect(settings, self.paths, self.versions, self.security)
            self.registry = SecureRegistry(settings, self.paths, self.versions, self.security)
        self.prometheus = Prometheus(settings, self.paths, self.versions)

    @classmethod
    def in_home(cls, settings: Settings) -> LocalStack:
        """The stack as it was started in ``settings.stack.home``.

        ``stack.brokers`` and ``stack.security`` not set explicitly are taken
        from the layout the last ``up`` recorded, so ``status`` and ``down``
        find a cluster started with ``up --brokers 3``.
        """
        record = settings.stack.home.resolve() / "run" / "topology.json"
        try:
            layout = json.loads(record.read_text())
        except (OSError, ValueError):
            return cls(settings)
        stack = settings.stack
        update = {k: v for k, v in layout.items() if k not in stack.model_fields_set}
        if not update:
            return cls(settings)
        return cls(settings.model_copy(update={"stack": stack.model_copy(update=update)}))

    @property
    def layout(self) -> dict[str, Any]:
        return {"brokers": self.settings.stack.brokers, "security": self.settings.stack.security}

    @property
    def components(self) -> list[Component]:
        """In start order; stopped in reverse."""
        return [self.postgres, *self.brokers, self.connect, self.registry, self.prometheus]

    def _other_kafka(self) -> list[ManagedProcess]:
        """Kafka processes in this home that are not of this layout (their pid files)."""
        ours = {comp.proc.pid_file for comp in self.brokers}
        return [
            ManagedProcess(path.stem, path, self.paths.logs / f"{path.stem}.log")
            for path in sorted(self.paths.run.glob("kafka*.pid"))
            if path not in ours
        ]

    def component(self, name: str) -> Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    def artifacts(self, progress: Progress = _quiet) -> Artifacts:
        return ensure_artifacts(self.settings.stack.cache, self.versions, progress)

    def up(self, progress: Progress = _quiet) -> bool:
        """Start every component that is not running; wait until each is ready.

        Returns True when this call started at least one component.

        Raises:
            ArtifactError, PortInUseError, ComponentStartError: see ``pipeline.errors``.
            StackError: Kafka of another layout runs in this home, or its storage was
                formatted for another layout.
        """
        started_at = time.monotonic()
        running = [p.name for p in self._other_kafka() if p.running()]
        if running:
            raise StackError(
                f"{self.paths.home} runs Kafka in another layout ({', '.join(running)}), "
                f"not {self.layout['brokers']} node(s) with security {self.layout['security']!r}",
                hint="run 'cdcflow stack down' first, or use another CDCFLOW_STACK__HOME",
            )
        artifacts = self.artifacts(progress)
        record = self.paths.run / "topology.json"
        if self.layout != {"brokers": 1, "security": "none"}:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(self.layout))
        started = False
        for comp in self.components:
            t0 = time.monotonic()
            if comp is self.brokers[0] and launch_together(self.brokers, artifacts, progress):
                started = True
            if comp.start(artifacts, progress):
                started = True
                progress(f"{comp.name}: ready on port {comp.port} ({time.monotonic() - t0:.1f}s)")
        progress(f"stack up in {time.monotonic() - started_at:.1f}s")
        if self.layout != {"brokers": 1, "security": "none"}:
            env = self.security.write_client_env()
            progress(f"clients of this stack: set -a; . {env}; set +a")
        return started

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Stop the components this stack started (by pid file). Returns their names."""
        stopped: list[str] = []

        def done(names: list[str]) -> None:
            for name in names:
                stopped.append(name)
                progress(f"{name}: stopped")

        for comp in reversed(self.components):
            if comp is self.brokers[0]:
                done(stop_together(self.brokers))  # a quorum's nodes stop together
            elif comp not in self.brokers and comp.stop():
                done([comp.name])
        done([proc.name for proc in self._other_kafka() if proc.stop()])
        (self.paths.run / "topology.json").unlink(missing_ok=True)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        return [comp.info() for comp in self.components]

    def healthy(self) -> bool:
        return all(row["healthy"] for row in self.status())
