"""The domain event base and its metadata.

A domain event is a frozen pydantic model. Its payload fields are declared by
the subclass; the metadata part (:class:`EventMetadata`) is the same for every
event and is stamped by the mapping runtime, not by the user's rule: the rule
says *what* happened, the runtime says *where it came from*.

Class-level declarations on a subclass::

    class OrderPlaced(DomainEvent):
        __aggregate__ = "order"          # aggregate type; topic shop.order.events
        __aggregate_id__ = "order_id"    # the payload field holding the aggregate id
        __namespace__ = "shop.events"    # Avro namespace (defaults to the domain)
        __version__ = 1                  # schema version of this event type
        order_id: UUID
        ...
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_ID_NAMESPACE",
    "DomainEvent",
    "EventMetadata",
    "SourcePosition",
    "derive_event_id",
]

# Fixed namespace for uuid5 event ids: the same source position always yields the same id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c3f0e-5b2a-4c8e-9a77-0c5d2f1e8b41")
# uuid5 is SHA-1 of the namespace's bytes and the name: the namespace's part is hashed once.
_ID_HASH: Final = hashlib.sha1(EVENT_ID_NAMESPACE.bytes, usedforsecurity=False)
# RFC 4122 variant and version 5 bits, as uuid.UUID(bytes=..., version=5) sets them.
_ID_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_ID_SET: Final = (0x8000 << 48) | (5 << 76)
_SAFE_UNKNOWN: Final = uuid.SafeUUID.unknown


class SourcePosition(BaseModel):
    """Where in the source database's history a change happened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connector: str = Field(description="Debezium topic prefix (logical server name)")
    table: str = Field(description="schema.table of the changed row")
    lsn: int | None = Field(default=None, description="WAL position of the change")
    commit_lsn: int | None = Field(
        default=None,
        description="WAL position of the last commit before this change (Debezium's "
        "source.sequence[0]); (commit_lsn, lsn) grows in stream order",
    )
    tx_id: int | None = Field(default=None, description="source transaction id")
    commit_ts_ms: int = Field(description="commit time in the source, epoch milliseconds")
    snapshot: bool = Field(default=False, description="true for rows read by a snapshot")

    @classmethod
    def of(
        cls,
        connector: str,
        table: str,
        lsn: Any,
        commit_lsn: Any,
        tx_id: Any,
        commit_ts_ms: Any,
        snapshot: bool,
    ) -> SourcePosition:
        """A position from a decoder's plain values; validated only where they need it.

        Debezium writes every field with its exact type, and validating those
        costs more than the rest of the decoding: values of exactly the declared
        types are taken as they are; any other value (a number as text, a float)
        goes through pydantic as before, which converts it or refuses it.

        Raises:
            pydantic.ValidationError: a value that is not of its field's type.
        """
        trusted = (
            type(connector) is str
            and type(table) is str
            and type(commit_ts_ms) is int
            and (lsn is None or type(lsn) is int)
            and (commit_lsn is None or type(commit_lsn) is int)
            and (tx_id is None or type(tx_id) is int)
            and type(snapshot) is bool
        )
        values = {
            "connector": connector,
            "table": table,
            "lsn": lsn,
            "commit_lsn": commit_lsn,
            "tx_id": tx_id,
            "commit_ts_ms": commit_ts_ms,
            "snapshot": snapshot,
        }
        return _trusted(cls, values) if trusted else cls(**values)


class EventMetadata(BaseModel):
    """The part every domain event shares; stamped by the mapping runtime."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(description="deterministic id derived from the source position")
    event_type: str = Field(description="the event's type name, e.g. OrderPlaced")
    aggregate_type: str = Field(description="the aggregate's type, e.g. order")
    aggregate_id: str = Field(description="the aggregate's id; the Kafka record key")
    occurred_at: datetime = Field(description="commit time of the source transaction (UTC)")
    schema_version: int = Field(default=1, description="version of this event type's schema")
    correlation_id: str | None = Field(
        default=None, description="source transaction id, shared by its events"
    )
    source: SourcePosition

    @classmethod
    def of(
        cls,
        event_id: uuid.UUID,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str,
        occurred_at: datetime,
        schema_version: int,
        correlation_id: str | None,
        source: SourcePosition,
    ) -> EventMetadata:
        """Metadata from values the mapping runtime made, each already of its field's type.

        Not validated again: the id is a UUID, the names and the aggregate id
        are text, the time an aware datetime, the position a
        :class:`SourcePosition`. What a domain declares is: a ``__version__``
        that is not an int goes through pydantic, as before.

        Raises:
            pydantic.ValidationError: ``schema_version`` is not an integer.
        """
        values = {
            "event_id": event_id,
            "event_type": event_type,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "occurred_at": occurred_at,
            "schema_version": schema_version,
            "correlation_id": correlation_id,
            "source": source,
        }
        return _trusted(cls, values) if type(schema_version) is int else cls(**values)


_M = TypeVar("_M", bound=BaseModel)


def _trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` for a plain model given every field, in a third of its time.

    Only for models without private attributes, extra fields or a post-init
    (SourcePosition, EventMetadata); their tests compare it with the validated model.
    """
    out = cls.__new__(cls)
    object.__setattr__(out, "__dict__", values)
    object.__setattr__(out, "__pydantic_fields_set__", set(values))
    object.__setattr__(out, "__pydantic_extra__", None)
    object.__setattr__(out, "__pydantic_private__", None)
    return out


