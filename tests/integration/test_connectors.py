"""Connectors as code against the real stack: Connect + Debezium, PostgreSQL, Kafka.

Every test deploys the repository's connectors/shop-postgres.yaml through an
overlay of its own (``connectors/overlays/it/`` in a temporary copy) that gives
the connector, its replication slot, its publication and its topic prefix
names no other test uses; a finalizer deletes the connectors, drops the slots
(a leftover slot retains WAL), the publications and the topics.

The CLI runs as a real process (``cdcflow ...``), so exit codes, stdout and
stderr (logs) are what a user gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg.rows import dict_row

from pipeline.connect import ConnectClient, apply, load_connectors, wait_for_state
from pipeline.connect.lifecycle import states
from pipeline.connect.pg import drop_slot
from pipeline.domains.shop.source import apply_schema
from pipeline.errors import ConnectError
from pipeline.settings import Settings
from pipeline.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
CDCFLOW = str(Path(sys.executable).parent / "cdcflow")
SHOP_TABLES = ("customers", "products", "orders", "order_lines", "payments")
PASSWORD_VAR = "CDCFLOW_SOURCE_DEBEZIUM_PASSWORD"
SEEDED = "seeded"  # snapshot records of the rows a test seeded (1 customer, 2 products)


@dataclass
class Deployment:
    """A temporary connectors directory whose connectors use names of their own."""

    settings: Settings
    stack: LocalStack
    root: Path
    token: str
    extra: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.root / "connectors"

    def name(self, suffix: str = "") -> str:
        return f"it-{self.token}{suffix}"

    def slot(self, suffix: str = "") -> str:
        return f"it_{self.token}{suffix}"

    def prefix(self, suffix: str = "") -> str:
        return f"it{self.token}{suffix}"

    @property
    def password(self) -> str:
        return self.stack.paths.password("debezium")

    def overlay(self, stem: str = "shop-postgres", suffix: str = "", **config: str) -> Path:
        """(Re)write the overlay of base file ``stem``: unique names plus ``config``."""
        lines = [
            f"name: {self.name(suffix)}",
            "config:",
            f"  slot.name: {self.slot(suffix)}",
            f"  publication.name: {self.slot(suffix)}",
            f"  topic.prefix: {self.prefix(suffix)}",
            *(f"  {k}: {json.dumps(v)}" for k, v in config.items()),
        ]
        path = self.dir / "overlays" / "it" / f"{stem}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cdcflow`` as a process; connector commands get --dir/--env of this deployment."""
        environ = {**os.environ, PASSWORD_VAR: self.password, **(env or {})}
        argv = list(args)
        files_commands = {"validate", "plan", "apply", "preflight", "status"}
        if "connectors" in argv:
            at = argv.index("connectors") + 1
            if at < len(argv) and argv[at] in files_commands:
                argv[at + 1 : at + 1] = ["--dir", str(self.dir), "--env", "it"]
        return subprocess.run(
            [CDCFLOW, *argv], cwd=REPO, env=environ, capture_output=True, text=True, timeout=600
        )

    def client(self) -> ConnectClient:
        return ConnectClient.from_settings(self.settings.connect)

    def specs(self) -> list[Any]:
        return load_connectors(self.dir, "it")

    def db(self, user: str = "cdcflow") -> psycopg.Connection[Any]:
        src = self.settings.source
        password = self.password if user == "debezium" else src.secret()
        return psycopg.connect(
            host=src.host,
            port=src.port,
            dbname=src.database,
            user=user,
            password=password,
            autocommit=True,
        )


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert result.returncode == code, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def _cleanup(d: Deployment) -> None:
    """Delete what the test made: connectors, then their slots, publications and topics."""
    client = d.client()
    with contextlib.suppress(ConnectError):
        for name in client.list_connectors():
            if name.startswith(d.name()):
                with contextlib.suppress(ConnectError):
                    client.delete(name)
    with d.db("debezium") as conn:
        conn.row_factory = dict_row  # type: ignore[assignment]
        for row in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall():
            if row["slot_name"].startswith(d.slot()):
                # The deleted connector's task lets go of its slot shortly.
                drop_slot(conn, row["slot_name"], wait_s=60)  # type: ignore[arg-type]
        for row in conn.execute("SELECT pubname FROM pg_publication").fetchall():
            if row["pubname"].startswith(d.slot()):
                conn.execute(f'DROP PUBLICATION IF EXISTS "{row["pubname"]}"')
    admin = AdminClient(d.settings.kafka.client_config())
    topics = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith(
            (
                d.prefix(),
                f"__debezium-heartbeat.{d.prefix()}",
                f"__cdcflow-notifications.{d.prefix()}",
            )
        )
    ]
    if topics:
        for future in admin.delete_topics(topics).values():
            future.result(30)


