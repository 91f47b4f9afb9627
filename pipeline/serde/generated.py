"""An event type's writer as one generated function: the common field kinds inlined.

:mod:`.writer` compiles a schema into a tree of small encoders, one call per
value. For the kinds nearly every event field is (long, string, UUID,
boolean, double, timestamp, an optional of those, a nested record such as the
metadata) that call costs more than the encoding itself; so the writer of a
whole event is generated as Python source once per contract, with those kinds
written inline, and compiled. The rarer kinds (decimal, enum, array, map,
date, time, bytes) call :mod:`.writer`'s encoder for them. The bytes are the
same (``tests/unit/test_serde_writer.py`` checks both against fastavro's).

The source only ever holds field names (as Python literals) and numbers from
the schema; every other value it needs is passed in as a named constant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.serde.writer import (
    DOUBLE,
    EPOCH,
    Compiler,
    Unsupported,
    as_int,
    as_str,
    write_long,
)

__all__ = ["RecordWriter", "generate_writer"]

RecordWriter = Callable[[Mapping[str, Any], bytearray], None]
"""Append the encoding of a record, given its field values by name."""

_HELPERS: dict[str, Any] = {
    "UTC": UTC,
    "datetime": datetime,
    "EPOCH": EPOCH,
    "DOUBLE": DOUBLE,
    "as_int": as_int,
    "as_str": as_str,
    "write_long": write_long,
}


class _Source:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.encoders = Compiler(named)
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.count = 0
        self.open: set[str] = set()

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, value: Any, prefix: str = "k") -> str:
        name = self.name(prefix)
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def node(self, schema: Any, x: str, depth: int) -> None:
        if isinstance(schema, str):
            if schema in ("long", "int"):
                return self.long(x, depth)
            if schema == "string":
                return self.string(x, depth)
            if schema == "boolean":
                return self.emit(depth, f"out.append(1 if {x} else 0)")
            if schema == "double":
                return self.emit(depth, f"out += DOUBLE(float({x}))")
            if schema in self.named:
                return self.node(self.named[schema], x, depth)
            return self.call(schema, x, depth)
        if isinstance(schema, list):
            return self.union(schema, x, depth)
        kind, logical = schema["type"], schema.get("logicalType")
        if kind == "string" and logical in (None, "uuid"):
            return self.string(x, depth)
        if kind == "long" and logical == "timestamp-micros":
            return self.timestamp(x, depth)
        if kind in ("long", "int") and logical is None:
            return self.long(x, depth)
        if kind == "record":
            return self.record(schema, x, depth)
        if isinstance(kind, dict | list) and logical is None:
            return self.node(kind, x, depth)
        return self.call(schema, x, depth)

    def call(self, schema: Any, x: str, depth: int) -> None:
        encode = self.constant(self.encoders.node(schema), "enc")
        self.emit(depth, f"{encode}({x}, out)")

    def long(self, x: str, depth: int) -> None:
        self.emit(depth, f"if type({x}) is not int:")
        self.emit(depth + 1, f"{x} = as_int({x})")
        self.emit(depth, f"if 0 <= {x} < 64:")
        self.emit(depth + 1, f"out.append({x} << 1)")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"write_long({x}, out)")

    def string(self, x: str, depth: int) -> None:
        data = self.name("b")
        self.emit(depth, f"{data} = ({x} if type({x}) is str else as_str({x})).encode()")
        self.emit(depth, f"if len({data}) < 64:")
        self.emit(depth + 1, f"out.append(len({data}) << 1)")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"write_long(len({data}), out)")
        self.emit(depth, f"out += {data}")

    def timestamp(self, x: str, depth: int) -> None:
        delta = self.name("t")
        self.emit(depth, f"if isinstance({x}, datetime):")
        # A naive datetime is the wall clock read as UTC (see writer._timestamp).
        self.emit(depth + 1, f"if {x}.tzinfo is None:")
        self.emit(depth + 2, f"{x} = {x}.replace(tzinfo=UTC)")
        self.emit(depth + 1, f"{delta} = {x} - EPOCH")
        self.emit(
            depth + 1,
            f"{x} = ({delta}.days * 86400 + {delta}.seconds) * 1000000 + {delta}.microseconds",
        )
        self.long(x, depth)

    def union(self, branches: list[Any], x: str, depth: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported(f"union {branches}")
        null = branches.index("null")
        self.emit(depth, f"if {x} is None:")
        self.emit(depth + 1, f"out.append({null * 2})")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"out.append({(1 - null) * 2})")
        self.node(branches[1 - null], x, depth + 1)

    def record(self, schema: Mapping[str, Any], x: str, depth: int) -> None:
        values = self.name("d")
        self.emit(depth, f"{values} = {x} if type({x}) is dict else {x}.__dict__")
        self.fields(schema, values, depth)

    def fields(self, schema: Mapping[str, Any], values: str, depth: int) -> None:
        name = schema["name"]
        if name in self.open:
            raise Unsupported(f"recursive record {name}")
        self.open.add(name)
        for field in schema["fields"]:
            value = self.name("v")
            default = field.get("default")
            fallback = "None" if default is None else self.constant(default)
            self.emit(depth, f"{value} = {values}.get({field['name']!r}, {fallback})")
            self.node(field["type"], value, depth)
        self.open.discard(name)


def generate_writer(parsed: Any) -> RecordWriter | None:
    """The generated writer of a record schema parsed by ``fastavro.parse_schema``.

    None when the schema is not a record, or has a shape left to fastavro.
    """
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return None
    source = _Source(parsed.get("__named_schemas", {}))
    try:
        source.fields(parsed, "values", 1)
    except Unsupported:
        return None
    text = "def write(values, out):\n" + "\n".join([*source.lines, "    return None"]) + "\n"
    namespace = {**_HELPERS, **source.constants}
    exec(compile(text, f"<cdcflow writer of {parsed['name']}>", "exec"), namespace)
    write: RecordWriter = namespace["write"]
    return write
