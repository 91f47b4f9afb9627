"""What a rule function is seen to read and emit: an ``ast`` scan of its source (pure, no I/O).

:func:`scan_function` walks a rule function's source for the columns it reads
from a change's images (``change.old("col")``, ``change.before["col"]``,
``change.row.get("col")``...), following helpers the change is passed to a few
levels deep, and records the event constructors it calls with the keyword
arguments taken from those images. :func:`rule_events` reads the event types a
rule emits from its return annotation. What cannot be read is said in
:attr:`Scan.unknown`; nothing is guessed. :mod:`pipeline.mapping.describe`
turns both into a domain's description.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import inspect
import textwrap
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FunctionType, UnionType
from typing import Any

from pipeline.events import DomainEvent
from pipeline.mapping.registry import Rule

__all__ = ["Scan", "concrete", "resolve", "rule_events", "scan_function"]

# Calls on a change whose first argument names a column, by the image they read.
_IMAGE_CALLS = {"old": "old", "new": "new"}
# Attributes of a change that are images, indexed by column name.
_IMAGE_ATTRS = {"before": "old", "after": "new", "row": "row", "key": "key"}
_SCAN_DEPTH = 3


# --------------------------------------------------------------------------- the scan


@dataclass
class Scan:
    """What an ``ast`` walk of a rule function found."""

    old: set[str] = field(default_factory=set)
    row: set[str] = field(default_factory=set)
    new: set[str] = field(default_factory=set)  # the new image and the key
    unknown: list[str] = field(default_factory=list)
    new_unknown: bool = False
    # event class name (as written) -> keyword -> (image, column) or None
    calls: list[tuple[ast.expr, dict[str, tuple[str, str] | None]]] = field(default_factory=list)
    namespace: Mapping[str, Any] = field(default_factory=dict)


def _source_tree(fn: Callable[..., Any]) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef) else None


def _const_str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _image_read(node: ast.expr, names: set[str]) -> tuple[str, str | None] | None:
    """``(image, column)`` when ``node`` reads one column of a change's image; column None: dynamic."""
    # change.old("col") / change.new("col")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        target = node.func
        if (
            isinstance(target.value, ast.Name)
            and target.value.id in names
            and target.attr in _IMAGE_CALLS
        ):
            return _IMAGE_CALLS[target.attr], _const_str(node.args[0] if node.args else None)
        # change.before.get("col") / change.row.get("col")
        if (
            target.attr == "get"
            and isinstance(target.value, ast.Attribute)
            and isinstance(target.value.value, ast.Name)
            and target.value.value.id in names
            and target.value.attr in _IMAGE_ATTRS
        ):
            return _IMAGE_ATTRS[target.value.attr], _const_str(node.args[0] if node.args else None)
    # change.before["col"] / change.row["col"] / change.key["col"]
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id in names
        and node.value.attr in _IMAGE_ATTRS
    ):
        return _IMAGE_ATTRS[node.value.attr], _const_str(node.slice)
    return None


def scan_function(
    fn: Callable[..., Any], scan: Scan, depth: int, param: int = 0, label: str = ""
) -> None:
    tree = _source_tree(fn)
    label = label or str(getattr(fn, "__qualname__", "rule"))
    if tree is None:
        scan.unknown.append(f"the source of {label} cannot be read")
        return
    params = [a.arg for a in tree.args.posonlyargs + tree.args.args]
    if len(params) <= param:
        scan.unknown.append(f"{label} takes no change argument to follow")
        return
    names = {params[param]}
    namespace: Mapping[str, Any] = getattr(fn, "__globals__", {})
    if depth == 0:
        scan.namespace = namespace
    accounted: set[int] = set()  # ids of Name nodes of the change that a known read explains
    for node in ast.walk(tree):
        read = _image_read(node, names) if isinstance(node, ast.expr) else None
        if read is not None:
            image, column = read
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and sub.id in names:
                    accounted.add(id(sub))
            if image in ("old", "row"):
                if column is None:
                    scan.unknown.append(f"{label} reads the {image} image by a computed name")
                else:
                    (scan.old if image == "old" else scan.row).add(column)
            elif column is None:
                scan.new_unknown = True
            else:
                scan.new.add(column)
            continue
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in names
            and node.attr not in ("before", "row")
        ):
            accounted.add(id(node.value))  # change.op, change.table, change.committed_at...
        if isinstance(node, ast.Call):
            if depth == 0:
                scan.calls.append((node.func, _keywords(node, names)))
            _follow(node, names, namespace, scan, depth, accounted, label)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and node.id in names
            and id(node) not in accounted
            and isinstance(node.ctx, ast.Load)
        ):
            scan.unknown.append(f"{label} passes the change on where it cannot be followed")
            break


