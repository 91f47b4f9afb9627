"""Declarative rules: a YAML file compiled into the same :class:`~pipeline.mapping.Rule` values.

For the plain cases (a row change maps field by field to one event)::

    events: mypkg.events                   # where event type names are looked up
    known: [public.order_lines]            # optional: tables expected without rules
    ignore: [public.audit_log]             # optional: tables whose changes are skipped
    rules:
      - name: product-added                # optional; defaults to the event type
        table: public.products
        ops: cr                            # letters (c u d r t) or a list of names
        when:                              # optional; every condition must hold
          - changed: price                 # or a list of columns
          - changed_to: {status: shipped}
          - changed_from: {status: placed}
          - equals: {active: true}
        event: ProductAdded
        fields:                            # event field -> expression
          product_id: new.id               # new.<col>, old.<col>, key.<col>
          added_at: committed_at           # the source commit time
          channel: {const: web}            # a literal value
          changed_at:                      # the first of these that is not NULL
            first_of: [new.updated_at, committed_at]

``first_of`` lists two or more of the other expressions and takes the first
whose value is not NULL (a column the row image lacks counts as NULL): a
business timestamp the application may leave NULL, falling back to the commit
time. Its last alternative is taken as it is, NULL or not.

Everything is checked when the file is loaded: unknown keys, operations,
event types, event fields, expressions and missing required fields fail with
:class:`~pipeline.errors.ConfigError` naming the file and the rule.

The compiled rule carries every column its fields and conditions read
(``reads``, ``old_reads``; ``fills`` for each column an event field is filled
from, ``first_of``'s included), for ``cdcflow domain describe`` and ``cdcflow
schemas check --source``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from pipeline.cdc import Change
from pipeline.errors import ConfigError
from pipeline.events import DomainEvent
from pipeline.mapping.predicates import Predicate, changed, changed_from, changed_to, equals
from pipeline.mapping.registry import Rule, Rules, parse_ops

__all__ = ["compile_rules", "load_rules_file", "rule_file"]

_TOP_KEYS = {"events", "known", "ignore", "rules"}
_RULE_KEYS = {"name", "table", "ops", "when", "event", "fields"}
Expr = Callable[[Change], Any]


def load_rules_file(rules: Rules, path: Path, *, events: ModuleType | str | None = None) -> None:
    """Read ``path`` and compile it into ``rules``.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or a rule is invalid.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read rule file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"rule file {path} is not valid YAML: {exc}") from exc
    compile_rules(rules, data, origin=str(path), events=events)


