"""The error tree of cdcflow.

Every error cdcflow raises on purpose is a :class:`CdcflowError`; third-party
errors are wrapped (``raise ... from exc``) so callers catch one root. Each
error carries its exit code (``exit_code``, 1 unless said), which the CLI exits
with (``pipeline.cli.main``). The tree, with the module each error is defined
in where that is not this one::

    CdcflowError
    ├── ConfigError                 a setting or a config file is wrong (exit 78)
    ├── StackError                  the local stack could not be fetched / started / stopped
    │   ├── ArtifactError           a pinned artifact could not be fetched or unpacked
    │   ├── PortInUseError          a port the stack needs is taken
    │   └── ComponentStartError     a component did not become ready (carries its log tail)
    ├── ConnectError                Kafka Connect REST: status, error code, message, request
    │   ├── ConnectUnreachable      the worker did not answer at all
    │   ├── ConnectorFailed         a connector or task is FAILED (connect.lifecycle)
    │   └── ConnectorNotReady       a connector did not reach the wanted state (connect.lifecycle)
    ├── ValidationFailed            a connector config failed validation (per-field messages)
    ├── PreflightFailed             the source database is not ready for the connector
    │   └── DomainProblem           a connector splits an aggregate (connect.domain)
    ├── SchemaContractError         an Avro contract is invalid, drifted or incompatible
    │   └── HistoryUnavailable      git cannot show an earlier contract (contracts.history)
    ├── RegistryError               the schema registry refused or failed a request
    │   └── RegistryUnavailable     the registry did not answer; wait and retry (serde)
    ├── SourceUnavailable           the source database's catalogue could not be read
    ├── ColumnWithheld              a rule read an old value the source did not send (a KeyError too)
    ├── ColumnMissing               a rule read a column the row image lacks: dropped or renamed
    │                               in the source? (a KeyError too)
    ├── TransformerFenced           a newer transformer took this one's place (exit 3)
    │   └── InstanceFenced          the group fenced its instance id (checked against the producer)
    ├── CallHung                    a client call outlived its deadline; the client is given up
    ├── RedriveFenced               a newer redrive of the dead letters took over (dlq.redrive; exit 3)
    ├── PrometheusError             Prometheus did not answer or refused a query (monitoring.prometheus)
    ├── ProjectExists               ``init`` would overwrite a project's files (onboard.project)
    ├── ReplayError                 a replay could not start or go on (replay.errors)
    │   ├── TopicNotFound           a topic to read does not exist
    │   └── BadPosition             a --from / --until / --from-offsets value is wrong (exit 2)
    ├── ProjectionError             a projection could not be set up, run or rebuilt (replay.errors)
    │   ├── ProjectionBusy          another runner (or rebuild) holds the projection
    │   ├── NoCheckpoint            no checkpoint precedes the --from timestamp
    │   └── UnknownProjection       no projection of that name is declared
    └── RecordError                 one Kafka record failed; carries topic, partition, offset, bytes
        ├── DecodeError             a Debezium record could not be decoded (stage "decode")
        ├── MappingError            a mapping rule raised or returned something invalid ("map")
        │   └── UnknownTable        a change of a table the domain does not declare (mapping.runtime)
        ├── SerializationError      a domain event does not fit its schema ("serialize")
        ├── UndecodableValue        a value is not framed Avro or does not decode (serde.reader)
        ├── EventDecodeError        a value is not a decodable domain event (replay.errors)
        │   ├── UnknownEventType    no event class is known for the record's Avro name
        │   └── UpcastError         an old version has no upcaster, or does not fit once upcast
        └── HandlerError            a projection handler failed (replay.errors)

Errors of one layer that only that layer raises stay beside it (the modules
named above): they import this module's bases, so this module cannot import
them back when it loads. It re-exports them lazily instead: ``from
pipeline.errors import RegistryUnavailable`` works, and loads the layer's
module only then. A few exceptions never leave the module that raises them and
are not in the tree (``ValueDecodeError`` in ``pipeline.cdc``, turned into a
:class:`DecodeError`; ``BeforeImageMissing`` in ``pipeline.mapping``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.connect.domain import DomainProblem
    from pipeline.connect.lifecycle import ConnectorFailed, ConnectorNotReady
    from pipeline.contracts.history import HistoryUnavailable
    from pipeline.dlq.redrive import RedriveFenced
    from pipeline.mapping.runtime import UnknownTable
    from pipeline.monitoring.prometheus import PrometheusError
    from pipeline.onboard.project import ProjectExists
    from pipeline.replay.errors import (
        BadPosition,
        EventDecodeError,
        HandlerError,
        NoCheckpoint,
        ProjectionBusy,
        ProjectionError,
        ReplayError,
        TopicNotFound,
        UnknownEventType,
        UnknownProjection,
        UpcastError,
    )
    from pipeline.serde import RegistryUnavailable
    from pipeline.serde.reader import UndecodableValue

__all__ = [
    "ArtifactError",
    "BadPosition",
    "CallHung",
    "CdcflowError",
    "ColumnMissing",
    "ColumnWithheld",
    "ComponentStartError",
    "ConfigError",
    "ConnectError",
    "ConnectUnreachable",
    "ConnectorFailed",
    "ConnectorNotReady",
    "DecodeError",
    "DomainProblem",
    "EventDecodeError",
    "HandlerError",
    "HistoryUnavailable",
    "InstanceFenced",
    "MappingError",
    "NoCheckpoint",
    "PortInUseError",
    "PreflightFailed",
    "ProjectExists",
    "ProjectionBusy",
    "ProjectionError",
    "PrometheusError",
    "RecordError",
    "RedriveFenced",
    "RegistryError",
    "RegistryUnavailable",
    "ReplayError",
    "SchemaContractError",
    "SerializationError",
    "SourceUnavailable",
    "StackError",
    "TopicNotFound",
    "TransformerFenced",
    "UndecodableValue",
    "UnknownEventType",
    "UnknownProjection",
    "UnknownTable",
    "UpcastError",
    "ValidationFailed",
]

# The errors defined beside their layer (see the module docstring): name -> module; and the
# modules that hold a whole branch of the tree, whose ``__all__`` names the errors they define.
_ELSEWHERE = {
    "ConnectorFailed": "pipeline.connect.lifecycle",
    "ConnectorNotReady": "pipeline.connect.lifecycle",
    "DomainProblem": "pipeline.connect.domain",
    "HistoryUnavailable": "pipeline.contracts.history",
    "RegistryUnavailable": "pipeline.serde",
    "UnknownTable": "pipeline.mapping.runtime",
    "RedriveFenced": "pipeline.dlq.redrive",
    "PrometheusError": "pipeline.monitoring.prometheus",
    "ProjectExists": "pipeline.onboard.project",
    "UndecodableValue": "pipeline.serde.reader",
}


_BRANCHES = ("pipeline.replay.errors",)


def _exported(module: str) -> list[str]:
    names: list[str] = importlib.import_module(module).__all__
    return names


def __getattr__(name: str) -> Any:
    """The errors defined beside their layer, imported when first asked for."""
    module = _ELSEWHERE.get(name)
    if module is None and not name.startswith("__"):  # import's probes (__path__) load nothing
        module = next((m for m in _BRANCHES if name in _exported(m)), None)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class CdcflowError(Exception):
    """Root of every error cdcflow raises on purpose.

    ``hint`` says what to do next, where that is known; the CLI prints it.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(CdcflowError):
    """A setting, a settings file or a config file is wrong."""

    exit_code = 78  # EX_CONFIG


