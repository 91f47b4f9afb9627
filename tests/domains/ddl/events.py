"""The ddl domain's events: one per source table, each carrying the columns its rule reads.

``WidenedRecorded`` is sized for the widened columns from the start (an ``int`` is
an Avro long; ``Decimal(12, 4)``), so both the old and the new column type fit
it. ``PricedRecorded`` keeps the ``numeric(10, 2)`` of the column before the
change: a price with more than two decimals does not fit it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import Field

from pipeline.events import DomainEvent

__all__ = [
    "AddedRecorded",
    "DroppedRecorded",
    "PricedRecorded",
    "RenamedRecorded",
    "SteadyRecorded",
    "WidenedRecorded",
]


class _DdlEvent(DomainEvent):
    __namespace__: ClassVar[str] = "cdcflow.it.ddl"
    # The first part of every topic of this domain; a test run sets one of its own.
    __domain__: ClassVar[str] = "ddl"


class SteadyRecorded(_DdlEvent):
    """A row of ddl.steady (never altered) was inserted."""

    __aggregate__: ClassVar[str] = "steady"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    label: str


class AddedRecorded(_DdlEvent):
    """A row of ddl.added was inserted or updated; the added columns once they exist."""

    __aggregate__: ClassVar[str] = "added"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    label: str
    note: str | None = Field(None, description="null until the column is added, or NULL")
    tier: int | None = Field(None, description="null until the column is added")


class DroppedRecorded(_DdlEvent):
    """A row of ddl.dropped was inserted; ``extra`` is the column that gets dropped."""

    __aggregate__: ClassVar[str] = "dropped"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    label: str
    extra: str | None


class RenamedRecorded(_DdlEvent):
    """A row of ddl.renamed was inserted; ``code`` is the column that gets renamed."""

    __aggregate__: ClassVar[str] = "renamed"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    label: str
    code: str | None


class WidenedRecorded(_DdlEvent):
    """A row of ddl.widened was inserted; both columns change type while streaming."""

    __aggregate__: ClassVar[str] = "widened"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    counter: int = Field(description="integer, then bigint: an Avro long holds both")
    amount: Annotated[Decimal, Field(max_digits=12, decimal_places=4)] = Field(
        description="numeric(10,2), then numeric(12,4)"
    )


class PricedRecorded(_DdlEvent):
    """A row of ddl.priced was inserted; the event keeps the column's first type."""

    __aggregate__: ClassVar[str] = "priced"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    price: Annotated[Decimal, Field(max_digits=10, decimal_places=2)]
