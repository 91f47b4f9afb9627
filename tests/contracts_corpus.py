"""Schema changes and what each compatibility level says about them.

Shared by ``tests/unit/test_contracts_corpus.py`` (cdcflow's verdicts and
report text, offline) and ``tests/integration/test_contracts_registry.py``
(the registry's verdicts, which must equal cdcflow's for every level).

Each case is a history of registered versions (oldest first) and a proposed
new version; ``ok`` lists the levels at which the proposed version is
accepted; ``report`` is cdcflow's report at FULL_TRANSITIVE (the strictest
level, so every finding shows), one line per problem, for the file
``Event.avsc`` and versions labelled v1, v2, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.contracts import (
    Level,
    Problem,
    Severity,
    Version,
    check_compatibility,
    parse_schema,
    render,
)

__all__ = ["ALL", "CASES", "FILE", "Case", "problems", "verdict"]

FILE = "Event.avsc"

B, BT = Level.BACKWARD, Level.BACKWARD_TRANSITIVE
F, FT = Level.FORWARD, Level.FORWARD_TRANSITIVE
FU, FUT = Level.FULL, Level.FULL_TRANSITIVE
N = Level.NONE

ALL = frozenset(Level)
BACKWARD_ONLY = frozenset({B, BT, N})  # the new schema reads old events; not the other way
FORWARD_ONLY = frozenset({F, FT, N})  # old schemas read new events; not the other way
NONE_ONLY = frozenset({N})

NEW_CANNOT_READ_OLD = "consumers on the new schema cannot read old events"
OLD_CANNOT_READ_NEW = "consumers on the old schema cannot read new events"
NEITHER = "consumers on either schema cannot read the other's events"
AGAINST = "(FULL_TRANSITIVE, against v1)"


@dataclass(frozen=True)
class Case:
    id: str
    history: tuple[dict[str, Any], ...]
    proposed: dict[str, Any]
    ok: frozenset[Level]
    report: tuple[str, ...] = ()


def problems(case: Case, level: Level, *, latest_only: bool = False) -> list[Problem]:
    """cdcflow's findings for ``case`` at ``level`` (``latest_only``: the last version only)."""
    history = [
        Version(f"v{i}", parse_schema(render(schema), f"v{i}"))
        for i, schema in enumerate(case.history, start=1)
    ]
    if latest_only:
        history = history[-1:]
    new = parse_schema(render(case.proposed), FILE)
    return check_compatibility(new, history, level, file=FILE)


def verdict(case: Case, level: Level, *, latest_only: bool = False) -> bool:
    """cdcflow's verdict: accepted when there are no errors (warnings do not fail a check)."""
    found = problems(case, level, latest_only=latest_only)
    return not [p for p in found if p.severity is Severity.ERROR]


def record(
    *fields: dict[str, Any], name: str = "Event", namespace: str = "corpus", **extra: Any
) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, **extra, "fields": list(fields)}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def address(*fields: dict[str, Any], name: str = "Address") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


ID = field("id", "long")
DECIMAL_12_2 = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}


def err(rule: str, path: str, message: str, impact: str, against: str = AGAINST) -> str:
    return f"error[{rule}] {FILE}: {path}: {message}: {impact} {against}"


def warn(rule: str, path: str, message: str, impact: str) -> str:
    return f"warning[{rule}] {FILE}: {path}: {message}: {impact} {AGAINST}"


def promotion(case_id: str, old: str, new: str) -> Case:
    """A primitive promotion: the new schema reads the old type, not the other way round."""
    return Case(
        case_id,
        (record(ID, field("n", old)),),
        record(ID, field("n", new)),
        BACKWARD_ONLY,
        (err("type-changed", "Event.n", f"{old} -> {new}", OLD_CANNOT_READ_NEW),),
    )


