"""Row images: decode each column, replace TOAST placeholders, fill them from the before image."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from pipeline.cdc.model import UNCHANGED
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.temporal import Interval
from pipeline.cdc.toast import PlaceholderMatcher, declared_placeholder
from pipeline.cdc.values import decode_schemaless, decoder_for, plain_type

__all__ = [
    "Column",
    "ColumnError",
    "LazyRow",
    "RowPlan",
    "decode_planned",
    "decode_row",
    "fill_unchanged",
    "frozen",
    "row_fields",
    "row_plan",
]

Column = tuple[Callable[[Any], Any], dict[str, Any] | None, str | None, type | None]
"""How one column is read: its value decoder, its Connect schema, its declared placeholder,
and the JSON type whose values its decoder returns as they are (None: every value is decoded)."""
RowPlan = dict[str, Column]
"""A row image's columns by name, resolved once per envelope schema (see :func:`row_plan`)."""

_SCHEMALESS: Final[Column] = (decode_schemaless, None, None, None)
# Only text, arrays and maps can be the placeholder when the schema does not declare its form
# (JSON parsers make these exact types, never subclasses).
_PLACEHOLDER_SHAPES: Final = frozenset({str, list, dict})
# Raw values that equal one another only when they decode alike (unlike 1 and 1.0, or
# Decimals of other exponents), and the decoded types a row may share with another.
_REPEATABLE: Final = frozenset({str, int})
_IMMUTABLE: Final = frozenset(
    {str, int, bool, float, bytes, Decimal, uuid.UUID, datetime, date, time, timedelta, Interval}
)


class ColumnError(ValueDecodeError):
    """A column value could not be decoded; names the column."""

    def __init__(self, column: str, cause: ValueDecodeError) -> None:
        super().__init__(f"column {column!r}: {cause}")
        self.column = column


def row_fields(
    envelope_schema: dict[str, Any] | None, image: str
) -> dict[str, dict[str, Any]] | None:
    """The column schemas of the ``before`` / ``after`` struct by name; None when schemaless."""
    if not envelope_schema:
        return None
    for field in envelope_schema.get("fields") or []:
        if field.get("field") == image:
            return {f["field"]: f for f in field.get("fields") or [] if "field" in f}
    return None


def row_plan(
    fields: dict[str, dict[str, Any]] | None, like: RowPlan | None = None
) -> RowPlan | None:
    """Each column's decoder, schema and declared placeholder; None when schemaless.

    ``like``: another image's plan (the before image's); a column whose schema
    is the same there keeps that entry, so the two images can share its values.
    """
    if fields is None:
        return None
    plan: RowPlan = {}
    for name, schema in fields.items():
        twin = like.get(name) if like is not None else None
        plan[name] = (
            twin
            if twin is not None and twin[1] == schema
            else (decoder_for(schema), schema, declared_placeholder(schema), plain_type(schema))
        )
    return plan


def decode_row(
    raw: Any, fields: dict[str, dict[str, Any]] | None, toast: PlaceholderMatcher
) -> tuple[dict[str, Any] | None, set[str]]:
    """Decode one row image; returns the row and the columns that held the placeholder.

    Raises:
        ValueDecodeError: the image is not an object, or a column does not decode
            (:class:`ColumnError` names the column).
    """
    return decode_planned(raw, row_plan(fields), toast)


Twin = tuple[dict[str, Any], Mapping[str, Any], RowPlan | None]
"""The other image of the same change: raw, decoded, and its plan."""


