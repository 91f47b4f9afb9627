"""Server-side validation: Connect's own per-field messages for a declared connector.

The worker resolves config-provider placeholders before it validates, and
Debezium's validation logs in to the database, so a wrong password or host
shows up here, before anything is deployed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.connect.client import ConnectClient
from pipeline.connect.files import ConnectorSpec
from pipeline.connect.secrets import Redactor
from pipeline.errors import ValidationFailed

__all__ = [
    "ValidationResult",
    "field_errors",
    "raise_for_errors",
    "validate_connector",
    "validate_connectors",
]


@dataclass(frozen=True)
class ValidationResult:
    connector: str
    errors: Mapping[str, list[str]] = field(default_factory=dict)
    # file:line of each failing field, where the file declares it
    where: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "valid": self.ok,
            "errors": [
                {"field": name, "messages": list(msgs), "where": self.where.get(name)}
                for name, msgs in sorted(self.errors.items())
            ],
        }


def field_errors(config_infos: Mapping[str, Any]) -> dict[str, list[str]]:
    """The fields with errors in Connect's ConfigInfos answer, in its order."""
    errors: dict[str, list[str]] = {}
    for item in config_infos.get("configs") or []:
        value = item.get("value") or {}
        messages = [str(m) for m in value.get("errors") or []]
        if messages:
            errors.setdefault(str(value.get("name")), []).extend(messages)
    return errors


def _installed(connector_class: str, plugins: Iterable[Mapping[str, Any]]) -> bool:
    # Connect accepts the full class name, the simple name, or the simple name
    # without its "Connector" suffix (PostgresConnector, Postgres).
    for plugin in plugins:
        full = str(plugin.get("class", ""))
        simple = full.rsplit(".", 1)[-1]
        aliases = {full, simple, simple.removesuffix("Connector")}
        if connector_class in aliases:
            return True
    return False


def validate_connector(
    client: ConnectClient,
    spec: ConnectorSpec,
    redactor: Redactor | None = None,
    plugins: list[dict[str, Any]] | None = None,
) -> ValidationResult:
    """Validate one declared connector on the worker.

    A connector class the worker does not have is an error of the
    ``connector.class`` field, like any other invalid value (Connect itself
    answers it with a 500 that retrying does not help). ``plugins`` is the
    answer of ``GET /connector-plugins``, fetched when not given.

    Raises:
        ConnectUnreachable: the worker did not answer.
        ConnectError: the worker failed the request.
    """
    scrub = (redactor or Redactor()).scrub
    installed = client.connector_plugins() if plugins is None else plugins
    if not _installed(spec.connector_class, installed):
        classes = ", ".join(
            sorted(str(p.get("class")) for p in installed if p.get("type") in ("source", "sink"))
        )
        errors = {
            "connector.class": [
                f"{spec.connector_class!r} is not installed on the Connect worker "
                f"(installed: {classes or 'none'})"
            ]
        }
        return ValidationResult(
            spec.name, errors, {"connector.class": spec.where("connector.class")}
        )
    infos = client.validate(spec.connector_class, {**spec.config, "name": spec.name})
    errors = {name: [scrub(m) for m in msgs] for name, msgs in field_errors(infos).items()}
    where = {name: spec.where(name) for name in errors if name in spec.origin}
    return ValidationResult(spec.name, errors, where)


def validate_connectors(
    client: ConnectClient, specs: Iterable[ConnectorSpec], redactor: Redactor | None = None
) -> list[ValidationResult]:
    """Validate each connector; see :func:`validate_connector` for what it raises."""
    specs = list(specs)
    plugins = client.connector_plugins() if specs else []
    return [validate_connector(client, spec, redactor, plugins) for spec in specs]


def raise_for_errors(results: Iterable[ValidationResult]) -> None:
    """Raise if any connector is invalid.

    Raises:
        ValidationFailed: with the per-field messages, each with its file:line;
            with several invalid connectors, every field is prefixed by its
            connector's name.
    """
    invalid = [r for r in results if not r.ok]
    if not invalid:
        return
    several = len(invalid) > 1
    errors: dict[str, list[str]] = {}
    for result in invalid:
        for name, msgs in result.errors.items():
            where = f" [{result.where[name]}]" if name in result.where else ""
            key = f"{result.connector}: {name}" if several else name
            errors[key] = [msg + where for msg in msgs]
    raise ValidationFailed(", ".join(r.connector for r in invalid), errors)
