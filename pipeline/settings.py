"""One typed settings object for every cdcflow command.

Sources, highest priority first: explicit overrides (CLI flags), environment
variables (prefix ``CDCFLOW_``, ``__`` between levels, e.g.
``CDCFLOW_KAFKA__BOOTSTRAP_SERVERS``), a settings file (TOML or YAML, named by
``--config`` or ``CDCFLOW_CONFIG``), then the defaults below, which match the
local stack. Kafka client properties are passed through in librdkafka's own
names (``kafka.properties``); they are turned into client dicts only at the
edge (:meth:`KafkaSettings.client_config`). Unknown keys fail: a typo is an
error at start-up, not a silently ignored setting.
"""

from __future__ import annotations

import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from pipeline.errors import ConfigError

__all__ = [
    "ConnectSettings",
    "KafkaSettings",
    "ProjectionSettings",
    "RegistrySettings",
    "Settings",
    "SourceSettings",
    "StackSettings",
    "TransformerSettings",
    "load_settings",
]

ENV_PREFIX = "CDCFLOW_"

# The bundled example domain (pipeline/domains/shop) is what a fresh checkout
# runs: 'make demo', the tests. This is the one place that names it; a project
# of its own sets transformer.domain, transformer.topics and projections.modules
# (in cdcflow.toml or CDCFLOW_* variables).
EXAMPLE_DOMAIN = "pipeline.domains.shop"
EXAMPLE_CDC_TOPICS = r"^shop\.public\..*"
# The settings file's content while load_settings() builds a Settings object.
_FILE_DATA: ContextVar[dict[str, Any]] = ContextVar("cdcflow_settings_file", default={})  # noqa: B039 - never mutated


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers")
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties applied to every client (security.protocol, sasl.*, ssl.*)",
    )
    producer_properties: dict[str, str] = Field(default_factory=dict)
    consumer_properties: dict[str, str] = Field(default_factory=dict)
    replication_factor: int = Field(
        1, ge=1, description="replication factor of topics cdcflow creates"
    )
    min_insync_replicas: int = Field(1, ge=1)

    @field_validator("properties", "producer_properties", "consumer_properties", mode="before")
    @classmethod
    def _json_or_dict(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"expected a JSON object of librdkafka properties: {exc}") from exc
        return value

    def client_config(
        self, kind: Literal["admin", "producer", "consumer"] = "admin"
    ) -> dict[str, Any]:
        """The librdkafka configuration for one client kind."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        conf.update(self.properties)
        if kind == "producer":
            conf.update(self.producer_properties)
        elif kind == "consumer":
            conf.update(self.consumer_properties)
        return conf


class RegistrySettings(_Section):
    url: str = Field(
        "http://localhost:8080/apis/ccompat/v7",
        description="Confluent-compatible schema registry URL",
    )
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(30.0, gt=0, description="timeout of one registry request")
    auto_register: bool = Field(
        False,
        description="register schemas on first use (development only; CI and prod use 'schemas register')",
    )

    def client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"url": self.url, "timeout": self.timeout_s}
        if self.username:
            secret = self.password.get_secret_value() if self.password else ""
            conf["basic.auth.user.info"] = f"{self.username}:{secret}"
        return conf


class ConnectSettings(_Section):
    url: str = Field("http://localhost:8083", description="Kafka Connect REST URL")
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=0, description="retries on 409 (rebalance) and 5xx")
    connectors_dir: Path = Field(Path("connectors"), description="where connector files live")
    environment: str | None = Field(
        None, description="overlay under connectors/overlays/<environment>/"
    )
    prune_prefix: str | None = Field(
        None,
        description="--prune deletes only undeclared connectors whose name starts with this "
        "(a Connect cluster shared with connectors managed elsewhere)",
    )


class SourceSettings(_Section):
    """The source PostgreSQL database, as cdcflow itself connects to it."""

    host: str = "localhost"
    port: int = Field(55432, ge=1, le=65535)
    database: str = "shop"
    user: str = "cdcflow"
    password: SecretStr | None = Field(None, description="default: read from password_file")
    password_file: Path | None = Field(
        None, description="file holding the password (default: the local stack's generated one)"
    )

    def secret(self) -> str:
        """The password, from ``password`` or ``password_file``.

        Raises:
            ConfigError: neither is set, or the file cannot be read.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            raise ConfigError(
                "no password for the source database", hint="set CDCFLOW_SOURCE__PASSWORD"
            )
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the source database password from {self.password_file}: {exc.strerror}",
                hint="start the local stack ('cdcflow stack up') or set CDCFLOW_SOURCE__PASSWORD",
            ) from exc

    def dsn(self, database: str | None = None) -> str:
        return (
            f"host={self.host} port={self.port} dbname={database or self.database} "
            f"user={self.user} password={self.secret()} connect_timeout=5"
        )


