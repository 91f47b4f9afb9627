"""The signal channel derived from ``signal.data.collection``, and snapshot progress from notifications."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.connect.domain import check_connector, domain_checks
from pipeline.connect.files import ConnectorSpec, parse_connector_file
from pipeline.connect.signals import DROP_SIGNALS, derive_signals, notification_topic
from pipeline.connect.snapshot import SnapshotRun, _notification, qualified
from pipeline.connect.transforms import simulate
from tests.unit import domain_bank

PG = "io.debezium.connector.postgresql.PostgresConnector"


def _config(**extra: str) -> dict[str, str]:
    return {
        "connector.class": PG,
        "topic.prefix": "lib",
        "table.include.list": "public.books,public.members",
        **extra,
    }


def test_no_signal_table_derives_nothing() -> None:
    assert derive_signals(_config()) == {}
    other = _config(**{"signal.data.collection": "public.s"})
    other["connector.class"] = "io.debezium.connector.mysql.MySqlConnector"
    assert derive_signals(other) == {}


def test_one_line_derives_capture_filter_and_notifications() -> None:
    derived = derive_signals(_config(**{"signal.data.collection": "public.cdcflow_signal"}))
    assert derived["table.include.list"] == r"public.books,public.members,public\.cdcflow_signal"
    assert derived["notification.enabled.channels"] == "sink"
    assert derived["notification.sink.topic.name"] == "__cdcflow-notifications.lib"
    assert derived["transforms"] == DROP_SIGNALS
    assert (
        derived[f"transforms.{DROP_SIGNALS}.type"] == "org.apache.kafka.connect.transforms.Filter"
    )
    pred = derived[f"transforms.{DROP_SIGNALS}.predicate"]
    assert derived["predicates"] == pred
    pattern = derived[f"predicates.{pred}.pattern"]
    assert re.fullmatch(pattern, "lib.public.cdcflow_signal")
    assert not re.fullmatch(pattern, "lib.public.books")


def test_the_filter_goes_first_and_keeps_the_files_own_transforms() -> None:
    config = _config(
        **{
            "signal.data.collection": "public.cdcflow_signal",
            "transforms": "route",
            "predicates": "isBooks",
            "table.include.list": "public\\..*",
            "notification.sink.topic.name": "mine",
        }
    )
    derived = derive_signals(config)
    assert derived["transforms"] == f"{DROP_SIGNALS},route"
    assert derived["predicates"].startswith("isBooks,")
    assert "table.include.list" not in derived  # already captured by the regex
    assert "notification.sink.topic.name" not in derived
    assert notification_topic(config) == "mine"
    # Derived again from the derived config: nothing more to add (idempotent).
    assert set(derive_signals({**config, **derived})) <= {"notification.enabled.channels"}


def test_routing_simulation_passes_the_domain_tables_through_the_filter() -> None:
    config = _config(**{"signal.data.collection": "public.cdcflow_signal"})
    config |= derive_signals(config)
    routes = simulate(config, ["public.books"])
    assert routes["public.books"].topic == "lib.public.books"
    assert routes["public.books"].unknown is None


def test_a_connector_file_needs_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lib.yaml"
    path.write_text(
        "name: lib\nconfig:\n"
        f"  connector.class: {PG}\n"
        "  topic.prefix: lib\n"
        "  table.include.list: public.books\n"
        "  signal.data.collection: public.cdcflow_signal\n"
    )
    spec = parse_connector_file(path)
    assert spec.config["notification.sink.topic.name"] == "__cdcflow-notifications.lib"
    assert spec.config["table.include.list"] == r"public.books,public\.cdcflow_signal"
    assert (
        "table.include.list" in spec.derived
        and "signal.data.collection" in spec.derived["table.include.list"]
    )
    assert spec.where("transforms") == "derived"
    assert spec.where("signal.data.collection") == f"{path}:6"


def _note(kind: str, **data: str) -> dict[str, object]:
    return {
        "id": "abc",
        "aggregate_type": "Incremental Snapshot",
        "type": kind,
        "additional_data": {"connector_name": "lib", **data},
        "timestamp": "1700000000000",
    }


def test_a_snapshot_run_folds_its_notifications() -> None:
    run = SnapshotRun("abc")
    assert run.running and run.state == "SIGNALLED"
    run.apply(_note("STARTED", data_collections="public.books, public.members"))
    assert run.tables == ["public.books", "public.members"]
    run.apply(
        _note(
            "IN_PROGRESS",
            data_collections="public.books, public.members",
            current_collection_in_progress="public.books",
            maximum_key="[3000]",
            last_processed_key="[1024]",
        )
    )
    assert run.describe() == "public.books: reading (key [1024] of [3000])"
    run.apply(
        _note(
            "TABLE_SCAN_COMPLETED",
            data_collection="public.books",
            scanned_collection="public.books",
            total_rows_scanned="3000",
            status="SUCCEEDED",
        )
    )
    assert run.scanned == {"public.books": 3000}
    assert run.describe() == "public.books: 3000 rows read (SUCCEEDED)"
    run.apply(_note("COMPLETED"))
    assert run.done and not run.running
    assert run.to_dict()["rows_scanned"] == {"public.books": 3000}
    assert run.updated_ms == 1700000000000


@pytest.mark.parametrize("wrapped", [True, False])
def test_notifications_are_read_with_or_without_the_schema_envelope(wrapped: bool) -> None:
    note = _note("STARTED")
    raw = json.dumps({"schema": {}, "payload": note} if wrapped else note).encode()
    assert _notification(raw) == note
    assert _notification(b"") is None
    assert _notification(b"not json") is None


def test_a_bare_table_name_is_in_public() -> None:
    assert qualified("books") == "public.books"
    assert qualified("lib.books") == "lib.books"


def test_a_stopped_snapshot_is_aborted_though_debezium_closes_it_as_completed() -> None:
    run = SnapshotRun("abc")
    run.apply(_note("STARTED", data_collections="public.members"))
    run.apply(
        _note(
            "IN_PROGRESS",
            data_collections="public.members",
            current_collection_in_progress="public.members",
            maximum_key="4000",
            last_processed_key="520",
        )
    )
    # What Debezium 3.6 writes after a stop-snapshot: COMPLETED under the
    # snapshot's id (no table scan completed), ABORTED under the stop's id.
    run.apply(_note("COMPLETED"))
    assert run.state == "ABORTED" and run.done
    assert run.unread == ["public.members"]


def test_a_config_copied_from_a_derived_one_keeps_one_signal_predicate() -> None:
    config = _config(**{"signal.data.collection": "public.cdcflow_signal"})
    derived = derive_signals(config)
    # As a test harness copies a derived config: its transforms dropped, its predicates kept.
    copied = {k: v for k, v in (config | derived).items() if not k.startswith("transforms")}
    again = derive_signals(copied)
    assert "predicates" not in again
    assert again["transforms"] == DROP_SIGNALS
    merged = copied | again
    assert (
        merged["predicates"].split(",").count(merged[f"transforms.{DROP_SIGNALS}.predicate"]) == 1
    )


def _unknown_tables(config: dict[str, str]) -> list[str]:
    spec = ConnectorSpec(
        "bank", config, Path("bank.yaml"), domain="tests.unit.domain_bank", routing="derive"
    )
    _, check = check_connector(spec, domain_bank.bank_description(), "test")
    row = {"identity": "f", "key_columns": ["id"], "index_identity_columns": []}
    tables = ("accounts", "account_limits", "loans", "audit", "cdcflow_signal")
    captured = {f"public.{t}": row for t in tables}
    return [
        f.detail for f in domain_checks(check, captured, captured) if "does not know" in f.detail
    ]


def test_the_filtered_signal_table_is_no_table_the_domain_does_not_know() -> None:
    config = {
        "connector.class": PG,
        "topic.prefix": "bank",
        "table.include.list": "public.accounts,public.account_limits,public.loans,public.audit",
        "signal.data.collection": "public.cdcflow_signal",
    }
    assert _unknown_tables(config | derive_signals(config)) == []
    # Captured without the derived Filter, its records would reach the transformer.
    unfiltered = config | {
        "table.include.list": config["table.include.list"] + ",public.cdcflow_signal"
    }
    (detail,) = _unknown_tables(unfiltered)
    assert "public.cdcflow_signal" in detail
