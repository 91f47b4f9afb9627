"""``cdcflow init`` on the real stack: the README's "Your own domain" commands, run as written.

The test creates a database of its own (``init_test_<random>``) with tables of
many column types, then runs the fenced ``sh`` block of README.md's "Your own
domain" section in an empty directory (its ``mydb`` replaced by the test's
database, so the project's name, topics, slot, publication, connector, group
and subjects are all the test's own): ``cdcflow init --deploy`` (which registers
the contracts and applies the connector) and ``cdcflow run``, as subprocesses. Rows read by
the snapshot, and rows inserted, updated and deleted while it runs, must come
out as Avro events on the project's topics whose every field equals the row's
column (read back with a plain consumer and the registry's deserializer).

Bad input (no tables, an unreachable database, a table without a primary key,
a type cdcflow does not carry, an existing project) is checked against the
same database with ``cdcflow init`` in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.cli import main
from pipeline.connect import ConnectClient
from pipeline.contracts.registry import ContractRegistry
from pipeline.errors import RegistryError
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.stack.scratch import ScratchSource, delete_groups, delete_topics

REPO = Path(__file__).resolve().parents[2]

SCHEMA = """
CREATE TYPE parcel_state AS ENUM ('new', 'sent', 'delivered');

CREATE TABLE senders (
  id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name   text NOT NULL,
  email  varchar(120)
);

-- Every column type the draft carries, and one it does not (area point).
CREATE TABLE parcels (
  id        uuid PRIMARY KEY,
  sender_id bigint NOT NULL REFERENCES senders (id),
  weight    numeric(8,3) NOT NULL,
  declared  numeric,
  sent_at   timestamptz,
  due_on    date NOT NULL,
  pickup    time,
  fragile   boolean NOT NULL DEFAULT false,
  state     parcel_state NOT NULL DEFAULT 'new',
  labels    text[],
  sizes     integer[],
  attrs     jsonb,
  photo     bytea,
  score     double precision,
  pieces    smallint,
  area      point
);

CREATE TABLE scans (
  parcel_id uuid NOT NULL,
  seq       integer NOT NULL,
  place     text NOT NULL,
  PRIMARY KEY (parcel_id, seq)
);

-- No primary key: left out by the draft, named in its output.
CREATE TABLE audit_log (msg text);
"""

PARCEL_COLUMNS = (
    "id, sender_id, weight, declared, sent_at, due_on, pickup, fragile, state, labels, "
    "sizes, attrs, photo, score, pieces"
)


def readme_block() -> str:
    """The ``sh`` block of README.md's "Your own domain" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own domain", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md: 'Your own domain' has no sh block"
    return match.group(1)


def plain(value: Any) -> Any:
    """One value in a form both sides agree on."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, UUID | Decimal | date | dtime):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parcel_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The event payload the draft must make of a parcels row (its columns, area left out)."""
    out = {k: plain(v) for k, v in row.items()}
    if row["attrs"] is not None:
        out["attrs"] = json.loads(json.dumps(row["attrs"]), parse_float=Decimal)
    return out


def event_payload(value: dict[str, Any]) -> dict[str, Any]:
    out = {k: plain(v) for k, v in value.items() if k != "metadata"}
    if out.get("attrs") is not None:
        out["attrs"] = json.loads(out["attrs"], parse_float=Decimal)
    return out


