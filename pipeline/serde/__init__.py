"""Domain events to Avro bytes (Confluent wire format) through the schema registry."""

from pipeline.serde.avro import (
    EventDeserializer,
    EventSerializer,
    RegistryUnavailable,
    event_to_record,
)

__all__ = ["EventDeserializer", "EventSerializer", "RegistryUnavailable", "event_to_record"]
