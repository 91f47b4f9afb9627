"""Dates, times, timestamps and intervals in every form Debezium writes them.

Integer forms count from the Unix epoch (dates, timestamps) or from midnight
(times) in milli-, micro- or nanoseconds; string forms are ISO-8601. Python
keeps microseconds, which is PostgreSQL's own precision, so nanosecond forms
lose nothing. ``timestamptz`` / ``timetz`` become tz-aware values in UTC;
``timestamp`` / ``time`` without time zone stay naive.

PostgreSQL's ``infinity`` / ``-infinity`` and other values outside Python's
range (year 1 to 9999) are clamped to ``max`` / ``min`` of the Python type;
``24:00:00`` becomes ``time.max``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pipeline.cdc.numeric import ValueDecodeError

__all__ = [
    "Interval",
    "date_from_days",
    "datetime_from_epoch",
    "duration",
    "parse_interval",
    "parse_iso_date",
    "parse_iso_time",
    "parse_iso_timestamp",
    "parse_zoned_time",
    "parse_zoned_timestamp",
    "time_from_midnight",
]

_T = TypeVar("_T")
_Day = TypeVar("_Day", date, datetime)
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_DAY_US = 86_400_000_000
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_MIN_UTC = datetime.min.replace(tzinfo=UTC)
_MAX_UTC = datetime.max.replace(tzinfo=UTC)
# unit -> (multiply by, floor-divide by) to get microseconds
_UNIT_US = {"ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}
_fromisoformat = datetime.fromisoformat


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueDecodeError(f"{what}: expected an integer, got {value!r}")
    return value


def _to_micros(value: Any, unit: str, what: str) -> int:
    mul, div = _UNIT_US[unit]
    return _int(value, what) * mul // div


def date_from_days(value: Any) -> date:
    """Days since 1970-01-01 (``io.debezium.time.Date``, Connect ``Date``)."""
    return _after_epoch(_EPOCH_DATE, _DAY, _int(value, "date"))


def datetime_from_epoch(value: Any, unit: str) -> datetime:
    """A naive timestamp from ms / us / ns since the epoch (``Timestamp``, ``MicroTimestamp``)."""
    return _after_epoch(_EPOCH, _MICROSECOND, _to_micros(value, unit, "timestamp"))


def _after_epoch(epoch: _Day, step: timedelta, count: int) -> _Day:
    """``epoch + count * step``, clamped to the type's ``max`` / ``min`` beyond its range."""
    try:
        return epoch + step * count
    except OverflowError:
        return type(epoch).max if count > 0 else type(epoch).min


