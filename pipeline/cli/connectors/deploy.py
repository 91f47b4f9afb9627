"""``cdcflow connectors validate | plan | apply | preflight``: from the files to Connect."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import click

from pipeline.cli._context import CliContext
from pipeline.cli.connectors import _common as common
from pipeline.connect import (
    Action,
    ConnectorSpec,
    Level,
    Plan,
    PreflightReport,
    Redactor,
    ValidationResult,
    apply,
    run_preflight,
    validate_connectors,
)
from pipeline.connect import plan as make_plan
from pipeline.connect.domain import DomainCheck
from pipeline.connect.pg import is_postgres_connector, slot_name
from pipeline.errors import ConnectError

# --------------------------------------------------------------------------- validate


@common.declared_command()
def validate(ctx: CliContext, specs: list[ConnectorSpec], names: tuple[str, ...]) -> None:
    """Validate declared connectors on the worker, printing every field error.

    \b
    Connect's own validation of each connector (or only NAMES):
      PUT /connector-plugins/{class}/config/validate
    The worker resolves placeholders first, and Debezium logs in to the
    database, so a wrong password shows up here. Nothing is changed.
    Exits 1 if any connector is invalid.
    """
    warnings = common.warn_plain_secrets(specs)
    with common.client(ctx) as client:
        results = validate_connectors(client, specs, Redactor.for_configs(s.config for s in specs))
    if ctx.json_output:
        ctx.emit_json(
            {
                "valid": all(r.ok for r in results),
                "connectors": [r.to_dict() for r in results],
                "warnings": warnings,
            }
        )
    else:
        _print_validation(results)
    if not all(r.ok for r in results):
        sys.exit(1)


def _print_validation(results: Iterable[ValidationResult]) -> None:
    for result in results:
        if result.ok:
            click.echo(f"{result.connector}: " + click.style("valid", fg="green"))
            continue
        click.echo(
            f"{result.connector}: "
            + click.style(f"{len(result.errors)} invalid field(s)", fg="red")
        )
        for name, messages in sorted(result.errors.items()):
            where = f"  [{result.where[name]}]" if name in result.where else ""
            for message in messages:
                click.echo(f"  {click.style(name, bold=True)}: {message}{where}")


# --------------------------------------------------------------------------- plan / apply


def _checked(
    ctx: CliContext, specs: list[ConnectorSpec]
) -> tuple[list[ConnectorSpec], dict[str, DomainCheck], list[str]]:
    """The specs with any derived routing, each one's domain check, and the plain-secret warnings."""
    warnings = common.warn_plain_secrets(specs)
    return (*common.with_domains(ctx, specs), warnings)


def _emit_json(
    ctx: CliContext, result: dict[str, Any], domains: dict[str, DomainCheck], warnings: list[str]
) -> None:
    ctx.emit_json(
        {**result, "domains": [c.to_dict() for c in domains.values()], "warnings": warnings}
    )


@common.declared_command()
@click.option(
    "--prune", is_flag=True, help="Plan to delete deployed connectors no longer declared."
)
def plan(ctx: CliContext, specs: list[ConnectorSpec], names: tuple[str, ...], prune: bool) -> None:
    """Show what apply would change: create, update (field by field), delete.

    Compares the declared connectors (or only NAMES) with the deployed ones,
    key by key: keys the server adds are ignored, and values that are
    placeholders or look secret are masked. Deployed connectors that are not
    declared are listed; with --prune they are planned for deletion.

    \b
    Each connector is also checked against the domain it feeds (the file's
    'domain:', else transformer.domain when its topics are the transformer's):
    an aggregate whose tables are split over topics or partitions is
    reported with the config that fixes it; with 'routing: derive' in the
    file that config is planned, its keys marked as derived.

    Exits 0 when nothing would change, 2 when changes are pending, 1 on error.
    """
    specs, domains, warnings = _checked(ctx, specs)
    with common.client(ctx) as client:
        result = make_plan(
            client,
            specs,
            prune=prune,
            only=names or None,
            prune_prefix=ctx.settings.connect.prune_prefix,
        )
    if ctx.json_output:
        _emit_json(ctx, result.to_dict(), domains, warnings)
    else:
        _print_plan(result)
        common.print_domains(domains.values())
    if result.has_changes:
        sys.exit(common.CHANGES_PENDING)


