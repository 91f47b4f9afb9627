"""Row images: decode each column, replace TOAST placeholders, fill them from the before image."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pipeline.cdc.model import UNCHANGED
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.toast import PlaceholderMatcher
from pipeline.cdc.values import decode_value

__all__ = ["ColumnError", "decode_row", "fill_unchanged", "frozen", "row_fields"]


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


def decode_row(
    raw: Any, fields: dict[str, dict[str, Any]] | None, toast: PlaceholderMatcher
) -> tuple[dict[str, Any] | None, set[str]]:
    """Decode one row image; returns the row and the columns that held the placeholder.

    Raises:
        ValueDecodeError: the image is not an object, or a column does not decode
            (:class:`ColumnError` names the column).
    """
    if raw is None:
        return None, set()
    if not isinstance(raw, dict):
        raise ValueDecodeError(f"row image must be an object, got {type(raw).__name__}")
    row: dict[str, Any] = {}
    toasted: set[str] = set()
    for column, value in raw.items():
        schema = fields.get(column) if fields is not None else None
        if value is not None and toast.matches(value, schema):
            row[column] = UNCHANGED
            toasted.add(column)
            continue
        try:
            row[column] = decode_value(schema, value)
        except ValueDecodeError as exc:
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
