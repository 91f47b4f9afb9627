"""Source drift: do the live source tables still have what the mapping rules read?

An ``ALTER TABLE`` in the source database does not touch an ``.avsc``, but it
can break a mapping rule: a dropped or renamed column, or a type the event
field cannot hold (``numeric(12,2)`` widened to ``numeric(14,4)`` for a
``Decimal`` of 12 digits and 2 decimals). ``cdcflow schemas check --source``
compares ``information_schema.columns`` with the columns the rules read.

Which columns a rule reads:

* YAML rules declare them: every ``new.<col>``, ``old.<col>`` and ``key.<col>``
  in ``fields`` (those a ``first_of`` lists too) and every column in ``when``,
  as the compiled rule carries them (:mod:`pipeline.mapping.yaml_rules` is the
  one reader of rule files). Where a column fills an event field, the field's
  type says which column types can fill it; a nullable column is flagged for a
  required field unless a later ``first_of`` alternative stands in for its NULL.
* A Python rule is a function; what it reads is known only if the rule says so
  (``@rules.on(..., reads=[...])``); a rule that does not is listed in the
  report as not checked. ``cdcflow domain describe`` shows what each rule's
  body is seen to read, and warns where a declared ``reads`` leaves a column out.
"""

from __future__ import annotations

import datetime as dt
import enum
import sys
import types
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from pipeline.contracts.report import Problem, Report, Severity
from pipeline.events import DomainEvent
from pipeline.mapping.predicates import Predicate
from pipeline.mapping.registry import Rule
from pipeline.mapping.yaml_rules import rule_file

__all__ = ["Column", "ColumnNeed", "TypeNeed", "check_source", "column_needs", "live_columns"]


@dataclass(frozen=True)
class TypeNeed:
    """The column types that can fill one event field."""

    python: str
    decimal: tuple[int, int] | None = None
    kinds: frozenset[str] = frozenset()

    def accepts(self, column: Column) -> bool:
        if column.data_type in self.kinds:
            return True
        if self.decimal is None:
            return False
        precision, scale = self.decimal
        if column.data_type == "numeric":
            if column.precision is None:
                return False  # unbounded numeric: any value, not only what fits the event
            return (column.scale or 0) <= scale and column.precision - (
                column.scale or 0
            ) <= precision - scale
        digits = {"smallint": 5, "integer": 10, "bigint": 19}.get(column.data_type)
        return digits is not None and digits <= precision - scale

    def describe(self) -> str:
        if self.decimal:
            p, s = self.decimal
            return (
                f"numeric with at most {s} decimals and {p - s} integer digits (for {self.python})"
            )
        return f"{' / '.join(sorted(self.kinds))} (for {self.python})"


@dataclass(frozen=True)
class ColumnNeed:
    """One column a rule reads; ``need`` None means only that it must exist."""

    table: str
    column: str
    rule: str
    origin: str
    target: str = ""
    need: TypeNeed | None = None
    required: bool = False


@dataclass(frozen=True)
class Column:
    """One live column, as information_schema describes it (found under its table and name)."""

    data_type: str
    nullable: bool
    precision: int | None = None
    scale: int | None = None

    def describe(self) -> str:
        if self.data_type == "numeric" and self.precision is not None:
            return f"numeric({self.precision},{self.scale or 0})"
        return self.data_type


_TEXT = frozenset({"text", "character varying", "character", "name", "citext", "USER-DEFINED"})
_KINDS: list[tuple[type, frozenset[str]]] = [
    (bool, frozenset({"boolean"})),
    (int, frozenset({"smallint", "integer", "bigint"})),
    (float, frozenset({"real", "double precision", "numeric", "smallint", "integer", "bigint"})),
    (dt.datetime, frozenset({"timestamp with time zone", "timestamp without time zone"})),
    (dt.date, frozenset({"date"})),
    (dt.time, frozenset({"time without time zone", "time with time zone"})),
    (uuid.UUID, frozenset({"uuid"}) | _TEXT),
    (str, _TEXT | frozenset({"uuid"})),
    (BaseModel, frozenset({"json", "jsonb"})),
]


