"""Projections: read models (CQRS) declared as tables plus one handler per event type.

A projection names the topics it reads, declares its tables as DDL, and
registers a handler per event type; a handler writes the event's effect with
plain SQL through the :class:`Tx` it is given::

    orders = Projection(
        "orders_by_customer",
        topics=["shop.order.events"],
        tables={"customers": "CREATE TABLE {table} (customer_id bigint PRIMARY KEY, orders int)"},
    )

    @orders.on(OrderPlaced)
    def placed(db: Tx, event: OrderPlaced) -> None:
        db.execute(
            "INSERT INTO {customers} AS c VALUES (%s, 1) "
            "ON CONFLICT (customer_id) DO UPDATE SET orders = c.orders + 1",
            (event.customer_id,),
        )

In DDL, ``{table}`` is the table's qualified name and ``{name}`` its bare
name (to name indexes: ``CREATE INDEX {name}_customer_idx ON {table} (...)``);
in handler SQL, ``{<table>}`` is the qualified name of each declared table.
The names are placeholders because the same DDL and handlers also fill the
*shadow* tables of a rebuild (:mod:`.rebuild`) and checkpoints are copies of
them: a handler never knows, or needs to know, which generation it writes.

A domain lists its projections and the upcasters of old event versions (an
:class:`~pipeline.replay.upcast.Upcasters`) in its
:class:`~pipeline.domain.Domain` (``projections=``, ``upcasters=``); a module
without one lists them in ``projections`` and ``upcasters``.
``projections.modules`` names the domains (modules) the command line loads.

Handlers run inside the database transaction that also moves the
projection's tracking position (:mod:`.store`), so they must not commit, and
must not talk to anything but this database. Events of types without a
handler are passed over (their position still advances).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg

from pipeline.events import DomainEvent
from pipeline.replay.errors import ProjectionError, UnknownProjection
from pipeline.replay.stream import Delivered
from pipeline.replay.upcast import Upcasters
from pipeline.selection import select_named

__all__ = [
    "Handler",
    "Projection",
    "Tx",
    "load_projections",
    "load_upcasters",
    "physical_name",
    "select",
]

Handler = Callable[["Tx", Any], None]
H = TypeVar("H", bound=Handler)

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
# Physical names get suffixes (__g<N>, __old<N>, __ck<N>) and index names add
# their own; PostgreSQL cuts identifiers at 63 bytes.
_MAX_TABLE_NAME = 44


def physical_name(projection: str, table: str, suffix: str = "") -> str:
    """The bare name of a projection's table: ``<projection>_<table><suffix>``."""
    return f"{projection}_{table}{suffix}"


