"""The semantic diff: create / update field by field / delete / unchanged, masked."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.connect import MASK, Action, ConnectorSpec, compute_plan
from pipeline.connect.secrets import (
    Redactor,
    has_placeholder,
    is_secret_key,
    placeholders,
    plain_secrets,
    resolve_locally,
)

SECRET = "s3cr3t-Value-991"


def spec(name: str, **config: str) -> ConnectorSpec:
    return ConnectorSpec(name, {"connector.class": "C", **config}, Path(f"{name}.yaml"))


def test_create_update_delete_unchanged() -> None:
    desired = [
        spec("new", a="1"),
        spec("same", a="1", b="2"),
        spec("changed", a="1", b="2", added="x"),
    ]
    deployed = {
        # the server adds name; key order differs
        "same": {"b": "2", "name": "same", "a": "1", "connector.class": "C"},
        "changed": {"connector.class": "C", "name": "changed", "a": "1", "b": "3", "gone": "y"},
        "orphan": {"connector.class": "C", "name": "orphan"},
    }
    plan = compute_plan(desired, deployed)
    actions = {c.name: c.action for c in plan.changes}
    assert actions == {
        "new": Action.CREATE,
        "same": Action.UNCHANGED,
        "changed": Action.UPDATE,
        "orphan": Action.UNDECLARED,
    }
    changed = next(c for c in plan.changes if c.name == "changed")
    assert [(f.key, f.kind, f.before, f.after) for f in changed.fields] == [
        ("added", "add", None, "x"),
        ("b", "change", "3", "2"),
        ("gone", "remove", "y", None),
    ]
    # without --prune an undeclared connector is reported, not a pending change
    assert [c.name for c in plan.pending] == ["changed", "new"]

    pruning = compute_plan(desired, deployed, prune=True)
    assert next(c for c in pruning.changes if c.name == "orphan").action is Action.DELETE
    assert pruning.summary()["delete"] == 1


def test_nothing_pending_when_only_server_keys_differ() -> None:
    plan = compute_plan([spec("a", x="1")], {"a": {"connector.class": "C", "x": "1", "name": "a"}})
    assert not plan.has_changes
    assert plan.to_dict()["changes_pending"] is False


def test_only_selected_names_and_never_deletes() -> None:
    deployed = {
        "a": {"connector.class": "C"},
        "b": {"connector.class": "C"},
        "z": {"connector.class": "C"},
    }
    plan = compute_plan([spec("a"), spec("b", k="v")], deployed, prune=True, only=["b"])
    assert [(c.name, c.action) for c in plan.changes] == [("b", Action.UPDATE)]


def test_secrets_and_placeholders_are_masked_but_changes_still_seen() -> None:
    desired = [
        spec(
            "db",
            **{
                "database.password": SECRET,
                "database.user": "${file:/s.properties:user}",
                "x": "1",
            },
        )
    ]
    deployed = {"db": {"connector.class": "C", "database.password": "old-Secret-77", "x": "1"}}
    plan = compute_plan(desired, deployed)
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    fields = {f.key: f for f in change.fields}
    assert fields["database.password"].shown() == (MASK, MASK)
    assert fields["database.password"].note() == "secret"
    assert fields["database.user"].shown() == (None, MASK)
    assert fields["database.user"].note() == "placeholder"
    text = json.dumps(plan.to_dict())
    assert SECRET not in text and "old-Secret-77" not in text and "s.properties" not in text
    created = compute_plan(desired, {})
    assert SECRET not in json.dumps(created.to_dict())


def test_placeholder_syntax() -> None:
    assert placeholders("${env:A}") == [("env", None, "A")]
    assert placeholders("x ${file:/etc/s.properties:pw} y") == [("file", "/etc/s.properties", "pw")]
    assert (
        has_placeholder("jdbc:${env:URL}")
        and not has_placeholder("plain")
        and not has_placeholder(None)
    )


def test_secret_keys() -> None:
    for key in (
        "database.password",
        "sasl.jaas.config",
        "basic.auth.user.info",
        "ssl.key.password",
        "api.key",
    ):
        assert is_secret_key(key), key
    for key in (
        "database.user",
        "database.hostname",
        "slot.name",
        "key.converter",
        "message.key.columns",
    ):
        assert not is_secret_key(key), key
    assert plain_secrets({"database.password": "x", "a.secret": "${env:S}", "user": "u"}) == [
        "database.password"
    ]


def test_resolve_locally(tmp_path: Path) -> None:
    props = tmp_path / "s.properties"
    props.write_text("# comment\nuser = dbz\npassword=p=w:1\n")
    env = {"HOST": "db"}
    assert resolve_locally("${env:HOST}:5432", env) == "db:5432"
    assert resolve_locally("${env:MISSING}", env) is None
    assert resolve_locally(f"${{file:{props}:password}}", env) == "p=w:1"
    assert resolve_locally(f"${{file:{props}:nokey}}", env) is None
    assert resolve_locally("${file:/no/such/file:k}", env) is None
    assert resolve_locally("${vault:secret/x:k}", env) is None


def test_redactor_scrubs_literal_and_resolved_secrets() -> None:
    configs = [
        {"database.password": SECRET, "database.user": "debezium"},
        {"database.password": "${env:PW}", "database.user": "${env:USER}"},
    ]
    redactor = Redactor.for_configs(configs, {"PW": "resolved-Pw-123", "USER": "debezium"})
    text = redactor.scrub(f"login {SECRET} failed; also resolved-Pw-123 for io.debezium.connector")
    assert SECRET not in text and "resolved-Pw-123" not in text
    assert "io.debezium.connector" in text  # a user name placeholder is not treated as secret


def test_prune_prefix_limits_what_prune_deletes() -> None:
    from pipeline.connect.plan import Action, compute_plan

    deployed = {"team-a-orders": {"connector.class": "x"}, "team-b-users": {"connector.class": "y"}}
    plan = compute_plan([], deployed, prune=True, prune_prefix="team-a-")
    actions = {c.name: c.action for c in plan.changes}
    assert actions == {"team-a-orders": Action.DELETE, "team-b-users": Action.UNDECLARED}
    unscoped = compute_plan([], deployed, prune=True)
    assert {c.action for c in unscoped.changes} == {Action.DELETE}
