"""`cdcflow connectors export --format strimzi`: resources from connector files, and the
committed output in deploy/k8s/strimzi/ is what the generator makes today."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.connect import load_connectors
from pipeline.connect.export import (
    GENERATED_MARK,
    STRIMZI_API_VERSION,
    StrimziOptions,
    render,
    strimzi_resources,
    write_files,
)
from pipeline.errors import ConfigError
from pipeline.stack.versions import load_versions

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "deploy" / "k8s" / "strimzi"

BASE = """\
name: orders-source
config:
  connector.class: io.debezium.connector.postgresql.PostgresConnector
  tasks.max: 1
  database.hostname: localhost
  database.password: ${env:ORDERS_DB_PASSWORD}
  heartbeat.interval.ms: 10000
"""

K8S_OVERLAY = """\
config:
  database.hostname: orders-db.internal
  database.user: ${file:/mnt/cdcflow/secrets/orders.properties:user}
  database.password: ${file:/mnt/cdcflow/secrets/orders.properties:password}
  database.sslrootcert: ${file:/mnt/cdcflow/tls/ca.properties:ca}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def export(tmp_path: Path, env: str | None = None, **options: Any) -> dict[str, dict[str, Any]]:
    specs = load_connectors(tmp_path / "connectors", env)
    files = strimzi_resources(
        specs,
        kafka_version="4.3.1",
        debezium_version="3.6.1.Final",
        options=StrimziOptions(**options),
    )
    return {f.name: f.resources[0] for f in files}


@pytest.fixture
def connectors(tmp_path: Path) -> Path:
    write(tmp_path / "connectors" / "orders.yaml", BASE)
    write(tmp_path / "connectors" / "overlays" / "k8s" / "orders.yaml", K8S_OVERLAY)
    return tmp_path


def test_one_kafka_connector_per_connector_with_spec_fields_lifted(connectors: Path) -> None:
    out = export(connectors)
    assert sorted(out) == ["kafka-connect.yaml", "kafkaconnector-orders-source.yaml"]
    kc = out["kafkaconnector-orders-source.yaml"]
    assert kc["apiVersion"] == STRIMZI_API_VERSION
    assert kc["kind"] == "KafkaConnector"
    assert kc["metadata"]["name"] == "orders-source"
    assert kc["metadata"]["labels"]["strimzi.io/cluster"] == "cdcflow-connect"
    assert kc["spec"]["class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert kc["spec"]["tasksMax"] == 1
    # Strimzi refuses these inside spec.config; they live in the spec.
    assert not {"connector.class", "tasks.max", "name"} & set(kc["spec"]["config"])
    # Values stay Connect's strings; placeholders stay placeholders.
    assert kc["spec"]["config"]["heartbeat.interval.ms"] == "10000"
    assert kc["spec"]["config"]["database.password"] == "${env:ORDERS_DB_PASSWORD}"


def test_env_placeholders_come_from_the_secret_and_only_they_are_allowed(connectors: Path) -> None:
    connect = export(connectors, secret_name="orders-secrets")["kafka-connect.yaml"]
    config = connect["spec"]["config"]
    assert config["config.providers"] == "env,file"
    assert config["config.providers.env.param.allowlist.pattern"] == "^(?:ORDERS_DB_PASSWORD)$"
    env = connect["spec"]["template"]["connectContainer"]["env"]
    assert env == [
        {
            "name": "ORDERS_DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "orders-secrets", "key": "ORDERS_DB_PASSWORD"}},
        }
    ]
    assert "pod" not in connect["spec"]["template"]


def test_file_placeholders_mount_one_volume_per_directory_below_mnt(connectors: Path) -> None:
    out = export(connectors, env="k8s")
    kc = out["kafkaconnector-orders-source.yaml"]["spec"]["config"]
    assert kc["database.hostname"] == "orders-db.internal"
    assert kc["database.user"] == "${file:/mnt/cdcflow/secrets/orders.properties:user}"
    spec = out["kafka-connect.yaml"]["spec"]
    volumes = {v["name"]: v for v in spec["template"]["pod"]["volumes"]}
    mounts = {
        m["mountPath"]: m["name"] for m in spec["template"]["connectContainer"]["volumeMounts"]
    }
    assert set(mounts) == {"/mnt/cdcflow/secrets", "/mnt/cdcflow/tls"}
    secrets_volume = volumes[mounts["/mnt/cdcflow/secrets"]]["secret"]
    assert secrets_volume["items"] == [{"key": "orders.properties", "path": "orders.properties"}]
    assert volumes[mounts["/mnt/cdcflow/tls"]]["secret"]["items"] == [
        {"key": "ca.properties", "path": "ca.properties"}
    ]
    assert spec["config"]["config.providers.file.param.allowed.paths"] == (
        "/mnt/cdcflow/secrets,/mnt/cdcflow/tls"
    )


def test_a_file_placeholder_outside_mnt_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "connectors" / "orders.yaml", BASE)
    write(
        tmp_path / "connectors" / "overlays" / "prod" / "orders.yaml",
        "config:\n  database.password: ${file:/etc/secrets/db.properties:password}\n",
    )
    with pytest.raises(ConfigError) as err:
        export(tmp_path, env="prod")
    assert "overlays/prod/orders.yaml:2" in err.value.message
    assert "/mnt" in err.value.message


def test_two_secret_files_with_one_name_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "connectors" / "orders.yaml",
        BASE + "  a: ${file:/mnt/a/db.properties:x}\n  b: ${file:/mnt/b/db.properties:y}\n",
    )
    with pytest.raises(ConfigError, match="share the file name"):
        export(tmp_path)


