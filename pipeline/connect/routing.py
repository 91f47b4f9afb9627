"""Where a Debezium PostgreSQL connector sends each table's changes, and what the domain needs (pure).

The events of one aggregate keep commit order only if every CDC record that
produces them travels through one topic partition: Kafka orders a partition,
not a topic and not two topics, and the transformer reads its partitions
independently. So:

- every table feeding an aggregate is routed to one topic, and partitioned by
  the column its aggregate id comes from (Debezium's ``PartitionRouting`` on
  ``change.<col>``; the record keys of different tables differ, so key
  partitioning cannot put them together);
- a single-table aggregate whose id is the table's whole record key is fine
  with Debezium's default key partitioning; keyed by anything else it needs
  ``PartitionRouting`` by the id column as well;
- a table feeding two aggregates by different columns cannot follow both, but
  in a topic of one partition;
- ``PartitionRouting`` reads ``change.<col>``, which for a delete is the before
  image: the routing column must be in the table's replica identity (or the
  table ``FULL``), else a delete is routed by a placeholder value.

:func:`simulate` replays a connector config's ``transforms`` chain for each
captured table (the topic Debezium names, ``ByLogicalTableRouter``, Kafka's
``RegexRouter``, ``TopicNameMatches`` predicates with ``negate``,
``PartitionRouting``); an SMT it does not know makes that table's route
"cannot tell", never a guess. :func:`check_routing` compares the routes with a
:class:`~pipeline.mapping.describe.DomainDescription`; :func:`derive_routing`
writes the transforms that fix what it found, appended after the user's own,
the way ``connectors/shop-postgres.yaml`` routes the order tables by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.connect.capture import captured_tables
from pipeline.connect.capture import names as _names
from pipeline.connect.transforms import (
    PARTITION_ROUTING,
    TABLE_ROUTER,
    TOPIC_MATCHES,
    Route,
    simulate,
)
from pipeline.mapping.describe import DomainDescription, Finding

__all__ = [
    "RoutingReport",
    "TableCatalog",
    "check_routing",
    "derive_routing",
    "simulate",
]


@dataclass(frozen=True)
class TableCatalog:
    """What the source database says about one table (from the preflight's catalogue query)."""

    identity: str
    """``pg_class.relreplident``: d (default), f (full), i (index), n (nothing)."""
    key: tuple[str, ...] = ()
    """The primary key's columns."""
    identity_columns: tuple[str, ...] = ()
    """Columns a key-only before image carries (the key or the identity index)."""

    def in_identity(self, column: str) -> bool:
        return self.identity == "f" or column in self.identity_columns


@dataclass(frozen=True)
class RoutingReport:
    routes: Mapping[str, Route]
    findings: tuple[Finding, ...] = ()
    derived: Mapping[str, str] = field(default_factory=dict)
    """The config that fixes the fixable findings (empty: nothing to derive)."""

    @property
    def split(self) -> list[Finding]:
        """Findings that break an aggregate's order (the ones ``apply`` and ``run`` refuse)."""
        return [f for f in self.findings if f.level == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "routes": [self.routes[t].to_dict() for t in sorted(self.routes)],
            "findings": [f.to_dict() for f in self.findings],
            "derived": dict(self.derived),
        }


# --------------------------------------------------------------------------- check


def _partitions(config: Mapping[str, str]) -> str:
    return config.get("topic.creation.default.partitions") or "1"


def _single_partition(config: Mapping[str, str]) -> bool:
    return config.get("topic.creation.default.partitions") == "1"


def _groups(description: DomainDescription, tables: set[str]) -> list[list[str]]:
    """Aggregates that must share a topic: joined where one table feeds several."""
    parent = {a: a for a in description.aggregates}

    def root(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    for table in tables:
        aggs = sorted(description.aggregates_of(table))
        for other in aggs[1:]:
            parent[root(other)] = root(aggs[0])
    groups: dict[str, list[str]] = {}
    for agg in sorted(parent):
        groups.setdefault(root(agg), []).append(agg)
    return list(groups.values())


@dataclass
class _Checker:
    description: DomainDescription
    config: Mapping[str, str]
    routes: Mapping[str, Route]
    catalog: Mapping[str, TableCatalog] | None
    findings: list[Finding] = field(default_factory=list)
    to_fix: dict[str, dict[str, str]] = field(default_factory=dict)
    unproven: dict[str, dict[str, str]] = field(default_factory=dict)
    """Single-table aggregates partitioned by a record key this check cannot see."""
    """Aggregate group name -> table -> the column to partition it by."""
    group_topic: dict[str, str | None] = field(default_factory=dict)

    def add(self, kind: str, level: str, subject: str, detail: str, fix: str | None) -> None:
        self.findings.append(Finding(kind, level, subject, detail, fix))

    def run(self) -> None:
        captured = set(self.routes)
        for group in _groups(self.description, captured):
            self.check_group(group)
        self.check_identities()

    def check_group(self, group: list[str]) -> None:
        name = "+".join(group)
        tables: dict[str, set[str | None]] = {}
        for agg in group:
            for table, column in self.description.aggregates[agg].tables.items():
                if table in self.routes:
                    tables.setdefault(table, set()).add(column)
        if not tables:
            return
        unknown = [t for t in tables if self.routes[t].unknown is not None]
        for table in unknown:
            self.add(
                "cannot-tell",
                "warn",
                f"{table} -> {name}",
                f"its route cannot be told: {self.routes[table].unknown} is not simulated",
                "check by hand that the aggregate's tables share one topic and are "
                "partitioned by its id column",
            )
        if unknown:
            return
        topics = sorted({self.routes[t].topic or "" for t in tables})
        columns: dict[str, str] = {}
        for table, found in sorted(tables.items()):
            if None in found:
                return  # the id column is unknown: describe reports it
            if len(found) > 1:
                if not _single_partition(self.config):
                    self.add(
                        "conflicting-partitioning",
                        "fail",
                        f"{table} -> {name}",
                        f"it feeds {', '.join(group)} by different columns "
                        f"({', '.join(sorted(c or '' for c in found))}): its changes cannot "
                        "follow both to one partition each",
                        "route these aggregates' tables into one topic of one partition, "
                        "or take both ids from one column",
                    )
                return
            columns[table] = next(iter(found)) or ""
        multi = len(tables) > 1
        if len(topics) > 1:
            self.add(
                "split-aggregate",
                "fail",
                name,
                f"its tables are written to {len(topics)} topics ("
                + ", ".join(f"{t} -> {self.routes[t].topic}" for t in sorted(tables))
                + "): a consumer may see its events out of commit order",
                "route them into one topic, partitioned by the aggregate id column "
                "(the derived config)",
            )
            self.fix(name, columns)
            return
        self.group_topic[name] = topics[0]
        if _single_partition(self.config):
            return
        wrong = []
        for table, column in sorted(columns.items()):
            part = self.routes[table].partitioning
            if part.by == "fields" and part.columns == (column,):
                continue
            if not multi and part.by == "key":
                key = part.columns or (
                    self.catalog[table].key if self.catalog and table in self.catalog else None
                )
                if key is None:
                    # The primary key is not known here (the preflight checks it).
                    self.unproven[name] = {table: column}
                    continue
                if key == (column,):
                    continue
                wrong.append((table, column, f"partitioned by its record key ({', '.join(key)})"))
                continue
            how = (
                f"partitioned by change.{', change.'.join(part.columns)}"
                if part.by == "fields"
                else "partitioned by its record key"
            )
            wrong.append((table, column, how))
        for table, column, how in wrong:
            by_key = self.routes[table].partitioning.by == "key"
            self.add(
                "key-not-aggregate-id" if by_key and not multi else "partitioned-by-other-column",
                "fail",
                f"{table} -> {name}",
                f"{how}, not by {column}, which its {name} id comes from: changes of one "
                f"{name} spread over several partitions",
                f"partition it by change.{column} (PartitionRouting; the derived config)",
            )
        if wrong:
            self.fix(name, columns)
            return
        if multi:
            used = {
                (self.routes[t].partitioning.num, self.routes[t].partitioning.hash) for t in tables
            }
            if len(used) > 1:
                self.add(
                    "partitioned-inconsistently",
                    "fail",
                    name,
                    "its tables' PartitionRouting transforms differ in partition.topic.num or "
                    "partition.hash.function: one id lands on different partitions",
                    "give them the same partition.topic.num and partition.hash.function",
                )
                self.fix(name, columns)

    def fix(self, name: str, columns: Mapping[str, str]) -> None:
        self.to_fix[name] = dict(columns)

    def check_identities(self) -> None:
        if self.catalog is None:
            return
        for table, route in sorted(self.routes.items()):
            info = self.catalog.get(table)
            part = route.partitioning
            if info is None or part.by != "fields":
                continue
            missing = [c for c in part.columns if not info.in_identity(c)]
            if not missing:
                continue
            table_info = self.description.tables.get(table)
            deletes = table_info is not None and table_info.handles_deletes
            self.add(
                "routing-column-not-in-identity",
                "fail" if deletes else "warn",
                table,
                f"it is partitioned by change.{', change.'.join(missing)}, which a delete's "
                "before image does not carry (REPLICA IDENTITY "
                + {"d": "DEFAULT", "i": "USING INDEX", "n": "NOTHING"}.get(info.identity, "?")
                + "): its deletes land on another partition"
                + (", and a rule maps them" if deletes else " (no rule maps its deletes today)"),
                f"ALTER TABLE {table} REPLICA IDENTITY FULL",
            )


def check_routing(
    description: DomainDescription,
    config: Mapping[str, str],
    *,
    tables: Iterable[str] | None = None,
    catalog: Mapping[str, TableCatalog] | None = None,
    derive_unproven: bool = False,
) -> RoutingReport:
    """Check that ``config`` keeps every aggregate of ``description`` in commit order.

    ``tables`` are the captured tables (default: the domain's tables the
    connector's include / exclude lists capture); ``catalog`` adds what only
    the database knows (primary keys, replica identities), without which those
    checks are left to the preflight. The report's ``derived`` holds the
    config that fixes what was found; with ``derive_unproven`` also the
    partitioning of single-table aggregates whose record key is not known
    (see :func:`derive_routing`).
    """
    captured = captured_tables(config, description.all_tables if tables is None else tables)
    routes = simulate(config, captured)
    checker = _Checker(description, config, routes, catalog)
    checker.run()
    fixes = dict(checker.to_fix)
    if derive_unproven and fixes:
        fixes = checker.unproven | fixes
    elif derive_unproven:
        fixes = dict(checker.unproven)
    derived = _derive(config, routes, fixes) if fixes else {}
    return RoutingReport(routes, tuple(checker.findings), derived)


def derive_routing(
    description: DomainDescription,
    config: Mapping[str, str],
    *,
    tables: Iterable[str] | None = None,
    catalog: Mapping[str, TableCatalog] | None = None,
) -> dict[str, str]:
    """The keys to set on ``config`` so that every aggregate keeps one ordered stream.

    Per aggregate found split or partitioned by another column: a
    ``PartitionRouting`` per id column (with a ``TopicNameMatches`` predicate
    on the tables' topics) and, when its tables are on several topics, one
    ``ByLogicalTableRouter`` into ``<prefix>.<schema>.<aggregate>_aggregate``
    with ``key.enforce.uniqueness: false`` — appended after the transforms the
    config already has (a ``PartitionRouting`` whose tables the user's own
    chain merges with others goes first instead, where each table's topic is
    still its own). ``{**config, **derive_routing(...)}`` is the fixed
    config; an empty result means there is nothing to fix (or nothing fixable).

    Without ``catalog`` the primary keys are not known: a table feeding an
    aggregate on its own is then partitioned by its id column as well, which
    is right whatever its key (with the key equal to the id column, it only
    changes which partition an id lands on).
    """
    report = check_routing(
        description, config, tables=tables, catalog=catalog, derive_unproven=True
    )
    return dict(report.derived)


def _alias(base: str, taken: set[str]) -> str:
    name = re.sub(r"[^0-9A-Za-z]+", "_", base).strip("_") or "cdcflow"
    out, n = name, 2
    while out in taken:
        out, n = f"{name}{n}", n + 1
    taken.add(out)
    return out


def _alternation(topics: Iterable[str]) -> str:
    return "|".join(re.escape(t) for t in sorted(set(topics)))


def _derive(
    config: Mapping[str, str], routes: Mapping[str, Route], fixes: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    own = _names(config.get("transforms"))
    predicates = _names(config.get("predicates"))
    taken = set(own) | set(predicates)
    first: list[str] = []  # partitioning that must see each table's own topic
    last: list[str] = []
    out: dict[str, str] = {}
    num = _partitions(config)
    prefix = config.get("topic.prefix", "")
    final: dict[str, set[str]] = {}  # topic after the user's chain -> the tables on it
    for table, route in routes.items():
        final.setdefault(route.topic or "", set()).add(table)
    for name, columns in sorted(fixes.items()):
        by_column: dict[str, list[str]] = {}
        for table, column in sorted(columns.items()):
            by_column.setdefault(column, []).append(table)
        for column, tables in sorted(by_column.items()):
            alias = _alias(f"{name}_partition_by_{column}", taken)
            pred = _alias(f"{name}_by_{column}", taken)
            topics = [routes[t].topic or "" for t in tables]
            if all(final[t] <= set(tables) for t in topics):
                last.append(alias)  # after the user's transforms, on the topics they make
            else:
                # The user's chain already merges these tables with others: tell
                # them apart by Debezium's own topic names, before that chain.
                topics = [f"{prefix}.{t}" for t in tables]
                first.append(alias)
            predicates.append(pred)
            out |= {
                f"predicates.{pred}.type": TOPIC_MATCHES,
                f"predicates.{pred}.pattern": _alternation(topics),
                f"transforms.{alias}.type": PARTITION_ROUTING,
                f"transforms.{alias}.predicate": pred,
                f"transforms.{alias}.partition.payload.fields": f"change.{column}",
                f"transforms.{alias}.partition.topic.num": num,
                f"transforms.{alias}.partition.hash.function": "murmur",
            }
        all_topics = {routes[t].topic or "" for t in columns}
        if len(all_topics) > 1:
            schema = sorted(columns)[0].split(".", 1)[0]
            target = f"{prefix}.{schema}.{name.replace('+', '_')}_aggregate"
            alias = _alias(f"{name}_aggregate", taken)
            last.append(alias)
            out |= {
                f"transforms.{alias}.type": TABLE_ROUTER,
                f"transforms.{alias}.topic.regex": f"({_alternation(all_topics)})",
                f"transforms.{alias}.topic.replacement": target,
                # Keys stay as Debezium writes them: the transformer reads the
                # table from each record's source block.
                f"transforms.{alias}.key.enforce.uniqueness": "false",
            }
    out["transforms"] = ",".join(first + own + last)
    if predicates:
        out["predicates"] = ",".join(predicates)
    return out
