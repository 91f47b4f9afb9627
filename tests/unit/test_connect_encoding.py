"""How the connectors feeding the transformer write records, against how it reads them.

``cdcflow run`` refuses a connector that leaves the Connect schema out of its
records while the transformer reads each record's schema, and, for records
without a schema, decodes with the connector's own value handling — Debezium's
defaults where the connector sets no key — never with a guess.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.cdc.column_types import ValueModes
from pipeline.cli.run import check_connectors_at_start
from pipeline.connect import ConnectClient, parse_connector_file
from pipeline.connect.encoding import check_encoding, writes_schemas
from pipeline.errors import ConfigError
from pipeline.settings import TransformerSettings, load_settings
from tests.unit.connect_fakes import FakeConnect
from tests.unit.test_domain_cli import connector_dir

JSON = "org.apache.kafka.connect.json.JsonConverter"
SCHEMALESS = {"value.converter": JSON, "value.converter.schemas.enable": "false"}
# What `cdcflow init` and the example's connector file set; Debezium's defaults differ.
CDCFLOW_FILES = {
    "time.precision.mode": "adaptive_time_microseconds",
    "interval.handling.mode": "string",
}


def _transformer(cdc_types: str, **more: object) -> TransformerSettings:
    return load_settings(transformer={"cdc_types": cdc_types, **more}).transformer


def test_whether_a_connector_writes_schemas() -> None:
    assert writes_schemas({"value.converter": JSON}) is True  # the converter's default
    assert writes_schemas(SCHEMALESS) is False
    assert writes_schemas({"value.converter": JSON, "value.converter.schemas.enable": "TRUE"})
    # The worker's converter (not in the connector's config) or another converter: unknown.
    assert writes_schemas({}) is None
    assert writes_schemas({"value.converter": "io.confluent.connect.avro.AvroConverter"}) is None


def test_records_without_a_schema_are_refused_when_each_record_s_schema_is_read() -> None:
    configs = {"orders-pg": dict(SCHEMALESS), "shop-pg": {"value.converter": JSON}}
    with pytest.raises(ConfigError) as raised:
        check_encoding(configs, _transformer("record"))
    assert "orders-pg" in raised.value.message and "shop-pg" not in raised.value.message
    assert "value.converter.schemas.enable=false" in raised.value.message
    assert "CDCFLOW_TRANSFORMER__CDC_TYPES=catalogue" in (raised.value.hint or "")
    assert raised.value.exit_code == 78
    assert check_encoding({"shop-pg": {}}, _transformer("record")) is None


def test_a_connector_that_sets_no_value_handling_key_has_debezium_s_defaults() -> None:
    modes = check_encoding({"bank-pg": dict(SCHEMALESS)}, _transformer("catalogue"))
    assert modes is not None
    # time(3) is milliseconds and an interval a number of microseconds, as Debezium writes them.
    assert (modes.time_precision, modes.interval, modes.decimal) == (
        "adaptive",
        "numeric",
        "precise",
    )
    assert modes != ValueModes()  # not the modes of the connector files cdcflow writes
    set_keys = check_encoding(
        {"bank-pg": SCHEMALESS | CDCFLOW_FILES},
        _transformer("catalogue"),
    )
    assert set_keys == ValueModes()


def test_connectors_that_write_values_differently_are_refused() -> None:
    configs = {"a-pg": dict(SCHEMALESS), "b-pg": SCHEMALESS | CDCFLOW_FILES}
    with pytest.raises(ConfigError) as raised:
        check_encoding(configs, _transformer("catalogue"))
    assert "a-pg: " in raised.value.message and "b-pg: " in raised.value.message
    assert "time.precision.mode=adaptive," in raised.value.message


def test_value_modes_set_by_hand_must_be_the_deployed_connector_s() -> None:
    wrong = _transformer("catalogue", cdc_value_modes={"time.precision.mode": "connect"})
    with pytest.raises(ConfigError) as raised:
        check_encoding({"bank-pg": dict(SCHEMALESS)}, wrong)
    assert "time.precision.mode=connect here, adaptive there" in raised.value.message
    right = _transformer("catalogue", cdc_value_modes={"time.precision.mode": "adaptive"})
    with pytest.raises(ConfigError):
        # The other keys set by hand default to the connector files', not the deployed ones.
        check_encoding({"bank-pg": dict(SCHEMALESS)}, right)
    same = _transformer("catalogue", cdc_value_modes=CDCFLOW_FILES)
    assert check_encoding({"bank-pg": SCHEMALESS | CDCFLOW_FILES}, same) == ValueModes()


def test_run_takes_the_value_handling_of_the_deployed_connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeConnect()
    config = dict(parse_connector_file(connector_dir(tmp_path) / "bank-postgres.yaml").config)
    fake.configs["bank"] = config | SCHEMALESS | {"decimal.handling.mode": "string"}
    monkeypatch.setattr(ConnectClient, "from_settings", lambda conf: fake.client())
    settings = load_settings(
        transformer={
            "topics": r"^bank\..*",
            "cdc_types": "catalogue",
            "allow_split_aggregates": True,  # the bank file's routing is not this test's concern
        }
    )
    with caplog.at_level(logging.INFO):
        ran = check_connectors_at_start(settings, "tests.unit.domain_bank")
    assert ran.transformer.cdc_value_modes["decimal.handling.mode"] == "string"
    assert ran.transformer.cdc_value_modes["time.precision.mode"] == "adaptive"
    assert settings.transformer.cdc_value_modes == {}  # the settings given are left as they were
    assert "value handling of bank: decimal.handling.mode=string" in caplog.text

    reading_schemas = load_settings(
        transformer={"topics": r"^bank\..*", "allow_split_aggregates": True}
    )
    with pytest.raises(ConfigError) as raised:
        check_connectors_at_start(reading_schemas, "tests.unit.domain_bank")
    assert "bank write records without their schema" in raised.value.message
