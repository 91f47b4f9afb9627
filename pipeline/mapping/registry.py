"""The rule registry: which function turns which row changes into domain events.

A rule is a table, a set of operations, an optional predicate and a function
``Change -> DomainEvent | Iterable[DomainEvent] | None``. Rules come from
Python (the :meth:`Rules.on` decorator) or YAML (:meth:`Rules.load_yaml`);
both end up as :class:`Rule` values in one :class:`Rules`, in the order they
were added, which is the order the runtime applies them.

Every table the domain receives changes for must be *known*: it has a rule,
or is declared with :meth:`Rules.known` (changes on it may all be skipped) or
:meth:`Rules.ignore` (every change on it is skipped). A change on a table
nobody declared is a mapping error, so a newly captured table cannot be
dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from pipeline.cdc import OPS, Change
from pipeline.events import DomainEvent

__all__ = ["Rule", "RuleFn", "RuleResult", "Rules", "parse_ops"]

RuleResult = DomainEvent | Iterable[DomainEvent] | None
RuleFn = Callable[[Change], RuleResult]
F = TypeVar("F", bound=RuleFn)

_OP_NAMES = {
    "create": "c",
    "update": "u",
    "delete": "d",
    "read": "r",
    "snapshot": "r",
    "truncate": "t",
}


def parse_ops(ops: str | Iterable[str]) -> frozenset[str]:
    """Operations as letters (``"cr"``, ``"u"``, ``["c", "r"]``) or names (``["create", "read"]``).

    Raises:
        ValueError: an unknown operation, or none at all.
    """
    if isinstance(ops, str):
        ops = [ops] if ops in _OP_NAMES else list(ops.replace(",", "").replace(" ", ""))
    out: set[str] = set()
    for op in ops:
        letter = _OP_NAMES.get(op, op)
        if letter not in OPS:
            raise ValueError(f"unknown operation {op!r}; use c, u, d, r, t or their names")
        out.add(letter)
    if not out:
        raise ValueError("a rule needs at least one operation")
    return frozenset(out)


def _check_table(table: str) -> str:
    if not isinstance(table, str) or table.count(".") != 1 or "" in table.split("."):
        raise ValueError(f"table must be 'schema.table', got {table!r}")
    return table


@dataclass(frozen=True, slots=True)
class Rule:
    """One mapping rule. ``origin`` says where it was declared, for error messages."""

    table: str
    ops: frozenset[str]
    fn: RuleFn
    when: Callable[[Change], bool] | None = None
    name: str = ""
    origin: str = ""
    reads: frozenset[str] = frozenset()
    """Columns a Python rule says it reads; ``cdcflow schemas`` checks them against the source."""
    aggregate_id_from: str | None = None
    """The column the aggregate id of its events comes from, where the rule declares it."""
    emits: tuple[type[DomainEvent], ...] = ()
    """Event types the rule declares it emits (YAML rules); empty: read from its annotation."""
    old_reads: frozenset[str] | None = None
    """Columns it reads from the before image, where exactly known (YAML rules); else scanned."""
    fills: tuple[tuple[str, str], ...] = ()
    """``(event field, column)`` for each column an event field is filled from (YAML rules)."""
    null_covered: frozenset[tuple[str, str]] = frozenset()
    """Those of :attr:`fills` whose NULL does not reach the field (a later ``first_of`` alternative
    is taken), so a nullable column does not fail it."""

    def matches(self, change: Change) -> bool:
        """Table, operation and predicate all match; the predicate's own errors propagate."""
        if change.table != self.table or change.op not in self.ops:
            return False
        return self.when is None or bool(self.when(change))

    def __str__(self) -> str:
        when = f" when {self.when!r}" if self.when is not None else ""
        return f"{self.name} [{self.table} {''.join(sorted(self.ops))}{when}]"


