"""The errors of the consumer side (replay, aggregates, projections).

All of them are :class:`~pipeline.errors.CdcflowError`; the ones about one
Kafka record are :class:`~pipeline.errors.RecordError` and carry its topic,
partition, offset, key and bytes::

    CdcflowError
    ├── ReplayError                 a replay could not start or go on
    │   ├── TopicNotFound           a topic to read does not exist
    │   └── BadPosition             a --from / --until / --from-offsets value is wrong
    ├── ProjectionError             a projection could not be set up, run or rebuilt
    │   ├── ProjectionBusy          another runner (or rebuild) holds the projection
    │   ├── NoCheckpoint            no checkpoint precedes the --from timestamp
    │   └── UnknownProjection       no projection of that name is declared
    └── RecordError
        ├── EventDecodeError        a value is not a decodable domain event
        │   ├── UnknownEventType    no event class is known for the record's Avro name
        │   └── UpcastError         an old version has no upcaster, or does not fit once upcast
        └── HandlerError            a projection handler failed (nothing of its batch is kept)
"""

from __future__ import annotations

from pipeline.errors import CdcflowError, RecordError

__all__ = [
    "BadPosition",
    "EventDecodeError",
    "HandlerError",
    "NoCheckpoint",
    "ProjectionBusy",
    "ProjectionError",
    "ReplayError",
    "TopicNotFound",
    "UnknownEventType",
    "UnknownProjection",
    "UpcastError",
]


class ReplayError(CdcflowError):
    """A replay could not start or go on."""


class TopicNotFound(ReplayError):
    """A topic to read does not exist on the cluster."""


class BadPosition(ReplayError):
    """A start or end position (timestamp, offsets spec) is malformed or names nothing."""

    exit_code = 2


class ProjectionError(CdcflowError):
    """A projection could not be set up, run, checkpointed or rebuilt."""


class ProjectionBusy(ProjectionError):
    """Another process holds the projection (a runner, or a rebuild)."""


class NoCheckpoint(ProjectionError):
    """A rebuild from a timestamp needs a checkpoint taken before it, and there is none."""


class UnknownProjection(ProjectionError):
    """No declared projection has the given name."""

    exit_code = 2


class EventDecodeError(RecordError):
    """A record value is not a decodable domain event (framing, schema, Avro body, model)."""

    stage = "decode"


class UnknownEventType(EventDecodeError):
    """The record's Avro full name maps to no known event class."""


class UpcastError(EventDecodeError):
    """An older version of an event has no upcaster path, or its upcast record fails the model."""


class HandlerError(RecordError):
    """A projection handler raised on an event; the batch's transaction was rolled back."""

    stage = "project"
