"""Confluent-framed Avro values back into the pydantic event classes.

A value is ``0x00``, a 4-byte schema id, then the Avro body written with that
schema. The decoder keeps one map, *schema id -> parsed writer schema and
event class*, filled on first sight of an id (one registry call per id for
the life of the process), and decodes the body with fastavro's schemaless
reader directly: confluent-kafka's ``AvroDeserializer`` does the same work
with a lookup and a dict copy more per record, which is measurably slower
over a replay of millions (``benchmarks/replay_bench.py`` prints both).

Decoding uses the *writer's* schema, exactly as produced; the record is then
carried to the current version of its event type by the registered upcasters
(:mod:`.upcast`) and validated into the event's pydantic model. Which class:
the writer schema's record full name (``shop.events.OrderPlaced``), the same
name the registry subject carries.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from fastavro import parse_schema, schemaless_reader
from pydantic import ValidationError

from pipeline.errors import RegistryError
from pipeline.events import DomainEvent
from pipeline.replay.errors import EventDecodeError, UnknownEventType, UpcastError
from pipeline.replay.upcast import Record, Upcasters
from pipeline.serde import RegistryUnavailable

__all__ = ["EventDecoder", "SchemaLookup", "located", "registry_lookup"]

SchemaLookup = Callable[[int], str]
"""Schema id -> the schema's JSON text (a seam: unit tests pass a dict's ``__getitem__``)."""

_HEADER = struct.Struct(">bI")


def registry_lookup(client: SchemaRegistryClient) -> SchemaLookup:
    """A :data:`SchemaLookup` that asks the schema registry.

    The returned callable raises:
        RegistryUnavailable: the registry did not answer (retry later).
        RegistryError: the registry has no schema with that id.
    """

    def lookup(schema_id: int) -> str:
        try:
            return str(client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            status = exc.http_status_code
            if status is None or status < 0 or status >= 500 or status in (408, 429):
                raise RegistryUnavailable(f"schema registry unavailable: {exc}") from exc
            raise RegistryError(f"the registry has no schema with id {schema_id}: {exc}") from exc
        except Exception as exc:  # requests' connection errors, timeouts
            raise RegistryUnavailable(
                f"schema registry unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    return lookup


@dataclass(frozen=True, slots=True)
class _Writer:
    parsed: Any
    full_name: str
    type_name: str
    event_class: type[DomainEvent] | None


class EventDecoder:
    """Decode event values into event models; one instance per consumer, not thread-safe to share.

    ``event_types`` are the classes records may be decoded into, found by
    their Avro full name. A record of a type not among them raises
    :class:`UnknownEventType`, or yields ``None`` with ``skip_unknown``.
    """

    def __init__(
        self,
        event_types: Iterable[type[DomainEvent]],
        lookup: SchemaLookup,
        upcasters: Upcasters | None = None,
        *,
        skip_unknown: bool = False,
    ) -> None:
        self.classes = {cls.full_name(): cls for cls in event_types}
        self.lookup = lookup
        self.upcasters = upcasters or Upcasters()
        self.skip_unknown = skip_unknown
        self._writers: dict[int, _Writer] = {}

    # ------------------------------------------------------------ the writer schemas

    def _writer(self, schema_id: int) -> _Writer:
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
            writer = _Writer(parsed, full, full.rsplit(".", 1)[-1], self.classes.get(full))
            self._writers[schema_id] = writer
        return writer

    def schema_ids(self) -> dict[int, str]:
        """The schema ids seen so far and their record full names."""
        return {sid: w.full_name for sid, w in self._writers.items()}

    # ------------------------------------------------------------ decoding

    def _body(self, value: bytes | None) -> tuple[_Writer, Record | None]:
        """The writer of a value and its decoded record (None: an unknown type to skip)."""
        if not value or len(value) < 5:
            raise EventDecodeError("value is empty or shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(value)
        if magic != 0:
            raise EventDecodeError(f"unknown magic byte {magic} (not Confluent-framed Avro)")
        writer = self._writers.get(schema_id) or self._writer(schema_id)
        if writer.event_class is None and self.skip_unknown:
            return writer, None  # not even decoded: nobody here wants it
        buf = io.BytesIO(value)
        buf.seek(5)
        try:
            rec = schemaless_reader(buf, writer.parsed, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
            raise EventDecodeError(
                f"body does not decode with schema id {schema_id} ({writer.full_name}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(rec, dict):
            raise EventDecodeError(f"schema id {schema_id} is not a record schema")
        return writer, rec

    def record(self, value: bytes | None) -> tuple[str, Record]:
        """The record full name and the plain decoded record (no upcasting, no model).

        Raises:
            EventDecodeError: the value is empty, not Confluent-framed, or its body does not decode.
            RegistryUnavailable / RegistryError: the writer schema could not be fetched.
        """
        skip, self.skip_unknown = self.skip_unknown, False
        try:
            writer, rec = self._body(value)
        finally:
            self.skip_unknown = skip
        assert rec is not None
        return writer.full_name, rec

    def decode(
        self,
        value: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> DomainEvent | None:
        """The event a value holds, in the current version of its class.

        ``None`` only for an unknown type with ``skip_unknown``. ``topic``,
        ``partition``, ``offset`` and ``key`` say where the value was read;
        an error carries them (and the value).

        Raises:
            EventDecodeError: framing, Avro body or model validation failed.
            UnknownEventType: no class is known for the record's full name.
            UpcastError: an older version has no upcaster path and does not fit
                the current model, or an upcaster raised.
            RegistryUnavailable: the registry did not answer (retry later).
            RegistryError: the registry does not know the record's schema id.
        """
        try:
            return self._decode(value)
        except EventDecodeError as exc:
            if topic is None:
                raise
            raise located(exc, topic, partition, offset, key, value) from exc.__cause__

    def _decode(self, value: bytes | None) -> DomainEvent | None:
        writer, rec = self._body(value)
        cls = writer.event_class
        if rec is None:
            return None
        if cls is None:
            raise UnknownEventType(
                f"no event class for {writer.full_name}",
                hint="pass the event's module to the decoder (settings.transformer.domain), "
                "or skip unknown types",
            )
        meta = rec.get("metadata")
        version = meta.get("schema_version", 1) if isinstance(meta, dict) else 1
        current = cls.__version__
        if version < current:
            rec = self._upcast(cls, writer, version, rec)
        try:
            return cls.model_validate(rec)
        except ValidationError as exc:
            error = UpcastError if version < current else EventDecodeError
            raise error(
                f"{writer.full_name} v{version} does not fit {cls.__name__} v{current}: "
                f"{_first_error(exc)}",
                hint=f"register an upcaster for ({writer.type_name}, {version})"
                if version < current
                else None,
            ) from exc

    def _upcast(self, cls: type[DomainEvent], writer: _Writer, version: int, rec: Record) -> Record:
        if not self.upcasters.has_path(writer.type_name, version, cls.__version__):
            # No upcaster: a change Avro and pydantic absorb (a new field with a
            # default) needs none; validation says whether this one is such.
            return rec
        try:
            return self.upcasters.upcast(writer.type_name, version, rec, cls.__version__)
        except Exception as exc:
            raise UpcastError(
                f"upcasting {writer.full_name} v{version} -> v{cls.__version__} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def located(
    exc: EventDecodeError,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
) -> EventDecodeError:
    """The same error, carrying where its record was read (raise it ``from exc.__cause__``)."""
    return type(exc)(
        exc.reason,
        hint=exc.hint,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
    )


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {first['msg']}{more}"
