"""Backfills on the real stack: ``cdcflow connectors snapshot`` against a running Debezium connector.

Each test runs the library domain's tables in a database of its own, with a
connector of its own (topic prefix, slot, publication) whose config carries one
extra line, ``signal.data.collection``, and what cdcflow derives from it
(:func:`pipeline.connect.signals.derive_signals`). Signals go into the signal
table, progress comes back on the notification topic; the rows read arrive as
``op=r`` records with ``source.snapshot = "incremental"``.

- A table added to the capture list later is backfilled: its rows become
  domain events (the transformer runs), the tables captured before are not
  read again.
- A backfill while another session keeps writing loses nothing and sends no
  row twice: compared per key, payload by payload, and by each row's final state.
- ``snapshot status`` sees a running snapshot and ``snapshot stop`` aborts it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.connect.lifecycle import wait_for_state
from pipeline.connect.signals import NOTIFICATIONS_PREFIX, SIGNAL_TABLE_DDL, derive_signals
from pipeline.connect.snapshot import start_snapshot, wait_for_snapshot
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.stack.scratch import delete_topics
from tests.domains.library import events as ev
from tests.integration.harness import PipelineRun, connector_config, library_run

REPO = Path(__file__).resolve().parents[2]
CDCFLOW = str(Path(sys.executable).parent / "cdcflow")
SIGNALS = "public.cdcflow_signal"


def _config(run: PipelineRun, tables: list[str], chunk: int) -> dict[str, str]:
    config = connector_config(run.database, run.prefix, run.slot, tables)
    config["signal.data.collection"] = SIGNALS
    config["incremental.snapshot.chunk.size"] = str(chunk)
    return config | derive_signals(config)


def _prepare(run: PipelineRun) -> None:
    with run.db() as conn:
        conn.execute(SIGNAL_TABLE_DDL.format(table=SIGNALS))


def _cli(run: PipelineRun, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "CDCFLOW_SOURCE_DEBEZIUM_PASSWORD": run.stack.paths.password("debezium"),
    }
    return subprocess.run(
        [CDCFLOW, *args], cwd=REPO, env=environ, capture_output=True, text=True, timeout=900
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def _members(run: PipelineRun, count: int, tag: str) -> list[int]:
    with run.db() as conn:
        rows = conn.execute(
            "INSERT INTO members (email, full_name) "
            "SELECT %s || n || '@example.org', 'member ' || n FROM generate_series(1, %s) n "
            "RETURNING id",
            (tag, count),
        ).fetchall()
    return [r["id"] for r in rows]


def _cdc(run: PipelineRun, topic: str) -> list[dict[str, Any]]:
    """Every record's payload on ``topic``, in partition order (one partition per topic)."""
    consumer = Consumer(
        run.settings.kafka.client_config("consumer")
        | {"group.id": f"it-snap-{run.token}", "enable.auto.commit": False}
    )
    out: list[dict[str, Any]] = []
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        if high <= low:
            return out
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        while True:
            msgs = consumer.consume(500, 2.0)
            for msg in msgs:
                assert msg.error() is None, msg.error()
                out.append(json.loads(msg.value())["payload"])
            if out and msgs and msgs[-1].offset() + 1 >= high:
                break
            if not msgs:
                break
    finally:
        consumer.close()
    return out


@pytest.fixture
def lib(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineRun]:
    with library_run(stack, settings, tmp_path, monkeypatch, label="snap") as run:
        try:
            _prepare(run)
            yield run
        finally:
            # Named after the topic prefix, outside the run's own topic names.
            delete_topics(run.settings, [f"{NOTIFICATIONS_PREFIX}.{run.prefix}"])


