"""The local stack's Kafka as KRaft nodes: a cluster, or one secured node.

``stack.brokers=3`` runs three combined broker + controller processes on
loopback, each with its own ports (``cluster_kafka_port`` and
``cluster_controller_port`` and up), directory (``<home>/kraft/node-<n>``)
and log; the three vote in one static quorum (``controller.quorum.voters``),
so the metadata survives the loss of one node. Topics get three replicas with
two in sync (:attr:`pipeline.settings.StackSettings.replication`).

A quorum of three elects no leader while only one node runs, so the nodes are
launched together (:func:`launch_together`) and only then waited for; a node
counts as ready once it answers metadata and is registered as a broker.

``stack.security=sasl_ssl`` uses the same nodes (one or more) with the
listeners of :mod:`pipeline.stack.security`. The plain single node stays the
:class:`~pipeline.stack.components.Kafka` of ``server.properties.tmpl``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from pipeline.errors import PortInUseError, StackError
from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.components import Kafka, Progress, StackPaths, _render
from pipeline.stack.security import StackSecurity
from pipeline.stack.system import port_in_use
from pipeline.stack.versions import Versions

__all__ = ["KafkaNode", "kafka_nodes", "launch_together", "stop_together"]


class KafkaNode(Kafka):
    """Node ``node`` (1-based) of the stack's KRaft cluster."""

    def __init__(
        self,
        settings: Settings,
        paths: StackPaths,
        versions: Versions,
        node: int,
        security: StackSecurity,
    ) -> None:
        self.node = node
        self.name = f"kafka-{node}"  # before the base class names the pid and log files
        super().__init__(settings, paths, versions)
        self.security = security

    @property
    def port(self) -> int:
        return self.stack.broker_ports[self.node - 1]

    @property
    def controller_port(self) -> int:
        return self.stack.controller_ports[self.node - 1]

    @property
    def port_setting(self) -> str:
        base = "CLUSTER_KAFKA_PORT" if self.stack.brokers > 1 else "KAFKA_PORT"
        return f"CDCFLOW_STACK__{base}"

    @property
    def heap(self) -> str:
        return self.stack.cluster_heap if self.stack.brokers > 1 else self.stack.kafka_heap

    @property
    def root(self) -> Path:
        return self.paths.home / "kraft"

    @property
    def config(self) -> Path:
        return self.root / f"node-{self.node}" / "server.properties"

    @property
    def data(self) -> Path:
        return self.root / f"node-{self.node}" / "data"

    def client_properties(self) -> dict[str, str]:
        """librdkafka properties of the stack's own probes (the admin user when secured)."""
        return self.security.librdkafka("admin") if self.security.enabled else {}

    def _cluster_id(self) -> str:
        """The cluster's id, made once for all nodes; the layout they were formatted for must hold.

        Raises:
            StackError: the storage was formatted for another number of nodes or security.
        """
        marker = self.root / "cluster.json"
        layout = {"brokers": self.stack.brokers, "security": self.stack.security}
        if marker.exists():
            recorded = json.loads(marker.read_text())
            if {k: recorded.get(k) for k in layout} != layout:
                raise StackError(
                    f"the KRaft storage in {self.root} is for {recorded.get('brokers')} node(s) "
                    f"with security {recorded.get('security')!r}, not {layout['brokers']} "
                    f"with {layout['security']!r}",
                    hint=f"stop the stack and remove {self.root}, or use another CDCFLOW_STACK__HOME",
                )
            return str(recorded["cluster_id"])
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.root.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"cluster_id": cluster_id, **layout}))
        return cluster_id

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        if port_in_use(self.controller_port):
            setting = "CLUSTER_CONTROLLER_PORT" if self.stack.brokers > 1 else "CONTROLLER_PORT"
            raise PortInUseError(
                f"{self.name} controller", self.controller_port, f"CDCFLOW_STACK__{setting}"
            )
        cluster_id = self._cluster_id()
        self.render()
        if (self.data / "meta.properties").exists():
            return
        progress(f"{self.name}: formatting KRaft storage (first start) ...")
        scram = self.security.scram_arguments if self.security.enabled else []
        self.format_storage(artifacts, cluster_id, *scram)

    def render(self) -> None:
        """Write this node's ``server.properties`` (and, secured, the TLS material it names)."""
        secure = self.security.enabled
        if secure:
            self.security.ensure_tls(self.stack.brokers)
        replication, min_isr = self.stack.replication
        voters = ",".join(
            f"{n}@localhost:{port}" for n, port in enumerate(self.stack.controller_ports, 1)
        )
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.touch(mode=0o600)  # holds the inter-broker password when secured
        _render(
            "cluster-server.properties.tmpl",
            self.config,
            node_id=self.node,
            voters=voters,
            kafka_port=self.port,
            controller_port=self.controller_port,
            broker_protocol="SASL_SSL" if secure else "PLAINTEXT",
            controller_protocol="SSL" if secure else "PLAINTEXT",
            data_dir=self.data,
            replication_factor=replication,
            min_isr=min_isr,
            security=self.security.broker_properties(self.node) if secure else "",
        )

    def launch(self, artifacts: Artifacts, progress: Progress) -> bool:
        """Start the process without waiting for it; True when it was not running.

        Raises:
            PortInUseError: a port is held by a process that is not ours.
            StackError: the storage cannot be formatted.
        """
        if self.proc.running():
            return False
        if port_in_use(self.port):
            raise PortInUseError(self.name, self.port, self.port_setting)
        self.prepare(artifacts, progress)
        self._launch(artifacts, progress)
        progress(f"{self.name}: started (pid {self.proc.pid})")
        return True

    def check(self) -> str | None:
        if not port_in_use(self.port):
            return f"port {self.port} not open yet"
        from confluent_kafka.admin import AdminClient

        conf: dict[str, Any] = {"bootstrap.servers": f"localhost:{self.port}", "log_level": 0}
        admin = AdminClient(conf | self.client_properties())
        try:
            meta = admin.list_topics(timeout=3)
        except Exception as exc:  # KafkaException: not answering metadata yet
            return f"no metadata: {exc}"
        return None if self.node in meta.brokers else f"node {self.node} not registered yet"

    def info(self) -> dict[str, Any]:
        data = super().info()
        data["controller_port"] = self.controller_port
        return data


