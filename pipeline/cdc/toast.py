"""Recognising Debezium's unavailable-value placeholder in every shape it takes.

The placeholder (``unavailable.value.placeholder``, default
``__debezium_unavailable_value``) stands for an unchanged TOASTed value. Its
shape follows the column type: the text itself for text and json; its bytes in
base64 (BYTES through JsonConverter, or ``binary.handling.mode=base64``), in
url-safe base64 or in hex for bytea; a one-element list for text, json and
bytea arrays; one element per placeholder byte for integer arrays; the
name-based UUID of its bytes for uuid arrays; ``{placeholder: placeholder}``
for hstore. Newer connectors also declare the exact form as a schema parameter
(``__debezium.unavailable.value.placeholder``); when it is there it decides.

Matching is done on the raw JSON value, before decoding, so a placeholder can
never be mistaken for (or fail as) a value of the column's type.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from functools import cache, cached_property
from typing import Any

__all__ = [
    "DECLARED_PLACEHOLDER_PARAMETER",
    "PlaceholderMatcher",
    "declared_placeholder",
    "matcher",
]

DECLARED_PLACEHOLDER_PARAMETER = "__debezium.unavailable.value.placeholder"


def _java_name_uuid(data: bytes) -> str:
    # Java's UUID.nameUUIDFromBytes: MD5 of the bytes with version 3 and the IETF variant set.
    return str(uuid.UUID(bytes=hashlib.md5(data).digest(), version=3))


class PlaceholderMatcher:
    """Tells whether a raw JSON column value is the placeholder."""

    def __init__(self, placeholder: str) -> None:
        self.placeholder = placeholder
        self._bytes = placeholder.encode()

    @cached_property
    def _scalars(self) -> frozenset[str]:
        b = self._bytes
        return frozenset(
            {
                self.placeholder,
                base64.b64encode(b).decode(),
                base64.urlsafe_b64encode(b).decode(),
                b.hex(),
                json.dumps({self.placeholder: self.placeholder}),
                json.dumps({self.placeholder: self.placeholder}, separators=(",", ":")),
            }
        )

    @property
    def scalar_forms(self) -> frozenset[str]:
        """Every text form of the placeholder, for a text value whose column declares none."""
        return self._scalars

    @cached_property
    def _lists(self) -> tuple[list[Any], ...]:
        b = self._bytes
        return (
            [self.placeholder],
            [base64.b64encode(b).decode()],
            list(b),
            [_java_name_uuid(b)],
        )

    def matches(self, raw: Any, schema: dict[str, Any] | None = None) -> bool:
        """True if ``raw`` (a JSON value as parsed) is the placeholder for its column."""
        return self.matches_declared(raw, schema, _declared(schema))

    def matches_declared(
        self, raw: Any, schema: dict[str, Any] | None, declared: str | None
    ) -> bool:
        """:meth:`matches` with the schema's declared form (:func:`declared_placeholder`) given."""
        if declared is not None:
            return _serialize(schema, raw) == declared
        if isinstance(raw, str):
            return raw in self._scalars
        if isinstance(raw, list):
            return any(raw == form for form in self._lists)
        if isinstance(raw, dict):
            return raw == {self.placeholder: self.placeholder}
        return False


@cache
def matcher(placeholder: str) -> PlaceholderMatcher:
    """The matcher of ``placeholder``, built once: its forms are computed on first use."""
    return PlaceholderMatcher(placeholder)


def declared_placeholder(schema: dict[str, Any] | None) -> str | None:
    """The placeholder's exact form a column schema declares, if it declares one."""
    return _declared(schema)


def _declared(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    params = schema.get("parameters")
    if isinstance(params, dict):
        value = params.get(DECLARED_PLACEHOLDER_PARAMETER)
        return value if isinstance(value, str) else None
    return None


def _serialize(schema: dict[str, Any] | None, value: Any, nested: bool = False) -> str | None:
    """The connector's canonical text of a value, computed on the JSON form of the value.

    Strings and base64 bytes are the text itself at the top level and quoted
    (with ``\\`` and ``"`` escaped) inside arrays and maps; integers are their
    decimal digits.
    """
    if schema is None or value is None:
        return None
    kind = schema.get("type")
    if kind in ("string", "bytes"):
        if not isinstance(value, str):
            return None
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if nested else value
    if kind in ("int32", "int64"):
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "array" and isinstance(value, list):
        parts = [_serialize(schema.get("items"), v, nested=True) for v in value]
        return None if None in parts else "[" + ",".join(p for p in parts if p is not None) + "]"
    if kind == "map" and isinstance(value, dict):
        out = []
        for k, v in value.items():
            ks = _serialize(schema.get("keys"), k, nested=True)
            vs = _serialize(schema.get("values"), v, nested=True)
            if ks is None or vs is None:
                return None
            out.append(f"{ks}:{vs}")
        return "{" + ",".join(out) + "}"
    return None
