"""Row images: decode each column, replace TOAST placeholders, fill them from the before image."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from pipeline.cdc.model import UNCHANGED
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.toast import PlaceholderMatcher, declared_placeholder
from pipeline.cdc.values import decode_schemaless, decoder_for, plain_type

__all__ = [
    "Column",
    "ColumnError",
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
# Only text, arrays and maps can be the placeholder when the schema does not declare its form.
_PLACEHOLDER_SHAPES: Final = (str, list, dict)


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


def row_plan(fields: dict[str, dict[str, Any]] | None) -> RowPlan | None:
    """Each column's decoder, schema and declared placeholder; None when schemaless."""
    if fields is None:
        return None
    return {
        name: (decoder_for(schema), schema, declared_placeholder(schema), plain_type(schema))
        for name, schema in fields.items()
    }


def decode_row(
    raw: Any, fields: dict[str, dict[str, Any]] | None, toast: PlaceholderMatcher
) -> tuple[dict[str, Any] | None, set[str]]:
    """Decode one row image; returns the row and the columns that held the placeholder.

    Raises:
        ValueDecodeError: the image is not an object, or a column does not decode
            (:class:`ColumnError` names the column).
    """
    return decode_planned(raw, row_plan(fields), toast)


def decode_planned(
    raw: Any, plan: RowPlan | None, toast: PlaceholderMatcher, *, old_row: bool = False
) -> tuple[dict[str, Any] | None, set[str]]:
    """:func:`decode_row` with the columns already resolved (the transformer's hot path).

    ``old_row``: the image is a before image, where an empty string that does
    not decode is Debezium's stand-in for a NOT NULL column the replica
    identity did not carry (no json or uuid value is empty): it becomes
    :data:`UNCHANGED`, not sent, instead of failing the record.

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
    for column, value in raw.items():
        if value is None:
            row[column] = None
            continue
        decode, schema, declared, plain = (
            plan.get(column, _SCHEMALESS) if plan is not None else _SCHEMALESS
        )
        if (declared is not None or isinstance(value, _PLACEHOLDER_SHAPES)) and (
            value in scalars
            if declared is None and type(value) is str
            else toast.matches_declared(value, schema, declared)
        ):
            row[column] = UNCHANGED
            toasted.add(column)
            continue
        if type(value) is plain:
            # An integer, text or boolean column: its decoder would return the value itself.
            row[column] = value
            continue
        try:
            row[column] = decode(value)
        except ValueDecodeError as exc:
            if old_row and value == "":
                row[column] = UNCHANGED
                continue
            raise ColumnError(column, exc) from exc
    return row, toasted


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