def derive_event_id(source: SourcePosition, key: str, event_type: str, index: int = 0) -> uuid.UUID:
    """The id of the ``index``-th event of ``event_type`` made from one source change.

    Built from the source position (connector, LSN, transaction, table), the
    row key, the event type and the index, so a change Debezium delivers again
    yields the same id. Snapshot rows share one LSN; the row key keeps them apart.
    """
    snapshot = "s" if source.snapshot else ""
    return _uuid5(
        f"{source.connector}|{source.lsn}|{source.tx_id}|{source.table}|{key}|{event_type}|{index}|{snapshot}"
    )


class _EventId(uuid.UUID):
    """A derived event id that keeps its text, formatted once.

    Every event's id is written as text twice (its record's header and its
    Avro body), and ``UUID.__str__`` formats it anew each time. Otherwise a
    UUID like any other: equal to, hashed and shown as the plain UUID of the
    same value, and copied or pickled as one.
    """

    __slots__ = ("_text",)
    _text: str

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"UUID('{self._text}')"

    def __reduce__(self) -> tuple[Any, ...]:
        return (uuid.UUID, (self._text,))


def _uuid5(name: str) -> uuid.UUID:
    """``uuid.uuid5(EVENT_ID_NAMESPACE, name)``, without hashing the namespace or checking bytes."""
    digest = _ID_HASH.copy()
    digest.update(name.encode())
    value = (int.from_bytes(digest.digest()[:16], "big") & _ID_CLEAR) | _ID_SET
    out = object.__new__(_EventId)
    object.__setattr__(out, "int", value)
    object.__setattr__(out, "is_safe", _SAFE_UNKNOWN)
    hexa = f"{value:032x}"
    text = f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"
    object.__setattr__(out, "_text", text)
    return out


class DomainEvent(BaseModel):
    """Base of every domain event: frozen, no unknown fields, metadata stamped later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    __aggregate__: ClassVar[str] = ""
    __aggregate_id__: ClassVar[str] = ""
    __namespace__: ClassVar[str] = ""
    __version__: ClassVar[int] = 1

    metadata: EventMetadata | None = Field(default=None, description="set by the mapping runtime")

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    @classmethod
    def aggregate_type(cls) -> str:
        if not cls.__aggregate__:
            raise TypeError(f"{cls.__name__} declares no __aggregate__")
        return cls.__aggregate__

    @classmethod
    def namespace(cls) -> str:
        return cls.__namespace__ or cls.__module__.rsplit(".", 1)[0]

    @classmethod
    def full_name(cls) -> str:
        """The Avro full name, ``<namespace>.<EventType>``."""
        return f"{cls.namespace()}.{cls.event_type()}"

    def aggregate_id(self) -> str:
        field = type(self).__aggregate_id__
        if not field:
            raise TypeError(f"{type(self).__name__} declares no __aggregate_id__")
        return str(getattr(self, field))

    def stamped(self, metadata: EventMetadata) -> DomainEvent:
        """A copy of this event carrying ``metadata``."""
        return self.model_copy(update={"metadata": metadata})

    def stamp(self, metadata: EventMetadata) -> DomainEvent:
        """This event carrying ``metadata``: itself when it has none yet, else a copy.

        The mapping runtime stamps each event a rule has just made, so the
        event is given its metadata in place instead of being copied whole; an
        event that already carries metadata (a rule returned one instance
        twice, or one it kept) is copied, so no stamped event ever changes.
        """
        if self.metadata is not None:
            return self.stamped(metadata)
        self.__dict__["metadata"] = metadata
        self.__pydantic_fields_set__.add("metadata")
        return self

    def payload(self) -> dict[str, Any]:
        """The event's own fields, without metadata."""
        return self.model_dump(exclude={"metadata"})
