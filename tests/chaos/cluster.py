"""The shop pipeline on a secured 3-node KRaft cluster, beside the local stack.

A stack of its own state directory (``<local stack home>/test-cluster``) and
ports runs three Kafka nodes (SASL/SCRAM-SHA-512 over TLS), a Connect worker
with Debezium and basic auth on its REST API, and a registry with basic auth;
it shares the local stack's PostgreSQL (its generated passwords are copied in)
and, through it, the registry's storage. The shop connector is deployed on
its worker under a replication slot of its own (``cdcflow_shop_cluster``,
streaming only: no snapshot), so every change made to the shop database
reaches the cluster's CDC topics. Every cdcflow command the tests run talks
to it with the credentials of :meth:`StackSecurity.client_env`, taken from
settings like any user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

from confluent_kafka.admin import AdminClient

from pipeline.settings import Settings, load_settings
from pipeline.stack import LocalStack
from pipeline.stack.cluster import KafkaNode, launch_together, stop_together
from pipeline.stack.system import port_in_use
from tests.chaos.harness import FaultRun
from tests.support.pipeline import wait_streaming

SLOT = "cdcflow_shop_cluster"
OVERLAY = f"""\
# The shop connector on the test cluster's worker: a slot and publication of
# its own beside the local stack's connector, and no snapshot (the tests
# check only changes made after they start).
config:
  slot.name: {SLOT}
  publication.name: {SLOT}
  snapshot.mode: no_data
