"""cdcflow: PostgreSQL row changes (Debezium) into Avro domain events on Kafka.

Everything a domain author writes against is importable from here::

    from pipeline import Change, Domain, DomainEvent, Rules, changed_to

    class OrderShipped(DomainEvent):
        __aggregate__ = "order"
        __aggregate_id__ = "order_id"
        order_id: int

    rules = Rules()

    @rules.on("public.orders", ops="u", when=changed_to("status", "shipped"))
    def order_shipped(change: Change) -> OrderShipped:
        return OrderShipped(order_id=change.new("id"))

    domain = Domain("shop", events=[OrderShipped], rules=rules)

The names are loaded on first use, so ``import pipeline`` stays cheap (no
Kafka client, no database driver until a projection is asked for).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "AggregateRepository": "pipeline.replay.aggregate",
    "Change": "pipeline.cdc",
    "Domain": "pipeline.domain",
    "DomainEvent": "pipeline.events",
    "EventMetadata": "pipeline.events",
    "Projection": "pipeline.replay.projection",
    "Rules": "pipeline.mapping.registry",
    "Tx": "pipeline.replay.projection",
    "Upcasters": "pipeline.replay.upcast",
    "changed": "pipeline.mapping.predicates",
    "changed_from": "pipeline.mapping.predicates",
    "changed_to": "pipeline.mapping.predicates",
    "equals": "pipeline.mapping.predicates",
    "fold": "pipeline.replay.aggregate",
    "load_domain": "pipeline.domain",
    "where": "pipeline.mapping.predicates",
}

__all__ = [
    "AggregateRepository",
    "Change",
    "Domain",
    "DomainEvent",
    "EventMetadata",
    "Projection",
    "Rules",
    "Tx",
    "Upcasters",
    "__version__",
    "changed",
    "changed_from",
    "changed_to",
    "equals",
    "fold",
    "load_domain",
    "where",
]

if TYPE_CHECKING:
    from pipeline.cdc import Change
    from pipeline.domain import Domain, load_domain
    from pipeline.events import DomainEvent, EventMetadata
    from pipeline.mapping.predicates import changed, changed_from, changed_to, equals, where
    from pipeline.mapping.registry import Rules
    from pipeline.replay.aggregate import AggregateRepository, fold
    from pipeline.replay.projection import Projection, Tx
    from pipeline.replay.upcast import Upcasters


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
