"""Preflight of a connector's heartbeat: configured, and writing a table that is writable and captured.

Debezium confirms WAL to PostgreSQL only up to a change it received: while the
captured tables are quiet, the heartbeat's action query must write a captured
table, or the slot retains every byte written meanwhile (by any database).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.connect.checks import Check, Level

__all__ = ["heartbeat_checks"]

# INSERT INTO x / UPDATE x in a heartbeat.action.query; optional schema, optional quotes.
_WRITE_TARGET = re.compile(
    r'\b(?:insert\s+into|update)\s+((?:"[^"]+"|[\w$]+)(?:\s*\.\s*(?:"[^"]+"|[\w$]+))?)',
    re.IGNORECASE,
)


def _quote_ident(qualified: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in qualified.split(".", 1))


def heartbeat_checks(
    config: Mapping[str, str],
    user: str | None,
    tables: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
) -> list[Check]:
    """The heartbeat's checks: configured, its table exists, is writable and captured.

    ``tables`` are the captured tables, ``existing`` every table of the database
    (the preflight's catalogue rows, with ``can_insert`` and ``can_update``);
    ``user`` the connector's login, None when it does not resolve here.
    """
    checks: list[Check] = []

    def add(name: str, level: Level, detail: str, fix: str | None = None) -> None:
        checks.append(Check(name, level, detail, fix))

    try:
        interval = int(config.get("heartbeat.interval.ms") or 0)
    except ValueError:
        interval = 0
    query = (config.get("heartbeat.action.query") or "").strip()
    if interval <= 0:
        add(
            "heartbeat",
            Level.WARN,
            "heartbeat.interval.ms is not set: while the captured tables are quiet "
            "the slot retains WAL",
            "set heartbeat.interval.ms (e.g. 10000) and a heartbeat.action.query "
            "that writes to a captured table",
        )
        return checks
    if not query:
        add(
            "heartbeat",
            Level.WARN,
            f"every {interval} ms, but without heartbeat.action.query the slot only "
            "advances on real changes",
            "add heartbeat.action.query writing to a small captured table "
            "(see connectors/shop-postgres.yaml)",
        )
        return checks
    match = _WRITE_TARGET.search(query)
    if match is None:
        add(
            "heartbeat",
            Level.OK,
            f"every {interval} ms; the action query's table was not recognised",
        )
        return checks
    target = re.sub(r'[\s"]', "", match[1])
    qualified = target if "." in target else f"public.{target}"
    row = next((r for t, r in existing.items() if t.lower() == qualified.lower()), None)
    captured = any(t.lower() == qualified.lower() for t in tables)
    user = user or "<database.user>"
    if row is None:
        add(
            "heartbeat",
            Level.FAIL,
            f"the action query writes {qualified}, which does not exist: every heartbeat "
            "fails (Debezium only logs it), and the slot does not advance",
            f"CREATE TABLE {qualified} (id integer PRIMARY KEY, ts timestamptz NOT NULL), "
            "and add it to table.include.list",
        )
    elif not (row["can_insert"] and row["can_update"]):
        add(
            "heartbeat",
            Level.FAIL,
            f"{user} may not write {qualified}: every heartbeat fails (Debezium only "
            "logs it), and the slot does not advance",
            f"GRANT INSERT, UPDATE ON {_quote_ident(qualified)} TO {user}",
        )
    elif not captured:
        add(
            "heartbeat",
            Level.WARN,
            f"the action query writes {qualified}, which is not captured: its writes "
            "never reach the connector, so they do not advance the slot",
            f"add {qualified} to table.include.list",
        )
    else:
        add("heartbeat", Level.OK, f"every {interval} ms, writing {qualified} (captured)")
    return checks
