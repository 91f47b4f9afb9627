"""A secured local stack: SASL/SCRAM over TLS for Kafka, basic auth for Connect and the registry.

Turned on by ``stack.security=sasl_ssl``. Every secret is generated at run
time into the stack's state directory (``<home>/secrets``, mode 0700; files
0600), never into the repository:

- ``tls/ca.pem`` and ``tls/ca.key``: a certificate authority made for this
  stack; ``tls/kafka-<n>.p12``: each Kafka node's key and certificate
  (subject alternative names ``localhost`` and ``127.0.0.1``) in PKCS#12
  under a generated password. Clients trust ``ca.pem``.
- Kafka listeners: SASL/SCRAM-SHA-512 over TLS for clients and between
  brokers; TLS with client certificates between controllers (KRaft cannot
  use SCRAM there: the credentials live in the metadata the controllers
  replicate). The SCRAM users are written into the metadata when each
  node's storage is formatted (``StorageTool format --add-scram``), given
  the salted password, so no password appears on a command line: ``admin``
  (between brokers, and the stack's own probes), ``cdcflow`` (the
  transformer and every command), ``connect`` (the Connect worker).
- Connect's REST API: ``BasicAuthSecurityRestExtension`` with a JAAS
  ``PropertyFileLoginModule`` over a users file.
- The registry: Apicurio's own HTTP basic authentication (the ``basic``
  mechanism of its authentication chain) against Quarkus' embedded users,
  given the SHA-512 digest of the password, not the password.
- ``client.env``: the ``CDCFLOW_*`` variables that let cdcflow's clients in
  (``set -a; . <home>/secrets/client.env; set +a``).

There is no authorizer: any authenticated user may do anything. That is
authentication, not least privilege; a real cluster adds ACLs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.settings import Settings, StackSettings
from pipeline.stack.artifacts import Artifacts, ensure_rest_auth
from pipeline.stack.components import Component, Connect, Progress, Registry, StackPaths
from pipeline.stack.versions import Versions

__all__ = ["KAFKA_USERS", "SecureConnect", "SecureRegistry", "StackSecurity"]

SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
# admin: between brokers and the stack's own probes; cdcflow: its commands; connect: the worker.
KAFKA_USERS = ("admin", "cdcflow", "connect")
CLIENT_USER = "cdcflow"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
_REST_EXTENSION = (
    "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
)
_REST_LOGIN = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
# Quarkus' embedded users digest "user:realm:password"; the realm is fixed when
# Apicurio is built.
_QUARKUS_REALM = "Quarkus"
_CERT_DAYS = 825


def _write_secret(path: Path, text: str | bytes) -> None:
    """Write a file only its owner can read (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _jaas(user: str, password: str) -> str:
    return f'{_SCRAM_LOGIN} required username="{user}" password="{password}";'


class StackSecurity:
    """The secrets of one stack's state directory and the configuration made from them."""

    def __init__(self, paths: StackPaths, stack: StackSettings) -> None:
        self.paths = paths
        self.stack = stack
        self.tls_dir = paths.secrets / "tls"
        """The CA, its key and the brokers' keystores."""

    @property
    def enabled(self) -> bool:
        return self.stack.security == "sasl_ssl"

    # ------------------------------------------------------------------ TLS

    @property
    def ca_file(self) -> Path:
        """The stack's CA certificate (PEM): what every client trusts."""
        return self.tls_dir / "ca.pem"

    def keystore(self, node: int) -> Path:
        return self.tls_dir / f"kafka-{node}.p12"

    @property
    def keystore_password(self) -> str:
        return self.paths.password("kafka-keystore")

    def ensure_tls(self, nodes: int) -> None:
        """Make the CA (once) and a certificate for each of ``nodes`` Kafka nodes (once).

        A new CA (its key lost) replaces every node certificate it did not sign.

        Raises:
            OSError: the state directory cannot be written.
        """
        self.paths.secrets.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.secrets, 0o700)
        ca_key_file = self.tls_dir / "ca.key"
        if not (self.ca_file.exists() and ca_key_file.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name(
                [
                    x509.NameAttribute(
                        NameOID.COMMON_NAME, f"cdcflow local CA {secrets.token_hex(4)}"
                    )
                ]
            )
            cert = (
                self._builder(name, name, key.public_key(), _CERT_DAYS)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(key, hashes.SHA256())
            )
            _write_secret(
                ca_key_file,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            # The CA certificate is public; 0600 anyway, like everything under secrets/.
            _write_secret(self.ca_file, cert.public_bytes(serialization.Encoding.PEM))
            for stale in self.tls_dir.glob("kafka-*.p12"):
                stale.unlink()  # signed by a CA that is gone
        for node in range(1, nodes + 1):
            if not self.keystore(node).exists():
                self._node_keystore(node)

    @staticmethod
    def _builder(
        subject: x509.Name, issuer: x509.Name, public_key: Any, days: int
    ) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
        )

    def _node_keystore(self, node: int) -> None:
        ca_key = serialization.load_pem_private_key(
            (self.tls_dir / "ca.key").read_bytes(), password=None
        )
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kafka-{node}")])
        cert = (
            self._builder(subject, ca_cert.subject, key.public_key(), _CERT_DAYS)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Server for its listeners, client towards the other controllers (mutual TLS).
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(50_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(self.keystore_password.encode())
        )
        blob = pkcs12.serialize_key_and_certificates(
            f"kafka-{node}".encode(), key, cert, [ca_cert], encryption
        )
        _write_secret(self.keystore(node), blob)

    # ------------------------------------------------------------------ SCRAM

    def kafka_password(self, user: str) -> str:
        return self.paths.password(f"kafka-{user}")

    @cached_property
    def scram_arguments(self) -> list[str]:
        """``--add-scram`` arguments for ``StorageTool format``: one per user.

        Salted passwords (PBKDF2-HMAC-SHA-512, as SCRAM's ``Hi()``), computed
        once, so every node is formatted with the same credentials.
        """
        args: list[str] = []
        for user in KAFKA_USERS:
            salt = secrets.token_bytes(32)
            salted = hashlib.pbkdf2_hmac(
                "sha512", self.kafka_password(user).encode(), salt, SCRAM_ITERATIONS
            )
            b64 = base64.b64encode
            args += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={user},salt={b64(salt).decode()},"
                f"saltedpassword={b64(salted).decode()},iterations={SCRAM_ITERATIONS}]",
            ]
        return args

    def broker_properties(self, node: int) -> str:
        """The security part of a node's ``server.properties`` (listener names BROKER, CONTROLLER)."""
        return "\n".join(
            [
                "# SASL/SCRAM over TLS for clients and between brokers; TLS with client",
                "# certificates between controllers. Written by pipeline/stack/security.py.",
                f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
                "listener.name.broker.scram-sha-512.sasl.jaas.config="
                + _jaas("admin", self.kafka_password("admin")),
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={self.keystore(node).resolve()}",
                f"ssl.keystore.password={self.keystore_password}",
                f"ssl.key.password={self.keystore_password}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca_file.resolve()}",
                "listener.name.controller.ssl.client.auth=required",
                "",
            ]
        )

    def librdkafka(self, user: str = CLIENT_USER) -> dict[str, str]:
        """librdkafka properties that log ``user`` in (confluent-kafka clients)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.kafka_password(user),
            "ssl.ca.location": str(self.ca_file.resolve()),
        }

    def java_client(self, user: str) -> dict[str, str]:
        """Java client properties that log ``user`` in (the Connect worker)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.jaas.config": _jaas(user, self.kafka_password(user)),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file.resolve()),
        }

    # ------------------------------------------------------------------ HTTP users

    @property
    def connect_rest_user(self) -> tuple[str, str]:
        return CLIENT_USER, self.paths.password(f"connect-rest-{CLIENT_USER}")

    @property
    def registry_user(self) -> tuple[str, str]:
        return CLIENT_USER, self.paths.password(f"registry-{CLIENT_USER}")

    def connect_jaas(self) -> Path:
        """The JAAS file of Connect's REST login, and the users file it names."""
        users = self.paths.secrets / "connect-rest-users.properties"
        name, password = self.connect_rest_user
        _write_secret(users, f"{name}: {password}\n")
        jaas = self.paths.secrets / "connect-rest-jaas.conf"
        _write_secret(
            jaas, f'KafkaConnect {{\n  {_REST_LOGIN} required\n  file="{users.resolve()}";\n}};\n'
        )
        return jaas

    def registry_auth(self, target: Path) -> Path:
        """The registry's authentication config: basic auth, one admin user, its digest."""
        name, password = self.registry_user
        digest = hashlib.sha512(f"{name}:{_QUARKUS_REALM}:{password}".encode()).hexdigest()
        _write_secret(
            target,
            "\n".join(
                [
                    "# Apicurio's basic authentication against Quarkus' embedded users.",
                    "# Written by pipeline/stack/security.py.",
                    "quarkus.http.auth.basic=true",
                    "quarkus.security.users.embedded.enabled=true",
                    "quarkus.security.users.embedded.plain-text=false",
                    "quarkus.security.users.embedded.algorithm=digest-sha-512",
                    f"quarkus.security.users.embedded.users.{name}={digest}",
                    f"quarkus.security.users.embedded.roles.{name}=sr-admin",
                    "",
                ]
            ),
        )
        return target

    # ------------------------------------------------------------------ clients

    def client_env(self) -> dict[str, str]:
        """``CDCFLOW_*`` variables that point cdcflow's clients at this stack, logged in."""
        st = self.stack
        env = {
            "CDCFLOW_STACK__HOME": str(self.paths.home),
            "CDCFLOW_STACK__BROKERS": str(st.brokers),
            "CDCFLOW_STACK__SECURITY": st.security,
        }
        for field in (
            "postgres_port",
            "kafka_port",
            "controller_port",
            "cluster_kafka_port",
            "cluster_controller_port",
            "connect_port",
            "registry_port",
            "registry_management_port",
        ):
            env[f"CDCFLOW_STACK__{field.upper()}"] = str(getattr(st, field))
        if self.enabled:
            registry_user, registry_password = self.registry_user
            connect_user, connect_password = self.connect_rest_user
            env.update(
                {
                    "CDCFLOW_KAFKA__PROPERTIES": json.dumps(self.librdkafka()),
                    "CDCFLOW_REGISTRY__USERNAME": registry_user,
                    "CDCFLOW_REGISTRY__PASSWORD": registry_password,
                    "CDCFLOW_CONNECT__USERNAME": connect_user,
                    "CDCFLOW_CONNECT__PASSWORD": connect_password,
                }
            )
        return env

    @property
    def client_env_file(self) -> Path:
        return self.paths.secrets / "client.env"

    def write_client_env(self) -> Path:
        """Write :meth:`client_env` as a shell file (0600); return its path."""
        lines = [
            "# cdcflow clients for the local stack in "
            f"{self.paths.home}: set -a; . {self.client_env_file}; set +a"
        ]
        lines += [f"{k}='{v}'" for k, v in self.client_env().items()]
        _write_secret(self.client_env_file, "\n".join(lines) + "\n")
        return self.client_env_file


