"""The redrive domain's one event."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pipeline.events import DomainEvent

__all__ = ["ItemRecorded"]


class _RedriveEvent(DomainEvent):
    __namespace__: ClassVar[str] = "cdcflow.it.redrive"
    # The first part of every topic of this domain; a test run sets one of its own.
    __domain__: ClassVar[str] = "redrive"


class ItemRecorded(_RedriveEvent):
    """An item was inserted (or read by a snapshot)."""

    __aggregate__: ClassVar[str] = "item"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the item's key")
    label: str = Field(description="the item's label")
    quantity: int = Field(description="how many")
