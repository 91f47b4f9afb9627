"""``cdcflow connectors snapshot``: backfill tables through Debezium's signals.

``snapshot NAME --table T`` is short for ``snapshot start NAME --table T``.
The protocol (signal, watermarks, notifications) is in
:mod:`pipeline.connect.snapshot`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.cli.connectors import _common as common
from pipeline.connect.snapshot import (
    SnapshotRun,
    SnapshotSignal,
    running,
    snapshots_of,
    start_snapshot,
    stop_snapshot,
    wait_for_snapshot,
)

__all__ = ["snapshot"]


class _StartByDefault(click.Group):
    """A group whose first argument, when it is no subcommand, is the connector for ``start``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@common.command.group(cls=_StartByDefault)
def snapshot() -> None:
    """Backfill tables: an incremental snapshot through Debezium's signal table.

    \b
      cdcflow connectors snapshot NAME --table public.books [--where "id > 100"]
      cdcflow connectors snapshot status NAME
      cdcflow connectors snapshot stop NAME

    \b
    The connector keeps streaming while the tables are read chunk by chunk;
    a row changed during the backfill is sent once, newest value last. The
    rows arrive as op=r records with source.snapshot=incremental (rules see
    change.op == "r" and change.backfill). The connector file needs one
    line, 'signal.data.collection: public.cdcflow_signal' (the table must
    exist); cdcflow derives the rest. See docs/guarantees.md, "Backfills".
    """


def _progress(ctx: CliContext, signal: SnapshotSignal) -> Any:
    def say(run: SnapshotRun, waited_s: float) -> None:
        common.err(
            f"  [{waited_s:5.0f} s] {signal.connector} snapshot {run.id[:8]}: "
            + (run.describe() if run.state != "SIGNALLED" else "waiting for the connector")
        )

    return say


def _tables_option(
    help_text: str, *, required: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-t", "--table", "tables", multiple=True, required=required, help=help_text)


@snapshot.command(name="start")
@_tables_option(
    "A captured table to read (schema.table; a bare name is in public). Repeatable.", required=True
)
@click.option(
    "--where",
    metavar="SQL",
    help="Read only the rows this condition selects, e.g. \"updated_at > '2024-01-01'\".",
)
@common.wait_options(
    "Wait, reporting progress, until the snapshot is COMPLETED or ABORTED.",
    timeout_s=3600.0,
    waits=True,
    after=" (the snapshot goes on after it)",
)
@click.argument("name")
@pass_cli
def start(
    ctx: CliContext,
    tables: tuple[str, ...],
    where: str | None,
    wait: bool,
    timeout_s: float,
    name: str,
) -> None:
    """Signal connector NAME to snapshot TABLEs incrementally, and follow it.

    Exits 0 when the snapshot completed (or, with --no-wait, was signalled),
    1 when it was aborted, could not be signalled, or --timeout passed.
    """
    with common.client(ctx) as client:
        signal = start_snapshot(client, name, tables, ctx.settings.source, where=where)
    if not ctx.json_output:
        common.err(
            f"{name}: snapshot {signal.id} of {', '.join(signal.data['data-collections'])} "
            f"signalled (as {signal.sent_as})"
        )
    run: SnapshotRun | None = None
    if wait:
        run = wait_for_snapshot(
            ctx.settings.kafka,
            signal,
            timeout_s=timeout_s,
            progress=None if ctx.json_output else _progress(ctx, signal),
        )
    if ctx.json_output:
        ctx.emit_json({"signal": signal.to_dict(), "snapshot": run.to_dict() if run else None})
    elif run is not None:
        rows = ", ".join(f"{t}: {n}" for t, n in run.scanned.items()) or "no rows"
        colour = "green" if run.state == "COMPLETED" else "red"
        click.echo(f"{name}: snapshot {run.id} " + click.style(run.state, fg=colour) + f" ({rows})")
    else:
        click.echo(
            f"{name}: snapshot {signal.id} signalled; follow it with "
            f"'cdcflow connectors snapshot status {name}'"
        )
    if run is not None and run.state != "COMPLETED":
        raise SystemExit(1)


@snapshot.command(name="status")
@click.option("--all", "show_all", is_flag=True, help="Also list finished snapshots.")
@click.argument("name")
@pass_cli
def status(ctx: CliContext, show_all: bool, name: str) -> None:
    """The incremental snapshots of connector NAME, from its notifications.

    Lists the running ones (with --all, every one the notification topic
    still holds). Exits 0.
    """
    with common.client(ctx) as client:
        runs = snapshots_of(client, name, ctx.settings.kafka)
    shown = runs if show_all else running(runs)
    if ctx.json_output:
        ctx.emit_json({"connector": name, "snapshots": [r.to_dict() for r in shown]})
        return
    if not shown:
        click.echo(
            f"{name}: no snapshot running" + ("" if show_all else f" ({len(runs)} finished)")
        )
        return
    rows = [
        {
            "id": r.id,
            "state": r.state,
            "tables": ", ".join(r.tables) or "-",
            "progress": r.describe(),
            "updated": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.updated_ms / 1000))
            if r.updated_ms
            else "-",
        }
        for r in shown
    ]
    click.echo(table(rows, ["id", "state", "tables", "progress", "updated"]))


@snapshot.command(name="stop")
@_tables_option("Stop reading only this table (repeatable); without it the whole snapshot stops.")
@click.argument("name")
@pass_cli
def stop(ctx: CliContext, tables: tuple[str, ...], name: str) -> None:
    """Signal connector NAME to stop its incremental snapshot (Debezium's stop-snapshot).

    Rows already read stay sent; the snapshot is reported ABORTED. Exits 0
    once the signal is written.
    """
    with common.client(ctx) as client:
        signal = stop_snapshot(client, name, ctx.settings.source, tables)
    if ctx.json_output:
        ctx.emit_json({"signal": signal.to_dict()})
    else:
        click.echo(f"{name}: stop signalled ({signal.id})")
