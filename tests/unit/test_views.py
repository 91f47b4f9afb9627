"""The JSON views ``-o json`` prints: their keys, in order, and their values."""

from __future__ import annotations

from pipeline.connect.status import ConnectorStatus
from pipeline.replay.runner import RunStats
from pipeline.replay.status import PartitionLag, ProjectionStatus
from pipeline.views import attrs


def test_attrs_takes_the_named_attributes_in_order() -> None:
    stats = RunStats("orders", applied=3, batches=1)
    assert list(attrs(stats, "batches", "applied").items()) == [("batches", 1), ("applied", 3)]


def test_run_stats_view() -> None:
    stats = RunStats("orders", applied=7, repeated=2, batches=3, checkpoints=1, seconds=1.234)
    stats.error = ValueError("boom")
    assert list(stats.as_dict().items()) == [
        ("projection", "orders"),
        ("applied", 7),
        ("repeated", 2),
        ("batches", 3),
        ("checkpoints", 1),
        ("seconds", 1.23),
        ("error", "boom"),
    ]


def test_projection_status_view() -> None:
    lag = PartitionLag("ev.order.events", 2, next_offset=10, end_offset=14, applied=9)
    status = ProjectionStatus("orders", ["ev.order.events"], 4, 101, None, 2, None, [lag], now_ms=0)
    view = status.as_dict()
    assert list(view)[:10] == [
        "projection",
        "topics",
        "generation",
        "running_pid",
        "rebuilding_pid",
        "applied",
        "events_behind",
        "seconds_behind",
        "checkpoints",
        "newest_checkpoint",
    ]
    assert (view["projection"], view["generation"], view["running_pid"]) == ("orders", 4, 101)
    assert (view["applied"], view["events_behind"]) == (9, 4)
    (part,) = view["partitions"]
    assert list(part.items())[:5] == [
        ("topic", "ev.order.events"),
        ("partition", 2),
        ("next_offset", 10),
        ("end_offset", 14),
        ("events_behind", 4),
    ]


def test_connector_status_view() -> None:
    status = ConnectorStatus("shop-postgres", "source", "RUNNING", "w1:8083", declared=True)
    assert status.to_dict() == {
        "name": "shop-postgres",
        "type": "source",
        "state": "RUNNING",
        "worker_id": "w1:8083",
        "trace": None,
        "tasks": [],
        "declared": True,
        "replication_slot": None,
    }
