"""Confluent-framed Avro values back into plain records: the one Avro reader of cdcflow.

A value is the wire header (:mod:`.wire`) and an Avro body written with the
schema the header names. The reader keeps one map, *schema id -> parsed
writer schema*, filled on first sight of an id (one registry call per id for
the life of the process), and decodes each body with fastavro's schemaless
reader and the writer's schema, exactly as produced. confluent-kafka's
``AvroDeserializer`` does the same work with a lookup and a dict copy more
per record (and, with its default subject strategy, an HTTP round trip per
record).

:class:`EventDeserializer` gives plain dicts (``events tail``, the demo);
:class:`pipeline.replay.decode.EventDecoder` builds on :class:`AvroReader` to
upcast records and validate them into event models.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema, schemaless_reader

from pipeline.errors import RecordError, RegistryError
from pipeline.serde.registry import map_registry_errors
from pipeline.serde.wire import HEADER_SIZE, split_header

__all__ = [
    "AvroReader",
    "EventDeserializer",
    "SchemaLookup",
    "UndecodableValue",
    "WriterSchema",
    "registry_lookup",
]

SchemaLookup = Callable[[int], str]
"""Schema id -> the schema's JSON text (a seam: unit tests pass a dict's ``__getitem__``)."""


class UndecodableValue(RecordError):
    """A value is not Confluent-framed Avro, or its body does not decode with its schema."""

    stage = "decode"


def registry_lookup(client: SchemaRegistryClient) -> SchemaLookup:
    """A :data:`SchemaLookup` that asks the schema registry.

    The returned callable raises:
        RegistryUnavailable: the registry did not answer (retry later).
        RegistryError: the registry has no schema with that id.
    """

    def lookup(schema_id: int) -> str:
        with map_registry_errors(f"schema id {schema_id}"):
            return str(client.get_schema(schema_id).schema_str)

    return lookup


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """The schema a value was written with, parsed once."""

    schema_id: int
    parsed: Any
    full_name: str
    """The record's Avro full name (``shop.events.OrderPlaced``); "" for a non-record schema."""

    @property
    def type_name(self) -> str:
        return self.full_name.rsplit(".", 1)[-1]


class AvroReader:
    """Schema ids to parsed writer schemas (cached), and framed values to records.

    Not thread-safe to share: one instance per consumer.
    """

    def __init__(self, lookup: SchemaLookup) -> None:
        self.lookup = lookup
        self._writers: dict[int, WriterSchema] = {}

    def schema(self, schema_id: int) -> WriterSchema:
        """The writer schema with id ``schema_id``, asked of the registry once.

        Raises:
            RegistryUnavailable / RegistryError: the schema could not be fetched, or is not Avro.
        """
        writer = self._writers.get(schema_id)
        if writer is None:
            text = self.lookup(schema_id)
            try:
                schema = json.loads(text)
                parsed = parse_schema(schema)
            except (ValueError, TypeError, KeyError) as exc:
                raise RegistryError(
                    f"schema id {schema_id} is not a usable Avro schema: {exc}"
                ) from exc
            name = schema.get("name", "") if isinstance(schema, dict) else ""
            namespace = schema.get("namespace", "") if isinstance(schema, dict) else ""
            full = name if "." in name or not namespace else f"{namespace}.{name}"
            writer = self._writers[schema_id] = WriterSchema(schema_id, parsed, full)
        return writer

    def schemas(self) -> dict[int, WriterSchema]:
        """The writer schemas fetched so far, by id."""
        return dict(self._writers)

    def writer_of(self, value: bytes | None) -> WriterSchema:
        """The schema a framed value was written with.

        Raises:
            UndecodableValue: the value is not Confluent-framed.
            RegistryUnavailable / RegistryError: the schema could not be fetched.
        """
        try:
            schema_id = split_header(value)
        except ValueError as exc:
            raise UndecodableValue(str(exc)) from exc
        return self._writers.get(schema_id) or self.schema(schema_id)

    def body(self, value: bytes, writer: WriterSchema) -> dict[str, Any]:
        """The record a framed value holds, decoded with its writer's schema.

        Raises:
            UndecodableValue: the body does not decode, or is not a record.
        """
        buf = io.BytesIO(value)
        buf.seek(HEADER_SIZE)
        try:
            rec = schemaless_reader(buf, writer.parsed, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
            raise UndecodableValue(
                f"body does not decode with schema id {writer.schema_id} ({writer.full_name}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(rec, dict):
            raise UndecodableValue(f"schema id {writer.schema_id} is not a record schema")
        return rec

    def read(self, value: bytes | None) -> tuple[WriterSchema, dict[str, Any]]:
        """The writer schema and the record of a framed value.

        Raises:
            UndecodableValue: the value is not framed, or its body does not decode.
            RegistryUnavailable / RegistryError: the writer schema could not be fetched.
        """
        writer = self.writer_of(value)
        assert value is not None  # writer_of refuses an empty value
        return writer, self.body(value, writer)


class EventDeserializer:
    """Decode Confluent-framed Avro values through the registry into plain dicts."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._reader = AvroReader(registry_lookup(client))

    def __call__(self, value: bytes, topic: str) -> dict[str, Any]:
        """The record ``value`` holds (``topic`` names it in an error).

        Raises:
            UndecodableValue: the value is not framed Avro of a record.
            RegistryUnavailable / RegistryError: the writer schema could not be fetched.
        """
        try:
            return self._reader.read(value)[1]
        except UndecodableValue as exc:
            raise UndecodableValue(exc.reason, topic=topic, value=value) from exc.__cause__
