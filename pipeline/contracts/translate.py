"""Avro's findings read for a reviewer: the field path, old -> new type, whom it breaks.

Used by :mod:`.compat`; also reports logical-type changes that Avro accepts
(a decimal's scale, a timestamp's unit) but that change what a value means.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

import avro.compatibility as avro_compat
from avro.compatibility import SchemaIncompatibilityType

from pipeline.contracts.levels import Direction
from pipeline.contracts.report import Problem, Severity
from pipeline.contracts.schemafile import ParsedSchema

__all__ = [
    "IMPACT",
    "IMPACT_BOTH",
    "AvroSchema",
    "Finding",
    "describe",
    "logical_changes",
    "merge_branches",
    "translate",
]

# Avro's schema classes are walked by their type tag (record, union, ...), as
# Avro's own checker does; their attributes differ per class, so they are Any here.
AvroSchema = Any

IMPACT = {
    Direction.BACKWARD: "consumers on the new schema cannot read old events",
    Direction.FORWARD: "consumers on the old schema cannot read new events",
}

IMPACT_BOTH = "consumers on either schema cannot read the other's events"


@dataclass(frozen=True)
class Finding:
    """One finding of Avro's checker, as it made it."""

    kind: SchemaIncompatibilityType
    message: str
    location: tuple[str, ...]  # Avro's location tokens, without the root "/"

    @property
    def avro_location(self) -> str:
        return "/" + "/".join(self.location)


# -- describing types ------------------------------------------------------


def describe(schema: AvroSchema) -> str:
    """A short human form: ``bytes(decimal 12,2)``, ``array<long>``, ``union(null, string)``."""
    if schema is None:
        return "nothing"
    props = schema.props
    logical = props.get("logicalType")
    kind = schema.type
    if logical == "decimal":
        return f"{kind}(decimal {props.get('precision')},{props.get('scale', 0)})"
    if logical:
        return f"{kind}({logical})"
    if kind == "array":
        return f"array<{describe(schema.items)}>"
    if kind == "map":
        return f"map<{describe(schema.values)}>"
    if kind == "union":
        return "union(" + ", ".join(describe(s) for s in schema.schemas) + ")"
    if kind in ("record", "enum", "fixed", "error"):
        return f"{kind} {schema.fullname}"
    return str(kind)


# -- walking a location ----------------------------------------------------


@dataclass
class _Place:
    path: list[str]
    reader: AvroSchema
    writer: AvroSchema
    reader_field: Any = None
    writer_field: Any = None
    json_path: tuple[str | int, ...] = ()


def _branch(schema: AvroSchema, kind: str, name: str | None = None) -> AvroSchema:
    """``schema`` itself, or its union branch of type ``kind`` (and full name ``name``)."""
    if schema is None or schema.type != "union":
        return schema
    candidates = [s for s in schema.schemas if s.type == kind]
    if name:
        named = [s for s in candidates if getattr(s, "name", None) == name.rpartition(".")[2]]
        candidates = named or candidates
    return candidates[0] if candidates else None


def _walk(
    reader: AvroSchema,
    writer: AvroSchema,
    tokens: tuple[str, ...],
    root: str | None = None,
) -> _Place:
    """Follow Avro's location tokens through the reader and, in step, the writer.

    Field paths are named from ``root`` (the new schema's name, whichever side reads).
    """
    name = root or str(getattr(reader, "name", reader.type))
    place = _Place(path=[name], reader=reader, writer=writer)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "fields" and i + 1 < len(tokens):
            record = _branch(place.reader, "record")
            index = int(tokens[i + 1])
            if record is None or index >= len(record.fields):
                break
            field = record.fields[index]
            other = _branch(place.writer, "record", getattr(record, "fullname", None))
            place.reader_field = field
            place.writer_field = (
                avro_compat.lookup_writer_field(other, field)
                if other is not None and other.type == "record"
                else None
            )
            place.path.append(field.name)
            place.reader, place.writer = None, None
            i += 2
            continue
        if token == "type" and place.reader_field is not None:
            place.reader = place.reader_field.type
            place.writer = place.writer_field.type if place.writer_field else None
        elif token in ("items", "values"):
            kind = "array" if token == "items" else "map"
            reader_side, writer_side = _branch(place.reader, kind), _branch(place.writer, kind)
            place.reader = getattr(reader_side, token, None)
            place.writer = getattr(writer_side, token, None)
            place.path[-1] += "[]" if token == "items" else "{}"
        elif token.isdigit():
            pass  # the index of the writer union's branch: described with the union
        else:
            break  # "symbols", "name", "size": attributes of where we are
        i += 1
    return place


