"""Changes -> domain events: the rule registry, its predicates, YAML rules and the runtime (pure).

A domain declares ``rules = Rules("shop")`` and registers rules with
``@rules.on("public.orders", ops="u", when=changed_to("status", "shipped"))``
or ``rules.load_yaml(...)``; a :class:`~pipeline.domain.Domain` ties the rules
to the domain's events, and the daemon calls :func:`map_change` for each decoded :class:`~pipeline.cdc.Change`.
"""

from pipeline.mapping.predicates import (
    BeforeImageMissing,
    Predicate,
    changed,
    changed_from,
    changed_to,
    equals,
    where,
)
from pipeline.mapping.registry import Rule, RuleFn, RuleResult, Rules, parse_ops
from pipeline.mapping.runtime import Mapped, UnknownTable, map_change, row_key, stamp

__all__ = [
    "BeforeImageMissing",
    "Mapped",
    "Predicate",
    "Rule",
    "RuleFn",
    "RuleResult",
    "Rules",
    "UnknownTable",
    "changed",
    "changed_from",
    "changed_to",
    "equals",
    "map_change",
    "parse_ops",
    "row_key",
    "stamp",
    "where",
]
