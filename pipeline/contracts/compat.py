"""Compatibility of a new schema with earlier versions, by Apache Avro's own checker.

The verdict is always ``avro.compatibility.ReaderWriterCompatibilityChecker``'s
(the Python port of the Java ``SchemaCompatibility`` the registry runs):
cdcflow adds no rules of its own. What it adds is the reading of the result:

* The checker merges its findings into one result whose messages and
  locations are unordered sets, so several problems cannot be told apart.
  :func:`_check_pair` records each finding as the checker makes it (it wraps
  the module's ``incompatible`` while it runs) and keeps those that made it
  into the final result.
* When the checker compares the branches of a union it calls itself without
  a location, so a finding deep in a schema is reported at ``/``. The
  subclass passes the union's location down.
* When a union has no branch that reads a record, the checker only says
  "reader union lacking writer type: RECORD"; the findings of its attempt at
  the record with the same name say why, and are reported instead.
* Aliases are qualified with their namespace first: the spec allows relative
  aliases, Java resolves them, the Python checker compares them as written.

Each finding becomes a :class:`~pipeline.contracts.report.Problem` with a
stable rule id, the field path, what changed (old -> new) and whom it breaks.
Changes of a logical type (a decimal's scale, a timestamp's unit) are
compatible for Avro and the registry, since the bytes still decode; they are
reported as warnings, because the decoded value means something else.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import avro.compatibility as avro_compat
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from pipeline.contracts.levels import Direction, Level
from pipeline.contracts.report import Problem, Report, Severity
from pipeline.contracts.schemafile import ParsedSchema, full_names

__all__ = ["Version", "check_compatibility", "describe", "is_compatible"]

# Avro's schema classes are walked by their type tag (record, union, ...), as
# Avro's own checker does; their attributes differ per class, so they are Any here.
AvroSchema = Any

IMPACT = {
    Direction.BACKWARD: "consumers on the new schema cannot read old events",
    Direction.FORWARD: "consumers on the old schema cannot read new events",
}

IMPACT_BOTH = "consumers on either schema cannot read the other's events"

_RECORDING = threading.Lock()


@dataclass(frozen=True)
class Version:
    """An earlier version of a schema and how to name it in a report (``main``, ``registry v3``)."""

    label: str
    schema: ParsedSchema


@dataclass(frozen=True)
class _Finding:
    kind: SchemaIncompatibilityType
    message: str
    location: tuple[str, ...]  # Avro's location tokens, without the root "/"

    @property
    def avro_location(self) -> str:
        return "/" + "/".join(self.location)


class _Checker(ReaderWriterCompatibilityChecker):
    """Avro's checker, with its verdicts unchanged; passes locations into union branches."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._at: list[list[str]] = []
        self.findings: list[_Finding] = []

    def get_compatibility(
        self,
        reader: AvroSchema,
        writer: AvroSchema,
        reference_token: str = ReaderWriterCompatibilityChecker.ROOT_REFERENCE_TOKEN,
        location: list[str] | None = None,
    ) -> SchemaCompatibilityResult:
        if location is None and self._at:
            # A union branch: Avro passes no location. Use the union's own.
            here = self._at[-1]
            return super().get_compatibility(reader, writer, here[-1], here[:-1])
        return super().get_compatibility(reader, writer, reference_token, location)

    def calculate_compatibility(
        self, reader: AvroSchema, writer: AvroSchema, location: list[str]
    ) -> SchemaCompatibilityResult:
        self._at.append(location)
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._at.pop()


@contextmanager
def _recording(checker: _Checker) -> Iterator[None]:
    # The module-level helper every finding goes through; wrapped only while
    # this checker runs, under a lock, and always restored.
    original = avro_compat.incompatible

    def record(
        incompat_type: SchemaIncompatibilityType, message: str, location: list[str]
    ) -> SchemaCompatibilityResult:
        checker.findings.append(_Finding(incompat_type, message, tuple(location[1:])))
        return original(incompat_type, message, location)

    with _RECORDING:
        avro_compat.incompatible = record
        try:
            yield
        finally:
            avro_compat.incompatible = original