def _type_need(annotation: Any, meta: list[Any]) -> tuple[TypeNeed | None, bool]:
    """(what can fill a field of this type, whether the field is required to be non-null)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *more = get_args(annotation)
        flat = [m for item in more for m in (getattr(item, "metadata", None) or [item])]
        return _type_need(base, meta + flat)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not types.NoneType]
        need, _ = _type_need(args[0], meta) if len(args) == 1 else (None, False)
        return need, False
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return TypeNeed("an enum", kinds=_TEXT), True
    if not isinstance(annotation, type):
        return None, True
    if issubclass(annotation, Decimal):
        p = next((m.max_digits for m in meta if getattr(m, "max_digits", None) is not None), None)
        s = next(
            (m.decimal_places for m in meta if getattr(m, "decimal_places", None) is not None), None
        )
        if p is not None and s is not None:
            return TypeNeed(f"Decimal({p},{s})", decimal=(p, s), kinds=frozenset()), True
        return TypeNeed("Decimal", kinds=frozenset({"numeric"})), True
    for python, kinds in _KINDS:
        if issubclass(annotation, python):
            return TypeNeed(annotation.__name__, kinds=kinds), True
    return None, True


# -- what the rules read ---------------------------------------------------------


def column_needs(rules: Iterable[Rule]) -> tuple[list[ColumnNeed], list[str]]:
    """The columns a domain's rules read, and notes on the rules that do not say.

    ``rules`` are the domain's loaded rules (``pipeline.domain.load_domain``). A
    YAML rule carries the column each event field is filled from (with the
    field's type) and the columns its conditions read; a Python rule, the
    columns its ``reads`` declares.
    """
    rules = list(rules)
    needs: list[ColumnNeed] = []
    python_rules = []
    for rule in rules:  # the YAML rules' first: they know the field each column fills
        yaml_file = rule_file(rule)
        if yaml_file is None:
            python_rules.append(rule)
        else:
            needs.extend(_yaml_needs(rule, _shown(Path(yaml_file)) or yaml_file))
    unchecked: list[str] = []
    for rule in python_rules:
        if rule.reads:
            origin = _shown(_module_file(rule)) or rule.origin
            needs.extend(
                ColumnNeed(rule.table, str(col), rule.name, origin) for col in sorted(rule.reads)
            )
        else:
            unchecked.append(f"{rule.name} ({rule.table})")
    notes = []
    if unchecked:
        notes.append(
            f"{len(unchecked)} Python rule(s) declare no columns they read, so their columns are "
            f"not checked: {', '.join(unchecked)}"
        )
    return needs, notes


def _yaml_needs(rule: Rule, origin: str) -> list[ColumnNeed]:
    """A compiled YAML rule's columns: each field's, with the field's type, then its conditions'."""
    event = rule.emits[0]
    out = []
    for target, column in rule.fills:
        need, required = _field_need(event, target)
        required = required and (target, column) not in rule.null_covered
        out.append(
            ColumnNeed(
                rule.table, column, rule.name, origin, f"{event.__name__}.{target}", need, required
            )
        )
    when = rule.when
    if isinstance(when, Predicate):
        for column in sorted((when.row_columns or frozenset()) | (when.old_columns or frozenset())):
            out.append(ColumnNeed(rule.table, column, rule.name, origin, "its condition"))
    return out


def _module_file(rule: Rule) -> Path | None:
    module = sys.modules.get(str(getattr(rule.fn, "__module__", "")))
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _shown(path: Path | None) -> str | None:
    """A path as the report shows it: relative to the working directory where it can be."""
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _field_need(event: type[DomainEvent], field: str) -> tuple[TypeNeed | None, bool]:
    info = event.model_fields.get(field)
    if info is None:
        return None, False
    return _type_need(info.annotation, list(info.metadata))


# -- the live tables -------------------------------------------------------------


def live_columns(dsn: str, tables: Iterable[str]) -> dict[str, dict[str, Column]]:
    """information_schema.columns of ``tables`` (``schema.table``), by table and column.

    Raises:
        psycopg.Error: the database cannot be reached or queried.
    """
    import psycopg  # the I/O edge: imported only where a database is used

    wanted = sorted(set(tables))
    out: dict[str, dict[str, Column]] = {t: {} for t in wanted}
    query = """
        SELECT table_schema || '.' || table_name, column_name, data_type, is_nullable,
               numeric_precision, numeric_scale
          FROM information_schema.columns
         WHERE table_schema || '.' || table_name = ANY(%s)
    """
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(query, (wanted,))
        for table, column, data_type, nullable, precision, scale in cur.fetchall():
            out[table][column] = Column(data_type, nullable == "YES", precision, scale)
    return out


def check_source(
    needs: list[ColumnNeed], live: dict[str, dict[str, Column]], report: Report
) -> None:
    """Compare what the rules read with the live columns; add a problem per difference."""
    for need in needs:
        problem = _drift(need, live.get(need.table))
        if problem is not None:
            report.add(problem)


def _drift(need: ColumnNeed, columns: dict[str, Column] | None) -> Problem | None:
    """What keeps ``need`` from being met by the live ``columns`` of its table, if anything."""

    def problem(rule: str, path: str, message: str, impact: str, **more: Any) -> Problem:
        return Problem(
            rule=rule, file=need.origin, path=path, message=message, impact=impact, **more
        )

    where = f"{need.table}.{need.column}"
    reader = f"rule {need.rule}" + (f" reads it for {need.target}" if need.target else " reads it")
    impact = f"the rule fails on every change of {need.table}"
    if not columns:
        return problem(
            "source-table-missing",
            need.table,
            f"table is gone; {reader.replace(' it', ' from it', 1)}",
            "no changes arrive for the rule any more",
        )
    column = columns.get(need.column)
    if column is None:
        return problem("source-column-missing", where, f"column is gone; {reader}", impact)
    if need.need is not None and not need.need.accepts(column):
        return problem(
            "source-column-type-changed",
            where,
            f"column is {column.describe()}, {need.target} needs {need.need.describe()}",
            "values that do not fit fail the rule" if column.data_type == "numeric" else impact,
            hint="change the column back, or the event (a new field in a new contract version)",
        )
    if need.required and column.nullable:
        return problem(
            "source-column-type-changed",
            where,
            f"column is nullable, {need.target} is required",
            "a NULL fails the rule",
            severity=Severity.WARNING,
        )
    return None
