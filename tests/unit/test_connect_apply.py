"""apply / validate / wait against a fake worker; preflight's pure decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.connect import (
    ConnectorFailed,
    ConnectorNotReady,
    ConnectorSpec,
    apply,
    wait_for_state,
)
from pipeline.connect.checks import Level
from pipeline.connect.heartbeat import heartbeat_checks
from pipeline.connect.preflight import _Run
from pipeline.connect.validate import field_errors
from pipeline.errors import ValidationFailed
from pipeline.settings import SourceSettings
from tests.unit.connect_fakes import FAKE_CLASS, FakeConnect

SOURCE = SourceSettings(password="unused")  # type: ignore[arg-type]


def spec(name: str, **config: str) -> ConnectorSpec:
    return ConnectorSpec(
        name,
        {"connector.class": FAKE_CLASS, **config},
        Path(f"{name}.yaml"),
        origin={"a": f"{name}.yaml:4"},
    )


def test_apply_creates_then_is_idempotent() -> None:
    fake = FakeConnect()
    result = apply(
        fake.client(), [spec("one", a="1")], source=SOURCE, wait=True, timeout_s=5, settle_s=0
    )
    assert result.applied == ["one"]
    assert fake.configs["one"] == {"connector.class": FAKE_CLASS, "a": "1", "name": "one"}
    assert sorted(result.running) == ["one"]

    fake.requests.clear()
    again = apply(fake.client(), [spec("one", a="1")], source=SOURCE)
    assert again.applied == [] and not again.plan.has_changes
    assert fake.puts() == []
    assert all(method == "GET" for method, _ in fake.requests)


def test_apply_updates_only_what_changed_and_prunes_only_when_asked() -> None:
    fake = FakeConnect()
    fake.configs = {
        "one": {"connector.class": FAKE_CLASS, "a": "1", "name": "one"},
        "two": {"connector.class": FAKE_CLASS, "name": "two"},
        "old": {"connector.class": FAKE_CLASS, "name": "old"},
    }
    result = apply(fake.client(), [spec("one", a="2"), spec("two")], source=SOURCE)
    assert result.applied == ["one"] and result.deleted == []
    assert fake.puts() == ["/connectors/one/config"]
    assert "old" in fake.configs
    pruned = apply(fake.client(), [spec("one", a="2"), spec("two")], source=SOURCE, prune=True)
    assert pruned.deleted == ["old"] and "old" not in fake.configs


def test_invalid_config_changes_nothing() -> None:
    fake = FakeConnect()
    fake.configs = {"one": {"connector.class": FAKE_CLASS, "a": "1", "name": "one"}}
    fake.invalid = {"a": "Invalid value x for configuration a: must be a number"}
    with pytest.raises(ValidationFailed) as err:
        apply(fake.client(), [spec("one", a="x"), spec("new")], source=SOURCE)
    # every invalid connector is reported, each field with the file and line it is declared at
    assert err.value.errors == {
        "new: a": ["Invalid value x for configuration a: must be a number [new.yaml:4]"],
        "one: a": ["Invalid value x for configuration a: must be a number [one.yaml:4]"],
    }
    assert fake.puts() == []
    assert fake.configs == {"one": {"connector.class": FAKE_CLASS, "a": "1", "name": "one"}}


def test_unknown_connector_class_is_a_field_error_without_validate_call() -> None:
    fake = FakeConnect()
    bad = ConnectorSpec("x", {"connector.class": "org.example.Nope"}, Path("x.yaml"))
    with pytest.raises(ValidationFailed) as err:
        apply(fake.client(), [bad], source=SOURCE)
    assert "connector.class" in err.value.errors
    assert "not installed" in err.value.errors["connector.class"][0]
    assert not any(path.endswith("/validate") for _, path in fake.requests)


def test_wait_fails_with_the_task_trace() -> None:
    fake = FakeConnect()
    fake.task_states["one"] = ["FAILED"]
    fake.traces["one"] = (
        "org.example.Boom: the database said no\n\tat org.example.Task.poll(Task.java:1)"
    )
    with pytest.raises(ConnectorFailed) as err:
        apply(fake.client(), [spec("one")], source=SOURCE, wait=True, timeout_s=5)
    assert "task 0 FAILED" in str(err.value) and "the database said no" in str(err.value)
    assert err.value.trace.startswith("org.example.Boom")


def test_wait_times_out_naming_the_states() -> None:
    fake = FakeConnect()
    fake.configs["one"] = {"connector.class": FAKE_CLASS}
    fake.task_states["one"] = ["UNASSIGNED"]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ConnectorNotReady, match=r"one: connector RUNNING, tasks \[UNASSIGNED\]"):
        wait_for_state(fake.client(), ["one"], timeout_s=3, clock=lambda: now[0], sleep=sleep)


def test_wait_settles_before_returning() -> None:
    fake = FakeConnect()
    fake.configs["one"] = {"connector.class": FAKE_CLASS}
    now = [0.0]
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(now[0])
        now[0] += seconds

    wait_for_state(fake.client(), ["one"], settle_s=3, clock=lambda: now[0], sleep=sleep)
    assert now[0] >= 3


def test_paused_connectors_are_not_waited_for() -> None:
    fake = FakeConnect()
    fake.configs["one"] = {"connector.class": FAKE_CLASS, "name": "one"}
    fake.states["one"] = "PAUSED"
    fake.task_states["one"] = ["PAUSED"]
    result = apply(fake.client(), [spec("one")], source=SOURCE, wait=True, timeout_s=1)
    assert result.not_waited == {"one": "PAUSED"}


def test_field_errors_reads_connects_config_infos() -> None:
    infos: dict[str, Any] = {
        "name": "C",
        "error_count": 2,
        "groups": ["Common"],
        "configs": [
            {
                "definition": {"name": "a"},
                "value": {"name": "a", "value": "1", "errors": [], "visible": True},
            },
            {
                "definition": {"name": "b"},
                "value": {"name": "b", "value": "x", "errors": ["bad b", "worse b"]},
            },
            {"definition": {"name": "c"}, "value": {"name": "c", "errors": None}},
        ],
    }
    assert field_errors(infos) == {"b": ["bad b", "worse b"]}


# --------------------------------------------------------------------------- CLI exit codes


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeConnect, Path]:
    fake = FakeConnect()
    monkeypatch.setattr("pipeline.cli.connectors._common.client", lambda ctx: fake.client())
    (tmp_path / "one.yaml").write_text(
        f"name: one\nconfig:\n  connector.class: {FAKE_CLASS}\n  a: 1\n"
    )
    return fake, tmp_path


def test_cli_plan_exit_codes_and_json(fake_cli: tuple[FakeConnect, Path]) -> None:
    fake, directory = fake_cli
    runner = CliRunner()
    pending = runner.invoke(cli, ["connectors", "plan", "--dir", str(directory)])
    assert pending.exit_code == 2, pending.output
    assert "+ a = 1" in pending.output
    applied = runner.invoke(cli, ["-o", "json", "connectors", "apply", "--dir", str(directory)])
    assert applied.exit_code == 0, applied.output
    assert fake.puts() == ["/connectors/one/config"]
    clean = runner.invoke(cli, ["-o", "json", "connectors", "plan", "--dir", str(directory)])
    assert clean.exit_code == 0, clean.output
    assert '"changes_pending": false' in clean.output


def test_cli_validate_exits_1_with_field_messages(fake_cli: tuple[FakeConnect, Path]) -> None:
    fake, directory = fake_cli
    fake.invalid = {"a": "must be a number"}
    result = CliRunner().invoke(cli, ["connectors", "validate", "--dir", str(directory)])
    assert result.exit_code == 1
    assert "a: must be a number" in result.output
    assert f"{directory / 'one.yaml'}:4" in result.output


# --------------------------------------------------------------------------- preflight decisions


def run(**config: str) -> _Run:
    return _Run("c", {"database.user": "dbz", **config}, deployed=False, user="dbz")


ROW = {"identity": "d", "has_pk": True, "toastable": [], "can_insert": True, "can_update": True}


def test_captured_tables_follow_debeziums_lists() -> None:
    tables = ["public.a", "public.b", "other.a", "public.audit_log"]
    captured, unmatched = run(
        **{"table.include.list": "public.a,public.audit_.*,public.nope"}
    )._captured(tables)
    assert captured == ["public.a", "public.audit_log"]
    assert unmatched == ["public.nope"]
    captured, _ = run(
        **{"schema.include.list": "public", "table.exclude.list": "public.b"}
    )._captured(tables)
    assert captured == ["public.a", "public.audit_log"]


def test_replica_identity_levels() -> None:
    r = run()
    r._identity("t.full", {**ROW, "identity": "f"})
    r._identity("t.pk", ROW)
    r._identity("t.toast", {**ROW, "toastable": ["body"]})
    r._identity("t.nopk", {**ROW, "has_pk": False})
    r._identity("t.nothing", {**ROW, "identity": "n"})
    levels = {c.name.split()[-1]: c.level for c in r.checks}
    assert levels == {
        "t.full": Level.OK,
        "t.pk": Level.OK,
        "t.toast": Level.WARN,
        "t.nopk": Level.FAIL,
        "t.nothing": Level.FAIL,
    }
    toast = next(c for c in r.checks if c.name.endswith("t.toast"))
    assert "body" in toast.detail and toast.fix == "ALTER TABLE t.toast REPLICA IDENTITY FULL"


@pytest.mark.parametrize(
    ("config", "captured", "level", "words"),
    [
        ({}, [], Level.WARN, "not set"),
        ({"heartbeat.interval.ms": "1000"}, [], Level.WARN, "without heartbeat.action.query"),
        (
            {"heartbeat.interval.ms": "1000", "heartbeat.action.query": "UPDATE hb SET ts = now()"},
            ["public.other"],
            Level.WARN,
            "not captured",
        ),
        (
            {
                "heartbeat.interval.ms": "1000",
                "heartbeat.action.query": "UPDATE nope SET ts = now()",
            },
            ["public.hb"],
            Level.FAIL,
            "does not exist",
        ),
        (
            {
                "heartbeat.interval.ms": "1000",
                "heartbeat.action.query": 'INSERT INTO "public"."ro" VALUES (1)',
            },
            ["public.ro"],
            Level.FAIL,
            "may not write",
        ),
        (
            {
                "heartbeat.interval.ms": "1000",
                "heartbeat.action.query": "insert into public.hb values (1)",
            },
            ["public.hb"],
            Level.OK,
            "captured",
        ),
    ],
)
def test_heartbeat_check(
    config: dict[str, str], captured: list[str], level: Level, words: str
) -> None:
    existing = {"public.hb": ROW, "public.other": ROW, "public.ro": {**ROW, "can_update": False}}
    (check,) = heartbeat_checks(
        {"database.user": "dbz", **config}, "dbz", {t: existing[t] for t in captured}, existing
    )
    assert check.level is level and words in check.detail
    if level is not Level.OK:
        assert check.fix