@pytest.fixture
def deployment(stack: LocalStack, settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(settings, stack, tmp_path, uuid.uuid4().hex[:8])
    with d.db() as conn:  # the shop's tables, on a fresh stack too (idempotent)
        apply_schema(conn)
    d.dir.mkdir()
    shutil.copy(REPO / "connectors" / "shop-postgres.yaml", d.dir / "shop-postgres.yaml")
    d.overlay()
    try:
        yield d
    finally:
        _cleanup(d)


def seed(d: Deployment) -> None:
    """A few rows in every shop table, so each snapshot has something to count."""
    tag = d.token
    with d.db() as conn:
        customer = conn.execute(
            "INSERT INTO customers (email, full_name) VALUES (%s, 'It Test') RETURNING id",
            (f"{tag}@it.test",),
        ).fetchone()[0]
        products = [
            conn.execute(
                "INSERT INTO products (sku, name, price) VALUES (%s, 'thing', 9.99) RETURNING id",
                (f"{tag}-{i}",),
            ).fetchone()[0]
            for i in range(2)
        ]
        order = conn.execute(
            "INSERT INTO orders (customer_id, total) VALUES (%s, 19.98) RETURNING id", (customer,)
        ).fetchone()[0]
        for line_no, product in enumerate(products, 1):
            conn.execute(
                "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price) "
                "VALUES (%s, %s, %s, 1, 9.99)",
                (order, line_no, product),
            )
        conn.execute(
            "INSERT INTO payments (order_id, amount, method) VALUES (%s, 19.98, 'card')", (order,)
        )


def row_counts(d: Deployment) -> dict[str, int]:
    with d.db() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SHOP_TABLES}


def _count_snapshot(
    d: Deployment, topics: list[str], wanted: Callable[[dict[str, int]], bool], until: float
) -> dict[str, int]:
    metadata = AdminClient(d.settings.kafka.client_config()).list_topics(timeout=10).topics
    consumer = Consumer(
        d.settings.kafka.client_config("consumer")
        | {"group.id": f"it-{d.token}-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    # Every partition: the connector file decides how many the topics get.
    consumer.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions]
    )
    counts = dict.fromkeys(SHOP_TABLES, 0)
    try:
        while time.monotonic() < until and not wanted(counts):
            for msg in consumer.consume(500, 1.0):
                assert msg.error() is None, msg.error()
                value = json.loads(msg.value())
                assert "schema" in value and "payload" in value  # JsonConverter with schemas
                payload = value["payload"]
                if payload.get("op") == "r" and payload["source"]["table"] in counts:
                    counts[payload["source"]["table"]] += 1
                    after = payload.get("after") or {}
                    if d.token in str(after.get("email") or after.get("sku") or ""):
                        counts[SEEDED] = counts.get(SEEDED, 0) + 1
    finally:
        consumer.close()
    return counts


def snapshot_counts(
    d: Deployment, wanted: Callable[[dict[str, int]], bool], timeout_s: float = 180
) -> dict[str, int]:
    """Count op=r records per source table in the connector's topics until ``wanted(counts)``.

    Counted by each record's ``source.table``, over every topic of the
    connector's prefix: the connector file may route tables to shared topics.
    """
    admin = AdminClient(d.settings.kafka.client_config())
    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        topics = sorted(
            t for t in admin.list_topics(timeout=10).topics if t.startswith(d.prefix() + ".")
        )
        if topics:
            # Recount from the start over the topics present now; a topic
            # created meanwhile is picked up by the next round.
            counts = _count_snapshot(d, topics, wanted, min(deadline, time.monotonic() + 15))
            if wanted(counts):
                return counts
        time.sleep(1)
    return counts


def status(d: Deployment, name: str) -> tuple[str, list[str]]:
    return states(d.client().status(name))


def wait_state(d: Deployment, name: str, want: str, timeout_s: float = 60) -> None:
    wait_for_state(d.client(), [name], want, timeout_s=timeout_s)


# --------------------------------------------------------------------------- acceptance


