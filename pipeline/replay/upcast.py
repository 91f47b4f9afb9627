"""Upcasting: records of an older event version made into the current version (pure).

An event type's schema version is its class's ``__version__``, stamped into
each event as ``metadata.schema_version``. The log keeps every version ever
produced, so a consumer reading it from the beginning meets old records. An
*upcaster* turns the decoded record (a plain dict, as the writer's schema
decoded it) of version ``n`` into the record of version ``n + 1``; they are
registered per ``(event type, from version)`` and chained, so a version-1
record reaches version 3 through ``(T, 1)`` then ``(T, 2)``. Each step
touches one version change only, and steps are never edited once released::

    upcasters = Upcasters()

    @upcasters.register("OrderPlaced", from_version=1)
    def _split_total(record):
        total = record.pop("total")
        return {**record, "net": total, "tax": Decimal("0.00")}

Changes that Avro and pydantic handle by themselves (a new optional field
with a default) need no upcaster: a record without an upcaster path is
validated as it is, and only if that fails is it an :class:`UpcastError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.events import DomainEvent

__all__ = ["Record", "Upcaster", "Upcasters"]

Record = dict[str, Any]
Upcaster = Callable[[Record], Record]


def _type_name(event_type: str | type[DomainEvent]) -> str:
    return event_type if isinstance(event_type, str) else event_type.event_type()


class Upcasters:
    """A registry of upcasters keyed by ``(event type name, from version)``."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def add(self, event_type: str | type[DomainEvent], from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to turn version ``from_version`` of ``event_type`` into the next.

        Raises:
            ValueError: ``from_version`` is below 1, or a step for it is already registered.
        """
        if from_version < 1:
            raise ValueError(f"from_version must be 1 or more, got {from_version}")
        key = (_type_name(event_type), from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {key[0]} v{from_version} is already registered")
        self._steps[key] = fn

    def register(
        self, event_type: str | type[DomainEvent], from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add`; returns the function unchanged."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add(event_type, from_version, fn)
            return fn

        return decorate

    def update(self, other: Upcasters) -> None:
        """Take every step of ``other`` (from another module).

        Raises:
            ValueError: both register a step for the same type and version.
        """
        for (event_type, version), fn in other._steps.items():
            self.add(event_type, version, fn)

    def has_path(self, event_type: str, version: int, target: int) -> bool:
        """True when every step from ``version`` up to ``target`` is registered."""
        return all((event_type, v) in self._steps for v in range(version, target))

    def upcast(self, event_type: str, version: int, record: Record, target: int) -> Record:
        """``record`` (of ``version``) carried through each step up to ``target``.

        The record's ``metadata.schema_version`` is set to the version each
        step produced, so the result says what it now is. A record already at
        ``target`` (or newer: a producer ahead of this consumer) is returned
        unchanged.

        Raises:
            LookupError: a step between ``version`` and ``target`` is missing
                (the message names the first missing one).
        """
        out = record
        for v in range(version, target):
            step = self._steps.get((event_type, v))
            if step is None:
                raise LookupError(f"no upcaster registered for {event_type} v{v} -> v{v + 1}")
            out = step(dict(out))
            meta = out.get("metadata")
            if isinstance(meta, dict):
                out["metadata"] = {**meta, "schema_version": v + 1}
        return out

    def __len__(self) -> int:
        return len(self._steps)
