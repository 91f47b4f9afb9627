"""Source DDL while streaming: ALTER TABLE lands between the rows, nothing is lost or wrong.

The real chain runs (PostgreSQL -> Debezium -> CDC topics -> the transformer in a
thread -> event and dead-letter topics) with the ``tests.domains.ddl`` rules. A
writer thread inserts one row into each ddl table per round, one transaction
each, for the whole test; between rounds, the test alters the tables one by one:

=================================  ===============  ==================================
DDL                                table            what cdcflow must do
=================================  ===============  ==================================
ADD COLUMN note text               ddl.added        events go on; ``note`` is carried
ADD COLUMN tier ... DEFAULT 7                       once it exists (also on an update
                                                    of a row written before the ADD)
DROP COLUMN extra (a rule reads    ddl.dropped      later rows are dead-lettered, the
it)                                                 reason names ``extra``
RENAME COLUMN code TO ref          ddl.renamed      later rows are dead-lettered, the
                                                    reason names ``code``
counter integer -> bigint          ddl.widened      every value exact, beyond 2**31 too
amount numeric(10,2) ->                             every digit kept (the event field
numeric(12,4) -> numeric                            is Decimal(12,4)), also once each
                                                    value has a scale of its own
price numeric(10,2) ->             ddl.priced       the event stays Decimal(10,2): a
numeric(12,4)                                       price that fits it is carried
                                                    exactly, one that does not is
                                                    dead-lettered, never rounded
(none)                             ddl.steady       events go on
=================================  ===============  ==================================

The writer tries each insert in its new form first or its old form first as the
table needs (the DDL may land between two of its statements) and keeps what
PostgreSQL returned (``RETURNING *``): that is the oracle. Every row written must
be one event with exactly those values, or one dead-letter record (its original
key, its stage, a reason naming the column); the transformer's counters must add
up (consumed = mapped + skipped + dead-lettered) and equal the CDC records.
``cdcflow schemas check --source`` passes before the DDL and reports each drift
after it (the integer widening and the added columns are none).

The run happens once for the module; each test checks one DDL kind on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import errors

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.transformer.dlq import HEADER_PREFIX
from tests.domains.ddl.events import (
    AddedRecorded,
    DroppedRecorded,
    PricedRecorded,
    RenamedRecorded,
    SteadyRecorded,
    WidenedRecorded,
    _DdlEvent,
)
from tests.integration.harness import PipelineRun, Received, pipeline_run

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "tests.domains.ddl"
SCHEMA_SQL = REPO / "tests" / "domains" / "ddl" / "schema.sql"
CDCFLOW = REPO / ".venv" / "bin" / "cdcflow"

TABLES = ("ddl.steady", "ddl.added", "ddl.dropped", "ddl.renamed", "ddl.widened", "ddl.priced")
EVENT_OF: dict[str, type[_DdlEvent]] = {
    "ddl.steady": SteadyRecorded,
    "ddl.added": AddedRecorded,
    "ddl.dropped": DroppedRecorded,
    "ddl.renamed": RenamedRecorded,
    "ddl.widened": WidenedRecorded,
    "ddl.priced": PricedRecorded,
}

# In the order the test runs them, each while the writer writes.
DDL = (
    "ALTER TABLE ddl.added ADD COLUMN note text",
    "ALTER TABLE ddl.added ADD COLUMN tier integer NOT NULL DEFAULT 7",
    "ALTER TABLE ddl.dropped DROP COLUMN extra",
    "ALTER TABLE ddl.renamed RENAME COLUMN code TO ref",
    "ALTER TABLE ddl.widened ALTER COLUMN counter TYPE bigint",
    "ALTER TABLE ddl.widened ALTER COLUMN amount TYPE numeric(12, 4)",
    # Unbounded: Debezium sends each value with its own scale (a VariableScaleDecimal).
    "ALTER TABLE ddl.widened ALTER COLUMN amount TYPE numeric",
    "ALTER TABLE ddl.priced ALTER COLUMN price TYPE numeric(12, 4)",
)
ROUNDS_BEFORE = 8  # rounds of the writer before the first ALTER ...
ROUNDS_BETWEEN = 4  # ... after each ALTER before the next ...
ROUNDS_AFTER = 8  # ... and after the last one

# Errors that mean "this form of the insert does not fit the table (yet / any more)".
_DOES_NOT_FIT = (errors.UndefinedColumn, errors.NumericValueOutOfRange)


def _amount(n: int) -> Decimal:
    return Decimal(f"{n * 1000 + 99999}.1234" if n % 2 else f"{n * 1000 + 99999}.5")


# Insert forms per table, tried in order until one fits the table as it is now.
Form = tuple[str, Callable[[int], tuple[Any, ...]]]
FORMS: dict[str, tuple[Form, ...]] = {
    "ddl.steady": (
        ("INSERT INTO ddl.steady (id, label) VALUES (%s, %s)", lambda n: (n, f"steady {n}")),
    ),
    # New form first: once note exists, every row has one.
    "ddl.added": (
        (
            "INSERT INTO ddl.added (id, label, note) VALUES (%s, %s, %s)",
            lambda n: (n, f"added {n}", f"note {n}"),
        ),
        ("INSERT INTO ddl.added (id, label) VALUES (%s, %s)", lambda n: (n, f"added {n}")),
    ),
    # Old form first: it writes the column the rule reads while it exists.
    "ddl.dropped": (
        (
            "INSERT INTO ddl.dropped (id, label, extra) VALUES (%s, %s, %s)",
            lambda n: (n, f"dropped {n}", f"extra {n}"),
        ),
        ("INSERT INTO ddl.dropped (id, label) VALUES (%s, %s)", lambda n: (n, f"dropped {n}")),
    ),
    "ddl.renamed": (
        (
            "INSERT INTO ddl.renamed (id, label, code) VALUES (%s, %s, %s)",
            lambda n: (n, f"renamed {n}", f"code {n}"),
        ),
        (
            "INSERT INTO ddl.renamed (id, label, ref) VALUES (%s, %s, %s)",
            lambda n: (n, f"renamed {n}", f"ref {n}"),
        ),
    ),
    # A counter beyond 32 bits once the column is bigint. Amounts of four decimals
    # and of one: numeric(10,2) stores both with two (rounded by PostgreSQL: RETURNING
    # says what was kept), numeric(12,4) with four, numeric with their own.
    "ddl.widened": (
        (
            "INSERT INTO ddl.widened (id, counter, amount) VALUES (%s, %s, %s)",
            lambda n: (n, 2**31 + n * 1_000_003, _amount(n)),
        ),
        (
            "INSERT INTO ddl.widened (id, counter, amount) VALUES (%s, %s, %s)",
            lambda n: (n, 2**31 - n, _amount(n)),
        ),
    ),
    # Even rows: a price of two decimals (fits the event); odd rows: four (does not,
    # once the column keeps them).
    "ddl.priced": (
        (
            "INSERT INTO ddl.priced (id, price) VALUES (%s, %s)",
            lambda n: (n, Decimal(f"{n}.5") if n % 2 == 0 else Decimal(f"{n}.1234")),
        ),
    ),
}


@dataclass(frozen=True)
class Written:
    """One committed row change, as PostgreSQL returned it."""

    table: str
    op: str
    row: dict[str, Any]


class Writer:
    """Writes one row into each table per round until stopped; keeps what was written."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        self.written: list[Written] = []
        self.rounds = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._main, name="ddl-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the writer did not stop within 60 s"
        if self.failure is not None:
            raise AssertionError(f"the writer failed: {self.failure!r}") from self.failure

    def wait_rounds(self, more: int) -> None:
        """Wait until the writer has finished ``more`` rounds after the current one."""
        with self._progress:
            target = self.rounds + more
            while self.rounds < target:
                if self.failure is not None or not self._thread.is_alive():
                    raise AssertionError(f"the writer failed: {self.failure!r}")
                self._progress.wait(1)

    def _main(self) -> None:
        try:
            with self.run.db() as conn:
                # A prepared RETURNING * would outlive the DDL ("cached plan must not
                # change result type"): every statement is planned afresh.
                conn.prepare_threshold = None
                n = 0
                while not self._stop.is_set():
                    n += 1
                    for table in TABLES:
                        self.written.append(Written(table, "c", insert(conn, table, n)))
                    with self._progress:
                        self.rounds += 1
                        self._progress.notify_all()
        except BaseException as exc:
            self.failure = exc


