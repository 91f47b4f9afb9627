"""``cdcflow run --processes 2`` on the real stack: two transformer processes share one group.

The library domain (a schema written from scratch) under names of the test's
own: its connector writes each aggregate's topic with 4 partitions; the
supervisor of ``run --processes 2`` (:func:`pipeline.cli.run.run_processes`)
runs in a forked process of the test, and forks its two transformers. While
they run, the consumer group has two members, each assigned CDC partitions;
every row written becomes exactly one event; SIGTERM to the supervisor
reaches both children, which commit and exit 0, and so does the supervisor.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.cli.run import run_processes
from pipeline.connect.domain import check_connector, load_description
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.domains.library import events as ev
from tests.integration.harness import LIBRARY, PipelineRun, library_run

DOMAIN = "tests.domains.library"
MEMBERS = 40
BOOKS = 40


def _supervise(settings: Settings) -> None:
    os._exit(run_processes(settings, 2, domain=DOMAIN, instance="p", metrics_port=0))


def _members(admin: AdminClient, group: str) -> dict[str, set[tuple[str, int]]]:
    """The group's members and their assigned partitions (empty while it rebalances)."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        m.member_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
        for m in description.members
    }


def _insert(run: PipelineRun, first: int, count: int) -> tuple[list[int], list[str]]:
    members, books = [], []
    with run.db() as conn, conn.transaction():
        for i in range(first, first + count):
            members.append(
                conn.execute(
                    "INSERT INTO members (email, full_name) VALUES (%s, %s) RETURNING id",
                    (f"m{i}@example.org", f"Member {i}"),
                ).fetchone()["id"]  # type: ignore[index]
            )
            books.append(
                str(
                    conn.execute(
                        "INSERT INTO books (isbn, title, authors) VALUES (%s, %s, '[]') RETURNING id",
                        (f"isbn-{i}", f"Book {i}"),
                    ).fetchone()["id"]  # type: ignore[index]
                )
            )
    return members, books


def test_two_processes_share_the_partitions_and_the_events_are_exact(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with library_run(stack, settings, tmp_path, monkeypatch, label="procs") as run:
        run.register_contracts()
        snapshot_members, snapshot_books = _insert(run, 0, MEMBERS // 2)
        spec = run.connector_spec(
            LIBRARY / "connector.yaml",
            **{
                "topic.creation.default.partitions": "4",
                "topic.creation.default.replication.factor": "-1",
            },
        )
        fixed, _ = check_connector(spec, load_description(DOMAIN), "the library's connector")
        run.deploy_connector(dict(fixed.config))
        # The children read replica identities from the run's own database.
        source = run.settings.source.model_copy(update={"database": run.database})
        child_settings = run.settings.model_copy(update={"source": source})
        supervisor = multiprocessing.get_context("fork").Process(
            target=_supervise, args=(child_settings,)
        )
        supervisor.start()
        admin = AdminClient(run.settings.kafka.client_config())
        group = run.settings.transformer.group_id
        try:
            shared: dict[str, set[tuple[str, int]]] = {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert supervisor.exitcode is None, f"run --processes exited {supervisor.exitcode}"
                try:
                    shared = _members(admin, group)
                except Exception:  # the group does not exist until the first child joins
                    shared = {}
                if len(shared) == 2 and all(shared.values()):
                    break
                time.sleep(1)
            assert len(shared) == 2, f"group {group}: members {shared}"
            assigned = list(shared.values())
            assert all(assigned), f"a member without partitions: {shared}"
            assert not assigned[0] & assigned[1], f"a partition assigned twice: {shared}"
            cdc = {(t, p) for t in run.cdc_topics() for p in range(run.partitions(t))}
            assert assigned[0] | assigned[1] >= {x for x in cdc if x[0].endswith("member")} | {
                x for x in cdc if x[0].endswith("book")
            }

            stream_members, stream_books = _insert(run, MEMBERS // 2, MEMBERS // 2)
            joined = run.read(run.topic_of(ev.MemberJoined), MEMBERS, avro=True)
            added = run.read(run.topic_of(ev.BookAdded), BOOKS, avro=True)
        finally:
            if supervisor.exitcode is None:
                os.kill(supervisor.pid or 0, signal.SIGTERM)
            supervisor.join(90)
            if supervisor.exitcode is None:
                supervisor.kill()
        assert supervisor.exitcode == 0

        def ids(records: list[Any], event_type: str) -> Counter[str]:
            return Counter(
                str(r.value["member_id"] if "member_id" in r.value else r.value["book_id"])
                for r in records
                if r.value["metadata"]["event_type"] == event_type
            )

        assert ids(joined, "MemberJoined") == Counter(
            str(m) for m in snapshot_members + stream_members
        )
        assert ids(added, "BookAdded") == Counter(snapshot_books + stream_books)
        names = {r.value["name"] for r in joined}
        assert names == {f"Member {i}" for i in range(MEMBERS)}