def decode_planned(
    raw: Any,
    plan: RowPlan | None,
    toast: PlaceholderMatcher,
    *,
    old_row: bool = False,
    twin: Twin | None = None,
    pending: dict[str, Column] | None = None,
) -> tuple[dict[str, Any] | None, set[str]]:
    """:func:`decode_row` with the columns already resolved (the transformer's hot path).

    ``old_row``: the image is a before image, where an empty string that does
    not decode is Debezium's stand-in for a NOT NULL column the replica
    identity did not carry (no json or uuid value is empty): it becomes
    :data:`UNCHANGED`, not sent, instead of failing the record.

    ``twin``: the same change's before image. An update repeats most of the old
    row in the new one: a column whose text or integer is the same in both,
    with the same schema, takes the before image's decoded value when that
    value is immutable (a datetime, a Decimal, a UUID, ...) instead of being
    decoded again.

    ``pending``: where a column that needs its decoder is put instead of being
    decoded (its raw value stays in the row); see :class:`LazyRow`. Nulls, the
    placeholder and values its decoder would return as they are never wait.

    Raises:
        ValueDecodeError: as :func:`decode_row`.
    """
    if raw is None:
        return None, set()
    if not isinstance(raw, dict):
        raise ValueDecodeError(f"row image must be an object, got {type(raw).__name__}")
    row: dict[str, Any] = {}
    toasted: set[str] = set()
    scalars = toast.scalar_forms
    twin_raw, twin_row, twin_plan = twin if twin is not None else (None, None, None)
    for column, value in raw.items():
        if value is None:
            row[column] = None
            continue
        entry = plan.get(column, _SCHEMALESS) if plan is not None else _SCHEMALESS
        decode, schema, declared, plain = entry
        kind = type(value)
        if (
            value in scalars
            if declared is None and kind is str
            else (declared is not None or kind in _PLACEHOLDER_SHAPES)
            and toast.matches_declared(value, schema, declared)
        ):
            row[column] = UNCHANGED
            toasted.add(column)
            continue
        if kind is plain:
            # An integer, text or boolean column: its decoder would return the value itself.
            row[column] = value
            continue
        if pending is not None:
            row[column] = value
            pending[column] = entry
            continue
        if twin_raw is not None and kind in _REPEATABLE:
            previous = twin_raw.get(column)
            if type(previous) is kind and previous == value and twin_plan is not None:
                kept = twin_row.get(column) if twin_row is not None else None
                if type(kept) in _IMMUTABLE and twin_plan.get(column) is entry:
                    row[column] = kept
                    continue
        try:
            row[column] = decode(value)
        except ValueDecodeError as exc:
            if old_row and value == "":
                row[column] = UNCHANGED
                continue
            raise ColumnError(column, exc) from exc
    return row, toasted


class LazyRow(Mapping[str, Any]):
    """A read-only row image whose columns are decoded when they are first read.

    Holds the columns :func:`decode_planned` put in ``pending`` with their raw
    values, the others decoded. A column is decoded as the whole image would
    have been (the same decoder, the before image's empty-string stand-in), and
    kept. A value that does not decode raises what ``fail`` makes of its
    :class:`ColumnError` (the decoder's DecodeError, naming table and column).
    """

    __slots__ = ("_fail", "_old_row", "_pending", "_row")

    def __init__(
        self,
        row: dict[str, Any],
        pending: dict[str, Column],
        fail: Callable[[ColumnError], Exception],
        *,
        old_row: bool = False,
    ) -> None:
        self._row = row
        self._pending = pending
        self._fail = fail
        self._old_row = old_row

    def __getitem__(self, column: str) -> Any:
        value = self._row[column]
        pending = self._pending
        if pending and column in pending:
            try:
                value = pending[column][0](value)
            except ValueDecodeError as exc:
                if not (self._old_row and value == ""):
                    raise self._fail(ColumnError(column, exc)) from exc  # and again if read again
                value = UNCHANGED
            del pending[column]
            self._row[column] = value
        return value

    def __contains__(self, column: object) -> bool:
        return column in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def __repr__(self) -> str:
        """Decoded columns with their values, pending ones by name: a repr never decodes (or fails)."""
        pending = self._pending
        shown = {c: ("<not decoded>" if c in pending else v) for c, v in self._row.items()}
        return f"LazyRow({shown!r})"

    @property
    def pending(self) -> frozenset[str]:
        """The columns not decoded yet."""
        return frozenset(self._pending)


def fill_unchanged(after: dict[str, Any] | None, before: Mapping[str, Any] | None) -> None:
    """Replace UNCHANGED columns of ``after`` with the before image's value, where it has one."""
    if after is None or before is None:
        return
    for column, value in after.items():
        if value is UNCHANGED:
            old = before.get(column, UNCHANGED)
            if old is not UNCHANGED:
                after[column] = old


def frozen(row: dict[str, Any] | None) -> Mapping[str, Any] | None:
    """A read-only view, so a Change cannot be altered by the rules that read it."""
    return None if row is None else MappingProxyType(row)
