"""Domain events to Avro and back (Confluent wire format) through the schema registry.

- :mod:`.avro` — :class:`EventSerializer`: events to framed Avro, a compiled writer per type
  (:mod:`.writer`).
- :mod:`.reader` — :class:`AvroReader`, the one reader (schema id -> writer schema, cached);
  :class:`EventDeserializer` gives plain dicts.
- :mod:`.wire` — the Confluent header: magic byte and schema id.
- :mod:`.registry` — :func:`map_registry_errors`: "unavailable" or "refused", for every caller.
- :mod:`.backoff` — waiting out an outage: 1, 2, 4, 8, 15 s.
"""

from pipeline.serde.avro import EventSerializer, event_to_record
from pipeline.serde.reader import AvroReader, EventDeserializer, UndecodableValue
from pipeline.serde.registry import RegistryUnavailable, map_registry_errors

__all__ = [
    "AvroReader",
    "EventDeserializer",
    "EventSerializer",
    "RegistryUnavailable",
    "UndecodableValue",
    "event_to_record",
    "map_registry_errors",
]