def test_apply_creates_waits_and_snapshots_every_row_then_is_a_no_op(
    deployment: Deployment,
) -> None:
    d = deployment
    seed(d)
    assert d.name() not in d.client().list_connectors()
    planned = ok(d.cli("-o", "json", "connectors", "plan"), 2)
    (change,) = [c for c in json.loads(planned.stdout)["connectors"] if c["name"] == d.name()]
    assert change["action"] == "create"

    before = row_counts(d)
    applied = ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    assert f"{d.name()}: RUNNING" in applied.stdout
    connector, tasks = status(d, d.name())
    assert connector == "RUNNING" and tasks == ["RUNNING"]

    counts = snapshot_counts(d, lambda c: all(c[t] >= before[t] for t in SHOP_TABLES))
    after = row_counts(d)
    for table in SHOP_TABLES:
        # Exact unless something else wrote to the shop tables meanwhile.
        low, high = sorted((before[table], after[table]))
        assert low <= counts[table] <= high, (table, counts[table], before[table], after[table])
        assert counts[table] > 0
    # Other tests may write to the shop tables meanwhile, so the totals are a
    # range (exact when nothing changed); the rows this test seeded are exact.
    assert counts[SEEDED] == 3

    # A second apply reports no changes and sends no PUT.
    sent: list[tuple[str, str]] = []

    class Recording(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            sent.append((request.method or "", request.path_url))
            return super().send(request, **kwargs)

    client = ConnectClient.from_settings(d.settings.connect, transport=Recording())
    result = apply(client, d.specs(), source=d.settings.source, env={PASSWORD_VAR: d.password})
    assert result.applied == [] and not result.plan.has_changes
    assert sent and all(method == "GET" for method, _ in sent), sent
    again = ok(d.cli("connectors", "apply", "--wait"))
    assert "no changes" in again.stdout
    ok(d.cli("connectors", "plan"), 0)


def test_one_changed_field_is_planned_alone_and_applied(deployment: Deployment) -> None:
    d = deployment
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    d.overlay(**{"heartbeat.interval.ms": "5000"})

    planned = json.loads(ok(d.cli("-o", "json", "connectors", "plan"), 2).stdout)
    (change,) = [c for c in planned["connectors"] if c["name"] == d.name()]
    assert change["action"] == "update"
    assert change["fields"] == [
        {
            "key": "heartbeat.interval.ms",
            "kind": "change",
            "before": "10000",
            "after": "5000",
            "masked": False,
        }
    ]
    text = ok(d.cli("connectors", "plan"), 2).stdout
    assert "~ heartbeat.interval.ms: 10000 -> 5000" in text

    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    assert d.client().get_config(d.name())["heartbeat.interval.ms"] == "5000"
    assert status(d, d.name()) == ("RUNNING", ["RUNNING"])
    ok(d.cli("connectors", "plan"), 0)


def test_prune_deletes_a_connector_removed_from_the_files(deployment: Deployment) -> None:
    d = deployment
    shutil.copy(d.dir / "shop-postgres.yaml", d.dir / "second.yaml")
    d.overlay("second", "_b")
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    assert {d.name(), d.name("_b")} <= set(d.client().list_connectors())

    (d.dir / "second.yaml").unlink()
    (d.dir / "overlays" / "it" / "second.yaml").unlink()
    reported = ok(d.cli("connectors", "plan"), 0)  # undeclared is reported, not pending
    assert f"{d.name('_b')}: undeclared" in reported.stdout
    ok(d.cli("connectors", "apply"))
    assert d.name("_b") in d.client().list_connectors()

    # The worker is shared with other tests' connectors (and the shop's): prune
    # only what this test owns, as a team sharing a Connect cluster would.
    scope = {"CDCFLOW_CONNECT__PRUNE_PREFIX": d.name()}
    planned = json.loads(
        ok(d.cli("-o", "json", "connectors", "plan", "--prune", env=scope), 2).stdout
    )
    actions = {c["name"]: c["action"] for c in planned["connectors"]}
    assert actions[d.name("_b")] == "delete"
    assert all(a != "delete" for n, a in actions.items() if not n.startswith(d.name()))
    pruned = ok(d.cli("connectors", "apply", "--prune", env=scope))
    assert f"{d.name('_b')}: deleted" in pruned.stdout
    assert f"replication slot '{d.slot('_b')}' remains" in pruned.stderr
    remaining = d.client().list_connectors()
    assert d.name("_b") not in remaining and d.name() in remaining


def test_invalid_config_fails_validate_and_apply_and_leaves_the_deployed_config(
    deployment: Deployment,
) -> None:
    d = deployment
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    deployed = d.client().get_config(d.name())

    overlay = d.overlay(**{"decimal.handling.mode": "exact", "heartbeat.interval.ms": "soon"})
    for command in ("validate", "apply"):
        result = ok(d.cli("connectors", command), 1)
        out = result.stdout + result.stderr
        assert "decimal.handling.mode" in out and "Value must be one of" in out, out
        assert "heartbeat.interval.ms" in out and "integer" in out, out
        assert f"{overlay}:" in out  # where the bad value is declared
    assert d.client().get_config(d.name()) == deployed

    d.overlay(**{"connector.class": "io.debezium.connector.postgresql.NoSuchConnector"})
    result = ok(d.cli("connectors", "apply"), 1)
    assert "connector.class" in result.stderr and "not installed" in result.stderr
    assert d.client().get_config(d.name()) == deployed


def test_a_secret_from_an_overlay_never_shows(deployment: Deployment) -> None:
    d = deployment
    secret = d.password
    # The literal password in an overlay (kept out of the repository, as an
    # operator would), replacing the base file's ${env:...} placeholder.
    d.overlay(**{"database.password": secret})
    outputs = [
        ok(d.cli("-vv", "connectors", "plan"), 2),
        ok(d.cli("-vv", "-o", "json", "connectors", "plan"), 2),
        ok(d.cli("-vv", "connectors", "validate")),
        ok(d.cli("-vv", "connectors", "apply", "--wait", "--timeout", "180")),
        ok(d.cli("-vv", "connectors", "status")),
        ok(d.cli("-vv", "-o", "json", "connectors", "status")),
    ]
    d.overlay()  # back to the placeholder: an update of a masked field
    outputs.append(ok(d.cli("-vv", "connectors", "plan"), 2))
    outputs.append(ok(d.cli("-vv", "connectors", "apply", "--wait", "--timeout", "180")))
    assert "database.password: ******** -> ********" in outputs[-2].stdout
    for result in outputs:
        assert secret not in result.stdout and secret not in result.stderr, result.args
    assert "DEBUG" in outputs[0].stderr  # -vv did log
    # Nor in the stack's logs: Connect and Debezium log configs with passwords hidden.
    for component in d.stack.components:
        log = Path(component.info()["log"])
        if log.exists():
            assert secret.encode() not in log.read_bytes(), f"secret in {log}"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        path = REPO / name
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret found in {name}"


def test_operate_a_running_connector(deployment: Deployment) -> None:
    d = deployment
    name = d.name()
    seed(d)
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    first = snapshot_counts(d, lambda c: all(c.values()))

    st = json.loads(ok(d.cli("-o", "json", "connectors", "status", name)).stdout)
    (entry,) = st
    assert entry["state"] == "RUNNING" and entry["tasks"][0]["state"] == "RUNNING"
    assert entry["tasks"][0]["worker_id"]
    slot = entry["replication_slot"]
    assert slot["name"] == d.slot() and slot["exists"] and slot["active"]
    assert isinstance(slot["retained_wal_bytes"], int) and slot["retained_wal_bytes"] >= 0
    assert "RETAINED WAL" in ok(d.cli("connectors", "status", name)).stdout

    ok(d.cli("connectors", "restart", name))
    wait_state(d, name, "RUNNING")
    ok(d.cli("connectors", "restart", name, "--failed-only"))
    wait_state(d, name, "RUNNING")

    ok(d.cli("connectors", "pause", name))
    wait_state(d, name, "PAUSED")
    ok(d.cli("connectors", "resume", name))
    wait_state(d, name, "RUNNING")

    refused = ok(d.cli("connectors", "offsets", "reset", name, "--yes"), 1)
    assert "STOPPED" in refused.stderr and f"cdcflow connectors stop {name}" in refused.stderr

    ok(d.cli("connectors", "stop", name, "--wait"))
    assert status(d, name)[0] == "STOPPED"
    offsets = json.loads(ok(d.cli("-o", "json", "connectors", "offsets", "get", name)).stdout)[
        "offsets"
    ]
    assert offsets and offsets[0]["partition"] == {"server": d.prefix()}
    assert "lsn" in offsets[0]["offset"]
    ok(d.cli("connectors", "offsets", "reset", name, "--yes"))
    assert (
        json.loads(ok(d.cli("-o", "json", "connectors", "offsets", "get", name)).stdout)["offsets"]
        == []
    )

    # Without offsets, snapshot.mode=initial snapshots again on resume.
    ok(d.cli("connectors", "resume", name))
    wait_state(d, name, "RUNNING", timeout_s=120)
    second = snapshot_counts(d, lambda c: all(c[t] >= 2 * first[t] for t in SHOP_TABLES))
    assert all(second[t] >= 2 * first[t] for t in SHOP_TABLES), (first, second)

    deleted = ok(d.cli("connectors", "delete", name, "--drop-slot", "--yes"))
    assert "dropped" in deleted.stderr
    assert name not in d.client().list_connectors()
    with d.db("debezium") as conn:
        assert (
            conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (d.slot(),)
            ).fetchone()
            is None
        )


