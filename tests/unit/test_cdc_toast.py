"""The unavailable-value placeholder (unchanged TOAST) never reaches a mapping as a value."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest

from pipeline.cdc import UNCHANGED, Change, DecoderOptions, decode_record
from pipeline.cdc.toast import DECLARED_PLACEHOLDER_PARAMETER
from tests.unit import debezium as dbz

PH = dbz.PLACEHOLDER
PH_BYTES = PH.encode()
PH_UUID = str(uuid.UUID(bytes=hashlib.md5(PH_BYTES).digest(), version=3))

DOC_COLUMNS = [
    dbz.int64("id"),
    dbz.text("body", optional=True),
    dbz.col("blob", "bytes", True),
    dbz.json_col("meta"),
    dbz.col("tags", "array", True) | {"items": {"type": "string", "optional": True}},
    dbz.col("scores", "array", True) | {"items": {"type": "int32", "optional": True}},
    dbz.col("big", "array", True) | {"items": {"type": "int64", "optional": True}},
    dbz.col("refs", "array", True)
    | {"items": {"type": "string", "optional": True, "name": "io.debezium.data.Uuid"}},
    dbz.col("attrs", "map", True)
    | {"keys": {"type": "string"}, "values": {"type": "string", "optional": True}},
]
FULL_ROW: dict[str, Any] = {
    "id": 1,
    "body": "a long text",
    "blob": dbz.b64(b"\x01\x02"),
    "meta": '{"k": 1}',
    "tags": ["x"],
    "scores": [1, 2],
    "big": [3],
    "refs": ["00000000-0000-0000-0000-000000000001"],
    "attrs": {"a": "b"},
}
PLACEHOLDERS: dict[str, Any] = {
    "body": PH,
    "blob": dbz.b64(PH_BYTES),  # bytea through JsonConverter: the placeholder's bytes in base64
    "meta": PH,
    "tags": [PH],
    "scores": list(PH_BYTES),  # integer arrays: one element per placeholder byte
    "big": list(PH_BYTES),
    "refs": [PH_UUID],  # uuid arrays: the name-based UUID of the placeholder bytes
    "attrs": {PH: PH},  # hstore.handling.mode=map
}


def decode(
    op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, **kw: Any
) -> Change:
    options = kw.pop("options", None)
    columns = kw.pop("columns", DOC_COLUMNS)
    key, value = dbz.record(
        op, "docs", before=before, after=after, columns=columns, key_fields=[dbz.int64("id")], **kw
    )
    result = decode_record(
        value, key=key, topic=dbz.topic("docs"), **({"options": options} if options else {})
    )
    assert isinstance(result, Change)
    return result


def test_every_shape_is_filled_from_the_before_image() -> None:
    after = {**FULL_ROW, **PLACEHOLDERS}
    change = decode("u", FULL_ROW, after)
    assert change.after is not None
    assert change.after["body"] == "a long text"
    assert change.after["blob"] == b"\x01\x02"
    assert change.after["meta"] == {"k": 1}
    assert change.after["tags"] == ["x"]
    assert change.after["scores"] == [1, 2]
    assert change.after["refs"] == [uuid.UUID(int=1)]
    assert change.after["attrs"] == {"a": "b"}
    assert change.toasted == frozenset(PLACEHOLDERS)


def test_without_a_before_image_every_shape_is_unchanged() -> None:
    change = decode("u", None, {**FULL_ROW, **PLACEHOLDERS})
    assert change.after is not None
    for column in PLACEHOLDERS:
        assert change.after[column] is UNCHANGED, column
    assert change.after["id"] == 1
    assert repr(UNCHANGED) == "UNCHANGED"


def test_before_image_with_only_the_key_leaves_unchanged() -> None:
    change = decode("u", {"id": 1}, {**FULL_ROW, "body": PH})
    assert change.after is not None and change.after["body"] is UNCHANGED


@pytest.mark.parametrize(
    "form",
    [
        base64.urlsafe_b64encode(PH_BYTES).decode(),  # binary.handling.mode=base64-url-safe
        PH_BYTES.hex(),  # binary.handling.mode=hex
        json.dumps({PH: PH}),  # hstore.handling.mode=json
    ],
)
def test_string_forms_of_other_modes(form: str) -> None:
    change = decode("u", None, {**FULL_ROW, "body": form})
    assert change.after is not None and change.after["body"] is UNCHANGED


def test_placeholder_in_a_delete_before_image_is_unchanged() -> None:
    change = decode("d", {**FULL_ROW, "body": PH, "blob": dbz.b64(PH_BYTES)}, None)
    assert change.before is not None
    assert change.before["body"] is UNCHANGED and change.before["blob"] is UNCHANGED


def test_configured_placeholder() -> None:
    options = DecoderOptions(unavailable_value_placeholder="<toast>")
    change = decode(
        "u", None, {**FULL_ROW, "body": "<toast>", "tags": ["<toast>"]}, options=options
    )
    assert change.after is not None
    assert change.after["body"] is UNCHANGED and change.after["tags"] is UNCHANGED
    # the default placeholder is then an ordinary value
    plain = decode("u", None, {**FULL_ROW, "body": PH}, options=options)
    assert plain.after is not None and plain.after["body"] == PH


def test_declared_placeholder_parameter_decides() -> None:
    columns = [dbz.int64("id"), dbz.col("scores", "array", True) | {"items": {"type": "int32"}}]
    columns[1]["parameters"] = {DECLARED_PLACEHOLDER_PARAMETER: "[9,9]"}
    change = decode("u", None, {"id": 1, "scores": [9, 9]}, columns=columns)
    assert change.after is not None and change.after["scores"] is UNCHANGED
    # with a declared form, the undeclared shape is an ordinary value
    change = decode("u", None, {"id": 1, "scores": list(PH_BYTES)}, columns=columns)
    assert change.after is not None and change.after["scores"] == list(PH_BYTES)


def test_declared_placeholder_for_a_text_array_is_quoted() -> None:
    columns = [dbz.int64("id"), dbz.col("tags", "array", True) | {"items": {"type": "string"}}]
    columns[1]["parameters"] = {DECLARED_PLACEHOLDER_PARAMETER: f'["{PH}"]'}
    change = decode("u", None, {"id": 1, "tags": [PH]}, columns=columns)
    assert change.after is not None and change.after["tags"] is UNCHANGED


def test_ordinary_values_are_left_alone() -> None:
    change = decode("u", FULL_ROW, {**FULL_ROW, "body": PH + "!", "tags": [PH, "x"]})
    assert change.after is not None
    assert change.after["body"] == PH + "!" and change.after["tags"] == [PH, "x"]
    assert change.toasted == frozenset()


def test_schemaless_records_are_covered_too() -> None:
    change = decode("u", None, {**FULL_ROW, **PLACEHOLDERS}, with_schema=False)
    assert change.after is not None
    assert all(change.after[c] is UNCHANGED for c in PLACEHOLDERS)