def _named_path(path: list[str]) -> str:
    return ".".join(path)


# -- translating -----------------------------------------------------------


def _old_new(place: _Place, direction: Direction) -> tuple[AvroSchema, AvroSchema]:
    """(old, new) types at ``place``: BACKWARD reads old with new, FORWARD new with old."""
    if direction is Direction.BACKWARD:
        return place.writer, place.reader
    return place.reader, place.writer


@dataclass(frozen=True)
class _Draft:
    rule: str
    message: str
    path: str
    impact: str
    avro: str
    json_path: tuple[str | int, ...]
    hint: str | None = None

    def with_context(
        self, *, file: str, level: str, against: str, subject: str | None, new: ParsedSchema
    ) -> Problem:
        return Problem(
            rule=self.rule,
            file=file,
            message=self.message,
            path=self.path,
            impact=self.impact,
            severity=Severity.WARNING if self.rule == "logical-type-changed" else Severity.ERROR,
            level=level,
            against=against,
            subject=subject,
            avro=self.avro,
            hint=self.hint,
            line=new.line_of(self.json_path),
        )


def translate(
    finding: Finding,
    reader: AvroSchema,
    writer: AvroSchema,
    direction: Direction,
    new: ParsedSchema,
) -> _Draft:
    place = _walk(reader, writer, finding.location, str(getattr(new.schema, "name", "")))
    old, new_type = _old_new(place, direction)
    path = _named_path(place.path)
    kind = finding.kind
    rule, message, hint = "type-changed", f"{describe(old)} -> {describe(new_type)}", None
    backward = direction is Direction.BACKWARD

    missing_field = kind is SchemaIncompatibilityType.reader_field_missing_default_value or (
        place.reader_field is not None and place.writer_field is None
    )
    if missing_field and place.reader_field is not None:
        field_type = describe(place.reader_field.type)
        if backward:
            rule, message = (
                "field-added-without-default",
                f"field added without a default ({field_type})",
            )
            renamed = _rename_candidate(reader, writer, finding.location, place.reader_field)
            hint = (
                f'if it was renamed from \'{renamed}\', add "aliases": ["{renamed}"]; '
                "either way give it a default"
                if renamed
                else "give the field a default (in the model: a default value, or make it Optional)"
            )
        else:
            rule, message = (
                "field-removed-without-default",
                f"field removed ({field_type}), and the old schema has no default for it",
            )
            hint = "keep the field, or first release a version that gives it a default"
    elif kind is SchemaIncompatibilityType.missing_enum_symbols:
        reader_enum, writer_enum = _branch(place.reader, "enum"), _branch(place.writer, "enum")
        symbols = sorted(
            set(getattr(writer_enum, "symbols", [])) - set(getattr(reader_enum, "symbols", []))
        )
        listed = ", ".join(symbols) or finding.message
        if backward:
            rule = "enum-symbol-removed"
            message = f"enum symbols removed: {listed}; the new enum has no default symbol"
            hint = "keep the symbols, or give the enum a default symbol"
        else:
            rule = "enum-symbol-added"
            message = f"enum symbols added: {listed}; the old enum has no default symbol"
            hint = "an enum that may grow needs a default symbol from its first version"
    elif kind is SchemaIncompatibilityType.missing_union_branch:
        missing = finding.message.rsplit(" ", 1)[-1].lower()
        base = f"{describe(old)} -> {describe(new_type)}"
        if backward:
            rule, message = "union-branch-removed", f"{base}: no branch for {missing} any more"
        else:
            rule, message = "union-branch-added", f"{base}: new branch {missing}"
    elif kind is SchemaIncompatibilityType.name_mismatch:
        named_writer = place.writer or writer
        named_reader = _branch(place.reader or reader, named_writer.type) or reader
        if named_writer.type == "union":
            named_writer = _branch(named_writer, named_reader.type) or named_writer
        old_n, new_n = (named_writer, named_reader) if backward else (named_reader, named_writer)
        old_name, new_name = getattr(old_n, "fullname", "?"), getattr(new_n, "fullname", "?")
        rule = "name-changed"
        message = f"{old_n.type if old_n else 'type'} {old_name} renamed to {new_name}"
        hint = (
            f'add "aliases": ["{old_name}"] to {new_name}'
            if backward
            else "consumers on the old schema cannot know the new name: keep the name"
        )
    elif kind is SchemaIncompatibilityType.fixed_size_mismatch:
        rule = "fixed-size-changed"
        message = f"fixed size {getattr(old, 'size', '?')} -> {getattr(new_type, 'size', '?')}"
    elif kind is SchemaIncompatibilityType.type_mismatch:
        detail = finding.message
        reader_t, writer_t = _mismatch_types(detail)
        described = {_base_type(old), _base_type(new_type)}
        if reader_t and writer_t and not {reader_t, writer_t} <= described:
            side = "old" if backward else "new"
            message += f" ({writer_t} in {side} events cannot be read as {reader_t})"
    return _Draft(
        rule=rule,
        message=message,
        path=path,
        impact=IMPACT[direction],
        avro=kind.name.upper(),
        json_path=_json_location(new, place.path),
        hint=hint,
    )