def kafka_nodes(
    settings: Settings, paths: StackPaths, versions: Versions, security: StackSecurity
) -> list[Kafka]:
    """The Kafka processes ``settings`` asks for: the plain single node, or KRaft nodes."""
    if settings.stack.brokers == 1 and not security.enabled:
        return [Kafka(settings, paths, versions)]
    return [
        KafkaNode(settings, paths, versions, node, security)
        for node in range(1, settings.stack.brokers + 1)
    ]


def launch_together(nodes: list[Kafka], artifacts: Artifacts, progress: Progress) -> bool:
    """Launch every node of a quorum that is not running, before any is waited for.

    Returns True when at least one was launched.

    Raises:
        PortInUseError, StackError: see :meth:`KafkaNode.launch`.
    """
    launched = False
    for node in nodes:
        if isinstance(node, KafkaNode) and node.launch(artifacts, progress):
            launched = True
    return launched


def stop_together(nodes: list[Kafka]) -> list[str]:
    """Stop every node at once; return the names of those that were running.

    One after the other, the last node of a quorum has no majority left to
    complete its controlled shutdown with, and only ends when it is killed
    after the stop timeout; signalled together, all finish within seconds.
    """
    stopped: list[str] = []
    lock = threading.Lock()

    def stop(node: Kafka) -> None:
        if node.stop():
            with lock:
                stopped.append(node.name)

    threads = [threading.Thread(target=stop, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(stopped)
