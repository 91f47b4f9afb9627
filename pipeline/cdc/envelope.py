"""Decoding one Kafka record written by the Debezium PostgreSQL connector.

Records come from Kafka Connect's JsonConverter, with schemas
(``{"schema": ..., "payload": ...}``, ``schemas.enable=true``) or without (the
payload alone). :func:`decode_record` classifies the record first, then
decodes it:

1. a null value is a tombstone (``tombstones.on.delete``) -> ``Skip(TOMBSTONE)``
2. a heartbeat (topic ``__debezium-heartbeat.<prefix>`` or schema
   ``io.debezium.connector.common.Heartbeat``) -> ``Skip(HEARTBEAT)``
3. transaction metadata (``<prefix>.transaction``, BEGIN / END) -> ``Skip(TRANSACTION)``
4. a logical decoding message (op ``m``) -> ``Skip(MESSAGE)``
5. a change event (op ``c``, ``u``, ``d``, ``r``, ``t``) -> :class:`Change`

Anything else raises :class:`~pipeline.errors.DecodeError` with the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, cast

import orjson
from pydantic import ValidationError

from pipeline.cdc.identity import key_only_shape
from pipeline.cdc.model import OPS, Change, Op, RecordRef, Skip, SkipReason, TransactionBlock
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.rows import (
    Column,
    LazyRow,
    RowPlan,
    decode_planned,
    fill_unchanged,
    frozen,
    row_fields,
    row_plan,
)
from pipeline.cdc.toast import matcher
from pipeline.cdc.values import decode_schemaless, decode_value, struct_decoders
from pipeline.errors import DecodeError
from pipeline.events import SourcePosition

__all__ = ["DEFAULT_OPTIONS", "DecoderOptions", "decode_record"]

HEARTBEAT_SCHEMA: Final = "io.debezium.connector.common.Heartbeat"
TRANSACTION_SCHEMA: Final = "io.debezium.connector.common.TransactionMetadataValue"
_NOT_SNAPSHOT: Final = frozenset({"false", ""})
_OLD_IMAGE_OPS: Final = frozenset({"u", "d"})


@dataclass(frozen=True, slots=True)
class DecoderOptions:
    """The connector settings the decoder must mirror; defaults are Debezium's."""

    unavailable_value_placeholder: str = "__debezium_unavailable_value"
    """The connector's ``unavailable.value.placeholder``."""
    heartbeat_topic_prefix: str = "__debezium-heartbeat"
    """The connector's ``topic.heartbeat.prefix``."""
    transaction_topic: str = "transaction"
    """The connector's ``topic.transaction`` (the topic is ``<prefix>.<this>``)."""


DEFAULT_OPTIONS: Final = DecoderOptions()


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _parse(data: bytes, what: str, ref: RecordRef) -> Any:
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


class _Schema:
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
_SCHEMAS: dict[bytes, _Schema] = {}
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


def _payload(known: _Schema, data: bytes | memoryview) -> Any:
    """Parse a payload whose schema is known; raises ValueError when it is not plain JSON.

    orjson is several times faster than json, but reads a fraction as a float,
    where cdcflow keeps every digit (``parse_float=Decimal``). Where the schema
    says a fraction can only be in some columns, those are looked at, and a
    payload with a float there is parsed again with Decimals.
    """
    where = known.fractions
    if where is not None:
        payload = orjson.loads(data)
        images, columns = where
        if not columns or not isinstance(payload, dict):
            return payload
        for row in [payload.get(i) for i in images] if images else [payload]:
            if isinstance(row, dict):
                for column in columns:
                    if type(row.get(column)) is float:
                        return _DECODER.decode(str(data, "utf-8", "surrogatepass"))
        return payload
    return _DECODER.decode(str(data, "utf-8", "surrogatepass"))


def _schema_text(data: bytes) -> tuple[bytes, int] | None:
    if not data.startswith(_HEAD) or not data.endswith(b"}"):
        return None
    end = data.find(_SEPARATOR, len(_HEAD))
    return (data[len(_HEAD) : end], end) if end > 0 else None


def _recent(data: bytes, prefixes: list[tuple[bytes, bytes]]) -> tuple[_Schema, int] | None:
    """The known schema of a record that starts with one of ``prefixes``, and where its payload is.

    A prefix is ``{"schema":<text>,"payload":`` for a schema text known to be exact.
    """
    if data.endswith(b"}"):
        for prefix, text in prefixes:
            if data.startswith(prefix):
                known = _SCHEMAS.get(text)
                return None if known is None else (known, len(prefix))
    return None


