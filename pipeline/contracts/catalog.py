"""The contracts of a domain: its event models, their subjects, files and levels.

Event models are found by importing the domain package (``--domain``, default
the transformer's ``settings.transformer.domain``) and its ``events`` module
if it has one, and collecting every :class:`~pipeline.events.DomainEvent` subclass declared
under it that names an aggregate. Classes whose name starts with ``_`` are
shared bases (``_OrderEvent``), not events.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pipeline.contracts.levels import CompatibilityConfig, Level
from pipeline.contracts.naming import event_domain, event_subject, event_topic, schema_path
from pipeline.errors import ConfigError
from pipeline.events import DomainEvent

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


def discover_events(modules: Iterable[str]) -> list[type[DomainEvent]]:
    """The event types declared under each module (a package: all of its submodules).

    Raises:
        ConfigError: a module cannot be imported (the message names it).
    """
    prefixes: list[str] = []
    for name in modules:
        module = _import(name)
        prefixes.append(name)
        # A domain package keeps its events in <package>.events (by convention,
        # see pipeline.domains.shop); other submodules need not be imported.
        if hasattr(module, "__path__") and any(
            info.name == "events" for info in pkgutil.iter_modules(module.__path__)
        ):
            _import(f"{name}.events")
    found = {
        cls
        for cls in _subclasses(DomainEvent)
        if any(cls.__module__ == p or cls.__module__.startswith(p + ".") for p in prefixes)
        and not cls.__name__.startswith("_")
        and cls.__aggregate__
    }
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


def _subclasses(cls: type[DomainEvent]) -> list[type[DomainEvent]]:
    out: list[type[DomainEvent]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot import {name!r} to find its event models: {type(exc).__name__}: {exc}",
            hint="pass an importable package with --domain, e.g. --domain pipeline.domains.shop",
        ) from exc