class Tx:
    """What a handler writes through: a cursor in the projection's transaction, its tables."""

    __slots__ = ("_cache", "cursor", "delivered", "tables")

    def __init__(self, cursor: psycopg.Cursor[Any], tables: Mapping[str, str]) -> None:
        self.cursor = cursor
        self.tables = dict(tables)
        self.delivered: Delivered | None = None
        self._cache: dict[str, str] = {}

    def sql(self, query: str) -> str:
        """``query`` with its ``{<table>}`` placeholders filled (cached per query text)."""
        text = self._cache.get(query)
        if text is None:
            text = query.format_map(self.tables)
            self._cache[query] = text
        return text

    def execute(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> psycopg.Cursor[Any]:
        """Run one statement (table placeholders filled) and return the cursor for its rows."""
        return self.cursor.execute(self.sql(query), params)


class Projection:
    """A read model: its name, the topics it reads, its tables and its handlers."""

    def __init__(
        self,
        name: str,
        *,
        topics: Sequence[str],
        tables: Mapping[str, str],
        description: str = "",
    ) -> None:
        """Declare a projection.

        Raises:
            ValueError: the name or a table name is not a lower-case SQL
                identifier, a physical table name would be too long, no topic
                or no table is given, or a DDL lacks ``{table}``.
        """
        if not _IDENT.match(name):
            raise ValueError(f"projection name {name!r} must match {_IDENT.pattern}")
        if not topics:
            raise ValueError(f"projection {name} reads no topic")
        if not tables:
            raise ValueError(f"projection {name} declares no table")
        for table, ddl in tables.items():
            if not _IDENT.match(table):
                raise ValueError(
                    f"table name {table!r} of projection {name} must match {_IDENT.pattern}"
                )
            if len(physical_name(name, table)) > _MAX_TABLE_NAME:
                raise ValueError(
                    f"projection {name}: table name {physical_name(name, table)} is longer than "
                    f"{_MAX_TABLE_NAME} characters (suffixes of rebuilds and indexes need the rest)"
                )
            if "{table}" not in ddl:
                raise ValueError(f"projection {name}: the DDL of {table} does not create {{table}}")
        self.name = name
        self.topics = tuple(topics)
        self.tables = dict(tables)
        self.description = description
        self._handlers: dict[type[DomainEvent], Handler] = {}

    def __repr__(self) -> str:
        return (
            f"Projection({self.name!r}, topics={list(self.topics)!r}, tables={list(self.tables)!r})"
        )

    def on(self, *event_types: type[DomainEvent]) -> Callable[[H], H]:
        """Register the decorated function as the handler of ``event_types``.

        The handler is called as ``handler(db, event)`` with a :class:`Tx` and
        an event of one of the types (annotate it with their union).

        Raises:
            ValueError: an event type already has a handler in this projection.
        """

        def decorate(fn: H) -> H:
            for event_type in event_types:
                if event_type in self._handlers:
                    raise ValueError(
                        f"projection {self.name} already handles {event_type.__name__}"
                    )
                self._handlers[event_type] = fn
            return fn

        return decorate

    def handler(self, event_type: type[DomainEvent]) -> Handler | None:
        return self._handlers.get(event_type)

    @property
    def event_types(self) -> list[type[DomainEvent]]:
        return list(self._handlers)

    def variant(
        self, *, name: str | None = None, topics: Sequence[str] | None = None
    ) -> Projection:
        """The same tables and handlers under another name, reading other topics (tests, tenants).

        Raises:
            ValueError: as for the constructor.
        """
        other = Projection(
            name or self.name,
            topics=topics or self.topics,
            tables=self.tables,
            description=self.description,
        )
        other._handlers = dict(self._handlers)
        return other

    def table_names(self, suffix: str = "") -> dict[str, str]:
        """Each declared table's bare physical name, with ``suffix`` (generation, checkpoint)."""
        return {table: physical_name(self.name, table, suffix) for table in self.tables}

    def ddl(self, schema: str, suffix: str = "") -> list[str]:
        """The DDL that creates each table (with ``suffix``) in ``schema``, one text per table."""
        return [
            self.tables[table].format(table=f"{schema}.{bare}", name=bare)
            for table, bare in self.table_names(suffix).items()
        ]


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ProjectionError(
            f"cannot import projection module {module_name}: {exc}",
            hint="check CDCFLOW_PROJECTIONS__MODULES",
        ) from exc


def _declared(module_name: str, attribute: str) -> Any:
    """A module's ``projections`` or ``upcasters``: its Domain's where it declares one."""
    from pipeline.domain import Domain

    module = _import(module_name)
    domains = [v for v in vars(module).values() if isinstance(v, Domain)]
    if len(domains) == 1:
        value = getattr(domains[0], attribute)
        return list(value) if attribute == "projections" else value
    return getattr(module, attribute, None)


def load_projections(modules: Iterable[str]) -> dict[str, Projection]:
    """The projections each module's Domain (or its ``projections`` attribute) lists, by name.

    Raises:
        ProjectionError: a module cannot be imported, lists no projections, or
            two projections share a name.
    """
    found: dict[str, Projection] = {}
    for module_name in modules:
        listed = _declared(module_name, "projections")
        if not isinstance(listed, list | tuple) or not all(
            isinstance(p, Projection) for p in listed
        ):
            raise ProjectionError(
                f"module {module_name} has no list 'projections' of Projection objects"
            )
        for projection in listed:
            if projection.name in found:
                raise ProjectionError(f"two projections are named {projection.name}")
            found[projection.name] = projection
    return found


def load_upcasters(modules: Iterable[str]) -> Upcasters:
    """The upcasters the modules declare (an optional ``upcasters`` attribute), merged.

    Raises:
        ProjectionError: a module cannot be imported, or two modules register
            the same step.
    """
    merged = Upcasters()
    for module_name in modules:
        declared = _declared(module_name, "upcasters")
        if isinstance(declared, Upcasters):
            try:
                merged.update(declared)
            except ValueError as exc:
                raise ProjectionError(f"upcasters of {module_name}: {exc}") from exc
    return merged


def select(projections: Mapping[str, Projection], names: Iterable[str]) -> list[Projection]:
    """The named projections (all of them when ``names`` is empty).

    Raises:
        UnknownProjection: a name is not declared.
    """
    return select_named(
        projections, names, error=UnknownProjection, unknown="no projection named {}"
    )
