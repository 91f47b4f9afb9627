"""Reading ``.avsc`` text: JSON and Avro errors with their file, line and column.

Apache Avro's Python parser says *what* is wrong ("Type property "nosuch" not a
valid Avro schema") but not *where*; a contract file can be hundreds of lines.
:func:`parse_schema` finds the innermost part of the document the parser
refuses and reports its line, column and JSON path. It also checks field
defaults, which the Python parser accepts unchecked but the Java parser (and
with it the registry) refuses: a default must fit its field's type, and for a
union its first branch.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.errors
import avro.name
import avro.schema

from pipeline.errors import SchemaContractError

__all__ = [
    "ParsedSchema",
    "full_names",
    "json_path",
    "line_of",
    "parse_schema",
    "read_schema_file",
    "same_schema",
]

JsonPath = tuple[str | int, ...]
# What a check found: where in the JSON document, and what is wrong there.
Found = tuple[JsonPath, str]

_WS = re.compile(r"[ \t\n\r]*")
_AVRO_ERRORS = (avro.errors.AvroException, TypeError, ValueError, AttributeError, KeyError)


@dataclass(frozen=True)
class ParsedSchema:
    """One schema text, parsed: where it came from, its JSON and Avro's object for it."""

    source: str
    text: str
    data: Any
    schema: avro.schema.Schema

    @property
    def full_name(self) -> str:
        return str(getattr(self.schema, "fullname", self.schema.type))

    def line_of(self, path: JsonPath) -> int:
        """The line of ``path`` in the text (1 for the document itself)."""
        return line_of(self.text, path)


def read_schema_file(path: Path, display: str | None = None) -> ParsedSchema:
    """Read and parse one ``.avsc`` file.

    Raises:
        SchemaContractError: the file is unreadable, not JSON, or not a valid
            Avro schema; the message names the file, line and column.
    """
    source = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaContractError(f"{source}: cannot read: {exc.strerror}") from exc
    return parse_schema(text, source)


def parse_schema(text: str, source: str) -> ParsedSchema:
    """Parse schema text with Apache Avro's parser, and check its defaults.

    Raises:
        SchemaContractError: invalid JSON (with line and column), a schema Avro
            refuses (with the line, column and JSON path of the innermost part
            it refuses) or a default that does not fit its type.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaContractError(
            f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="an .avsc file is one JSON document",
        ) from exc
    try:
        schema = avro.schema.make_avsc_object(data, avro.name.Names())
    except _AVRO_ERRORS as exc:
        where, message = _locate(data, (), avro.name.Names()) or ((), str(exc))
        raise SchemaContractError(
            f"{source}:{_position(text, where)}: invalid Avro schema at {json_path(where)}: "
            f"{message}"
        ) from exc
    problem = _check_defaults(data, ())
    if problem:
        where, message = problem
        raise SchemaContractError(
            f"{source}:{_position(text, where)}: invalid default at {json_path(where)}: {message}",
            hint="a default must fit the field's type; for a union, the union's first branch",
        )
    return ParsedSchema(source=source, text=text, data=data, schema=schema)


def json_path(path: JsonPath) -> str:
    """``("fields", 2, "type")`` -> ``$.fields[2].type``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_COMPLEX = _NAMED | {"array", "map"}


def full_names(data: Any, namespace: str | None = None) -> Any:
    """A copy of schema JSON with every name, reference and alias written in full.

    ``namespace`` keys are dropped, since every name carries its own. Two uses:

    * Aliases: the Avro specification lets an alias be relative to the
      namespace of the type it belongs to, and Java's parser resolves it so;
      the Python checker compares aliases with full names as written.
      Qualified, both read a schema the same way. (Field aliases are plain
      names and stay.)
    * Comparing: a registry may store a schema with redundant namespaces
      dropped (Apicurio does); written in full, equal documents are equal
      schemas (see :func:`same_schema`).
    """
    if isinstance(data, str):
        if data in _PRIMITIVES or "." in data or not namespace:
            return data
        return f"{namespace}.{data}"
    if isinstance(data, list):
        return [full_names(item, namespace) for item in data]
    if not isinstance(data, dict):
        return data
    out = dict(data)
    kind = out.get("type")
    if kind in _NAMED and isinstance(out.get("name"), str):
        name = out["name"]
        space = name.rpartition(".")[0] if "." in name else out.get("namespace", namespace)
        namespace = space or None
        out["name"] = name if "." in name or not namespace else f"{namespace}.{name}"
        out.pop("namespace", None)
        if isinstance(out.get("aliases"), list):
            out["aliases"] = [full_names(a, namespace) for a in out["aliases"]]
    if kind not in _COMPLEX:
        # A field's type, or a primitive with a logical type ({"type": "long", ...}).
        out["type"] = full_names(kind, namespace)
    for key in ("items", "values"):
        if key in out:
            out[key] = full_names(out[key], namespace)
    if isinstance(out.get("fields"), list):
        out["fields"] = [
            {**f, "type": full_names(f.get("type"), namespace)} if isinstance(f, dict) else f
            for f in out["fields"]
        ]
    return out


