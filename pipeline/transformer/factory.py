"""Wire a :class:`Transformer` from settings: domain rules, event types, registry serializer,
replica identities."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.cdc import DecoderOptions
from pipeline.cdc.catalogue import ColumnCatalogue, ValueModes, catalogue_lookup
from pipeline.domain import load_domain
from pipeline.errors import ConfigError
from pipeline.serde import EventSerializer
from pipeline.settings import Settings
from pipeline.transformer.clients import Clients
from pipeline.transformer.daemon import Transformer
from pipeline.transformer.identities import IdentityCatalog, IdentityLookup, catalog_lookup
from pipeline.transformer.metrics import Metrics

__all__ = ["build_transformer", "decoder_options", "identity_catalog"]


def build_transformer(
    settings: Settings,
    *,
    domain: str | None = None,
    instance: str = "0",
    metrics: Metrics | None = None,
    identity_lookup: IdentityLookup | None = None,
    clients: Clients | None = None,
) -> Transformer:
    """A transformer for ``domain`` (default ``settings.transformer.domain``).

    Replica identities are read from the catalogue of each change's source
    database (on the server of ``settings.source``) unless ``identity_lookup``
    stands in for it, or ``transformer.identity_lookup`` is off; the domain's
    tables are read here from ``source.database``, before anything else connects.
    ``clients``: the Kafka client factories (default: the real clients).

    Raises:
        ConfigError: the domain cannot be imported, has no rules or declares no event
            types; or the source database cannot be reached for replica identities.
    """
    loaded = load_domain(domain or settings.transformer.domain)
    rules, events = loaded.rules, list(loaded.events)
    identities = identity_catalog(settings, identity_lookup)
    identities.prepare(rules.tables)
    serializer = EventSerializer(
        SchemaRegistryClient(settings.registry.client_config()),
        settings.transformer.schemas_dir,
        auto_register=settings.registry.auto_register,
    )
    return Transformer(
        settings,
        rules,
        events,
        serializer,
        instance=instance,
        metrics=metrics,
        decoder=decoder_options(settings),
        identities=identities,
        clients=clients,
    )


def decoder_options(settings: Settings) -> DecoderOptions:
    """How CDC records are decoded: ``transformer.cdc_types`` says where column types come from.

    ``catalogue``: records without a schema take their columns' types from the
    catalogue of their source database (on the server of ``source.*``), read
    once per table when its first record arrives.

    Raises:
        ConfigError: ``transformer.cdc_value_modes`` names a key or value the connector lacks.
    """
    cfg = settings.transformer
    if cfg.cdc_types != "catalogue":
        return DecoderOptions()
    source = settings.source
    lookup = catalogue_lookup(source.dsn, f" at {source.host}:{source.port}")
    try:
        modes = ValueModes.from_connector(cfg.cdc_value_modes)
    except ValueError as exc:
        raise ConfigError(
            f"transformer.cdc_value_modes: {exc}",
            hint="give the connector's own value handling keys and values, as in its file",
        ) from exc
    return DecoderOptions(column_types=ColumnCatalogue(lookup, modes, database=source.database))


def identity_catalog(settings: Settings, lookup: IdentityLookup | None = None) -> IdentityCatalog:
    """The replica identity catalogue the settings ask for (``lookup``: instead of the database)."""
    cfg = settings.transformer
    if not cfg.identity_lookup:
        return IdentityCatalog.record_only()
    return IdentityCatalog(
        lookup or catalog_lookup(settings.source),
        refresh_s=cfg.identity_refresh_s,
        database=settings.source.database,
    )