def _keywords(call: ast.Call, names: set[str]) -> dict[str, tuple[str, str] | None]:
    out: dict[str, tuple[str, str] | None] = {}
    for kw in call.keywords:
        if kw.arg is None:
            continue
        read = _image_read(kw.value, names)
        out[kw.arg] = (read[0], read[1]) if read is not None and read[1] is not None else None
    return out


def _follow(
    call: ast.Call,
    names: set[str],
    namespace: Mapping[str, Any],
    scan: Scan,
    depth: int,
    accounted: set[int],
    label: str,
) -> None:
    """A helper the change is passed to, scanned in turn (same module, a few levels deep)."""
    positions = [
        i for i, arg in enumerate(call.args) if isinstance(arg, ast.Name) and arg.id in names
    ]
    if not positions:
        return
    target = namespace.get(call.func.id) if isinstance(call.func, ast.Name) else None
    if not isinstance(target, FunctionType) or depth >= _SCAN_DEPTH:
        return  # left unaccounted: reported as "passes the change on"
    for i in positions:
        accounted.add(id(call.args[i]))
        scan_function(target, scan, depth + 1, param=i, label=target.__qualname__)


# --------------------------------------------------------------------------- event types


def resolve(node: ast.expr, namespace: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = resolve(node.value, namespace)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def _annotation_events(
    node: ast.expr, namespace: Mapping[str, Any]
) -> tuple[list[type[DomainEvent]], bool]:
    """Event types named in a string annotation; the flag is False when something is not one."""
    if isinstance(node, ast.Constant) and node.value is None:
        return [], True
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation_events(ast.parse(node.value, mode="eval").body, namespace)
        except SyntaxError:
            return [], False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, lok = _annotation_events(node.left, namespace)
        right, rok = _annotation_events(node.right, namespace)
        return left + right, lok and rok
    if isinstance(node, ast.Subscript):
        container = resolve(node.value, namespace)
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if not _is_container(container):
            return [], False
        out: list[type[DomainEvent]] = []
        ok = True
        for item in inner:
            if isinstance(item, ast.Constant) and item.value is Ellipsis:
                continue
            found, item_ok = _annotation_events(item, namespace)
            out += found
            ok = ok and item_ok
        return out, ok
    value = resolve(node, namespace)
    if value is None:
        return [], False  # a name the module does not define at run time (TYPE_CHECKING)
    return _type_events(value)


_CONTAINERS: tuple[Any, ...] = (
    list,
    tuple,
    typing.Optional,
    typing.Union,
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Sequence,
    collections.abc.Generator,
    typing.List,  # noqa: UP006
    typing.Tuple,  # noqa: UP006
    typing.Iterator,
    typing.Iterable,
    typing.Sequence,
    typing.Generator,
)


def _is_container(origin: Any) -> bool:
    return any(origin is c for c in _CONTAINERS)


def _type_events(value: Any) -> tuple[list[type[DomainEvent]], bool]:
    """Event types in an evaluated annotation."""
    if value is None or value is type(None):
        return [], True
    if isinstance(value, type) and issubclass(value, DomainEvent) and value is not DomainEvent:
        return [value], bool(value.__aggregate__)
    origin = typing.get_origin(value)
    if origin is not None and (_is_container(origin) or origin is UnionType):
        out: list[type[DomainEvent]] = []
        ok = True
        for arg in typing.get_args(value):
            if arg is Ellipsis:
                continue
            found, arg_ok = _type_events(arg)
            out += found
            ok = ok and arg_ok
        return out, ok
    if isinstance(value, UnionType):
        return _type_events(typing.Union[value.__args__])  # noqa: UP007
    return [], False


def rule_events(rule: Rule) -> tuple[list[type[DomainEvent]], bool]:
    if rule.emits:
        return list(rule.emits), True
    annotations = getattr(rule.fn, "__annotations__", {}) or {}
    if "return" not in annotations:
        return [], False
    returned = annotations["return"]
    namespace = getattr(rule.fn, "__globals__", {})
    if isinstance(returned, str):
        return _annotation_events(ast.Constant(returned), namespace)
    return _type_events(returned)


def concrete(
    found: Iterable[type[DomainEvent]], events: Sequence[type[DomainEvent]]
) -> list[type[DomainEvent]]:
    """A base class in an annotation (``-> _OrderEvent``) stands for the domain's subclasses of it."""
    out: list[type[DomainEvent]] = []
    for cls in found:
        subs = [e for e in events if issubclass(e, cls)]
        out += subs or [cls]
    return sorted(set(out), key=lambda c: c.full_name())
