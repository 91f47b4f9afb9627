"""Progress, time left and the closing summary of a replay (pure: the clock is passed in).

Time left comes from offsets: what is left is the sum over partitions of
(end offset - position), divided by the recent rate. Offsets count the
transaction markers too (one per partition per producer transaction), so the
estimate errs a little on the long side; it reaches zero at the end.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.replay.positions import TP

__all__ = ["Progress", "Summary", "format_duration", "remaining_offsets"]


def remaining_offsets(positions: Mapping[TP, int], ends: Mapping[TP, int]) -> int:
    """Offsets still to read: the sum of ``end - position`` over partitions, never negative."""
    return sum(max(0, end - positions.get(tp, end)) for tp, end in ends.items())


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour); ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    whole = round(max(0.0, seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts events and estimates the rate and the time left.

    The rate is measured over a sliding window (``window_s``) so that it
    follows the current speed, not the average since the start.
    """

    def __init__(self, total_offsets: int | None, started: float, window_s: float = 5.0) -> None:
        self.total_offsets = total_offsets
        self.started = started
        self.window_s = window_s
        self.events = 0
        self.remaining: int | None = total_offsets
        self._samples: deque[tuple[float, int]] = deque([(started, 0)])

    def update(self, events: int, remaining: int | None, now: float) -> None:
        """Record that ``events`` have been read in all, with ``remaining`` offsets left."""
        self.events = events
        self.remaining = remaining
        self._samples.append((now, events))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Events per second over the window (since the start while it is shorter)."""
        t0, n0 = self._samples[0]
        elapsed = now - t0
        return (self.events - n0) / elapsed if elapsed > 0 else 0.0

    def overall_rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.events / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left; 0 when nothing remains; None when unknown (no end, or no rate yet)."""
        if self.remaining is None:
            return None
        if self.remaining == 0:
            return 0.0
        rate = self.rate(now)
        return self.remaining / rate if rate > 0 else None

    def fraction(self) -> float | None:
        """Share of the offsets read, 0..1; None without an end."""
        if self.remaining is None or not self.total_offsets:
            return None if self.remaining is None else 1.0
        return min(1.0, max(0.0, 1 - self.remaining / self.total_offsets))

    def line(self, now: float, width: int = 24) -> str:
        """One status line: events, events/s, a bar with the share done, time left."""
        parts = [f"{self.events:,} events", f"{self.rate(now):,.0f} ev/s"]
        frac = self.fraction()
        if frac is not None:
            filled = int(frac * width)
            parts.append("[" + "#" * filled + "." * (width - filled) + f"] {frac * 100:5.1f}%")
            parts.append(f"left {format_duration(self.eta(now))}")
        parts.append(f"elapsed {format_duration(now - self.started)}")
        return "  ".join(parts)


@dataclass
class Summary:
    """What a replay read: events per type and per partition, time and rate."""

    per_type: Counter[str] = field(default_factory=Counter)
    per_partition: Counter[TP] = field(default_factory=Counter)
    skipped: int = 0
    seconds: float = 0.0
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def events(self) -> int:
        return sum(self.per_type.values())

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "per_type": dict(sorted(self.per_type.items())),
            "per_partition": {f"{t}[{p}]": n for (t, p), n in sorted(self.per_partition.items())},
            "first_timestamp_ms": self.first_ms,
            "last_timestamp_ms": self.last_ms,
        }