_BRANCH_DETAIL = re.compile(
    r"^(?P<change>.*) \((?P<types>.+) in (?P<side>old|new) events "
    r"cannot be read as (?P<reader>.+)\)$"
)


def merge_branches(drafts: list[_Draft]) -> list[_Draft]:
    """One line for the union branches one change breaks: "(string, long in new events ...)"."""
    out: list[_Draft] = []
    merged: dict[tuple[str, str, str, str, str, str], int] = {}
    for draft in drafts:
        match = _BRANCH_DETAIL.match(draft.message)
        if match is None:
            out.append(draft)
            continue
        key = (
            draft.rule,
            draft.path,
            draft.impact,
            match["change"],
            match["side"],
            match["reader"],
        )
        if key not in merged:
            merged[key] = len(out)
            out.append(draft)
            continue
        known = _BRANCH_DETAIL.match(out[merged[key]].message)
        assert known is not None  # it matched when it was added
        types = f"{known['types']}, {match['types']}"
        message = (
            f"{known['change']} ({types} in {known['side']} events "
            f"cannot be read as {known['reader']})"
        )
        out[merged[key]] = replace(out[merged[key]], message=message)
    return out


def _base_type(schema: AvroSchema) -> str:
    return describe(schema).split(" ")[0].split("(")[0].split("<")[0]


def _mismatch_types(message: str) -> tuple[str | None, str | None]:
    # Avro's text: "reader type: X not compatible with writer type: Y"
    try:
        head, tail = message.split(" not compatible with writer type: ")
        return head.rsplit(" ", 1)[-1], tail.strip()
    except ValueError:
        return None, None


def _rename_candidate(
    reader: AvroSchema,
    writer: AvroSchema,
    location: tuple[str, ...],
    field: Any,
) -> str | None:
    """A writer field the reader does not have, of the same type: probably the old name."""
    record_location = location[:-2]
    place = _walk(reader, writer, record_location) if record_location else None
    reader_record = (
        _branch(place.reader if place else reader, "record") if place and place.reader else reader
    )
    writer_record = (
        _branch(place.writer if place else writer, "record") if place and place.writer else writer
    )
    if writer_record is None or reader_record is None or writer_record.type != "record":
        return None
    known = {f.name for f in reader_record.fields} | {
        a for f in reader_record.fields for a in (f.props.get("aliases") or [])
    }
    same = [
        f.name
        for f in writer_record.fields
        if f.name not in known and describe(f.type) == describe(field.type)
    ]
    return same[0] if len(same) == 1 else None


