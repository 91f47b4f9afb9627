"""How the connectors feeding the transformer write their records, checked against how it reads them.

Two things about a connector's records decide whether the transformer reads
them right, and neither is in a record that leaves its schema out:

- **the schema**: with ``transformer.cdc_types: record`` each record must carry
  its Connect schema (JsonConverter with ``value.converter.schemas.enable``
  true, its default). A connector that leaves it out would have every record
  dead-lettered.
- **the value handling** (``time.precision.mode``, ``decimal.handling.mode``,
  ...): with ``transformer.cdc_types: catalogue`` the column types come from
  the source catalogue, and how a value is written depends on these keys. A
  key the connector does not set has Debezium's default
  (``DEBEZIUM_DEFAULTS`` in :mod:`pipeline.cdc.column_types`), which is not always
  what the connector files cdcflow writes set: a ``time(3)`` column is
  milliseconds under Debezium's ``adaptive`` and microseconds under
  ``adaptive_time_microseconds``. Read with the wrong mode, such a value would
  be wrong and nothing would fail.

:func:`check_encoding` takes the deployed configs of the connectors whose
topics the transformer reads (``cdcflow run`` at start) and returns the value
handling to decode with: the connectors', never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.cdc.column_types import ValueModes
from pipeline.errors import ConfigError
from pipeline.settings import Settings, TransformerSettings

__all__ = ["check_encoding", "reading", "writes_schemas"]

_JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"


def writes_schemas(config: Mapping[str, str]) -> bool | None:
    """Whether the connector's JSON values carry their Connect schema; None: not known here.

    None when the connector leaves ``value.converter`` to the Connect worker
    (whose config the REST API does not show) or uses another converter.
    """
    if config.get("value.converter") != _JSON_CONVERTER:
        return None
    return str(config.get("value.converter.schemas.enable", "true")).lower() == "true"


def check_encoding(
    configs: Mapping[str, Mapping[str, str]], transformer: TransformerSettings
) -> ValueModes | None:
    """The value handling to decode records without a schema with; None with ``cdc_types: record``.

    ``configs``: the deployed configs (by connector name) of the connectors the
    transformer reads. None too when no connector feeds it.

    Raises:
        ConfigError: a connector leaves the schema out while the transformer
            reads it from each record; the connectors' value handling differs;
            ``transformer.cdc_value_modes`` contradicts the connectors'.
    """
    if transformer.cdc_types == "record":
        schemaless = sorted(name for name, c in configs.items() if writes_schemas(c) is False)
        if schemaless:
            raise ConfigError(
                f"connector(s) {', '.join(schemaless)} write records without their schema "
                "(value.converter.schemas.enable=false), and transformer.cdc_types is 'record' "
                "(column types from each record's schema): every record would be dead-lettered",
                hint="set transformer.cdc_types to 'catalogue' (CDCFLOW_TRANSFORMER__CDC_TYPES="
                "catalogue) to type them from the source catalogue, or set "
                "value.converter.schemas.enable: true in the connector file and apply it",
            )
        return None
    if not configs:
        return None
    modes = {}
    for name, config in sorted(configs.items()):
        try:
            modes[name] = ValueModes.of_connector(config)
        except ValueError as exc:
            raise ConfigError(f"connector {name}: {exc}") from exc
    first, *others = modes.items()
    differing = [name for name, m in others if m != first[1]]
    if differing:
        raise ConfigError(
            "the connectors the transformer reads write values differently: "
            + "; ".join(_describe(name, m) for name, m in modes.items()),
            hint="give them the same value handling keys, or run one transformer (its own "
            "transformer.topics) per connector",
        )
    deployed = first[1]
    if transformer.cdc_value_modes:
        try:
            configured = ValueModes.from_connector(transformer.cdc_value_modes)
        except ValueError as exc:
            raise ConfigError(f"transformer.cdc_value_modes: {exc}") from exc
        there = deployed.as_connector()
        wrong = {
            key: (value, there[key])
            for key, value in configured.as_connector().items()
            if there[key] != value
        }
        if wrong:
            raise ConfigError(
                "transformer.cdc_value_modes contradicts the deployed connector "
                f"{first[0]}: "
                + ", ".join(f"{k}={v} here, {d} there" for k, (v, d) in sorted(wrong.items())),
                hint="leave transformer.cdc_value_modes unset: cdcflow run takes the value "
                "handling from the deployed connector",
            )
    return deployed


def _describe(name: str, modes: ValueModes) -> str:
    return f"{name}: " + ", ".join(f"{k}={v}" for k, v in modes.as_connector().items())


def reading(settings: Settings, configs: Mapping[str, Mapping[str, str]]) -> Settings:
    """``settings`` to read these connectors' records with: checked, their value handling taken.

    Raises:
        ConfigError: as :func:`check_encoding`.
    """
    modes = check_encoding(configs, settings.transformer)
    if modes is None:
        return settings
    transformer = settings.transformer.model_copy(update={"cdc_value_modes": modes.as_connector()})
    return settings.model_copy(update={"transformer": transformer})