class StackError(CdcflowError):
    """The local stack could not be fetched, started or stopped."""


class ArtifactError(StackError):
    """A pinned artifact could not be fetched from Maven Central or unpacked."""


class PortInUseError(StackError):
    """A port the local stack needs is already taken by another process."""

    def __init__(self, component: str, port: int, setting: str) -> None:
        super().__init__(
            f"{component}: port {port} is already in use by another process",
            hint=f"stop that process, or choose another port with {setting}=<port>",
        )
        self.component = component
        self.port = port
        self.setting = setting


class ComponentStartError(StackError):
    """A component did not become ready; carries the tail of its log."""

    def __init__(self, component: str, reason: str, *, log_path: str, log_tail: str) -> None:
        super().__init__(
            f"{component} did not come up: {reason}\n--- last lines of {log_path} ---\n{log_tail}",
            hint=f"read {log_path}, fix the cause, then run 'cdcflow stack up' again",
        )
        self.component, self.log_path, self.log_tail = component, log_path, log_tail


class ConnectError(CdcflowError):
    """Kafka Connect answered a REST call with an error.

    Carries the answer (HTTP status, Connect's ``error_code``, the body and
    message) and the request (method and URL) that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        detail = message
        if method and url:
            detail = f"{method} {url} -> {status}: {message}"
        super().__init__(detail, hint=hint)
        self.status, self.error_code, self.body = status, error_code, body  # the answer
        self.method, self.url = method, url  # the request


class ConnectUnreachable(ConnectError):
    """The Connect worker did not answer (refused, timed out, DNS)."""


class ValidationFailed(CdcflowError):
    """A connector config failed validation; ``errors`` maps field -> messages."""

    def __init__(self, connector: str, errors: dict[str, list[str]]) -> None:
        lines = [f"connector {connector!r}: {len(errors)} invalid field(s)"]
        for field, messages in sorted(errors.items()):
            for msg in messages:
                lines.append(f"  {field}: {msg}")
        super().__init__(
            "\n".join(lines), hint="fix the fields above; nothing was changed on the server"
        )
        self.connector = connector
        self.errors = errors


class PreflightFailed(CdcflowError):
    """The source database is not ready for a Debezium connector."""


class SchemaContractError(CdcflowError):
    """An Avro contract is invalid, has drifted from its model, or is incompatible."""


class RegistryError(CdcflowError):
    """The schema registry refused or failed a request."""


class SourceUnavailable(CdcflowError):
    """The source database did not answer a catalogue query; the caller should wait and retry."""


class ColumnWithheld(CdcflowError, KeyError):
    """A before-image column was read that the source did not send.

    The table's replica identity leaves the column out of old rows (see
    :mod:`pipeline.cdc.identity`). A ``KeyError`` too, so that
    ``change.old(column, default)`` and ``except KeyError`` behave as for any
    absent column; ``hint`` says how to make the source send it.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str,
        op: str,
        column: str,
        identity: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.table = table
        self.op = op
        self.column = column
        self.identity = identity


