"""Wire a :class:`Transformer` from settings: domain rules, event types, registry serializer."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.contracts.catalog import discover_events
from pipeline.errors import ConfigError
from pipeline.mapping import load_domain
from pipeline.serde import EventSerializer
from pipeline.settings import Settings
from pipeline.transformer.daemon import Transformer
from pipeline.transformer.metrics import Metrics

__all__ = ["build_transformer"]


def build_transformer(
    settings: Settings,
    *,
    domain: str | None = None,
    instance: str = "0",
    metrics: Metrics | None = None,
) -> Transformer:
    """A transformer for ``domain`` (default ``settings.transformer.domain``).

    Raises:
        ConfigError: the domain cannot be imported, has no rules or declares no event types.
    """
    module = domain or settings.transformer.domain
    rules = load_domain(module)
    events = discover_events([module])
    if not events:
        raise ConfigError(
            f"domain {module!r} declares no event types (DomainEvent subclasses with __aggregate__)"
        )
    serializer = EventSerializer(
        SchemaRegistryClient(settings.registry.client_config()),
        settings.transformer.schemas_dir,
        auto_register=settings.registry.auto_register,
    )
    return Transformer(settings, rules, events, serializer, instance=instance, metrics=metrics)
