"""The schema registry's errors, mapped in one place: "did not answer" or "refused".

Every caller of confluent-kafka's ``SchemaRegistryClient`` (the serializer,
the readers, the contract tooling) wraps its calls in
:func:`map_registry_errors`, so "the registry is unavailable" means one thing
everywhere::

    RegistryError                   the registry refused or failed a request
    │                               (its status, error code and message; the
    │                               client's SchemaRegistryError is the cause)
    └── RegistryUnavailable         it did not answer: refused, reset or timed
                                    out, or answered 408, 429 or 5xx; wait and retry

A caller decides what an outage means for it: the transformer and a replay
wait and retry (:mod:`pipeline.serde.backoff`), a command stops with the hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka.schema_registry import SchemaRegistryError

from pipeline.errors import CdcflowError, RegistryError

__all__ = [
    "RegistryUnavailable",
    "error_code",
    "http_status",
    "is_unavailable",
    "map_registry_errors",
]

UNAVAILABLE_HINT = (
    "is it running ('cdcflow stack status')? is registry.url (CDCFLOW_REGISTRY__URL) right?"
)


class RegistryUnavailable(RegistryError):
    """The schema registry did not answer; the caller should wait and retry."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    # confluent-kafka's registry client talks HTTP through httpx, or through its
    # own copy of it (module httpx2) in newer releases: accept both.
    found: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the registry did not answer (as opposed to refusing)."""
    if isinstance(exc, SchemaRegistryError):
        status = exc.http_status_code
        return status is None or status < 0 or status >= 500 or status in (408, 429)
    # Refused, reset, timed out: the registry client's HTTP transport errors.
    return isinstance(exc, _TRANSPORT_ERRORS)


@contextmanager
def map_registry_errors(what: str, *, url: str | None = None) -> Iterator[None]:
    """Turn the registry client's errors inside the block into cdcflow's.

    ``what`` names the request (``"lookup in shop.order.events-shop.events.OrderPlaced"``);
    ``url``, where the caller knows it, names the registry in an outage's message.

    Raises:
        RegistryUnavailable: the registry did not answer (see :func:`is_unavailable`).
        RegistryError: it refused the request (HTTP status, error code, message),
            or answered something the client could not use.
    """
    try:
        yield
    except CdcflowError:
        raise
    except SchemaRegistryError as exc:
        if is_unavailable(exc):
            raise _unavailable(
                what, url, f"HTTP {exc.http_status_code}: {exc.error_message}"
            ) from exc
        raise RegistryError(
            f"registry {what}: HTTP {exc.http_status_code}, "
            f"error {exc.error_code}: {exc.error_message}"
        ) from exc
    except _TRANSPORT_ERRORS as exc:
        raise _unavailable(what, url, f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise RegistryError(
            f"registry {what}: the answer is unusable: {type(exc).__name__}: {exc}"
        ) from exc


def _unavailable(what: str, url: str | None, detail: str) -> RegistryUnavailable:
    who = f"schema registry at {url} did not answer" if url else "schema registry unavailable"
    return RegistryUnavailable(f"{who} ({what}): {detail}", hint=UNAVAILABLE_HINT)


def http_status(exc: RegistryError) -> int | None:
    """The HTTP status of the registry's answer behind ``exc``, if it answered."""
    cause = exc.__cause__
    return cause.http_status_code if isinstance(cause, SchemaRegistryError) else None


def error_code(exc: RegistryError) -> int | None:
    """The Confluent error code of the registry's answer behind ``exc`` (40401, ...)."""
    cause = exc.__cause__
    return cause.error_code if isinstance(cause, SchemaRegistryError) else None
