"""``cdcflow connectors status | plugins``: what runs on Connect, and its slots."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.cli.connectors import _common as common
from pipeline.connect import (
    collect_status,
)
from pipeline.errors import ConfigError

# --------------------------------------------------------------------------- status


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{value} B" if unit == "B" else f"{value} B ({size:.1f} {unit})"
        size /= 1024
    return f"{value} B"  # pragma: no cover


@common.command.command()
@common.files_options
@click.option("--no-slots", is_flag=True, help="Do not read replication slots from the database.")
@click.argument("names", nargs=-1)
@pass_cli
def status(
    ctx: CliContext,
    directory: Path | None,
    environment: str | None,
    no_slots: bool,
    names: tuple[str, ...],
) -> None:
    """Connector and task states, worker ids, and each Debezium slot's retained WAL.

    Every deployed connector (or only NAMES). For Debezium Postgres
    connectors, the replication slot is read from pg_replication_slots:
    RETAINED WAL is what the server keeps for the slot (current position
    minus restart_lsn), in bytes. Exits 1 if a connector or task FAILED.
    """
    declared: list[str] | None = None
    # status works without connector files, e.g. on an operator's laptop
    with contextlib.suppress(ConfigError):
        declared = [s.name for s in common.specs(ctx, directory, environment)]
    with common.client(ctx) as client:
        statuses = collect_status(
            client,
            names or None,
            source=None if no_slots else ctx.settings.source,
            declared=declared,
        )
    if ctx.json_output:
        ctx.emit_json([s.to_dict() for s in statuses])
    else:
        rows = []
        for s in statuses:
            slot = "-"
            if s.slot_name:
                if s.slot is not None:
                    slot = f"{s.slot_name} ({'active' if s.slot.active else 'inactive'})"
                elif s.slot_error:
                    slot = f"{s.slot_name} (unreadable)"
                else:
                    slot = f"{s.slot_name} ({'missing' if not no_slots else 'not read'})"
            rows.append(
                {
                    "name": s.name + ("" if s.declared in (None, True) else " *"),
                    "state": s.state,
                    "worker": s.worker_id or "-",
                    "tasks": " ".join(f"{t.id}:{t.state}" for t in s.tasks) or "-",
                    "slot": slot,
                    "retained wal": _bytes(s.slot.retained_wal_bytes) if s.slot else "-",
                }
            )
        if rows:
            click.echo(
                common.colour_words(
                    table(rows, ["name", "state", "worker", "tasks", "slot", "retained wal"]),
                    common.STATE_COLOURS,
                )
            )
        else:
            click.echo("no connectors deployed")
        if any(s.declared is False for s in statuses):
            click.echo("* deployed but not declared in the connector files")
        for s in statuses:
            if s.slot_error:
                common.err(f"{s.name}: could not read slot {s.slot_name}: {s.slot_error}")
            for where, trace in [("connector", s.trace)] + [
                (f"task {t.id}", t.trace) for t in s.tasks
            ]:
                if trace:
                    first = trace.strip().splitlines()[0]
                    click.echo(f"{s.name} {where}: " + click.style(first, fg="red"))
    if not all(s.healthy for s in statuses):
        sys.exit(1)


@common.command.command()
@pass_cli
def plugins(ctx: CliContext) -> None:
    """The connector classes installed on the Connect worker."""
    with common.client(ctx) as client:
        found = client.connector_plugins()
    if ctx.json_output:
        ctx.emit_json(found)
    else:
        click.echo(
            table(
                [
                    {"class": p.get("class"), "type": p.get("type"), "version": p.get("version")}
                    for p in found
                ],
                ["class", "type", "version"],
            )
        )