_SIGNS = {"add": ("+", "green"), "change": ("~", "yellow"), "remove": ("-", "red")}
_ACTION_COLOURS = {
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "undeclared": "magenta",
    "unchanged": None,
}


def _print_plan(result: Plan) -> None:
    for change in result.changes:
        label = click.style(str(change.action), fg=_ACTION_COLOURS[str(change.action)], bold=True)
        where = ""
        if change.spec is not None:
            files = [str(change.spec.source)] + (
                [str(change.spec.overlay)] if change.spec.overlay else []
            )
            where = f"  ({' + '.join(files)})"
        note = ""
        if change.action is Action.UNDECLARED:
            note = "  (deployed, not declared: kept; apply --prune deletes it)"
        click.echo(f"{change.name}: {label}{where}{note}")
        for field in change.fields:
            sign, colour = _SIGNS[field.kind]
            before, after = field.shown()
            masked = f"  ({field.note()}, masked)" if field.sensitive and field.note() else ""
            if change.spec is not None and field.key in change.spec.derived:
                masked += "  (derived)"
            if field.kind == "add":
                text = f"{field.key} = {after}"
            elif field.kind == "remove":
                text = f"{field.key} (was {before})"
            else:
                text = f"{field.key}: {before} -> {after}"
            click.echo("  " + click.style(f"{sign} {text}", fg=colour) + masked)
    summary = result.summary()
    click.echo(
        f"\n{summary['create']} to create, {summary['update']} to update, "
        f"{summary['delete']} to delete, "
        f"{summary['unchanged']} unchanged"
        + (f", {summary['undeclared']} undeclared (kept)" if summary["undeclared"] else "")
        + "."
    )


@common.declared_command(name="apply")
@click.option(
    "--prune",
    is_flag=True,
    help="Delete deployed connectors no longer declared (without it they are only reported).",
)
@common.wait_options(
    "Return once every declared connector and all its tasks are RUNNING; "
    "fail with the trace of a FAILED task.",
    timeout_s=300.0,
)
@click.option(
    "--settle",
    "settle_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds RUNNING must hold before --wait returns (a task that fails on start "
    "reports RUNNING first).",
)
@click.option("--skip-preflight", is_flag=True, help="Do not check the source database first.")
@click.option(
    "--allow-split-aggregates",
    is_flag=True,
    help="Deploy a connector even though its routing splits an aggregate of its domain "
    "over topics or partitions (its events may then leave commit order).",
)
def apply_command(
    ctx: CliContext,
    specs: list[ConnectorSpec],
    names: tuple[str, ...],
    prune: bool,
    wait: bool,
    timeout_s: float,
    settle_s: float,
    skip_preflight: bool,
    allow_split_aggregates: bool,
) -> None:
    """Make the deployed connectors what the files declare; idempotent.

    \b
    1. plan (as 'cdcflow connectors plan', derived routing included); refuse
       a connector whose routing splits an aggregate of its domain, unless
       --allow-split-aggregates
    2. validate every connector to create or update on the worker
    3. preflight the source database of each Debezium Postgres connector
    4. PUT /connectors/{name}/config for each change; unchanged ones get no request
    5. with --prune, delete connectors no longer declared
    6. with --wait, wait until everything runs
    Nothing on the server changes unless steps 2 and 3 pass for every
    connector. Exits 0 on success (also when there was nothing to do).
    """
    specs, domains, warnings = _checked(ctx, specs)
    with common.client(ctx) as client:
        result = apply(
            client,
            specs,
            source=ctx.settings.source,
            prune=prune,
            wait=wait,
            timeout_s=timeout_s,
            settle_s=settle_s,
            preflight=not skip_preflight,
            only=names or None,
            prune_prefix=ctx.settings.connect.prune_prefix,
            progress=lambda msg: common.err(f"  {msg}"),
            domains=domains,
            allow_split_aggregates=allow_split_aggregates,
        )
    if ctx.json_output:
        _emit_json(ctx, result.to_dict(), domains, warnings)
        return
    _print_preflight(result.preflight, only_problems=True)
    common.print_domains(domains.values())
    if not result.plan.has_changes:
        click.echo("no changes: the deployed connectors match the files")
    for name in result.applied:
        click.echo(f"{name}: " + click.style("applied", fg="green"))
    for change in result.plan.of(Action.DELETE):
        click.echo(f"{change.name}: " + click.style("deleted", fg="red"))
        config = {f.key: f.before for f in change.fields if f.before is not None}
        if is_postgres_connector(config):
            common.slot_left(change.name, slot_name(config))
    for change in result.plan.of(Action.UNDECLARED):
        click.echo(f"{change.name}: deployed but not declared (kept; --prune deletes it)")
    for name in sorted(result.running):
        click.echo(f"{name}: " + click.style("RUNNING", fg="green"))
    for name, state in sorted(result.not_waited.items()):
        click.echo(
            f"{name}: {common.colour_words(state, common.STATE_COLOURS)} (left as it is; 'resume' starts it)"
        )


