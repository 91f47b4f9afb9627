"""Avro serialization of domain events with confluent-kafka's registry-aware serde.

The writer schema of each event type is its committed contract
(``schemas/<namespace>/<EventType>.avsc``), not something derived at run
time: what is produced is what was reviewed. Subjects are named per topic and
record (:func:`pipeline.contracts.naming.subject_name`), so one aggregate
topic carries several event types. Schemas are not registered by the daemon
unless ``registry.auto_register`` is set (development only); in CI and
production ``cdcflow schemas register`` does it, after the compatibility check.

Failures are told apart, because they are handled differently:

* an event that does not fit its schema -> :class:`SerializationError`
  (the source record goes to the dead-letter topic);
* the registry not answering (refused, timed out, 5xx) -> :class:`RegistryUnavailable`
  (the daemon waits and retries the batch; nothing is dead-lettered);
* the event type has no contract file, or its schema is not registered ->
  :class:`SchemaContractError` (a deployment error: the daemon stops, nothing lost).
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.contracts.naming import schema_path, subject_name
from pipeline.errors import CdcflowError, SchemaContractError, SerializationError
from pipeline.events import DomainEvent

__all__ = ["EventDeserializer", "EventSerializer", "RegistryUnavailable", "event_to_record"]


class RegistryUnavailable(CdcflowError):
    """The schema registry did not answer; the caller should wait and retry."""


def _avro_value(value: Any) -> Any:
    # fastavro takes Decimal, datetime, date and UUID for their logical types;
    # enums go by value, nested models as dicts.
    if isinstance(value, datetime) and value.tzinfo is None:
        # A naive datetime (a PostgreSQL timestamp without time zone) is the wall
        # clock read as UTC, as Debezium sends it; fastavro would read it in the
        # host's local zone (time.mktime) and shift it by the zone's offset.
        return value.replace(tzinfo=UTC)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, DomainEvent | Mapping):
        return {k: _avro_value(v) for k, v in dict(value).items()}
    if isinstance(value, list | tuple):
        return [_avro_value(v) for v in value]
    if hasattr(value, "model_dump"):
        return {k: _avro_value(v) for k, v in value.__dict__.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def event_to_record(event: DomainEvent) -> dict[str, Any]:
    """The Avro record of an event: its metadata and payload fields as plain values."""
    return {name: _avro_value(getattr(event, name)) for name in type(event).model_fields}


def _transport_errors() -> tuple[type[BaseException], ...]:
    # confluent-kafka's registry client talks HTTP through httpx, or through its
    # own copy of it (module httpx2) in newer releases: accept both.
    found: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, SchemaRegistryError):
        return (
            exc.http_status_code is None
            or exc.http_status_code >= 500
            or exc.http_status_code in (-1, 408, 429)
        )
    # Refused, reset, timed out: the registry client's HTTP transport errors.
    return isinstance(exc, _TRANSPORT_ERRORS)


class EventSerializer:
    """Serialize domain events to Confluent-framed Avro, one serializer per event type."""

    def __init__(
        self,
        client: SchemaRegistryClient,
        schemas_dir: Path,
        auto_register: bool = False,
    ) -> None:
        self.client = client
        self.schemas_dir = schemas_dir
        self.auto_register = auto_register
        self._serializers: dict[tuple[type[DomainEvent], str], AvroSerializer] = {}

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

    def _serializer(self, event_type: type[DomainEvent], topic: str) -> AvroSerializer:
        key = (event_type, topic)
        ser = self._serializers.get(key)
        if ser is None:
            ser = AvroSerializer(
                self.client,
                self.contract(event_type),
                conf={
                    "auto.register.schemas": self.auto_register,
                    "normalize.schemas": False,
                    "use.latest.version": False,
                    "subject.name.strategy": lambda ctx, record_name: subject_name(
                        ctx.topic, record_name
                    ),
                },
            )
            self._serializers[key] = ser
        return ser

    def prepare(self, event_types: Iterable[tuple[type[DomainEvent], str]]) -> None:
        """Load every contract up front, so a missing file stops start-up, not a batch."""
        for event_type, topic in event_types:
            self._serializer(event_type, topic)

    def serialize(self, event: DomainEvent, topic: str) -> bytes:
        """Avro bytes (magic byte, schema id, body) of ``event`` for ``topic``.

        Raises:
            SerializationError: the event does not fit its schema.
            RegistryUnavailable: the registry did not answer; retry later.
            SchemaContractError: no contract, or the schema is not registered under its subject.
        """
        event_type = type(event)
        ser = self._serializer(event_type, topic)
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            data = ser(event_to_record(event), ctx)
        except SchemaRegistryError as exc:
            if _is_unavailable(exc):
                raise RegistryUnavailable(f"schema registry unavailable: {exc}") from exc
            if exc.http_status_code == 404:
                raise SchemaContractError(
                    f"{event_type.full_name()} is not registered under subject "
                    f"{subject_name(topic, event_type.full_name())}: {exc.error_message}",
                    hint="run 'cdcflow schemas register' (or set CDCFLOW_REGISTRY__AUTO_REGISTER=true in development)",
                ) from exc
            raise SerializationError(f"registry refused {event_type.full_name()}: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise RegistryUnavailable(f"schema registry unavailable: {type(exc).__name__}: {exc}") from exc
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerializationError(
                f"{event_type.full_name()} does not fit its schema: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:
            if _is_unavailable(exc):
                raise RegistryUnavailable(f"schema registry unavailable: {exc}") from exc
            raise SerializationError(
                f"{event_type.full_name()} could not be serialized: {type(exc).__name__}: {exc}"
            ) from exc
        if data is None:
            raise SerializationError(f"{event_type.full_name()} serialized to nothing")
        return data


class EventDeserializer:
    """Decode Confluent-framed Avro values through the registry into plain dicts."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._deserializer = AvroDeserializer(client)

    def __call__(self, value: bytes, topic: str) -> dict[str, Any]:
        ctx = SerializationContext(topic, MessageField.VALUE)
        out = self._deserializer(value, ctx)
        if not isinstance(out, dict):
            raise SerializationError(f"{topic}: value is not an Avro record")
        return out


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