def insert(conn: psycopg.Connection[Any], table: str, n: int) -> dict[str, Any]:
    """Insert row ``n`` in the first form that fits the table now; the row as stored."""
    misfits: list[str] = []
    for sql, params in FORMS[table]:
        try:
            row = conn.execute(sql + " RETURNING *", params(n)).fetchone()
        except _DOES_NOT_FIT as exc:
            misfits.append(f"{type(exc).__name__}: {exc}".strip())
            continue
        assert row is not None
        return dict(row)
    raise AssertionError(f"no insert form fits {table}: {misfits}")


# ---------------------------------------------------------------- the run


@dataclass
class Outcome:
    """What the run wrote, what came out, and what the drift check said."""

    run: PipelineRun
    written: list[Written]
    cdc_records: int
    events: dict[str, list[Received]]
    dead: list[Received]
    totals: dict[str, dict[str, float]]
    check_before: subprocess.CompletedProcess[str]
    check_after: subprocess.CompletedProcess[str]
    expected_events: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    expected_dead: list[tuple[str, int]] = field(default_factory=list)


def schemas_check_source(run: PipelineRun) -> subprocess.CompletedProcess[str]:
    """``cdcflow -o json schemas check --source`` of the domain against the run's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDCFLOW_")}
    env["CDCFLOW_SOURCE__DATABASE"] = run.database
    env["PYTHONPATH"] = str(REPO)  # the test domain is a package of the repository
    return subprocess.run(
        [
            str(CDCFLOW),
            "-o",
            "json",
            "schemas",
            "check",
            "--source",
            "--no-drift",
            "--domain",
            DOMAIN,
            "--schemas-dir",
            str(run.schemas_dir),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def outcome(
    stack: LocalStack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        pipeline_run(
            stack,
            settings,
            tmp_path_factory.mktemp("ddl"),
            monkeypatch,
            domain=DOMAIN,
            event_base=_DdlEvent,
            schema_sql=SCHEMA_SQL,
            label="ddl",
        ) as run,
    ):
        run.register_contracts()
        run.start_connector(TABLES)
        run.start_transformer()
        check_before = schemas_check_source(run)

        writer = Writer(run)
        writer.start()
        try:
            writer.wait_rounds(ROUNDS_BEFORE)
            with run.db() as conn:
                for ddl in DDL:
                    conn.execute(ddl)
                    writer.wait_rounds(ROUNDS_BETWEEN)
            writer.wait_rounds(ROUNDS_AFTER)
        finally:
            writer.stop()
        written = list(writer.written)
        with run.db() as conn:
            # A row written before the ADD COLUMNs, updated after them: it has both now.
            row = conn.execute(
                "UPDATE ddl.added SET label = 'updated' WHERE id = 1 RETURNING *"
            ).fetchone()
            assert row is not None
            written.append(Written("ddl.added", "u", dict(row)))
        check_after = schemas_check_source(run)

        topics = [run.cdc_topic(t) for t in TABLES]
        run.wait_for(
            "every change in the CDC topics",
            lambda: sum(run.end_offsets(t) for t in topics) >= len(written),
        )

        def all_taken_in() -> bool:
            # Counted again each time: a Connect restart meanwhile adds repeats.
            in_topics = sum(run.end_offsets(t) for t in topics)
            return sum(run.totals().get("consumed", {}).values()) >= in_topics

        run.wait_for("the transformer to take in every CDC record", all_taken_in, timeout_s=300)
        cdc_records = sum(run.end_offsets(t) for t in topics)
        expected_events, expected_dead = expectations(written)
        # Every batch is committed now: what the topics hold is all there will be.
        events = {e.__name__: read_all(run, run.topic_of(e), avro=True) for e in EVENT_OF.values()}
        dead = read_all(run, run.settings.transformer.dead_letter_topic)
        totals = run.totals()
        run.stop_transformer()
        dead_by_table = Counter(
            headers(r)["original.topic"].removeprefix(f"{run.prefix}.") for r in dead
        )
        print(
            f"[ddl] {len(written)} changes in {writer.rounds} rounds, {cdc_records} CDC records; "
            f"transformer: {_sums(totals)}; events {_counts(events)}; "
            f"dead letters {dict(dead_by_table)}"
        )
        yield Outcome(
            run,
            written,
            cdc_records,
            events,
            dead,
            totals,
            check_before,
            check_after,
            expected_events,
            expected_dead,
        )


def read_all(run: PipelineRun, topic: str, *, avro: bool = False) -> list[Received]:
    """Every committed record of ``topic`` (none if it was never created).

    Read once the transformer has committed everything: records are read from
    the beginning until three polls in a row bring nothing new, so that a
    missing record is a difference the tests show, and one too many is seen.
    """
    admin = AdminClient(run.settings.kafka.client_config())
    meta = admin.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    consumer = Consumer(
        run.settings.kafka.client_config("consumer")
        | {
            "group.id": f"it-ddl-reader-{run.token}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    out: list[Received] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        quiet = 0
        while quiet < 3:
            batch = [m for m in consumer.consume(500, 1.0) if m.error() is None]
            quiet = 0 if batch else quiet + 1
            out.extend(run._received(msg, avro) for msg in batch)
    finally:
        consumer.close()
    return out


def _counts(records: dict[str, list[Received]]) -> dict[str, int]:
    return {name: len(found) for name, found in records.items()}


def _sums(totals: dict[str, dict[str, float]]) -> dict[str, int]:
    return {name: int(sum(by_label.values())) for name, by_label in totals.items()}


# ---------------------------------------------------------------- the oracle


def expectations(
    written: list[Written],
) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[str, int]]]:
    """Per event type, the events the rows must give; and the (table, id) dead-lettered."""
    events: dict[str, list[tuple[Any, ...]]] = {e.__name__: [] for e in EVENT_OF.values()}
    dead: list[tuple[str, int]] = []
    for w in written:
        r, name = w.row, EVENT_OF[w.table].__name__
        out: tuple[Any, ...] | None
        if w.table == "ddl.steady":
            out = (r["id"], r["label"])
        elif w.table == "ddl.added":
            out = (r["id"], r["label"], r.get("note"), r.get("tier"))
        elif w.table == "ddl.dropped":
            out = (r["id"], r["label"], r["extra"]) if "extra" in r else None
        elif w.table == "ddl.renamed":
            out = (r["id"], r["label"], r["code"]) if "code" in r else None
        elif w.table == "ddl.widened":
            out = (r["id"], r["counter"], r["amount"])
        else:
            fits = r["price"] == r["price"].quantize(Decimal("0.01"))
            out = (r["id"], r["price"]) if fits else None
        if out is None:
            dead.append((w.table, r["id"]))
        else:
            events[name].append(out)
    return events, dead


def event_tuples(records: list[Received], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.value[f] for f in fields) for r in records)


def headers(record: Received) -> dict[str, str]:
    return {
        k.removeprefix(HEADER_PREFIX): v.decode()
        for k, v in record.headers.items()
        if k.startswith(HEADER_PREFIX)
    }


def dead_letters(o: Outcome) -> dict[tuple[str, int], dict[str, str]]:
    """Each dead-letter record's (table, id), from its original topic and key, and headers."""
    out: dict[tuple[str, int], dict[str, str]] = {}
    for record in o.dead:
        h = headers(record)
        table = h["original.topic"].removeprefix(f"{o.run.prefix}.")
        assert record.key is not None
        key = json.loads(record.key)
        row_id = int(key.get("payload", key)["id"])
        assert (table, row_id) not in out, f"dead-lettered twice: {table} {row_id}"
        out[(table, row_id)] = h
    return out


