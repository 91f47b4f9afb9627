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

import uuid
from datetime import datetime
from typing import Any, ClassVar

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


def derive_event_id(source: SourcePosition, key: str, event_type: str, index: int = 0) -> uuid.UUID:
    """The id of the ``index``-th event of ``event_type`` made from one source change.

    Built from the source position (connector, LSN, transaction, table), the
    row key, the event type and the index, so a change Debezium delivers again
    yields the same id. Snapshot rows share one LSN; the row key keeps them apart.
    """
    name = "|".join(
        [
            source.connector,
            str(source.lsn),
            str(source.tx_id),
            source.table,
            key,
            event_type,
            str(index),
            "s" if source.snapshot else "",
        ]
    )
    return uuid.uuid5(EVENT_ID_NAMESPACE, name)


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

    def payload(self) -> dict[str, Any]:
        """The event's own fields, without metadata."""
        return self.model_dump(exclude={"metadata"})
