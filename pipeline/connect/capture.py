"""Which tables a Debezium connector captures: its include and exclude lists, read as Debezium does.

Entries are comma-separated regular expressions matched against the whole
``schema.table`` (or schema), in any case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["captured_tables", "fullmatch", "names"]


def names(value: str | None) -> list[str]:
    """The entries of a comma-separated config value, blanks dropped."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def fullmatch(pattern: str, text: str, flags: int = 0) -> bool:
    """Whether ``pattern`` matches all of ``text``; an invalid pattern matches nothing."""
    try:
        return re.fullmatch(pattern, text, flags) is not None
    except re.error:
        return False


def captured_tables(config: Mapping[str, str], tables: Iterable[str]) -> list[str]:
    """Which of ``tables`` the connector captures (include / exclude lists, regexes, any case)."""
    include = names(config.get("table.include.list"))
    exclude = names(config.get("table.exclude.list"))
    schemas = names(config.get("schema.include.list"))
    schemas_out = names(config.get("schema.exclude.list"))
    out = []
    for table in sorted(tables):
        schema = table.split(".", 1)[0]
        if include and not any(fullmatch(p, table, re.IGNORECASE) for p in include):
            continue
        if any(fullmatch(p, table, re.IGNORECASE) for p in exclude):
            continue
        if schemas and not any(fullmatch(p, schema, re.IGNORECASE) for p in schemas):
            continue
        if any(fullmatch(p, schema, re.IGNORECASE) for p in schemas_out):
            continue
        out.append(table)
    return out
