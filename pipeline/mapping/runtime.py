"""Applying a domain's rules to one change, and stamping the events' metadata.

:func:`map_change` decides, in this order:

1. the table is ignored -> ``Skip(IGNORED_TABLE)``
2. the table is unknown -> :class:`UnknownTable` (a :class:`~pipeline.errors.MappingError`;
   the daemon dead-letters it: a table nobody mapped is a deployment mistake
   to see, not a change to drop)
3. every rule whose table, ops and predicate match is applied, in
   registration order; none matched -> ``Skip(TRUNCATE)`` for a truncate,
   else ``Skip(NO_MATCHING_RULE)``; all returned nothing -> ``Skip(NO_EVENTS)``
4. each event is stamped with :class:`~pipeline.events.EventMetadata`: its id
   derived from the source position, row key, event type and its index among
   the events of that type from this change; ``occurred_at`` the commit time;
   ``correlation_id`` the source transaction id.

Whatever a rule or predicate raises, or returns that is not a domain event,
becomes a :class:`~pipeline.errors.MappingError` carrying the record.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

from pipeline.cdc import Change, Interval, Skip, SkipReason
from pipeline.errors import CdcflowError, ColumnMissing, ColumnWithheld, MappingError
from pipeline.events import DomainEvent, EventMetadata, derive_event_id
from pipeline.mapping.predicates import BeforeImageMissing
from pipeline.mapping.registry import Rule, RuleResult, Rules

__all__ = ["Mapped", "UnknownTable", "map_change", "row_key", "stamp"]


class UnknownTable(MappingError):
    """A change arrived for a table the domain does not declare."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """The stamped domain events one change produced (at least one)."""

    change: Change
    events: tuple[DomainEvent, ...]


def _error(
    change: Change, message: str, hint: str | None = None, column: str | None = None
) -> MappingError:
    fields = change.record.error_fields() if change.record else {}
    return MappingError(message, hint=hint, table=change.table, column=column, **fields)


def map_change(rules: Rules, change: Change) -> Mapped | Skip:
    """Apply every matching rule of ``rules`` to ``change``.

    Raises:
        UnknownTable: no rule, ``known`` or ``ignore`` declaration covers the table.
        MappingError: a predicate or rule raised, or a rule returned something
            that is not a domain event, or an event lacks its aggregate id.
    """
    candidates = rules.plan(change.table, change.op)
    if candidates is None:
        if rules.is_ignored(change.table):
            return Skip(SkipReason.IGNORED_TABLE, change.table, change.record)
        fields = change.record.error_fields() if change.record else {}
        raise UnknownTable(
            f"no rule knows table {change.table}",
            hint=f"add rules for {change.table} to the domain, or declare it with "
            f"rules.known(...) or rules.ignore(...)",
            table=change.table,
            **fields,
        )
    produced: list[DomainEvent] = []
    matched: list[str] = []
    for rule in candidates:  # table and operation match: the predicate decides
        when = rule.when
        if when is not None:
            try:
                hit = bool(when(change))
            except Exception as exc:
                raise _user_error(rule, change, "predicate", exc) from exc
            if not hit:
                continue
        matched.append(rule.name)
        produced += _run(rule, change)
    if not matched:
        reason = SkipReason.TRUNCATE if change.op == "t" else SkipReason.NO_MATCHING_RULE
        return Skip(reason, f"{change.table} op {change.op}", change.record)
    if not produced:
        return Skip(SkipReason.NO_EVENTS, f"{change.table}: {', '.join(matched)}", change.record)
    return Mapped(change, stamp(change, produced))


def _user_error(rule: Rule, change: Change, part: str, exc: Exception) -> MappingError:
    """What user code (a predicate, a rule body) raised, as a MappingError carrying the record."""
    # A column the source did not send or the row lacks names its column; a cdcflow error's
    # message is carried without its hint (the hint has a field of its own).
    named = exc if isinstance(exc, ColumnWithheld | ColumnMissing | BeforeImageMissing) else None
    detail = exc.message if isinstance(exc, CdcflowError) else exc
    message = f"{part} of rule {rule} ({rule.origin}) raised {type(exc).__name__}: {detail}"
    column = named.column if named is not None else None
    return _error(change, message, getattr(exc, "hint", None), column)


def _run(rule: Rule, change: Change) -> list[DomainEvent]:
    try:
        result = rule.fn(change)
        if isinstance(result, DomainEvent):  # the usual rule: one event
            return [result]
        # Listing the result is inside the guard: a generator rule runs while it is listed.
        events = _as_list(result)
    except Exception as exc:
        raise _user_error(rule, change, "body", exc) from exc
    for event in events:
        if not isinstance(event, DomainEvent):
            raise _error(
                change,
                f"rule {rule} ({rule.origin}) returned {type(event).__name__}, not a DomainEvent",
            )
    return events


def _as_list(result: RuleResult) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, DomainEvent):
        return [result]
    if isinstance(result, Iterable) and not isinstance(result, str | bytes | dict):
        return list(result)
    return [result]  # reported as "not a DomainEvent" by the caller


@dataclass(frozen=True, slots=True)
class _Kind:
    """What stamping reads of an event class, read once per class."""

    event_type: str
    aggregate_type: str
    id_field: str
    """The field holding the aggregate id; empty: the class computes it (``aggregate_id()``)."""
    version: int


_KINDS: dict[type[DomainEvent], _Kind] = {}


def _undeclared(change: Change, event_type: str, exc: TypeError) -> MappingError:
    return _error(change, f"{event_type}: {exc}", "declare __aggregate__ and __aggregate_id__")


def _kind(change: Change, cls: type[DomainEvent]) -> _Kind:
    event_type = cls.event_type()
    try:
        aggregate_type = cls.aggregate_type()
    except TypeError as exc:
        raise _undeclared(change, event_type, exc) from exc
    plain = cls.aggregate_id is DomainEvent.aggregate_id
    kind = _Kind(event_type, aggregate_type, cls.__aggregate_id__ if plain else "", cls.__version__)
    _KINDS[cls] = kind
    return kind


def stamp(change: Change, events: Iterable[DomainEvent]) -> tuple[DomainEvent, ...]:
    """Each event with its :class:`EventMetadata`; ids are deterministic for the change.

    An event a rule has just made is given its metadata in place
    (:meth:`DomainEvent.stamp`), not copied.

    Raises:
        MappingError: an event type declares no aggregate, or an event's aggregate id is empty.
    """
    source = change.source
    key = row_key(change)
    seen: dict[str, int] = {}
    correlation = str(source.tx_id) if source.tx_id is not None else None
    occurred_at = change.committed_at
    out = []
    for event in events:
        cls = type(event)
        kind = _KINDS.get(cls) or _kind(change, cls)
        event_type = kind.event_type
        if kind.id_field:
            aggregate_id = str(getattr(event, kind.id_field))
        else:
            try:
                aggregate_id = event.aggregate_id()
            except TypeError as exc:
                raise _undeclared(change, event_type, exc) from exc
        if not aggregate_id:
            raise _error(change, f"{event_type}: empty aggregate id ({cls.__aggregate_id__})")
        index = seen.get(event_type, 0)
        seen[event_type] = index + 1
        metadata = EventMetadata.of(
            derive_event_id(source, key, event_type, index),
            event_type,
            kind.aggregate_type,
            aggregate_id,
            occurred_at,
            kind.version,
            correlation,
            source,
        )
        out.append(event.stamp(metadata))
    return tuple(out)


_KEY_SEPARATORS = (",", ":")


@cache
def _key_name(column: str) -> str:
    return json.dumps(column)


def row_key(change: Change) -> str:
    """The row's identity as canonical JSON: its key, else (no primary key) its whole row."""
    key = change.key
    if key:
        # The usual key, integer and uuid columns, written as json.dumps would write it.
        parts = []
        for column in sorted(key) if len(key) > 1 else key:
            value = key[column]
            kind = type(value)
            if kind is int:
                parts.append(f"{_key_name(column)}:{value!r}")
            elif kind is UUID:
                parts.append(f'{_key_name(column)}:"{value}"')
            else:
                break
        else:
            return "{" + ",".join(parts) + "}"
    return _KEY_JSON.encode(dict(key) or dict(change.row))


def _plain(value: Any) -> Any:
    if isinstance(value, UUID | Decimal | Interval):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return repr(value)  # UNCHANGED and anything else: stable text, never a crash


# What json.dumps(..., sort_keys=True, separators=..., default=_plain) builds on every call.
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=_KEY_SEPARATORS, default=_plain)
