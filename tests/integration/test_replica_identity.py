"""Key-only before images never leak, end to end on the real stack.

The ``tests.domains.identity`` tables hold one replica identity each: DEFAULT
(``ident.accounts``, as a user leaves it), FULL (``ident.ledgers``) and USING
INDEX (``ident.badges``). PostgreSQL writes to the WAL only the identity's
columns of an old row; Debezium still writes every column, NOT NULL ones with
their type's default. The real chain runs (PostgreSQL -> Debezium -> CDC
topics -> the transformer in a thread, replica identities read from the run's
own database -> event and dead-letter topics) and the test checks:

- the CDC record of a DEFAULT delete really carries Debezium's stand-in
  values (``customer_ref: 0``, ``owner: ""``), so the fault is there to catch;
- a rule reading such a column is dead-lettered, with headers naming the
  table, the column and the fix; no event carries a stand-in value;
- a rule reading only the key still maps;
- the FULL table's delete and update map with the real old values;
- ``consumed = mapped + skipped + dead-lettered``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cdc import ReplicaIdentity
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.transformer.dlq import HEADER_PREFIX
from pipeline.transformer.identities import catalog_lookup
from tests.domains.identity.events import (
    AccountOpened,
    BadgeRetired,
    LedgerClosed,
    _IdentityEvent,
)
from tests.integration.harness import REPO, PipelineRun, Received, pipeline_run

SCHEMA_SQL = REPO / "tests" / "domains" / "identity" / "schema.sql"
ACCOUNTS, LEDGERS, BADGES = "ident.accounts", "ident.ledgers", "ident.badges"
FULL_FIX = "run 'ALTER TABLE {} REPLICA IDENTITY FULL' so old rows carry every column"


@pytest.fixture
def run(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineRun]:
    with pipeline_run(
        stack,
        settings,
        tmp_path,
        monkeypatch,
        domain="tests.domains.identity",
        event_base=_IdentityEvent,
        schema_sql=SCHEMA_SQL,
        label="ident",
    ) as pipeline:
        yield pipeline


def test_the_catalogue_reads_every_kind_of_identity_from_postgresql(run: PipelineRun) -> None:
    with run.db() as conn:
        conn.execute(
            """
            CREATE TABLE ident.silent (id integer PRIMARY KEY, v integer);
            ALTER TABLE ident.silent REPLICA IDENTITY NOTHING;
            CREATE TABLE ident.keyless (v integer);
            CREATE TABLE ident."Pairs" (a integer, b text, c text, PRIMARY KEY (b, a));
            """
        )
    found = catalog_lookup(run.settings.source)(
        run.database,
        [ACCOUNTS, LEDGERS, BADGES, "ident.silent", "ident.keyless", "ident.Pairs", "ident.gone"],
    )
    assert found == {
        ACCOUNTS: ReplicaIdentity("default", ("id",)),
        LEDGERS: ReplicaIdentity("full"),
        BADGES: ReplicaIdentity("index", ("code",), "ident.badges_code"),
        "ident.silent": ReplicaIdentity("nothing"),
        "ident.keyless": ReplicaIdentity("default", ()),
        "ident.Pairs": ReplicaIdentity("default", ("b", "a")),  # the key's own order
    }


def test_key_only_images_are_dead_lettered_never_mapped_with_stand_in_values(
    run: PipelineRun,
) -> None:
    run.register_contracts()
    run.start_connector([ACCOUNTS, LEDGERS, BADGES])
    run.start_transformer()
    with run.db() as conn:
        for n in (1, 2, 3, 4):
            note = f"note-{n}" if n <= 2 else None
            conn.execute(
                "INSERT INTO ident.accounts (id, customer_ref, owner, note) VALUES (%s, %s, %s, %s)",
                (n, 100 + n, f"owner-{n}", note),
            )
        conn.execute(
            "INSERT INTO ident.ledgers VALUES (1, 201, 'owner-1', 'note-1'), (2, 202, 'owner-2', NULL)"
        )
        conn.execute(
            "INSERT INTO ident.badges VALUES (1, 'gold-1', 'Gold'), (2, 'silver-2', 'Silver')"
        )
        # DEFAULT: the old rows carry the key only.
        conn.execute("DELETE FROM ident.accounts WHERE id = 1")  # odd: a rule reads customer_ref
        conn.execute("DELETE FROM ident.accounts WHERE id = 2")  # even: the key-only rule
        conn.execute("UPDATE ident.accounts SET owner = 'renamed' WHERE id = 4")  # no old row
        # FULL: the old rows carry every column.
        conn.execute("DELETE FROM ident.ledgers WHERE id = 1")
        conn.execute("UPDATE ident.ledgers SET owner = 'owner-2b' WHERE id = 2")
        # USING INDEX: the old rows carry the code only.
        conn.execute("DELETE FROM ident.badges WHERE id = 1")
        conn.execute("UPDATE ident.badges SET label = 'Gold' WHERE id = 2")

    cdc = {t: run.cdc_topic(t) for t in (ACCOUNTS, LEDGERS, BADGES)}
    source = _read_cdc(run, cdc, {ACCOUNTS: 7, LEDGERS: 4, BADGES: 4})
    total = sum(len(records) for records in source.values())
    run.wait_for(
        "the transformer to take in every CDC record",
        lambda: sum(run.totals()["consumed"].values()) >= total,
    )
    totals = run.totals()
    accounts = run.read(run.topic_of(AccountOpened), 5, avro=True)
    ledgers = run.read(run.topic_of(LedgerClosed), 2, avro=True)
    badges = run.read(run.topic_of(BadgeRetired), 1, avro=True)
    dead = run.read(run.settings.transformer.dead_letter_topic, 2)
    run.stop_transformer()

    # -- the fault is real: Debezium's delete of account 1 carries stand-in values
    deletes = [_payload(r) for r in source[ACCOUNTS] if _payload(r)["op"] == "d"]
    first = next(p for p in deletes if p["before"]["id"] == 1)
    assert first["before"]["customer_ref"] == 0 and first["before"]["owner"] == ""
    assert first["before"]["note"] is None  # the row's note was 'note-1'
    assert sorted(p["before"]["id"] for p in deletes) == [1, 2]
    assert [len(source[t]) for t in (ACCOUNTS, LEDGERS, BADGES)] == [7, 4, 4]

    # -- the balance: consumed = mapped + skipped + dead-lettered
    consumed = sum(totals["consumed"].values())
    mapped = sum(totals["mapped"].values())
    skipped = sum(totals["skipped"].values())
    dead_lettered = sum(totals["dead_lettered"].values())
    assert consumed == total == mapped + skipped + dead_lettered
    assert totals["dead_lettered"] == {"map": 2}
    # creates of ledgers and badges, and the account update: no rule matches
    assert totals["skipped"] == {"no_matching_rule": 5}
    assert totals["produced"] == {
        "AccountOpened": 4,
        "AccountRemoved": 1,
        "LedgerClosed": 1,
        "LedgerRenamed": 1,
        "BadgeRetired": 1,
    }

    # -- no event carries a value the source did not send
    assert len(accounts) == 5
    by_type = Counter(_event_type(e) for e in accounts)
    assert by_type == {"AccountOpened": 4, "AccountRemoved": 1}  # no AccountClosed at all
    opened = {e.value["account_id"]: e.value for e in accounts if _event_type(e) == "AccountOpened"}
    assert {k: (v["customer_ref"], v["owner"]) for k, v in opened.items()} == {
        1: (101, "owner-1"),
        2: (102, "owner-2"),
        3: (103, "owner-3"),
        4: (104, "owner-4"),
    }
    # the key-only rule mapped account 2's delete
    removed = [e.value for e in accounts if _event_type(e) == "AccountRemoved"]
    assert [r["account_id"] for r in removed] == [2]
    for event in accounts + ledgers + badges:
        stand_ins = {k: v for k, v in event.value.items() if v in (0, "") and k != "metadata"}
        assert not stand_ins, (event.value, stand_ins)

    # -- FULL: the real old values
    ledger_events = {_event_type(e): e.value for e in ledgers}
    closed = ledger_events["LedgerClosed"]
    assert (closed["ledger_id"], closed["customer_ref"], closed["owner"], closed["note"]) == (
        1,
        201,
        "owner-1",
        "note-1",
    )
    renamed = ledger_events["LedgerRenamed"]
    assert (renamed["old_owner"], renamed["new_owner"]) == ("owner-2", "owner-2b")

    # -- USING INDEX: the index's column maps
    assert [e.value["code"] for e in badges] == ["gold-1"]

    # -- the dead letters name table, column and fix
    letters = [_headers(r) for r in dead]
    assert sorted((h["table"], h["column"]) for h in letters) == [
        (ACCOUNTS, "customer_ref"),  # account 1: the odd-id rule read customer_ref
        (BADGES, "label"),  # badge 2: changed_from(label) on an update without an old row
    ]
    account_letters = [h for h in letters if h["table"] == ACCOUNTS]
    for h in account_letters:
        assert h["column"] == "customer_ref"
        assert h["error.hint"] == FULL_FIX.format(ACCOUNTS)
        assert "REPLICA IDENTITY DEFAULT (primary key id)" in h["error.message"]
        assert h["stage"] == "map" and h["error.class"] == "MappingError"
    originals = {(r.topic, r.offset): r for r in source[ACCOUNTS]}
    dead_ids = sorted(
        _payload(originals[(h["original.topic"], int(h["original.offset"]))])["before"]["id"]
        for h in account_letters
    )
    assert dead_ids == [1]
    (badge_letter,) = [h for h in letters if h["table"] == BADGES]
    assert badge_letter["error.hint"].startswith(
        f"run 'ALTER TABLE {BADGES} REPLICA IDENTITY FULL'"
    )


def test_a_changed_key_under_default_identity_maps_both_halves(run: PipelineRun) -> None:
    run.register_contracts()
    run.start_connector([ACCOUNTS])
    run.start_transformer()
    with run.db() as conn:
        conn.execute("INSERT INTO ident.accounts (id, customer_ref, owner) VALUES (3, 103, 'c')")
        conn.execute("UPDATE ident.accounts SET id = 14 WHERE id = 3")
    source = _read_cdc(run, {ACCOUNTS: run.cdc_topic(ACCOUNTS)}, {ACCOUNTS: 3})[ACCOUNTS]
    # The old key's delete carries the key only (the odd-id rule reading customer_ref
    # dead-letters it); the new key's create carries the whole new row.
    assert [(_payload(r)["op"]) for r in source] == ["c", "d", "c"]
    old = _payload(source[1])
    assert old["before"]["id"] == 3 and old["before"]["customer_ref"] == 0
    run.wait_for("3 records taken in", lambda: sum(run.totals()["consumed"].values()) >= 3)
    assert "duplicate" not in run.totals()["skipped"], run.totals()
    events = run.read(run.topic_of(AccountOpened), 2, avro=True)
    dead = run.read(run.settings.transformer.dead_letter_topic, 1)
    totals = run.totals()
    run.stop_transformer()
    assert [_headers(d)["column"] for d in dead] == ["customer_ref"]
    opened = sorted(e.value["account_id"] for e in events if _event_type(e) == "AccountOpened")
    assert opened == [3, 14], totals


def _read_cdc(
    run: PipelineRun, topics: dict[str, str], counts: dict[str, int]
) -> dict[str, list[Received]]:
    """The CDC records of each table, once Debezium has written ``counts`` of them."""
    for table, count in counts.items():
        topic = topics[table]
        run.wait_for(
            f"{count} CDC records of {table}",
            lambda topic=topic, count=count: run.end_offsets(topic) >= count,
        )
    return {table: run.read(topics[table], count) for table, count in counts.items()}


def _payload(record: Received) -> dict[str, Any]:
    assert record.value is not None
    payload: dict[str, Any] = json.loads(record.value)["payload"]
    return payload


def _event_type(record: Received) -> str:
    return record.headers["cdcflow.event_type"].decode()


def _headers(record: Received) -> dict[str, str]:
    return {
        k.removeprefix(HEADER_PREFIX): v.decode()
        for k, v in record.headers.items()
        if k.startswith(HEADER_PREFIX)
    }
