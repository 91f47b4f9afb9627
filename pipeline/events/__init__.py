"""Domain events: the pydantic base every event model derives from, and its metadata."""

from pipeline.events.base import DomainEvent, EventMetadata, SourcePosition, derive_event_id

__all__ = ["DomainEvent", "EventMetadata", "SourcePosition", "derive_event_id"]