# --------------------------------------------------------------------------- preflight


@common.declared_command()
def preflight(ctx: CliContext, specs: list[ConnectorSpec], names: tuple[str, ...]) -> None:
    """Check the source database of each Debezium Postgres connector.

    \b
    The connector's own login (its ${env:...} / ${file:...} placeholders
    resolved here when possible), wal_level = logical, REPLICATION, a free
    replication slot and WAL sender, the captured tables exist and are
    readable, REPLICA IDENTITY per table (a warning for TOAST-able columns
    without FULL), the publication, the heartbeat. With a domain (the file's
    'domain:', else transformer.domain when the connector's topics are the
    transformer's): tables its rules need but not captured, captured tables
    it does not know, replica identities its rules' before-image reads need,
    aggregates split over topics or partitions, routing columns outside the
    replica identity. Each failed check says how to fix it. Exits 1 if any
    check failed (warnings do not fail).
    """
    specs = [s for s in specs if is_postgres_connector(s.config)]
    specs, domains = common.with_domains(ctx, specs)
    deployed: set[str] = set()
    try:
        with common.client(ctx) as client:
            deployed = set(client.list_connectors())
    except ConnectError:
        pass  # preflight is about the database; Connect being down is not its failure
    reports = [
        run_preflight(
            s.name,
            s.config,
            ctx.settings.source,
            deployed=s.name in deployed,
            domain=domains.get(s.name),
        )
        for s in specs
    ]
    if ctx.json_output:
        ctx.emit_json(
            {"ok": all(r.ok for r in reports), "connectors": [r.to_dict() for r in reports]}
        )
    else:
        if not specs:
            click.echo("no Debezium Postgres connector declared: nothing to check")
        _print_preflight(reports)
    if not all(r.ok for r in reports):
        sys.exit(1)


def _print_preflight(reports: Iterable[PreflightReport], *, only_problems: bool = False) -> None:
    for report in reports:
        checks = [
            c for c in report.checks if not only_problems or c.level in (Level.WARN, Level.FAIL)
        ]
        if not checks:
            continue
        click.echo(
            f"{report.connector}: preflight"
            + (f" (as {report.checked_as})" if report.checked_as else "")
        )
        for check in checks:
            level = click.style(
                f"{check.level.value:<4}", fg=common.LEVEL_COLOURS[check.level.value]
            )
            click.echo(f"  {level}  {check.name}: {check.detail}")
            if check.fix and check.level in (Level.WARN, Level.FAIL, Level.SKIP):
                click.echo(f"        fix: {check.fix}")
