"""``cdcflow connectors restart | pause | resume | stop | delete | offsets``: operate deployed connectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from pipeline.cli._context import CliContext, pass_cli
from pipeline.cli.connectors import _common as common
from pipeline.connect import (
    ConnectClient,
    wait_for_state,
)
from pipeline.connect.lifecycle import states
from pipeline.connect.remove import remove_connector
from pipeline.connect.secrets import mask_value
from pipeline.errors import CdcflowError

# --------------------------------------------------------------------------- operate


def _each(
    ctx: CliContext, names: Sequence[str], verb: str, call: Callable[[ConnectClient, str], Any]
) -> None:
    with common.client(ctx) as client:
        for name in names:
            call(client, name)
            if not ctx.json_output:
                click.echo(f"{name}: {verb}")
    if ctx.json_output:
        ctx.emit_json({"connectors": list(names), "action": verb})


@common.command.command()
@click.option(
    "--failed-only",
    is_flag=True,
    help="Restart only the connector instance and tasks that are FAILED.",
)
@click.argument("name")
@pass_cli
def restart(ctx: CliContext, failed_only: bool, name: str) -> None:
    """Restart a connector and its tasks (POST /restart?includeTasks=true).

    With --failed-only (onlyFailed=true) only the instances that are FAILED
    restart, after the cause is fixed; the others keep running.
    """
    with common.client(ctx) as client:
        answer = client.restart(name, include_tasks=True, only_failed=failed_only)
    if ctx.json_output:
        ctx.emit_json(answer or {"name": name})
        return
    if answer:
        connector, tasks = states(answer)
        click.echo(
            common.colour_words(
                f"{name}: connector {connector}, tasks [{' '.join(tasks) or 'none'}]",
                common.STATE_COLOURS,
            )
        )
    else:
        click.echo(f"{name}: restart requested")


@common.command.command()
@click.argument("names", nargs=-1, required=True)
@pass_cli
def pause(ctx: CliContext, names: tuple[str, ...]) -> None:
    """Pause connectors: tasks stay assigned but stop reading (PUT /pause).

    For Debezium the replication slot stays, and retains WAL while paused.
    """
    _each(ctx, names, "pause requested", lambda c, n: c.pause(n))


@common.command.command()
@click.argument("names", nargs=-1, required=True)
@pass_cli
def resume(ctx: CliContext, names: tuple[str, ...]) -> None:
    """Resume paused or stopped connectors (PUT /resume)."""
    _each(ctx, names, "resume requested", lambda c, n: c.resume(n))


@common.command.command()
@common.wait_options("Return once the connector reports STOPPED.", timeout_s=60.0)
@click.argument("names", nargs=-1, required=True)
@pass_cli
def stop(ctx: CliContext, wait: bool, timeout_s: float, names: tuple[str, ...]) -> None:
    """Stop connectors: shut down connector and tasks, keep config and offsets (PUT /stop).

    A stopped connector's offsets can be read and reset ('offsets').
    'resume' starts it again.
    """
    _each(ctx, names, "stop requested", lambda c, n: c.stop(n))
    if wait:
        with common.client(ctx) as client:
            wait_for_state(client, names, "STOPPED", timeout_s=timeout_s)
        if not ctx.json_output:
            click.echo(common.colour_words(f"{', '.join(names)}: STOPPED", common.STATE_COLOURS))


@common.command.command()
@click.option(
    "--drop-slot",
    is_flag=True,
    help="Forget the connector completely: stop it, reset its offsets, delete it, "
    "and drop its Debezium replication slot.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("names", nargs=-1, required=True)
@pass_cli
def delete(ctx: CliContext, drop_slot: bool, yes: bool, names: tuple[str, ...]) -> None:
    """Delete connectors (DELETE /connectors/{name}).

    \b
    Connect keeps a deleted connector's offsets, and a Debezium Postgres
    connector's replication slot outlives it, making PostgreSQL keep WAL.
    --drop-slot removes both: the connector is stopped, its offsets reset
    (so one created again under the name snapshots afresh), it is deleted,
    and its slot dropped. Without it the slot is reported.
    A connector still declared in the files comes back with the next apply.
    """
    common.confirm(f"delete {', '.join(names)}", yes)
    out = []
    with common.client(ctx) as client:
        for name in names:
            removal = remove_connector(client, name, source=ctx.settings.source, forget=drop_slot)
            out.append(removal.to_dict())
            if ctx.json_output:
                continue
            click.echo(f"{name}: " + click.style("deleted", fg="red"))
            if removal.slot and removal.slot_dropped is None:
                common.slot_left(name, removal.slot)
            elif removal.slot:
                common.err(
                    f"  replication slot {removal.slot!r} "
                    + ("dropped" if removal.slot_dropped else "did not exist")
                )
    if ctx.json_output:
        ctx.emit_json(out)


# --------------------------------------------------------------------------- offsets


@common.command.group()
def offsets() -> None:
    """Read or reset a connector's source offsets (the connector must be STOPPED to reset).

    \b
    For Debezium the offset is its position in the WAL (lsn, txId) and
    whether the snapshot completed. After a reset, a connector with
    snapshot.mode=initial snapshots its tables again when resumed.
    """


@offsets.command(name="get")
@click.argument("name")
@pass_cli
def offsets_get(ctx: CliContext, name: str) -> None:
    """Print a connector's offsets (GET /connectors/{name}/offsets)."""
    with common.client(ctx) as client:
        answer = client.offsets(name)
    if ctx.json_output:
        ctx.emit_json(answer)
        return
    entries = answer.get("offsets") or []
    if not entries:
        click.echo(f"{name}: no offsets committed")
    for entry in entries:
        partition = ", ".join(f"{k}={v}" for k, v in (entry.get("partition") or {}).items())
        offset = ", ".join(
            f"{k}={mask_value(k, str(v))}" for k, v in (entry.get("offset") or {}).items()
        )
        click.echo(f"{name}  [{partition}]  {offset}")


@offsets.command(name="reset")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("name")
@pass_cli
def offsets_reset(ctx: CliContext, yes: bool, name: str) -> None:
    """Forget a STOPPED connector's offsets (DELETE /connectors/{name}/offsets).

    Stop it first ('cdcflow connectors stop NAME --wait'), resume it after.
    """
    with common.client(ctx) as client:
        state, _ = states(client.status(name))
        if state != "STOPPED":
            raise CdcflowError(
                f"connector {name!r} is {state}; offsets can only be reset while it is STOPPED",
                hint=f"cdcflow connectors stop {name} --wait",
            )
        common.confirm(f"reset the offsets of {name}", yes)
        answer = client.reset_offsets(name)
    if ctx.json_output:
        ctx.emit_json(answer)
    else:
        click.echo(f"{name}: {answer.get('message', 'offsets reset')}")