class ColumnMissing(CdcflowError, KeyError):
    """A rule read a column that the row image does not have.

    Once a rule has run on the table, the usual cause is DDL in the source: the
    column was dropped or renamed (``cdcflow schemas check --source`` lists
    them). A ``KeyError`` too, so that ``except KeyError`` behaves as before.
    """

    def __init__(
        self, message: str, *, table: str, op: str, column: str, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.table = table
        self.op = op
        self.column = column


class TransformerFenced(CdcflowError):
    """Another instance with this transactional id, or a newer group generation, took over.

    The batch in flight is left to whoever owns the partitions now.
    """

    exit_code = 3


class InstanceFenced(TransformerFenced):
    """The group fenced this member's static instance id (the consumer side only).

    A newer instance with the same id fences the transactional producer first
    (its ``init_transactions`` runs before it joins), so the transformer checks
    the producer before believing it: after the group coordinator's broker was
    lost, librdkafka rejoins with a new member id, and the group may fence the
    member's old id, i.e. the member itself.
    """


class CallHung(CdcflowError):
    """A client call did not return within its deadline; the client must not be used again."""


class RecordError(CdcflowError):
    """Processing one Kafka record failed; carries where it came from and its bytes.

    ``table`` and ``column`` name the source table and column concerned, where known.
    """

    stage = "unknown"

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        value: bytes | None = None,
        hint: str | None = None,
        table: str | None = None,
        column: str | None = None,
    ) -> None:
        where = ""
        if topic is not None:
            where = f"{topic}[{partition}]@{offset}: "
        super().__init__(where + message, hint=hint)
        self.reason = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.table = table
        self.column = column

    def found_at(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> RecordError:
        """Fill in where the record came from and its bytes, where not known yet; returns self."""
        if self.topic is None:
            self.topic, self.partition, self.offset = topic, partition, offset
        if self.key is None:
            self.key = key
        if self.value is None:
            self.value = value
        return self


class DecodeError(RecordError):
    """A Debezium change record could not be decoded."""

    stage = "decode"


class MappingError(RecordError):
    """A mapping rule raised, or returned something that is not a domain event."""

    stage = "map"


class SerializationError(RecordError):
    """A domain event does not fit its Avro schema, or the registry refused it."""

    stage = "serialize"
