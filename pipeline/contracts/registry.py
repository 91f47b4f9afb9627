"""The schema registry, as the contracts see it: subjects, versions, levels.

A thin layer over confluent-kafka's ``SchemaRegistryClient`` (pointed at
``settings.registry.url``, for the local stack Apicurio's Confluent-compatible
API at ``/apis/ccompat/v7``): one method per request cdcflow makes, each
turning the client's errors into :class:`~pipeline.errors.RegistryError` with
the subject and the registry's status, error code and message, and "did not
answer" into :class:`~pipeline.serde.registry.RegistryUnavailable`, through the
one mapping every registry caller uses (:func:`~pipeline.serde.registry.map_registry_errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from pipeline.contracts.levels import Level
from pipeline.errors import RegistryError
from pipeline.serde.registry import error_code, http_status, map_registry_errors
from pipeline.settings import RegistrySettings

__all__ = ["ContractRegistry"]

T = TypeVar("T")

# Confluent error codes (Apicurio's ccompat API answers with the same).
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_CONFIG_NOT_FOUND = 40408


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
        with map_registry_errors(f"{what} {subject}" if subject else what, url=self.url):
            return fn()

    def versions(self, subject: str) -> list[int]:
        """The subject's registered versions, oldest first; [] for an unknown subject.

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnavailable: the registry did not answer.
        """
        try:
            return sorted(
                self._call("versions of", subject, lambda: self._client.get_versions(subject))
            )
        except RegistryError as exc:
            if error_code(exc) == SUBJECT_NOT_FOUND:
                return []
            raise

    def schema(self, subject: str, version: int) -> str:
        """The schema text of one registered version.

        Raises:
            RegistryError: the registry refused the request (or has no such version).
            RegistryUnavailable: the registry did not answer.
        """
        registered = self._call(
            f"version {version} of", subject, lambda: self._client.get_version(subject, version)
        )
        return str(registered.schema.schema_str)

    def history(self, subject: str) -> list[tuple[int, str]]:
        """Every registered version of the subject with its text, oldest first.

        Raises:
            RegistryError: the registry refused a request.
            RegistryUnavailable: the registry did not answer.
        """
        return [(v, self.schema(subject, v)) for v in self.versions(subject)]

    def register(self, subject: str, schema_text: str) -> tuple[int, int | None]:
        """Register ``schema_text`` under ``subject``: (schema id, version if the registry says).

        Raises:
            RegistryError: the registry refused it (incompatible, invalid).
            RegistryUnavailable: the registry did not answer.
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
            RegistryUnavailable: the registry did not answer.
        """
        try:
            value = self._call("level of", subject, lambda: self._client.get_compatibility(subject))
        except RegistryError as exc:
            if (
                error_code(exc) in (SUBJECT_NOT_FOUND, SUBJECT_CONFIG_NOT_FOUND)
                or http_status(exc) == 404
            ):
                return None
            raise
        return Level(str(value).upper()) if value else None

    def set_level(self, subject: str, level: Level) -> None:
        """Set the subject's compatibility level (``PUT /config/{subject}``).

        Raises:
            RegistryError: the registry refused the request.
            RegistryUnavailable: the registry did not answer.
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
            RegistryUnavailable: the registry did not answer.
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
            RegistryUnavailable: the registry did not answer.
        """
        self._call("delete", subject, lambda: self._client.delete_subject(subject, permanent=False))
        if permanent:
            self._call(
                "delete", subject, lambda: self._client.delete_subject(subject, permanent=True)
            )