# --------------------------------------------------------------------------- bad input


def test_a_connector_that_fails_after_starting_fails_apply_with_its_trace(
    deployment: Deployment,
) -> None:
    d = deployment
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    # Delete the connector but not its offsets, and drop its slot by hand: the
    # same connector created again starts, reads its old offsets, and fails,
    # because the WAL position they name is gone with the slot.
    deleted = ok(d.cli("connectors", "delete", d.name(), "--yes"))
    assert f"replication slot '{d.slot()}' remains" in deleted.stderr
    with d.db("debezium") as conn:
        conn.row_factory = dict_row  # type: ignore[assignment]
        assert drop_slot(conn, d.slot(), wait_s=60)  # type: ignore[arg-type]
    result = ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"), 1)
    assert "FAILED" in result.stderr
    assert "io.debezium.DebeziumException" in result.stderr, result.stderr  # the task's trace
    assert "no longer available on the server" in result.stderr
    assert f"cdcflow connectors restart {d.name()} --failed-only" in result.stderr  # what next

    # delete --drop-slot forgets the offsets too, so the connector comes back clean.
    ok(d.cli("connectors", "delete", d.name(), "--drop-slot", "--yes"))
    ok(d.cli("connectors", "apply", "--wait", "--timeout", "180"))
    assert status(d, d.name()) == ("RUNNING", ["RUNNING"])