def written_rows(o: Outcome, table: str) -> list[Written]:
    return [w for w in o.written if w.table == table]


def check_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# ---------------------------------------------------------------- the tests


def test_nothing_is_lost(outcome: Outcome) -> None:
    o = outcome
    consumed = sum(o.totals["consumed"].values())
    mapped = sum(o.totals["mapped"].values())
    skips = o.totals.get("skipped", {})
    skipped = sum(skips.values())
    dead_lettered = sum(o.totals.get("dead_lettered", {}).values())
    assert consumed == o.cdc_records == mapped + skipped + dead_lettered
    # Every change the test made is one CDC record. Debezium delivers at least once:
    # should Connect restart meanwhile (other tests share the stack), its repeats are
    # dropped as duplicates; nothing else is skipped.
    assert set(skips) <= {"duplicate"}, skips
    assert o.cdc_records == len(o.written) + skips.get("duplicate", 0)
    assert mapped + dead_lettered == len(o.written)
    assert dead_lettered == len(o.expected_dead) == len(o.dead)
    assert mapped == sum(len(v) for v in o.expected_events.values())
    # The writer wrote before, between and after the ALTERs.
    rounds = ROUNDS_BEFORE + len(DDL) * ROUNDS_BETWEEN + ROUNDS_AFTER
    assert len(o.written) >= rounds * len(TABLES) + 1
    # Each expected dead letter is there, once; nothing else is.
    assert sorted(dead_letters(o)) == sorted(o.expected_dead)


