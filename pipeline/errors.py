"""The error tree of cdcflow.

Every error cdcflow raises on purpose is a :class:`CdcflowError`; third-party
errors are wrapped (``raise ... from exc``) so callers catch one root. The CLI
maps the tree to exit codes (see ``pipeline.cli``)::

    CdcflowError
    ├── ConfigError                 a setting or a config file is wrong
    ├── StackError                  the local stack could not be fetched / started / stopped
    │   ├── ArtifactError           a pinned artifact could not be fetched or unpacked
    │   ├── PortInUseError          a port the stack needs is taken
    │   └── ComponentStartError     a component did not become ready (carries its log tail)
    ├── ConnectError                Kafka Connect REST: status, error code, message, request
    │   └── ConnectUnreachable      the worker did not answer at all
    ├── ValidationFailed            a connector config failed validation (per-field messages)
    ├── PreflightFailed             the source database is not ready for the connector
    ├── SchemaContractError         an Avro contract is invalid, drifted or incompatible
    ├── RegistryError               the schema registry refused or failed a request
    ├── SourceUnavailable           the source database's catalogue could not be read
    ├── ColumnWithheld              a rule read an old value the source did not send (a KeyError too)
    ├── ColumnMissing               a rule read a column the row image lacks: dropped or renamed
    │                               in the source? (a KeyError too)
    ├── DecodeError                 a Debezium record could not be decoded (carries the record)
    ├── MappingError                a mapping rule raised or returned something invalid
    └── SerializationError          a domain event does not fit its schema
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactError",
    "CdcflowError",
    "ColumnMissing",
    "ColumnWithheld",
    "ComponentStartError",
    "ConfigError",
    "ConnectError",
    "ConnectUnreachable",
    "DecodeError",
    "MappingError",
    "PortInUseError",
    "PreflightFailed",
    "RecordError",
    "RegistryError",
    "SchemaContractError",
    "SerializationError",
    "SourceUnavailable",
    "StackError",
    "ValidationFailed",
]


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

    def __init__(self, component: str, reason: str, log_path: str, log_tail: str) -> None:
        super().__init__(
            f"{component} did not come up: {reason}\n--- last lines of {log_path} ---\n{log_tail}",
            hint=f"read {log_path}, fix the cause, then run 'cdcflow stack up' again",
        )
        self.component = component
        self.log_path = log_path
        self.log_tail = log_tail


class ConnectError(CdcflowError):
    """Kafka Connect answered a REST call with an error.

    Carries the HTTP status, Connect's ``error_code`` and message, and the
    request (method and URL) that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
        hint: str | None = None,
    ) -> None:
        detail = message
        if method and url:
            detail = f"{method} {url} -> {status}: {message}"
        super().__init__(detail, hint=hint)
        self.status = status
        self.error_code = error_code
        self.method = method
        self.url = url
        self.body = body


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


class DecodeError(RecordError):
    """A Debezium change record could not be decoded."""

    stage = "decode"


class MappingError(RecordError):
    """A mapping rule raised, or returned something that is not a domain event."""

    stage = "map"


class SerializationError(RecordError):
    """A domain event does not fit its Avro schema, or the registry refused it."""

    stage = "serialize"
