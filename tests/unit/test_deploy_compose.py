"""deploy/compose, checked without Docker.

- The file is validated against the Compose Specification's JSON schema, the
  copy that the PyPI package check-jsonschema ships (it vendors
  compose-spec/schema/compose-spec.json with its licence), with `jsonschema`.
- Images and build arguments agree with the versions pinned in
  deploy/local/pom.xml.
- No secret is written in the file; every secret it names is made by
  init-secrets.sh into the git-ignored secrets/ directory.
- The Connect worker config keeps the local stack's settings, and the
  connector overlay loads over connectors/ like any other overlay.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipeline.connect import load_connectors
from pipeline.settings import load_settings
from pipeline.stack.versions import Versions, load_versions
from tests.unit.deploy_support import is_setting, unknown_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def versions() -> Versions:
    return load_versions(REPO / "deploy" / "local" / "pom.xml")


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    text = resources.files("check_jsonschema.builtin_schemas").joinpath("vendor/compose-spec.json")
    schema = json.loads(text.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_compose_file_is_valid_against_the_compose_spec(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    assert schema_errors(validator, compose) == []


def test_the_schema_check_can_fail(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    # A misspelt service key and a wrong type must be reported, or the
    # validation above proves nothing.
    broken = json.loads(json.dumps(compose))
    broken["services"]["kafka"]["imagee"] = "apache/kafka"
    broken["services"]["postgres"]["ports"] = "55432"
    errors = schema_errors(validator, broken)
    assert any("imagee" in e for e in errors)
    assert any(e.startswith("services/postgres/ports") for e in errors)


def image_tag(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = service["image"].rpartition(":")
    return name, tag


def test_images_follow_the_pinned_versions(compose: dict[str, Any], versions: Versions) -> None:
    services = compose["services"]
    assert image_tag(services["postgres"]) == ("postgres", versions.postgresql_major)
    assert image_tag(services["kafka"]) == ("apache/kafka", versions.kafka)
    assert image_tag(services["registry"]) == ("apicurio/apicurio-registry", versions.registry)
    connect = services["connect"]
    assert connect["build"]["args"]["KAFKA_VERSION"] == versions.kafka
    assert image_tag(connect)[1] == versions.kafka


def test_connect_image_is_the_pinned_kafka_plus_the_pinned_debezium(versions: Versions) -> None:
    dockerfile = (COMPOSE_DIR / "connect" / "Dockerfile").read_text()
    assert re.search(rf"^ARG KAFKA_VERSION={re.escape(versions.kafka)}$", dockerfile, re.M)
    assert re.search(r"^FROM apache/kafka:\$\{KAFKA_VERSION\}$", dockerfile, re.M)
    # The plugin comes from the same POM (and so the same Debezium version) as
    # the local stack's: the execution that `cdcflow stack up` runs.
    assert "COPY deploy/local/pom.xml" in dockerfile
    assert "dependency:unpack@debezium" in dockerfile
    pom = (REPO / "deploy" / "local" / "pom.xml").read_text()
    assert "<id>debezium</id>" in pom and "debezium-connector-postgres" in pom


def test_cdcflow_image_installs_the_package_on_python_3_11_slim() -> None:
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    # Every path it copies exists (the build context is the repository root).
    for line in re.findall(r"^COPY (?!--)(.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert re.search(r"^USER \d+", dockerfile, re.M), "the image must not run as root"


def test_builds_point_at_existing_dockerfiles(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == REPO, f"{name}: build context must be the repository root"
        assert (context / build["dockerfile"]).is_file(), name


def test_postgres_runs_with_logical_decoding(compose: dict[str, Any]) -> None:
    command = compose["services"]["postgres"]["command"]
    settings = {command[i + 1] for i, word in enumerate(command) if word == "-c"}
    assert "wal_level=logical" in settings
    assert any(s.startswith("max_replication_slots=") for s in settings)
    init = (COMPOSE_DIR / "postgres" / "init.sh").read_text()
    assert "REPLICATION" in init and "CREATE DATABASE registry" in init


def test_registry_keeps_schemas_in_postgres(compose: dict[str, Any]) -> None:
    env = compose["services"]["registry"]["environment"]
    assert env["APICURIO_STORAGE_KIND"] == "sql"
    assert env["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert env["APICURIO_DATASOURCE_URL"].startswith("jdbc:postgresql://postgres:")


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL", re.I)


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            if _SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} is set in the file; use a secret"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}={value}"


def test_every_secret_and_env_file_is_made_by_init_secrets_and_ignored_by_git(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    paths = {s["file"] for s in compose["secrets"].values()}
    for name, service in compose["services"].items():
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name} uses undeclared secret {secret}"
        paths.update(service.get("env_file", []))
    assert paths and all(p.startswith("secrets/") for p in paths)
    assert "secrets/" in (COMPOSE_DIR / ".gitignore").read_text().split()

    # Run the script on a copy: it makes exactly what the compose file reads.
    shutil.copy(COMPOSE_DIR / "init-secrets.sh", tmp_path)
    for _ in range(2):  # a second run keeps what the first made
        subprocess.run(["sh", str(tmp_path / "init-secrets.sh")], check=True, capture_output=True)
    made = {str(p.relative_to(tmp_path)) for p in (tmp_path / "secrets").iterdir()}
    assert paths <= made
    debezium = (tmp_path / "secrets" / "debezium_password").read_text()
    assert len(debezium) == 32
    connect_env = (tmp_path / "secrets" / "connect.env").read_text()
    assert connect_env == f"CDCFLOW_SOURCE_DEBEZIUM_PASSWORD={debezium}\n"
    assert (tmp_path / "secrets" / "connect.env").stat().st_mode & 0o077 == 0


def test_dependencies_name_real_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["transformer"]["depends_on"]["setup"]["condition"] == (
        "service_completed_successfully"
    )


def properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_connect_worker_keeps_the_local_stacks_settings() -> None:
    # The template as the single-node stack renders it (a cluster's replicates 3 times).
    template = (REPO / "deploy/local/templates/connect-distributed.properties.tmpl").read_text()
    local = properties(string.Template(template).safe_substitute(replication_factor=1))
    compose = properties((COMPOSE_DIR / "connect" / "connect-distributed.properties").read_text())
    assert set(local) == set(compose)
    # Addresses and paths differ between the two; everything else is the same.
    where = {
        "bootstrap.servers",
        "listeners",
        "rest.advertised.host.name",
        "rest.advertised.port",
        "plugin.path",
        "config.providers.file.param.allowed.paths",
    }
    assert {k: v for k, v in local.items() if k not in where} == {
        k: v for k, v in compose.items() if k not in where
    }
    assert compose["bootstrap.servers"] == "kafka:19092"


def test_connector_overlay_applies_over_the_connector_files(tmp_path: Path) -> None:
    # As the compose file mounts it: connectors/overlays/compose in the image.
    shutil.copytree(REPO / "connectors", tmp_path / "connectors")
    shutil.copytree(COMPOSE_DIR / "connector-overlay", tmp_path / "connectors/overlays/compose")
    specs = {s.name: s for s in load_connectors(tmp_path / "connectors", "compose")}
    config = specs["shop-postgres"].config
    assert (config["database.hostname"], config["database.port"]) == ("postgres", "5432")
    mounts = [v.split(":")[1] for v in compose_service("setup")["volumes"]]
    assert "/app/connectors/overlays/compose" in mounts


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
    return service


def test_transformer_environment_names_real_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose["services"]["transformer"]["environment"]
    assert unknown_settings(env) == []
    assert not is_setting("CDCFLOW_TRANSFORMER__NO_SUCH_THING")
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings()  # an invalid value fails here
    assert settings.kafka.bootstrap_servers == "kafka:19092"
    assert settings.transformer.schemas_dir == Path("/app/schemas")
    port = settings.transformer.metrics_port
    assert f"127.0.0.1:{port}:{port}" in compose["services"]["transformer"]["ports"]
