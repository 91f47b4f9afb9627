"""The contracts of a domain: its event models, their subjects, files and levels.

Event models are those of the domain (``--domain``, default the transformer's
``settings.transformer.domain``), as :func:`pipeline.domain.load_domain` finds
them; :func:`discover_events` takes several domains at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.contracts.levels import CompatibilityConfig, Level
from pipeline.domain import domain_events
from pipeline.errors import ConfigError
from pipeline.events import DomainEvent
from pipeline.events.naming import event_domain, event_subject, event_topic, schema_path

__all__ = ["Contract", "contracts_for", "discover_events"]


@dataclass(frozen=True)
class Contract:
    """One event type and everything cdcflow derives from it."""

    event: type[DomainEvent]
    full_name: str
    domain: str
    topic: str
    subject: str
    path: Path
    level: Level


def discover_events(domains: Iterable[str]) -> list[type[DomainEvent]]:
    """The event types of each domain (``pkg``, ``pkg:domain``, ``pkg.module``; or a module
    that only declares event types), by full name.

    Raises:
        ConfigError: a domain cannot be loaded (the message names it).
    """
    found = {event for spec in domains for event in domain_events(spec)}
    return sorted(found, key=lambda c: c.full_name())


def contracts_for(
    events: Sequence[type[DomainEvent]], schemas_dir: Path, config: CompatibilityConfig
) -> list[Contract]:
    """One :class:`Contract` per event type, ordered by file path.

    Raises:
        ConfigError: two event types would write the same schema file.
    """
    out: dict[Path, Contract] = {}
    for event in events:
        path = schema_path(schemas_dir, event.namespace(), event.event_type())
        if path in out:
            raise ConfigError(
                f"{out[path].event.__module__}.{out[path].event.__name__} and "
                f"{event.__module__}.{event.__name__} are both {event.full_name()}",
                hint="an Avro full name (namespace + class name) must name one event type",
            )
        subject = event_subject(event)
        domain = event_domain(event)
        out[path] = Contract(
            event=event,
            full_name=event.full_name(),
            domain=domain,
            topic=event_topic(event),
            subject=subject,
            path=path,
            level=config.level_for(subject, domain),
        )
    return [out[p] for p in sorted(out)]