class StackSettings(_Section):
    """The local development stack started as plain processes."""

    home: Path = Field(Path(".cdcflow"), description="state directory of the local stack")
    cache: Path = Field(
        Path(os.path.expanduser("~/.cache/cdcflow")),
        description="where fetched artifacts are kept across checkouts",
    )
    postgres_port: int = Field(55432, ge=1, le=65535)
    kafka_port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    connect_port: int = Field(8083, ge=1, le=65535)
    registry_port: int = Field(8080, ge=1, le=65535)
    registry_management_port: int = Field(
        8081, ge=1, le=65535, description="registry health and metrics"
    )
    prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Prometheus of the stack (alerts of deploy/monitoring)"
    )
    java_home: Path | None = Field(
        None, description="JDK for Kafka and Connect (default: the system java)"
    )
    registry_java_home: Path | None = Field(
        None, description="JDK 21+ for the registry (default: the newest JDK under /usr/lib/jvm)"
    )
    kafka_heap: str = "768m"
    connect_heap: str = "768m"
    registry_heap: str = "512m"
    start_timeout_s: float = Field(180.0, gt=0)
    brokers: int = Field(
        1,
        ge=1,
        le=5,
        description="Kafka nodes: 1 (one combined node on kafka_port), or a KRaft cluster of "
        "combined nodes on cluster_kafka_port and up",
    )
    cluster_kafka_port: int = Field(
        19092, ge=1, le=65000, description="first broker port of a cluster (node n: + n-1)"
    )
    cluster_controller_port: int = Field(
        19192, ge=1, le=65000, description="first controller port of a cluster (node n: + n-1)"
    )
    cluster_heap: str = Field("384m", description="heap of each node of a cluster")
    security: Literal["none", "sasl_ssl"] = Field(
        "none",
        description="sasl_ssl: Kafka listeners SASL/SCRAM-SHA-512 over TLS (a CA and certificates "
        "generated into the state directory), Connect REST and the registry with basic auth",
    )

    @property
    def broker_ports(self) -> list[int]:
        """Client port of each Kafka node."""
        if self.brokers == 1:
            return [self.kafka_port]
        return [self.cluster_kafka_port + i for i in range(self.brokers)]

    @property
    def controller_ports(self) -> list[int]:
        """KRaft controller port of each Kafka node."""
        if self.brokers == 1:
            return [self.controller_port]
        return [self.cluster_controller_port + i for i in range(self.brokers)]

    @property
    def replication(self) -> tuple[int, int]:
        """(replication factor, min in-sync replicas) of the topics on this stack.

        Three replicas with two in sync from three nodes on: a write is
        acknowledged by two nodes, and one node may be lost without losing
        it or stopping producers.
        """
        factor = min(self.brokers, 3)
        return factor, max(1, factor - 1)


class TransformerSettings(_Section):
    domain: str = Field(
        EXAMPLE_DOMAIN,
        description="the domain: a package declaring a Domain ('pkg'), 'pkg:attribute' or any "
        "module of the package ('pkg.mappings')",
    )
    group_id: str = "cdcflow-transformer"
    topics: str = Field(EXAMPLE_CDC_TOPICS, description="regex of CDC topics to consume")
    dead_letter_topic: str = "cdcflow.dlq"
    event_topic_partitions: int = Field(6, ge=1)
    batch_size: int = Field(
        500,
        ge=1,
        description="most CDC records in one transaction (a batch takes what is fetched, never waits to fill)",
    )
    overlap_commit: bool = Field(
        False,
        description="when behind, process the next batch while the previous batch's "
        "transaction commits (docs/BENCHMARKS.md: +1-5% records/s, worse latency when keeping up)",
    )
    transactional_id: str = Field(
        "cdcflow-transformer", description="prefix of the transactional.id"
    )
    allow_split_aggregates: bool = Field(
        False,
        description="start even though a deployed connector splits an aggregate's tables over "
        "topics or partitions (its events may leave commit order; docs/guarantees.md)",
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="0 disables the HTTP endpoint")
    schemas_dir: Path = Field(
        Path("schemas"), description="where the committed .avsc contracts live"
    )
    identity_lookup: bool = Field(
        True,
        description="learn each captured table's replica identity from the source database's "
        "catalogue (source.*; unreachable at start: exit 78), so before images hold only the "
        "columns the WAL carried; off: only the record's key columns of a before image are trusted",
    )
    identity_refresh_s: float = Field(
        60.0,
        gt=0,
        description="how long a table's replica identity is trusted before it is read again "
        "(at once when a record contradicts it)",
    )
    cdc_types: Literal["record", "catalogue"] = Field(
        "record",
        description="where column types come from: each CDC record's Connect schema, or for records "
        "without one the source database's catalogue (source.*; docs/guarantees.md)",
    )
    cdc_value_modes: dict[str, str] = Field(
        {}, description="catalogue: the connector's value handling (run takes it from Connect)"
    )