def _envelope(data: bytes, what: str, ref: RecordRef) -> tuple[_Schema | None, Any]:
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
    schema, payload = _split(_parse(data, what, ref))
    if schema is None:
        return None, payload
    compiled = _Schema(schema)
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


def decode_record(
    value: bytes | str | None,
    *,
    topic: str,
    key: bytes | str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    options: DecoderOptions = DEFAULT_OPTIONS,
    lazy: bool = False,
) -> Change | Skip:
    """Decode one Debezium record into a :class:`Change`, or classify it as a :class:`Skip`.

    ``lazy``: row image columns that need decoding (dates, decimals, uuids,
    json, ...) are decoded when first read (:class:`~pipeline.cdc.rows.LazyRow`),
    the transformer's way: a column no rule reads costs nothing. A value that
    does not decode then raises its DecodeError where it is read, and a column
    nothing reads is never checked (see docs/guarantees.md, "Bad values").
    The key, the source block, nulls, TOAST placeholders and values of a plain
    type (integers, text, booleans) are read at once either way.

    Raises:
        DecodeError: the record is not JSON, not a Debezium record, or a value
            does not match its schema; carries topic, partition, offset, key and value.
    """
    ref = RecordRef(topic, partition, offset, _as_bytes(key), _as_bytes(value))
    if not ref.value:
        return Skip(SkipReason.TOMBSTONE, "null value", ref)
    compiled, payload = _envelope(ref.value, "value", ref)
    if payload is None:
        return Skip(SkipReason.TOMBSTONE, "null payload", ref)
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"payload must be a JSON object, got {kind}", **ref.error_fields())
    try:
        skip = _classify(topic, compiled.schema if compiled else None, payload, ref, options)
        return skip if skip is not None else _change(compiled, payload, ref, options, lazy)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # A record of an unexpected shape (a schema that is not a Connect schema, a block of
        # the wrong type) must be dead-lettered with its evidence, never crash the consumer.
        raise DecodeError(
            f"malformed Debezium record: {type(exc).__name__}: {exc}", **ref.error_fields()
        ) from exc


def _classify(
    topic: str,
    schema: dict[str, Any] | None,
    payload: dict[str, Any],
    ref: RecordRef,
    options: DecoderOptions,
) -> Skip | None:
    name = schema.get("name") if schema else None
    if name == HEARTBEAT_SCHEMA or topic.startswith(options.heartbeat_topic_prefix + "."):
        return Skip(SkipReason.HEARTBEAT, f"ts_ms={payload.get('ts_ms')}", ref)
    tx_topic = topic.endswith("." + options.transaction_topic)
    if name == TRANSACTION_SCHEMA or (tx_topic and payload.get("status") in ("BEGIN", "END")):
        return Skip(SkipReason.TRANSACTION, f"{payload.get('status')} {payload.get('id')}", ref)
    if payload.get("op") == "m":
        message = payload.get("message")
        prefix = message.get("prefix") if isinstance(message, dict) else None
        return Skip(SkipReason.MESSAGE, f"prefix={prefix}", ref)
    return None


def _change(
    schema: _Schema | None,
    payload: dict[str, Any],
    ref: RecordRef,
    options: DecoderOptions,
    lazy: bool,
) -> Change:
    op = payload.get("op")
    if op not in OPS:
        raise DecodeError(f"not a Debezium change event: op={op!r}", **ref.error_fields())
    source, backfill = _source(payload.get("source"), ref)

    def fail(exc: ValueDecodeError) -> DecodeError:
        return DecodeError(f"{source.table}: {exc}", **ref.error_fields())

    toast = matcher(options.unavailable_value_placeholder)
    raw_before = payload.get("before")
    before_pending: dict[str, Column] | None = {} if lazy else None
    after_pending: dict[str, Column] | None = {} if lazy else None
    try:
        before_plan, after_plan = schema.rows() if schema is not None else (None, None)
        before, toasted = decode_planned(
            raw_before, before_plan, toast, old_row=True, pending=before_pending
        )
        after, toasted_after = decode_planned(
            payload.get("after"),
            after_plan,
            toast,
            twin=(raw_before, before, before_plan)
            if isinstance(raw_before, dict) and before
            else None,
            pending=after_pending,
        )
    except ValueDecodeError as exc:
        raise fail(exc) from exc
    before_row = _image(before, before_pending, fail, old_row=True)
    if toasted_after:
        fill_unchanged(after, before_row)
        toasted |= toasted_after
    _check_images(cast(Op, op), before, after, ref)
    key = _key(ref) or {}
    return Change(
        op=cast(Op, op),
        table=source.table,
        connector=source.connector,
        key=frozen(key) or {},
        before=before_row,
        after=_image(after, after_pending, fail),
        source=source,
        transaction=_transaction(payload.get("transaction")),
        toasted=frozenset(toasted),
        record=ref,
        database=payload["source"].get("db"),
        backfill=backfill,
        key_only_shape=before is not None
        and op in _OLD_IMAGE_OPS
        and key_only_shape(raw_before, key, schema.before_fields() if schema is not None else None),
    )


