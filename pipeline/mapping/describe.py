"""What a domain needs from its source, read from its rules and event types (pure, no I/O).

:func:`describe_domain` answers, for the registered rules and the domain's event
types, the questions the deployment checks ask:

- per table: its rules, the event types they emit, and which columns they read
  from the *before image* (the old row of an update or a delete), which only a
  suitable ``REPLICA IDENTITY`` carries;
- per aggregate (``__aggregate__`` of the event types): the tables feeding it
  and, per table, the column its aggregate id comes from. The events of one
  aggregate keep commit order only if every change producing them travels
  through one topic partition chosen by that column (see
  :mod:`pipeline.connect.routing`).

Where the answer comes from, in order of trust: what a rule declares
(``Rules.on(..., aggregate_id_from="col")``, YAML fields, a predicate's
columns), then the rule function's return annotation (``-> OrderShipped``,
``-> list[X]``, ``-> X | Y | None``) and an ``ast`` scan of its source for
``change.old("col")``, ``change.before["col"]``, ``change.row[...]`` and the
keyword argument named like the event's ``__aggregate_id__``. What cannot be
read is reported as unknown, with a finding saying what to declare; nothing is
guessed.

The same scan gives each rule's ``reads`` (every column it is seen to read,
``complete`` where nothing escapes the scan); YAML rules fill theirs when they
are compiled. A Python rule's declared ``reads=`` stays what ``cdcflow schemas
check --source`` checks (the scan is shown, never substituted for it); where the
scan sees a column the declaration leaves out, that is a ``reads-undeclared``
warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.events import DomainEvent
from pipeline.events.naming import event_topic
from pipeline.mapping.predicates import Predicate
from pipeline.mapping.registry import Rule, Rules
from pipeline.mapping.scan import Scan, concrete, resolve, rule_events, scan_function

__all__ = [
    "AggregateInfo",
    "DomainDescription",
    "Finding",
    "RuleInfo",
    "TableInfo",
    "describe_domain",
]


@dataclass(frozen=True)
class Finding:
    """Something a deployment must change: ``level`` fail (breaks a promise) or warn."""

    kind: str
    level: str
    subject: str
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RuleInfo:
    """One rule, as the checks see it."""

    name: str
    table: str
    ops: str
    origin: str
    events: tuple[str, ...]
    """Full names of the event types it emits; empty when ``events_known`` is false."""
    events_known: bool
    before_columns: frozenset[str]
    """Columns read from the before image on its updates / deletes."""
    before_unknown: tuple[str, ...]
    """Why more before-image reads cannot be ruled out (empty: the columns are all of them)."""
    aggregate_ids: Mapping[str, str | None]
    """Aggregate -> the column its id comes from (``None``: unknown)."""
    id_sources: Mapping[str, str]
    """Aggregate -> how the column was found (declared, yaml, scan)."""
    reads: frozenset[str] = frozenset()
    """Every column it is seen to read (any image, its predicate); YAML rules: their ``reads``."""
    reads_complete: bool = True
    """False where its body reads a column by a computed name or passes the change on."""

    @property
    def reads_before(self) -> bool:
        return bool(set(self.ops) & {"u", "d"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ops": self.ops,
            "origin": self.origin,
            "events": list(self.events) if self.events_known else None,
            "before_image": {
                "columns": sorted(self.before_columns),
                "unknown": list(self.before_unknown),
            },
            "aggregate_id_from": {
                agg: {"column": col, "how": self.id_sources.get(agg)}
                for agg, col in sorted(self.aggregate_ids.items())
            },
            "reads": {"columns": sorted(self.reads), "complete": self.reads_complete},
        }


@dataclass(frozen=True)
class TableInfo:
    name: str
    rules: tuple[RuleInfo, ...]
    ignored: bool = False

    @property
    def before_columns(self) -> frozenset[str]:
        return frozenset().union(*(r.before_columns for r in self.rules))

    @property
    def before_unknown(self) -> tuple[str, ...]:
        return tuple(f"{r.name}: {why}" for r in self.rules for why in r.before_unknown)

    @property
    def handles_deletes(self) -> bool:
        return any("d" in r.ops for r in self.rules)

    @property
    def aggregates(self) -> frozenset[str]:
        return frozenset(agg for r in self.rules for agg in r.aggregate_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "ignored": self.ignored,
            "rules": [r.to_dict() for r in self.rules],
            "events": sorted({e for r in self.rules for e in r.events}),
            "before_image": {
                "columns": sorted(self.before_columns),
                "unknown": list(self.before_unknown),
            },
        }


@dataclass(frozen=True)
class AggregateInfo:
    """One aggregate: its event types, its topic, and the tables that feed it."""

    name: str
    topic: str
    events: tuple[str, ...]
    tables: Mapping[str, str | None]
    """Table -> the column its aggregate id comes from (``None``: unknown)."""
    conflicts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Table -> the different columns its rules take the id from (a table may have only one)."""

    @property
    def multi_table(self) -> bool:
        return len(self.tables) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregate": self.name,
            "topic": self.topic,
            "events": list(self.events),
            "tables": [
                {"table": t, "aggregate_id_from": c} for t, c in sorted(self.tables.items())
            ],
        }


