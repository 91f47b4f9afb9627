"""The fidelity domain's events: every column type carried into Avro, TOAST, probes.

How each PostgreSQL type is carried (the Avro types follow from the Python
types, see :mod:`pipeline.contracts.generate`):

=====================  ==================  ===========================================
PostgreSQL             Python field        Avro, and why
=====================  ==================  ===========================================
smallint / integer /   ``int``             ``long``: one integer type holds them all
bigint
numeric(p, s)          ``Decimal(p, s)``   ``decimal(p, s)``: exact, the column's own
                                           precision and scale
numeric (no scale)     ``str``             ``string``, the exact number in positional
                                           notation: an Avro decimal has one fixed
                                           scale, the column has none (Debezium drops
                                           trailing fraction zeros: 1.500 is 1.5)
real / double          ``float``           ``double``; a real arrives as the shortest
                                           decimal of its float32 (1.1), which
                                           narrows back to that float32 exactly
boolean, text,         ``bool`` / ``str``  ``boolean`` / ``string``; char(n) keeps its
varchar, char(n)                           blank padding, as PostgreSQL returns it
uuid                   ``UUID``            ``string`` + ``uuid``
date                   ``date``            ``int`` + ``date``
time                   ``time``            ``long`` + ``time-micros``
timetz                 ``time``            ``long`` + ``time-micros``, the time of day in
                                           UTC: Debezium sends timetz normalised to UTC,
                                           the original offset does not reach cdcflow
timestamp              ``datetime``        ``long`` + ``timestamp-micros`` of the wall
                                           clock read as UTC (Debezium's convention)
timestamptz            ``datetime``        ``long`` + ``timestamp-micros``: the instant
interval               ``str``             ``string``, ISO 8601 (``P1Y2M3DT4H5M6.5S``):
                                           months, days and time are kept apart as
                                           PostgreSQL keeps them; Avro's ``duration``
                                           has milliseconds only
json / jsonb           ``str``             ``string``, the JSON text (numbers with every
                                           digit); Avro has no JSON type
bytea                  ``bytes``           ``bytes``
text[] / integer[]     ``list[T | None]``  ``array`` of ``["null", T]``: elements may be NULL
enum                   ``Literal[...]``    ``enum`` with the type's labels
inet                   ``str``             ``string``, PostgreSQL's text form
money                  ``Decimal(19, 2)``  ``decimal(19, 2)``: Debezium sends money as a
                                           decimal with 2 fraction digits
=====================  ==================  ===========================================

Every column of ``fidelity.typed`` may be NULL, so every field is optional
(``["null", T]``, default null).
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from pipeline.events import DomainEvent

__all__ = ["Mood", "ProbeRecorded", "ToastedRowChanged", "TypedRowCaptured"]

Mood = Literal["sad", "ok", "happy"]


class _FidelityEvent(DomainEvent):
    __namespace__: ClassVar[str] = "cdcflow.it.fidelity"
    # The first part of every topic of this domain; a test run sets one of its own.
    __domain__: ClassVar[str] = "fidelity"


class TypedRowCaptured(_FidelityEvent):
    """A row of fidelity.typed was inserted or read by a snapshot; every column is carried."""

    __aggregate__: ClassVar[str] = "typed_row"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key")
    c_smallint: int | None = None
    c_integer: int | None = None
    c_bigint: int | None = None
    c_numeric: Annotated[Decimal, Field(max_digits=20, decimal_places=6)] | None = None
    c_numeric_any: str | None = Field(None, description="numeric without scale, as text")
    c_real: float | None = None
    c_double: float | None = None
    c_boolean: bool | None = None
    c_text: str | None = None
    c_varchar: str | None = None
    c_char: str | None = None
    c_uuid: UUID | None = None
    c_date: date | None = None
    c_time: time | None = None
    c_timetz: time | None = Field(None, description="time of day in UTC")
    c_timestamp: datetime | None = Field(None, description="wall clock, read as UTC")
    c_timestamptz: datetime | None = None
    c_interval: str | None = Field(None, description="ISO 8601 duration")
    c_json: str | None = Field(None, description="JSON text")
    c_jsonb: str | None = Field(None, description="JSON text")
    c_bytea: bytes | None = None
    c_text_array: list[str | None] | None = None
    c_int_array: list[int | None] | None = None
    c_mood: Mood | None = None
    c_inet: str | None = None
    c_money: Annotated[Decimal, Field(max_digits=19, decimal_places=2)] | None = None


class ToastedRowChanged(_FidelityEvent):
    """A row with large (TOASTed) values was inserted or updated.

    An update under REPLICA IDENTITY DEFAULT does not send the large values it
    left unchanged; they are named in ``unchanged`` and their fields are null.
    """

    __aggregate__: ClassVar[str] = "toasted_row"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the row's key (unique across both toast tables)")
    source_table: str = Field(description="schema.table the row lives in")
    counter: int = Field(description="the column the updates change")
    body: str | None = None
    doc: str | None = Field(None, description="JSON text")
    blob: bytes | None = None
    tags: list[str | None] | None = None
    nums: list[int | None] | None = None
    ids: list[UUID | None] | None = None
    unchanged: list[str] = Field(
        default_factory=list,
        description="columns the source did not send because the update left them "
        "unchanged (TOASTed values under REPLICA IDENTITY DEFAULT): their fields are "
        "null, which here means 'not carried', not NULL",
    )


class ProbeRecorded(_FidelityEvent):
    """A probe row was inserted."""

    __aggregate__: ClassVar[str] = "probe"
    __aggregate_id__: ClassVar[str] = "id"

    id: int = Field(description="the probe's key")
    label: str = Field(description="the probe's label")
    quantity: int = Field(description="a whole number; Avro long, so at most 64 bits")
    amount: Annotated[Decimal, Field(max_digits=8, decimal_places=2)]
