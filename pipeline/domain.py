"""The one object a domain author writes: :class:`Domain`, and how ``--domain`` finds it.

A domain package declares its events, its rules and (optionally) its
projections and upcasters, and ties them together in one object::

    # mypkg/__init__.py
    from pipeline import Domain
    from mypkg import events
    from mypkg.mappings import rules
    from mypkg.projections import orders_by_customer

    domain = Domain("shop", events=events, rules=rules, projections=[orders_by_customer])

``events`` is a list of event classes or a module (every
:class:`~pipeline.events.DomainEvent` subclass declared under it that names
an ``__aggregate__``). The domain's name is the first part of its event
topics: ``<name>.<aggregate>.events``.

``cdcflow run --domain`` (and every command that takes a domain) accepts
``mypkg`` (the package), ``mypkg:domain`` (an attribute) and
``mypkg.mappings`` (any module of the package: the nearest package up the
path that declares a :class:`Domain` is taken). A package without a
:class:`Domain` object still works by the older conventions: a module-level
``rules`` (in the module or its ``mappings`` submodule), its events found
under the package (and its ``events`` submodule), ``projections`` and
``upcasters`` attributes if present.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import ConfigError
from pipeline.events.base import DomainEvent
from pipeline.events.catalog import discover_events, events_in
from pipeline.events.naming import claim, event_domain, event_topic
from pipeline.mapping.registry import Rules

if TYPE_CHECKING:
    from pipeline.replay.projection import Projection
    from pipeline.replay.upcast import Upcasters

__all__ = ["Demo", "Domain", "WorkloadRun", "domain_events", "load_domain"]

_FORMS = "--domain mypkg, --domain mypkg:domain or --domain mypkg.mappings"


def _ignore(report: Any) -> None:
    pass


def _never() -> bool:
    return False


@dataclass(frozen=True)
class WorkloadRun:
    """How a :class:`Demo`'s workload runs: its pace, when it ends, and what it tells on the way."""

    rate: float
    """Operations per second."""
    duration: float | None = None
    """Seconds to run; no limit when None (and ``count`` is None)."""
    count: int | None = None
    """Operations to run; no limit when None (and ``duration`` is None)."""
    rng_seed: int | None = None
    """Seed of the random choice of operations, for a run that can be repeated."""
    progress: Callable[[Any], None] = _ignore
    """Called with the report so far, every few seconds."""
    should_stop: Callable[[], bool] = _never
    """Asked before each operation; True ends the run."""


class Demo(Protocol):
    """What ``cdcflow demo`` runs for a domain that brings a demo (``Domain(..., demo=)``).

    ``setup`` creates the source tables and seed rows (idempotent) and says
    how many rows it added per table; ``run_workload`` performs business
    operations on the source database and returns a report with
    ``operations`` and ``skipped`` (counts per name), ``total``, ``seconds``,
    ``rate`` and ``as_dict()``; ``read_models`` reads back what the domain's
    projections hold and ``render`` turns that into text lines.
    """

    @property
    def title(self) -> str: ...

    @property
    def operations(self) -> Sequence[str]: ...

    def setup(self, conn: Any) -> dict[str, int]: ...

    def run_workload(self, conn: Any, run: WorkloadRun) -> Any: ...

    def read_models(self, settings: Any) -> dict[str, Any]: ...

    def render(self, report: dict[str, Any]) -> list[str]: ...


class Domain:
    """A domain: its name, event types, mapping rules, projections and upcasters.

    ``demo`` is optional: what ``cdcflow demo`` runs for it (see :class:`Demo`).

    Raises (on construction):
        ConfigError: no event types, ``rules`` is not a :class:`Rules`, an event
            type declares a different ``__domain__``, or a projection is not a
            :class:`~pipeline.replay.projection.Projection`.
    """

    def __init__(
        self,
        name: str,
        *,
        events: Sequence[type[DomainEvent]] | ModuleType,
        rules: Rules,
        projections: Sequence[Projection] = (),
        upcasters: Upcasters | None = None,
        demo: Demo | None = None,
        _claim: bool = True,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"a domain name is a plain word, got {name!r}")
        if not isinstance(rules, Rules):
            raise ConfigError(f"domain {name!r}: rules must be a Rules, got {type(rules).__name__}")
        listed = events_in(events.__name__) if isinstance(events, ModuleType) else list(events)
        bad = [e for e in listed if not (isinstance(e, type) and issubclass(e, DomainEvent))]
        if bad:
            raise ConfigError(f"domain {name!r}: not DomainEvent classes: {bad!r}")
        if not listed:
            raise ConfigError(
                f"domain {name!r} declares no event types",
                hint="pass events=[...] or a module declaring DomainEvent subclasses "
                "with __aggregate__",
            )
        try:
            if _claim:
                claim(name, listed)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="drop __domain__ or name the domain alike") from exc
        self.name = name
        self.events: tuple[type[DomainEvent], ...] = tuple(
            sorted(set(listed), key=lambda c: c.full_name())
        )
        self.rules = rules
        if not rules.domain:
            rules.domain = name
        self.projections: tuple[Projection, ...] = tuple(projections)
        self._check_projections()
        self.upcasters = upcasters
        self.demo = demo

    def _check_projections(self) -> None:
        if not self.projections:
            return
        from pipeline.replay.projection import Projection

        bad = [p for p in self.projections if not isinstance(p, Projection)]
        if bad:
            raise ConfigError(f"domain {self.name!r}: not Projection objects: {bad!r}")

    @property
    def topics(self) -> list[str]:
        """The event topics the domain produces: ``<name>.<aggregate>.events``, sorted."""
        return sorted({event_topic(e) for e in self.events})

    def __repr__(self) -> str:
        return (
            f"Domain({self.name!r}, {len(self.events)} events, {len(self.rules)} rules, "
            f"{len(self.projections)} projections)"
        )


