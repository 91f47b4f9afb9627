"""Conditions on a :class:`~pipeline.cdc.Change`, for the ``when=`` of a rule.

Each helper returns a :class:`Predicate`; predicates combine with ``&``, ``|``
and ``~`` and print as what they test, which rule listings and errors show.

What "changed" means per operation: on a create or snapshot read every column
counts as changed (from nothing to its value); on a delete every column counts
as changed (to nothing); on an update the before and after images are compared,
and an :data:`~pipeline.cdc.UNCHANGED` (TOASTed, not sent) value is unchanged by
definition. An update without a before image (a table without ``REPLICA
IDENTITY FULL``) cannot be compared: the predicate raises
:class:`BeforeImageMissing` rather than guess, and the change is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any

from pipeline.cdc import UNCHANGED, Change

__all__ = [
    "BeforeImageMissing",
    "Predicate",
    "changed",
    "changed_from",
    "changed_to",
    "equals",
    "where",
]


class BeforeImageMissing(LookupError):
    """An old value is needed but the source did not send it; names the table and column."""

    def __init__(self, change: Change, column: str) -> None:
        self.table = change.table
        self.column = column
        withheld = change.withheld_error(column)
        if withheld is not None:
            # The table's replica identity left the column out: say which, and the fix.
            super().__init__(withheld.message)
            self.hint = withheld.hint
            return
        super().__init__(f"{change.table}: update has no old value for {column!r}")
        table = change.table
        self.hint = f"run 'ALTER TABLE {table} REPLICA IDENTITY FULL' so updates carry old values"


@dataclass(frozen=True, slots=True, eq=False)
class Predicate:
    """A named test on a change; callable, combinable with ``&``, ``|`` and ``~``.

    ``old_columns`` are the columns whose old value (before image) it reads on
    an update or a delete, and ``row_columns`` those it reads from
    :attr:`~pipeline.cdc.Change.row` (the before image of a delete); ``None``
    means it cannot be told (a :func:`where` function, or a predicate built
    directly without saying). ``cdcflow domain
    describe`` and the connector preflight check them against replica identities.
    """

    fn: Callable[[Change], bool]
    description: str
    _: KW_ONLY
    old_columns: frozenset[str] | None = None
    row_columns: frozenset[str] | None = None

    def __call__(self, change: Change) -> bool:
        return bool(self.fn(change))

    def _joined(self, other: Predicate, fn: Callable[[Change], bool], text: str) -> Predicate:
        return Predicate(
            fn,
            text,
            old_columns=_union(self.old_columns, other.old_columns),
            row_columns=_union(self.row_columns, other.row_columns),
        )

    def __and__(self, other: Callable[[Change], bool]) -> Predicate:
        right = _as_predicate(other)
        return self._joined(right, lambda c: self(c) and right(c), f"({self} & {right})")

    def __or__(self, other: Callable[[Change], bool]) -> Predicate:
        right = _as_predicate(other)
        return self._joined(right, lambda c: self(c) or right(c), f"({self} | {right})")

    def __invert__(self) -> Predicate:
        return replace(self, fn=lambda c: not self(c), description=f"~{self}")

    def __repr__(self) -> str:
        return self.description


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def _as_predicate(fn: Callable[[Change], bool]) -> Predicate:
    return fn if isinstance(fn, Predicate) else where(fn)


def where(fn: Callable[[Change], bool], description: str | None = None) -> Predicate:
    """Any function of the change, as a predicate (what it reads cannot be told)."""
    name = description or str(getattr(fn, "__name__", repr(fn)))
    return Predicate(fn, name)


def _reading_old(
    test: Callable[[Change], bool], description: str, columns: Iterable[str]
) -> Predicate:
    """A predicate that reads the old values of ``columns`` and nothing of the row."""
    return Predicate(test, description, old_columns=frozenset(columns), row_columns=frozenset())


def _old_value(change: Change, column: str) -> Any:
    if change.before is None or column not in change.before or change.before[column] is UNCHANGED:
        raise BeforeImageMissing(change, column)
    return change.before[column]


def _column_changed(change: Change, column: str) -> bool:
    if change.op in ("c", "r", "d"):
        return True
    if change.op != "u":
        return False
    new = change.new(column)
    if new is UNCHANGED:
        return False
    return bool(_old_value(change, column) != new)


def changed(*columns: str) -> Predicate:
    """True when any of ``columns`` changed (see the module doc for each operation).

    The returned predicate raises :class:`BeforeImageMissing` for an update that
    lacks the old value, and ``KeyError`` when the after image lacks the column.
    """
    if not columns:
        raise ValueError("changed() needs at least one column")
    return _reading_old(
        lambda c: any(_column_changed(c, col) for col in columns),
        f"changed({', '.join(columns)})",
        columns,
    )


def changed_to(column: str, value: Any) -> Predicate:
    """True when ``column`` now holds ``value`` and did not before (creates: holds ``value``).

    The returned predicate raises :class:`BeforeImageMissing` for an update
    that lacks the old value.
    """

    def test(change: Change) -> bool:
        if change.op not in ("c", "r", "u") or change.new(column) != value:
            return False
        return change.op != "u" or _old_value(change, column) != value

    return _reading_old(test, f"changed_to({column}={value!r})", [column])


def changed_from(column: str, value: Any) -> Predicate:
    """True when ``column`` held ``value`` before and no longer does (deletes: held ``value``).

    The returned predicate raises :class:`BeforeImageMissing` when the old value is absent.
    """

    def test(change: Change) -> bool:
        if change.op not in ("u", "d") or _old_value(change, column) != value:
            return False
        if change.op == "d":
            return True
        new = change.new(column)
        return new is not UNCHANGED and new != value

    return _reading_old(test, f"changed_from({column}={value!r})", [column])


def equals(column: str, value: Any) -> Predicate:
    """True when the row (after image, or before image of a delete) has ``column == value``.

    The returned predicate raises :class:`BeforeImageMissing` for a delete whose
    before image lacks the column because the source did not send it.
    """

    def test(change: Change) -> bool:
        if change.after is None and column in change.withheld:
            raise BeforeImageMissing(change, column)
        return bool(change.row.get(column) == value)

    return Predicate(
        test,
        f"{column}=={value!r}",
        old_columns=frozenset(),
        row_columns=frozenset({column}),
    )