def same_schema(a: Any, b: Any) -> bool:
    """Whether two schema documents say the same, however their names are written.

    Docs, defaults and aliases count (unlike Avro's parsing canonical form):
    a changed default is a new version.
    """
    return bool(full_names(a) == full_names(b))


# -- positions -------------------------------------------------------------


def _offsets(text: str) -> dict[JsonPath, int]:
    """The offset at which each value of a valid JSON document starts, by path."""
    out: dict[JsonPath, int] = {}
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        match = _WS.match(text, i)
        return match.end() if match else i

    def value(i: int, path: JsonPath) -> int:
        i = skip(i)
        out[path] = i
        opener = text[i]
        if opener not in "{[":
            return decoder.raw_decode(text, i)[1]
        closer, index = ("}" if opener == "{" else "]"), 0
        i = skip(i + 1)
        if text[i] == closer:
            return i + 1
        while True:
            if opener == "{":
                key, i = json.decoder.scanstring(text, skip(i) + 1)  # type: ignore[attr-defined]
                i = value(skip(i) + 1, (*path, key))  # past the ':'
            else:
                i = value(i, (*path, index))
                index += 1
            i = skip(i)
            if text[i] == closer:
                return i + 1
            i += 1  # the ','

    value(0, ())
    return out


def line_of(text: str, path: JsonPath) -> int:
    """The 1-based line of the value at ``path`` (or of its nearest existing parent)."""
    offsets = _offsets(text)
    while path and path not in offsets:
        path = path[:-1]
    return text.count("\n", 0, offsets.get(path, 0)) + 1


def _position(text: str, path: JsonPath) -> str:
    offsets = _offsets(text)
    while path and path not in offsets:
        path = path[:-1]
    offset = offsets.get(path, 0)
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    return f"{line}:{column}"


# -- finding what Avro refuses ---------------------------------------------


def _first(
    items: list[Any], path: JsonPath, probe: Callable[[Any, JsonPath], Found | None]
) -> Found | None:
    """What ``probe`` finds first in the items of a JSON list at ``path``, in order; None if
    nothing."""
    return next(
        (found for index, item in enumerate(items) if (found := probe(item, (*path, index)))),
        None,
    )


def _locate(node: Any, path: JsonPath, names: avro.name.Names) -> tuple[JsonPath, str] | None:
    """The innermost (path, message) Avro refuses in ``node``; None if it parses.

    ``names`` holds the named types defined before ``node`` in document order;
    what ``node`` defines is added to it when it parses, as Avro's parser would.
    """
    trial = copy.deepcopy(names)
    try:
        avro.schema.make_avsc_object(node, trial)
    except _AVRO_ERRORS as exc:
        return _locate_inside(node, path, copy.deepcopy(names)) or (path, str(exc))
    names.names.update(trial.names)
    return None


def _locate_inside(
    node: Any, path: JsonPath, names: avro.name.Names
) -> tuple[JsonPath, str] | None:
    if isinstance(node, list):
        return _first(node, path, lambda branch, at: _locate(branch, at, names))
    if not isinstance(node, dict):
        return None
    kind = node.get("type")
    if kind == "array":
        return _locate(node.get("items"), (*path, "items"), names)
    if kind == "map":
        return _locate(node.get("values"), (*path, "values"), names)
    if isinstance(kind, dict | list):
        return _locate(kind, (*path, "type"), names)
    if kind in ("record", "error") and isinstance(node.get("fields"), list):
        return _locate_fields(node, path, names)
    return None


