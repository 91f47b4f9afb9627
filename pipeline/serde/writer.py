"""A compiled Avro writer per schema: the encoding decided once, no walk at run time.

:func:`compile_writer` turns a parsed Avro schema into one function per
schema node, each a closure over what it needs (the next node's function, an
enum's symbol table, a decimal's scale). A record's function is a list of
(field name, field function) pairs; writing an event is one pass over its
fields that reads the pydantic model's values where they are (``__dict__``),
converts each the way its schema says and appends the bytes: no
``model_dump``, no intermediate dict, no type dispatch per value, no union
branch search. The bytes are those fastavro writes for the record that
:func:`pipeline.serde.avro.event_to_record` builds (``tests/unit/test_serde_writer.py``
compares them), including:

* a decimal with more fraction digits than its scale is cut to the scale
  when only zeros go (``5.5000`` -> ``5.50``); a value that would be rounded
  is refused;
* a naive datetime is the wall clock read as UTC (as Debezium sends a
  ``timestamp without time zone``), never the host's zone;
* an enum is written by its value, a UUID in a string field as its text.

Schemas with a shape the compiler does not know (a union of several non-null
types, a recursive record, ``fixed``) get ``None``: the caller writes those
through fastavro's generic writer.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from fastavro._logical_writers import LOGICAL_WRITERS

from pipeline.serde.decimals import at_scale

__all__ = ["Encode", "compile_writer"]

Encode = Callable[[Any, bytearray], None]
"""Append the Avro encoding of a value to the buffer."""


class Unsupported(Exception):
    """A schema shape the compiler leaves to fastavro."""


_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAYS = date(1970, 1, 1).toordinal()
_FLOAT = struct.Struct("<f").pack
DOUBLE = struct.Struct("<d").pack
# fastavro's own conversion: the same bytes, the same refusals (precision, scale).
_DECIMAL_BYTES = LOGICAL_WRITERS["bytes-decimal"]


# Two 7-bit groups of a varint, both marked "more follows": a long's bytes two at a time.
_PAIRS = [bytes(((c & 0x7F) | 0x80, (c >> 7) | 0x80)) for c in range(1 << 14)]
# The last one or two groups of a varint (below 2**14): only the first marked "more follows".
_LAST = [bytes((c,)) if c < 0x80 else bytes(((c & 0x7F) | 0x80, c >> 7)) for c in range(1 << 14)]


def write_long(n: int, out: bytearray) -> None:
    """Append ``n`` as an Avro long: zig-zag, then a varint of 7-bit groups, low first."""
    if n >= 0:
        if n < 0x40:  # one byte: the common small value
            out.append(n << 1)
            return
        if n > _LONG_MAX:
            raise OverflowError(f"{n} does not fit an Avro long")
        z = n << 1
    else:
        if n < _LONG_MIN:
            raise OverflowError(f"{n} does not fit an Avro long")
        z = ~(n << 1)  # zig-zag of a negative: (n << 1) ^ -1
    while z >= 0x4000:  # more than two groups left: two of them, from the table
        out += _PAIRS[z & 0x3FFF]
        z >>= 14
    out += _LAST[z]


def _plain(value: Any) -> Any:
    """An enum member's value; anything else as it is."""
    return value.value if isinstance(value, Enum) else value


def as_int(value: Any) -> int:
    """The integer a long field holds: an int, or an enum member's int value."""
    value = _plain(value)
    if not isinstance(value, int):
        raise TypeError(f"an integer is required, got {type(value).__name__}")
    return value


def as_str(value: Any) -> str:
    """The text a string field holds: a str, an enum member's value, or a UUID's text."""
    if isinstance(value, uuid.UUID):  # the usual one: ids
        return str(value)
    value = _plain(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"a string is required, got {type(value).__name__}")
    return value


def _long(value: Any, out: bytearray) -> None:
    write_long(value if type(value) is int else as_int(value), out)


def _string(value: Any, out: bytearray) -> None:
    data = (value if type(value) is str else as_str(value)).encode()
    write_long(len(data), out)
    out += data


def _bytes(value: Any, out: bytearray) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"bytes are required, got {type(value).__name__}")
    write_long(len(value), out)
    out += value


def _boolean(value: Any, out: bytearray) -> None:
    out.append(1 if value else 0)


def _null(value: Any, out: bytearray) -> None:
    if value is not None:
        raise TypeError(f"null is required, got {type(value).__name__}")


def _float(value: Any, out: bytearray) -> None:
    out += _FLOAT(float(value))


def _double(value: Any, out: bytearray) -> None:
    out += DOUBLE(float(value))


def _timestamp(per_second: int) -> Encode:
    divisor = 1_000_000 // per_second

    def encode(value: Any, out: bytearray) -> None:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                # The wall clock read as UTC (a PostgreSQL timestamp without time
                # zone, as Debezium sends it); fastavro would read it in the
                # host's local zone (time.mktime) and shift it by the zone's offset.
                value = value.replace(tzinfo=UTC)
            delta = value - EPOCH
            value = (delta.days * 86400 + delta.seconds) * per_second + (
                delta.microseconds // divisor
            )
        _long(value, out)

    return encode


