"""The Connect schema Debezium writes for a PostgreSQL column type, under the connector's settings.

:func:`column_schema` turns a column as the catalogue has it (:class:`ColumnType`:
the base type after domains, the typmod, enum, array) into the field schema the
PostgreSQL connector (Debezium 3.x) writes for it with the value handling of
:class:`ValueModes` (``decimal.handling.mode``, ``time.precision.mode``, ...).
The decoders of :mod:`pipeline.cdc.values` read it as they read a record's own
schema. ``tests/integration/test_type_fidelity.py`` checks these schemas
against what the connector wrote for every type of the fidelity domain.
A type without an exact reading becomes :data:`~pipeline.cdc.values.UNSUPPORTED`:
its values fail where they are decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from pipeline.cdc.values import UNSUPPORTED

__all__ = ["DEBEZIUM_DEFAULTS", "ColumnType", "ValueModes", "column_schema"]

_MODES: Final = {
    "decimal.handling.mode": ("decimal", {"precise", "double", "string"}),
    "time.precision.mode": (
        "time_precision",
        {"adaptive", "adaptive_time_microseconds", "connect", "isostring"},
    ),
    "interval.handling.mode": ("interval", {"numeric", "string"}),
    "binary.handling.mode": ("binary", {"bytes", "base64", "base64-url-safe", "hex"}),
    "hstore.handling.mode": ("hstore", {"json", "map"}),
    "money.fraction.digits": ("money_fraction_digits", None),
}


# The value handling of a PostgreSQL connector that does not set the key (Debezium 3.x).
DEBEZIUM_DEFAULTS: Final = {
    "decimal.handling.mode": "precise",
    "time.precision.mode": "adaptive",
    "interval.handling.mode": "numeric",
    "binary.handling.mode": "bytes",
    "hstore.handling.mode": "json",
    "money.fraction.digits": "2",
}


@dataclass(frozen=True, slots=True)
class ValueModes:
    """The connector's value handling; the defaults are those cdcflow writes into the connector
    files it makes (``cdcflow init``, the example's), not all of them Debezium's own."""

    decimal: str = "precise"
    time_precision: str = "adaptive_time_microseconds"
    interval: str = "string"
    binary: str = "bytes"
    hstore: str = "json"
    money_fraction_digits: int = 2

    @classmethod
    def of_connector(cls, config: Mapping[str, Any]) -> ValueModes:
        """The modes a connector with this whole config writes: Debezium's default for a key not set.

        Raises:
            ValueError: a value the connector does not take.
        """
        return cls.from_connector(
            {key: config.get(key, default) for key, default in DEBEZIUM_DEFAULTS.items()}
        )

    @classmethod
    def from_connector(cls, config: Mapping[str, Any]) -> ValueModes:
        """The modes of a connector config (its keys); keys not given keep the defaults.

        Raises:
            ValueError: a key this module does not read, or a value the connector does not take.
        """
        values: dict[str, Any] = {}
        for key, value in config.items():
            if key not in _MODES:
                raise ValueError(f"{key!r} is not a value handling key ({', '.join(_MODES)})")
            attr, allowed = _MODES[key]
            if allowed is None:
                values[attr] = int(value)
            elif str(value).lower() not in allowed:
                raise ValueError(f"{key}={value!r}: expected one of {sorted(allowed)}")
            else:
                values[attr] = str(value).lower()
        return cls(**values)

    def as_connector(self) -> dict[str, str]:
        """The connector keys and values these modes stand for."""
        by_attr = {attr: key for key, (attr, _) in _MODES.items()}
        return {by_attr[f.name]: str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column as the catalogue has it: domains resolved, arrays by their element type."""

    name: str
    base: str
    """``pg_type.typname`` of the (element) type after domains: ``numeric``, ``int4``, ``text``."""
    typmod: int = -1
    enum: bool = False
    array: bool = False


def _string(name: str | None = None) -> dict[str, Any]:
    return {"type": "string", "name": name} if name else {"type": "string"}


_PLAIN: Final[dict[str, dict[str, Any]]] = {
    "bool": {"type": "boolean"},
    "int2": {"type": "int16"},
    "int4": {"type": "int32"},
    "int8": {"type": "int64"},
    "oid": {"type": "int64"},
    "float4": {"type": "float"},
    "float8": {"type": "double"},
    "timestamptz": _string("io.debezium.time.ZonedTimestamp"),
    "timetz": _string("io.debezium.time.ZonedTime"),
    "uuid": _string("io.debezium.data.Uuid"),
    "json": _string("io.debezium.data.Json"),
    "jsonb": _string("io.debezium.data.Json"),
    "xml": _string("io.debezium.data.Xml"),
    "ltree": _string("io.debezium.data.Ltree"),
    "varbit": {"type": "bytes", "name": "io.debezium.data.Bits"},
    **{
        text: _string()
        for text in (
            "text", "varchar", "bpchar", "citext", "inet", "cidr", "macaddr", "macaddr8",
            "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
        )
    },
}  # fmt: skip

_DATES: Final = {
    "connect": {"type": "int32", "name": "org.apache.kafka.connect.data.Date"},
    "isostring": _string("io.debezium.time.IsoDate"),
}
_TIMES: Final = {
    "connect": {"type": "int32", "name": "org.apache.kafka.connect.data.Time"},
    "isostring": _string("io.debezium.time.IsoTime"),
    "adaptive_time_microseconds": {"type": "int64", "name": "io.debezium.time.MicroTime"},
}
_TIMESTAMPS: Final = {
    "connect": {"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
    "isostring": _string("io.debezium.time.IsoTimestamp"),
}
_DOUBLE: Final = {"type": "double"}


def _precision(typmod: int) -> int:
    """The fractional second digits of a time or timestamp column (6 when not declared)."""
    return typmod if 0 <= typmod <= 6 else 6


def _decimal(scale: int, precision: int | None = None) -> dict[str, Any]:
    params = {"scale": str(scale)}
    if precision is not None:
        params["connect.decimal.precision"] = str(precision)
    return {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": params}


_VARIABLE_DECIMAL: Final = {
    "type": "struct",
    "name": "io.debezium.data.VariableScaleDecimal",
    "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}],
}


def _numeric(typmod: int, modes: ValueModes) -> dict[str, Any]:
    if modes.decimal != "precise":
        return _DOUBLE if modes.decimal == "double" else _string()
    if typmod < 4:
        return _VARIABLE_DECIMAL  # numeric without precision: a scale per value
    precision = ((typmod - 4) >> 16) & 0xFFFF
    # The typmod's low 16 bits as Debezium reads them: a negative scale (numeric(5, -2),
    # PostgreSQL 15+) is its 11-bit form, 2046, and the connector scales the value by that
    # too, so it decodes exactly.
    return _decimal((typmod - 4) & 0xFFFF, precision)


def _scalar(column: ColumnType, modes: ValueModes) -> dict[str, Any]:
    """The Connect schema Debezium writes for one value of the column's (element) type."""
    base, typmod = column.base, column.typmod
    if column.enum:
        return _string("io.debezium.data.Enum")
    if base in _PLAIN:
        return _PLAIN[base]
    mode = modes.time_precision
    if base == "date":
        return _DATES.get(mode, {"type": "int32", "name": "io.debezium.time.Date"})
    if base == "time":
        if mode in _TIMES:
            return _TIMES[mode]
        if _precision(typmod) <= 3:
            return {"type": "int32", "name": "io.debezium.time.Time"}
        return {"type": "int64", "name": "io.debezium.time.MicroTime"}
    if base == "timestamp":
        if mode in _TIMESTAMPS:
            return _TIMESTAMPS[mode]
        unit = "" if _precision(typmod) <= 3 else "Micro"
        return {"type": "int64", "name": f"io.debezium.time.{unit}Timestamp"}
    if base == "numeric":
        return _numeric(typmod, modes)
    if base == "money":
        if modes.decimal == "precise":
            return _decimal(modes.money_fraction_digits)
        return _DOUBLE if modes.decimal == "double" else _string()
    if base == "interval":
        if modes.interval == "string":
            return _string("io.debezium.time.Interval")
        return {"type": "int64", "name": "io.debezium.time.MicroDuration"}
    if base == "bytea":
        return {"type": "bytes"} if modes.binary == "bytes" else _string()
    if base == "bit":
        if typmod <= 1:
            return {"type": "boolean"}
        return {"type": "bytes", "name": "io.debezium.data.Bits"}
    if base == "hstore":
        if modes.hstore == "json":
            return _string("io.debezium.data.Json")
        return {"type": "map", "keys": _string(), "values": {**_string(), "optional": True}}
    return {"type": "string", "name": UNSUPPORTED, "parameters": {"type": base}}


def column_schema(column: ColumnType, modes: ValueModes) -> dict[str, Any]:
    """The Connect field schema of ``column`` (optional: null is always read as null)."""
    scalar = _scalar(column, modes)
    if column.array:
        scalar = {"type": "array", "items": {**scalar, "optional": True}}
    return {**scalar, "optional": True, "field": column.name}