class Rules:
    """The registry of one domain's rules, ignored and known tables."""

    def __init__(self, domain: str = "") -> None:
        self.domain = domain
        self._rules: list[Rule] = []
        self._known: set[str] = set()
        self._ignored: set[str] = set()
        # for_table() and plan() run for every change the transformer maps: their answers are kept.
        self._by_table: dict[str, tuple[Rule, ...]] = {}
        self._plans: dict[tuple[str, str], tuple[Rule, ...] | None] = {}

    def on(
        self,
        table: str,
        *,
        ops: str | Iterable[str],
        when: Callable[[Change], bool] | None = None,
        name: str | None = None,
        reads: Iterable[str] = (),
        aggregate_id_from: str | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as a rule for ``table`` and ``ops``, if ``when`` holds.

        The function receives the :class:`~pipeline.cdc.Change` and returns one
        domain event, several, or ``None``; the runtime stamps their metadata.
        ``reads`` names the columns it uses, so that they can be checked against
        the source tables before deployment. ``aggregate_id_from`` names the
        column the events' aggregate id comes from, where ``cdcflow domain
        describe`` cannot read it from the function (it routes the table's
        changes to the aggregate's partition).

        Raises:
            ValueError: the table is not ``schema.table`` or an operation is unknown.
        """
        letters = parse_ops(ops)
        _check_table(table)

        def register(fn: F) -> F:
            label = name or str(getattr(fn, "__name__", "rule"))
            origin = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', label)}"
            self.add(
                Rule(
                    table,
                    letters,
                    fn,
                    when,
                    label,
                    origin,
                    frozenset(reads),
                    aggregate_id_from=aggregate_id_from,
                )
            )
            return fn

        return register

    def add(self, rule: Rule) -> None:
        """Add a rule built elsewhere (YAML rules end up here).

        Raises:
            ValueError: the rule's table is ignored, which would make the rule dead.
        """
        _check_table(rule.table)
        if rule.table in self._ignored:
            raise ValueError(f"{rule.table} is ignored; rule {rule.name!r} would never run")
        self._rules.append(rule)
        self._known.add(rule.table)
        self._by_table.clear()
        self._plans.clear()

    def known(self, *tables: str) -> None:
        """Declare tables whose changes are expected even where no rule produces an event."""
        self._plans.clear()
        self._known.update(_check_table(t) for t in tables)

    def ignore(self, *tables: str) -> None:
        """Declare tables whose every change is skipped (``SkipReason.IGNORED_TABLE``).

        Raises:
            ValueError: a table already has rules.
        """
        self._plans.clear()
        for table in tables:
            _check_table(table)
            if any(r.table == table for r in self._rules):
                raise ValueError(f"{table} has rules and cannot be ignored")
            self._ignored.add(table)

    def load_yaml(self, path: str | Path, *, events: ModuleType | str | None = None) -> None:
        """Compile a YAML rule file into this registry (see :mod:`pipeline.mapping.yaml_rules`).

        Raises:
            ConfigError: the file is unreadable or invalid; the message names the rule.
        """
        from pipeline.mapping.yaml_rules import load_rules_file

        load_rules_file(self, Path(path), events=events)

    def is_known(self, table: str) -> bool:
        return table in self._known or table in self._ignored

    def is_ignored(self, table: str) -> bool:
        return table in self._ignored

    def for_table(self, table: str) -> tuple[Rule, ...]:
        rules = self._by_table.get(table)
        if rules is None:
            rules = self._by_table[table] = tuple(r for r in self._rules if r.table == table)
        return rules

    def plan(self, table: str, op: str) -> tuple[Rule, ...] | None:
        """The rules a change of ``table`` by ``op`` is offered to, in order; worked out once per pair.

        Those of the table whose operations include ``op`` (their predicates
        are still to be asked); None for a table that is ignored or unknown
        (:meth:`is_ignored` tells which).
        """
        try:
            return self._plans[(table, op)]
        except KeyError:
            pass
        plan = None
        if table in self._known and table not in self._ignored:
            plan = tuple(r for r in self.for_table(table) if op in r.ops)
        self._plans[(table, op)] = plan
        return plan

    @property
    def tables(self) -> frozenset[str]:
        """Every table this domain knows, ignored ones included."""
        return frozenset(self._known | self._ignored)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"Rules({self.domain!r}, {len(self)} rules, {len(self.tables)} tables)"

    def describe(self) -> list[dict[str, Any]]:
        """The rules as plain data, for ``--help``-style listings and logs."""
        return [
            {
                "name": r.name,
                "table": r.table,
                "ops": "".join(sorted(r.ops)),
                "when": repr(r.when),
                "origin": r.origin,
            }
            for r in self._rules
        ]
