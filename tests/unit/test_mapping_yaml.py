"""Declarative YAML rules: compiled into the same rules, checked when loaded."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.events import DomainEvent
from pipeline.mapping import Mapped, Rules, map_change
from pipeline.mapping.yaml_rules import compile_rules
from tests.unit.changes import make_change


class StatusMoved(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "thing_id"
    thing_id: int
    old_status: str
    new_status: str
    note: str | None = None
    source_kind: str = "row"


EVENTS = types.ModuleType("yaml_test_events")
EVENTS.StatusMoved = StatusMoved  # type: ignore[attr-defined]
EVENTS.NotAnEvent = object  # type: ignore[attr-defined]

GOOD = """
known: [public.quiet]
ignore: public.noise
rules:
  - name: moved
    table: public.things
    ops: u
    when:
      - changed: status
      - changed_from: {status: draft}
      - equals: {kind: widget}
    event: StatusMoved
    fields:
      thing_id: key.id
      old_status: old.status
      new_status: new.status
      note: {const: moved by yaml}
  - table: public.things
    ops: [create]
    when: {changed_to: {status: live}}
    event: StatusMoved
    fields:
      thing_id: new.id
      old_status: {const: none}
      new_status: new.status
"""

ROW = {"id": 3, "status": "draft", "kind": "widget"}


def compiled(text: str, events: types.ModuleType | None = EVENTS) -> Rules:
    rules = Rules("yaml")
    compile_rules(rules, yaml.safe_load(textwrap.dedent(text)), origin="rules.yaml", events=events)
    return rules


def test_rules_compile_and_map() -> None:
    rules = compiled(GOOD)
    assert [r.name for r in rules] == ["moved", "StatusMoved"]
    assert rules.is_known("public.quiet") and rules.is_ignored("public.noise")

    change = make_change("u", "public.things", before=ROW, after={**ROW, "status": "live"})
    result = map_change(rules, change)
    assert isinstance(result, Mapped)
    (event,) = result.events
    assert isinstance(event, StatusMoved)
    assert (event.thing_id, event.old_status, event.new_status, event.note) == (
        3,
        "draft",
        "live",
        "moved by yaml",
    )
    assert event.metadata is not None and event.metadata.aggregate_id == "3"


def test_conditions_are_all_required() -> None:
    rules = compiled(GOOD)
    gadget = make_change(
        "u",
        "public.things",
        before={**ROW, "kind": "gadget"},
        after={**ROW, "kind": "gadget", "status": "live"},
    )
    assert not isinstance(map_change(rules, gadget), Mapped)
    created = make_change("c", "public.things", after={**ROW, "status": "live"})
    result = map_change(rules, created)
    assert isinstance(result, Mapped) and result.events[0].old_status == "none"  # type: ignore[attr-defined]


def test_committed_at_expression() -> None:
    class Stamped(DomainEvent):
        __aggregate__: ClassVar[str] = "thing"
        __aggregate_id__: ClassVar[str] = "thing_id"
        thing_id: int
        at: object

    module = types.ModuleType("m")
    module.Stamped = Stamped  # type: ignore[attr-defined]
    rules = compiled(
        one_rule(
            "table: public.t, ops: c, event: Stamped, fields: {thing_id: new.id, at: committed_at}"
        ),
        module,
    )
    change = make_change("c", "public.t", after={"id": 1})
    result = map_change(rules, change)
    assert isinstance(result, Mapped) and result.events[0].at == change.committed_at  # type: ignore[attr-defined]


def test_events_module_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml_test_events", EVENTS)
    path = tmp_path / "rules.yaml"
    path.write_text("events: yaml_test_events\n" + textwrap.dedent(GOOD))
    rules = Rules("file")
    rules.load_yaml(path)
    assert len(rules) == 2


FIELDS = "fields: {thing_id: new.id, old_status: new.a, new_status: new.b}"


def one_rule(body: str) -> str:
    return "rules: [{" + body + "}]"


INVALID = [
    ("[1, 2]", "mapping at the top level"),
    ("rulez: []", "unknown key(s) rulez"),
    ("rules: {a: 1}", "must be a list"),
    (one_rule("table: public.t, ops: c, event: StatusMoved"), "missing 'fields'"),
    (one_rule("table: public.t, ops: c, event: Nope, " + FIELDS), "no domain event 'Nope'"),
    (
        one_rule("table: public.t, ops: c, event: NotAnEvent, " + FIELDS),
        "no domain event 'NotAnEvent'",
    ),
    (one_rule("table: public.t, ops: x, event: StatusMoved, " + FIELDS), "unknown operation"),
    (one_rule("table: t, ops: c, event: StatusMoved, " + FIELDS), "schema.table"),
    (
        one_rule(
            "table: public.t, ops: c, event: StatusMoved, fields: {thing_id: new.id, bogus: new.x}"
        ),
        "no field(s) bogus",
    ),
    (
        one_rule("table: public.t, ops: c, event: StatusMoved, fields: {thing_id: new.id}"),
        "needs field(s) new_status, old_status",
    ),
    (
        one_rule("table: public.t, ops: c, event: StatusMoved, " + FIELDS.replace("new.id", "id")),
        "expected new.<col>",
    ),
    (
        one_rule("table: public.t, ops: c, event: StatusMoved, when: [{sometimes: x}], " + FIELDS),
        "expected {changed: col}",
    ),
    (
        one_rule("table: public.t, ops: c, event: StatusMoved, frobnicate: 1, " + FIELDS),
        "unknown key(s) frobnicate",
    ),
    ("known: [1]", "expected a name or a list"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_documents_fail_at_load(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        compiled(text)
    assert message in str(info.value)
    assert "rules.yaml" in str(info.value)


def test_rule_errors_name_the_rule() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\] \(named\)"):
        compiled(one_rule("name: named, table: public.t, ops: z, event: StatusMoved, " + FIELDS))


def test_events_module_is_required() -> None:
    with pytest.raises(ConfigError, match="event types"):
        compiled("rules: []", events=None)
    with pytest.raises(ConfigError, match="cannot import"):
        compiled("events: no.such.module\nrules: []", events=None)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Rules("x").load_yaml(tmp_path / "missing.yaml", events=EVENTS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Rules("x").load_yaml(bad, events=EVENTS)