def test_the_unaltered_table_goes_on(outcome: Outcome) -> None:
    got = event_tuples(outcome.events["SteadyRecorded"], ("id", "label"))
    assert got == sorted(outcome.expected_events["SteadyRecorded"])
    assert len(got) == len(written_rows(outcome, "ddl.steady"))


def test_add_column_nullable_and_with_default(outcome: Outcome) -> None:
    got = event_tuples(outcome.events["AddedRecorded"], ("id", "label", "note", "tier"))
    expected = sorted(outcome.expected_events["AddedRecorded"])
    assert got == expected
    # The run saw all three shapes of the table, and the old row updated after the ADDs.
    shapes = {(w.row.get("note") is not None, "tier" in w.row) for w in outcome.written}
    assert {(False, False), (True, False), (True, True)} <= shapes
    assert (1, "updated", None, 7) in got


def test_dropped_column_dead_letters_naming_it(outcome: Outcome) -> None:
    _check_vanished(outcome, "ddl.dropped", "extra", ("id", "label", "extra"))


def test_renamed_column_dead_letters_naming_it(outcome: Outcome) -> None:
    _check_vanished(outcome, "ddl.renamed", "code", ("id", "label", "code"))


def _check_vanished(o: Outcome, table: str, column: str, fields: tuple[str, ...]) -> None:
    name = EVENT_OF[table].__name__
    rows = written_rows(o, table)
    before = [w for w in rows if column in w.row]
    after = [w for w in rows if column not in w.row]
    assert before and after, "the DDL must land between rows of the table"
    assert event_tuples(o.events[name], fields) == sorted(o.expected_events[name])
    assert len(o.events[name]) == len(before)
    dead = dead_letters(o)
    for w in after:
        h = dead[(table, w.row["id"])]
        assert (h["stage"], h["error.class"]) == ("map", "MappingError")
        assert f"no column {column!r} in the after image" in h["error.message"], h
        assert f"{table} op 'c'" in h["error.message"], h
        assert (h["table"], h["column"]) == (table, column)
        assert "cdcflow schemas check --source" in h["error.hint"], h


