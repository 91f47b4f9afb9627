"""Settings: sources, precedence, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CDCFLOW_"):
            monkeypatch.delenv(key)


def test_defaults_point_at_the_local_stack() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers == "localhost:9092"
    assert s.registry.url == "http://localhost:8080/apis/ccompat/v7"
    assert s.connect.url == "http://localhost:8083"
    assert s.source.port == 55432
    assert s.source.password_file == Path(".cdcflow/secrets/cdcflow.password")


def test_environment_sets_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093")
    monkeypatch.setenv(
        "CDCFLOW_KAFKA__PROPERTIES",
        '{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}',
    )
    monkeypatch.setenv("CDCFLOW_TRANSFORMER__BATCH_SIZE", "1000")
    s = load_settings()
    conf = s.kafka.client_config("producer")
    assert conf == {
        "bootstrap.servers": "broker-1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
    }
    assert s.transformer.batch_size == 1000


def test_client_config_adds_kind_specific_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_KAFKA__CONSUMER_PROPERTIES", '{"fetch.min.bytes": "1024"}')
    s = load_settings()
    assert s.kafka.client_config("consumer")["fetch.min.bytes"] == "1024"
    assert "fetch.min.bytes" not in s.kafka.client_config("producer")


def test_invalid_choice_names_the_variable_and_allowed_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDCFLOW_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "CDCFLOW_LOG_LEVEL" in text
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in text
    assert "'LOUD'" in text


def test_unknown_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_KAFKA__BOOTSTRAP_SERVER", "typo:9092")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "CDCFLOW_KAFKA__BOOTSTRAP_SERVER" in str(info.value)
    assert "unknown setting" in str(info.value)


def test_out_of_range_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_STACK__KAFKA_PORT", "70000")
    with pytest.raises(ConfigError, match="CDCFLOW_STACK__KAFKA_PORT"):
        load_settings()


def test_bad_json_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_KAFKA__PROPERTIES", "security.protocol=SSL")
    with pytest.raises(ConfigError, match="CDCFLOW_KAFKA__PROPERTIES"):
        load_settings()


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cdcflow.toml"
    cfg.write_text('[kafka]\nbootstrap_servers = "from-file:9092"\n[transformer]\nbatch_size = 7\n')
    monkeypatch.setenv("CDCFLOW_TRANSFORMER__BATCH_SIZE", "9")
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "from-file:9092"
    assert s.transformer.batch_size == 9  # the environment wins over the file


def test_yaml_file_with_unknown_key_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cdcflow.yaml"
    cfg.write_text("registry:\n  urll: http://x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "registry.urll" in str(info.value)
    assert str(cfg) in str(info.value)


def test_malformed_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cdcflow.toml"
    cfg.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_REGISTRY__USERNAME", "svc")
    monkeypatch.setenv("CDCFLOW_REGISTRY__PASSWORD", "s3cr3t-value")
    monkeypatch.setenv("CDCFLOW_SOURCE__PASSWORD", "db-s3cr3t")
    s = load_settings()
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(s.model_dump())
    assert s.registry.client_config()["basic.auth.user.info"] == "svc:s3cr3t-value"
    assert s.source.secret() == "db-s3cr3t"


def test_password_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cdcflow.password").write_text("generated\n")
    monkeypatch.setenv("CDCFLOW_STACK__HOME", str(tmp_path))
    s = load_settings()
    assert s.source.secret() == "generated"
    assert "password=generated" in s.source.dsn()


def test_missing_password_file_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDCFLOW_STACK__HOME", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_settings().source.secret()
    assert "CDCFLOW_SOURCE__PASSWORD" in str(info.value)


def test_endpoints_follow_the_local_stack_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_STACK__KAFKA_PORT", "19092")
    monkeypatch.setenv("CDCFLOW_STACK__REGISTRY_PORT", "18080")
    monkeypatch.setenv("CDCFLOW_STACK__CONNECT_PORT", "18083")
    monkeypatch.setenv("CDCFLOW_STACK__POSTGRES_PORT", "15432")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "localhost:19092"
    assert s.registry.url == "http://localhost:18080/apis/ccompat/v7"
    assert s.connect.url == "http://localhost:18083"
    assert s.source.port == 15432


def test_an_explicit_endpoint_wins_over_the_stack_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCFLOW_STACK__KAFKA_PORT", "19092")
    monkeypatch.setenv("CDCFLOW_KAFKA__BOOTSTRAP_SERVERS", "kafka.prod:9092")
    assert load_settings().kafka.bootstrap_servers == "kafka.prod:9092"


def test_file_stack_port_moves_clients_and_env_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "cdcflow.yaml"
    cfg.write_text(
        "stack:\n  kafka_port: 29092\nregistry:\n  url: http://file-registry/apis/ccompat/v7\n"
    )
    monkeypatch.setenv("CDCFLOW_REGISTRY__URL", "http://env-registry/apis/ccompat/v7")
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "localhost:29092"
    assert s.registry.url == "http://env-registry/apis/ccompat/v7"