class ProjectionSettings(_Section):
    dsn: str | None = Field(
        None, description="read-model database DSN (default: the source database)"
    )
    group_prefix: str = "cdcflow-projection"
    db_schema: str = Field(
        "readmodel",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL schema of the read models, their tracking positions and checkpoints",
    )
    modules: list[str] = Field(
        default_factory=lambda: [EXAMPLE_DOMAIN],
        description="domains whose projections and upcasters are run (a Domain object's, "
        "or a module's list 'projections' and 'upcasters' registry)",
    )
    batch_size: int = Field(
        1000, ge=1, description="most events applied in one database transaction"
    )
    checkpoint_every_s: float = Field(
        900.0,
        ge=0,
        description="how often a runner copies its read model for 'rebuild --from' (0: never)",
    )
    checkpoints_keep: int = Field(4, ge=1, description="checkpoints kept per projection")
    swap_lock_timeout_s: float = Field(
        5.0,
        gt=0,
        description="how long a rebuild's swap waits for running queries before it retries",
    )


class Settings(BaseSettings):
    """Everything cdcflow can be told. Frozen once loaded."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    output: Literal["text", "json"] = "text"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    connect: ConnectSettings = Field(default_factory=ConnectSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    transformer: TransformerSettings = Field(default_factory=TransformerSettings)
    projections: ProjectionSettings = Field(default_factory=ProjectionSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_settings = InitSettingsSource(settings_cls, init_kwargs=_FILE_DATA.get())
        return (init_settings, env_settings, file_settings)

    @model_validator(mode="after")
    def _follow_local_stack(self) -> Settings:
        # Endpoints that are not set explicitly follow the local stack's
        # ports, so moving the stack (CDCFLOW_STACK__KAFKA_PORT=...) moves
        # every client with it; an explicit endpoint always wins.
        st = self.stack
        follow: dict[str, tuple[BaseModel, dict[str, Any]]] = {
            "kafka": (
                self.kafka,
                {
                    "bootstrap_servers": ",".join(f"localhost:{p}" for p in st.broker_ports),
                    "replication_factor": st.replication[0],
                    "min_insync_replicas": st.replication[1],
                },
            ),
            "registry": (
                self.registry,
                {"url": f"http://localhost:{st.registry_port}/apis/ccompat/v7"},
            ),
            "connect": (self.connect, {"url": f"http://localhost:{st.connect_port}"}),
            "source": (self.source, {"port": st.postgres_port}),
        }
        for name, (section, derived) in follow.items():
            update = {k: v for k, v in derived.items() if k not in section.model_fields_set}
            if (
                name == "source"
                and self.source.password is None
                and self.source.password_file is None
            ):
                # Without an explicit password, the source database is the local
                # stack's, whose passwords are generated into its state directory.
                update["password_file"] = st.home / "secrets" / f"{self.source.user}.password"
            if update:
                object.__setattr__(self, name, section.model_copy(update=update))
        return self


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"settings file {path} is not valid {path.suffix[1:].upper()}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path} must hold a mapping at the top level")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _describe(exc: ValidationError, file: Path | None) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc)
        where = f"{dotted} (env {_env_name(loc)}"
        where += f", or '{dotted}' in {file})" if file else ")"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"  {where}: {msg}; got {err.get('input')!r}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings.

    Precedence: ``overrides`` (CLI flags), then ``CDCFLOW_*`` variables, then
    the settings file, then the defaults.

    Raises:
        ConfigError: a setting is unknown or invalid (the message names it, its
            environment variable and the allowed values), or the file is unreadable.
    """
    file = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    path = Path(file) if file else None
    token = _FILE_DATA.set(_read_file(path) if path else {})
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(
            _describe(exc, path), hint="see 'cdcflow settings' for every setting"
        ) from exc
    except SettingsError as exc:
        # Raised before validation when a structured value (a JSON object of
        # client properties) does not parse; name the variable that holds it.
        culprits = [
            k
            for k, v in os.environ.items()
            if k.startswith(ENV_PREFIX) and not _is_json_object(v) and k.endswith("PROPERTIES")
        ]
        which = ", ".join(culprits) or "a CDCFLOW_* variable"
        raise ConfigError(
            f'invalid settings: {which} must be a JSON object, e.g. \'{{"security.protocol": "SSL"}}\'',
            hint="see 'cdcflow settings' for every setting",
        ) from exc
    finally:
        _FILE_DATA.reset(token)


def _is_json_object(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except json.JSONDecodeError:
        return False
