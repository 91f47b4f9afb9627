"""``cdcflow dlq``, end to end: a mapping fails, is fixed, and the dead letters are redriven.

The real chain runs the ``tests.domains.redrive`` rules (PostgreSQL -> Debezium
-> the transformer in a thread): 24 items, of which 6 are labelled ``bad-…``
(the rules fail on them), 1 ``worse-…`` (it fails before and after the fix),
and 2 notes (a table neither version declares) — 9 dead letters. Then the
``cdcflow dlq`` commands run as a user runs them, in subprocesses, with the
fixed rules (``--domain tests.domains.redrive.fixed``):

- ``list -o json`` groups them by reason, table and rule; ``show`` decodes one;
- ``redrive --dry-run`` produces and commits nothing;
- ``redrive`` is SIGKILLed inside its second transaction (the fixed rule
  stops for good at its fourth call, after a first transaction of two dead
  letters committed), then run again: every ``bad`` item's event exists
  exactly once, equal to its row, with the ``cdcflow.redriven`` headers; the
  3 dead letters that still fail wait in the dead-letter topic, once each,
  with their new reason; a ``--reason`` filter leaves the others waiting,
  unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.dlq import REDRIVEN_FROM_HEADER, REDRIVEN_HEADER, redrive_group
from pipeline.dlq.letters import REDRIVES_HEADER
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.stack.scratch import delete_groups
from pipeline.transformer.dlq import HEADER_PREFIX
from tests.domains.redrive.events import ItemRecorded, _RedriveEvent
from tests.integration.harness import REPO, PipelineRun, Received, pipeline_run

ITEMS = "redrive.items"
NOTES = "redrive.notes"
BAD = {4, 8, 12, 16, 20, 24}
WORSE = {10}
GOOD = set(range(1, 25)) - BAD - WORSE
FIXED = "tests.domains.redrive.fixed"


def label(item: int) -> str:
    return f"bad-{item}" if item in BAD else f"worse-{item}" if item in WORSE else f"good-{item}"


def cli(
    run: PipelineRun, *args: str, hold: Path | None = None, hold_at: int = 0
) -> subprocess.Popen[str]:
    """``cdcflow -o json ARGS`` in a subprocess, with the run's settings in CDCFLOW_* variables."""
    s = run.settings
    env = os.environ | {
        "CDCFLOW_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        "CDCFLOW_TRANSFORMER__DOMAIN": run.domain,
        "CDCFLOW_TRANSFORMER__GROUP_ID": s.transformer.group_id,
        "CDCFLOW_TRANSFORMER__TRANSACTIONAL_ID": s.transformer.transactional_id,
        "CDCFLOW_TRANSFORMER__DEAD_LETTER_TOPIC": s.transformer.dead_letter_topic,
        "CDCFLOW_TRANSFORMER__TOPICS": s.transformer.topics,
        "CDCFLOW_TRANSFORMER__SCHEMAS_DIR": str(s.transformer.schemas_dir),
        "CDCFLOW_SOURCE__DATABASE": run.database,
        "REDRIVE_TEST_DOMAIN": run.name,
    }
    if hold is not None:
        env |= {"REDRIVE_TEST_HOLD": str(hold), "REDRIVE_TEST_HOLD_AT": str(hold_at)}
    command = [sys.executable, "-m", "tests.integration.redrive_cli", "-o", "json", *args]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(proc: subprocess.Popen[str], expect: int = 0) -> Any:
    """The JSON a command printed, once it exited with ``expect``."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == expect, f"exit {proc.returncode}\n{out}\n{err}"
    return json.loads(out) if out.strip() else None


def committed(run: PipelineRun) -> int:
    """The sum of the redrive group's committed offsets on the dead-letter topic."""
    topic = run.settings.transformer.dead_letter_topic
    consumer = Consumer(
        run.settings.kafka.client_config("consumer")
        | {"group.id": redrive_group(run.settings), "enable.auto.commit": False}
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(run.partitions(topic))]
        return sum(max(0, tp.offset) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()


def dlq_headers(record: Received) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers.items() if k.startswith(HEADER_PREFIX)}


