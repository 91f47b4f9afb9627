"""The registry and the runtime: matching, skips, unknown tables, stamping, error wrapping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from pipeline.cdc import Change, SkipReason
from pipeline.errors import MappingError
from pipeline.events import DomainEvent, SourcePosition, derive_event_id
from pipeline.mapping import Mapped, Rules, UnknownTable, changed, map_change, parse_ops, row_key
from tests.unit.changes import make_change


class Thing(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "thing_id"
    __namespace__: ClassVar[str] = "test.events"
    __version__: ClassVar[int] = 3
    thing_id: int
    label: str = ""


class Other(DomainEvent):
    __aggregate__: ClassVar[str] = "thing"
    __aggregate_id__: ClassVar[str] = "thing_id"
    thing_id: int


class NoAggregate(DomainEvent):
    thing_id: int


ROW = {"id": 5, "label": "a"}


def registry() -> Rules:
    rules = Rules("test")

    @rules.on("public.t", ops="cr", reads=("id", "label"))
    def created(change: Change) -> Thing:
        return Thing(thing_id=change.new("id"), label=change.new("label"))

    @rules.on("public.t", ops="u", when=changed("label"))
    def relabelled(change: Change) -> list[DomainEvent]:
        return [Thing(thing_id=change.new("id"), label="x"), Other(thing_id=change.new("id")),
                Thing(thing_id=change.new("id"), label="y")]  # fmt: skip

    @rules.on("public.t", ops="d")
    def deleted(change: Change) -> None:
        return None

    rules.known("public.quiet")
    rules.ignore("public.noise")
    return rules


def mapped(rules: Rules, change: Change) -> tuple[DomainEvent, ...]:
    result = map_change(rules, change)
    assert isinstance(result, Mapped), result
    return result.events


# -- registry


def test_parse_ops() -> None:
    assert parse_ops("cr") == {"c", "r"}
    assert parse_ops("c, u") == {"c", "u"}
    assert parse_ops(["create", "snapshot"]) == {"c", "r"}
    assert parse_ops("update") == {"u"}
    with pytest.raises(ValueError):
        parse_ops("x")
    with pytest.raises(ValueError):
        parse_ops("")


def test_registry_declarations() -> None:
    rules = registry()
    assert len(rules) == 3
    assert rules.tables == {"public.t", "public.quiet", "public.noise"}
    assert rules.is_known("public.quiet") and rules.is_ignored("public.noise")
    assert [r.name for r in rules.for_table("public.t")] == ["created", "relabelled", "deleted"]
    assert rules.describe()[1]["when"] == "changed(label)"
    assert "test_mapping_runtime" in rules.describe()[0]["origin"]
    assert next(iter(rules)).reads == {"id", "label"}


def test_registry_refuses_nonsense() -> None:
    rules = registry()
    with pytest.raises(ValueError, match=r"schema\.table"):
        rules.on("t", ops="c")
    with pytest.raises(ValueError, match="has rules"):
        rules.ignore("public.t")
    with pytest.raises(ValueError, match="ignored"):
        rules.on("public.noise", ops="c")(lambda c: None)


# -- runtime


def test_one_event_stamped() -> None:
    change = make_change("c", "public.t", after=ROW, lsn=2000, tx_id=77, ts_ms=1718000000123)
    (event,) = mapped(registry(), change)
    assert isinstance(event, Thing) and event.label == "a"
    meta = event.metadata
    assert meta is not None
    assert meta.event_type == "Thing"
    assert meta.aggregate_type == "thing" and meta.aggregate_id == "5"
    assert meta.occurred_at == datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC)
    assert meta.correlation_id == "77"
    assert meta.schema_version == 3
    assert meta.source == change.source
    assert meta.event_id == derive_event_id(change.source, '{"id":5}', "Thing", 0)


def test_several_events_indexed_per_type() -> None:
    change = make_change("u", "public.t", before=ROW, after={**ROW, "label": "b"})
    events = mapped(registry(), change)
    assert [type(e).__name__ for e in events] == ["Thing", "Other", "Thing"]
    ids = [e.metadata.event_id for e in events if e.metadata]
    assert len(set(ids)) == 3
    assert ids[0] == derive_event_id(change.source, '{"id":5}', "Thing", 0)
    assert ids[1] == derive_event_id(change.source, '{"id":5}', "Other", 0)
    assert ids[2] == derive_event_id(change.source, '{"id":5}', "Thing", 1)


def test_same_change_twice_gives_the_same_ids() -> None:
    first = mapped(
        registry(), make_change("u", "public.t", before=ROW, after={**ROW, "label": "b"})
    )
    again = mapped(
        registry(), make_change("u", "public.t", before=ROW, after={**ROW, "label": "b"})
    )
    assert [e.metadata for e in first] == [e.metadata for e in again]


def test_ids_differ_by_position_and_row() -> None:
    a = mapped(registry(), make_change("c", "public.t", after=ROW, lsn=1))[0]
    b = mapped(registry(), make_change("c", "public.t", after=ROW, lsn=2))[0]
    c = mapped(registry(), make_change("c", "public.t", after={**ROW, "id": 6}, lsn=1))[0]
    assert len({e.metadata.event_id for e in (a, b, c) if e.metadata}) == 3


def test_snapshot_rows_sharing_a_position_get_distinct_ids() -> None:
    rows = [
        make_change("r", "public.t", after={**ROW, "id": i}, lsn=5, tx_id=None, snapshot=True)
        for i in (1, 2)
    ]
    ids = {mapped(registry(), c)[0].metadata.event_id for c in rows}  # type: ignore[union-attr]
    assert len(ids) == 2


def test_no_transaction_id_means_no_correlation_id() -> None:
    (event,) = mapped(registry(), make_change("c", "public.t", after=ROW, tx_id=None))
    assert event.metadata is not None and event.metadata.correlation_id is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (make_change("u", "public.t", before=ROW, after=ROW), SkipReason.NO_MATCHING_RULE),
        (make_change("d", "public.t", before=ROW), SkipReason.NO_EVENTS),
        (make_change("t", "public.t"), SkipReason.TRUNCATE),
        (make_change("c", "public.quiet", after=ROW), SkipReason.NO_MATCHING_RULE),
        (make_change("c", "public.noise", after=ROW), SkipReason.IGNORED_TABLE),
        (make_change("t", "public.noise"), SkipReason.IGNORED_TABLE),
    ],
    ids=[
        "no-rule-matches",
        "rule-returned-nothing",
        "truncate",
        "known-table",
        "ignored",
        "ignored-truncate",
    ],
)
def test_skips(change: Change, reason: SkipReason) -> None:
    result = map_change(registry(), change)
    assert not isinstance(result, Mapped)
    assert result.reason is reason
    assert result.record is change.record


def test_a_truncate_rule_can_handle_truncates() -> None:
    rules = registry()
    rules.on("public.t", ops="t")(lambda change: Thing(thing_id=0, label="truncated"))
    (event,) = mapped(rules, make_change("t", "public.t", key={}))
    assert isinstance(event, Thing) and event.label == "truncated"


def test_unknown_table_is_a_mapping_error() -> None:
    with pytest.raises(UnknownTable) as info:
        map_change(registry(), make_change("c", "public.new_table", after=ROW))
    err = info.value
    assert isinstance(err, MappingError) and err.stage == "map"
    assert "public.new_table" in str(err) and err.hint and "rules.ignore" in err.hint
    assert (err.topic, err.offset, err.key) == ("shop.public.new_table", 42, b'{"id": 1}')


# -- errors inside rules


def failing(body: Callable[[Change], Any]) -> Rules:
    rules = Rules("test")
    rules.on("public.t", ops="c", name="bad")(body)
    return rules


def test_exception_in_a_rule_is_wrapped() -> None:
    def boom(change: Change) -> Thing:
        raise ZeroDivisionError("oops")

    with pytest.raises(MappingError) as info:
        map_change(failing(boom), make_change("c", "public.t", after=ROW))
    err = info.value
    assert "bad" in str(err) and "ZeroDivisionError: oops" in str(err)
    assert isinstance(err.__cause__, ZeroDivisionError)
    assert err.topic == "shop.public.t" and err.value == b"{...}"


def test_validation_error_in_a_rule_is_wrapped() -> None:
    with pytest.raises(MappingError, match="ValidationError"):
        map_change(
            failing(lambda c: Thing(thing_id="not a number")),  # type: ignore[arg-type]
            make_change("c", "public.t", after=ROW),
        )


def test_generator_rule_errors_are_wrapped() -> None:
    def gen(change: Change):  # type: ignore[no-untyped-def]
        yield Thing(thing_id=1)
        raise RuntimeError("half way")

    with pytest.raises(MappingError, match="half way"):
        map_change(failing(gen), make_change("c", "public.t", after=ROW))


def test_missing_column_in_a_rule_is_wrapped() -> None:
    with pytest.raises(MappingError, match="no column 'nope'"):
        map_change(
            failing(lambda c: Thing(thing_id=c.new("nope"))),
            make_change("c", "public.t", after=ROW),
        )


def test_predicate_error_is_wrapped_with_its_hint() -> None:
    rules = Rules("test")
    rules.on("public.t", ops="u", when=changed("label"))(lambda c: None)
    with pytest.raises(MappingError) as info:
        map_change(rules, make_change("u", "public.t", after=ROW))
    assert (
        "predicate" in str(info.value)
        and info.value.hint
        and "REPLICA IDENTITY FULL" in info.value.hint
    )


@pytest.mark.parametrize("returned", ["text", 42, {"thing_id": 1}, [Thing(thing_id=1), "x"]])
def test_returning_something_else_is_an_error(returned: object) -> None:
    with pytest.raises(MappingError, match="not a DomainEvent"):
        map_change(failing(lambda c: returned), make_change("c", "public.t", after=ROW))


def test_event_without_aggregate_is_an_error() -> None:
    with pytest.raises(MappingError, match="__aggregate__"):
        map_change(
            failing(lambda c: NoAggregate(thing_id=1)), make_change("c", "public.t", after=ROW)
        )


def test_empty_aggregate_id_is_an_error() -> None:
    class Blank(Thing):
        __aggregate_id__: ClassVar[str] = "label"

    with pytest.raises(MappingError, match="empty aggregate id"):
        map_change(
            failing(lambda c: Blank(thing_id=1, label="")), make_change("c", "public.t", after=ROW)
        )


# -- row keys


def test_row_key_is_canonical_json_of_the_key_else_the_row() -> None:
    keyed = make_change("c", "public.t", after={"id": 5, "b": 1}, key={"b": 2, "a": 1})
    assert row_key(keyed) == '{"a":1,"b":2}'
    keyless = make_change(
        "c", "public.t", after={"x": 1, "at": datetime(2024, 1, 1, tzinfo=UTC)}, key={}
    )
    assert row_key(keyless) == '{"at":"2024-01-01T00:00:00+00:00","x":1}'


POSITION = SourcePosition(
    connector="shop",
    table="public.customers",
    lsn=24023128,
    commit_lsn=24023120,
    tx_id=555,
    commit_ts_ms=1718000000123,
)


def test_source_position_is_what_ids_hash() -> None:
    # Pinned: events already written carry these ids, and a repeat of their change must
    # get the same ones. uuid5 in namespace 6f1c3f0e-5b2a-4c8e-9a77-0c5d2f1e8b41 of
    # "shop|24023128|555|public.customers|{"id":7}|CustomerRegistered|0|".
    key = '{"id":7}'
    assert str(derive_event_id(POSITION, key, "CustomerRegistered")) == (
        "8c441c95-5548-5168-869a-9ff0246b6f0e"
    )
    assert str(derive_event_id(POSITION, key, "CustomerRegistered", 1)) == (
        "cd440bdd-cb8b-5140-be8e-6eecfd535046"
    )
    snapshot = POSITION.model_copy(update={"snapshot": True})
    assert str(derive_event_id(snapshot, key, "CustomerRegistered")) == (
        "8c73b1ae-e94a-5696-8ff3-294e844382a7"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("connector", "other"), ("table", "public.orders"), ("lsn", 24023129), ("tx_id", 556)],
)
def test_each_part_of_the_position_changes_the_id(field: str, value: object) -> None:
    moved = POSITION.model_copy(update={field: value})
    key = '{"id":7}'
    assert derive_event_id(moved, key, "CustomerRegistered") != derive_event_id(
        POSITION, key, "CustomerRegistered"
    )


def test_key_and_type_change_the_id_and_the_commit_time_does_not() -> None:
    base = derive_event_id(POSITION, '{"id":7}', "CustomerRegistered")
    assert derive_event_id(POSITION, '{"id":8}', "CustomerRegistered") != base
    assert derive_event_id(POSITION, '{"id":7}', "CustomerClosed") != base
    later = POSITION.model_copy(update={"commit_ts_ms": 1718000009999})
    assert derive_event_id(later, '{"id":7}', "CustomerRegistered") == base