def compile_rules(
    rules: Rules, data: Any, *, origin: str = "<yaml>", events: ModuleType | str | None = None
) -> None:
    """Compile parsed YAML (a mapping) into ``rules``.

    Raises:
        ConfigError: the data is not a valid rule document (the message names the rule).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    _no_unknown(data, _TOP_KEYS, origin)
    module = _events_module(events if events is not None else data.get("events"), origin)
    try:
        rules.known(*_str_list(data.get("known"), f"{origin}: known"))
        rules.ignore(*_str_list(data.get("ignore"), f"{origin}: ignore"))
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    specs = data.get("rules") or []
    if not isinstance(specs, list):
        raise ConfigError(f"{origin}: 'rules' must be a list")
    for i, spec in enumerate(specs):
        rule = _rule(spec, module, f"{origin}: rules[{i}]")
        try:
            rules.add(rule)
        except ValueError as exc:
            raise ConfigError(f"{rule.origin}: {exc}") from exc


def _no_unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(f"{where}: expected a name or a list of names")


def _events_module(events: ModuleType | str | None, origin: str) -> ModuleType:
    if isinstance(events, ModuleType):
        return events
    if not isinstance(events, str):
        raise ConfigError(f"{origin}: say where the event types are, e.g. 'events: mypkg.events'")
    try:
        return importlib.import_module(events)
    except ImportError as exc:
        raise ConfigError(f"{origin}: cannot import event module {events!r}: {exc}") from exc


def _rule(spec: Any, module: ModuleType, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a rule must be a mapping")
    _no_unknown(spec, _RULE_KEYS, where)
    for required in ("table", "ops", "event", "fields"):
        if required not in spec:
            raise ConfigError(f"{where}: missing '{required}'")
    event_cls = _event_class(module, spec["event"], where)
    name = str(spec.get("name") or event_cls.__name__)
    where = f"{where} ({name})"
    try:
        ops = parse_ops(spec["ops"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    exprs = _fields(spec["fields"], event_cls, where)
    when = _conditions(spec.get("when"), where)

    def build(change: Change) -> DomainEvent:
        return event_cls(**{field: expr(change) for field, expr in exprs.items()})

    # Every column a field or a condition reads: the rule's reads, filled here.
    fills = [
        (str(field), image, column, covered)
        for field, value in spec["fields"].items()
        for image, column, covered in _image_columns(value)
    ]
    reads = {column for _, _, column, _ in fills}
    if when is not None:
        reads |= (when.row_columns or frozenset()) | (when.old_columns or frozenset())
    id_columns = {column for field, _, column, _ in fills if field == event_cls.__aggregate_id__}
    return Rule(
        str(spec["table"]),
        ops,
        build,
        when,
        name,
        where,
        frozenset(reads),
        aggregate_id_from=id_columns.pop() if len(id_columns) == 1 else None,
        emits=(event_cls,),
        old_reads=frozenset(column for _, image, column, _ in fills if image == "old"),
        fills=tuple(dict.fromkeys((field, column) for field, _, column, _ in fills)),
        null_covered=frozenset((f, c) for f, _, c, covered in fills if covered)
        - {(f, c) for f, _, c, covered in fills if not covered},
    )


def rule_file(rule: Rule) -> str | None:
    """The file (or ``origin``) a YAML rule was compiled from; None for a Python rule."""
    if not rule.emits:
        return None
    return rule.origin.split(": rules[", 1)[0]


def _image_columns(value: Any) -> list[tuple[str, str, bool]]:
    """``("new" | "old" | "key", column, covered)`` of each column a field expression reads.

    ``covered``: a NULL in the column does not reach the field (a later
    ``first_of`` alternative is taken instead).
    """
    alternatives = value["first_of"] if _is_first_of(value) else [value]
    out = []
    for i, alternative in enumerate(alternatives):
        if isinstance(alternative, str) and "." in alternative:
            image, column = alternative.split(".", 1)
            if image in ("new", "old", "key"):
                out.append((image, column, i < len(alternatives) - 1))
    return out


def _is_first_of(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"first_of"}


def _event_class(module: ModuleType, name: Any, where: str) -> type[DomainEvent]:
    cls = getattr(module, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
        raise ConfigError(f"{where}: {module.__name__} has no domain event {name!r}")
    return cls


def _fields(spec: Any, cls: type[DomainEvent], where: str) -> dict[str, Expr]:
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{where}: 'fields' must map event fields to expressions")
    model_fields = {k: f for k, f in cls.model_fields.items() if k != "metadata"}
    unknown = sorted(set(spec) - set(model_fields))
    if unknown:
        raise ConfigError(f"{where}: {cls.__name__} has no field(s) {', '.join(unknown)}")
    missing = sorted(k for k, f in model_fields.items() if f.is_required() and k not in spec)
    if missing:
        raise ConfigError(f"{where}: {cls.__name__} needs field(s) {', '.join(missing)}")
    return {field: _expr(value, f"{where} field {field}") for field, value in spec.items()}


def _expr(value: Any, where: str) -> Expr:
    if _is_first_of(value):
        return _first_of(value["first_of"], where)
    return _plain_expr(value, where)


def _first_of(alternatives: Any, where: str) -> Expr:
    """The first alternative whose value is not NULL; the last is taken as it is."""
    if not isinstance(alternatives, list) or len(alternatives) < 2:
        raise ConfigError(
            f"{where}: first_of lists two or more expressions, e.g. "
            f"{{first_of: [new.updated_at, committed_at]}}, got {alternatives!r}"
        )
    exprs = [
        _plain_expr(alt, f"{where} first_of[{i}]", absent_is_null=True)
        for i, alt in enumerate(alternatives)
    ]
    *heads, last = exprs

    def first(change: Change) -> Any:
        for expr in heads:
            value = expr(change)
            if value is not None:
                return value
        return last(change)

    return first


def _plain_expr(value: Any, where: str, *, absent_is_null: bool = False) -> Expr:
    """An expression other than ``first_of``; ``absent_is_null``: a missing column reads as NULL."""
    if isinstance(value, dict) and set(value) == {"const"}:
        const = value["const"]
        return lambda change: const
    if value == "committed_at":
        return lambda change: change.committed_at
    if isinstance(value, str) and "." in value:
        image, column = value.split(".", 1)
        if image in ("new", "old"):
            read = Change.new if image == "new" else Change.old
            if absent_is_null:
                return lambda change: read(change, column, None)
            return lambda change: read(change, column)
        if image == "key":
            if absent_is_null:
                return lambda change: change.key.get(column)
            return lambda change: change.key[column]
    raise ConfigError(
        f"{where}: expected new.<col>, old.<col>, key.<col>, committed_at, "
        f"{{const: ...}} or {{first_of: [...]}}, got {value!r}"
    )


_CONDITIONS: dict[str, Callable[[str, Any], Predicate]] = {
    "changed_to": changed_to,
    "changed_from": changed_from,
    "equals": equals,
}


def _conditions(spec: Any, where: str) -> Predicate | None:
    if spec is None:
        return None
    clauses = spec if isinstance(spec, list) else [spec]
    predicates = [_condition(c, f"{where} when[{i}]") for i, c in enumerate(clauses)]
    if not predicates:
        return None
    combined = predicates[0]
    for p in predicates[1:]:
        combined = combined & p
    return combined


def _condition(clause: Any, where: str) -> Predicate:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise ConfigError(
            f"{where}: a condition is one of changed, changed_to, changed_from, equals"
        )
    ((kind, arg),) = clause.items()
    if kind == "changed":
        return changed(*_str_list(arg, where))
    if kind in _CONDITIONS and isinstance(arg, dict) and len(arg) == 1:
        ((column, value),) = arg.items()
        return _CONDITIONS[kind](str(column), value)
    raise ConfigError(
        f"{where}: expected {{changed: col}} or {{{kind}: {{column: value}}}}, got {clause!r}"
    )
