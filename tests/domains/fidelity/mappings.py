"""How the fidelity tables' row changes become events.

=================================  ===============================================
row change                         event
=================================  ===============================================
typed insert / snapshot            TypedRowCaptured, every column converted to
                                   the field's type (see ``events``)
toast_default / toast_full         ToastedRowChanged; an UNCHANGED value (TOASTed,
insert / snapshot / update         not sent) is carried as null and named in
                                   ``unchanged``, never as a placeholder
probes insert / snapshot           ProbeRecorded; the label ``boom`` makes the rule
                                   raise (a mapping that fails, on purpose)
probes update / delete             skipped: no rule matches
unmapped                           not declared: every change is a mapping error
=================================  ===============================================
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipeline.cdc import UNCHANGED, Change, Interval
from pipeline.mapping import Rules
from tests.domains.fidelity.events import ProbeRecorded, ToastedRowChanged, TypedRowCaptured

__all__ = ["BOOM", "json_text", "rules"]

rules = Rules("fidelity")

BOOM = "boom"
"""The probe label whose rule raises."""


def json_text(value: Any) -> str:
    """JSON text of a decoded json / jsonb value, numbers with every digit they arrived with.

    The decoder reads JSON numbers with a fraction as ``Decimal``, which
    ``json.dumps`` cannot write without turning them into floats or strings.
    """
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)  # JSON number syntax, exponent included ("1E+30")
    return json.dumps(value, ensure_ascii=False)


def _optional(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")  # positional notation, as PostgreSQL prints numeric


def _interval_text(value: Interval) -> str:
    return value.isoformat()


_TYPED_COLUMNS = tuple(name for name in TypedRowCaptured.model_fields if name != "metadata")
_CONVERT = {
    "c_numeric_any": _decimal_text,
    "c_interval": _interval_text,
    "c_json": json_text,
    "c_jsonb": json_text,
}


@rules.on("fidelity.typed", ops="cr", reads=_TYPED_COLUMNS)
def typed_row_captured(change: Change) -> TypedRowCaptured:
    values: dict[str, Any] = {}
    for column in _TYPED_COLUMNS:
        value = change.new(column)
        if value is UNCHANGED:
            raise ValueError(f"{change.table}.{column} was not sent on op {change.op!r}")
        values[column] = _optional(value, _CONVERT.get(column, lambda v: v))
    return TypedRowCaptured(**values)


_TOASTED = ("body", "doc", "blob", "tags", "nums", "ids")


@rules.on("fidelity.toast_full", ops="cru", reads=("id", "counter", *_TOASTED))
@rules.on("fidelity.toast_default", ops="cru", reads=("id", "counter", *_TOASTED))
def toasted_row_changed(change: Change) -> ToastedRowChanged:
    unchanged = [c for c in _TOASTED if change.new(c) is UNCHANGED]
    carried = {c: change.new(c) for c in _TOASTED if c not in unchanged}
    if "doc" in carried:
        carried["doc"] = _optional(carried["doc"], json_text)
    return ToastedRowChanged(
        id=change.new("id"),
        source_table=change.table,
        counter=change.new("counter"),
        unchanged=unchanged,
        **carried,
    )


@rules.on("fidelity.probes", ops="cr", reads=("id", "label", "quantity", "amount"))
def probe_recorded(change: Change) -> ProbeRecorded:
    label = change.new("label")
    if label == BOOM:
        raise RuntimeError(f"probe {change.new('id')} is labelled {BOOM!r}")
    quantity = change.new("quantity")
    if quantity != quantity.to_integral_value():
        raise ValueError(f"probe quantity {quantity} is not a whole number")
    return ProbeRecorded(
        id=change.new("id"), label=label, quantity=int(quantity), amount=change.new("amount")
    )