def test_unknown_plugin_provider_and_bad_names_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "connectors" / "orders.yaml",
        BASE.replace("io.debezium.connector.postgresql", "org.example"),
    )
    with pytest.raises(ConfigError, match="no plugin is known"):
        export(tmp_path)
    write(tmp_path / "connectors" / "orders.yaml", BASE + "  x: ${vault:secret/db:pw}\n")
    with pytest.raises(ConfigError, match="'vault' is not set up"):
        export(tmp_path)
    write(tmp_path / "connectors" / "orders.yaml", BASE.replace("orders-source", "Orders_Source"))
    with pytest.raises(ConfigError, match="not a Kubernetes resource name"):
        export(tmp_path)
    write(tmp_path / "connectors" / "orders.yaml", BASE.replace("tasks.max: 1", "tasks.max: many"))
    with pytest.raises(ConfigError, match=r"tasks\.max must be a whole number"):
        export(tmp_path)


def test_kafka_connect_builds_the_pinned_plugin_and_authenticates(connectors: Path) -> None:
    connect = export(
        connectors, kafka_user="cdcflow-connect", push_secret="registry-push", tls_ca_secret=None
    )["kafka-connect.yaml"]
    spec = connect["spec"]
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    assert spec["version"] == "4.3.1"
    assert spec["build"]["plugins"] == [
        {
            "name": "debezium-postgres",
            "artifacts": [
                {
                    "type": "maven",
                    "group": "io.debezium",
                    "artifact": "debezium-connector-postgres",
                    "version": "3.6.1.Final",
                }
            ],
        }
    ]
    assert spec["build"]["output"] == {
        "type": "docker",
        "image": "registry.example.com/cdcflow/kafka-connect:4.3.1-debezium-3.6.1.Final",
        "pushSecret": "registry-push",
    }
    assert spec["authentication"] == {
        "type": "scram-sha-512",
        "username": "cdcflow-connect",
        "passwordSecret": {"secretName": "cdcflow-connect", "password": "password"},
    }
    assert "tls" not in spec


def test_render_keeps_multiline_sql_readable_and_round_trips(connectors: Path) -> None:
    write(
        connectors / "connectors" / "orders.yaml",
        BASE + "  heartbeat.action.query: |-\n"
        "    INSERT INTO hb VALUES (1)\n    ON CONFLICT DO NOTHING\n",
    )
    specs = load_connectors(connectors / "connectors")
    files = strimzi_resources(specs, kafka_version="4.3.1", debezium_version="3.6.1.Final")
    text = render(
        files[1], "cdcflow connectors export --format strimzi", ["connectors/orders.yaml"]
    )
    assert text.startswith(GENERATED_MARK)
    assert "heartbeat.action.query: |-\n" in text
    assert yaml.safe_load(text) == files[1].resources[0]


def test_write_files_replaces_generated_files_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out / "kafkaconnector-gone.yaml", GENERATED_MARK + "\nkind: KafkaConnector\n")
    write(out / "notes.yaml", "# mine\n")
    write_files(out, {"kafka-connect.yaml": GENERATED_MARK + "\n"})
    assert sorted(p.name for p in out.iterdir()) == ["kafka-connect.yaml", "notes.yaml"]
    with pytest.raises(ConfigError, match="was not written by"):
        write_files(out, {"notes.yaml": GENERATED_MARK + "\n"})
    assert (out / "notes.yaml").read_text() == "# mine\n"


def test_cli_prints_every_resource_and_records_its_command(
    tmp_path: Path, connectors: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "connectors",
            "export",
            "--format",
            "strimzi",
            "--dir",
            str(connectors / "connectors"),
            "--connect-name",
            "orders-connect",
        ],
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["KafkaConnect", "KafkaConnector"]
    assert docs[1]["metadata"]["labels"]["strimzi.io/cluster"] == "orders-connect"
    assert "# cdcflow connectors export --dir " in result.stdout
    assert "--connect-name orders-connect" in result.stdout


def test_cli_help_is_reachable_and_the_group_is_registered_once() -> None:
    result = CliRunner().invoke(cli, ["connectors", "export", "--help"])
    assert result.exit_code == 0
    assert "--format [strimzi]" in result.output
    assert list(cli.commands).count("connectors") == 1


def _recorded_command() -> list[str]:
    for line in (COMMITTED / "kafka-connect.yaml").read_text().splitlines():
        if line.startswith("# cdcflow connectors export"):
            return shlex.split(line[2:])[1:]
    raise AssertionError("deploy/k8s/strimzi/kafka-connect.yaml does not record its command")


def test_committed_strimzi_resources_are_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _recorded_command()
    at = args.index("--output-dir")
    args[at + 1] = str(tmp_path / "out")
    monkeypatch.chdir(REPO)  # the recorded command runs from the repository root
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    fresh = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    committed = {p.name: p.read_text() for p in COMMITTED.glob("*.yaml")}
    assert sorted(committed) == sorted(fresh)
    again = shlex.join(["cdcflow", *_recorded_command()])
    for name, text in fresh.items():
        # The header names the output directory the committed files were written to.
        expected = text.replace(str(tmp_path / "out"), "deploy/k8s/strimzi")
        assert committed[name] == expected, (
            f"deploy/k8s/strimzi/{name} is stale: run `{again}` from the repository root"
        )


def test_committed_resources_use_the_pinned_versions() -> None:
    versions = load_versions(REPO / "deploy" / "local" / "pom.xml")
    connect = yaml.safe_load((COMMITTED / "kafka-connect.yaml").read_text())
    assert connect["spec"]["version"] == versions.kafka
    artifacts = [a for p in connect["spec"]["build"]["plugins"] for a in p["artifacts"]]
    assert {a["version"] for a in artifacts} == {versions.debezium}
