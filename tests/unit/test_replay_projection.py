"""Declaring projections: names, DDL placeholders, handlers, variants; checkpoint choice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.domains.shop import projections
from pipeline.domains.shop.events import OrderPaid, OrderPlaced
from pipeline.domains.shop.projections import order_timeline, orders_by_customer
from pipeline.replay.errors import UnknownProjection
from pipeline.replay.projection import Projection, Tx, select
from pipeline.replay.store import Checkpoint


def _projection(name: str = "p") -> Projection:
    return Projection(
        name,
        topics=["x.order.events"],
        tables={"t": "CREATE TABLE {table} (id int); CREATE INDEX {name}_id_idx ON {table} (id)"},
    )


def test_ddl_fills_the_qualified_and_bare_names_per_suffix() -> None:
    p = _projection()
    assert p.table_names() == {"t": "p_t"}
    assert p.ddl("rm", "__g3") == [
        "CREATE TABLE rm.p_t__g3 (id int); CREATE INDEX p_t__g3_id_idx ON rm.p_t__g3 (id)"
    ]


def test_handlers_and_variants() -> None:
    p = _projection()

    @p.on(OrderPlaced, OrderPaid)
    def handle(db: Tx, event: OrderPlaced | OrderPaid) -> None:
        pass

    assert p.handler(OrderPlaced) is handle and p.handler(OrderPaid) is handle
    with pytest.raises(ValueError, match="already handles"):
        p.on(OrderPaid)(handle)
    other = p.variant(name="q", topics=["y.order.events"])
    assert (other.name, other.topics, other.handler(OrderPlaced)) == (
        "q",
        ("y.order.events",),
        handle,
    )
    assert other.table_names() == {"t": "q_t"}
    assert p.topics == ("x.order.events",)


@pytest.mark.parametrize(
    ("name", "tables", "match"),
    [
        ("Bad-Name", {"t": "CREATE TABLE {table} ()"}, "must match"),
        ("p", {"T": "CREATE TABLE {table} ()"}, "must match"),
        ("p" * 40, {"table": "CREATE TABLE {table} ()"}, "longer than"),
        ("p", {"t": "CREATE TABLE somewhere ()"}, r"does not create \{table\}"),
        ("p", {}, "no table"),
    ],
)
def test_bad_declarations(name: str, tables: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Projection(name, topics=["t"], tables=tables)


def test_the_shop_ships_two_projections_of_the_order_topic() -> None:
    assert projections == [orders_by_customer, order_timeline]
    assert all(p.topics == ("shop.order.events",) for p in projections)
    byname = {p.name: p for p in projections}
    assert select(byname, []) == projections
    assert select(byname, ["shop_order_timeline"]) == [order_timeline]
    with pytest.raises(UnknownProjection, match="nope"):
        select(byname, ["nope"])


def test_a_checkpoint_precedes_a_time_when_it_holds_nothing_at_or_after_it() -> None:
    ck = Checkpoint(1, datetime(2026, 11, 1, tzinfo=UTC), 0, {("t", 0): 10, ("t", 1): 5}, {})
    assert ck.precedes({("t", 0): 10, ("t", 1): 9})
    assert not ck.precedes({("t", 0): 9, ("t", 1): 9})
    # A partition the checkpoint never saw starts at its beginning: nothing of it is held.
    assert ck.precedes({("t", 0): 12, ("t", 1): 5, ("t", 2): 0})
