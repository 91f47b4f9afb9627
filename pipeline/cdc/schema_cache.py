"""A CDC record's JsonConverter envelope: its schema (parsed once per distinct schema) and payload.

With ``schemas.enable=true`` every record repeats its Connect schema (~80% of
its bytes). :func:`envelope` parses a schema the first time its text is seen
and keeps it, with what decoding needs resolved once (:class:`KnownSchema`);
later records of that schema have only their payload parsed (orjson, with
Decimals where a fraction may be).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import orjson

from pipeline.cdc.model import RecordRef
from pipeline.cdc.rows import RowPlan, row_fields, row_plan
from pipeline.cdc.values import decode_schemaless, decode_value, struct_decoders
from pipeline.errors import DecodeError

__all__ = [
    "KnownSchema",
    "as_bytes",
    "envelope",
    "needs_decimals",
    "parse_exact",
    "plain_payload",
]


def as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def parse_exact(data: bytes, what: str, ref: RecordRef) -> Any:
    """The whole record parsed with Decimals for fractions (every digit kept)."""
    try:
        # Decimal for fractions: a NUMERIC-format Decimal keeps every digit.
        return json.loads(data, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(
            f"record {what} is not JSON ({exc})",
            hint="the connector must use org.apache.kafka.connect.json.JsonConverter",
            **ref.error_fields(),
        ) from exc


def _split(doc: Any) -> tuple[dict[str, Any] | None, Any]:
    """Separate JsonConverter's schema envelope from the payload, if there is one."""
    if isinstance(doc, dict) and set(doc) == {"schema", "payload"}:
        schema = doc["schema"]
        return (schema if isinstance(schema, dict) else None), doc["payload"]
    return None, doc


