"""The schema registry, as the contracts see it: subjects, versions, levels.

A thin layer over confluent-kafka's ``SchemaRegistryClient`` (pointed at
``settings.registry.url``, for the local stack Apicurio's Confluent-compatible
API at ``/apis/ccompat/v7``): one method per request cdcflow makes, each
turning the client's errors into :class:`~pipeline.errors.RegistryError` with
the subject and the registry's status, error code and message, and "did not
answer at all" into :class:`RegistryUnreachable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipeline.contracts.levels import Level
from pipeline.errors import RegistryError
from pipeline.settings import RegistrySettings

__all__ = ["ContractRegistry", "RegistryUnreachable"]

T = TypeVar("T")


def _no_answer_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [httpx.TransportError, OSError]
    try:  # the HTTP library the client really uses: httpx2 where installed, else httpx
        from confluent_kafka.schema_registry.common._httpx_compat import httpx as used

        errors.append(used.TransportError)
    except ImportError:
        pass
    return tuple(errors)


_NO_ANSWER = _no_answer_errors()

# Confluent error codes (Apicurio's ccompat API answers with the same).
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_CONFIG_NOT_FOUND = 40408


class RegistryUnreachable(RegistryError):
    """The registry did not answer (refused, timed out, DNS)."""


class ContractRegistry:
    """Subjects, versions and compatibility levels in a Confluent-compatible registry."""

    def __init__(
        self,
        settings: RegistrySettings,
        *,
        client: Any = None,
        timeout_s: float = 10.0,
        retries: int = 1,
    ) -> None:
        self.url = settings.url
        conf = settings.client_config()
        # Few, short retries: a check or a register run should say "unreachable"
        # within seconds, not after the client's default backoff of a minute.
        conf.update({"timeout": timeout_s, "max.retries": retries, "retries.wait.ms": 200})
        self._client = client if client is not None else SchemaRegistryClient(conf)

    def _call(self, what: str, subject: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SchemaRegistryError as exc:
            where = f" {subject}" if subject else ""
            raise RegistryError(
                f"registry {what}{where}: HTTP {exc.http_status_code}, "
                f"error {exc.error_code}: {exc.error_message}"
            ) from exc
        except _NO_ANSWER as exc:
            raise RegistryUnreachable(
                f"schema registry at {self.url} did not answer: {type(exc).__name__}: {exc}",
                hint="is it running ('cdcflow stack status')? is registry.url "
                "(CDCFLOW_REGISTRY__URL) right?",
            ) from exc

    def versions(self, subject: str) -> list[int]:
        """The subject's registered versions, oldest first; [] for an unknown subject.

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnreachable: the registry did not answer.
        """
        try:
            return sorted(
                self._call("versions of", subject, lambda: self._client.get_versions(subject))
            )
        except RegistryError as exc:
            if _code(exc) == SUBJECT_NOT_FOUND:
                return []
            raise

    def schema(self, subject: str, version: int) -> str:
        """The schema text of one registered version.

        Raises:
            RegistryError: the registry refused the request (or has no such version).
            RegistryUnreachable: the registry did not answer.
        """
        registered = self._call(
            f"version {version} of", subject, lambda: self._client.get_version(subject, version)
        )
        return str(registered.schema.schema_str)

    def history(self, subject: str) -> list[tuple[int, str]]:
        """Every registered version of the subject with its text, oldest first.

        Raises:
            RegistryError: the registry refused a request.
            RegistryUnreachable: the registry did not answer.
        """
        return [(v, self.schema(subject, v)) for v in self.versions(subject)]

    def register(self, subject: str, schema_text: str) -> tuple[int, int | None]:
        """Register ``schema_text`` under ``subject``: (schema id, version if the registry says).

        Raises:
            RegistryError: the registry refused it (incompatible, invalid).
            RegistryUnreachable: the registry did not answer.
        """
        registered = self._call(
            "register in",
            subject,
            lambda: self._client.register_schema_full_response(
                subject, Schema(schema_text, "AVRO")
            ),
        )
        return int(registered.schema_id or 0), registered.version

    def level(self, subject: str) -> Level | None:
        """The subject's own compatibility level; None if it has none set.

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnreachable: the registry did not answer.
        """
        try:
            value = self._call("level of", subject, lambda: self._client.get_compatibility(subject))
        except RegistryError as exc:
            if _code(exc) in (SUBJECT_NOT_FOUND, SUBJECT_CONFIG_NOT_FOUND) or _status(exc) == 404:
                return None
            raise
        return Level(str(value).upper()) if value else None

    def set_level(self, subject: str, level: Level) -> None:
        """Set the subject's compatibility level (``PUT /config/{subject}``).

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnreachable: the registry did not answer.
        """
        self._call(
            f"set level {level.value} of",
            subject,
            lambda: self._client.set_compatibility(subject_name=subject, level=level.value),
        )

    def test_compatibility(
        self, subject: str, schema_text: str, version: str | int = "latest"
    ) -> bool:
        """The registry's own verdict on ``schema_text`` against one registered version.

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnreachable: the registry did not answer.
        """
        return bool(
            self._call(
                "compatibility test in",
                subject,
                lambda: self._client.test_compatibility(
                    subject, Schema(schema_text, "AVRO"), version
                ),
            )
        )

    def delete_subject(self, subject: str, *, permanent: bool = False) -> None:
        """Delete a subject (tests clean up after themselves with it).

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnreachable: the registry did not answer.
        """
        self._call("delete", subject, lambda: self._client.delete_subject(subject, permanent=False))
        if permanent:
            self._call(
                "delete", subject, lambda: self._client.delete_subject(subject, permanent=True)
            )


def _code(exc: RegistryError) -> int | None:
    cause = exc.__cause__
    return cause.error_code if isinstance(cause, SchemaRegistryError) else None


def _status(exc: RegistryError) -> int | None:
    cause = exc.__cause__
    return cause.http_status_code if isinstance(cause, SchemaRegistryError) else None
