"""Progress, rate and time-left arithmetic; timestamps and offsets specs."""

from __future__ import annotations

import pytest

from pipeline.replay.errors import BadPosition
from pipeline.replay.positions import format_ms, parse_offsets, parse_timestamp
from pipeline.replay.progress import Progress, format_duration, remaining_offsets


def test_remaining_offsets_never_goes_negative_and_ignores_partitions_without_an_end() -> None:
    ends = {("t", 0): 100, ("t", 1): 50}
    assert remaining_offsets({("t", 0): 40, ("t", 1): 60, ("u", 0): 5}, ends) == 60
    assert remaining_offsets({}, ends) == 0  # unknown position: counted as at its end


def test_rate_follows_the_recent_window_and_eta_divides_what_is_left() -> None:
    p = Progress(total_offsets=10_000, started=0.0, window_s=5.0)
    p.update(1_000, 9_000, now=1.0)
    assert p.rate(1.0) == pytest.approx(1_000)
    assert p.eta(1.0) == pytest.approx(9.0)
    # Slower later on: the window forgets the fast start.
    for t in range(2, 12):
        p.update(1_000 + (t - 1) * 100, 9_000 - (t - 1) * 100, now=float(t))
    assert p.rate(11.0) == pytest.approx(100, rel=0.01)
    assert p.eta(11.0) == pytest.approx(8_000 / 100, rel=0.01)
    assert p.overall_rate(11.0) == pytest.approx(2_000 / 11)
    assert p.fraction() == pytest.approx(0.2)


def test_eta_edge_cases() -> None:
    following = Progress(total_offsets=None, started=0.0)
    following.update(10, None, now=1.0)
    assert following.eta(1.0) is None and following.fraction() is None
    finished = Progress(total_offsets=10, started=0.0)
    finished.update(10, 0, now=1.0)
    assert finished.eta(1.0) == 0.0 and finished.fraction() == 1.0
    stalled = Progress(total_offsets=10, started=0.0)
    stalled.update(0, 10, now=1.0)
    assert stalled.eta(1.0) is None  # no rate yet: unknown, not infinite
    empty = Progress(total_offsets=0, started=0.0)
    empty.update(0, 0, now=1.0)
    assert empty.fraction() == 1.0


def test_progress_line() -> None:
    p = Progress(total_offsets=200, started=0.0)
    p.update(100, 100, now=2.0)
    line = p.line(2.0, width=10)
    assert (
        "100 events" in line
        and "50 ev/s" in line
        and "[#####.....]  50.0%" in line
        and "left 0:02" in line
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("inf"), "?"), (0.4, "0:00"), (75, "1:15"), (3_725, "1:02:05")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-01T12:00:00Z", 1_793_534_400_000),
        ("2026-11-01T13:00:00+01:00", 1_793_534_400_000),
        ("2026-11-01T12:00:00", 1_793_534_400_000),  # no offset: UTC
        ("2026-11-01T12:00:00.250Z", 1_793_534_400_250),
        ("1793534400000", 1_793_534_400_000),
    ],
)
def test_parse_timestamp(text: str, ms: int) -> None:
    assert parse_timestamp(text) == ms
    assert format_ms(ms).startswith("2026-11-01T12:00:00")


def test_parse_timestamp_refuses_nonsense() -> None:
    with pytest.raises(BadPosition, match="ISO 8601"):
        parse_timestamp("yesterday")


def test_parse_offsets() -> None:
    assert parse_offsets("0:10, 2:0", ["a.events"]) == {("a.events", 0): 10, ("a.events", 2): 0}
    assert parse_offsets("a.events:1:5,b.events:0:7", ["a.events", "b.events"]) == {
        ("a.events", 1): 5,
        ("b.events", 0): 7,
    }


@pytest.mark.parametrize(
    ("spec", "topics", "match"),
    [
        ("0:10", ["a", "b"], "names no topic"),
        ("c:0:1", ["a", "b"], "not being read"),
        ("0:x", ["a"], "integers"),
        ("0:-1", ["a"], "negative"),
        ("1:2:3:4", ["a"], "not PARTITION:OFFSET"),
        (" , ", ["a"], "empty"),
    ],
)
def test_parse_offsets_refuses(spec: str, topics: list[str], match: str) -> None:
    with pytest.raises(BadPosition, match=match):
        parse_offsets(spec, topics)
