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
from typing import TYPE_CHECKING, Any, Final, cast

from pydantic import ValidationError

from pipeline.cdc.identity import key_only_shape
from pipeline.cdc.model import OPS, Change, Op, RecordRef, Skip, SkipReason, TransactionBlock
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.rows import (
    Column,
    LazyRow,
    decode_planned,
    fill_unchanged,
    frozen,
)
from pipeline.cdc.schema_cache import (
    KnownSchema,
    as_bytes,
    envelope,
    needs_decimals,
    parse_exact,
    plain_payload,
)
from pipeline.cdc.toast import matcher
from pipeline.cdc.values import decode_value
from pipeline.errors import DecodeError
from pipeline.events import SourcePosition

if TYPE_CHECKING:
    from pipeline.cdc.catalogue import ColumnCatalogue, TableTypes

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
    column_types: ColumnCatalogue | None = None
    """Where a record without a schema envelope takes its columns' types from
    (``transformer.cdc_types: catalogue``); None: it is decoded without types
    (:func:`~pipeline.cdc.values.decode_schemaless`, not exact)."""


DEFAULT_OPTIONS: Final = DecoderOptions()


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
    ref = RecordRef(topic, partition, offset, as_bytes(key), as_bytes(value))
    if not ref.value:
        return Skip(SkipReason.TOMBSTONE, "null value", ref)
    catalogue = options.column_types
    exact = True
    if catalogue is not None and not ref.value.startswith(_ENVELOPE_HEAD):
        compiled, (payload, exact) = None, plain_payload(ref.value, "value", ref)
        if isinstance(payload, dict) and len(payload) == 2 and "schema" in payload:
            compiled, payload = envelope(ref.value, "value", ref)  # an envelope after all
    else:
        compiled, payload = envelope(ref.value, "value", ref)
    if payload is None:
        return Skip(SkipReason.TOMBSTONE, "null payload", ref)
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"payload must be a JSON object, got {kind}", **ref.error_fields())
    try:
        skip = _classify(topic, compiled.schema if compiled else None, payload, ref, options)
        if skip is not None:
            return skip
        types = None
        if compiled is None and catalogue is not None:
            types = _table_types(catalogue, payload, ref)
            compiled = types.envelope
            if not exact and needs_decimals(compiled, payload):
                payload = parse_exact(ref.value, "value", ref)  # a fraction: every digit
        return _change(compiled, payload, ref, options, lazy, types)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # A record of an unexpected shape (a schema that is not a Connect schema, a block of
        # the wrong type) must be dead-lettered with its evidence, never crash the consumer.
        raise DecodeError(
            f"malformed Debezium record: {type(exc).__name__}: {exc}", **ref.error_fields()
        ) from exc


_ENVELOPE_HEAD: Final = b'{"schema":'


def _table_types(catalogue: ColumnCatalogue, payload: dict[str, Any], ref: RecordRef) -> TableTypes:
    """The catalogue's types of the change's table, knowing every column the record has."""
    if payload.get("op") not in OPS:
        raise DecodeError(
            f"not a Debezium change event: op={payload.get('op')!r}", **ref.error_fields()
        )
    source = payload.get("source")
    if not isinstance(source, dict) or "schema" not in source or "table" not in source:
        _source(source, ref)  # raises the DecodeError that names what is missing
        raise DecodeError("change event without a table", **ref.error_fields())

    rows = (payload.get("before"), payload.get("after"))
    return catalogue.types(source.get("db"), source["schema"], source["table"], rows, ref)


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
    schema: KnownSchema | None,
    payload: dict[str, Any],
    ref: RecordRef,
    options: DecoderOptions,
    lazy: bool,
    types: TableTypes | None = None,
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
    key = _key(ref, types) or {}
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


def _key_payload(ref: RecordRef, types: TableTypes | None = None) -> tuple[KnownSchema | None, Any]:
    if not ref.key:
        return None, None  # truncates and tables without a primary key have no key
    if types is not None and not ref.key.startswith(_ENVELOPE_HEAD):
        payload, exact = plain_payload(ref.key, "key", ref)
        if not exact and needs_decimals(types.key_schema, payload):
            payload = parse_exact(ref.key, "key", ref)
        schema = None
    else:
        schema, payload = envelope(ref.key, "key", ref)
    if payload is not None and not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"record key must be a JSON object, got {kind}", **ref.error_fields())
    return schema, payload


def _key(ref: RecordRef, types: TableTypes | None = None) -> dict[str, Any] | None:
    """The record's key; a key without a schema is decoded with ``types`` where given."""
    schema, payload = _key_payload(ref, types)
    if payload is None:
        return None
    try:
        if schema is not None:
            decoded = schema.key(payload)
        elif types is not None:
            decoded = types.key(payload)
        else:
            decoded = decode_value(None, payload)
    except ValueDecodeError as exc:
        raise DecodeError(
            f"record key: {exc}", **ref.error_fields(), table=exc.table, column=exc.column
        ) from exc
    return cast(dict[str, Any], decoded)


def _transaction(raw: Any) -> TransactionBlock | None:
    if not isinstance(raw, dict) or raw.get("id") is None:
        return None
    return TransactionBlock(
        id=str(raw["id"]),
        total_order=raw.get("total_order"),
        data_collection_order=raw.get("data_collection_order"),
    )