_LOADED: dict[str, Domain] = {}


def load_domain(spec: str) -> Domain:
    """The :class:`Domain` named by ``spec``: ``pkg``, ``pkg:attribute`` or ``pkg.module``.

    Loaded once per ``spec``. Without a :class:`Domain` object in the module
    or any package above it, the older conventions build one (see the module
    docstring).

    Raises:
        ConfigError: the module cannot be imported, or nothing there makes a
            domain (the message lists what was found).
    """
    if spec not in _LOADED:
        _LOADED[spec] = _resolve(spec)
    return _LOADED[spec]


def domain_events(spec: str) -> list[type[DomainEvent]]:
    """The event types of a domain, or of a module that only declares events (tooling).

    Raises:
        ConfigError: the module cannot be imported.
    """
    module = _import(spec.partition(":")[0])
    if _find_domain(spec, module) is None and _rules_of(module) is None:
        return discover_events([module.__name__])
    return list(load_domain(spec).events)


def _resolve(spec: str) -> Domain:
    module_path, _, attribute = spec.partition(":")
    module = _import(module_path)
    if attribute:
        found = getattr(module, attribute, None)
        if isinstance(found, Domain):
            return found
        raise ConfigError(
            f"{module_path} has no Domain named {attribute!r}"
            + (f" ({attribute} is a {type(found).__name__})" if found is not None else ""),
            hint=f"Domain objects in {module_path}: {_names(_domains_in(module)) or 'none'}",
        )
    domain = _find_domain(spec, module)
    if domain is not None:
        return domain
    rules = _rules_of(module)
    if rules is None:
        raise ConfigError(f"{spec!r} declares no domain: {_found(module)}", hint=_FORMS)
    return _by_convention(module, rules)


def _find_domain(spec: str, module: ModuleType) -> Domain | None:
    """The Domain in ``module`` or the nearest package above it that declares one.

    Raises:
        ConfigError: a module holds several Domain objects (the message names them).
    """
    parts = spec.partition(":")[0].split(".")
    for depth in range(len(parts), 0, -1):
        current = module if depth == len(parts) else _import(".".join(parts[:depth]))
        domains = _domains_in(current)
        if isinstance(getattr(current, "domain", None), Domain):
            return current.domain  # type: ignore[no-any-return]
        if len(domains) == 1:
            return next(iter(domains.values()))
        if len(domains) > 1:
            raise ConfigError(
                f"{current.__name__} declares several domains: {_names(domains)}",
                hint=f"name one: --domain {current.__name__}:<name>",
            )
    return None


def _by_convention(module: ModuleType, rules: Rules) -> Domain:
    """A Domain from the module-name conventions of a package without a Domain object."""
    # The module's own events; for a rules module without any (mypkg.mappings),
    # those of its package.
    events = discover_events([module.__name__])
    package = module.__name__.rpartition(".")[0]
    if not events and package and not hasattr(module, "__path__"):
        events = discover_events([package])
    projections = getattr(module, "projections", None) or ()
    upcasters = getattr(module, "upcasters", None)
    if not events:
        raise ConfigError(
            f"domain {module.__name__!r} declares no event types (DomainEvent subclasses "
            f"with __aggregate__ under {package or module.__name__})",
            hint="declare them in the package's events module, or write a Domain object",
        )
    # Named as before there were Domain objects, each event type after its
    # declaration (naming.event_domain), so that its topics stay where they were.
    return Domain(
        event_domain(events[0]),
        events=events,
        rules=rules,
        projections=projections,
        upcasters=upcasters,
        _claim=False,
    )


def _rules_of(module: ModuleType) -> Rules | None:
    rules = getattr(module, "rules", None)
    if rules is None and hasattr(module, "__path__"):
        mappings = _import(f"{module.__name__}.mappings", optional=True)
        rules = getattr(mappings, "rules", None)
    return rules if isinstance(rules, Rules) else None


def _domains_in(module: ModuleType) -> dict[str, Domain]:
    return {k: v for k, v in vars(module).items() if isinstance(v, Domain)}


def _names(found: Iterable[str]) -> str:
    return ", ".join(sorted(found))


def _found(module: ModuleType) -> str:
    """What the module holds that looks like part of a domain, for the error message."""
    members = vars(module)
    rules = [k for k, v in members.items() if isinstance(v, Rules)]
    events = [
        k
        for k, v in members.items()
        if isinstance(v, type) and issubclass(v, DomainEvent) and v is not DomainEvent
    ]
    submodules = sorted(k for k, v in members.items() if isinstance(v, ModuleType))
    parts = [
        f"Domain objects: {_names(_domains_in(module)) or 'none'}",
        f"Rules: {_names(rules) or 'none'}",
        f"event classes: {_names(events) or 'none'}",
    ]
    if hasattr(module, "__path__"):
        import pkgutil

        parts.append(
            f"submodules: {_names(i.name for i in pkgutil.iter_modules(module.__path__)) or 'none'}"
        )
    elif submodules:
        parts.append(f"modules imported: {_names(submodules)}")
    return "; ".join(parts)


def _import(module_path: str, optional: bool = False) -> Any:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if optional and exc.name == module_path:
            return None
        raise ConfigError(
            f"cannot import domain module {module_path!r}: {exc}",
            hint=f"pass an importable module: {_FORMS}",
        ) from exc
    except ConfigError:
        raise
    except Exception as exc:
        # The user's module failed while building its domain (a bad YAML file, a typo).
        raise ConfigError(
            f"domain module {module_path!r} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