CASES: tuple[Case, ...] = (
    # -- fields added and removed
    Case(
        "field-added-with-default",
        (record(ID),),
        record(ID, field("email", "string", default="")),
        ALL,
    ),
    Case(
        "field-added-without-default",
        (record(ID),),
        record(ID, field("email", "string")),
        FORWARD_ONLY,
        (
            err(
                "field-added-without-default",
                "Event.email",
                "field added without a default (string)",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "optional-field-added",
        (record(ID),),
        record(ID, field("note", ["null", "string"], default=None)),
        ALL,
    ),
    Case(
        "field-removed-with-default",
        (record(ID, field("email", "string", default="")),),
        record(ID),
        ALL,
    ),
    Case(
        "field-removed-without-default",
        (record(ID, field("email", "string")),),
        record(ID),
        BACKWARD_ONLY,
        (
            err(
                "field-removed-without-default",
                "Event.email",
                "field removed (string), and the old schema has no default for it",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "default-added-to-field",
        (record(ID, field("email", "string")),),
        record(ID, field("email", "string", default="")),
        ALL,
    ),
    Case(
        "fields-reordered-docs-changed",
        (record(ID, field("email", "string")),),
        record(field("email", "string", doc="where to write"), ID, doc="an event"),
        ALL,
    ),
    # -- renames
    Case(
        "field-renamed-without-alias",
        (record(ID, field("mail", "string")),),
        record(ID, field("email", "string")),
        NONE_ONLY,
        (
            err(
                "field-added-without-default",
                "Event.email",
                "field added without a default (string)",
                NEW_CANNOT_READ_OLD,
            ),
            err(
                "field-removed-without-default",
                "Event.mail",
                "field removed (string), and the old schema has no default for it",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "field-renamed-with-alias",
        (record(ID, field("mail", "string")),),
        record(ID, field("email", "string", aliases=["mail"])),
        BACKWARD_ONLY,
        (
            err(
                "field-removed-without-default",
                "Event.mail",
                "field removed (string), and the old schema has no default for it",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "field-renamed-with-alias-and-default",
        (record(ID, field("mail", "string", default="")),),
        record(ID, field("email", "string", default="", aliases=["mail"])),
        ALL,
    ),
    # -- promotions
    promotion("promote-int-to-long", "int", "long"),
    promotion("promote-long-to-float", "long", "float"),
    promotion("promote-float-to-double", "float", "double"),
    promotion("promote-int-to-double", "int", "double"),
    Case(
        "narrow-long-to-int",
        (record(ID, field("n", "long")),),
        record(ID, field("n", "int")),
        FORWARD_ONLY,
        (err("type-changed", "Event.n", "long -> int", NEW_CANNOT_READ_OLD),),
    ),
    Case("string-to-bytes", (record(field("s", "string")),), record(field("s", "bytes")), ALL),
    Case("bytes-to-string", (record(field("s", "bytes")),), record(field("s", "string")), ALL),
    Case(
        "int-to-string",
        (record(field("n", "int")),),
        record(field("n", "string")),
        NONE_ONLY,
        (err("type-changed", "Event.n", "int -> string", NEITHER),),
    ),
    # -- enums
    Case(
        "enum-symbol-added",
        (record(field("s", enum("A", "B"))),),
        record(field("s", enum("A", "B", "C"))),
        BACKWARD_ONLY,
        (
            err(
                "enum-symbol-added",
                "Event.s",
                "enum symbols added: C; the old enum has no default symbol",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "enum-symbol-added-with-enum-default",
        (record(field("s", enum("A", "B", default="A"))),),
        record(field("s", enum("A", "B", "C", default="A"))),
        ALL,
    ),
    Case(
        "enum-symbol-removed",
        (record(field("s", enum("A", "B", "C"))),),
        record(field("s", enum("A", "B"))),
        FORWARD_ONLY,
        (
            err(
                "enum-symbol-removed",
                "Event.s",
                "enum symbols removed: C; the new enum has no default symbol",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "enum-symbol-removed-with-enum-default",
        (record(field("s", enum("A", "B", "C", default="A"))),),
        record(field("s", enum("A", "B", default="A"))),
        ALL,
    ),
    # -- unions
    Case(
        "union-widened",
        (record(field("v", ["null", "string"], default=None)),),
        record(field("v", ["null", "string", "long"], default=None)),
        BACKWARD_ONLY,
        (
            err(
                "union-branch-added",
                "Event.v",
                "union(null, string) -> union(null, string, long): new branch long",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "union-narrowed",
        (record(field("v", ["null", "string", "long"], default=None)),),
        record(field("v", ["null", "string"], default=None)),
        FORWARD_ONLY,
        (
            err(
                "union-branch-removed",
                "Event.v",
                "union(null, string, long) -> union(null, string): no branch for long any more",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "field-made-optional",
        (record(field("v", "string")),),
        record(field("v", ["null", "string"], default=None)),
        BACKWARD_ONLY,
        (
            err(
                "type-changed",
                "Event.v",
                "string -> union(null, string) (null in new events cannot be read as string)",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "field-made-required",
        (record(field("v", ["null", "string"], default=None)),),
        record(field("v", "string")),
        FORWARD_ONLY,
        (
            err(
                "type-changed",
                "Event.v",
                "union(null, string) -> string (null in old events cannot be read as string)",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    # -- nested records
    Case(
        "nested-field-added-with-default",
        (record(field("address", address(field("street", "string")))),),
        record(
            field("address", address(field("street", "string"), field("zip", "string", default="")))
        ),
        ALL,
    ),
    Case(
        "nested-field-added-without-default",
        (record(field("address", address(field("street", "string")))),),
        record(field("address", address(field("street", "string"), field("zip", "string")))),
        FORWARD_ONLY,
        (
            err(
                "field-added-without-default",
                "Event.address.zip",
                "field added without a default (string)",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "nested-type-changed",
        (record(field("address", address(field("zip", "string")))),),
        record(field("address", address(field("zip", "long")))),
        NONE_ONLY,
        (err("type-changed", "Event.address.zip", "string -> long", NEITHER),),
    ),
    Case(
        "optional-nested-type-changed",
        (record(field("address", ["null", address(field("zip", "string"))], default=None)),),
        record(field("address", ["null", address(field("zip", "long"))], default=None)),
        NONE_ONLY,
        (err("type-changed", "Event.address.zip", "string -> long", NEITHER),),
    ),
    Case(
        "nested-record-renamed",
        (record(field("address", address(field("zip", "string")))),),
        record(field("address", address(field("zip", "string"), name="PostalAddress"))),
        NONE_ONLY,
        (
            err(
                "name-changed",
                "Event.address",
                "record corpus.Address renamed to corpus.PostalAddress",
                NEITHER,
            ),
        ),
    ),
    # -- logical types
    Case(
        "decimal-to-double",
        (record(field("total", DECIMAL_12_2)),),
        record(field("total", "double")),
        NONE_ONLY,
        (err("type-changed", "Event.total", "bytes(decimal 12,2) -> double", NEITHER),),
    ),
    Case(
        "decimal-scale-changed",
        (record(field("total", DECIMAL_12_2)),),
        record(field("total", {**DECIMAL_12_2, "precision": 14, "scale": 4})),
        ALL,
        (
            warn(
                "logical-type-changed",
                "Event.total",
                "bytes(decimal 12,2) -> bytes(decimal 14,4): Avro reads one as the other, "
                "but the value means something else",
                "consumers on either schema misread the other's events",
            ),
        ),
    ),
    Case(
        "timestamp-millis-to-micros",
        (record(field("at", {"type": "long", "logicalType": "timestamp-millis"})),),
        record(field("at", {"type": "long", "logicalType": "timestamp-micros"})),
        ALL,
        (
            warn(
                "logical-type-changed",
                "Event.at",
                "long(timestamp-millis) -> long(timestamp-micros): Avro reads one as the other, "
                "but the value means something else",
                "consumers on either schema misread the other's events",
            ),
        ),
    ),
    Case(
        "uuid-annotation-added",
        (record(field("id", "string")),),
        record(field("id", {"type": "string", "logicalType": "uuid"})),
        ALL,
    ),
    Case(
        "date-to-timestamp",
        (record(field("on", {"type": "int", "logicalType": "date"})),),
        record(field("on", {"type": "long", "logicalType": "timestamp-micros"})),
        BACKWARD_ONLY,
        (
            err(
                "type-changed",
                "Event.on",
                "int(date) -> long(timestamp-micros)",
                OLD_CANNOT_READ_NEW,
            ),
            warn(
                "logical-type-changed",
                "Event.on",
                "int(date) -> long(timestamp-micros): Avro reads one as the other, "
                "but the value means something else",
                "consumers on either schema misread the other's events",
            ),
        ),
    ),
    # -- names and namespaces
    Case("namespace-changed", (record(ID),), record(ID, namespace="corpus.v2"), ALL),
    Case(
        "record-renamed",
        (record(ID),),
        record(ID, name="Happening"),
        NONE_ONLY,
        (
            err(
                "name-changed",
                "Happening",
                "record corpus.Event renamed to corpus.Happening",
                NEITHER,
            ),
        ),
    ),
    Case(
        "record-renamed-with-alias",
        (record(ID),),
        record(ID, name="Happening", aliases=["corpus.Event"]),
        BACKWARD_ONLY,
        (
            err(
                "name-changed",
                "Happening",
                "record corpus.Event renamed to corpus.Happening",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        # The spec lets an alias be relative to the type's namespace: "Event" is corpus.Event.
        "record-renamed-with-relative-alias",
        (record(ID),),
        record(ID, name="Happening", aliases=["Event"]),
        BACKWARD_ONLY,
        (
            err(
                "name-changed",
                "Happening",
                "record corpus.Event renamed to corpus.Happening",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
    Case(
        "fixed-size-changed",
        (record(field("h", {"type": "fixed", "name": "Hash", "size": 16})),),
        record(field("h", {"type": "fixed", "name": "Hash", "size": 32})),
        NONE_ONLY,
        (err("fixed-size-changed", "Event.h", "fixed size 16 -> 32", NEITHER),),
    ),
    # -- arrays and maps
    Case(
        "array-items-promoted",
        (record(field("xs", {"type": "array", "items": "int"})),),
        record(field("xs", {"type": "array", "items": "long"})),
        BACKWARD_ONLY,
        (err("type-changed", "Event.xs[]", "int -> long", OLD_CANNOT_READ_NEW),),
    ),
    Case(
        "array-items-changed",
        (record(field("xs", {"type": "array", "items": "string"})),),
        record(field("xs", {"type": "array", "items": "boolean"})),
        NONE_ONLY,
        (err("type-changed", "Event.xs[]", "string -> boolean", NEITHER),),
    ),
    Case(
        "array-record-items-field-added-without-default",
        (
            record(
                field("lines", {"type": "array", "items": address(field("q", "int"), name="Line")})
            ),
        ),
        record(
            field(
                "lines",
                {
                    "type": "array",
                    "items": address(field("q", "int"), field("sku", "string"), name="Line"),
                },
            )
        ),
        FORWARD_ONLY,
        (
            err(
                "field-added-without-default",
                "Event.lines[].sku",
                "field added without a default (string)",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "map-values-promoted",
        (record(field("m", {"type": "map", "values": "int"})),),
        record(field("m", {"type": "map", "values": "long"})),
        BACKWARD_ONLY,
        (err("type-changed", "Event.m{}", "int -> long", OLD_CANNOT_READ_NEW),),
    ),
    Case(
        "map-values-changed",
        (record(field("m", {"type": "map", "values": "string"})),),
        record(field("m", {"type": "map", "values": "boolean"})),
        NONE_ONLY,
        (err("type-changed", "Event.m{}", "string -> boolean", NEITHER),),
    ),
    Case(
        "array-to-map",
        (record(field("xs", {"type": "array", "items": "string"})),),
        record(field("xs", {"type": "map", "values": "string"})),
        NONE_ONLY,
        (err("type-changed", "Event.xs", "array<string> -> map<string>", NEITHER),),
    ),
    # -- transitive: compatible with the latest version, not with an older one
    Case(
        "transitive-default-dropped",
        (record(ID), record(ID, field("email", "string", default=""))),
        record(ID, field("email", "string")),
        frozenset({B, F, FT, FU, N}),
        (
            err(
                "field-added-without-default",
                "Event.email",
                "field added without a default (string)",
                NEW_CANNOT_READ_OLD,
            ),
        ),
    ),
    Case(
        "transitive-enum-default-added-late",
        (
            record(field("s", enum("A", "B"))),
            record(field("s", enum("A", "B", "C", default="A"))),
        ),
        record(field("s", enum("A", "B", "C", "D", default="A"))),
        frozenset({B, BT, F, FU, N}),
        (
            err(
                "enum-symbol-added",
                "Event.s",
                "enum symbols added: C, D; the old enum has no default symbol",
                OLD_CANNOT_READ_NEW,
            ),
        ),
    ),
)
