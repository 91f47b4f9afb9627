"""Backfills: incremental snapshots of chosen tables, through Debezium's signal table.

An incremental snapshot, not a blocking one: the connector keeps streaming
while it reads the tables chunk by chunk (``incremental.snapshot.chunk.size``
rows, by primary key), so a backfill of a large table never holds the other
tables' changes back, and it resumes after a restart where it stopped. A
blocking snapshot would stop streaming for its whole length.

The protocol, as :func:`start_snapshot` and :func:`wait_for_snapshot` run it:

1. Read the connector's deployed config (``GET /connectors/NAME/config``): it
   must be Debezium's PostgreSQL connector with ``signal.data.collection``
   (cdcflow derives the rest, :mod:`pipeline.connect.signals`), and capture
   every table asked for; a table not captured is refused (add it to the
   connector file and ``apply`` first).
2. Insert the signal ``(id, 'execute-snapshot', data)`` into the signal table,
   as the connector's own login where its placeholders resolve here, else as
   cdcflow's (``source.*``). The id is a fresh UUID; Debezium reports under it.
3. Debezium reads the signal from the WAL. For each chunk it writes an opening
   and a closing watermark to the signal table, reads the chunk between them,
   and drops from the chunk every row a change streamed inside that window
   touched: the streamed change is newer. So a row is read at most once per
   snapshot, and a change written during the backfill is never overwritten
   by an older read.
4. Debezium's notifications (the sink topic, ``notification.sink.topic.name``)
   carry the signal's id: STARTED, IN_PROGRESS per chunk,
   TABLE_SCAN_COMPLETED per table, then COMPLETED or ABORTED.
   :func:`wait_for_snapshot` reads them until one of the last two.

The rows arrive as ``op=r`` records with ``source.snapshot = "incremental"``
(``Change.backfill`` in the transformer); what they become as events is
written in docs/guarantees.md ("Backfills").
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql

from pipeline.connect.capture import captured_tables
from pipeline.connect.client import ConnectClient
from pipeline.connect.pg import connector_params, is_postgres_connector, open_source
from pipeline.connect.signals import SIGNAL_KEY, SIGNAL_TABLE_DDL, notification_topic
from pipeline.errors import CdcflowError
from pipeline.settings import KafkaSettings, SourceSettings

__all__ = [
    "SnapshotRun",
    "SnapshotSignal",
    "read_snapshots",
    "start_snapshot",
    "stop_snapshot",
    "wait_for_snapshot",
]

INCREMENTAL = "Incremental Snapshot"
SignalType = Literal["execute-snapshot", "stop-snapshot"]
FINAL = ("COMPLETED", "ABORTED")


def qualified(table: str) -> str:
    """``schema.table``; a bare name is taken to be in ``public``."""
    return table if "." in table else f"public.{table}"


@dataclass(frozen=True, kw_only=True)
class SnapshotSignal:
    """A signal written to a connector's signal table."""

    connector: str
    id: str
    type: SignalType
    data: Mapping[str, Any]
    signal_table: str
    notification_topic: str
    sent_as: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The fields whose name in ``--json`` output differs (the keys are Debezium's where it has one).
_JSON_NAMES = {
    "last_key": "last_processed_key",
    "max_key": "maximum_key",
    "scanned": "rows_scanned",
}


@dataclass
class SnapshotRun:
    """What the notifications say about one incremental snapshot (one signal id)."""

    id: str
    state: str = "SIGNALLED"
    tables: list[str] = field(default_factory=list)
    current: str | None = None
    last_key: str | None = None
    max_key: str | None = None
    scanned: dict[str, int] = field(default_factory=dict)
    table_status: dict[str, str] = field(default_factory=dict)
    updated_ms: int | None = None

    @property
    def done(self) -> bool:
        return self.state in FINAL

    @property
    def running(self) -> bool:
        return not self.done

    def apply(self, note: Mapping[str, Any]) -> None:
        """Fold one Debezium notification of this snapshot in."""
        data = note.get("additional_data") or {}
        self.state = str(note.get("type") or self.state)
        if data.get("data_collections"):
            self.tables = [t.strip() for t in str(data["data_collections"]).split(",")]
        if data.get("current_collection_in_progress"):
            self.current = str(data["current_collection_in_progress"])
        if "last_processed_key" in data:
            self.last_key = str(data["last_processed_key"])
        if "maximum_key" in data:
            self.max_key = str(data["maximum_key"])
        scanned = data.get("scanned_collection") or data.get("data_collection")
        if self.state == "TABLE_SCAN_COMPLETED" and scanned:
            self.scanned[str(scanned)] = int(data.get("total_rows_scanned") or 0)
            self.table_status[str(scanned)] = str(data.get("status") or "")
        if note.get("timestamp") is not None:
            self.updated_ms = int(note["timestamp"])
        if self.state == "COMPLETED" and self.unread:
            # A stop-snapshot closes the snapshot as COMPLETED (and reports ABORTED
            # under the stop signal's id): it ended before reading every table.
            self.state = "ABORTED"

    @property
    def unread(self) -> list[str]:
        """The tables whose scan Debezium did not report completed."""
        return [t for t in self.tables if t not in self.scanned]

    def describe(self) -> str:
        """One line for a person."""
        if self.state == "IN_PROGRESS" and self.current:
            where = f" (key {self.last_key} of {self.max_key})" if self.max_key else ""
            return f"{self.current}: reading{where}"
        if self.state == "TABLE_SCAN_COMPLETED" and self.scanned:
            table, rows = list(self.scanned.items())[-1]
            return f"{table}: {rows} rows read ({self.table_status.get(table) or 'done'})"
        total = sum(self.scanned.values())
        return f"{self.state.lower()}" + (f", {total} rows read" if self.scanned else "")

    def to_dict(self) -> dict[str, Any]:
        return {_JSON_NAMES.get(k, k): v for k, v in asdict(self).items()}


# --------------------------------------------------------------------------- signals


def _deployed(client: ConnectClient, name: str) -> dict[str, str]:
    config = client.get_config(name)
    if not is_postgres_connector(config):
        raise CdcflowError(
            f"connector {name!r} is not Debezium's PostgreSQL connector "
            f"({config.get('connector.class')}); cdcflow backfills only those"
        )
    if not config.get(SIGNAL_KEY):
        raise CdcflowError(
            f"connector {name!r} has no signal table ({SIGNAL_KEY} is not set)",
            hint=f"add '{SIGNAL_KEY}: public.cdcflow_signal' to its connector file, create the "
            "table ("
            + " ".join(SIGNAL_TABLE_DDL.format(table="public.cdcflow_signal").split())
            + ") and run 'cdcflow connectors apply'",
        )
    return config


def _send(
    name: str,
    config: Mapping[str, str],
    source: SourceSettings,
    kind: SignalType,
    data: Mapping[str, Any],
    env: Mapping[str, str] | None,
) -> SnapshotSignal:
    table = config[SIGNAL_KEY]
    params = connector_params(config, source, env)
    login = params.own or params.fallback
    if login is None:
        raise CdcflowError(
            f"connector {name!r}: its database host, port or name does not resolve here",
            hint="run where the connector's database.* settings resolve",
        )
    signal_id = str(uuid.uuid4())
    schema, _, relation = table.partition(".")
    try:
        with open_source(login) as conn:
            conn.execute(
                sql.SQL("INSERT INTO {} (id, type, data) VALUES (%s, %s, %s)").format(
                    sql.Identifier(schema, relation)
                ),
                (signal_id, kind, json.dumps(data)),
            )
    except psycopg.errors.UndefinedTable as exc:
        raise CdcflowError(
            f"connector {name!r}: its signal table {table} does not exist in {login.describe()}",
            hint="create it: " + " ".join(SIGNAL_TABLE_DDL.format(table=table).split()),
        ) from exc
    except psycopg.Error as exc:
        raise CdcflowError(
            f"connector {name!r}: cannot write the signal to {table} as {login.describe()}: "
            f"{str(exc).strip().splitlines()[0]}",
            hint=f"grant INSERT on {table} to the connector's login (it writes watermarks "
            "there too)",
        ) from exc
    return SnapshotSignal(
        connector=name,
        id=signal_id,
        type=kind,
        data=data,
        signal_table=table,
        notification_topic=notification_topic(config),
        sent_as=login.describe(),
    )


def start_snapshot(
    client: ConnectClient,
    name: str,
    tables: Sequence[str],
    source: SourceSettings,
    *,
    where: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SnapshotSignal:
    """Signal connector ``name`` to take an incremental snapshot of ``tables``.

    ``where`` is an SQL condition on each table's rows (Debezium's
    ``additional-conditions``): only the rows it selects are read.

    Raises:
        ConnectError: Connect does not know the connector or cannot be reached.
        CdcflowError: not a Debezium Postgres connector, no signal table, a
            table it does not capture, or the signal could not be written.
    """
    config = _deployed(client, name)
    wanted = [qualified(t) for t in tables]
    missing = sorted(set(wanted) - set(captured_tables(config, wanted)))
    if missing:
        raise CdcflowError(
            f"connector {name!r} does not capture {', '.join(missing)}",
            hint="add the table to table.include.list in its connector file and run "
            "'cdcflow connectors apply' first; the snapshot then reads only that table",
        )
    data: dict[str, Any] = {"data-collections": wanted, "type": "incremental"}
    if where:
        data["additional-conditions"] = [{"data-collection": t, "filter": where} for t in wanted]
    return _send(name, config, source, "execute-snapshot", data, env)


def stop_snapshot(
    client: ConnectClient,
    name: str,
    source: SourceSettings,
    tables: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
) -> SnapshotSignal:
    """Signal connector ``name`` to stop its incremental snapshot (of ``tables``, else all).

    Raises:
        ConnectError, CdcflowError: as :func:`start_snapshot`.
    """
    config = _deployed(client, name)
    data: dict[str, Any] = {"type": "incremental"}
    if tables:
        data["data-collections"] = [qualified(t) for t in tables]
    return _send(name, config, source, "stop-snapshot", data, env)


# --------------------------------------------------------------------------- notifications


def _notification(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and "payload" in value and "schema" in value:
        value = value["payload"]  # JsonConverter with schemas
    return value if isinstance(value, dict) else None


def _read_notes(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every notification on ``topic``, in order per partition; none when it does not exist."""
    meta = (
        AdminClient(kafka.client_config()).list_topics(topic, timeout=timeout_s).topics.get(topic)
    )
    if meta is None or meta.error is not None or not meta.partitions:
        return []
    consumer = Consumer(
        kafka.client_config("consumer")
        | {"group.id": f"cdcflow-snapshot-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    notes: list[dict[str, Any]] = []
    try:
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:
                    continue
                note = _notification(msg.value())
                if note is not None:
                    notes.append(note)
                partition, offset = msg.partition(), msg.offset()
                if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                    del ends[partition]
    except KafkaException as exc:
        raise CdcflowError(f"cannot read the notifications on {topic}: {exc}") from exc
    finally:
        consumer.close()
    return notes


def read_snapshots(kafka: KafkaSettings, topic: str) -> list[SnapshotRun]:
    """The connector's incremental snapshots as its notifications tell them, oldest first."""
    runs: dict[str, SnapshotRun] = {}
    for note in _read_notes(kafka, topic):
        if note.get("aggregate_type") != INCREMENTAL or not note.get("id"):
            continue
        if note.get("type") == "ABORTED" and str(note["id"]) not in runs:
            continue  # the stop signal's own report; the stopped snapshot says ABORTED itself
        run = runs.setdefault(str(note["id"]), SnapshotRun(str(note["id"])))
        run.apply(note)
    return list(runs.values())


def snapshots_of(client: ConnectClient, name: str, kafka: KafkaSettings) -> list[SnapshotRun]:
    """The incremental snapshots connector ``name`` reported (see :func:`read_snapshots`).

    Raises:
        ConnectError, CdcflowError: as :func:`start_snapshot`.
    """
    return read_snapshots(kafka, notification_topic(_deployed(client, name)))


def wait_for_snapshot(
    kafka: KafkaSettings,
    signal: SnapshotSignal,
    *,
    timeout_s: float = 3600.0,
    poll_s: float = 2.0,
    progress: Callable[[SnapshotRun, float], None] | None = None,
) -> SnapshotRun:
    """Read the notifications until the snapshot of ``signal`` is COMPLETED or ABORTED.

    ``progress(run, waited_s)`` is called on every change of state, and at
    least every 30 s while nothing changes.

    Raises:
        CdcflowError: ``timeout_s`` passed first (the snapshot goes on).
    """
    started = time.monotonic()
    last_said = started
    seen: tuple[Any, ...] = ()
    run = SnapshotRun(signal.id)
    while True:
        found = [r for r in read_snapshots(kafka, signal.notification_topic) if r.id == signal.id]
        run = found[0] if found else run
        now = time.monotonic()
        state = (run.state, run.current, run.last_key, tuple(run.scanned.items()))
        if progress is not None and (state != seen or now - last_said >= 30):
            progress(run, now - started)
            seen, last_said = state, now
        if run.done:
            return run
        if now - started > timeout_s:
            raise CdcflowError(
                f"snapshot {signal.id} of {signal.connector} is {run.state} after "
                f"{timeout_s:.0f} s; it goes on in the connector",
                hint=f"cdcflow connectors snapshot status {signal.connector}",
            )
        time.sleep(poll_s)


def running(runs: Iterable[SnapshotRun]) -> list[SnapshotRun]:
    """The snapshots not yet COMPLETED or ABORTED."""
    return [r for r in runs if r.running]
