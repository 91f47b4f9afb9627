"""The local stack's layouts: a KRaft cluster, a secured stack; configs and secrets, no processes."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import string
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from pipeline.errors import StackError
from pipeline.settings import load_settings
from pipeline.stack import LocalStack
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.cluster import KafkaNode
from pipeline.stack.components import Kafka
from pipeline.stack.security import SCRAM_ITERATIONS, SecureConnect, SecureRegistry
from pipeline.stack.versions import deploy_dir


def properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def stack(tmp_path: Path, **stack_settings: Any) -> LocalStack:
    return LocalStack(load_settings(stack={"home": tmp_path / "home", **stack_settings}))


def test_one_node_stays_the_default(tmp_path: Path) -> None:
    local = stack(tmp_path)
    settings = local.settings
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (1, 1)
    assert [type(b) for b in local.brokers] == [Kafka]
    assert [c.name for c in local.components] == [
        "postgres",
        "kafka",
        "connect",
        "registry",
        "prometheus",
    ]
    assert type(local.connect).__name__ == "Connect"


def test_three_brokers_move_every_client_and_replicate_three_times(tmp_path: Path) -> None:
    local = stack(tmp_path, brokers=3)
    kafka = local.settings.kafka
    assert kafka.bootstrap_servers == "localhost:19092,localhost:19093,localhost:19094"
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    assert [c.name for c in local.components] == [
        "postgres",
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "connect",
        "registry",
        "prometheus",
    ]
    assert [(b.port, b.heap) for b in local.brokers] == [
        (19092, "384m"),
        (19093, "384m"),
        (19094, "384m"),
    ]


def test_an_explicit_endpoint_wins_over_the_cluster(tmp_path: Path) -> None:
    settings = load_settings(
        stack={"home": tmp_path, "brokers": 3},
        kafka={"bootstrap_servers": "kafka.example:9092", "replication_factor": 5},
    )
    assert settings.kafka.bootstrap_servers == "kafka.example:9092"
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (5, 2)


def test_cluster_node_config_votes_with_every_node(tmp_path: Path) -> None:
    node = stack(tmp_path, brokers=3).brokers[1]
    assert isinstance(node, KafkaNode)
    node.render()
    conf = properties(node.config)
    assert conf["node.id"] == "2"
    assert conf["process.roles"] == "broker,controller"
    assert conf["controller.quorum.voters"] == (
        "1@localhost:19192,2@localhost:19193,3@localhost:19194"
    )
    assert conf["listeners"] == "BROKER://localhost:19093,CONTROLLER://localhost:19193"
    assert conf["listener.security.protocol.map"] == "BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert conf[key] == "3", key
    assert conf["min.insync.replicas"] == conf["transaction.state.log.min.isr"] == "2"
    assert conf["unclean.leader.election.enable"] == "false"
    assert conf["log.dirs"] == str(node.data)
    assert "${" not in node.config.read_text()
    assert not any(k.startswith(("ssl.", "sasl.")) for k in conf)


def test_secured_node_listens_sasl_ssl_and_holds_its_password_privately(tmp_path: Path) -> None:
    local = stack(tmp_path, brokers=3, security="sasl_ssl")
    node = local.brokers[0]
    assert isinstance(node, KafkaNode)
    node.render()
    conf = properties(node.config)
    assert conf["listener.security.protocol.map"] == "BROKER:SASL_SSL,CONTROLLER:SSL"
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert conf["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert conf["listener.name.controller.ssl.client.auth"] == "required"
    assert conf["ssl.truststore.location"] == str(local.security.ca_file.resolve())
    assert (
        local.security.kafka_password("admin")
        in conf["listener.name.broker.scram-sha-512.sasl.jaas.config"]
    )
    assert node.config.stat().st_mode & 0o077 == 0
    assert local.paths.secrets.stat().st_mode & 0o077 == 0


def test_certificates_are_signed_by_the_stacks_ca_for_localhost(tmp_path: Path) -> None:
    security = stack(tmp_path, brokers=3, security="sasl_ssl").security
    security.ensure_tls(3)
    ca = x509.load_pem_x509_certificate(security.ca_file.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    seen = set()
    for node in (1, 2, 3):
        path = security.keystore(node)
        assert path.stat().st_mode & 0o077 == 0
        key, cert, extra = pkcs12.load_key_and_certificates(
            path.read_bytes(), security.keystore_password.encode()
        )
        assert cert is not None and isinstance(key, ec.EllipticCurvePrivateKey)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert [c.subject for c in extra] == [ca.subject]
        seen.add(cert.serial_number)
    assert len(seen) == 3
    before = security.keystore(1).read_bytes()
    security.ensure_tls(3)  # made once
    assert security.keystore(1).read_bytes() == before


def test_scram_users_are_formatted_from_salted_passwords_only(tmp_path: Path) -> None:
    security = stack(tmp_path, security="sasl_ssl").security
    args = security.scram_arguments
    assert args == security.scram_arguments  # the same for every node
    assert args[::2] == ["--add-scram"] * 3
    for spec in args[1::2]:
        mechanism, _, body = spec.partition("=[")
        assert mechanism == "SCRAM-SHA-512"
        fields = dict(part.split("=", 1) for part in body.rstrip("]").split(","))
        password = security.kafka_password(fields["name"])
        assert password not in spec
        salted = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(fields["salt"]), SCRAM_ITERATIONS
        )
        assert base64.b64decode(fields["saltedpassword"]) == salted
        assert fields["iterations"] == str(SCRAM_ITERATIONS)
    assert {spec.split("name=")[1].split(",")[0] for spec in args[1::2]} == {
        "admin",
        "cdcflow",
        "connect",
    }


def test_secured_connect_worker_logs_in_everywhere_and_guards_its_rest_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "pipeline.stack.security.ensure_rest_auth", lambda *a: tmp_path / "rest-auth"
    )
    local = stack(tmp_path, brokers=3, security="sasl_ssl")
    connect = local.connect
    assert isinstance(connect, SecureConnect)
    artifacts = Artifacts(tmp_path / "libs", tmp_path / "plugins", tmp_path / "registry", ())
    connect.prepare(artifacts, lambda _: None)
    conf = properties(connect.config)
    assert conf["bootstrap.servers"] == "localhost:19092,localhost:19093,localhost:19094"
    assert conf["offset.storage.replication.factor"] == "3"
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert conf[f"{prefix}security.protocol"] == "SASL_SSL"
        assert conf[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert 'username="connect"' in conf[f"{prefix}sasl.jaas.config"]
    assert conf["rest.extension.classes"].endswith("BasicAuthSecurityRestExtension")
    assert connect.config.stat().st_mode & 0o077 == 0
    command = connect.jvm_command(artifacts, "Main")
    jaas = Path(command[command.index("-cp") - 1].split("=", 1)[1])
    assert "PropertyFileLoginModule" in jaas.read_text()
    assert command[command.index("-cp") + 1].endswith("rest-auth/connect-basic-auth-extension/*")
    user, password = connect.rest_auth or ("", "")
    users = (local.paths.secrets / "connect-rest-users.properties").read_text()
    assert users == f"{user}: {password}\n"


def test_secured_registry_gets_a_digest_not_the_password(tmp_path: Path) -> None:
    local = stack(tmp_path, security="sasl_ssl")
    registry = local.registry
    assert isinstance(registry, SecureRegistry)
    option = registry.jvm_options()[0]
    assert option.startswith("-Dquarkus.config.locations=")
    conf = properties(Path(option.split("=", 1)[1]))
    user, password = registry.rest_auth or ("", "")
    digest = hashlib.sha512(f"{user}:Quarkus:{password}".encode()).hexdigest()
    assert conf[f"quarkus.security.users.embedded.users.{user}"] == digest
    assert conf["quarkus.http.auth.basic"] == "true"
    assert password not in registry.auth_file.read_text()


def test_client_env_lets_cdcflow_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    security = stack(tmp_path, brokers=3, security="sasl_ssl", connect_port=18083).security
    path = security.write_client_env()
    assert path.stat().st_mode & 0o077 == 0
    env = {}
    for line in path.read_text().splitlines()[1:]:
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0]
    assert env == security.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.kafka.bootstrap_servers.startswith("localhost:19092,")
    assert settings.kafka.properties["security.protocol"] == "SASL_SSL"
    assert settings.kafka.properties["sasl.username"] == "cdcflow"
    assert settings.connect.url == "http://localhost:18083"
    assert settings.connect.username == "cdcflow"
    assert settings.registry.client_config()["basic.auth.user.info"].startswith("cdcflow:")


def test_status_and_down_find_the_layout_that_was_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    (home / "run" / "topology.json").write_text(json.dumps({"brokers": 3, "security": "none"}))
    found = LocalStack.in_home(load_settings(stack={"home": home}))
    assert [b.name for b in found.brokers] == ["kafka-1", "kafka-2", "kafka-3"]
    explicit = LocalStack.in_home(load_settings(stack={"home": home, "brokers": 1}))
    assert [b.name for b in explicit.brokers] == ["kafka"]


def test_storage_formatted_for_another_layout_is_not_reused(tmp_path: Path) -> None:
    node = stack(tmp_path, brokers=3).brokers[0]
    assert isinstance(node, KafkaNode)
    node.root.mkdir(parents=True)
    (node.root / "cluster.json").write_text(
        json.dumps({"cluster_id": "x", "brokers": 3, "security": "sasl_ssl"})
    )
    with pytest.raises(StackError, match="security 'sasl_ssl', not 3 with 'none'"):
        node._cluster_id()


def test_cluster_template_names_only_values_it_is_given() -> None:
    text = (deploy_dir() / "templates" / "cluster-server.properties.tmpl").read_text()
    names = {m.group("braced") for m in string.Template.pattern.finditer(text) if m.group("braced")}
    assert names == {
        "node_id",
        "voters",
        "kafka_port",
        "controller_port",
        "broker_protocol",
        "controller_protocol",
        "data_dir",
        "replication_factor",
        "min_isr",
        "security",
    }
