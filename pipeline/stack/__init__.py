"""The local stack: PostgreSQL, Kafka (KRaft), Kafka Connect + Debezium, Apicurio Registry.

Plain processes under one state directory (``CDCFLOW_STACK__HOME``, default
``.cdcflow``), fetched from Maven Central and Debian's packages by
:mod:`pipeline.stack.artifacts` at the versions pinned in ``deploy/local/pom.xml``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts, ensure_artifacts
from pipeline.stack.components import Component, Connect, Kafka, Postgres, Registry, StackPaths
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
        self.postgres = Postgres(settings, self.paths, self.versions)
        self.kafka = Kafka(settings, self.paths, self.versions)
        self.connect = Connect(settings, self.paths, self.versions)
        self.registry = Registry(settings, self.paths, self.versions)

    @property
    def components(self) -> list[Component]:
        """In start order; stopped in reverse."""
        return [self.postgres, self.kafka, self.connect, self.registry]

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
        """
        started_at = time.monotonic()
        artifacts = self.artifacts(progress)
        started = False
        for comp in self.components:
            t0 = time.monotonic()
            if comp.start(artifacts, progress):
                started = True
                progress(f"{comp.name}: ready on port {comp.port} ({time.monotonic() - t0:.1f}s)")
        progress(f"stack up in {time.monotonic() - started_at:.1f}s")
        return started

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Stop the components this stack started (by pid file). Returns their names."""
        stopped = []
        for comp in reversed(self.components):
            if comp.stop():
                stopped.append(comp.name)
                progress(f"{comp.name}: stopped")
        return stopped

    def status(self) -> list[dict[str, Any]]:
        return [comp.info() for comp in self.components]

    def healthy(self) -> bool:
        return all(row["healthy"] for row in self.status())
