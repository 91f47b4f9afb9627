"""Avro serialization of domain events: a compiled writer per event type, schema ids from the registry.

The writer schema of each event type is its committed contract
(``schemas/<namespace>/<EventType>.avsc``), not something derived at run
time: what is produced is what was reviewed. Subjects are named per topic and
record (:func:`pipeline.events.naming.subject_name`), so one aggregate
topic carries several event types. Schemas are not registered by the daemon
unless ``registry.auto_register`` is set (development only); in CI and
production ``cdcflow schemas register`` does it, after the compatibility check.

Each contract is compiled once into a writer (:mod:`.generated`) that reads the
event's fields where they are and appends their encoding after the wire
header (:mod:`.wire`); the bytes are those fastavro writes for
:func:`event_to_record`'s dict, which is kept as the reference (and as the
writer of the rare schema shapes the compiler leaves to fastavro).

Failures are told apart, because they are handled differently:

* an event that does not fit its schema -> :class:`SerializationError`
  (the source record goes to the dead-letter topic);
* the registry not answering (refused, timed out, 5xx) -> :class:`RegistryUnavailable`
  (the daemon waits and retries the batch; nothing is dead-lettered);
* the event type has no contract file, or its schema is not registered ->
  :class:`SchemaContractError` (a deployment error: the daemon stops, nothing lost).
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipeline.errors import RegistryError, SchemaContractError, SerializationError
from pipeline.events import DomainEvent, EventMetadata
from pipeline.events.naming import schema_path, subject_name
from pipeline.serde import wire
from pipeline.serde.decimals import at_scale
from pipeline.serde.generated import RecordWriter, generate_writer
from pipeline.serde.registry import RegistryUnavailable, http_status, map_registry_errors

__all__ = ["EventSerializer", "event_to_record"]


# Values fastavro writes as they are: most of an event's fields, checked first by exact type.
_AS_IS: frozenset[type] = frozenset({str, int, float, bool, type(None), Decimal, bytes})


def _avro_value(value: Any) -> Any:
    # fastavro takes Decimal, datetime, date and UUID for their logical types;
    # enums go by value, nested models as dicts.
    if type(value) in _AS_IS:
        return value
    if isinstance(value, datetime) and value.tzinfo is None:
        # A naive datetime (a PostgreSQL timestamp without time zone) is the wall
        # clock read as UTC, as Debezium sends it; fastavro would read it in the
        # host's local zone (time.mktime) and shift it by the zone's offset.
        return value.replace(tzinfo=UTC)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return _model_record(value)
    if isinstance(value, Mapping):
        return {k: _avro_value(v) for k, v in dict(value).items()}
    if isinstance(value, list | tuple):
        return [_avro_value(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _is_as_is(annotation: Any) -> bool:
    """True when every value a field so annotated holds after validation is written as it is."""
    if annotation in _AS_IS:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(type(arg) in _AS_IS for arg in get_args(annotation))
    if origin in (Union, UnionType):
        return all(_is_as_is(arg) for arg in get_args(annotation))
    if origin is Annotated:
        return _is_as_is(get_args(annotation)[0])
    return False


def _decimal_scale(annotation: Any, metadata: list[Any]) -> int | None:
    """The ``decimal_places`` of a Decimal field (the Avro decimal's scale), if it has one."""
    for item in metadata:
        places = getattr(item, "decimal_places", None)
        if places is not None:
            return int(places)
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *more = get_args(annotation)
        return _decimal_scale(base, [m for i in more for m in getattr(i, "metadata", None) or [i]])
    if origin in (Union, UnionType):
        scales = {_decimal_scale(arg, []) for arg in get_args(annotation)} - {None}
        return scales.pop() if len(scales) == 1 else None
    return None


# Per model class: each field's name, and how its value goes to fastavro (None: as it
# is). Deciding that once per class, from the annotations, spares a type dispatch per value.
_PLANS: dict[type[BaseModel], tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def _field_plan(field: FieldInfo) -> Callable[[Any], Any] | None:
    scale = _decimal_scale(field.annotation, list(field.metadata))
    if scale is not None:
        return at_scale(scale)
    return None if _is_as_is(field.annotation) else _avro_value


def _model_record(model: BaseModel) -> dict[str, Any]:
    cls = type(model)
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple(
            (name, _field_plan(field)) for name, field in cls.model_fields.items()
        )
    values = model.__dict__
    return {
        name: values[name] if convert is None else convert(values[name]) for name, convert in plan
    }


def event_to_record(event: DomainEvent) -> dict[str, Any]:
    """The Avro record of an event: its metadata and payload fields as plain values."""
    return _model_record(event)


@dataclass
class _Writer:
    """How one event type is written to one topic: its subject, schema, writer and wire header."""

    subject: str
    schema: Schema
    parsed: Any
    write: RecordWriter | None
    """The contract's compiled writer (None: fastavro writes the record)."""
    header: bytes | None = None
    """Magic byte and schema id (Confluent wire format), once the registry gave the id."""


_DOES_NOT_FIT = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)


class EventSerializer:
    """Serialize domain events to Confluent-framed Avro: one schema id lookup per subject.

    Each contract is parsed and compiled once; the registry is asked for the
    schema's id once per (subject, schema), on first use (with
    ``auto_register``: registered then), and the id is cached with the header.
    confluent-kafka's ``AvroSerializer`` does the same lookups but costs several
    times more per call; the bytes are identical.
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        schemas_dir: Path,
        auto_register: bool = False,
    ) -> None:
        self.client = client
        self.schemas_dir = schemas_dir
        self.auto_register = auto_register
        self._writers: dict[tuple[type[DomainEvent], str], _Writer] = {}

    def contract(self, event_type: type[DomainEvent]) -> str:
        """The committed ``.avsc`` text of an event type.

        Raises:
            SchemaContractError: no contract file exists for the event type.
        """
        path = schema_path(self.schemas_dir, event_type.namespace(), event_type.event_type())
        try:
            return path.read_text()
        except OSError as exc:
            raise SchemaContractError(
                f"no contract for {event_type.full_name()}: {path} is missing",
                hint="run 'cdcflow schemas generate', review and commit the .avsc, then 'cdcflow schemas register'",
            ) from exc

    def _writer(self, event_type: type[DomainEvent], topic: str) -> _Writer:
        key = (event_type, topic)
        writer = self._writers.get(key)
        if writer is None:
            text = self.contract(event_type)
            try:
                parsed = fastavro.parse_schema(json.loads(text))
            except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
                raise SchemaContractError(
                    f"the contract of {event_type.full_name()} is not a valid Avro schema: {exc}"
                ) from exc
            subject = subject_name(topic, event_type.full_name())
            writer = _Writer(subject, Schema(text, "AVRO"), parsed, generate_writer(parsed))
            self._writers[key] = writer
        return writer

    def prepare(self, event_types: Iterable[tuple[type[DomainEvent], str]]) -> None:
        """Load every contract up front, so a missing file stops start-up, not a batch."""
        for event_type, topic in event_types:
            self._writer(event_type, topic)

    def _header(self, writer: _Writer, event_type: type[DomainEvent]) -> bytes:
        """The wire header with the schema's id under its subject, asked of the registry once."""
        if writer.header is not None:
            return writer.header
        try:
            with map_registry_errors(f"lookup in {writer.subject}"):
                if self.auto_register:
                    registered = self.client.register_schema_full_response(
                        writer.subject, writer.schema, normalize_schemas=False
                    )
                else:
                    registered = self.client.lookup_schema(
                        writer.subject, writer.schema, normalize_schemas=False
                    )
                schema_id = registered.schema_id
        except RegistryUnavailable:
            raise
        except RegistryError as exc:
            if http_status(exc) == 404:
                raise SchemaContractError(
                    f"{event_type.full_name()} is not registered under subject "
                    f"{writer.subject}: {exc.message}",
                    hint="run 'cdcflow schemas register' (or set CDCFLOW_REGISTRY__AUTO_REGISTER=true in development)",
                ) from exc
            raise SerializationError(f"registry refused {event_type.full_name()}: {exc}") from exc
        if not isinstance(schema_id, int):
            raise SerializationError(
                f"{event_type.full_name()}: the registry gave no schema id for {writer.subject}"
            )
        writer.header = wire.header(schema_id)
        return writer.header

    def serialize(
        self, event: DomainEvent, topic: str, metadata: EventMetadata | None = None
    ) -> bytes:
        """Avro bytes (magic byte, schema id, body) of ``event`` for ``topic``.

        ``metadata``, when given, is written as the event's metadata in place
        of ``event.metadata`` (no stamped copy of the event needed).

        Raises:
            SerializationError: the event does not fit its schema.
            RegistryUnavailable: the registry did not answer; retry later.
            SchemaContractError: no contract, or the schema is not registered under its subject.
        """
        event_type = type(event)
        writer = self._writers.get((event_type, topic)) or self._writer(event_type, topic)
        header = writer.header or self._header(writer, event_type)
        values = event.__dict__
        if metadata is not None:
            values = {**values, "metadata": metadata}
        try:
            if writer.write is not None:
                out = bytearray(header)
                writer.write(values, out)
                return bytes(out)
            buf = io.BytesIO()
            buf.write(header)
            record = event_to_record(event)
            if metadata is not None:
                record["metadata"] = _avro_value(metadata)
            fastavro.schemaless_writer(buf, writer.parsed, record)
            return buf.getvalue()
        except _DOES_NOT_FIT as exc:
            raise SerializationError(
                f"{event_type.full_name()} does not fit its schema: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:
            raise SerializationError(
                f"{event_type.full_name()} could not be serialized: {type(exc).__name__}: {exc}"
            ) from exc


def _no_subject(ctx: SerializationContext | None, record_name: str | None) -> None:
    return None


def reader(client: SchemaRegistryClient) -> AvroDeserializer:
    """confluent-kafka's own AvroDeserializer, reading by the schema id in each record only.

    Not cdcflow's reader (that is :class:`pipeline.serde.reader.AvroReader`): a
    second, independent implementation, for tests that check what cdcflow
    writes and for the benchmark that compares the two. Its default subject
    name strategy asks the registry for the topic's subject associations on
    *every* record (uncached, and an API Apicurio answers with 404); a reader
    needs only the writer's schema id.
    """
    deserializer: AvroDeserializer = AvroDeserializer(
        client, conf={"subject.name.strategy": _no_subject}
    )
    return deserializer


def readable(value: Any) -> Any:
    """A JSON-friendly view of a decoded event (for ``events tail``)."""
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def dumps(value: Any) -> str:
    return json.dumps(readable(value), sort_keys=False)
