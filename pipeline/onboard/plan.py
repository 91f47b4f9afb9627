"""From catalogue tables to the draft of a domain: entities, events and their fields (pure).

Each captured table becomes one aggregate (its primary key is the aggregate
id) with three event types: ``<Entity>Created`` (insert, and the snapshot's
reads), ``<Entity>Updated`` (the row as it is after the update) and
``<Entity>Deleted`` (the deleted row's key). None of them reads an old value
but the key, so PostgreSQL's default replica identity serves every rule.

What the draft cannot decide is a :class:`Note` for the user to refine:
tables without a primary key (left out), columns of a type that is not
carried (left out), composite keys (the first key column is the aggregate id),
and foreign keys (a table that may belong to another table's aggregate).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.events import DomainEvent
from pipeline.onboard.catalog import Column, Table, identifier
from pipeline.onboard.types import FieldType, field_type

__all__ = ["Entity", "EventField", "EventPlan", "Note", "Plan", "plan_domain"]

# The events drafted per table, by kind: the operations each is emitted for, and the row
# image its fields are read from.
KINDS = {"Created": ("cr", "new"), "Updated": ("u", "new"), "Deleted": ("d", "old")}


@dataclass(frozen=True)
class Note:
    """Something the draft could not decide: the user refines it, as ``fix`` says."""

    kind: str
    """What kind of decision is left (``no-primary-key``, ``composite-key``)."""
    subject: str
    """The table or column concerned."""
    detail: str
    """What the draft did, and why it may be wrong."""
    fix: str
    """How to refine it: every note says."""


@dataclass(frozen=True)
class EventField:
    name: str
    column: Column
    type: FieldType
    optional: bool

    @property
    def converted(self) -> bool:
        return self.type.convert is not None


@dataclass(frozen=True)
class EventPlan:
    name: str
    kind: str
    """``Created``, ``Updated`` or ``Deleted``: a key of :data:`KINDS`."""
    fields: tuple[EventField, ...]

    @property
    def ops(self) -> str:
        """The operations the event is emitted for: ``cr``, ``u`` or ``d``."""
        return KINDS[self.kind][0]

    @property
    def image(self) -> str:
        """``new`` (the row after the change) or ``old`` (the deleted row's key)."""
        return KINDS[self.kind][1]

    @property
    def converted(self) -> bool:
        return any(f.converted for f in self.fields)


@dataclass(frozen=True)
class Entity:
    table: Table
    entity: str
    """PascalCase, singular: ``OrderLine`` for ``order_lines``."""
    aggregate: str
    id_field: str
    events: tuple[EventPlan, ...]


@dataclass(frozen=True)
class Plan:
    name: str
    """The domain's name: the first part of its topics, e.g. ``<name>.order.events``."""
    entities: tuple[Entity, ...]
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Literal alias -> labels."""
    notes: tuple[Note, ...] = ()

    @property
    def tables(self) -> list[str]:
        return [e.table.qualified for e in self.entities]


def singular(name: str) -> str:
    """A naive English singular: ``categories`` -> ``category``, ``orders`` -> ``order``."""
    if name.endswith("ies") and len(name) > 4:
        return name[:-3] + "y"
    if name.endswith(("sses", "shes", "ches", "xes")):
        return name[:-2]
    if name.endswith("s") and not name.endswith(("ss", "us", "is")):
        return name[:-1]
    return name


def pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in identifier(name).split("_") if part)


def _field_name(column: str, taken: set[str]) -> str:
    name = identifier(column)
    if name.startswith("_"):
        name = "c" + name
    if keyword.iskeyword(name) or hasattr(DomainEvent, name) or name.startswith("model_"):
        name = f"{name}_value" if name.startswith("model_") else f"{name}_"
        name = name.replace("model_", "m_", 1) if name.startswith("model_") else name
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def plan_domain(name: str, tables: Sequence[Table]) -> Plan:
    """The draft domain for ``tables`` (see the module doc).

    Raises:
        ValueError: no table has a primary key (nothing could be drafted).
    """
    notes: list[Note] = []
    enums: dict[str, tuple[str, ...]] = {}
    enum_alias: dict[tuple[str, ...], str] = {}
    selected = {t.qualified for t in tables}
    entities: list[Entity] = []
    taken_classes: set[str] = set()
    for table in tables:
        if not table.primary_key:
            notes.append(
                Note(
                    "no-primary-key",
                    table.qualified,
                    "has no primary key: left out (an event needs an aggregate id, and "
                    "PostgreSQL refuses its UPDATE and DELETE once published unless the "
                    "table is REPLICA IDENTITY FULL)",
                    f"ALTER TABLE {table.qualified} ADD PRIMARY KEY (...), then run init again",
                )
            )
            continue
        entity = pascal(singular(table.name))
        if entity in taken_classes:
            entity = pascal(f"{table.schema}_{singular(table.name)}")
        taken_classes.add(entity)
        fields: list[EventField] = []
        taken: set[str] = set()
        for column in table.columns:
            alias = ""
            if column.type_kind == "e":
                alias = enum_alias.get(column.labels) or _enum_name(column, enums, taken_classes)
                enum_alias[column.labels] = alias
                enums[alias] = column.labels
            ftype = field_type(column, alias)
            if ftype is None:
                notes.append(
                    Note(
                        "type-not-carried",
                        f"{table.qualified}.{column.name}",
                        f"type {column.sql_type} is not carried: the column is left out of "
                        "the events",
                        "carry it in a rule of your own (as text, e.g. a generated column "
                        "or a view), or drop it from the draft",
                    )
                )
                continue
            fields.append(EventField(_field_name(column.name, taken), column, ftype, False))
        by_column = {f.column.name: f for f in fields}
        key_fields = [by_column[c] for c in table.primary_key if c in by_column]
        if len(key_fields) != len(table.primary_key):
            notes.append(
                Note(
                    "key-not-carried",
                    table.qualified,
                    "a primary key column has a type that is not carried: left out",
                    "give the table a key of a carried type",
                )
            )
            continue
        if len(table.primary_key) > 1:
            notes.append(
                Note(
                    "composite-key",
                    table.qualified,
                    f"composite primary key ({', '.join(table.primary_key)}): the aggregate id "
                    f"is {table.primary_key[0]}, so the rows sharing it form one aggregate",
                    "if that is not the aggregate, choose its id field in events.py "
                    "(__aggregate_id__)",
                )
            )
        for columns, target in table.references:
            if target in selected and target != table.qualified:
                notes.append(
                    Note(
                        "aggregate-spans-tables",
                        table.qualified,
                        f"references {target} ({', '.join(columns)}): if its rows belong to "
                        f"that aggregate, their events must share its topic and id",
                        f"set __aggregate__ of the {entity} events to the aggregate of "
                        f"{target} and __aggregate_id__ to the field of {columns[0]}; "
                        "'routing: derive' in the connector file keeps them in one ordered "
                        "stream",
                    )
                )
        toastable = [f.column.name for f in fields if _toastable(f.column)]
        if toastable and table.identity != "f":
            notes.append(
                Note(
                    "replica-identity",
                    table.qualified,
                    f"REPLICA IDENTITY {_IDENTITY.get(table.identity, '?')}: an UPDATE that "
                    f"leaves a large value of {', '.join(toastable)} unchanged does not carry "
                    f"it, and {entity}Updated then goes to the dead-letter topic",
                    f"ALTER TABLE {table.qualified} REPLICA IDENTITY FULL, or drop those "
                    f"fields from {entity}Updated",
                )
            )
        events = []
        for kind, (_, image) in KINDS.items():
            if image == "old":
                carried = tuple(EventField(f.name, f.column, f.type, False) for f in key_fields)
            else:
                keys = set(table.primary_key)
                carried = tuple(
                    EventField(
                        f.name, f.column, f.type, f.column.nullable and f.column.name not in keys
                    )
                    for f in fields
                )
            events.append(EventPlan(f"{entity}{kind}", kind, carried))
        entities.append(
            Entity(
                table, entity, identifier(singular(table.name)), key_fields[0].name, tuple(events)
            )
        )
    if not entities:
        raise ValueError(
            "none of the tables can be drafted: "
            + "; ".join(f"{n.subject} {n.detail}" for n in notes)
        )
    aggregates = [e.aggregate for e in entities]
    if len(set(aggregates)) != len(aggregates):
        entities = [
            e
            if aggregates.count(e.aggregate) == 1
            else Entity(
                e.table,
                e.entity,
                identifier(f"{e.table.schema}_{e.aggregate}"),
                e.id_field,
                e.events,
            )
            for e in entities
        ]
    return Plan(name, tuple(entities), enums, tuple(notes))


_IDENTITY = {"d": "DEFAULT", "i": "USING INDEX", "n": "NOTHING"}
# Types whose large values PostgreSQL stores out of line (TOAST), left out of an
# UPDATE's WAL record when unchanged, unless the table is REPLICA IDENTITY FULL.
_TOASTABLE = {"text", "varchar", "bpchar", "citext", "json", "jsonb", "bytea", "xml"}


def _toastable(column: Column) -> bool:
    return column.element is not None or column.type_name in _TOASTABLE


def _enum_name(column: Column, enums: dict[str, tuple[str, ...]], taken: set[str]) -> str:
    base = pascal(re.sub(r"\[\]$", "", column.sql_type).rsplit(".", 1)[-1].strip('"'))
    name, n = base, 2
    while name in enums or name in taken:
        name, n = f"{base}{n}", n + 1
    return name