def _parse_for_check(schema: ParsedSchema) -> AvroSchema:
    return avro.schema.make_avsc_object(full_names(schema.data))


def _check_pair(reader: AvroSchema, writer: AvroSchema) -> tuple[bool, list[_Finding]]:
    checker = _Checker()
    with _recording(checker):
        result = checker.get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return True, []
    kept = [
        f
        for f in checker.findings
        if f.avro_location in result.locations and f.message in result.messages
    ]
    return False, _explain_unions(_unique(kept), checker.findings)


def _unique(findings: list[_Finding]) -> list[_Finding]:
    seen: set[_Finding] = set()
    return [f for f in findings if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]


def _explain_unions(kept: list[_Finding], everything: list[_Finding]) -> list[_Finding]:
    """Replace "union lacks a RECORD/ARRAY/MAP branch" by the reasons found inside it."""
    out: list[_Finding] = []
    for finding in kept:
        missing = finding.message.rsplit(" ", 1)[-1].lower()
        if finding.kind is SchemaIncompatibilityType.missing_union_branch and missing in _COMPLEX:
            base = finding.location
            if base and base[-1].isdigit() and base[-2:-1] != ("fields",):
                base = base[:-1]  # the writer branch index
            inner = [
                f
                for f in everything
                if len(f.location) > len(base)
                and f.location[: len(base)] == base
                and f.location[len(base)]
                in ("fields", "symbols", "name", "size", "items", "values")
            ]
            if inner:
                out.extend(f for f in _unique(inner) if f not in out)
                continue
        out.append(finding)
    return out


_COMPLEX = frozenset({"record", "error", "array", "map", "enum", "fixed"})


def is_compatible(reader: ParsedSchema, writer: ParsedSchema) -> bool:
    """Whether ``reader`` can read what ``writer`` wrote (Apache Avro's verdict)."""
    return _check_pair(_parse_for_check(reader), _parse_for_check(writer))[0]


def check_compatibility(
    new: ParsedSchema,
    history: Sequence[Version],
    level: Level,
    *,
    file: str,
    subject: str | None = None,
) -> list[Problem]:
    """Check ``new`` against the earlier versions (oldest first) at ``level``.

    Non-transitive levels compare with the last version only, transitive ones
    with each. Returns one problem per finding (errors: Avro says incompatible)
    plus warnings for changed logical types; empty when ``new`` is compatible.
    """
    if level is Level.NONE or not history:
        return []
    targets = list(history) if level.transitive else [history[-1]]
    new_schema = _parse_for_check(new)
    problems: list[Problem] = []
    for version in targets:
        old_schema = _parse_for_check(version.schema)
        for direction in level.directions:
            reader, writer = (
                (new_schema, old_schema)
                if direction is Direction.BACKWARD
                else (old_schema, new_schema)
            )
            _, findings = _check_pair(reader, writer)
            drafts = [_translate(f, reader, writer, direction, new) for f in findings]
            problems.extend(
                d.with_context(
                    file=file, level=level.value, against=version.label, subject=subject, new=new
                )
                for d in _merge_branches(drafts)
            )
        problems.extend(
            p.with_context(
                file=file, level=level.value, against=version.label, subject=subject, new=new
            )
            for p in _logical_changes(old_schema, new_schema, new)
        )
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per finding: the same change breaking both directions says so once."""
    impacts: dict[tuple[object, ...], set[str]] = {}
    for p in problems:
        impacts.setdefault(_sans_impact(p), set()).add(p.impact)
    merged: list[Problem] = []
    for p in problems:
        if impacts[_sans_impact(p)] >= set(IMPACT.values()):
            p = replace(p, impact=IMPACT_BOTH)
        merged.append(p)
    report = Report()
    report.extend(merged)
    return report.problems


def _sans_impact(p: Problem) -> tuple[object, ...]:
    return (p.rule, p.file, p.path, p.message, p.level, p.against)


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


def _translate(
    finding: _Finding,
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


def _merge_branches(drafts: list[_Draft]) -> list[_Draft]:
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


def _logical_changes(old: AvroSchema, new: AvroSchema, parsed_new: ParsedSchema) -> list[_Draft]:
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