def _json_location(schema: ParsedSchema, names: list[str]) -> tuple[str | int, ...]:
    """The JSON path of a field path (``Order.lines[].price``) in a schema document."""
    node: Any = schema.data
    path: tuple[str | int, ...] = ()
    for name in names[1:]:
        bare, containers = _split_containers(name)
        record, prefix = _container_in(node, "record")
        if record is None:
            break
        fields = record.get("fields", [])
        index = next(
            (i for i, f in enumerate(fields) if isinstance(f, dict) and f.get("name") == bare), None
        )
        if index is None:
            break
        path = (*path, *prefix, "fields", index, "type")
        node = fields[index].get("type")
        for kind in containers:
            inner, inner_prefix = _container_in(node, kind)
            if inner is None:
                break
            attr = "items" if kind == "array" else "values"
            path, node = (*path, *inner_prefix, attr), inner.get(attr)
    return path


def _split_containers(name: str) -> tuple[str, list[str]]:
    """``lines[]{}`` -> (``lines``, [array, map]): the field and the containers below it."""
    containers: list[str] = []
    while name.endswith(("[]", "{}")):
        containers.insert(0, "array" if name.endswith("[]") else "map")
        name = name[:-2]
    return name, containers


def _container_in(node: Any, kind: str) -> tuple[dict[str, Any] | None, tuple[str | int, ...]]:
    if isinstance(node, dict) and node.get("type") == kind:
        return node, ()
    if isinstance(node, list):
        for index, branch in enumerate(node):
            if isinstance(branch, dict) and branch.get("type") == kind:
                return branch, (index,)
    return None, ()


# -- logical types ---------------------------------------------------------


def logical_changes(old: AvroSchema, new: AvroSchema, parsed_new: ParsedSchema) -> list[_Draft]:
    """Fields whose Avro type stayed but whose logical type changed (compatible, not the same)."""
    out: list[_Draft] = []
    seen: set[int] = set()

    def walk(o: AvroSchema, n: AvroSchema, path: list[str]) -> None:
        if o is None or n is None or id(n) in seen:
            return
        if n.type == "record":
            seen.add(id(n))
            o_record = _branch(o, "record")
            if o_record is None or o_record.type != "record":
                return
            for field in n.fields:
                old_field = avro_compat.lookup_writer_field(o_record, field)
                if old_field is not None:
                    walk(old_field.type, field.type, [*path, field.name])
            return
        if n.type == "union" and o.type == "union":
            for branch in n.schemas:
                match = next((b for b in o.schemas if _base_type(b) == _base_type(branch)), None)
                walk(match, branch, path)
            return
        if n.type in ("array", "map") and o.type == n.type:
            attr = "items" if n.type == "array" else "values"
            suffix = "[]" if n.type == "array" else "{}"
            walk(getattr(o, attr), getattr(n, attr), [*path[:-1], path[-1] + suffix])
            return
        readable = (
            o.type == n.type or (o.type, n.type) in _PROMOTIONS or (n.type, o.type) in _PROMOTIONS
        )
        if readable and _logical(o) != _logical(n) and not _only_uuid(o, n):
            out.append(
                _Draft(
                    rule="logical-type-changed",
                    message=(
                        f"{describe(o)} -> {describe(n)}: Avro reads one as the other, "
                        "but the value means something else"
                    ),
                    path=".".join(path),
                    impact="consumers on either schema misread the other's events",
                    avro="",
                    json_path=_json_location(parsed_new, path),
                    hint="add a new field with the new logical type and keep the old one",
                )
            )

    walk(old, new, [str(getattr(new, "name", new.type))])
    return out


# Avro's promotions (writer type, reader type): the encodings a reader accepts.
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


def _only_uuid(old: AvroSchema, new: AvroSchema) -> bool:
    # A uuid is a string either way; adding or dropping the annotation changes no value.
    return {old.props.get("logicalType"), new.props.get("logicalType")} <= {None, "uuid"}


def _logical(schema: AvroSchema) -> str:
    props = schema.props
    return json.dumps(
        {
            k: props.get(k)
            for k in ("logicalType", "precision", "scale")
            if props.get(k) is not None
        },
        sort_keys=True,
    )