def test_int_to_bigint_and_numeric_scale_keep_exact_values(outcome: Outcome) -> None:
    got = event_tuples(outcome.events["WidenedRecorded"], ("id", "counter", "amount"))
    assert got == sorted(outcome.expected_events["WidenedRecorded"])
    rows = [w.row for w in written_rows(outcome, "ddl.widened")]
    assert any(r["counter"] < 2**31 for r in rows) and any(r["counter"] > 2**31 for r in rows)
    # PostgreSQL kept two decimals, then four, then each value's own: all arrive whole.
    assert {-r["amount"].as_tuple().exponent for r in rows} == {1, 2, 4}
    for record in outcome.events["WidenedRecorded"]:
        assert isinstance(record.value["amount"], Decimal)


def test_numeric_scale_beyond_the_event_is_dead_lettered_not_rounded(outcome: Outcome) -> None:
    o = outcome
    got = event_tuples(o.events["PricedRecorded"], ("id", "price"))
    assert got == sorted(o.expected_events["PricedRecorded"])
    rows = [w.row for w in written_rows(o, "ddl.priced")]
    too_fine = [r for r in rows if r["price"] != r["price"].quantize(Decimal("0.01"))]
    assert too_fine, "rows with four decimals must have been written after the change"
    dead = dead_letters(o)
    for r in too_fine:
        h = dead[("ddl.priced", r["id"])]
        assert h["stage"] == "map", h
        assert "price" in h["error.message"] and "decimal places" in h["error.message"], h


def test_schemas_check_source_reports_the_drift(outcome: Outcome) -> None:
    before, after = outcome.check_before, outcome.check_after
    assert before.returncode == 0, before.stdout + before.stderr
    assert check_report(before)["problems"] == []

    assert after.returncode == 1, after.stdout + after.stderr
    problems = {(p["rule"], p["path"]) for p in check_report(after)["problems"]}
    assert problems == {
        ("source-column-missing", "ddl.dropped.extra"),
        ("source-column-missing", "ddl.renamed.code"),
        ("source-column-type-changed", "ddl.priced.price"),
        # Unbounded: a value may have more decimals than the Decimal(12,4) field holds.
        ("source-column-type-changed", "ddl.widened.amount"),
    }
    counts = Counter(p["severity"] for p in check_report(after)["problems"])
    assert counts == {"error": 4}