def test_preflight_fails_a_heartbeat_into_a_missing_table(deployment: Deployment) -> None:
    d = deployment
    d.overlay(**{"heartbeat.action.query": "INSERT INTO public.no_such_heartbeat_table VALUES (1)"})
    result = ok(d.cli("connectors", "preflight"), 1)
    assert "no_such_heartbeat_table" in result.stdout and "does not exist" in result.stdout
    assert "fix: CREATE TABLE public.no_such_heartbeat_table" in result.stdout
    refused = ok(d.cli("connectors", "apply"), 1)
    assert "not ready" in refused.stderr and "nothing was deployed" in refused.stderr
    assert d.name() not in d.client().list_connectors()


def test_connect_unreachable_names_the_url(deployment: Deployment) -> None:
    result = deployment.cli(
        "connectors",
        "plan",
        env={"CDCFLOW_CONNECT__URL": "http://localhost:1", "CDCFLOW_CONNECT__RETRIES": "0"},
    )
    assert result.returncode == 1
    assert "http://localhost:1" in result.stderr and "did not answer" in result.stderr


def test_malformed_file_names_file_line_and_key(deployment: Deployment) -> None:
    d = deployment
    (d.dir / "broken.yaml").write_text(
        "name: broken\nconfig:\n  connector.class: X\n  database:\n    port: 1\n"
    )
    result = d.cli("connectors", "plan")
    assert result.returncode == 78, result.stderr
    assert f"{d.dir / 'broken.yaml'}:4" in result.stderr and "'database'" in result.stderr


def test_preflight_passes_for_the_shop_connector(deployment: Deployment) -> None:
    result = ok(deployment.cli("-o", "json", "connectors", "preflight"))
    (report,) = json.loads(result.stdout)["connectors"]
    levels = {c["check"]: c["level"] for c in report["checks"]}
    assert levels["login"] == "ok"  # the ${env:...} placeholder resolved here
    for check in (
        "wal_level",
        "role",
        "replication slot",
        "wal senders",
        "tables",
        "publication",
        "heartbeat",
    ):
        assert levels[check] == "ok", report
    assert levels["replica identity public.customers"] == "ok"  # FULL in schema.sql
