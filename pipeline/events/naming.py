"""Where an event type's contract lives: its topic, its registry subject, its file.

Subject naming follows Confluent's ``TopicRecordNameStrategy``: an event topic
``<domain>.<aggregate>.events`` carries every event type of one aggregate (so
that the events of one aggregate stay in order on one partition), and each
event type has its own subject there::

    <topic>-<record full name>
    shop.order.events-shop.events.OrderPlaced

With the plain ``TopicNameStrategy`` (``<topic>-value``) every event type of a
topic would share one subject, and adding a second event type to a topic would
be an "incompatible schema" (a different record). The serializer and
``cdcflow schemas register`` both name subjects with :func:`subject_name`, so
what is checked is what is produced.

The ``<domain>`` of a topic is the name of the :class:`~pipeline.domain.Domain`
that lists the event type (it registers itself here with :func:`claim`); an
explicit ``__domain__`` on the class wins over it.

Consequence worth knowing: the record's full name is part of the subject, so a
namespace change or a renamed event class starts a *new* subject (with no
compatibility history); ``schemas check --against`` reports it as a removed and
an added contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.events import DomainEvent

__all__ = [
    "claim",
    "event_domain",
    "event_subject",
    "event_topic",
    "schema_path",
    "subject_name",
]


def subject_name(topic: str, record_full_name: str) -> str:
    """The registry subject of one record type on one topic: ``<topic>-<full name>``.

    Raises:
        ValueError: ``topic`` or ``record_full_name`` is empty.
    """
    if not topic or not record_full_name:
        raise ValueError("a subject needs both a topic and a record full name")
    return f"{topic}-{record_full_name}"


# Event type -> the name of the Domain object that lists it (see claim()).
_CLAIMED: dict[type[DomainEvent], str] = {}


def claim(domain: str, events: Iterable[type[DomainEvent]]) -> None:
    """Record that ``events`` belong to the domain named ``domain`` (by :class:`Domain`).

    Raises:
        ValueError: an event type declares a different ``__domain__``.
    """
    for event in events:
        explicit = getattr(event, "__domain__", "")
        if isinstance(explicit, str) and explicit and explicit != domain:
            raise ValueError(
                f"{event.__module__}.{event.__name__} declares __domain__ = {explicit!r}, "
                f"but is listed by the domain {domain!r}"
            )
        _CLAIMED[event] = domain


def event_domain(event: type[DomainEvent]) -> str:
    """The domain an event type belongs to: the first part of its topic.

    An explicit ``__domain__`` on the class wins; then the name of the
    :class:`~pipeline.domain.Domain` that lists it; otherwise it is the package
    under any ``<x>.domains.<domain>`` module path the class is declared in,
    and failing that the first part of its namespace.
    """
    explicit = getattr(event, "__domain__", "")
    if isinstance(explicit, str) and explicit:
        return explicit
    claimed = _CLAIMED.get(event)
    if claimed:
        return claimed
    parts = event.__module__.split(".")
    if "domains" in parts[:-1]:
        return parts[parts.index("domains") + 1]
    return event.namespace().split(".")[0]


def event_topic(event: type[DomainEvent]) -> str:
    """The topic an event type is produced to: ``<domain>.<aggregate>.events``.

    Raises:
        TypeError: the event class declares no ``__aggregate__``.
    """
    return f"{event_domain(event)}.{event.aggregate_type()}.events"


def event_subject(event: type[DomainEvent]) -> str:
    """The registry subject of an event type (see the module docstring).

    Raises:
        TypeError: the event class declares no ``__aggregate__``.
    """
    return subject_name(event_topic(event), event.full_name())


def schema_path(schemas_dir: Path, namespace: str, name: str) -> Path:
    """Where the contract of ``<namespace>.<name>`` is kept: ``<dir>/<namespace>/<name>.avsc``."""
    return schemas_dir / (namespace or "_") / f"{name}.avsc"
