"""Test-only event models for the contract tests (``--domain tests.unit.contract_models``)."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pipeline.events import DomainEvent

Money = Annotated[Decimal, Field(max_digits=10, decimal_places=3)]


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"
    OTHER = "other"
    __avro_default__ = "other"


class Point(BaseModel):
    """A place."""

    model_config = ConfigDict(frozen=True)

    x: int = Field(description="east")
    y: int = Field(0, description="north")


class _TestEvent(DomainEvent):
    __namespace__: ClassVar[str] = "testshop.events"
    __aggregate__: ClassVar[str] = "widget"
    __aggregate_id__: ClassVar[str] = "widget_id"


class WidgetMade(_TestEvent):
    """A widget was made.

    With a second paragraph.
    """

    widget_id: UUID = Field(description="the widget")
    price: Money = Field(description="what it costs")
    discount: Money | None = Field(None, description="if any")
    made_at: datetime
    made_on: date
    opens_at: time
    size: int
    weight: float
    fragile: bool = False
    label: str = "none"
    blob: bytes
    colour: Colour = Colour.RED
    kind: Literal["small", "large"] = Field(
        description="the kind", json_schema_extra={"avro_enum_default": "small"}
    )
    tags: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    origin: Point
    corners: tuple[Point, ...] = ()
    note: str | None = Field(None, json_schema_extra={"avro_aliases": ["comment"]})


class WidgetScrapped(_TestEvent):
    widget_id: UUID
    reason: str | int
