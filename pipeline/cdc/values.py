"""Column values: from JsonConverter's JSON to Python, driven by the Connect schema.

With a schema (``schemas.enable=true``) the field's semantic name decides
first (``io.debezium.time.MicroTimestamp``, ``org.apache.kafka.connect.data.Decimal``,
...), then its literal type. Names this module does not know fall back to the
literal type, so a new Debezium type arrives as its plain JSON form rather
than failing.

Without a schema the JSON is all there is, and these are its limits:
integers and text pass through (a timestamp stays a number, a Decimal stays
base64 text, a uuid or timestamptz stays text, a json column stays text);
numbers with a fraction become :class:`~decimal.Decimal` (exact, whether they
were a double or a NUMERIC decimal); an object with exactly ``scale`` and
``value`` is read as a ``VariableScaleDecimal``, which is safe because no
other column type has that shape. Mappings that must run schemaless convert
their columns themselves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from pipeline.cdc import numeric, temporal
from pipeline.cdc.numeric import ValueDecodeError

__all__ = [
    "UNSUPPORTED",
    "decode_schemaless",
    "decode_value",
    "decoder_for",
    "plain_type",
    "struct_decoders",
]

_Compiled = Callable[[Any], Any]
_Compile = Callable[[dict[str, Any]], _Compiled]
"""Turns a column schema into the function that decodes its non-null values."""


def _json_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueDecodeError(f"json: expected text, got {type(value).__name__}")
    try:
        return json.loads(value, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueDecodeError(f"json: {exc}") from exc


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueDecodeError(f"uuid: {value!r} is not a UUID") from exc


def _bits(value: Any) -> int:
    # Debezium sends the bits little-endian, bit 0 being the rightmost character of
    # PostgreSQL's text form; the integer's binary digits are that text (leading zeros aside).
    return int.from_bytes(numeric.decode_bytes(value), "little")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueDecodeError(f"expected text, got {type(value).__name__}")
    return value


def _fixed(decode: _Compiled) -> _Compile:
    """A decoder that needs nothing from the schema."""
    return lambda schema: decode


def _decimal(schema: dict[str, Any]) -> _Compiled:
    params = schema.get("parameters") or {}
    if not isinstance(params, dict):  # not a Connect schema: each value fails as it did
        return lambda value: numeric.decode_decimal(value, params.get("scale"))
    return numeric.decimal_decoder(params.get("scale"))


UNSUPPORTED = "cdcflow.catalogue.Unsupported"
"""The name :mod:`pipeline.cdc.catalogue` gives a column type it has no exact reading of."""


def _unsupported(schema: dict[str, Any]) -> _Compiled:
    params = schema.get("parameters")
    kind = params.get("type") if isinstance(params, dict) else None

    def fail(value: Any) -> Any:
        raise ValueDecodeError(
            f"type {kind} has no exact reading without the record's schema "
            "(give the connector value.converter.schemas.enable=true)"
        )

    return fail


_SEMANTIC: dict[str, _Compile] = {
    UNSUPPORTED: _unsupported,
    "org.apache.kafka.connect.data.Decimal": _decimal,
    "io.debezium.data.VariableScaleDecimal": _fixed(numeric.decode_variable_decimal),
    "io.debezium.time.Date": _fixed(temporal.date_from_days),
    "org.apache.kafka.connect.data.Date": _fixed(temporal.date_from_days),
    "io.debezium.time.Time": _fixed(partial(temporal.time_from_midnight, unit="ms")),
    "io.debezium.time.MicroTime": _fixed(partial(temporal.time_from_midnight, unit="us")),
    "io.debezium.time.NanoTime": _fixed(partial(temporal.time_from_midnight, unit="ns")),
    "org.apache.kafka.connect.data.Time": _fixed(partial(temporal.time_from_midnight, unit="ms")),
    "io.debezium.time.Timestamp": _fixed(partial(temporal.datetime_from_epoch, unit="ms")),
    "io.debezium.time.MicroTimestamp": _fixed(partial(temporal.datetime_from_epoch, unit="us")),
    "io.debezium.time.NanoTimestamp": _fixed(partial(temporal.datetime_from_epoch, unit="ns")),
    "org.apache.kafka.connect.data.Timestamp": _fixed(
        partial(temporal.datetime_from_epoch, unit="ms")
    ),
    "io.debezium.time.ZonedTimestamp": _fixed(temporal.parse_zoned_timestamp),
    "io.debezium.time.ZonedTime": _fixed(temporal.parse_zoned_time),
    "io.debezium.time.IsoDate": _fixed(temporal.parse_iso_date),
    "io.debezium.time.IsoTime": _fixed(temporal.parse_iso_time),
    "io.debezium.time.IsoTimestamp": _fixed(temporal.parse_iso_timestamp),
    "io.debezium.time.MicroDuration": _fixed(partial(temporal.duration, unit="us")),
    "io.debezium.time.NanoDuration": _fixed(partial(temporal.duration, unit="ns")),
    "io.debezium.time.Interval": _fixed(temporal.parse_interval),
    "io.debezium.data.Uuid": _fixed(_uuid),
    "io.debezium.data.Json": _fixed(_json_text),
    "io.debezium.data.Enum": _fixed(_text),
    "io.debezium.data.Xml": _fixed(_text),
    "io.debezium.data.Ltree": _fixed(_text),
    "io.debezium.data.Bits": _fixed(_bits),
}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueDecodeError(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueDecodeError(f"expected a boolean, got {value!r}")
    return value


def _array(schema: dict[str, Any], value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueDecodeError(f"expected an array, got {type(value).__name__}")
    items = schema.get("items")
    return [decode_value(items, v) for v in value]


def _map(schema: dict[str, Any], value: Any) -> dict[Any, Any]:
    keys, values = schema.get("keys"), schema.get("values")
    if isinstance(value, dict):
        return {k: decode_value(values, v) for k, v in value.items()}
    if isinstance(value, list):
        # JsonConverter writes maps with non-string keys as a list of [key, value] pairs.
        try:
            return {decode_value(keys, k): decode_value(values, v) for k, v in value}
        except (TypeError, ValueError) as exc:
            raise ValueDecodeError("map: expected [key, value] pairs") from exc
    raise ValueDecodeError(f"expected a map, got {type(value).__name__}")


def _struct(schema: dict[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueDecodeError(f"expected an object, got {type(value).__name__}")
    fields = {f.get("field"): f for f in schema.get("fields") or []}
    return {k: decode_value(fields.get(k), v) for k, v in value.items()}


def _nested(decode: Callable[[dict[str, Any], Any], Any]) -> _Compile:
    """A container's decoder: its parts' schemas are read per value, where they are used."""
    return lambda schema: partial(decode, schema)


_LITERAL: dict[str, _Compile] = {
    "int8": _fixed(_int),
    "int16": _fixed(_int),
    "int32": _fixed(_int),
    "int64": _fixed(_int),
    "float": _fixed(numeric.decode_float),
    "double": _fixed(numeric.decode_float),
    "boolean": _fixed(_bool),
    "string": _fixed(_text),
    "bytes": _fixed(numeric.decode_bytes),
    "array": _nested(_array),
    "map": _nested(_map),
    "struct": _nested(_struct),
}


def decode_value(schema: dict[str, Any] | None, value: Any) -> Any:
    """One value, by its Connect schema (``None``: schemaless).

    Raises:
        ValueDecodeError: the value does not have the form its schema promises.
    """
    if value is None:
        return None
    return decoder_for(schema)(value)


def decoder_for(schema: dict[str, Any] | None) -> Callable[[Any], Any]:
    """``decode_value(schema, ·)`` for non-null values, with the schema's dispatch done once.

    The transformer decodes every column of every record; resolving the
    semantic name, the literal type and their parameters once per column
    schema (not per value) is a large share of the decoder's time saved.
    """
    if schema is None:
        return decode_schemaless
    name = schema.get("name")
    if isinstance(name, str) and name in _SEMANTIC:
        return _SEMANTIC[name](schema)
    literal = _LITERAL.get(str(schema.get("type", "")).lower())
    if literal is None:
        return decode_schemaless
    return literal(schema)


_PLAIN_LITERALS: dict[str, type] = {
    "int8": int,
    "int16": int,
    "int32": int,
    "int64": int,
    "string": str,
    "boolean": bool,
}
_PLAIN_TEXT_NAMES = frozenset(
    {"io.debezium.data.Enum", "io.debezium.data.Xml", "io.debezium.data.Ltree"}
)


def plain_type(schema: dict[str, Any] | None) -> type | None:
    """The JSON type whose values ``decoder_for(schema)`` returns unchanged (int, str, bool).

    A value of exactly that type needs no call to the decoder; None where
    every value is converted (dates, decimals, uuids, ...) or the schema is absent.
    """
    if schema is None:
        return None
    name = schema.get("name")
    if isinstance(name, str) and name in _SEMANTIC:
        return str if name in _PLAIN_TEXT_NAMES else None
    return _PLAIN_LITERALS.get(str(schema.get("type", "")).lower())


def struct_decoders(schema: dict[str, Any]) -> dict[Any, Callable[[Any], Any]] | None:
    """The field decoders of a schema that decodes as a plain struct; None for any other."""
    name = schema.get("name")
    if isinstance(name, str) and name in _SEMANTIC:
        return None
    if str(schema.get("type", "")).lower() != "struct":
        return None
    return {f.get("field"): decoder_for(f) for f in schema.get("fields") or []}


def decode_schemaless(value: Any) -> Any:
    """The best safe reading of a value that comes without a schema (see the module doc)."""
    if isinstance(value, dict):
        if _is_variable_decimal(value):
            return numeric.decode_variable_decimal(value)
        return {k: decode_schemaless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_schemaless(v) for v in value]
    return value


def _is_variable_decimal(value: dict[str, Any]) -> bool:
    return (
        set(value) == {"scale", "value"}
        and isinstance(value["scale"], int)
        and isinstance(value["value"], str)
    )