def _locate_fields(
    node: dict[str, Any], path: JsonPath, names: avro.name.Names
) -> tuple[JsonPath, str] | None:
    name = node.get("name")
    if not isinstance(name, str):
        return None
    space = (
        name.rpartition(".")[0] if "." in name else node.get("namespace", names.default_namespace)
    )
    # A stand-in for the record itself, so that its fields may refer to it.
    stub = avro.schema.make_avsc_object(
        {"type": "record", "name": name, "namespace": space, "fields": []}, avro.name.Names()
    )
    try:
        names.add_name(name, space, stub)  # type: ignore[arg-type]
    except _AVRO_ERRORS as exc:
        return ((*path, "name"), str(exc))
    outer, names.default_namespace = names.default_namespace, space or None
    try:
        for index, field in enumerate(node["fields"]):
            where: JsonPath = (*path, "fields", index)
            if not isinstance(field, dict) or "type" not in field:
                return (where, "a field is an object with a 'name' and a 'type'")
            # The probe below re-defines what the field's type defines: give it
            # the names as they were before the field.
            trial = copy.deepcopy(names)
            found = _locate(field["type"], (*where, "type"), names)
            if found:
                return found
            probe = {"type": "record", "name": "cdcflow_probe", "fields": [field]}
            trial.names.pop(f"{space}.cdcflow_probe" if space else "cdcflow_probe", None)
            try:
                avro.schema.make_avsc_object(probe, trial)
            except _AVRO_ERRORS as exc:
                return (where, str(exc))
    finally:
        names.default_namespace = outer
    return None


# -- defaults --------------------------------------------------------------


def _check_defaults(node: Any, path: JsonPath) -> tuple[JsonPath, str] | None:
    """The first field default (in document order) that does not fit its type."""
    named: dict[str, Any] = {}
    _collect_named(node, None, named)
    return _walk_defaults(node, path, named)


def _collect_named(node: Any, space: str | None, named: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_named(item, space, named)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in ("record", "error", "enum", "fixed") and isinstance(
        node.get("name"), str
    ):
        name = node["name"]
        space = name.rpartition(".")[0] if "." in name else node.get("namespace", space)
        full = name if "." in name else (f"{space}.{name}" if space else name)
        named[full] = node
        named.setdefault(name, node)  # short references within the same namespace
    for key in ("type", "items", "values"):
        _collect_named(node.get(key), space, named)
    for field in node.get("fields") or []:
        _collect_named(field, space, named)


def _walk_defaults(node: Any, path: JsonPath, named: dict[str, Any]) -> tuple[JsonPath, str] | None:
    if isinstance(node, list):
        return _first(node, path, lambda item, at: _walk_defaults(item, at, named))
    if not isinstance(node, dict):
        return None
    for key in ("type", "items", "values"):
        if key in node:
            found = _walk_defaults(node[key], (*path, key), named)
            if found:
                return found
    for index, field in enumerate(node.get("fields") or []):
        if not isinstance(field, dict):
            continue
        where: JsonPath = (*path, "fields", index)
        if "default" in field and not _fits(field.get("type"), field["default"], named):
            return (
                (*where, "default"),
                f"{json.dumps(field['default'])} is not a {_brief(field.get('type'))}",
            )
        found = _walk_defaults(field.get("type"), (*where, "type"), named)
        if found:
            return found
    return None


def _brief(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return f"{_brief(avro_type[0])} (the union's first branch)" if avro_type else "union"
    if isinstance(avro_type, dict):
        return str(avro_type.get("type"))
    return str(avro_type)


def _fits(avro_type: Any, value: Any, named: dict[str, Any]) -> bool:
    """Whether a JSON default is valid for ``avro_type`` (the spec's JSON encoding)."""
    if isinstance(avro_type, str) and avro_type in named:
        avro_type = named[avro_type]
    if isinstance(avro_type, list):
        return bool(avro_type) and _fits(avro_type[0], value, named)
    kind = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    if isinstance(kind, dict | list):
        return _fits(kind, value, named)
    checks: dict[str, Callable[[], bool]] = {
        "null": lambda: value is None,
        "boolean": lambda: isinstance(value, bool),
        "int": lambda: _is_int(value) and -(2**31) <= value < 2**31,
        "long": lambda: _is_int(value) and -(2**63) <= value < 2**63,
        "float": lambda: _is_number(value),
        "double": lambda: _is_number(value),
        "string": lambda: isinstance(value, str),
        "bytes": lambda: isinstance(value, str),
        "fixed": lambda: isinstance(value, str) and len(value) == avro_type.get("size"),
        "enum": lambda: isinstance(value, str) and value in avro_type.get("symbols", []),
        "array": lambda: (
            isinstance(value, list)
            and all(_fits(avro_type.get("items"), item, named) for item in value)
        ),
        "map": lambda: (
            isinstance(value, dict)
            and all(_fits(avro_type.get("values"), item, named) for item in value.values())
        ),
        "record": lambda: (
            isinstance(value, dict)
            and all(
                (f["name"] in value and _fits(f.get("type"), value[f["name"]], named))
                or "default" in f
                for f in avro_type.get("fields", [])
                if isinstance(f, dict) and "name" in f
            )
        ),
    }
    check = checks.get("record" if kind == "error" else str(kind))
    # Unknown names were already refused by the parser; do not refuse twice.
    return check() if check else True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