class Events:
    """The project's event topics, read back with a plain consumer through the registry."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        registry = SchemaRegistryClient(settings.registry.client_config())
        self._deserialize = AvroDeserializer(registry)
        self._admin = AdminClient(settings.kafka.client_config())

    def read(self, aggregate: str, count: int, timeout_s: float = 240) -> list[dict[str, Any]]:
        """The first ``count`` committed events of ``<name>.<aggregate>.events``, in offset order."""
        topic = f"{self.name}.{aggregate}.events"
        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": f"it-init-reader-{secrets.token_hex(4)}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        out: list[tuple[int, int, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while topic not in self._admin.list_topics(timeout=10).topics:
                assert time.monotonic() < deadline, f"topic {topic} was not created"
                time.sleep(1)
            parts = self._admin.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            settle: float | None = None
            while settle is None or time.monotonic() < settle:
                assert time.monotonic() < deadline, f"{topic}: {len(out)} of {count} events"
                for msg in consumer.consume(100, 0.5):
                    if msg.error() is not None:
                        continue
                    ctx = SerializationContext(topic, MessageField.VALUE)
                    value = self._deserialize(msg.value(), ctx)
                    out.append((msg.partition() or 0, msg.offset() or 0, value))
                if len(out) >= count and settle is None:
                    settle = time.monotonic() + 2.0
        finally:
            consumer.close()
        return [v for _, _, v in out]


@pytest.fixture
def project_db(stack: LocalStack, settings: Settings) -> Iterator[ScratchSource]:
    name = f"init_test_{secrets.token_hex(4)}"
    source = ScratchSource(settings, name, slot=f"cdcflow_{name}")
    source.create(lambda conn: conn.execute(SCHEMA))
    try:
        yield source
    finally:
        _clean(settings, name, source)


def _clean(settings: Settings, name: str, source: ScratchSource) -> None:
    connector = f"{name.replace('_', '-')}-postgres"
    with contextlib.suppress(Exception), ConnectClient.from_settings(settings.connect) as client:
        client.delete(connector)
    source.drop()
    admin = AdminClient(settings.kafka.client_config())
    heartbeats = f"__debezium-heartbeat.{name}"
    delete_topics(
        settings,
        [t for t in admin.list_topics(timeout=10).topics if t.startswith((name, heartbeats))],
    )
    delete_groups(settings, [f"{name}-transformer"])
    registry = ContractRegistry(settings.registry)
    for entity in ("Parcel", "Sender", "Scan"):
        for kind in ("Created", "Updated", "Deleted"):
            subject = f"{name}.{entity.lower()}.events-{name}.events.{entity}{kind}"
            with contextlib.suppress(RegistryError):
                registry.delete_subject(subject, permanent=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDCFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    # Other transformers run on this machine: no fixed metrics port.
    env["CDCFLOW_TRANSFORMER__METRICS_PORT"] = "0"
    return env


def test_readme_init_then_run_produces_the_rows_as_events(
    project_db: ScratchSource, settings: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    name = project_db.database
    # Rows the snapshot reads.
    with project_db.db() as conn:
        sender = conn.execute(
            "INSERT INTO senders (name, email) VALUES ('Ada', 'ada@example.com') RETURNING *"
        ).fetchone()
        first = conn.execute(
            f"INSERT INTO parcels ({PARCEL_COLUMNS}, area) VALUES (%s, %s, 1.250, 12.5, "
            "'2026-12-01 10:00:00.123456+02', '2026-12-24', '08:30:00.123456', true, 'sent', "
            "ARRAY['a', NULL, 'ü'], ARRAY[1, NULL, 3], '{\"k\": 1.50, \"n\": [1, \"x\"]}', "
            f"'\\xdeadbeef', 0.5, 7, point(1, 2)) RETURNING {PARCEL_COLUMNS}",
            (UUID("5b0c8a3e-1111-4c4b-9d6e-0a1b2c3d4e5f"), sender["id"]),
        ).fetchone()
    # The README's commands, in an empty directory that sees the stack's state
    # directory as the README's working directory does.
    (tmp_path / ".cdcflow").symlink_to(settings.stack.home.resolve())
    script = readme_block().replace("dbname=mydb", f"dbname={name}")
    lines = [line for line in script.strip().splitlines() if line.strip()]
    assert lines[-1].endswith("cdcflow run"), lines
    lines[-1] = lines[-1].replace("cdcflow run", "exec cdcflow run")
    run = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        events = Events(settings, name)
        created = events.read("parcel", 1)
        assert [event_payload(e) for e in created] == [parcel_payload(first)]
        assert created[0]["metadata"]["event_type"] == "ParcelCreated"
        assert created[0]["metadata"]["source"]["snapshot"] is True
        senders = events.read("sender", 1)
        assert [event_payload(e) for e in senders] == [
            {"id": sender["id"], "name": "Ada", "email": "ada@example.com"}
        ]

        # Changes while it runs: an insert with NULLs, an update, a delete, composite keys.
        with project_db.db() as conn:
            second = conn.execute(
                f"INSERT INTO parcels (id, sender_id, weight, due_on) VALUES "
                f"('0e7d1c55-2222-4a4a-8b8b-123456789abc', %s, 0.001, '2027-01-02') "
                f"RETURNING {PARCEL_COLUMNS}",
                (sender["id"],),
            ).fetchone()
            updated = conn.execute(
                "UPDATE parcels SET state = 'delivered', declared = 99.125, labels = NULL "
                f"WHERE id = %s RETURNING {PARCEL_COLUMNS}",
                (first["id"],),
            ).fetchone()
            conn.execute("DELETE FROM parcels WHERE id = %s", (second["id"],))
            conn.execute(
                "INSERT INTO scans VALUES (%s, 1, 'Basel'), (%s, 2, 'Bern')",
                (first["id"], first["id"]),
            )
            conn.execute("DELETE FROM scans WHERE seq = 2")
        parcels = events.read("parcel", 4)
        by_id: dict[str, list[dict[str, Any]]] = {}
        for event in parcels:  # one aggregate's events are in order; aggregates interleave
            by_id.setdefault(str(plain(event["id"])), []).append(event)
        one, two = by_id[str(first["id"])], by_id[str(second["id"])]
        assert [e["metadata"]["event_type"] for e in one] == ["ParcelCreated", "ParcelUpdated"]
        assert [e["metadata"]["event_type"] for e in two] == ["ParcelCreated", "ParcelDeleted"]
        assert event_payload(one[1]) == parcel_payload(updated)
        assert event_payload(two[0]) == parcel_payload(second)
        assert event_payload(two[1]) == {"id": str(second["id"])}
        scans = events.read("scan", 3)
        got = sorted(
            (e["metadata"]["event_type"], e["seq"], e.get("place"), plain(e["parcel_id"]))
            for e in scans
        )
        parcel = str(first["id"])
        assert got == [
            ("ScanCreated", 1, "Basel", parcel),
            ("ScanCreated", 2, "Bern", parcel),
            ("ScanDeleted", 2, None, parcel),
        ]

        # The heartbeat (a logical decoding message, no table) moves the slot past
        # the last captured change while the captured tables are quiet.
        with project_db.db("postgres") as conn:
            wal = conn.execute("SELECT pg_current_wal_lsn()::text AS lsn").fetchone()["lsn"]
            deadline = time.monotonic() + 240
            while not conn.execute(
                "SELECT confirmed_flush_lsn >= %s::pg_lsn AS past FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (wal, project_db.slot),
            ).fetchone()["past"]:
                assert time.monotonic() < deadline, f"slot {project_db.slot} stays before {wal}"
                time.sleep(2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGTERM)
        out, _ = run.communicate(timeout=120)
        print(out)
    assert run.returncode == 0, out
    totals = json.loads(
        next(line for line in out.splitlines() if line.startswith('{"transformer"'))
    )
    # snapshot: a sender and a parcel; then a parcel insert, update and delete, 2 scans, a delete
    assert sum(totals["consumed"].values()) == 8
    assert sum(totals["produced"].values()) == 8
    assert totals["dead_lettered"] == {} and totals["skipped"] == {}
    project = tmp_path / "mydb-events"
    assert (project / "cdcflow.toml").is_file()
    assert "public.audit_log: has no primary key" in out
    assert "public.parcels.area: type point is not carried" in out


# --------------------------------------------------------------------------- bad input


def init(*args: str) -> int:
    """``cdcflow init`` in-process: its exit code (0 when it returned)."""
    try:
        main(["init", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _dsn(source: ScratchSource, **over: str) -> str:
    src = source.settings.source
    parts = {"host": src.host, "port": str(src.port), "dbname": source.database, "user": src.user}
    parts.update(over)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def test_bad_input_gets_a_clear_error_or_the_stated_fallback(
    project_db: ScratchSource, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = _dsn(project_db)
    # An unreachable database: exit 1, naming what to check.
    assert init("--dsn", _dsn(project_db, port="1"), "--dir", str(tmp_path / "a")) == 1
    err = capsys.readouterr().err
    assert "cannot connect to the source database" in err and "--dsn" in err
    # No tables: a schema without any.
    assert init("--dsn", dsn, "--schema", "nothing_here", "--dir", str(tmp_path / "b")) == 1
    assert "no tables in schema(s) nothing_here" in capsys.readouterr().err
    # A table that does not exist: the tables found are listed.
    assert init("--dsn", dsn, "--tables", "nope", "--dir", str(tmp_path / "c")) == 1
    err = capsys.readouterr().err
    assert "table 'nope' is not in the database" in err and "public.parcels" in err
    # Only a table without a primary key: nothing can be drafted.
    assert init("--dsn", dsn, "--tables", "audit_log", "--dir", str(tmp_path / "d")) == 1
    assert "public.audit_log has no primary key" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    # A literal connector password is refused (exit 78).
    assert init("--dsn", dsn, "--connector-password", "s3cret", "--dir", str(tmp_path / "e")) == 78
    assert "placeholder" in capsys.readouterr().err
    # --list: the tables found, with key and identity; nothing is written.
    assert init("--dsn", dsn, "--list", "--dir", str(tmp_path / "l")) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(listed) == [
        "public.audit_log",
        "public.parcels",
        "public.scans",
        "public.senders",
    ]
    assert "(none)" in listed["public.audit_log"] and "parcel_id, seq" in listed["public.scans"]
    assert not (tmp_path / "l").exists()
    # Dry run: the files are listed, nothing is written.
    assert init("--dsn", dsn, "--tables", "parcels", "--dry-run", "--dir", str(tmp_path / "f")) == 0
    out = capsys.readouterr().out
    assert "would write" in out and f"{project_db.database}/events.py" in out
    assert "public.parcels.area: type point is not carried" in out
    assert not (tmp_path / "f").exists()
    # Written once; a second run refuses to overwrite, --force overwrites.
    project = tmp_path / "g"
    assert init("--dsn", dsn, "--tables", "parcels,senders", "--dir", str(project)) == 0
    capsys.readouterr()
    events = project / project_db.database / "events.py"
    events.write_text(events.read_text() + "\n# my edit\n")
    assert init("--dsn", dsn, "--tables", "parcels", "--dir", str(project)) == 1
    assert "--force" in capsys.readouterr().err
    assert events.read_text().endswith("# my edit\n")
    assert init("--dsn", dsn, "--tables", "parcels", "--dir", str(project), "--force") == 0
    assert "# my edit" not in events.read_text()