def test_a_table_added_later_is_backfilled_as_events_without_reading_the_others_again(
    lib: PipelineRun,
) -> None:
    run = lib
    members = _members(run, 3, f"m{run.token}")
    with run.db() as conn:
        books = [
            conn.execute(
                "INSERT INTO books (isbn, title, authors) VALUES (%s, %s, '[\"A\"]') RETURNING id",
                (f"isbn-{i}", f"Book {i}"),
            ).fetchone()["id"]
            for i in range(5)
        ]
    run.deploy_connector(_config(run, ["public.members"], chunk=2))
    run.register_contracts()
    run.start_transformer()
    joined = run.read(run.topic_of(ev.MemberJoined), 3, avro=True)
    assert sorted(r.value["member_id"] for r in joined) == sorted(members)
    assert run.end_offsets(run.cdc_topic("public.books")) == 0  # not captured yet

    # The books table joins the capture list; the connector restarts with it.
    run.connect.put_config(run.connector, _config(run, ["public.members", "public.books"], 2))
    wait_for_state(run.connect, [run.connector], "RUNNING", timeout_s=120, poll_s=0.5)
    done = json.loads(
        _ok(
            _cli(
                run,
                "-o",
                "json",
                "connectors",
                "snapshot",
                run.connector,
                "--table",
                "books",
                "--timeout",
                "600",
            )
        ).stdout
    )
    assert done["snapshot"]["state"] == "COMPLETED", done
    assert done["snapshot"]["rows_scanned"] == {"public.books": 5}, done
    assert done["signal"]["data"] == {"data-collections": ["public.books"], "type": "incremental"}

    added = run.read(run.topic_of(ev.BookAdded), 5, avro=True)
    assert len(added) == 5
    assert sorted(str(r.value["book_id"]) for r in added) == sorted(str(b) for b in books)
    assert {r.value["title"] for r in added} == {f"Book {i}" for i in range(5)}
    assert all(r.value["metadata"]["source"]["snapshot"] for r in added)
    records = _cdc(run, run.cdc_topic("public.books"))
    assert [(p["op"], p["source"]["snapshot"]) for p in records] == [("r", "incremental")] * 5
    # The members were not read again: still their three initial snapshot records, three events.
    assert run.end_offsets(run.cdc_topic("public.members")) == 3
    assert len(run.read(run.topic_of(ev.MemberJoined), 3, avro=True)) == 3
    # The signal table's own records (the signal, the watermarks) never reach a topic.
    assert run.end_offsets(run.cdc_topic(SIGNALS)) == 0
    run.stop_transformer()
    assert sum(run.totals().get("dead_lettered", {}).values()) == 0, run.totals()


