"""PostgreSQL column types -> the Python field types of generated events (pure).

The field types follow what the transformer's decoder makes of Debezium's
records under the connector settings ``cdcflow init`` writes
(``decimal.handling.mode: precise``, ``time.precision.mode:
adaptive_time_microseconds``, ``interval.handling.mode: string``,
``binary.handling.mode: bytes``), and what Avro can carry exactly:

=========================  ============================  ==================================
PostgreSQL                 field                         conversion in the rule
=========================  ============================  ==================================
smallint, integer, bigint  ``int``
numeric(p, s)              ``Decimal`` (p digits, s)
numeric (no scale)         ``str``                       the exact number as text
money                      ``Decimal`` (19 digits, 2)
real, double precision     ``float``
boolean                    ``bool``
text, varchar, char, name  ``str``
uuid                       ``UUID``
date                       ``date``
time, timetz               ``time`` (timetz: in UTC)
timestamp, timestamptz     ``datetime``
interval                   ``str``                       ISO 8601 (``P1DT2H``)
json, jsonb                ``str``                       the JSON text
bytea                      ``bytes``
inet, cidr, macaddr        ``str``
an enum                    ``Literal[labels]``
arrays of the above        ``list[T | None]``            (not of json, numeric or interval)
=========================  ============================  ==================================

Any other type (geometry, ranges, composite types, xml, tsvector, ...) is
**not carried**: the column is left out of the events, with a note in the
generated code and in ``init``'s output (a stated fallback, not a guess).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.onboard.catalog import Column

__all__ = ["FieldType", "field_type"]

_INTEGER = {"int2", "int4", "int8"}
_TEXT = {"text", "varchar", "bpchar", "name", "citext", "inet", "cidr", "macaddr", "macaddr8"}
_FLOAT = {"float4", "float8"}
_SIMPLE = {
    **dict.fromkeys(_INTEGER, "int"),
    **dict.fromkeys(_TEXT, "str"),
    **dict.fromkeys(_FLOAT, "float"),
    "bool": "bool",
    "uuid": "UUID",
    "date": "date",
    "time": "time",
    "timetz": "time",
    "timestamp": "datetime",
    "timestamptz": "datetime",
    "bytea": "bytes",
}
# Element types an array may hold (each element arrives as its scalar would).
_ARRAY_ELEMENTS = _INTEGER | _TEXT | _FLOAT | {"bool", "uuid"}
# Types a rule must convert: the decoder's value is not the field's type.
_CONVERTED = {"json": "json", "jsonb": "json", "interval": "interval"}


@dataclass(frozen=True)
class FieldType:
    """How one column is carried in an event field."""

    annotation: str
    """The Python annotation (without ``| None``), e.g. ``Decimal``, ``list[str | None]``."""
    imports: frozenset[str] = frozenset()
    """Names the annotation needs: ``Decimal``, ``UUID``, ``date``, ``datetime``, ``time``, ...."""
    decimal: tuple[int, int] | None = None
    """(precision, scale) of a ``Decimal`` field."""
    convert: str | None = None
    """``json``, ``decimal_text`` or ``interval``: the rule converts the value."""
    literal: tuple[str, ...] = ()
    """An enum's labels (the annotation names the ``Literal`` alias)."""
    note: str = ""
    """Why the field has this type, where it is not obvious."""


def field_type(column: Column, enum_alias: str) -> FieldType | None:
    """The field type of ``column``; ``None`` when the type is not carried (see the module doc).

    ``enum_alias`` is the name the generated module gives the column's enum type.
    """
    name = column.type_name
    if column.type_kind == "e":
        labels = column.labels
        if column.element is not None:
            return FieldType(f"list[{enum_alias} | None]", literal=labels)
        return FieldType(enum_alias, literal=labels)
    if column.element is not None:
        element = column.element
        if element not in _ARRAY_ELEMENTS:
            return None
        scalar = _SIMPLE[element]
        return FieldType(f"list[{scalar} | None]", frozenset({scalar}) - _BUILTIN)
    if name in _SIMPLE:
        scalar = _SIMPLE[name]
        note = "time of day in UTC" if name == "timetz" else ""
        if name == "timestamp":
            note = "wall clock, read as UTC"
        return FieldType(scalar, frozenset({scalar}) - _BUILTIN, note=note)
    if name == "numeric":
        if column.precision is None or column.scale is None:
            return FieldType("str", convert="decimal_text", note="numeric without scale, as text")
        return FieldType(
            "Decimal", frozenset({"Decimal"}), decimal=(column.precision, column.scale)
        )
    if name == "money":
        return FieldType("Decimal", frozenset({"Decimal"}), decimal=(19, 2))
    if name in _CONVERTED:
        kind = _CONVERTED[name]
        return FieldType(
            "str", convert=kind, note="JSON text" if kind == "json" else "ISO 8601 duration"
        )
    return None


_BUILTIN = frozenset({"int", "str", "float", "bool", "bytes"})