def time_from_midnight(value: Any, unit: str) -> time:
    """A naive time of day from ms / us / ns past midnight (``Time``, ``MicroTime``, ...)."""
    micros = _to_micros(value, unit, "time")
    if micros == _DAY_US:
        return time.max  # PostgreSQL allows 24:00:00; Python's time stops just before it
    if not 0 <= micros < _DAY_US:
        raise ValueDecodeError(f"time of day out of range: {value!r} {unit}")
    secs, us = divmod(micros, 1_000_000)
    return time(secs // 3600, secs // 60 % 60, secs % 60, us)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueDecodeError(f"{what}: expected ISO-8601 text, got {value!r}")
    return value


def _clamped(text: str, what: str, low: _T, high: _T, exc: ValueError) -> _T:
    # Java writes years beyond 9999 as "+10000-..." and BC years as "-0044-...".
    if text.startswith("+"):
        return high
    if text.startswith("-"):
        return low
    raise ValueDecodeError(f"{what}: not ISO-8601: {text!r} ({exc})") from exc


def parse_zoned_timestamp(value: Any) -> datetime:
    """``io.debezium.time.ZonedTimestamp`` (timestamptz): an aware datetime in UTC."""
    if type(value) is str:
        # Debezium's usual form (ISO-8601 with an offset) in one step; anything else below.
        try:
            quick = _fromisoformat(value)
        except ValueError:
            pass
        else:
            if quick.tzinfo is not None:
                return quick.astimezone(UTC)
    text = _text(value, "timestamptz")
    if text == "infinity":
        return _MAX_UTC
    if text == "-infinity":
        return _MIN_UTC
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        return _clamped(text, "timestamptz", _MIN_UTC, _MAX_UTC, exc)
    if parsed.tzinfo is None:
        raise ValueDecodeError(f"timestamptz without an offset: {text!r}")
    return parsed.astimezone(UTC)


def parse_zoned_time(value: Any) -> time:
    """``io.debezium.time.ZonedTime`` (timetz): a time with ``tzinfo=UTC``."""
    text = _text(value, "timetz")
    if text.startswith("24:00:00"):
        return time.max.replace(tzinfo=UTC)
    try:
        parsed = time.fromisoformat(text)
    except ValueError as exc:
        raise ValueDecodeError(f"timetz: not ISO-8601: {text!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    offset = parsed.utcoffset() or timedelta(0)
    if offset:
        shifted = datetime.combine(_EPOCH_DATE, parsed.replace(tzinfo=None)) - offset
        return shifted.time().replace(tzinfo=UTC)
    return parsed.replace(tzinfo=UTC)


def _strip_offset(text: str) -> str:
    # isostring mode renders values without a zone "in UTC", with a trailing Z.
    return text[:-1] if text.endswith(("Z", "z")) else text


def parse_iso_date(value: Any) -> date:
    """``io.debezium.time.IsoDate`` (``2024-05-01Z``)."""
    text = _strip_offset(_text(value, "date"))
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        return _clamped(text, "date", date.min, date.max, exc)


def parse_iso_time(value: Any) -> time:
    """``io.debezium.time.IsoTime`` (``10:15:30.123456Z``): a naive time."""
    text = _strip_offset(_text(value, "time"))
    if text.startswith("24:00:00"):
        return time.max
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ValueDecodeError(f"time: not ISO-8601: {text!r}") from exc


def parse_iso_timestamp(value: Any) -> datetime:
    """``io.debezium.time.IsoTimestamp`` (timestamp without time zone): a naive datetime."""
    text = _strip_offset(_text(value, "timestamp"))
    if text in ("infinity", "-infinity"):
        return datetime.max if text == "infinity" else datetime.min
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        return _clamped(text, "timestamp", datetime.min, datetime.max, exc)


def duration(value: Any, unit: str) -> timedelta:
    """``io.debezium.time.MicroDuration`` / ``NanoDuration``.

    Debezium computes these with 365.25 / 12 days per month, so an interval
    with months is already approximate on the wire.
    """
    return timedelta(microseconds=_to_micros(value, unit, "interval"))


@dataclass(frozen=True, slots=True)
class Interval:
    """A PostgreSQL ``interval``: months, days and microseconds, kept apart as PostgreSQL does.

    A month has no fixed length, so an interval with months has no exact
    :class:`~datetime.timedelta`; :meth:`to_timedelta` says so instead of guessing.
    """

    months: int = 0
    days: int = 0
    microseconds: int = 0

    def to_timedelta(self, days_per_month: float | None = None) -> timedelta:
        """The interval as a timedelta.

        Raises:
            ValueError: the interval has months and no ``days_per_month`` was given.
        """
        if self.months and days_per_month is None:
            raise ValueError(f"{self} has months; pass days_per_month to approximate it")
        extra = timedelta(days=self.months * (days_per_month or 0))
        return timedelta(days=self.days, microseconds=self.microseconds) + extra

    def isoformat(self) -> str:
        years, months = divmod(abs(self.months), 12)
        sign = -1 if self.months < 0 else 1
        secs = Decimal(self.microseconds).scaleb(-6).normalize()
        hours, rest = divmod(abs(secs), 3600)
        minutes, seconds = divmod(rest, 60)
        s = -1 if secs < 0 else 1
        return (
            f"P{sign * years}Y{sign * months}M{self.days}DT"
            f"{s * int(hours)}H{s * int(minutes)}M{(s * seconds).normalize():f}S"
        )

    def __str__(self) -> str:
        return self.isoformat()


_ISO_DURATION = re.compile(
    r"^(?P<neg>-)?P(?:(?P<y>[-+]?\d+)Y)?(?:(?P<mo>[-+]?\d+)M)?(?:(?P<w>[-+]?\d+)W)?(?:(?P<d>[-+]?\d+)D)?"
    r"(?:T(?:(?P<h>[-+]?\d+)H)?(?:(?P<mi>[-+]?\d+)M)?(?:(?P<s>[-+]?\d+(?:\.\d+)?)S)?)?$"
)


def parse_interval(value: Any) -> Interval:
    """``io.debezium.time.Interval`` (interval.handling.mode=string): ``P1Y2M3DT4H5M6.78S``.

    Debezium writes each component with its own sign (``P0Y0M-3DT-4H0M-1.5S``).
    """
    text = _text(value, "interval")
    m = _ISO_DURATION.match(text)
    if not m or text in ("P", "PT"):
        raise ValueDecodeError(f"interval: not an ISO-8601 duration: {text!r}")

    def part(name: str) -> int:
        return int(m.group(name) or 0)

    try:
        seconds = Decimal(m.group("s") or 0)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueDecodeError(f"interval: bad seconds in {text!r}") from exc
    micros = (part("h") * 3600 + part("mi") * 60) * 1_000_000 + int(seconds.scaleb(6))
    sign = -1 if m.group("neg") else 1
    return Interval(
        months=sign * (part("y") * 12 + part("mo")),
        days=sign * (part("w") * 7 + part("d")),
        microseconds=sign * micros,
    )
