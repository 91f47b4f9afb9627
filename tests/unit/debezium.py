"""Builders for Debezium PostgreSQL change records as JsonConverter writes them.

The shapes follow the Debezium 3.x PostgreSQL connector: an ``Envelope``
struct (before, after, source, transaction, op, ts_ms/us/ns), the
``io.debezium.connector.postgresql.Source`` block, key structs named
``<prefix>.<schema>.<table>.Key``, and column schemas with Debezium's
semantic names. ``record(...)`` returns ``(key_bytes, value_bytes)`` with
schemas (``schemas.enable=true``) or without.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal, localcontext
from typing import Any

PREFIX = "shop"
PLACEHOLDER = "__debezium_unavailable_value"

# -- column schemas (the "fields" of the Value struct)


def col(
    field: str, type_: str, optional: bool = False, name: str | None = None, **params: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "optional": optional}
    if name:
        out["name"] = name
        out["version"] = 1
    if params:
        out["parameters"] = {k.replace("_", "."): str(v) for k, v in params.items()}
    out["field"] = field
    return out


def int32(f: str, optional: bool = False) -> dict[str, Any]:
    return col(f, "int32", optional)


def int64(f: str, optional: bool = False) -> dict[str, Any]:
    return col(f, "int64", optional)


def text(f: str, optional: bool = False) -> dict[str, Any]:
    return col(f, "string", optional)


def boolean(f: str, optional: bool = False) -> dict[str, Any]:
    return col(f, "boolean", optional)


def decimal(f: str, scale: int, precision: int = 12, optional: bool = False) -> dict[str, Any]:
    c = col(f, "bytes", optional, "org.apache.kafka.connect.data.Decimal")
    c["parameters"] = {"scale": str(scale), "connect.decimal.precision": str(precision)}
    return c


def named(f: str, type_: str, name: str, optional: bool = False) -> dict[str, Any]:
    return col(f, type_, optional, name)


def uuid_col(f: str, optional: bool = False) -> dict[str, Any]:
    return named(f, "string", "io.debezium.data.Uuid", optional)


def tstz(f: str, optional: bool = False) -> dict[str, Any]:
    return named(f, "string", "io.debezium.time.ZonedTimestamp", optional)


def json_col(f: str, optional: bool = True) -> dict[str, Any]:
    return named(f, "string", "io.debezium.data.Json", optional)


def enum_col(f: str, allowed: str, optional: bool = False) -> dict[str, Any]:
    c = named(f, "string", "io.debezium.data.Enum", optional)
    c["parameters"] = {"allowed": allowed}
    return c


# -- value encodings


def dec(value: str | Decimal, scale: int) -> str:
    """A Connect Decimal as JsonConverter writes it: base64 of the unscaled two's complement."""
    with localcontext() as ctx:
        ctx.prec = 200  # the default 28 digits would round large test values
        unscaled = int(Decimal(value).scaleb(scale))
    length = (unscaled.bit_length() + 8) // 8
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- tables of the shop (schema.sql)

ORDER_STATUS = "placed,paid,shipped,cancelled"
SNAPSHOT_VALUES = (
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
)

TABLES: dict[str, dict[str, Any]] = {
    "customers": {
        "key": [int64("id")],
        "columns": [
            int64("id"),
            text("email"),
            text("full_name"),
            text("country"),
            text("status"),
            tstz("created_at"),
            tstz("updated_at"),
        ],
    },
    "products": {
        "key": [int64("id")],
        "columns": [
            int64("id"),
            text("sku"),
            text("name"),
            text("description", optional=True),
            decimal("price", 2),
            text("currency"),
            boolean("active"),
            tstz("updated_at"),
        ],
    },
    "orders": {
        "key": [uuid_col("id")],
        "columns": [
            uuid_col("id"),
            int64("customer_id"),
            enum_col("status", ORDER_STATUS),
            decimal("total", 2),
            text("currency"),
            json_col("shipping_address"),
            tstz("placed_at"),
            tstz("paid_at", optional=True),
            tstz("shipped_at", optional=True),
            text("tracking_number", optional=True),
            tstz("cancelled_at", optional=True),
            text("cancel_reason", optional=True),
            tstz("updated_at"),
        ],
    },
    "order_lines": {
        "key": [uuid_col("order_id"), int32("line_no")],
        "columns": [
            uuid_col("order_id"),
            int32("line_no"),
            int64("product_id"),
            int32("quantity"),
            decimal("unit_price", 2),
        ],
    },
    "payments": {
        "key": [int64("id")],
        "columns": [
            int64("id"),
            uuid_col("order_id"),
            decimal("amount", 2),
            text("method"),
            tstz("paid_at"),
        ],
    },
}

SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "version"},
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        {
            "type": "string",
            "optional": True,
            "name": "io.debezium.data.Enum",
            "version": 1,
            "parameters": {"allowed": SNAPSHOT_VALUES},
            "default": "false",
            "field": "snapshot",
        },
        {"type": "string", "optional": False, "field": "db"},
        {"type": "string", "optional": True, "field": "sequence"},
        {"type": "int64", "optional": True, "field": "ts_us"},
        {"type": "int64", "optional": True, "field": "ts_ns"},
        {"type": "string", "optional": False, "field": "schema"},
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": True, "field": "txId"},
        {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "int64", "optional": True, "field": "xmin"},
    ],
    "optional": False,
    "name": "io.debezium.connector.postgresql.Source",
    "field": "source",
}

TRANSACTION_BLOCK_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "id"},
        {"type": "int64", "optional": False, "field": "total_order"},
        {"type": "int64", "optional": False, "field": "data_collection_order"},
    ],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}


def source(
    table: str,
    *,
    lsn: int = 24023128,
    tx_id: int | None = 555,
    ts_ms: int = 1718000000123,
    snapshot: Any = "false",
    schema: str = "public",
) -> dict[str, Any]:
    return {
        "version": "3.6.1.Final",
        "connector": "postgresql",
        "name": PREFIX,
        "ts_ms": ts_ms,
        "snapshot": snapshot,
        "db": "shop",
        "sequence": json.dumps([str(lsn - 8), str(lsn)]),
        "ts_us": ts_ms * 1000,
        "ts_ns": ts_ms * 1_000_000,
        "schema": schema,
        "table": table,
        "txId": tx_id,
        "lsn": lsn,
        "xmin": None,
    }


def envelope_schema(
    table: str, columns: list[dict[str, Any]], schema: str = "public"
) -> dict[str, Any]:
    value_name = f"{PREFIX}.{schema}.{table}.Value"
    row = {"type": "struct", "fields": columns, "optional": True, "name": value_name}
    return {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            SOURCE_SCHEMA,
            TRANSACTION_BLOCK_SCHEMA,
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            {"type": "int64", "optional": True, "field": "ts_us"},
            {"type": "int64", "optional": True, "field": "ts_ns"},
        ],
        "optional": False,
        "name": f"{PREFIX}.{schema}.{table}.Envelope",
        "version": 2,
    }


def key_schema(table: str, fields: list[dict[str, Any]], schema: str = "public") -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": fields,
        "optional": False,
        "name": f"{PREFIX}.{schema}.{table}.Key",
    }


def record(
    op: str,
    table: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    columns: list[dict[str, Any]] | None = None,
    key_fields: list[dict[str, Any]] | None = None,
    key: dict[str, Any] | None = None,
    with_schema: bool = True,
    transaction: dict[str, Any] | None = None,
    **source_args: Any,
) -> tuple[bytes | None, bytes]:
    """One change record of ``public.<table>``; columns and key default to the shop's tables."""
    spec = TABLES.get(table, {})
    columns = columns if columns is not None else spec["columns"]
    key_fields = key_fields if key_fields is not None else spec.get("key", [])
    row = after if after is not None else before
    if key is None and row is not None and key_fields:
        key = {f["field"]: row[f["field"]] for f in key_fields}
    payload = {
        "before": before,
        "after": after,
        "source": source(table, **source_args),
        "transaction": transaction,
        "op": op,
        "ts_ms": 1718000000456,
        "ts_us": 1718000000456789,
        "ts_ns": 1718000000456789000,
    }
    if with_schema:
        value: Any = {"schema": envelope_schema(table, columns), "payload": payload}
        key_doc: Any = (
            {"schema": key_schema(table, key_fields), "payload": key} if key is not None else None
        )
    else:
        value, key_doc = payload, key
    key_bytes = json.dumps(key_doc).encode() if key_doc is not None else None
    return key_bytes, json.dumps(value).encode()


def topic(table: str) -> str:
    return f"{PREFIX}.public.{table}"