def _image(
    row: dict[str, Any] | None,
    pending: dict[str, Column] | None,
    fail: Callable[[ValueDecodeError], DecodeError],
    *,
    old_row: bool = False,
) -> Mapping[str, Any] | None:
    """The read-only image of a decoded row; a :class:`LazyRow` where columns wait."""
    if row is not None and pending:
        return LazyRow(row, pending, fail, old_row=old_row)
    return frozen(row)


def _check_images(op: Op, before: Any, after: Any, ref: RecordRef) -> None:
    if op in ("c", "r", "u") and after is None:
        raise DecodeError(f"op {op!r} without an after image", **ref.error_fields())
    if op == "d" and before is None and not ref.key:
        raise DecodeError("delete without a before image or a key", **ref.error_fields())


def _source(raw: Any, ref: RecordRef) -> tuple[SourcePosition, bool]:
    """The change's position, and whether an incremental snapshot read it (a backfill)."""
    if not isinstance(raw, dict):
        raise DecodeError("change event without a 'source' block", **ref.error_fields())
    snapshot = raw.get("snapshot")
    # 'snapshot' is an enum string (true, first, last, incremental, false, ...) in current
    # connectors and a boolean in older ones.
    if snapshot == "false":
        is_snapshot, backfill = False, False
    elif isinstance(snapshot, bool):
        is_snapshot, backfill = snapshot, False
    else:
        text = str(snapshot or "").lower()
        is_snapshot, backfill = text not in _NOT_SNAPSHOT, text == "incremental"
    try:
        position = SourcePosition.of(
            raw["name"],
            f"{raw['schema']}.{raw['table']}",
            raw.get("lsn"),
            _commit_lsn(raw.get("sequence"), ref),
            raw.get("txId"),
            raw["ts_ms"],
            is_snapshot,
        )
    except KeyError as exc:
        raise DecodeError(f"source block lacks {exc.args[0]!r}", **ref.error_fields()) from exc
    except ValidationError as exc:
        raise DecodeError(f"source block is invalid: {exc}", **ref.error_fields()) from exc
    return position, backfill


# The usual form of source.sequence, read without a JSON parse per record.
_SEQUENCE: Final = re.compile(r'\["(\d+)","\d+"\]\Z')


def _commit_lsn(sequence: Any, ref: RecordRef) -> int | None:
    """The first entry of ``source.sequence``, a JSON text ``["<last commit lsn>", "<lsn>"]``."""
    if sequence is None:
        return None
    if isinstance(sequence, str):
        quick = _SEQUENCE.match(sequence)
        if quick is not None:
            return int(quick.group(1))
    try:
        entries = json.loads(sequence) if isinstance(sequence, str) else sequence
        first = entries[0]
        return None if first is None else int(first)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise DecodeError(
            f"source.sequence is not [commit_lsn, lsn]: {sequence!r}", **ref.error_fields()
        ) from exc


def _key(ref: RecordRef) -> dict[str, Any] | None:
    if not ref.key:
        return None  # truncates and tables without a primary key have no key
    schema, payload = _envelope(ref.key, "key", ref)
    if payload is None:
        return None
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"record key must be a JSON object, got {kind}", **ref.error_fields())
    try:
        decoded = schema.key(payload) if schema is not None else decode_value(None, payload)
    except ValueDecodeError as exc:
        raise DecodeError(f"record key: {exc}", **ref.error_fields()) from exc
    return cast(dict[str, Any], decoded)


def _transaction(raw: Any) -> TransactionBlock | None:
    if not isinstance(raw, dict) or raw.get("id") is None:
        return None
    return TransactionBlock(
        id=str(raw["id"]),
        total_order=raw.get("total_order"),
        data_collection_order=raw.get("data_collection_order"),
    )
