"""A test-only event model Avro cannot express (a Decimal without precision)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pipeline.events import DomainEvent


class Priced(DomainEvent):
    __namespace__: ClassVar[str] = "bad.events"
    __aggregate__: ClassVar[str] = "thing"

    price: Decimal
