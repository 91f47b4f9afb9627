"""Confluent-framed Avro values back into the pydantic event classes.

The bytes are read by serde's one Avro reader (:class:`pipeline.serde.reader.AvroReader`:
schema id -> parsed writer schema, cached for the life of the process, and
fastavro's schemaless reader). Decoding uses the *writer's* schema, exactly as
produced; the record is then carried to the current version of its event type
by the registered upcasters (:mod:`.upcast`) and validated into the event's
pydantic model. Which class: the writer schema's record full name
(``shop.events.OrderPlaced``), the same name the registry subject carries.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from pipeline.events import DomainEvent
from pipeline.replay.errors import EventDecodeError, UnknownEventType, UpcastError
from pipeline.replay.upcast import Record, Upcasters
from pipeline.serde.reader import AvroReader, SchemaLookup, UndecodableValue, WriterSchema

__all__ = ["EventDecoder", "located"]


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
        self.reader = AvroReader(lookup)
        self.upcasters = upcasters or Upcasters()
        self.skip_unknown = skip_unknown

    def schema_ids(self) -> dict[int, str]:
        """The schema ids seen so far and their record full names."""
        return {sid: w.full_name for sid, w in self.reader.schemas().items()}

    # ------------------------------------------------------------ decoding

    def _body(self, value: bytes | None) -> tuple[WriterSchema, Record | None]:
        """The writer of a value and its decoded record (None: an unknown type to skip)."""
        try:
            writer = self.reader.writer_of(value)
            if self.skip_unknown and writer.full_name not in self.classes:
                return writer, None  # not even decoded: nobody here wants it
            assert value is not None  # writer_of refuses an empty value
            return writer, self.reader.body(value, writer)
        except UndecodableValue as exc:
            raise EventDecodeError(exc.reason) from exc.__cause__

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
        cls = self.classes.get(writer.full_name)
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

    def _upcast(
        self, cls: type[DomainEvent], writer: WriterSchema, version: int, rec: Record
    ) -> Record:
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