class _Secured(Component):
    """A component of a secured stack, which it is built with."""

    def __init__(
        self, settings: Settings, paths: StackPaths, versions: Versions, security: StackSecurity
    ) -> None:
        super().__init__(settings, paths, versions)
        self.security = security


class SecureConnect(_Secured, Connect):
    """The Connect worker of a secured stack: SASL/TLS to Kafka, basic auth on its REST API."""

    _rest_auth: Path | None = None  # the REST extension, fetched by prepare() before the launch

    @property
    def rest_auth(self) -> tuple[str, str] | None:
        return self.security.connect_rest_user

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        self._rest_auth = ensure_rest_auth(self.stack.cache, self.versions, progress)
        super().prepare(artifacts, progress)
        client = self.security.java_client("connect")
        lines = [
            "",
            "# --- Secured stack (stack.security=sasl_ssl), added by pipeline/stack/security.py",
            "# The worker's own clients (no prefix: its topics, its group, topic creation) and",
            "# its tasks' producers and consumers log in to Kafka as 'connect' over TLS.",
        ]
        for prefix in ("", "producer.", "consumer.", "admin."):
            lines += [f"{prefix}{key}={value}" for key, value in client.items()]
        lines += [
            "# HTTP basic authentication on the REST API (users: the JAAS file's users file).",
            f"rest.extension.classes={_REST_EXTENSION}",
            "",
        ]
        os.chmod(self.config, 0o600)
        with self.config.open("a") as fh:
            fh.write("\n".join(lines))

    def jvm_options(self) -> list[str]:
        return [f"-Djava.security.auth.login.config={self.security.connect_jaas()}"]

    def jvm_command(self, artifacts: Artifacts, main: str, *args: str) -> list[str]:
        cmd = super().jvm_command(artifacts, main, *args)
        # On the worker's classpath, not plugin.path: JAAS loads the login module
        # through the worker's own class loader and cannot see a plugin's.
        if self._rest_auth is None:
            self._rest_auth = ensure_rest_auth(self.stack.cache, self.versions, lambda _: None)
        at = cmd.index("-cp") + 1
        cmd[at] += f"{os.pathsep}{self._rest_auth / 'connect-basic-auth-extension'}/*"
        return cmd


class SecureRegistry(_Secured, Registry):
    """The registry of a secured stack: Apicurio's own basic authentication."""

    @property
    def rest_auth(self) -> tuple[str, str] | None:
        return self.security.registry_user

    @property
    def auth_file(self) -> Path:
        return self.paths.secrets / "registry-auth.properties"

    def jvm_options(self) -> list[str]:
        # Read at start-up beside the application's own properties (a runtime
        # config location): users are not on the command line or in the log.
        return [f"-Dquarkus.config.locations={self.security.registry_auth(self.auth_file)}"]
