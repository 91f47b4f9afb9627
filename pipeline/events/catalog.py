"""Finding the event types declared in modules (run-time: no contract tooling).

:class:`~pipeline.domain.Domain` lists its event types, or names a module
they are declared in (``events=my_domain.events``); then, and for a domain
without a :class:`~pipeline.domain.Domain` object, every
:class:`~pipeline.events.DomainEvent` subclass declared under the module that
names an ``__aggregate__`` is one. Classes whose name starts with ``_`` are
shared bases (``_OrderEvent``), not events.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from pipeline.errors import ConfigError
from pipeline.events.base import DomainEvent

__all__ = ["discover_events", "events_in"]


def discover_events(modules: Iterable[str]) -> list[type[DomainEvent]]:
    """The event types declared under each module (a package: also its ``events`` submodule).

    Raises:
        ConfigError: a module cannot be imported (the message names it).
    """
    found: list[type[DomainEvent]] = []
    for name in modules:
        module = _import(name)
        # A domain package keeps its events in <package>.events (by convention);
        # other submodules need not be imported.
        if hasattr(module, "__path__") and any(
            info.name == "events" for info in pkgutil.iter_modules(module.__path__)
        ):
            _import(f"{name}.events")
        found.extend(events_in(name))
    return sorted(set(found), key=lambda c: c.full_name())


def events_in(prefix: str) -> list[type[DomainEvent]]:
    """The event types already imported from module ``prefix`` or its submodules."""
    found = {
        cls
        for cls in _subclasses(DomainEvent)
        if (cls.__module__ == prefix or cls.__module__.startswith(prefix + "."))
        and not cls.__name__.startswith("_")
        and cls.__aggregate__
    }
    return sorted(found, key=lambda c: c.full_name())


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
            hint="pass an importable package with --domain, e.g. --domain mypkg",
        ) from exc
