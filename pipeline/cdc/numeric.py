"""Exact numbers: Connect ``Decimal``, ``VariableScaleDecimal``, bytes and floats.

Kafka Connect writes a ``Decimal`` as its unscaled value, big-endian two's
complement, and JsonConverter puts those bytes in base64 (``decimal.format``
BASE64, the default) or writes the number itself (NUMERIC). JSON is parsed with
``parse_float=Decimal`` so a NUMERIC decimal keeps every digit.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from functools import partial
from typing import Any

__all__ = [
    "ValueDecodeError",
    "decimal_decoder",
    "decode_bytes",
    "decode_decimal",
    "decode_float",
    "decode_variable_decimal",
]


class ValueDecodeError(ValueError):
    """A single value does not have the form its schema promises.

    ``table`` and ``column``: where the value is, when the decoder knows it.
    """

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None):
        super().__init__(message)
        self.table, self.column = table, column


def decode_bytes(value: Any) -> bytes:
    """JsonConverter's base64 text of a BYTES value."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueDecodeError(f"expected base64 text for bytes, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueDecodeError(f"invalid base64: {exc}") from exc


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def decode_decimal(value: Any, scale: Any) -> Decimal:
    """``org.apache.kafka.connect.data.Decimal`` with the schema's ``scale`` parameter."""
    return decimal_decoder(scale)(value)


def decimal_decoder(scale: Any) -> Callable[[Any], Decimal]:
    """:func:`decode_decimal` for one column, its ``scale`` parameter read once."""
    try:
        exp = -int(scale)
    except (TypeError, ValueError) as exc:
        bad = exc

        def unscalable(value: Any) -> Decimal:
            if _numeric(value):
                return Decimal(value)
            raise ValueDecodeError(f"Decimal schema without an integer scale: {scale!r}") from bad

        return unscalable
    return partial(_scaled, exp=exp)


def _numeric(value: Any) -> bool:
    # decimal.format=NUMERIC: the converter wrote the number itself.
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


def _scaled(value: Any, exp: int) -> Decimal:
    if type(value) is not str and _numeric(value):
        return Decimal(value)
    # Scaled in a context of unlimited precision: the default one would round beyond 28 digits.
    unscaled = int.from_bytes(decode_bytes(value), "big", signed=True)
    return Decimal(unscaled).scaleb(exp, _EXACT)


def decode_variable_decimal(value: Any) -> Decimal:
    """``io.debezium.data.VariableScaleDecimal``: a struct ``{scale, value}``."""
    if not isinstance(value, dict) or "scale" not in value or "value" not in value:
        raise ValueDecodeError("VariableScaleDecimal must be an object with 'scale' and 'value'")
    return decode_decimal(value["value"], value["scale"])


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode_float(value: Any) -> float:
    """FLOAT32 / FLOAT64; non-finite values may arrive as the strings NaN / Infinity."""
    if isinstance(value, str):
        if value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        raise ValueDecodeError(f"expected a number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueDecodeError(f"expected a number, got {type(value).__name__}")
    return float(value)
