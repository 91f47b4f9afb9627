"""A Decimal at its Avro decimal's scale, when that is exact."""

from __future__ import annotations

from collections.abc import Callable
from decimal import MAX_PREC, Context, Decimal, Inexact, InvalidOperation
from typing import Any

__all__ = ["at_scale"]

_EXACT = Context(prec=MAX_PREC, traps=[Inexact, InvalidOperation])


def at_scale(scale: int) -> Callable[[Any], Any]:
    """A Decimal at the Avro decimal's scale when that is exact (``5.5000`` -> ``5.50``).

    A numeric column whose scale grew (numeric(10,2) -> numeric(12,4)) sends
    every value with the new scale; fastavro refuses more fraction digits than
    the schema's scale even when they are zeros. Only zeros are dropped: a
    value that would be rounded is left as it is, and fails the event.
    """
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: Any) -> Any:
        if type(value) is not Decimal or not value.is_finite():
            return value
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent >= -scale:
            return value
        try:
            return value.quantize(quantum, context=_EXACT)
        except (Inexact, InvalidOperation):
            return value

    return convert
