"""Declarative YAML rules: compiled into the same rules, checked when loaded."""

from __future__ import annotations

import sys
import textwrap
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.events import DomainEvent
from pipeline.mapping import Mapped, Rules, map_change
from pipeline.mapping.describe import describe_domain
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
T_OLD = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
T_NEW = datetime(2024, 6, 2, 8, 0, tzinfo=UTC)


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


class Stamped(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "thing_id"
    thing_id: int
    at: datetime
    by: str | None = None


STAMPED = types.ModuleType("stamped_events")
STAMPED.Stamped = Stamped  # type: ignore[attr-defined]
FIRST_OF = """
rules:
  - name: stamped
    table: public.t
    ops: cu
    event: Stamped
    fields:
      thing_id: {first_of: [new.id, key.id]}
      at: {first_of: [new.done_at, old.done_at, committed_at]}
      by: {first_of: [new.editor, old.editor]}
"""


@pytest.mark.parametrize(
    ("before", "after", "at", "by"),
    [
        (
            {"done_at": T_OLD, "editor": "bo"},
            {"id": 1, "done_at": T_NEW, "editor": "al"},
            T_NEW,
            "al",
        ),
        (
            {"done_at": T_OLD, "editor": "bo"},
            {"id": 1, "done_at": None, "editor": None},
            T_OLD,
            "bo",
        ),
        ({"done_at": None, "editor": None}, {"id": 1, "done_at": None, "editor": None}, None, None),
        (None, {"id": 1}, None, None),  # columns the images lack count as NULL
    ],
)
def test_first_of_takes_the_first_value_that_is_not_null(
    before: dict[str, Any] | None, after: dict[str, Any], at: datetime | None, by: str | None
) -> None:
    rules = compiled(FIRST_OF, STAMPED)
    change = make_change("u" if before else "c", "public.t", before=before, after=after)
    result = map_change(rules, change)
    assert isinstance(result, Mapped)
    (event,) = result.events
    assert event.model_dump(exclude={"metadata"}) == {
        "thing_id": 1,
        "at": at or change.committed_at,
        "by": by,
    }


def test_first_of_falls_back_to_the_key() -> None:
    rules = compiled(FIRST_OF, STAMPED)
    result = map_change(
        rules, make_change("c", "public.t", after={"done_at": T_NEW}, key={"id": 5})
    )
    assert isinstance(result, Mapped) and result.events[0].thing_id == 5  # type: ignore[attr-defined]


def test_first_of_columns_are_read_filled_and_null_covered() -> None:
    rules = compiled(FIRST_OF, STAMPED)
    (rule,) = rules
    assert rule.reads == {"id", "done_at", "editor"}
    assert rule.old_reads == {"done_at", "editor"}
    assert rule.aggregate_id_from == "id"
    assert rule.fills == (("thing_id", "id"), ("at", "done_at"), ("by", "editor"))
    # A NULL done_at falls through to committed_at; a NULL id or editor can reach the field
    # (key.id and old.editor are taken as they are).
    assert rule.null_covered == {("at", "done_at")}
    # domain describe: what it reads, and the old columns an update needs in the before image
    (info,) = describe_domain(rules, [Stamped]).tables["public.t"].rules
    assert (info.reads, info.reads_complete) == ({"id", "done_at", "editor"}, True)
    assert info.before_columns == {"done_at", "editor"}
    assert info.aggregate_ids == {"thing": "id"}


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
    *(
        (
            one_rule(
                f"table: public.t, ops: c, event: StatusMoved, {FIELDS.replace('new.b', expr)}"
            ),
            message,
        )
        for expr, message in [
            ("{first_of: new.b}", "first_of lists two or more expressions"),
            ("{first_of: [new.b]}", "field new_status: first_of lists two or more"),
            ("{first_of: [new.b, b]}", "field new_status first_of[1]: expected new.<col>"),
            ("{first_of: [new.b, {first_of: [new.c, new.d]}]}", "first_of[1]: expected new.<col>"),
        ]
    ),
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
