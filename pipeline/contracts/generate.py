"""Avro schemas from the pydantic event models.

One record per event type, ``<namespace>.<EventType>``: first a ``metadata``
field of the shared record ``cdcflow.EventMetadata`` (with
``cdcflow.SourcePosition`` inside it), then the payload fields in declaration
order. The shared records are inlined in every event schema, identically:
each ``.avsc`` is then complete on its own, the registry checks it without
schema references, and a consumer needs one schema to read one event. Within
one schema a named type is defined once and referenced by its full name after
that, as Avro requires.

Python type -> Avro:

=====================================  ===============================================
``bool`` / ``int`` / ``float``         ``boolean`` / ``long`` / ``double``
``str`` / ``bytes``                    ``string`` / ``bytes``
``Decimal`` (``max_digits``,           ``bytes`` + ``decimal`` (precision, scale); a
``decimal_places`` required)           Decimal without both is refused
``datetime`` / ``date`` / ``time``     ``long`` timestamp-micros / ``int`` date /
                                       ``long`` time-micros
``UUID``                               ``string`` + ``uuid``
``enum.Enum`` (str values) /           ``enum`` (symbols are the values); default symbol
``Literal["a", "b"]``                  from ``__avro_default__`` on the Enum class or
                                       ``json_schema_extra={"avro_enum_default": ...}``
``T | None``                           ``["null", T]`` with default ``null``
``list[T]`` / ``tuple[T, ...]`` / sets ``array``
``dict[str, T]``                       ``map``
a pydantic model                       a nested ``record``
=====================================  ===============================================

Field docs come from ``Field(description=...)``, record docs from the class
docstring; pydantic defaults become Avro defaults; field renames keep
compatibility with ``json_schema_extra={"avro_aliases": ["old_name"]}``.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import json
import re
import types
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.errors import SchemaContractError
from pipeline.events import DomainEvent, EventMetadata

__all__ = ["SHARED_NAMESPACE", "canonical", "render", "schema_for"]

SHARED_NAMESPACE = "cdcflow"
"""Namespace of the records every event shares (EventMetadata, SourcePosition)."""

# Key order of the rendered files: what a reviewer reads first comes first.
_SCHEMA_KEYS = (
    "type", "name", "namespace", "doc", "aliases", "symbols", "default", "size",
    "items", "values", "logicalType", "precision", "scale", "fields",
)  # fmt: skip
_FIELD_KEYS = ("name", "type", "doc", "default", "aliases", "order")
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_METADATA_DOC = "Where this event comes from: its id, type, aggregate and source position."


class _NoDefault(Exception):
    """A Python default does not fit the Avro type it was checked against."""


def schema_for(event: type[DomainEvent]) -> dict[str, Any]:
    """The Avro schema (as a JSON-ready dict, canonical key order) of one event type.

    Raises:
        SchemaContractError: a field's type has no Avro form (the message names
            the field), a Decimal lacks ``max_digits``/``decimal_places``, an
            enum symbol is not a valid Avro name, two types share a name, or a
            default does not fit its type.
    """
    builder = _Builder(event)
    schema: dict[str, Any] = canonical(builder.record(event, event.namespace()))
    return schema


def render(schema: Mapping[str, Any]) -> str:
    """The file text of a schema: 2-space JSON, canonical key order, final newline."""
    return json.dumps(canonical(schema), indent=2, ensure_ascii=False) + "\n"


def canonical(schema: Any) -> Any:
    """``schema`` with its keys in the stable order of the rendered files.

    Values of ``default`` are left as they are: they are data, not schema.
    """
    if isinstance(schema, list):
        return [canonical(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key in _ordered_keys(schema, _SCHEMA_KEYS):
        value = schema[key]
        if key == "fields" and isinstance(value, list):
            out[key] = [_canonical_field(f) for f in value]
        elif key in ("type", "items", "values"):
            out[key] = canonical(value)
        else:
            out[key] = value
    return out


def _canonical_field(field: Any) -> Any:
    if not isinstance(field, Mapping):
        return field
    return {
        key: canonical(field[key]) if key == "type" else field[key]
        for key in _ordered_keys(field, _FIELD_KEYS)
    }


def _ordered_keys(mapping: Mapping[str, Any], order: Sequence[str]) -> list[str]:
    known = [k for k in order if k in mapping]
    return known + sorted(k for k in mapping if k not in order)


def _doc(model: type) -> str | None:
    # Only the class's own docstring: inspect.getdoc would hand an event
    # without one the docstring of DomainEvent.
    raw = model.__dict__.get("__doc__")
    return inspect.cleandoc(raw) if isinstance(raw, str) and raw.strip() else None


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


class _Builder:
    """Walks one event model; remembers the named types it has defined."""

    def __init__(self, event: type[DomainEvent]) -> None:
        self.event = event
        self.namespace = event.namespace()
        self.named: dict[str, tuple[object, dict[str, Any]]] = {}

    # -- named types -------------------------------------------------------

    def _define(self, owner: object, namespace: str, name: str, build: Any) -> Any:
        """Define a named type once; later uses are references by full name."""
        full = f"{namespace}.{name}" if namespace else name
        if full in self.named:
            if self.named[full][0] is not owner:
                raise SchemaContractError(
                    f"{self.event.__name__}: two different types are both named {full!r} in Avro",
                    hint="rename one: within a schema, an Avro full name means one type",
                )
            return full
        schema: dict[str, Any] = {}
        self.named[full] = (owner, schema)
        schema.update(build())
        return schema

    def _namespace_of(self, model: type[BaseModel]) -> str:
        if model.__module__.startswith("pipeline.events"):
            return SHARED_NAMESPACE
        explicit = getattr(model, "__avro_namespace__", None)
        return explicit if isinstance(explicit, str) and explicit else self.namespace

    def record(self, model: type[BaseModel], namespace: str) -> Any:
        def build() -> dict[str, Any]:
            out: dict[str, Any] = {"type": "record", "name": model.__name__, "namespace": namespace}
            doc = _doc(model)
            if doc:
                out["doc"] = doc
            out["fields"] = [
                self._field(model, name, info) for name, info in model.model_fields.items()
            ]
            return out

        return self._define(model, namespace, model.__name__, build)

    def _enum(self, owner: object, name: str, symbols: list[Any], default: Any, where: str) -> Any:
        for symbol in symbols:
            if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
                raise SchemaContractError(
                    f"{where}: enum value {symbol!r} is not a valid Avro symbol",
                    hint="Avro symbols are strings matching [A-Za-z_][A-Za-z0-9_]*",
                )
        if isinstance(default, enum.Enum):
            default = default.value
        if default is not None and default not in symbols:
            raise SchemaContractError(f"{where}: enum default {default!r} is not one of {symbols}")

        def build() -> dict[str, Any]:
            out: dict[str, Any] = {"type": "enum", "name": name, "namespace": self.namespace}
            out["symbols"] = list(symbols)
            if default is not None:
                out["default"] = default
            return out

        return self._define(owner, self.namespace, name, build)

    # -- fields ------------------------------------------------------------

    def _field(self, model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
        where = f"{model.__name__}.{name}"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, Mapping) else {}
        out: dict[str, Any] = {"name": name}
        if issubclass(model, DomainEvent) and name == "metadata":
            # Optional in Python (the mapping runtime stamps it after the rule
            # ran) but always present in a produced event: required in Avro.
            out["type"] = self.record(EventMetadata, SHARED_NAMESPACE)
            out["doc"] = _METADATA_DOC
            return out
        avro_type = self._type(
            info.annotation, list(info.metadata), where, extra, _pascal(name), model
        )
        out["type"] = avro_type
        if info.description:
            out["doc"] = info.description
        default = _python_default(info)
        if default is PydanticUndefined and isinstance(avro_type, list) and "null" in avro_type:
            default = None
        if default is not PydanticUndefined:
            out["type"], out["default"] = self._default(avro_type, default, where)
        aliases = extra.get("avro_aliases")
        if isinstance(aliases, list | tuple):
            out["aliases"] = [str(a) for a in aliases]
        return out

    def _default(self, avro_type: Any, value: Any, where: str) -> tuple[Any, Any]:
        """The field type (a union reordered so the default's branch is first) and JSON default."""
        branches = avro_type if isinstance(avro_type, list) else [avro_type]
        for index, branch in enumerate(branches):
            try:
                encoded = self._json_default(branch, value)
            except _NoDefault:
                continue
            if isinstance(avro_type, list) and index:
                # Avro reads a union field's default with the union's first branch.
                avro_type = [branch, *branches[:index], *branches[index + 1 :]]
            return avro_type, encoded
        raise SchemaContractError(
            f"{where}: default {value!r} cannot be written as Avro {avro_type}"
        )

    def _json_default(self, avro_type: Any, value: Any) -> Any:
        if isinstance(avro_type, str) and avro_type in self.named:
            avro_type = self.named[avro_type][1]
        if isinstance(avro_type, list):
            return self._json_default(avro_type[0], value)
        kind = avro_type if isinstance(avro_type, str) else avro_type.get("type")
        logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
        if (
            logical == "decimal"
            and isinstance(value, Decimal | int)
            and not isinstance(value, bool)
        ):
            unscaled = int(Decimal(value).scaleb(avro_type["scale"]))
            size = max(1, (unscaled.bit_length() + 8) // 8)
            return unscaled.to_bytes(size, "big", signed=True).decode("latin-1")
        if logical == "timestamp-micros" and isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            delta = aware - _EPOCH
            return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        if logical == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return (value - _EPOCH.date()).days
        if logical == "time-micros" and isinstance(value, dt.time):
            return (
                (value.hour * 60 + value.minute) * 60 + value.second
            ) * 1_000_000 + value.microsecond
        if logical == "uuid" and isinstance(value, uuid.UUID | str):
            return str(value)
        if logical:
            raise _NoDefault
        if kind == "null" and value is None:
            return None
        if kind == "boolean" and isinstance(value, bool):
            return value
        if kind in ("int", "long") and isinstance(value, int) and not isinstance(value, bool):
            return value
        if (
            kind in ("float", "double")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return value
        if kind == "string" and isinstance(value, str) and not isinstance(value, enum.Enum):
            return value
        if kind == "bytes" and isinstance(value, bytes):
            return value.decode("latin-1")
        if kind == "enum":
            symbol = value.value if isinstance(value, enum.Enum) else value
            if symbol in avro_type["symbols"]:
                return symbol
        if kind == "array" and isinstance(value, list | tuple | set | frozenset):
            return [self._json_default(avro_type["items"], item) for item in value]
        if kind == "map" and isinstance(value, Mapping):
            return {str(k): self._json_default(avro_type["values"], v) for k, v in value.items()}
        if kind == "record" and isinstance(value, BaseModel):
            return {
                f["name"]: self._json_default(f["type"], getattr(value, f["name"]))
                for f in avro_type["fields"]
            }
        raise _NoDefault

    # -- types -------------------------------------------------------------

    def _type(
        self,
        tp: Any,
        meta: list[Any],
        where: str,
        extra: Mapping[str, Any],
        enum_name: str,
        owner: type[BaseModel],
    ) -> Any:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *more = get_args(tp)
            return self._type(base, meta + _flatten_metadata(more), where, extra, enum_name, owner)
        if tp is None or tp is types.NoneType:
            return "null"
        if origin in (Union, types.UnionType):
            args = get_args(tp)
            branches = ["null"] if types.NoneType in args else []
            for arg in args:
                if arg is not types.NoneType:
                    branch = self._type(arg, meta, where, extra, enum_name, owner)
                    branches.extend(branch if isinstance(branch, list) else [branch])
            return branches[0] if len(branches) == 1 else branches
        if origin is Literal:
            name = f"{owner.__name__}{enum_name}"
            return self._enum(
                (owner, where), name, list(get_args(tp)), extra.get("avro_enum_default"), where
            )
        if origin in (list, tuple, set, frozenset) or (origin is not None and _is_sequence(origin)):
            args = get_args(tp)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise SchemaContractError(
                    f"{where}: fixed-length tuples have no Avro form",
                    hint="use tuple[T, ...] or list[T]",
                )
            item = args[0] if args else Any
            return {"type": "array", "items": self._type(item, [], where, {}, enum_name, owner)}
        if origin is dict or (origin is not None and _is_mapping(origin)):
            key, value = get_args(tp) or (Any, Any)
            if key is not str:
                raise SchemaContractError(f"{where}: Avro maps have string keys; got {key!r}")
            return {"type": "map", "values": self._type(value, [], where, {}, enum_name, owner)}
        if not isinstance(tp, type):
            raise SchemaContractError(f"{where}: {tp!r} has no Avro form", hint=_SUPPORTED)
        if issubclass(tp, bool):
            return "boolean"
        if issubclass(tp, enum.Enum):
            default = getattr(tp, "__avro_default__", None) or extra.get("avro_enum_default")
            return self._enum(tp, tp.__name__, [m.value for m in tp], default, where)
        if issubclass(tp, int):
            return "long"
        if issubclass(tp, float):
            return "double"
        if issubclass(tp, str):
            return "string"
        if issubclass(tp, bytes):
            return "bytes"
        if issubclass(tp, Decimal):
            return _decimal(meta, where)
        if issubclass(tp, dt.datetime):
            return {"type": "long", "logicalType": "timestamp-micros"}
        if issubclass(tp, dt.date):
            return {"type": "int", "logicalType": "date"}
        if issubclass(tp, dt.time):
            return {"type": "long", "logicalType": "time-micros"}
        if issubclass(tp, uuid.UUID):
            return {"type": "string", "logicalType": "uuid"}
        if issubclass(tp, BaseModel):
            return self.record(tp, self._namespace_of(tp))
        raise SchemaContractError(f"{where}: {tp.__name__} has no Avro form", hint=_SUPPORTED)


_SUPPORTED = (
    "supported: bool, int, float, str, bytes, Decimal (with max_digits and decimal_places), "
    "datetime, date, time, UUID, str enums, Literal, Optional, list, dict[str, T], pydantic models"
)


def _is_sequence(origin: Any) -> bool:
    return (
        isinstance(origin, type)
        and issubclass(origin, Sequence)
        and not issubclass(origin, str | bytes)
    )


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _flatten_metadata(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return out


def _decimal(meta: list[Any], where: str) -> dict[str, Any]:
    precision = next(
        (m.max_digits for m in meta if getattr(m, "max_digits", None) is not None), None
    )
    scale = next(
        (m.decimal_places for m in meta if getattr(m, "decimal_places", None) is not None), None
    )
    if precision is None or scale is None:
        raise SchemaContractError(
            f"{where}: a Decimal needs max_digits and decimal_places to become an Avro decimal",
            hint="declare it as Field(max_digits=12, decimal_places=2) (a numeric(12,2) column)",
        )
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def _python_default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default