@dataclass(frozen=True)
class DomainDescription:
    """Everything the deployment checks need to know about one domain's rules."""

    domain: str
    tables: Mapping[str, TableInfo]
    aggregates: Mapping[str, AggregateInfo]
    known: frozenset[str]
    """Tables declared without rules (``Rules.known``) or ignored (``Rules.ignore``)."""
    findings: tuple[Finding, ...] = ()

    @property
    def all_tables(self) -> frozenset[str]:
        """Every table the transformer accepts changes of."""
        return frozenset(self.tables) | self.known

    def aggregates_of(self, table: str) -> dict[str, str | None]:
        """Aggregate -> id column, for every aggregate ``table`` feeds."""
        return {
            name: agg.tables[table] for name, agg in self.aggregates.items() if table in agg.tables
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "aggregates": [self.aggregates[a].to_dict() for a in sorted(self.aggregates)],
            "tables": [self.tables[t].to_dict() for t in sorted(self.tables)],
            "known_without_rules": sorted(self.known),
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------- describe


def _describe_rule(rule: Rule, events: Sequence[type[DomainEvent]]) -> RuleInfo:
    found, events_known = rule_events(rule)
    emitted = concrete(found, events) if events_known else []
    scan = Scan()
    if rule.old_reads is None:
        scan_function(rule.fn, scan, 0, label=rule.name)
    else:
        scan.old |= rule.old_reads
    before: set[str] = set()
    unknown: list[str] = []
    if set(rule.ops) & {"u", "d"}:
        before |= scan.old
        unknown += scan.unknown
        if "d" in rule.ops:
            before |= scan.row
        when = rule.when
        if when is not None:
            old = when.old_columns if isinstance(when, Predicate) else None
            row = when.row_columns if isinstance(when, Predicate) else None
            if old is None or row is None:
                unknown.append(f"its predicate {when!r} may read any column")
            else:
                before |= old
                if "d" in rule.ops:
                    before |= row
    ids: dict[str, str | None] = {}
    how: dict[str, str] = {}
    for event in emitted:
        agg = event.__aggregate__
        column, source = _id_column(rule, event, scan)
        if agg in ids and ids[agg] is not None and column is not None and ids[agg] != column:
            # Two event types of one aggregate from different columns: keep both visible.
            column = f"{ids[agg]}|{column}"
        ids[agg] = column if column is not None else ids.get(agg)
        if source:
            how[agg] = source
    seen = set(rule.reads) if rule.emits else scan.old | scan.row | scan.new
    if not rule.emits and isinstance(rule.when, Predicate):
        seen |= (rule.when.old_columns or set()) | (rule.when.row_columns or set())
    return RuleInfo(
        name=rule.name,
        table=rule.table,
        ops="".join(sorted(rule.ops)),
        origin=rule.origin,
        events=tuple(e.full_name() for e in emitted),
        events_known=events_known,
        before_columns=frozenset(before),
        before_unknown=tuple(dict.fromkeys(unknown)),
        aggregate_ids=ids,
        id_sources=how,
        reads=frozenset(seen),
        reads_complete=bool(rule.emits)
        or not (scan.unknown or scan.new_unknown or _opaque(rule.when)),
    )


def _opaque(when: Any) -> bool:
    """A predicate whose columns are not known (a plain function, ``where(...)``)."""
    if when is None:
        return False
    return not isinstance(when, Predicate) or None in (when.old_columns, when.row_columns)


def _undeclared_reads(rule: Rule, info: RuleInfo) -> Finding | None:
    """A Python rule that declares ``reads`` but is seen to read more."""
    missing = sorted(info.reads - rule.reads)
    if rule.emits or not rule.reads or not missing:
        return None
    return Finding(
        "reads-undeclared",
        "warn",
        f"{info.table} rule {info.name}",
        f"it reads {', '.join(missing)} but its reads= leaves them out, so "
        "'cdcflow schemas check --source' does not check them",
        f"add them: reads=({', '.join(repr(c) for c in sorted(rule.reads | set(missing)))})",
    )


def _id_column(rule: Rule, event: type[DomainEvent], scan: Scan) -> tuple[str | None, str]:
    if rule.aggregate_id_from:
        return rule.aggregate_id_from, "declared" if not rule.emits else "yaml"
    id_field = event.__aggregate_id__
    if not id_field or rule.old_reads is not None:
        return None, ""
    columns = set()
    for func, keywords in scan.calls:
        if id_field not in keywords:
            continue
        target = resolve(func, scan.namespace)
        if not (isinstance(target, type) and issubclass(target, event)):
            continue
        read = keywords[id_field]
        if read is None or read[0] not in ("new", "old", "row", "key"):
            return None, ""
        columns.add(read[1])
    if len(columns) == 1:
        return columns.pop(), "scan"
    return None, ""


def describe_domain(
    rules: Rules, events: Sequence[type[DomainEvent]], *, domain: str | None = None
) -> DomainDescription:
    """Describe what ``rules`` read and which aggregates their tables feed (see the module doc)."""
    infos = [_describe_rule(rule, events) for rule in rules]
    tables: dict[str, TableInfo] = {}
    for table in sorted({i.table for i in infos}):
        tables[table] = TableInfo(table, tuple(i for i in infos if i.table == table))
    known = frozenset(rules.tables - set(tables))
    findings = [f for r, i in zip(rules, infos, strict=True) if (f := _undeclared_reads(r, i))]
    by_name = {e.full_name(): e for e in events}
    aggregates: dict[str, dict[str, set[str | None]]] = {}
    agg_events: dict[str, set[str]] = {}
    agg_topic: dict[str, str] = {}
    for info in infos:
        if not info.events_known:
            findings.append(
                Finding(
                    "event-type-unknown",
                    "warn",
                    f"{info.table} rule {info.name}",
                    "its event types cannot be read: it has no return annotation naming "
                    "domain event classes",
                    f"annotate it, e.g. 'def {info.name}(change: Change) -> MyEvent:' "
                    "(or '-> list[MyEvent]', '-> MyEvent | None'); until then the aggregate "
                    "its events belong to is not checked",
                )
            )
        for full in info.events:
            event = by_name.get(full)
            if event is None or not event.__aggregate__:
                continue
            agg = event.__aggregate__
            aggregates.setdefault(agg, {}).setdefault(info.table, set()).add(
                info.aggregate_ids.get(agg)
            )
            agg_events.setdefault(agg, set()).add(full)
            agg_topic.setdefault(agg, event_topic(event))
    out: dict[str, AggregateInfo] = {}
    for agg, per_table in sorted(aggregates.items()):
        columns: dict[str, str | None] = {}
        conflicts: dict[str, tuple[str, ...]] = {}
        for table, found in sorted(per_table.items()):
            named = sorted(c for c in found if c is not None)
            split = sorted({part for c in named for part in c.split("|")})
            if len(split) > 1:
                conflicts[table] = tuple(split)
                columns[table] = None
                findings.append(
                    Finding(
                        "aggregate-id-conflict",
                        "fail",
                        f"{table} -> {agg}",
                        f"its rules take the {agg} id from different columns: {', '.join(split)}",
                        "one table's changes can follow one column; take the id from one column",
                    )
                )
                continue
            columns[table] = split[0] if split and None not in found else None
            if columns[table] is None:
                findings.append(
                    Finding(
                        "aggregate-id-unknown",
                        "warn",
                        f"{table} -> {agg}",
                        f"the column the {agg} id comes from cannot be read from "
                        + ", ".join(
                            i.name
                            for i in tables[table].rules
                            if agg in i.aggregate_ids and i.aggregate_ids[agg] is None
                        ),
                        f"declare it: @rules.on('{table}', ..., aggregate_id_from='<column>'); "
                        "until then the routing of its changes is not checked",
                    )
                )
        out[agg] = AggregateInfo(
            agg, agg_topic[agg], tuple(sorted(agg_events[agg])), columns, conflicts
        )
    return DomainDescription(
        domain=domain or rules.domain,
        tables=tables,
        aggregates=out,
        known=known,
        findings=tuple(findings),
    )