def test_redrive_after_a_fix_makes_the_missing_events_exactly_once_even_after_sigkill(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pipeline_run(
        stack,
        settings,
        tmp_path,
        monkeypatch,
        domain="tests.domains.redrive",
        event_base=_RedriveEvent,
        schema_sql=REPO / "tests" / "domains" / "redrive" / "schema.sql",
        label="redrive",
    ) as run:
        try:
            _scenario(run, tmp_path)
        finally:
            delete_groups(run.settings, [redrive_group(run.settings)])


def _scenario(run: PipelineRun, tmp_path: Path) -> None:
    dlq = run.settings.transformer.dead_letter_topic
    events_topic = run.topic_of(ItemRecorded)
    run.register_contracts()
    run.start_connector([ITEMS, NOTES])
    run.start_transformer()
    with run.db() as conn:
        for item in range(1, 25):
            conn.execute("INSERT INTO redrive.items VALUES (%s, %s, %s)", (item, label(item), item))
        conn.execute("INSERT INTO redrive.notes VALUES (1, 'one'), (2, 'two')")
        rows = {r["id"]: r for r in conn.execute("SELECT * FROM redrive.items")}
    run.wait_for(
        "the transformer to take in all 26 CDC records",
        lambda: sum(run.totals()["consumed"].values()) >= 26,
    )
    run.stop_transformer()
    assert run.totals()["dead_lettered"] == {"map": 9}
    assert len(run.read(events_topic, len(GOOD))) == len(GOOD)

    # -- list: grouped by reason, table and rule
    listed = finished(cli(run, "dlq", "list"))
    assert listed["waiting"] == 9 and listed["topic"] == dlq
    groups = {(g["reason"], g["table"], g["rule"]): g["count"] for g in listed["groups"]}
    assert groups == {
        ("map:MappingError", ITEMS, "item_recorded"): 7,
        ("map:UnknownTable", NOTES, None): 2,
    }

    # -- show: one dead letter, decoded, with its headers
    first = run.read(dlq, 9)[0]
    shown = finished(cli(run, "dlq", "show", str(first.partition), str(first.offset)))
    assert shown["headers"] == dlq_headers(first)
    decoded = shown["decoded"]
    assert decoded["op"] in ("c", "r")
    if decoded["table"] == ITEMS:
        assert decoded["after"]["label"] == label(decoded["after"]["id"])
    else:
        assert decoded["table"] == NOTES and decoded["after"]["body"] in ("one", "two")

    # -- a usage error exits 2 and does nothing
    finished(cli(run, "dlq", "redrive", "--domain", FIXED, "--since", "yesterday"), expect=2)

    # -- dry run: the balance, and nothing produced or committed
    dlq_end, events_end = run.end_offsets(dlq), run.end_offsets(events_topic)
    dry = finished(cli(run, "dlq", "redrive", "--domain", FIXED, "--dry-run"))
    assert (dry["dead_lettered"], dry["redriven"], dry["still_dead"]) == (9, 6, 3)
    assert dry["dry_run"] and dry["balanced"] and dry["events"] == {"ItemRecorded": 6}
    assert committed(run) == 0
    assert run.end_offsets(dlq) == dlq_end and run.end_offsets(events_topic) == events_end

    # -- SIGKILL inside the second transaction
    hold = tmp_path / "held"
    killed = cli(
        run, "dlq", "redrive", "--domain", FIXED, "--batch-size", "2", hold=hold, hold_at=4
    )
    deadline = time.monotonic() + 300
    while not hold.exists():
        assert killed.poll() is None, killed.communicate()
        assert time.monotonic() < deadline, "the redrive never reached its fourth item"
        time.sleep(0.2)
    done_before_kill = committed(run)
    assert done_before_kill >= 2, "no transaction committed before the kill"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL

    # -- run again: it ends the job
    again = finished(cli(run, "dlq", "redrive", "--domain", FIXED, "--batch-size", "2"))
    assert again["balanced"] and again["transactions"] >= 1
    # It takes the rest, and what the killed run dead-lettered again in its committed transaction.
    assert again["dead_lettered"] >= 9 - done_before_kill

    # -- the events: every item exactly once, equal to its row; the redriven ones marked
    events = run.read(events_topic, len(GOOD) + len(BAD), avro=True)
    ids = sorted(e.value["id"] for e in events)
    assert ids == sorted(GOOD | BAD), "an item's event is missing or doubled"
    for event in events:
        row = rows[event.value["id"]]
        assert (event.value["label"], event.value["quantity"]) == (row["label"], row["quantity"])
        assert event.key == str(row["id"]).encode()
        redriven = event.headers.get(REDRIVEN_HEADER)
        if row["id"] in BAD:
            assert redriven == b"map:MappingError"
            assert event.headers[REDRIVEN_FROM_HEADER].decode().startswith(f"{dlq}[")
        else:
            assert redriven is None
    # ... and the redriven ones have the ids the transformer would have given them.
    assert len({e.value["metadata"]["event_id"] for e in events}) == len(events)

    # -- what still fails waits once each, with its new reason
    after = finished(cli(run, "dlq", "list"))
    assert after["waiting"] == 3
    groups = {(g["reason"], g["table"], g["rule"]): g["count"] for g in after["groups"]}
    assert groups == {
        ("map:MappingError", ITEMS, "item_recorded"): 1,
        ("map:UnknownTable", NOTES, None): 2,
    }
    waiting = _waiting(run)
    assert len(waiting) == 3
    for h in waiting:
        assert int(h[REDRIVES_HEADER]) >= 1
        assert (
            h[HEADER_PREFIX + "transformer"]
            == f"{run.settings.transformer.transactional_id}-redrive"
        )
        if h[HEADER_PREFIX + "table"] == ITEMS:
            assert "still" in h[HEADER_PREFIX + "error.message"]

    # -- a filter: the notes are taken (and still fail), the item is left waiting unchanged
    item_before = [h for h in waiting if h[HEADER_PREFIX + "table"] == ITEMS]
    some = finished(cli(run, "dlq", "redrive", "--domain", FIXED, "--reason", "UnknownTable"))
    assert (some["dead_lettered"], some["still_dead"], some["not_selected"]) == (3, 2, 1)
    assert some["redriven"] == 0 and some["balanced"]
    waiting = _waiting(run)
    assert len(waiting) == 3
    assert [h for h in waiting if h[HEADER_PREFIX + "table"] == ITEMS] == item_before

    # -- nothing left to do: a further redrive takes the 3 and leaves them dead
    last = finished(cli(run, "dlq", "redrive", "--domain", FIXED))
    assert (last["dead_lettered"], last["redriven"], last["still_dead"]) == (3, 0, 3)
    assert len(run.read(events_topic, len(GOOD) + len(BAD))) == len(GOOD) + len(BAD)


def _waiting(run: PipelineRun) -> list[dict[str, str]]:
    """The headers of the dead letters after the redrive group's offsets, read with a plain consumer."""
    topic = run.settings.transformer.dead_letter_topic
    group = redrive_group(run.settings)
    consumer = Consumer(
        run.settings.kafka.client_config("consumer")
        | {
            "group.id": group,  # only to read its offsets: it commits nothing
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(run.partitions(topic))]
        starts = consumer.committed(parts, timeout=30)
        consumer.assign([TopicPartition(topic, tp.partition, max(0, tp.offset)) for tp in starts])
        out: list[dict[str, str]] = []
        ended: set[int | None] = set()
        deadline = time.monotonic() + 120
        while len(ended) < len(parts):
            assert time.monotonic() < deadline, "the dead-letter topic did not reach its end"
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                ended.add(msg.partition())  # the end of a partition
                continue
            out.append({k: bytes(v).decode() for k, v in msg.headers() or []})
        return out
    finally:
        consumer.close()