def _date(value: Any, out: bytearray) -> None:
    if isinstance(value, date):
        value = value.toordinal() - _EPOCH_DAYS
    _long(value, out)


def _time(per_second: int) -> Encode:
    divisor = 1_000_000 // per_second

    def encode(value: Any, out: bytearray) -> None:
        if isinstance(value, time):
            seconds = (value.hour * 60 + value.minute) * 60 + value.second
            value = seconds * per_second + value.microsecond // divisor
        _long(value, out)

    return encode


def _decimal(schema: Mapping[str, Any]) -> Encode:
    spec = dict(schema)
    rescale = at_scale(int(spec.get("scale", 0)))

    def encode(value: Any, out: bytearray) -> None:
        if type(value) is Decimal:
            value = rescale(value)
        _bytes(_DECIMAL_BYTES(value, spec), out)

    return encode


def _enum(schema: Mapping[str, Any]) -> Encode:
    index = {symbol: i for i, symbol in enumerate(schema["symbols"])}
    name = schema["name"]

    def encode(value: Any, out: bytearray) -> None:
        symbol = _plain(value)
        try:
            write_long(index[symbol], out)
        except (KeyError, TypeError):
            raise ValueError(f"{symbol!r} is not a symbol of enum {name}") from None

    return encode


def _array(items: Encode) -> Encode:
    def encode(value: Any, out: bytearray) -> None:
        if not isinstance(value, list | tuple):
            value = list(value)  # a set or a frozenset
        if value:
            write_long(len(value), out)
            for item in value:
                items(item, out)
        out.append(0)

    return encode


def _map(values: Encode) -> Encode:
    def encode(value: Any, out: bytearray) -> None:
        if value:
            write_long(len(value), out)
            for key, item in value.items():
                _string(key, out)
                values(item, out)
        out.append(0)

    return encode


def _optional(null_index: int, other: Encode) -> Encode:
    none, some = bytes([null_index * 2]), (1 - null_index) * 2

    def encode(value: Any, out: bytearray) -> None:
        if value is None:
            out += none
        else:
            out.append(some)
            other(value, out)

    return encode


def _record(plan: tuple[tuple[str, Encode, Any], ...]) -> Encode:
    def encode(value: Any, out: bytearray) -> None:
        values = value if type(value) is dict else value.__dict__
        for name, field, default in plan:
            field(values.get(name, default), out)

    return encode


_PRIMITIVES: dict[str, Encode] = {
    "null": _null,
    "boolean": _boolean,
    "int": _long,
    "long": _long,
    "float": _float,
    "double": _double,
    "bytes": _bytes,
    "string": _string,
}

_LOGICAL: dict[tuple[str, str], Encode] = {
    ("long", "timestamp-micros"): _timestamp(1_000_000),
    ("long", "timestamp-millis"): _timestamp(1_000),
    ("int", "date"): _date,
    ("long", "time-micros"): _time(1_000_000),
    ("int", "time-millis"): _time(1_000),
    ("string", "uuid"): _string,
}


class Compiler:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.open: set[str] = set()

    def node(self, schema: Any) -> Encode:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            if schema in self.named:
                return self.node(self.named[schema])
            raise Unsupported(f"unknown type {schema}")
        if isinstance(schema, list):
            return self.union(schema)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "decimal" and kind == "bytes":
            return _decimal(schema)
        if logical is not None and (kind, logical) in _LOGICAL:
            return _LOGICAL[(kind, logical)]
        if kind == "record":
            return self.record(schema)
        if kind == "enum":
            return _enum(schema)
        if kind == "array":
            return _array(self.node(schema["items"]))
        if kind == "map":
            return _map(self.node(schema["values"]))
        if isinstance(kind, str) and kind in _PRIMITIVES and logical is None:
            return _PRIMITIVES[kind]
        if isinstance(kind, dict | list):
            return self.node(kind)
        raise Unsupported(f"type {kind} (logical type {logical})")

    def union(self, branches: list[Any]) -> Encode:
        if len(branches) == 2 and "null" in branches:
            null_index = branches.index("null")
            return _optional(null_index, self.node(branches[1 - null_index]))
        raise Unsupported(f"union {branches}")

    def record(self, schema: Mapping[str, Any]) -> Encode:
        return _record(self.fields(schema))

    def fields(self, schema: Mapping[str, Any]) -> tuple[tuple[str, Encode, Any], ...]:
        name = schema["name"]
        if name in self.open:
            raise Unsupported(f"recursive record {name}")
        self.open.add(name)
        try:
            return tuple(
                (f["name"], self.node(f["type"]), f.get("default")) for f in schema["fields"]
            )
        finally:
            self.open.discard(name)


def compile_writer(parsed: Any) -> Encode | None:
    """The writer of a schema parsed by ``fastavro.parse_schema``; None for a shape left to fastavro."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    try:
        return Compiler(named).node(parsed)
    except Unsupported:
        return None
