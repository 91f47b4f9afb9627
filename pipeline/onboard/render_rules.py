"""The rules of a domain ``cdcflow init`` drafts: ``rules.yaml`` and ``mappings.py`` (pure).

A change kind whose fields all map one to one becomes a rule in ``rules.yaml``; one with a
value the decoder hands over in another type (json, interval, numeric without scale) becomes
a Python rule in ``mappings.py`` with a small converter. ``mappings.py`` is the registry either
way: it loads ``rules.yaml`` and holds the Python rules.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.onboard.plan import Entity, EventPlan, Plan

if TYPE_CHECKING:
    from pipeline.onboard.render import Target

__all__ = ["HEADER", "WIDTH", "listing", "mappings_text", "rules_yaml_text"]

HEADER = "Written by `cdcflow init`: a first draft, yours to refine."
"""The line every drafted file opens with."""

WIDTH = 100  # ruff's line length in cdcflow, a common one


def listing(opening: str, items: list[str], closing: str, indent: str = "") -> list[str]:
    """``opening`` items ``closing`` on one line, or one item a line when it would be too long."""
    one = f"{indent}{opening}{', '.join(items)}{closing}"
    if len(one) <= WIDTH:
        return [one]
    return [f"{indent}{opening}", *(f"{indent}    {item}," for item in items), indent + closing]


def rules_yaml_text(plan: Plan, target: Target) -> str:
    rules = [
        (entity, event)
        for entity in plan.entities
        for event in entity.events
        if not event.converted
    ]
    if not rules:
        return ""
    out = [
        f"# The one-to-one rules of {target.package}: a row change mapped field by field to",
        f"# one event. {HEADER} Loaded by mappings.py.",
        f"events: {target.package}.events",
        "",
        "rules:",
    ]
    for entity, event in rules:
        out += [
            f"  - table: {entity.table.qualified}",
            f"    ops: {event.ops}",
            f"    event: {event.name}",
            "    fields:",
        ]
        out += [f"      {f.name}: {event.image}.{f.column.name}" for f in event.fields]
    return "\n".join(out) + "\n"


_HELPERS = {
    "json": '''\
def _json(value: Any) -> str | None:
    """JSON text of a decoded json / jsonb value, every digit of its numbers kept."""
    if value is None:
        return None
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(str(_json(v)) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
''',
    "decimal_text": '''\
def _decimal_text(value: Decimal | None) -> str | None:
    """A numeric without scale as text, in positional notation (as PostgreSQL prints it)."""
    return None if value is None else format(value, "f")
''',
    "interval": '''\
def _interval(value: Any) -> str | None:
    """An interval as ISO 8601 text (P1DT2H)."""
    return None if value is None else str(value.isoformat())
''',
}


def mappings_text(plan: Plan, target: Target) -> str:
    python_rules = [
        (entity, event) for entity in plan.entities for event in entity.events if event.converted
    ]
    has_yaml = any(not ev.converted for e in plan.entities for ev in e.events)
    helpers = sorted(
        {f.type.convert for _, ev in python_rules for f in ev.fields if f.type.convert}
    )
    stdlib = []
    if "json" in helpers:
        stdlib.append("import json")
    if "json" in helpers or "decimal_text" in helpers:
        stdlib.append("from decimal import Decimal")
    if has_yaml:
        stdlib.append("from pathlib import Path")
    if "json" in helpers or "interval" in helpers:
        stdlib.append("from typing import Any")
    imports = ["from __future__ import annotations", "", *stdlib, ""]
    imports.append(
        "from pipeline import Change, Rules" if python_rules else "from pipeline import Rules"
    )
    imports.append("")
    if has_yaml:
        imports.append(f"from {target.package} import events")
    if python_rules:
        names = sorted({ev.name for _, ev in python_rules})
        imports.append(f"from {target.package}.events import {', '.join(names)}")
    where = "rules.yaml" if has_yaml else ""
    width = max(len(e.table.qualified) for e in plan.entities) + 2
    name_width = max(len(ev.name) for e in plan.entities for ev in e.events) + 2
    table_rows = "\n".join(
        f"{e.table.qualified:<{width}}{ev.ops:<5}{ev.name:<{name_width}}"
        f"{'here' if ev.converted else 'rules.yaml'}"
        for e in plan.entities
        for ev in e.events
    )
    out = [
        f'"""How the row changes of {target.database} become {plan.name} events.',
        "",
        HEADER,
        "",
        f"{'table':<{width}}{'ops':<5}{'event':<{name_width}}where",
        table_rows,
        "",
        "Rules in Python convert a value the decoder hands over in another type (json,",
        "interval, numeric without scale); the others are in rules.yaml." if where else "",
        '"""',
        "",
        *imports,
        "",
        '__all__ = ["rules"]',
        "",
        f"rules = Rules({json.dumps(plan.name)})",
    ]
    for helper in helpers:
        out += ["", "", _HELPERS[helper].rstrip("\n")]
    for entity, event in python_rules:
        out += ["", "", *_python_rule(entity, event)]
    if has_yaml:
        out += [
            "",
            "",
            'rules.load_yaml(Path(__file__).with_name("rules.yaml"), events=events)',
        ]
    return "\n".join(line for line in out) + "\n"


def _python_rule(entity: Entity, event: EventPlan) -> list[str]:
    function = _snake(event.name)
    reads = [json.dumps(f.column.name) for f in event.fields]
    out = [
        "@rules.on(",
        f"    {json.dumps(entity.table.qualified)},",
        f"    ops={json.dumps(event.ops)},",
        *listing("reads=(", reads, ",)," if len(reads) == 1 else "),", indent="    "),
        f"    aggregate_id_from={json.dumps(_column_of(event, entity.id_field))},",
        ")",
        f"def {function}(change: Change) -> {event.name}:",
        f"    return {event.name}(",
    ]
    for f in event.fields:
        value = f"change.{event.image}({json.dumps(f.column.name)})"
        if f.type.convert:
            value = f"_{f.type.convert}({value})"
        out.append(f"        {f.name}={value},")
    out.append("    )")
    return out


def _column_of(event: EventPlan, field_name: str) -> str:
    return next(f.column.name for f in event.fields if f.name == field_name)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