"""


def _say(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def ports(local: Settings) -> dict[str, int]:
    """The test cluster's ports: the local stack's, moved by 20000.

    Away from the defaults of `cdcflow stack up --brokers 3` (19092...), and
    moving with the local stack: two checkouts whose stacks run side by side
    on other ports get test clusters on other ports too.
    """

    def moved(port: int) -> int:
        return port + 20000 if port < 45000 else port - 20000

    st = local.stack
    return {
        "cluster_kafka_port": moved(st.kafka_port),
        "cluster_controller_port": moved(st.controller_port) + 100,
        "connect_port": moved(st.connect_port),
        "registry_port": moved(st.registry_port),
        "registry_management_port": moved(st.registry_management_port),
    }


class ClusterPipeline:
    def __init__(self, local: Settings, repo: Path) -> None:
        self.local = local
        self.home = local.stack.home.resolve() / "test-cluster"
        self.connectors = self.home / "connectors"
        stack = {
            "home": self.home,
            "brokers": 3,
            "security": "sasl_ssl",
            "postgres_port": local.stack.postgres_port,
            "connect_heap": "512m",
            "registry_heap": "384m",
            **ports(local),
        }
        self.stack = LocalStack(load_settings(stack=stack))
        self.env = {
            **self.stack.security.client_env(),
            "CDCFLOW_CONNECT__CONNECTORS_DIR": str(self.connectors),
            "CDCFLOW_CONNECT__ENVIRONMENT": "cluster",
        }
        self.repo = repo
        self.settings = self.load_settings()

    def load_settings(self, **overrides: Any) -> Settings:
        """Settings as a cdcflow command with :attr:`env` sees them."""
        with mock.patch.dict(os.environ, self.env):
            return load_settings(**overrides)

    # ------------------------------------------------------------------ lifecycle

    def up(self) -> None:
        """Start the cluster, Connect and the registry; register the contracts; deploy the connector.

        Raises:
            AssertionError: a port is taken by something else, or a command fails.
        """
        st = self.stack
        if not st.kafka.proc.running():
            wanted = [*st.settings.stack.broker_ports, *st.settings.stack.controller_ports]
            wanted += [
                st.connect.port,
                st.registry.port,
                st.settings.stack.registry_management_port,
            ]
            taken = [p for p in wanted if port_in_use(p)]
            assert not taken, f"ports {taken} are taken: the test cluster needs them"
        # The local stack's PostgreSQL, with its generated passwords.
        st.paths.secrets.mkdir(parents=True, exist_ok=True)
        os.chmod(st.paths.secrets, 0o700)
        for user in ("postgres", "cdcflow", "debezium", "apicurio"):
            source = self.local.stack.home.resolve() / "secrets" / f"{user}.password"
            shutil.copy2(source, st.paths.secrets / source.name)
        started = time.monotonic()
        artifacts = st.artifacts(_say)
        launch_together(st.brokers, artifacts, _say)
        for comp in [*st.brokers, st.connect, st.registry]:
            comp.start(artifacts, _say)
        st.security.write_client_env()
        _say(f"3 brokers, Connect and the registry up in {time.monotonic() - started:.0f}s")
        (self.connectors / "overlays" / "cluster").mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.repo / "connectors" / "shop-postgres.yaml", self.connectors)
        (self.connectors / "overlays" / "cluster" / "shop-postgres.yaml").write_text(OVERLAY)
        self.cli("schemas", "register")
        self.cli("connectors", "apply", "--wait", "--settle", "2")
        # RUNNING comes before the slot streams; a change made in between
        # would never be captured (no snapshot), and the oracle would miss it.
        wait_streaming(self.settings)

    def down(self, keep: bool) -> None:
        """Remove the connector and its slot, stop the processes (unless ``keep``)."""
        if keep:
            return
        # The slot is dropped with the connector's own login (REPLICATION), its
        # password resolved here as the worker resolves ${env:...}.
        secret = self.stack.paths.secrets / "debezium.password"
        # (none when up() failed before the cluster had its secrets)
        debezium = secret.read_text().strip() if secret.is_file() else ""
        env = os.environ | self.env | {"CDCFLOW_SOURCE_DEBEZIUM_PASSWORD": debezium}
        deleted = self.cli(
            "connectors", "delete", "shop-postgres", "--drop-slot", "--yes", env=env, check=False
        )
        if deleted.returncode != 0:  # the processes are stopped all the same
            _say(f"connector not removed (exit {deleted.returncode}): {deleted.stderr.strip()}")
        self.stack.registry.stop()
        self.stack.connect.stop()
        stop_together(self.stack.brokers)

    # ------------------------------------------------------------------ commands

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``cdcflow <args>`` against the cluster, as a user with its client env would run it."""
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            env=env if env is not None else os.environ | self.env,
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check:
            assert proc.returncode == 0, (
                f"cdcflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def fault_run(self, name: str, tmp: Path) -> FaultRun:
        """A :class:`FaultRun` whose transformer and reads go to the cluster."""
        run = FaultRun(self.settings, name, tmp)
        run.transformer.env.update(self.env)
        return run

    # ------------------------------------------------------------------ brokers

    def node(self, node_id: int) -> KafkaNode:
        node = self.stack.brokers[node_id - 1]
        assert isinstance(node, KafkaNode)
        return node

    def admin(self) -> AdminClient:
        return AdminClient(self.settings.kafka.client_config())

    def coordinator(self, group: str) -> int:
        """The node coordinating ``group`` (its offsets, its generation)."""
        admin = self.admin()  # alive until the future resolves: a collected client never answers
        described = admin.describe_consumer_groups([group], request_timeout=30)[group]
        return int(described.result(timeout=60).coordinator.id)

    def sigkill(self, node_id: int) -> None:
        proc = self.node(node_id).proc.process()
        assert proc is not None, f"kafka-{node_id} is not running"
        proc.kill()
        proc.wait(30)

    def restart(self, node_id: int) -> None:
        node = self.node(node_id)
        node.start(self.stack.artifacts(), _say)

    def under_replicated(self, topics: list[str]) -> int:
        """Partitions of ``topics`` with fewer in-sync replicas than replicas."""
        meta = self.admin().list_topics(timeout=30)
        return sum(
            1
            for t in topics
            if t in meta.topics
            for p in meta.topics[t].partitions.values()
            if len(p.isrs) < len(p.replicas)
        )