class KnownSchema:
    """A Connect schema as parsed, with what decoding needs from it resolved once.

    Resolved on first use, where the record is decoded, so a malformed schema
    fails that record (a DecodeError) exactly where it did before the cache.
    """

    __slots__ = ("_before_fields", "_key", "_rows", "fractions", "name", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.name = schema.get("name")
        self._rows: tuple[RowPlan | None, RowPlan | None] | None = None
        self._before_fields: dict[str, dict[str, Any]] | None = None
        self._key: dict[Any, Callable[[Any], Any]] | None = None
        self.fractions = _fractions(schema)
        """Where a number with a fraction may be (see :func:`_fractions`); None: anywhere."""

    def rows(self) -> tuple[RowPlan | None, RowPlan | None]:
        """The plans of the before and after images."""
        if self._rows is None:
            self._before_fields = row_fields(self.schema, "before")
            before = row_plan(self._before_fields)
            self._rows = (before, row_plan(row_fields(self.schema, "after"), like=before))
        return self._rows

    def before_fields(self) -> dict[str, dict[str, Any]] | None:
        """The before image's column schemas by name (None: the schema has no before struct)."""
        self.rows()
        return self._before_fields

    def key(self, payload: dict[str, Any]) -> Any:
        """A key payload decoded as ``decode_value(schema, payload)`` would."""
        if self._key is None:
            fields = struct_decoders(self.schema)
            if fields is None:
                return decode_value(self.schema, payload)
            self._key = fields
        decoders = self._key
        return {
            k: None if v is None else decoders.get(k, decode_schemaless)(v)
            for k, v in payload.items()
        }


# JsonConverter writes {"schema":<schema>,"payload":<payload>}, compact, the schema
# first. A record's schema is ~80% of its bytes and is the same for every record
# of a table (until the table changes), so it is parsed once: the text between
# these two markers is looked up, and only the payload is parsed. The text is
# cached only after a full parse proved it is exactly the record's schema, so a
# marker inside a value can never split a record wrongly.
#
# Finding the marker and hashing the text still costs more than parsing the
# payload; so each topic also keeps the texts it has seen (_RECENT), and a record
# that starts with the head, one of them and the marker has that schema. That is
# the same cut: a text that was cut at the first marker of a record holds no
# marker, and none can start inside it when the marker follows it.
_HEAD: Final = b'{"schema":'
_SEPARATOR: Final = b',"payload":'
_SCHEMAS: dict[bytes, KnownSchema] = {}
_RECENT: Final[dict[str, dict[str, list[tuple[bytes, bytes]]]]] = {"key": {}, "value": {}}
_DECODER: Final = json.JSONDecoder(parse_float=Decimal)
_SCHEMAS_MAX: Final = 512
_RECENT_MAX: Final = 8
"""Schema texts kept per topic: a topic routed from several tables has one schema each."""


_INTEGER_TYPES: Final = frozenset({"int8", "int16", "int32", "int64"})
_EXACT_TEXT_TYPES: Final = frozenset({"string", "bytes", "boolean"})
_NUMBER_NAMES: Final = ("Decimal",)  # Connect Decimal and VariableScaleDecimal: digits matter


def _integers_only(schema: Any) -> bool:
    """True when no value under ``schema`` can be a JSON number with a fraction or exponent.

    Decimals (written as numbers with ``decimal.format=NUMERIC``), floats and any
    type this does not know may be; integers, text, bytes and booleans may not.
    """
    if not isinstance(schema, dict):
        return False
    name = schema.get("name")
    if isinstance(name, str) and name.endswith(_NUMBER_NAMES):
        return False
    kind = str(schema.get("type", "")).lower()
    if kind in _INTEGER_TYPES or kind in _EXACT_TEXT_TYPES:
        return True
    if kind == "struct":
        return all(_integers_only(f) for f in schema.get("fields") or [])
    if kind == "array":
        return _integers_only(schema.get("items"))
    if kind == "map":
        return _integers_only(schema.get("keys")) and _integers_only(schema.get("values"))
    return False


_FLOAT_TYPES: Final = frozenset({"float", "double", "float32", "float64"})


def _fraction_columns(columns: list[Any]) -> frozenset[str] | None:
    """Columns that may hold a number with a fraction (floats, decimals); None: nested ones too."""
    names: set[str] = set()
    for column in columns:
        if not isinstance(column, dict) or _integers_only(column):
            if isinstance(column, dict):
                continue
            return None
        name = column.get("name")
        kind = str(column.get("type", "")).lower()
        if kind in _FLOAT_TYPES or (isinstance(name, str) and name.endswith(_NUMBER_NAMES)):
            names.add(str(column.get("field")))
            continue
        return None
    return frozenset(names)


def _fractions(schema: dict[str, Any]) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The row images and their columns where a JSON number may have a fraction.

    ``((), columns)`` for a key (the payload is the row), ``(("before", "after"),
    columns)`` for a change event whose other blocks hold no fractions; None
    when fractions may be elsewhere (the payload is always parsed with Decimals).
    """
    if str(schema.get("type", "")).lower() != "struct":
        return None
    fields = [f for f in schema.get("fields") or [] if isinstance(f, dict)]
    images = [f for f in fields if f.get("field") in ("before", "after")]
    if not images:
        columns = _fraction_columns(fields)
        return None if columns is None else ((), columns)
    if not all(_integers_only(f) for f in fields if f not in images):
        return None
    found: set[str] = set()
    for image in images:
        columns = _fraction_columns(image.get("fields") or [])
        if columns is None:
            return None
        found |= columns
    return tuple(str(f.get("field")) for f in images), frozenset(found)


def _payload(known: KnownSchema, data: bytes | memoryview) -> Any:
    """Parse a payload whose schema is known; raises ValueError when it is not plain JSON.

    orjson is several times faster than json, but reads a fraction as a float,
    where cdcflow keeps every digit (``parse_float=Decimal``). Where the schema
    says a fraction can only be in some columns, those are looked at, and a
    payload with a float there is parsed again with Decimals.
    """
    if known.fractions is not None:
        payload = orjson.loads(data)
        if not needs_decimals(known, payload):
            return payload
    return _DECODER.decode(str(data, "utf-8", "surrogatepass"))


def needs_decimals(known: KnownSchema, payload: Any) -> bool:
    """True when ``payload`` (parsed by orjson) must be parsed again with Decimals.

    So when a float is where ``known`` says a fraction may be, or fractions may be anywhere.
    """
    where = known.fractions
    if where is None:
        return True
    images, columns = where
    if not columns or not isinstance(payload, dict):
        return False
    for row in [payload.get(i) for i in images] if images else [payload]:
        if isinstance(row, dict):
            for column in columns:
                if type(row.get(column)) is float:
                    return True
    return False


def plain_payload(data: bytes, what: str, ref: RecordRef) -> tuple[Any, bool]:
    """A record without a schema envelope, parsed by orjson; and whether it was parsed exactly.

    Not exactly (False): orjson read any fraction as a float, which may have
    lost digits; once the table's types say where fractions may be,
    :func:`needs_decimals` tells whether to parse it again with
    :func:`parse_exact`. A record that is not plain JSON to orjson is parsed
    with Decimals at once (True).
    """
    try:
        payload = orjson.loads(data)
    except ValueError:
        return parse_exact(data, what, ref), True
    return payload, False


def _schema_text(data: bytes) -> tuple[bytes, int] | None:
    if not data.startswith(_HEAD) or not data.endswith(b"}"):
        return None
    end = data.find(_SEPARATOR, len(_HEAD))
    return (data[len(_HEAD) : end], end) if end > 0 else None


def _recent(data: bytes, prefixes: list[tuple[bytes, bytes]]) -> tuple[KnownSchema, int] | None:
    """The known schema of a record that starts with one of ``prefixes``, and where its payload is.

    A prefix is ``{"schema":<text>,"payload":`` for a schema text known to be exact.
    """
    if data.endswith(b"}"):
        for prefix, text in prefixes:
            if data.startswith(prefix):
                known = _SCHEMAS.get(text)
                return None if known is None else (known, len(prefix))
    return None


def envelope(data: bytes, what: str, ref: RecordRef) -> tuple[KnownSchema | None, Any]:
    """The record's schema (parsed once per distinct schema) and its payload."""
    texts = _RECENT[what].get(ref.topic)
    seen = _recent(data, texts) if texts else None
    if seen is not None:
        try:
            return seen[0], _payload(seen[0], memoryview(data)[seen[1] : -1])
        except ValueError:
            pass  # not plain JSON to orjson: the full parse below decides
    cut = _schema_text(data)
    if cut is not None:
        known = _SCHEMAS.get(cut[0])
        if known is not None:
            _remember(what, ref.topic, cut[0])
            try:
                return known, _payload(known, data[cut[1] + len(_SEPARATOR) : -1])
            except ValueError:
                # Not plain JSON to orjson (NaN, a lone surrogate, an integer beyond 64
                # bits) or not JSON at all: the full parse below decides, as before.
                pass
    schema, payload = _split(parse_exact(data, what, ref))
    if schema is None:
        return None, payload
    compiled = KnownSchema(schema)
    if cut is not None and _loads_or_none(cut[0]) == schema:
        if len(_SCHEMAS) >= _SCHEMAS_MAX:
            # Schemas change rarely: a full cache is a sign of churn, start over.
            _SCHEMAS.clear()
            for recent in _RECENT.values():
                recent.clear()
        _SCHEMAS[cut[0]] = compiled
        _remember(what, ref.topic, cut[0])
    return compiled, payload


def _remember(what: str, topic: str, text: bytes) -> None:
    prefixes = _RECENT[what].setdefault(topic, [])
    if all(known != text for _, known in prefixes):
        if len(prefixes) >= _RECENT_MAX:
            del prefixes[0]
        prefixes.append((_HEAD + text + _SEPARATOR, text))


def _loads_or_none(text: bytes) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