class _Writer(threading.Thread):
    """Inserts and updates members until stopped; remembers every value it wrote, per key."""

    def __init__(self, run: PipelineRun, ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.run_ = run
        self.ids = list(ids)
        self.written: list[tuple[int, str]] = []  # (id, full_name) of each insert and update
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(7)
        n = 0
        try:
            with self.run_.db() as conn:
                while not self.stop_flag.is_set():
                    n += 1
                    if n % 5 == 0:
                        name = f"new {n}"
                        row = conn.execute(
                            "INSERT INTO members (email, full_name) VALUES (%s, %s) RETURNING id",
                            (f"w{n}-{self.run_.token}@example.org", name),
                        ).fetchone()
                        self.ids.append(row["id"])
                    else:
                        member = rnd.choice(self.ids)
                        name = f"renamed {n}"
                        row = conn.execute(
                            "UPDATE members SET full_name = %s WHERE id = %s RETURNING id",
                            (name, member),
                        ).fetchone()
                    self.written.append((row["id"], name))
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


def test_a_backfill_while_writes_continue_loses_nothing_and_sends_no_row_twice(
    lib: PipelineRun,
) -> None:
    run = lib
    before = _members(run, 600, f"b{run.token}")
    run.deploy_connector(_config(run, ["public.members"], chunk=20))
    topic = run.cdc_topic("public.members")
    run.wait_for("the initial snapshot", lambda: run.end_offsets(topic) >= len(before))

    writer = _Writer(run, before)
    writer.start()
    try:
        time.sleep(1)  # writes are streaming before the backfill starts
        signal = start_snapshot(
            run.connect,
            run.connector,
            ["public.members"],
            run.settings.source.model_copy(update={"database": run.database}),
        )
        finished = wait_for_snapshot(run.settings.kafka, signal, timeout_s=600)
        time.sleep(1)  # and go on after it ends
    finally:
        writer.stop_flag.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert finished.state == "COMPLETED", finished.to_dict()
    assert writer.written, "the writer wrote nothing"

    with run.db() as conn:
        final = {
            r["id"]: r["full_name"]
            for r in conn.execute("SELECT id, full_name FROM members").fetchall()
        }

    def records() -> list[dict[str, Any]]:
        return _cdc(run, topic)

    run.wait_for(
        "every write and the backfill on the CDC topic",
        lambda: sum(1 for p in records() if p["op"] in "cu") >= len(writer.written),
        timeout_s=300,
        poll_s=2,
    )
    payloads = records()
    streamed = [p for p in payloads if p["op"] in ("c", "u")]
    backfill = [p for p in payloads if p["source"]["snapshot"] == "incremental"]
    initial = [p for p in payloads if p["op"] == "r" and p["source"]["snapshot"] != "incremental"]
    assert len(initial) == len(before)

    # Every write arrives exactly once, with the value written.
    assert Counter((p["after"]["id"], p["after"]["full_name"]) for p in streamed) == Counter(
        writer.written
    )
    # The backfill reads each row at most once, and only values the row really held.
    read_ids = Counter(p["after"]["id"] for p in backfill)
    assert max(read_ids.values()) == 1, read_ids.most_common(3)
    held: dict[int, set[str]] = defaultdict(set)
    for p in payloads:
        held[p["after"]["id"]].add(p["after"]["full_name"])
    for p in backfill:
        assert p["op"] == "r"
        assert p["after"]["full_name"] in held[p["after"]["id"]]
    # Nothing lost: every row that existed when the backfill began is read, or
    # was changed by a write the backfill gave way to.
    written_ids = {i for i, _ in writer.written}
    assert set(before) <= set(read_ids) | written_ids
    assert len(read_ids) >= len(before) - len(written_ids)
    # The last record of each key is the row's final state.
    last: dict[int, str] = {}
    for p in payloads:
        last[p["after"]["id"]] = p["after"]["full_name"]
    assert last == final
    # Debezium counts the rows it read, before the window drops those a write touched.
    assert sum(finished.scanned.values()) >= len(backfill) > 0
    print(
        f"\nbackfill: {len(backfill)} rows read of {len(before)} before it, "
        f"{len(streamed)} writes streamed, {len(written_ids & set(read_ids))} rows both "
        "written and read"
    )


def test_status_shows_a_running_snapshot_and_stop_aborts_it(lib: PipelineRun) -> None:
    run = lib
    _members(run, 4000, f"s{run.token}")
    run.deploy_connector(_config(run, ["public.members"], chunk=1))
    topic = run.cdc_topic("public.members")
    run.wait_for("the initial snapshot", lambda: run.end_offsets(topic) >= 4000, timeout_s=300)

    started = json.loads(
        _ok(
            _cli(
                run,
                "-o",
                "json",
                "connectors",
                "snapshot",
                run.connector,
                "-t",
                "public.members",
                "--no-wait",
            )
        ).stdout
    )
    signal_id = started["signal"]["id"]
    assert started["snapshot"] is None

    def running() -> list[dict[str, Any]]:
        out = json.loads(
            _ok(_cli(run, "-o", "json", "connectors", "snapshot", "status", run.connector)).stdout
        )
        return [s for s in out["snapshots"] if s["id"] == signal_id]

    run.wait_for(
        "the snapshot to report progress",
        lambda: bool(running()) and running()[0]["state"] == "IN_PROGRESS",
        timeout_s=300,
        poll_s=1,
    )
    text = _ok(_cli(run, "connectors", "snapshot", "status", run.connector)).stdout
    assert signal_id in text and "public.members" in text

    stopped = _ok(_cli(run, "connectors", "snapshot", "stop", run.connector))
    assert "stop signalled" in stopped.stdout

    def state() -> str:
        out = json.loads(
            _ok(
                _cli(run, "-o", "json", "connectors", "snapshot", "status", "--all", run.connector)
            ).stdout
        )
        return next(s["state"] for s in out["snapshots"] if s["id"] == signal_id)

    run.wait_for("the snapshot to abort", lambda: state() == "ABORTED", timeout_s=300, poll_s=2)
    assert running() == []
    read = sum(1 for p in _cdc(run, topic) if p["source"]["snapshot"] == "incremental")
    assert read < 4000, "the snapshot ran to its end before the stop"
