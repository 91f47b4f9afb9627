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
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, cast

from pydantic import ValidationError

from pipeline.cdc.model import OPS, Change, Op, RecordRef, Skip, SkipReason, TransactionBlock
from pipeline.cdc.numeric import ValueDecodeError
from pipeline.cdc.rows import decode_row, fill_unchanged, frozen, row_fields
from pipeline.cdc.toast import PlaceholderMatcher
from pipeline.cdc.values import decode_value
from pipeline.errors import DecodeError
from pipeline.events import SourcePosition

__all__ = ["DEFAULT_OPTIONS", "DecoderOptions", "decode_record"]

HEARTBEAT_SCHEMA: Final = "io.debezium.connector.common.Heartbeat"
TRANSACTION_SCHEMA: Final = "io.debezium.connector.common.TransactionMetadataValue"
_NOT_SNAPSHOT: Final = frozenset({"false", ""})


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


def decode_record(
    value: bytes | str | None,
    *,
    topic: str,
    key: bytes | str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    options: DecoderOptions = DEFAULT_OPTIONS,
) -> Change | Skip:
    """Decode one Debezium record into a :class:`Change`, or classify it as a :class:`Skip`.

    Raises:
        DecodeError: the record is not JSON, not a Debezium record, or a value
            does not match its schema; carries topic, partition, offset, key and value.
    """
    ref = RecordRef(topic, partition, offset, _as_bytes(key), _as_bytes(value))
    if not ref.value:
        return Skip(SkipReason.TOMBSTONE, "null value", ref)
    schema, payload = _split(_parse(ref.value, "value", ref))
    if payload is None:
        return Skip(SkipReason.TOMBSTONE, "null payload", ref)
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"payload must be a JSON object, got {kind}", **ref.error_fields())
    try:
        skip = _classify(topic, schema, payload, ref, options)
        return skip if skip is not None else _change(schema, payload, ref, options)
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
    schema: dict[str, Any] | None, payload: dict[str, Any], ref: RecordRef, options: DecoderOptions
) -> Change:
    op = payload.get("op")
    if op not in OPS:
        raise DecodeError(f"not a Debezium change event: op={op!r}", **ref.error_fields())
    source = _source(payload.get("source"), ref)
    toast = PlaceholderMatcher(options.unavailable_value_placeholder)
    try:
        before, toasted_before = decode_row(
            payload.get("before"), row_fields(schema, "before"), toast
        )
        after, toasted_after = decode_row(payload.get("after"), row_fields(schema, "after"), toast)
    except ValueDecodeError as exc:
        raise DecodeError(f"{source.table}: {exc}", **ref.error_fields()) from exc
    fill_unchanged(after, before)
    _check_images(cast(Op, op), before, after, ref)
    return Change(
        op=cast(Op, op),
        table=source.table,
        connector=source.connector,
        key=frozen(_key(ref) or {}) or {},
        before=frozen(before),
        after=frozen(after),
        source=source,
        transaction=_transaction(payload.get("transaction")),
        toasted=frozenset(toasted_before | toasted_after),
        record=ref,
    )


def _check_images(op: Op, before: Any, after: Any, ref: RecordRef) -> None:
    if op in ("c", "r", "u") and after is None:
        raise DecodeError(f"op {op!r} without an after image", **ref.error_fields())
    if op == "d" and before is None and not ref.key:
        raise DecodeError("delete without a before image or a key", **ref.error_fields())


def _source(raw: Any, ref: RecordRef) -> SourcePosition:
    if not isinstance(raw, dict):
        raise DecodeError("change event without a 'source' block", **ref.error_fields())
    snapshot = raw.get("snapshot")
    # 'snapshot' is an enum string (true, first, last, incremental, false, ...) in current
    # connectors and a boolean in older ones.
    if isinstance(snapshot, bool):
        is_snapshot = snapshot
    else:
        is_snapshot = str(snapshot or "").lower() not in _NOT_SNAPSHOT
    try:
        return SourcePosition(
            connector=raw["name"],
            table=f"{raw['schema']}.{raw['table']}",
            lsn=raw.get("lsn"),
            commit_lsn=_commit_lsn(raw.get("sequence"), ref),
            tx_id=raw.get("txId"),
            commit_ts_ms=raw["ts_ms"],
            snapshot=is_snapshot,
        )
    except KeyError as exc:
        raise DecodeError(f"source block lacks {exc.args[0]!r}", **ref.error_fields()) from exc
    except ValidationError as exc:
        raise DecodeError(f"source block is invalid: {exc}", **ref.error_fields()) from exc


def _commit_lsn(sequence: Any, ref: RecordRef) -> int | None:
    """The first entry of ``source.sequence``, a JSON text ``["<last commit lsn>", "<lsn>"]``."""
    if sequence is None:
        return None
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
    schema, payload = _split(_parse(ref.key, "key", ref))
    if payload is None:
        return None
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise DecodeError(f"record key must be a JSON object, got {kind}", **ref.error_fields())
    try:
        decoded = decode_value(schema, payload)
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
