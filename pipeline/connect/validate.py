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
from pipeline.errors import ConnectError, ConnectUnreachable, ValidationFailed

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


def validate_connector(
    client: ConnectClient, spec: ConnectorSpec, redactor: Redactor | None = None
) -> ValidationResult:
    """Validate one declared connector on the worker.

    A connector class the worker does not know is reported as an error of the
    ``connector.class`` field, like any other invalid value.

    Raises:
        ConnectUnreachable: the worker did not answer.
        ConnectError: the worker failed the request for another reason.
    """
    scrub = (redactor or Redactor()).scrub
    body = {**spec.config, "name": spec.name}
    try:
        infos = client.validate(spec.connector_class, body)
    except ConnectUnreachable:
        raise
    except ConnectError as exc:
        # Connect answers an unknown plugin class with 4xx instead of a field error.
        if exc.status is not None and 400 <= exc.status < 500:
            raw = exc.body.get("message") if isinstance(exc.body, dict) else exc.body
            message = scrub(str(raw or exc.message))
            errors = {"connector.class": [_plugin_message(spec.connector_class, message)]}
            return ValidationResult(
                spec.name, errors, {"connector.class": spec.where("connector.class")}
            )
        raise
    errors = {name: [scrub(m) for m in msgs] for name, msgs in field_errors(infos).items()}
    where = {name: spec.where(name) for name in errors if name in spec.origin}
    return ValidationResult(spec.name, errors, where)


def _plugin_message(connector_class: str, message: str) -> str:
    if connector_class in message or "plugin" in message.lower() or "class" in message.lower():
        return f"{message} (installed classes: cdcflow connectors plugins)"
    return message


def validate_connectors(
    client: ConnectClient, specs: Iterable[ConnectorSpec], redactor: Redactor | None = None
) -> list[ValidationResult]:
    """Validate each connector; see :func:`validate_connector` for what it raises."""
    return [validate_connector(client, spec, redactor) for spec in specs]


def raise_for_errors(results: Iterable[ValidationResult]) -> None:
    """Raise for the first invalid connector.

    Raises:
        ValidationFailed: with the per-field messages (each with its file:line).
    """
    for result in results:
        if not result.ok:
            errors = {
                name: [
                    f"{msg} [{result.where[name]}]" if name in result.where else msg for msg in msgs
                ]
                for name, msgs in result.errors.items()
            }
            raise ValidationFailed(result.connector, errors)
